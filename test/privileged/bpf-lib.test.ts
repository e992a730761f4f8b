// The datapath library headers through the real kernel: bpf/lib/reject.h
// (TCP resets, ICMP and ICMPv6 port unreachable built in place),
// bpf/lib/sctp.h (CRC32c updated for a port change without reading the
// packet) and bpf/lib/icmp.h (ICMP errors of translated flows rewritten,
// outer and quoted packet), driven by the test programs of
// bpf/test/lib_test.bpf.c through BPF_PROG_TEST_RUN. Every expected frame
// is built from scratch by test/support/packets.ts, and every checksum of
// the output is verified by its RFC code (RFC 1071, pseudo-headers, CRC32c).

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BpfObject, loadBinding } from '../../src/native/index.ts';
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT } from '../support/bpf-harness.ts';
import {
  frame,
  ICMP,
  ICMP6,
  icmpError,
  ipBytes,
  parseFrame,
  quote,
  rejectAnswer,
  translatedIcmpError,
  TCP,
  verifyChecksums,
  type FrameSpec,
  type IcmpErrorSpec,
} from '../support/packets.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';
import { BPF_LIB_TEST_OBJECT, needs } from '../support/requirements.ts';

const skip = needs('BPF library header tests', ['root', 'bpf-lib-test-object', 'native-addon']);

/** tc's TC_ACT_UNSPEC (-1) as the kernel hands the u32 return value back. */
const TC_ACT_UNSPEC_U32 = 0xffffffff;

const CLIENT_MAC = '02:00:0a:f4:01:05';
const VETH_MAC = 'ee:ee:ee:ee:ee:ee';
const CLIENT = '10.244.1.5';
const VIP = '10.96.0.10';
const BACKEND = '10.244.2.20';
const NODE = '198.18.0.1';
const ROUTER = '198.18.0.9';
const CLIENT6 = 'fd00:10:244:1::5';
const VIP6 = 'fd00:10:96::10';
const BACKEND6 = 'fd00:10:244:2::20';
const NODE6 = 'fd00:198:18::1';
const ROUTER6 = 'fd00:198:18::9';

/** 16 bytes a line with the offset, so a byte diff names where. */
function hexLines(b: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 16) lines.push(`${i.toString(16).padStart(4, '0')}: ${Buffer.from(b.subarray(i, i + 16)).toString('hex')}`);
  return lines.join('\n');
}

/** The whole frame, byte by byte; the parsed fields first so a failure names the field. */
function expectFrame(actual: Uint8Array, expected: Uint8Array): void {
  expect(parseFrame(actual)).toEqual(parseFrame(expected));
  expect(hexLines(actual)).toBe(hexLines(expected));
}

interface Xlate {
  readonly outerSrc: string;
  readonly outerDst: string;
  readonly innerSrc: string;
  readonly innerDst: string;
  readonly innerSport: number;
  readonly innerDport: number;
}

/** struct lib_test_cfg: sctp_port, pad, icmp_xlate4 (20 bytes), icmp_xlate6 (68 bytes). */
function encodeCfg(sctpPort: number, x: Xlate | undefined): Buffer {
  const b = Buffer.alloc(92);
  b.writeUInt16BE(sctpPort, 0);
  if (x !== undefined) {
    const v6 = x.outerSrc.includes(':');
    const base = v6 ? 24 : 4;
    const w = v6 ? 16 : 4;
    [x.outerSrc, x.outerDst, x.innerSrc, x.innerDst].forEach((a, i) => {
      ipBytes(a).copy(b, base + i * w);
    });
    b.writeUInt16BE(x.innerSport, base + 4 * w);
    b.writeUInt16BE(x.innerDport, base + 4 * w + 2);
  }
  return b;
}

interface Inner {
  readonly parseRc: number;
  readonly saddr: string;
  readonly daddr: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto: number;
  readonly type: number;
  readonly code: number;
  readonly full: number;
  readonly l3Off: number;
  readonly l4Off: number;
}

