// IPVS bytes from a real kernel (fixtures/netlink/ipvs-5.10.json, captured in
// the 5.10 VM by `unshare -n node test/support/netlink-capture.ts ipvs`: a
// fresh network namespace without any IPv4 address, so every IPv4
// destination was refused there, as FakeIpvs's noIPv4Address models):
// - the requests Switchyard encodes are the bytes that kernel accepted;
// - its replies decode to what was programmed (services with scheduler
//   flags, persistence, IPv6 netmask, statistics; destinations; timeouts);
// - FakeIpvs, replaying the same requests in the same order, answers with the
//   same errno and the same reply bytes (header seq/pid and family id aside).
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { decodeDestination, decodeInfo, decodeService, decodeTimeouts, encode, type ServiceSpec } from '../../src/host/ipvs/codec.ts';
import { decodeFamily, decodeGenl } from '../../src/host/netlink/genl.ts';
import { encodeMessage, parseMessages } from '../../src/host/netlink/message.ts';
import { FakeIpvs } from '../support/fake-ipvs.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';

interface Exchange {
  request: string;
  replies: string;
  errno: number;
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/netlink/ipvs-5.10.json', import.meta.url), 'utf8')) as Record<string, Exchange> & {
  kernel: string;
  family: number;
};
const FAMILY = fx.family;
const exchanges = Object.entries(fx).filter((e): e is [string, Exchange] => typeof e[1] === 'object');
const replies = (name: string) => parseMessages(Buffer.from(fx[name]!.replies, 'hex')).map((m) => decodeGenl(m, name));

