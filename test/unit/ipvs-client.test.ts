// The IPVS client (src/host/ipvs/) over the fake IPVS kernel
// (test/support/fake-ipvs.ts, which speaks the kernel's bytes and errnos):
// services and destinations, schedulers and their flags, persistence,
// timeouts, statistics, batches, and the kernel's errors for each mistake.
import { describe, expect, test } from 'vitest';
import { encode, schedFlagNames, specFlags, type ServiceSpec } from '../../src/host/ipvs/codec.ts';
import { IpvsClient } from '../../src/host/ipvs/client.ts';
import { Attrs } from '../../src/host/netlink/attributes.ts';
import { decodeGenl } from '../../src/host/netlink/genl.ts';
import { parseMessages } from '../../src/host/netlink/message.ts';
import { FakeIpvs } from '../support/fake-ipvs.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';

function setup(opts?: ConstructorParameters<typeof FakeIpvs>[0]): { client: IpvsClient; ipvs: FakeIpvs; fake: FakeNativeBinding } {
  const fake = new FakeNativeBinding();
  const ipvs = FakeIpvs.install(fake.netlink, opts);
  return { client: IpvsClient.open(fake), ipvs, fake };
}

const tcp4: ServiceSpec = { protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr' };
const udp6: ServiceSpec = { protocol: 'UDP', address: 'fd00:10:96::a', port: 53, scheduler: 'rr' };

describe('encoding (the bytes the kernel parses)', () => {
  test('NEW_SERVICE: AF and protocol u16, the address as 16 bytes, the port in network order, flags with their mask', () => {
    const m = parseMessages(encode.newService(0x23, { ...tcp4, persistence: { timeout: 10800 } }))[0]!;
    const g = decodeGenl(m, 't');
    expect([m.type, g.cmd, g.version]).toEqual([0x23, 1, 1]);
    const s = g.attrs.nested(1)!;
    expect(s.get(1)!.toString('hex')).toBe('0200'); // AF_INET
    expect(s.get(2)!.toString('hex')).toBe('0600'); // IPPROTO_TCP
    expect(s.get(3)!.toString('hex')).toBe('0a60000a000000000000000000000000');
    expect(s.get(4)!.toString('hex')).toBe('0050'); // port 80, network order
    expect(s.string(6)).toBe('rr');
    expect(s.get(7)!.toString('hex')).toBe('01000000' + '3d000000'); // PERSISTENT; mask: all but HASHED
    expect(s.u32(8)).toBe(10800);
    expect(s.get(9)!.toString('hex')).toBe('ffffffff'); // one client address
  });

  test('IPv6: the persistence netmask is a prefix length in host order', () => {
    const s = decodeGenl(parseMessages(encode.newService(0x23, udp6))[0]!, 't').attrs.nested(1)!;
    expect(s.get(1)!.toString('hex')).toBe('0a00');
    expect(s.get(3)!.toString('hex')).toBe(`${'fd000010009600000000000000000000'.slice(0, 32 - 4)}000a`);
    expect(s.get(9)!.toString('hex')).toBe('80000000');
  });

  test('NEW_DEST: the service key, then the destination with masq forwarding, weight and thresholds', () => {
    const g = decodeGenl(parseMessages(encode.newDest(0x23, tcp4, { address: '10.244.1.5', port: 8080, weight: 3 }))[0]!, 't');
    expect(g.cmd).toBe(5);
    const d = g.attrs.nested(2)!;
    expect(d.get(1)!.toString('hex')).toBe('0af40105000000000000000000000000');
    expect(d.get(2)!.toString('hex')).toBe('1f90');
    expect([d.u16(11), d.u32(3), d.u32(4), d.u32(5), d.u32(6)]).toEqual([2, 0, 3, 0, 0]);
  });

  test.each([
    ['sh', ['sh-fallback', 'sh-port'], 0x18],
    ['mh', ['mh-fallback', 'mh-port'], 0x18],
    ['mh', ['mh-port'], 0x10],
    ['wrr', ['flag-3'], 0x20],
  ] as const)('scheduler %s flags %j are bits 0x%s', (scheduler, flags, bits) => {
    expect(specFlags({ ...tcp4, scheduler, schedFlags: flags })).toBe(bits);
    expect(schedFlagNames(scheduler, bits)).toEqual(flags);
  });

  test.each([
    [{ ...tcp4, address: '10.96.0' }, /not an IP address/],
    [{ ...tcp4, port: 70000 }, /port 70000/],
    [{ ...tcp4, scheduler: 'a-very-long-name' }, /1 to 15 characters/],
    [{ ...tcp4, persistence: { timeout: 0 } }, /persistence timeout 0/],
    [{ ...udp6, persistence: { timeout: 1, prefix: 0 } }, /prefix 0 is not in 1..128/],
  ])('a spec outside the kernel’s types is the caller’s bug: %j', (spec, msg) => {
    expect(() => encode.newService(1, spec)).toThrow(RangeError);
    expect(() => encode.newService(1, spec)).toThrow(msg);
  });
});

describe('services', () => {
  test('add, get, dump, edit, delete', async () => {
    const { client, ipvs } = setup();
    await client.addService({ ...tcp4, persistence: { timeout: 10800 } });
    await client.addService({ ...udp6, scheduler: 'sh', schedFlags: ['sh-fallback', 'sh-port'] });
    await client.addService({ protocol: 'SCTP', address: '198.18.0.1', port: 30007, scheduler: 'mh', schedFlags: ['mh-port'] });
    expect(ipvs.size).toBe(3);

    const got = await client.getService(tcp4);
    expect(got).toMatchObject({
      protocol: 'TCP',
      address: '10.96.0.10',
      family: 'IPv4',
      port: 80,
      scheduler: 'rr',
      persistent: true,
      timeout: 10800,
      prefix: 32,
      flags: 1,
    });
    const all = await client.services();
    expect(all.map((s) => `${s.protocol} ${s.address} ${s.port} ${s.scheduler} ${s.schedFlags.join(',')}`).sort()).toEqual([
      'SCTP 198.18.0.1 30007 mh mh-port',
      'TCP 10.96.0.10 80 rr ',
      'UDP fd00:10:96::a 53 sh sh-fallback,sh-port',
    ]);
    expect(all.find((s) => s.protocol === 'UDP')).toMatchObject({ family: 'IPv6', prefix: 128, persistent: false, timeout: 0 });

    await client.editService({ ...tcp4, scheduler: 'wrr' }); // drops persistence: every flag is in the mask
    expect(await client.getService(tcp4)).toMatchObject({ scheduler: 'wrr', persistent: false, timeout: 0, flags: 0 });

    await client.deleteService(tcp4);
    expect((await client.services()).map((s) => s.protocol).sort()).toEqual(['SCTP', 'UDP']);
    await client.flush();
    expect(await client.services()).toEqual([]);
  });

  test.each([
    ['add a service that is there', async (c: IpvsClient) => c.addService(tcp4), 'EEXIST', 'netlink on IPVS NEW_SERVICE TCP 10.96.0.10:80: File exists'],
    [
      'edit a service that is not there',
      async (c: IpvsClient) => c.editService({ ...tcp4, port: 81 }),
      'ESRCH',
      'netlink on IPVS SET_SERVICE TCP 10.96.0.10:81: No such process',
    ],
    ['delete a service that is not there', async (c: IpvsClient) => c.deleteService({ ...tcp4, port: 81 }), 'ESRCH', null],
    ['get a service that is not there', async (c: IpvsClient) => c.getService({ ...tcp4, protocol: 'UDP' }), 'ESRCH', null],
    ['an unknown scheduler', async (c: IpvsClient) => c.addService({ ...tcp4, port: 81, scheduler: 'nosuch' }), 'ENOENT', null],
    ['a scheduler this kernel lacks', async (c: IpvsClient) => c.addService({ ...tcp4, port: 81, scheduler: 'twos' }), 'ENOENT', null],
    ['editing to an unknown scheduler', async (c: IpvsClient) => c.editService({ ...tcp4, scheduler: 'nosuch' }), 'ENOENT', null],
  ])('%s: the kernel’s %s', async (_, act, code, message) => {
    const { client } = setup({ schedulers: ['rr', 'wrr', 'sh', 'mh'] });
    await client.addService(tcp4);
    const err = await act(client).catch((e: unknown) => e);
    expect(err).toMatchObject({ code, syscall: 'netlink' });
    if (message !== null) expect((err as Error).message).toBe(message);
  });

  test('IPv6 on a kernel without it: EAFNOSUPPORT', async () => {
    const { client } = setup({ noIPv6: true });
    await expect(client.addService(udp6)).rejects.toMatchObject({ code: 'EAFNOSUPPORT' });
  });

  test('no IPVS family (ip_vs not loaded): ENOENT from nlctrl, naming the family', async () => {
    const client = IpvsClient.open(new FakeNativeBinding());
    await expect(client.services()).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('generic netlink family IPVS') });
  });

  test('statistics decode from STATS64 (64-bit counters)', async () => {
    const { client, ipvs } = setup();
    await client.addService(tcp4);
    await client.addDestination(tcp4, { address: '10.244.1.5', port: 8080, weight: 1 });
    ipvs.setStats(tcp4, { conns: 5n, inpkts: 2n ** 33n, outpkts: 7n, inbytes: 1000n, outbytes: 2000n, cps: 1n });
    ipvs.setStats(tcp4, { conns: 4n, inbytes: 99n }, { address: '10.244.1.5', port: 8080 });
    expect((await client.getService(tcp4)).stats).toEqual({
      conns: 5,
      inPackets: 2 ** 33,
      outPackets: 7,
      inBytes: 1000,
      outBytes: 2000,
      cps: 1,
      inPps: 0,
      outPps: 0,
      inBps: 0,
      outBps: 0,
    });
    expect((await client.destinations(tcp4))[0]!.stats).toMatchObject({ conns: 4, inBytes: 99 });
  });
});