/** struct lib_test_out: parse_rc, rewrite_rc, icmp_inner4 (24 bytes), icmp_inner6 (48 bytes). */
function decodeOut(b: Buffer, v6: boolean): Inner & { readonly rewriteRc: number } {
  const at = v6 ? 32 : 8;
  const w = v6 ? 16 : 4;
  const addr = (o: number): string => {
    const bytes = b.subarray(o, o + w);
    return v6 ? formatV6(bytes) : [...bytes].join('.');
  };
  const t = at + 2 * w;
  return {
    parseRc: b.readInt32LE(0),
    rewriteRc: b.readInt32LE(4),
    saddr: addr(at),
    daddr: addr(at + w),
    sport: b.readUInt16BE(t),
    dport: b.readUInt16BE(t + 2),
    proto: b[t + 4] as number,
    type: b[t + 5] as number,
    code: b[t + 6] as number,
    full: b[t + 7] as number,
    l3Off: b.readUInt32LE(t + 8),
    l4Off: b.readUInt32LE(t + 12),
  };
}

function formatV6(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return groups.join(':');
}

function fullV6(a: string): string {
  return formatV6(ipBytes(a));
}

describe.skipIf(skip)('BPF library headers through BPF_PROG_TEST_RUN', () => {
  const native = skip ? undefined : loadBinding();
  let pinRoot = '';
  let obj: BpfObject;

  beforeAll(async () => {
    pinRoot = fs.mkdtempSync('/run/sy-bpflib-');
    obj = await BpfObject.open(BPF_LIB_TEST_OBJECT, pinRoot, native);
  });

  afterAll(() => {
    obj?.close();
    while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
    if (pinRoot !== '') fs.rmSync(pinRoot, { recursive: true, force: true });
  });

  async function run(prog: string, input: Uint8Array): Promise<{ verdict: number; data: Buffer }> {
    const r = await obj.program(prog).testRun(input);
    return { verdict: r.retval >>> 0, data: r.data };
  }

  async function configure(sctpPort: number, x?: Xlate): Promise<void> {
    await obj.map('lib_test_cfg').update([[Buffer.alloc(4), encodeCfg(sctpPort, x)]]);
  }

  async function lastParse(v6: boolean): Promise<Inner & { readonly rewriteRc: number }> {
    const [v] = await obj.map('lib_test_out').lookup([Buffer.alloc(4)]);
    if (v === undefined) throw new Error('lib_test_out has no entry 0');
    return decodeOut(v, v6);
  }

  // -------------------------------------------------------------------------
  describe('reject.h', () => {
    const families = [
      { name: 'IPv4', client: CLIENT, vip: VIP },
      { name: 'IPv6', client: CLIENT6, vip: VIP6 },
    ] as const;

    describe.each(families)('$name TCP', ({ client, vip }) => {
      const v6 = client.includes(':');
      /** The reset as Linux sends it: no IP options, ID 0 and DF on IPv4, window 0. */
      const rst = (extra: Partial<FrameSpec>): Buffer =>
        frame({
          srcMac: VETH_MAC,
          dstMac: CLIENT_MAC,
          src: vip,
          dst: client,
          proto: 'TCP',
          sport: 80,
          dport: 40000,
          window: 0,
          ...(v6 ? {} : { id: 0, df: true }),
          ...extra,
        });

      test('a SYN is answered with RST|ACK, seq 0, ack = its seq + 1', async () => {
        const syn = frame({
          srcMac: CLIENT_MAC,
          dstMac: VETH_MAC,
          src: client,
          dst: vip,
          proto: 'TCP',
          sport: 40000,
          dport: 80,
          tcpFlags: TCP.SYN,
          seq: 0xfffffff0,
        });
        const r = await run('t_reject', syn);
        expect(r.verdict).toBe(TC_ACT_REDIRECT);
        expectFrame(r.data, rst({ seq: 0, ack: 0xfffffff1, tcpFlags: TCP.RST | TCP.ACK }));
        expectFrame(r.data, rejectAnswer(syn));
        expect(verifyChecksums(r.data)).toEqual({ ip: v6 ? 'n/a' : true, l4: true });
      });

      test('a SYN with data and FIN: ack counts the payload, SYN and FIN (and wraps)', async () => {
        const syn = frame({
          srcMac: CLIENT_MAC,
          dstMac: VETH_MAC,
          src: client,
          dst: vip,
          proto: 'TCP',
          sport: 40000,
          dport: 80,
          tcpFlags: TCP.SYN | TCP.FIN,
          seq: 0xfffffffe,
          payload: Buffer.from('early data'),
        });
        const r = await run('t_reject', syn);
        expect(r.verdict).toBe(TC_ACT_REDIRECT);
        expectFrame(r.data, rst({ seq: 0, ack: (0xfffffffe + 10 + 2) >>> 0, tcpFlags: TCP.RST | TCP.ACK }));
        expect(verifyChecksums(r.data).l4).toBe(true);
      });

      test('a segment with ACK (an established flow whose Service lost its endpoints): RST with seq = its ack, no ACK', async () => {
        const seg = frame({
          srcMac: CLIENT_MAC,
          dstMac: VETH_MAC,
          src: client,
          dst: vip,
          proto: 'TCP',
          sport: 40000,
          dport: 80,
          tcpFlags: TCP.ACK | TCP.PSH,
          seq: 1000,
          ack: 0xdeadbeef,
          payload: Buffer.alloc(1200, 0x61),
        });
        const r = await run('t_reject', seg);
        expect(r.verdict).toBe(TC_ACT_REDIRECT);
        expectFrame(r.data, rst({ seq: 0xdeadbeef, ack: 0, tcpFlags: TCP.RST }));
        expect(verifyChecksums(r.data).l4).toBe(true);
      });

      test('a reset is never answered', async () => {
        const seg = frame({
          srcMac: CLIENT_MAC,
          dstMac: VETH_MAC,
          src: client,
          dst: vip,
          proto: 'TCP',
          sport: 40000,
          dport: 80,
          tcpFlags: TCP.RST | TCP.ACK,
          seq: 5,
          ack: 6,
        });
        expect((await run('t_reject', seg)).verdict).toBe(TC_ACT_SHOT);
      });
    });

    test('IPv4 TCP with IP options and TCP options: the reset has neither', async () => {
      const tcpOpts = Buffer.from('020405b40402080a0000000100000000', 'hex'); // MSS, SACK ok, timestamps (16 bytes)
      const l4 = frame({ src: CLIENT, dst: VIP, proto: 'TCP', sport: 40000, dport: 80, tcpFlags: TCP.SYN, seq: 77 }).subarray(34);
      const seg = Buffer.concat([l4.subarray(0, 20), tcpOpts]);
      seg[12] = (5 + tcpOpts.length / 4) << 4;
      const syn = frame({ srcMac: CLIENT_MAC, dstMac: VETH_MAC, src: CLIENT, dst: VIP, proto: 6, ipOptions: Buffer.from('01010100', 'hex'), l4: seg });
      const r = await run('t_reject', syn);
      expect(r.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(
        r.data,
        frame({
          srcMac: VETH_MAC,
          dstMac: CLIENT_MAC,
          src: VIP,
          dst: CLIENT,
          proto: 'TCP',
          id: 0,
          df: true,
          sport: 80,
          dport: 40000,
          seq: 0,
          ack: 78,
          tcpFlags: TCP.RST | TCP.ACK,
          window: 0,
        }),
      );
    });

    const datagrams = [
      { name: 'IPv4 UDP, short', client: CLIENT, vip: VIP, proto: 'UDP', payload: 3 },
      { name: 'IPv4 UDP, long (quote cut to 548 bytes)', client: CLIENT, vip: VIP, proto: 'UDP', payload: 1400 },
      { name: 'IPv4 UDP, exactly the cap', client: CLIENT, vip: VIP, proto: 'UDP', payload: 548 - 28 },
      { name: 'IPv4 SCTP, short', client: CLIENT, vip: VIP, proto: 'SCTP', payload: 5 },
      { name: 'IPv4 SCTP, long', client: CLIENT, vip: VIP, proto: 'SCTP', payload: 1300 },
      { name: 'IPv6 UDP, short', client: CLIENT6, vip: VIP6, proto: 'UDP', payload: 1 },
      { name: 'IPv6 UDP, long (quote cut to 1232 bytes)', client: CLIENT6, vip: VIP6, proto: 'UDP', payload: 1452 },
      { name: 'IPv6 UDP, 2000 bytes', client: CLIENT6, vip: VIP6, proto: 'UDP', payload: 2000 },
      { name: 'IPv6 SCTP, short', client: CLIENT6, vip: VIP6, proto: 'SCTP', payload: 7 },
      { name: 'IPv6 SCTP, long', client: CLIENT6, vip: VIP6, proto: 'SCTP', payload: 1400 },
    ] as const;

    test.each(datagrams)('$name: ICMP port unreachable from the frontend, quoting the datagram', async ({ client, vip, proto, payload }) => {
      const v6 = client.includes(':');
      const pkt = frame({
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: client,
        dst: vip,
        proto,
        sport: 40000,
        dport: 53,
        payload: Buffer.from(Array.from({ length: payload }, (_, i) => (i * 7 + 3) & 0xff)),
      });
      const r = await run('t_reject', pkt);
      expect(r.verdict).toBe(TC_ACT_REDIRECT);
      const e: IcmpErrorSpec = v6 ? { type: ICMP6.DEST_UNREACH, code: ICMP6.PORT_UNREACH } : { type: ICMP.DEST_UNREACH, code: ICMP.PORT_UNREACH };
      const expected = frame({ ...icmpErrorSpecOf(pkt, e), ...(v6 ? {} : { tos: 0xc0, id: 0 }) });
      expectFrame(r.data, expected);
      expectFrame(r.data, rejectAnswer(pkt)); // the tooling's model of REJECT, for the datapath's fixtures
      const max = v6 ? 1232 : 548;
      expect(r.data.length).toBe(14 + (v6 ? 48 : 28) + Math.min(pkt.length - 14, max));
      const check = verifyChecksums(r.data);
      expect(check.ip).toBe(v6 ? 'n/a' : true);
      expect(check.l4).toBe(true);
      expect(check.inner?.l4).toBe(pkt.length - 14 <= max ? true : 'n/a');
    });

    test('IPv4 UDP with IP options: the quote starts at the IP header, options included', async () => {
      const pkt = frame({
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: CLIENT,
        dst: VIP,
        proto: 'UDP',
        sport: 1,
        dport: 53,
        ipOptions: Buffer.from('01010100', 'hex'),
        payload: Buffer.from('x'),
      });
      const r = await run('t_reject', pkt);
      expect(r.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(r.data, frame({ ...icmpErrorSpecOf(pkt, { type: 3, code: 3 }), tos: 0xc0, id: 0 }));
      expect(parseFrame(r.data).icmp?.inner?.ip?.options).toBe('01010100');
    });

    test.each([
      ['0.0.0.0', VIP],
      ['255.255.255.255', VIP],
      ['224.0.0.5', VIP],
      ['::', VIP6],
      ['ff02::1', VIP6],
    ])('no answer to the source %s', async (src, dst) => {
      const pkt = frame({ src, dst, proto: 'UDP', sport: 1, dport: 53 });
      expect((await run('t_reject', pkt)).verdict).toBe(TC_ACT_SHOT);
    });
  });

  // -------------------------------------------------------------------------
  describe('sctp.h', () => {
    // Payload lengths: empty, odd, around 4-byte padding, 64-byte and power-of-two edges, a full MTU, beyond 1500.
    const LENGTHS = [0, 1, 2, 3, 5, 7, 13, 16, 31, 63, 64, 100, 255, 256, 511, 777, 1024, 1400, 1452, 2001, 3000];

    describe.each([
      ['IPv4', CLIENT, VIP],
      ['IPv6', CLIENT6, VIP6],
    ])('%s', (_name, client, vip) => {
      test.each(LENGTHS)('destination port change: CRC32c equals a recompute, %i payload bytes', async (n) => {
        await configure(9999);
        const spec: FrameSpec = {
          src: client,
          dst: vip,
          proto: 'SCTP',
          sport: 40000,
          dport: 80,
          payload: Buffer.from(Array.from({ length: n }, (_, i) => (i * 13) & 0xff)),
        };
        const r = await run('t_sctp_dport', frame(spec));
        expect(r.verdict).toBe(TC_ACT_OK);
        expectFrame(r.data, frame({ ...spec, dport: 9999 }));
        expect(verifyChecksums(r.data).l4).toBe(true);
      });

      test.each([0, 1, 3, 1400, 3000])('source port change (reverse direction), %i payload bytes', async (n) => {
        await configure(80);
        const spec: FrameSpec = { src: vip, dst: client, proto: 'SCTP', sport: 8080, dport: 40000, payload: Buffer.alloc(n, 0xa5) };
        const r = await run('t_sctp_sport', frame(spec));
        expect(r.verdict).toBe(TC_ACT_OK);
        expectFrame(r.data, frame({ ...spec, sport: 80 }));
      });
    });

    test('an INIT chunk (verification tag 0) and every bit of the port flipped', async () => {
      for (const port of [0x0001, 0x8000, 0xffff, 0x5a5a]) {
        await configure(port);
        const spec: FrameSpec = { src: CLIENT, dst: VIP, proto: 'SCTP', sport: 40000, dport: 0xffff ^ port || 1, sctp: { chunk: 'INIT' } };
        const r = await run('t_sctp_dport', frame(spec));
        expect(r.verdict).toBe(TC_ACT_OK);
        expectFrame(r.data, frame({ ...spec, dport: port }));
      }
    });

    test('the same port: nothing changes', async () => {
      await configure(80);
      const f = frame({ src: CLIENT, dst: VIP, proto: 'SCTP', sport: 40000, dport: 80, payload: Buffer.from('same') });
      const r = await run('t_sctp_dport', f);
      expect(r.verdict).toBe(TC_ACT_OK);
      expect(r.data.equals(f)).toBe(true);
    });
  });

  // -------------------------------------------------------------------------
  describe('icmp.h', () => {
    /**
     * A flow client:40000 -> VIP:80 DNATed to BACKEND:8080. An error about
     * the translated packet comes back from a router (or the backend);
     * translated, it must equal the error about the packet the client
     * actually sent, built from scratch.
     */
    interface Case {
      readonly name: string;
      readonly v6: boolean;
      readonly proto: 'TCP' | 'UDP' | 'SCTP';
      readonly payload: number;
      readonly error: IcmpErrorSpec;
      readonly from: 'router' | 'backend';
      readonly quoteBytes?: number;
      readonly udpChecksum?: 'none';
    }

    const CASES: Case[] = [
      {
        name: 'v4 frag needed, TCP quoted minimally (header + 8)',
        v6: false,
        proto: 'TCP',
        payload: 1400,
        error: { type: 3, code: 4, rest: 1280 },
        from: 'router',
        quoteBytes: 28,
      },
      {
        name: 'v4 frag needed, UDP quoted in part (its checksum field included)',
        v6: false,
        proto: 'UDP',
        payload: 1400,
        error: { type: 3, code: 4, rest: 1280 },
        from: 'router',
      },
      { name: 'v4 time exceeded, UDP quoted whole', v6: false, proto: 'UDP', payload: 20, error: { type: 11, code: 0 }, from: 'router' },
      {
        name: 'v4 port unreachable from the backend, UDP without checksum',
        v6: false,
        proto: 'UDP',
        payload: 9,
        error: { type: 3, code: 3 },
        from: 'backend',
        udpChecksum: 'none',
      },
      {
        name: 'v4 host unreachable, TCP quoted whole (its checksum updated)',
        v6: false,
        proto: 'TCP',
        payload: 11,
        error: { type: 3, code: 1 },
        from: 'router',
      },
      { name: 'v4 port unreachable, SCTP', v6: false, proto: 'SCTP', payload: 40, error: { type: 3, code: 3 }, from: 'backend' },
      { name: 'v6 packet too big, UDP quoted in part', v6: true, proto: 'UDP', payload: 1452, error: { type: 2, code: 0, rest: 1280 }, from: 'router' },
      { name: 'v6 packet too big, TCP quoted in part', v6: true, proto: 'TCP', payload: 1440, error: { type: 2, code: 0, rest: 1280 }, from: 'router' },
      { name: 'v6 time exceeded, TCP quoted whole', v6: true, proto: 'TCP', payload: 3, error: { type: 3, code: 0 }, from: 'router' },
      { name: 'v6 port unreachable from the backend, UDP whole', v6: true, proto: 'UDP', payload: 33, error: { type: 1, code: 4 }, from: 'backend' },
      { name: 'v6 port unreachable, SCTP', v6: true, proto: 'SCTP', payload: 17, error: { type: 1, code: 4 }, from: 'backend' },
    ];

    test.each(CASES)('reply direction, DNAT: $name', async (c) => {
      const [client, vip, backend, router] = c.v6 ? [CLIENT6, VIP6, BACKEND6, ROUTER6] : [CLIENT, VIP, BACKEND, ROUTER];
      const sent: FrameSpec = {
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: client,
        dst: vip,
        proto: c.proto,
        sport: 40000,
        dport: 80,
        tcpFlags: TCP.ACK,
        payload: Buffer.alloc(c.payload, 0x42),
        ...(c.udpChecksum ? { udpChecksum: c.udpChecksum } : {}),
      };
      const translated: FrameSpec = { ...sent, dst: backend, dport: 8080 };
      const errFrom = c.from === 'router' ? router : backend;
      const spec = { ...c.error, from: errFrom, to: client, ...(c.quoteBytes ? { quoteBytes: c.quoteBytes } : {}) };
      const input = icmpError(frame(translated), spec);
      await configure(0, {
        outerSrc: c.from === 'router' ? router : vip,
        outerDst: client,
        innerSrc: client,
        innerDst: vip,
        innerSport: 40000,
        innerDport: 80,
      });
      const r = await run('t_icmp_xlate', input);
      expect(r.verdict).toBe(TC_ACT_OK);
      const expected = translatedIcmpError(frame(sent), frame(translated), { ...spec, from: c.from === 'router' ? router : vip });
      expectFrame(r.data, expected);
      const check = verifyChecksums(r.data);
      expect(check.ip).toBe(c.v6 ? 'n/a' : true);
      expect(check.l4).toBe(true);
      expect(check.inner?.ip).toBe(c.v6 ? 'n/a' : true);
      const inner = await lastParse(c.v6);
      const innerL3 = 14 + (c.v6 ? 48 : 28);
      expect(inner).toEqual({
        parseRc: 0,
        rewriteRc: 0,
        saddr: c.v6 ? fullV6(client) : client,
        daddr: c.v6 ? fullV6(backend) : backend,
        sport: 40000,
        dport: 8080,
        proto: { TCP: 6, UDP: 17, SCTP: 132 }[c.proto],
        type: c.error.type,
        code: c.error.code,
        full: frame(translated).length - 14 <= quoteLen(c, frame(translated)) ? 1 : 0,
        l3Off: innerL3,
        l4Off: innerL3 + (c.v6 ? 40 : 20),
      });
    });

    test.each([false, true])('reply direction, masqueraded flow (outer and inner source and port too), v6=%s', async (v6) => {
      const [client, vip, backend, nat] = v6 ? [CLIENT6, VIP6, BACKEND6, NODE6] : [CLIENT, VIP, BACKEND, NODE];
      const sent: FrameSpec = { src: client, dst: vip, proto: 'UDP', sport: 40000, dport: 53, payload: Buffer.alloc(100, 1) };
      const translated: FrameSpec = { ...sent, src: nat, sport: 61000, dst: backend, dport: 5353 };
      const e: IcmpErrorSpec = v6 ? { type: 1, code: 4, from: backend, to: nat } : { type: 3, code: 3, from: backend, to: nat };
      await configure(0, { outerSrc: vip, outerDst: client, innerSrc: client, innerDst: vip, innerSport: 40000, innerDport: 53 });
      const r = await run('t_icmp_xlate', icmpError(frame(translated), e));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, icmpError(frame(sent), { ...e, from: vip, to: client }));
      expect(verifyChecksums(r.data)).toEqual({ ip: v6 ? 'n/a' : true, l4: true, inner: { ip: v6 ? 'n/a' : true, l4: true } });
    });

    test('the quoted IPv4 header carries options: ports and checksums found behind them', async () => {
      const sent: FrameSpec = {
        src: CLIENT,
        dst: VIP,
        proto: 'UDP',
        sport: 40000,
        dport: 53,
        ipOptions: Buffer.from('94040000', 'hex'),
        payload: Buffer.alloc(30, 3),
      };
      const translated: FrameSpec = { ...sent, dst: BACKEND, dport: 5353 };
      const e: IcmpErrorSpec = { type: ICMP.DEST_UNREACH, code: ICMP.FRAG_NEEDED, rest: 1400, from: ROUTER, to: CLIENT };
      await configure(0, { outerSrc: ROUTER, outerDst: CLIENT, innerSrc: CLIENT, innerDst: VIP, innerSport: 40000, innerDport: 53 });
      const r = await run('t_icmp_xlate', icmpError(frame(translated), e));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, icmpError(frame(sent), e));
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true, inner: { ip: true, l4: true } });
      expect((await lastParse(false)).l4Off).toBe(14 + 28 + 24);
    });

    test.each([false, true])('forward direction (the client reports an error about a reply): inner frontend -> backend, v6=%s', async (v6) => {
      const [client, vip, backend] = v6 ? [CLIENT6, VIP6, BACKEND6] : [CLIENT, VIP, BACKEND];
      const reply: FrameSpec = { src: vip, dst: client, proto: 'UDP', sport: 53, dport: 40000, payload: Buffer.alloc(600, 9) };
      const e: IcmpErrorSpec = v6 ? { type: 1, code: 4, from: client, to: vip } : { type: 3, code: 3, from: client, to: vip };
      await configure(0, { outerSrc: client, outerDst: backend, innerSrc: backend, innerDst: client, innerSport: 5353, innerDport: 40000 });
      const r = await run('t_icmp_xlate', icmpError(frame(reply), e));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, icmpError(frame({ ...reply, src: backend, sport: 5353 }), { ...e, to: backend }));
      expect(verifyChecksums(r.data).l4).toBe(true);
    });

    test.each([
      ['an echo request', frame({ src: ROUTER, dst: CLIENT, proto: 'ICMP', icmp: { type: 8, code: 0, rest: 1 } })],
      ['an ICMPv6 echo request', frame({ src: ROUTER6, dst: CLIENT6, proto: 'ICMPv6', icmp: { type: 128, code: 0, rest: 1 } })],
      [
        'an error quoting an ICMP packet',
        icmpError(frame({ src: CLIENT, dst: VIP, proto: 'ICMP', icmp: { type: 8, code: 0 } }), { type: 3, code: 1, from: ROUTER }),
      ],
      [
        'an error quoting a later fragment',
        icmpError(frame({ src: CLIENT, dst: BACKEND, proto: 17, fragOffset: 8, l4: Buffer.alloc(16) }), { type: 11, code: 1, from: ROUTER }),
      ],
      [
        'an error whose quote ends before the ports',
        icmpError(frame({ src: CLIENT, dst: BACKEND, proto: 'UDP', sport: 1, dport: 2 }), { type: 3, code: 4, from: ROUTER, quoteBytes: 22 }),
      ],
      [
        'a parameter problem (not translated)',
        icmpError(frame({ src: CLIENT6, dst: BACKEND6, proto: 'UDP', sport: 1, dport: 2 }), { type: 4, code: 0, from: ROUTER6 }),
      ],
    ])('%s is not parsed as a translatable error, and left alone', async (_name, input) => {
      await configure(0, { outerSrc: NODE, outerDst: NODE, innerSrc: NODE, innerDst: NODE, innerSport: 1, innerDport: 1 });
      const r = await run('t_icmp_xlate', input);
      expect(r.verdict).toBe(TC_ACT_UNSPEC_U32);
      expect(r.data.equals(input)).toBe(true);
    });
  });
});