// The specs netlink-capture.ts programmed.
const tcp4: ServiceSpec = { protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr', persistence: { timeout: 10800 } };
const udp6: ServiceSpec = { protocol: 'UDP', address: 'fd00:10:96::a', port: 53, scheduler: 'sh', schedFlags: ['sh-fallback', 'sh-port'] };
const sctp4: ServiceSpec = { protocol: 'SCTP', address: '198.18.0.1', port: 30007, scheduler: 'mh', schedFlags: ['mh-port'] };

describe(`IPVS on kernel ${fx.kernel}`, () => {
  test.each([
    ['new-service-tcp4', encode.newService(FAMILY, tcp4)],
    ['new-service-udp6', encode.newService(FAMILY, udp6)],
    ['new-service-sctp4', encode.newService(FAMILY, sctp4)],
    ['new-dest-udp6', encode.newDest(FAMILY, udp6, { address: 'fd00:10:244:1::5', port: 5353, weight: 1 })],
    ['get-service-tcp4', encode.getService(FAMILY, tcp4)],
    ['dump-services', encode.dumpServices(FAMILY)],
    ['dump-dests-udp6', encode.dumpDests(FAMILY, udp6)],
    ['set-config', encode.setConfig(FAMILY, { tcp: 901, tcpFin: 121, udp: 301 })],
    ['set-service-tcp4', encode.setService(FAMILY, { ...tcp4, scheduler: 'wrr', persistence: undefined })],
    ['flush', encode.flush(FAMILY)],
  ])('%s: the request is the bytes the kernel accepted', (name, bytes) => {
    expect(fx[name]!.errno).toBe(0);
    expect(bytes.toString('hex')).toBe(fx[name]!.request);
  });

  test('nlctrl resolved IPVS', () => {
    const f = decodeFamily(parseMessages(Buffer.from(fx['getfamily-ipvs']!.replies, 'hex'))[0]!);
    expect(f).toMatchObject({ id: FAMILY, name: 'IPVS', version: 1, maxattr: 6 });
    expect(f.ops.map((o) => o.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17]);
  });

  test('the service dump decodes to the three services programmed', () => {
    const got = replies('dump-services').map((r) => decodeService(r.attrs)!);
    expect(got.map(({ stats, ...s }) => s)).toEqual([
      {
        protocol: 'TCP',
        address: '10.96.0.10',
        family: 'IPv4',
        port: 80,
        scheduler: 'rr',
        flags: 1,
        schedFlags: [],
        timeout: 10800,
        persistent: true,
        onePacket: false,
        prefix: 32,
        peName: null,
      },
      {
        protocol: 'UDP',
        address: 'fd00:10:96::a',
        family: 'IPv6',
        port: 53,
        scheduler: 'sh',
        flags: 0x18,
        schedFlags: ['sh-fallback', 'sh-port'],
        timeout: 0,
        persistent: false,
        onePacket: false,
        prefix: 128,
        peName: null,
      },
      {
        protocol: 'SCTP',
        address: '198.18.0.1',
        family: 'IPv4',
        port: 30007,
        scheduler: 'mh',
        flags: 0x10,
        schedFlags: ['mh-port'],
        timeout: 0,
        persistent: false,
        onePacket: false,
        prefix: 32,
        peName: null,
      },
    ]);
    expect(got[0]!.stats).toEqual({ conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 });
  });

  test('the destination dump, GET_SERVICE, GET_CONFIG and GET_INFO decode', () => {
    expect(replies('dump-dests-udp6').map((r) => decodeDestination(r.attrs, 'IPv6'))).toEqual([
      {
        address: 'fd00:10:244:1::5',
        family: 'IPv6',
        port: 5353,
        weight: 1,
        forward: 'masq',
        upperThreshold: 0,
        lowerThreshold: 0,
        activeConns: 0,
        inactiveConns: 0,
        persistentConns: 0,
        stats: { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
      },
    ]);
    expect(decodeService(replies('get-service-tcp4')[0]!.attrs)).toMatchObject({ address: '10.96.0.10', port: 80, persistent: true, timeout: 10800 });
    expect(decodeTimeouts(replies('get-config')[0]!.attrs)).toEqual({ tcp: 901, tcpFin: 121, udp: 301 });
    expect(decodeInfo(replies('get-info')[0]!.attrs)).toEqual({ version: '1.2.1', connTableSize: 4096 });
    expect(replies('dump-dests-missing')).toEqual([]);
  });

  test('FakeIpvs replaying every request answers with the kernel’s errno and reply bytes', async () => {
    const fake = new FakeNativeBinding();
    FakeIpvs.install(fake.netlink, { noIPv4Address: true, schedulers: ['rr', 'wrr', 'sh', 'mh'] });
    const sock = fake.netlinkOpen(16);
    const [got] = await sock.request(Buffer.from(fx['getfamily-ipvs']!.request, 'hex'));
    const fakeFamily = decodeFamily(parseMessages(got!.replies)[0]!).id;
    // Both sides' messages with the family id, seq and pid taken out.
    const normal = (hex: string | Buffer, family: number): string[] =>
      parseMessages(typeof hex === 'string' ? Buffer.from(hex, 'hex') : hex).map((m) =>
        encodeMessage(m.type === family ? 0 : m.type, m.flags, m.payload).toString('hex'),
      );
    const diffs: string[] = [];
    for (const [name, e] of exchanges) {
      if (name === 'getfamily-ipvs') continue;
      const req = Buffer.from(e.request, 'hex');
      req.writeUInt16LE(fakeFamily, 4);
      const [r] = await sock.request(req);
      const errno = r!.error?.errno ?? 0;
      if (errno !== e.errno) diffs.push(`${name}: errno ${errno}, the kernel's ${e.errno}`);
      else {
        // A dump's order is the hash table's (the fake's own hash): compare as sets.
        const order = (l: string[]): string[] => (name.startsWith('dump-') ? [...l].sort() : l);
        if (JSON.stringify(order(normal(r!.replies, fakeFamily))) !== JSON.stringify(order(normal(e.replies, FAMILY))))
          diffs.push(`${name}: reply bytes differ`);
      }
    }
    expect(diffs).toEqual([]);
    expect(exchanges.length).toBeGreaterThan(25);
  });
});