describe('destinations', () => {
  test('add, dump, edit, delete; a dump of a missing service is empty', async () => {
    const { client } = setup();
    await client.addService(tcp4);
    await client.addService(udp6);
    await client.addDestination(tcp4, { address: '10.244.1.5', port: 8080, weight: 1 });
    await client.addDestination(tcp4, { address: '10.244.2.6', port: 8080, weight: 3, upperThreshold: 100, lowerThreshold: 10 });
    await client.addDestination(udp6, { address: 'fd00:10:244:1::5', port: 5353, weight: 1 });
    const ds = await client.destinations(tcp4);
    expect(ds.map((d) => [d.address, d.port, d.weight, d.forward, d.upperThreshold, d.lowerThreshold, d.family]).sort()).toEqual([
      ['10.244.1.5', 8080, 1, 'masq', 0, 0, 'IPv4'],
      ['10.244.2.6', 8080, 3, 'masq', 100, 10, 'IPv4'],
    ]);
    expect((await client.destinations(udp6)).map((d) => [d.address, d.family])).toEqual([['fd00:10:244:1::5', 'IPv6']]);

    await client.editDestination(tcp4, { address: '10.244.1.5', port: 8080, weight: 0 }); // graceful: weight 0
    expect((await client.destinations(tcp4)).find((d) => d.address === '10.244.1.5')?.weight).toBe(0);
    await client.deleteDestination(tcp4, { address: '10.244.2.6', port: 8080 });
    expect((await client.destinations(tcp4)).map((d) => d.address)).toEqual(['10.244.1.5']);
    expect(await client.destinations({ ...tcp4, port: 81 })).toEqual([]);
    await client.deleteService(tcp4);
    expect(await client.destinations(tcp4)).toEqual([]);
  });

  test.each([
    ['a destination that is there', (c: IpvsClient) => c.addDestination(tcp4, { address: '10.244.1.5', port: 8080, weight: 1 }), 'EEXIST'],
    [
      'a destination of a missing service',
      (c: IpvsClient) => c.addDestination({ ...tcp4, port: 81 }, { address: '10.244.1.5', port: 8080, weight: 1 }),
      'ESRCH',
    ],
    ['a multicast destination', (c: IpvsClient) => c.addDestination(tcp4, { address: '224.0.0.1', port: 8080, weight: 1 }), 'EINVAL'],
    ['a 0.0.0.0 destination', (c: IpvsClient) => c.addDestination(tcp4, { address: '0.0.0.0', port: 8080, weight: 1 }), 'EINVAL'],
    ['an IPv6 link-local destination', (c: IpvsClient) => c.addDestination(udp6, { address: 'fe80::1', port: 53, weight: 1 }), 'EINVAL'],
    ['an IPv4 destination in an IPv6 service (masq)', (c: IpvsClient) => c.addDestination(udp6, { address: '10.244.1.5', port: 53, weight: 1 }), 'EINVAL'],
    ['a weight above 2^31-1', (c: IpvsClient) => c.addDestination(tcp4, { address: '10.244.3.7', port: 8080, weight: 0x80000000 }), 'ERANGE'],
    [
      'a lower threshold above the upper',
      (c: IpvsClient) => c.addDestination(tcp4, { address: '10.244.3.7', port: 8080, weight: 1, lowerThreshold: 5, upperThreshold: 4 }),
      'ERANGE',
    ],
    ['editing a destination that is not there', (c: IpvsClient) => c.editDestination(tcp4, { address: '10.244.9.9', port: 8080, weight: 1 }), 'ENOENT'],
    ['deleting a destination that is not there', (c: IpvsClient) => c.deleteDestination(tcp4, { address: '10.244.9.9', port: 8080 }), 'ENOENT'],
  ])('%s: the kernel’s %s', async (_, act, code) => {
    const { client } = setup();
    await client.addService(tcp4);
    await client.addService(udp6);
    await client.addDestination(tcp4, { address: '10.244.1.5', port: 8080, weight: 1 });
    await expect(act(client)).rejects.toMatchObject({ code, syscall: 'netlink', message: expect.stringMatching(/^netlink on IPVS \w+_DEST /) });
  });
});