/** ICMP(v6) error spec about `original`, with quoteBytes as icmpErrorSpec defaults. */
function icmpErrorSpecOf(original: Buffer, e: IcmpErrorSpec): FrameSpec {
  const v6 = parseFrame(original).ip6 !== undefined;
  const p = parseFrame(original);
  const ip = p.ip ?? p.ip6;
  if (ip === undefined) throw new Error('not IP');
  return {
    srcMac: p.eth.dst,
    dstMac: p.eth.src,
    src: ip.dst,
    dst: ip.src,
    proto: v6 ? 'ICMPv6' : 'ICMP',
    icmp: { type: e.type, code: e.code, rest: e.rest ?? 0 },
    payload: quote(original, e.quoteBytes ?? (v6 ? 1232 : 548)),
  };
}

function quoteLen(c: { v6: boolean; quoteBytes?: number }, f: Buffer): number {
  return Math.min(f.length - 14, c.quoteBytes ?? (c.v6 ? 1232 : 548));
}

// ---------------------------------------------------------------------------
// reject.h on live traffic: t_reject attached (tc ingress, direct action) to
// the node side of a veth pair between two namespaces this test creates; a
// client socket in the other namespace must see the answers as the kernel
// reports them: ECONNREFUSED for a TCP connect (the reset) and for a
// connected UDP socket (the ICMP / ICMPv6 port unreachable). This goes
// through the whole receive path of the client's stack, whose packets leave
// with offloaded checksums (CHECKSUM_PARTIAL) as a pod's do.