describe('batch', () => {
  test('each change has its own outcome and the rest still apply', async () => {
    const { client } = setup();
    const errs = await client.batch([
      { op: 'add-service', service: tcp4 },
      { op: 'add-destination', service: tcp4, destination: { address: '10.244.1.5', port: 8080, weight: 1 } },
      { op: 'add-service', service: tcp4 },
      { op: 'add-destination', service: tcp4, destination: { address: '10.244.2.6', port: 8080, weight: 1 } },
      { op: 'delete-destination', service: tcp4, destination: { address: '10.244.9.9', port: 8080 } },
      { op: 'edit-service', service: { ...tcp4, scheduler: 'sh', schedFlags: ['sh-port'] } },
    ]);
    expect(errs.map((e) => e?.code ?? null)).toEqual([null, null, 'EEXIST', null, 'ENOENT', null]);
    expect(errs[2]?.message).toBe('netlink on IPVS NEW_SERVICE TCP 10.96.0.10:80: File exists');
    expect((await client.destinations(tcp4)).length).toBe(2);
    expect((await client.getService(tcp4)).schedFlags).toEqual(['sh-port']);
    expect(await client.batch([])).toEqual([]);
  });
});

describe('timeouts and info', () => {
  test('defaults, set (0 leaves one unchanged), and the kernel’s EINVAL above INT_MAX/HZ', async () => {
    const { client } = setup();
    expect(await client.timeouts()).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    await client.setTimeouts({ tcp: 901, udp: 0 });
    expect(await client.timeouts()).toEqual({ tcp: 901, tcpFin: 120, udp: 300 });
    await expect(client.setTimeouts({ udp: 9_000_000 })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await client.info()).toEqual({ version: '1.2.1', connTableSize: 4096 });
  });
});

test('the fake answers a dump of services with NLM_F_MULTI messages the client decodes (no hidden state)', async () => {
  const { fake } = setup();
  const client = IpvsClient.open(fake);
  await client.addService(tcp4);
  const raw = fake.netlinkOpen(16);
  const [r] = await raw.request(encode.dumpServices(await client.familyId()));
  const [m] = parseMessages(r!.replies);
  expect(m!.flags & 0x2).toBe(0x2);
  expect(new Attrs('t', m!.payload.subarray(4)).nested(1)!.be16(4)).toBe(80);
});