const liveSkip = needs('REJECT on live traffic', ['root', 'ip', 'bpftool', 'bpf-lib-test-object']);

describe.skipIf(liveSkip)('reject.h on live traffic through a veth pair', () => {
  const tag = `${process.pid}`;
  const nodeNs = `sylib-n-${tag}`;
  const clientNs = `sylib-c-${tag}`;
  let pins = '';

  function sh(cmd: string, args: readonly string[]): string {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  beforeAll(() => {
    pins = fs.mkdtempSync('/run/sy-bpflib-live-');
    sh('mount', ['-t', 'bpf', 'bpf', pins]);
    sh('bpftool', ['prog', 'loadall', BPF_LIB_TEST_OBJECT, `${pins}/progs`, 'type', 'classifier']);
    sh('ip', ['netns', 'add', nodeNs]);
    sh('ip', ['netns', 'add', clientNs]);
    const steps: string[][] = [
      ['-n', nodeNs, 'link', 'add', 'vn', 'type', 'veth', 'peer', 'name', 'vc', 'netns', clientNs],
      ['-n', nodeNs, 'addr', 'add', '10.244.1.1/24', 'dev', 'vn'],
      ['-n', nodeNs, 'addr', 'add', 'fd00:10:244:1::1/64', 'dev', 'vn', 'nodad'],
      ['-n', nodeNs, 'link', 'set', 'vn', 'up'],
      ['-n', nodeNs, 'link', 'set', 'lo', 'up'],
      ['-n', clientNs, 'addr', 'add', `${CLIENT}/24`, 'dev', 'vc'],
      ['-n', clientNs, 'addr', 'add', `${CLIENT6}/64`, 'dev', 'vc', 'nodad'],
      ['-n', clientNs, 'link', 'set', 'vc', 'up'],
      ['-n', clientNs, 'link', 'set', 'lo', 'up'],
      ['-n', clientNs, 'route', 'add', '10.96.0.0/12', 'via', '10.244.1.1'],
      ['-n', clientNs, '-6', 'route', 'add', 'fd00:10:96::/112', 'via', 'fd00:10:244:1::1'],
    ];
    for (const s of steps) sh('ip', s);
    sh('ip', ['netns', 'exec', nodeNs, 'tc', 'qdisc', 'add', 'dev', 'vn', 'clsact']);
    sh('ip', ['netns', 'exec', nodeNs, 'tc', 'filter', 'add', 'dev', 'vn', 'ingress', 'bpf', 'direct-action', 'object-pinned', `${pins}/progs/t_reject`]);
  });

  afterAll(() => {
    for (const ns of [clientNs, nodeNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    if (pins !== '') {
      while (spawnSync('umount', [pins], { stdio: 'ignore' }).status === 0);
      fs.rmSync(pins, { recursive: true, force: true });
    }
  });

  /** Runs a node script in the client namespace; it prints one word: the outcome. */
  function inClient(script: string): string {
    return sh('ip', ['netns', 'exec', clientNs, ...NODE_CMD, '-e', script]).trim();
  }

  const TCP_CONNECT = (host: string): string => `
    const s = require('node:net').connect({ host: '${host}', port: 80 });
    s.on('connect', () => { console.log('connected'); process.exit(0); });
    s.on('error', (e) => { console.log(e.code); process.exit(0); });
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 5000);`;

  const UDP_SEND = (host: string, type: 'udp4' | 'udp6'): string => `
    const s = require('node:dgram').createSocket('${type}');
    s.on('error', (e) => { console.log(e.code); process.exit(0); });
    s.on('message', () => { console.log('message'); process.exit(0); });
    s.connect(53, '${host}', () => s.send('switchyard'));
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 5000);`;

  test.each([
    ['IPv4', VIP],
    ['IPv6', VIP6],
  ])('%s: a TCP connect to the frontend is refused at once (the reset)', (_name, host) => {
    expect(inClient(TCP_CONNECT(host))).toBe('ECONNREFUSED');
  });

  test.each([
    ['IPv4', VIP, 'udp4'],
    ['IPv6', VIP6, 'udp6'],
  ] as const)('%s: a connected UDP socket gets ECONNREFUSED (the port unreachable)', (_name, host, type) => {
    expect(inClient(UDP_SEND(host, type))).toBe('ECONNREFUSED');
  });
});
