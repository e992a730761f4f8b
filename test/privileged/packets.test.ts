// Packet fixtures for the tc program: the real bpf/build/switchyard.bpf.o,
// Services programmed through compile -> diff -> apply, each frame run
// through BPF_PROG_TEST_RUN (test/support/bpf-harness.ts). Every fixture
// states the verdict and the whole output frame, built here from a
// description (test/support/packets.ts, checksums computed from scratch),
// and checks the output's checksums with the test's own RFC 1071 code.
// The node is 198.18.0.1; the client is the pod 10.244.1.5 behind the veth
// the program sits on.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { clusterIP, PacketHarness, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, type Conntrack } from '../support/bpf-harness.ts';
import {
  firstFragment,
  frame,
  internetChecksum,
  IPPROTO_GRE,
  IPPROTO_UDP,
  ipv4,
  parseFrame,
  pseudoHeader,
  swapMacs,
  TCP,
  truncate,
  verifyChecksums,
  type FrameSpec,
} from '../support/packets.ts';
import { needs } from '../support/requirements.ts';
import { SY_CT_F_HAIRPIN, SY_CT_F_SNAT } from '../../src/dataplane/bpf/layout-v1.ts';

const skip = needs('packet fixtures', ['root', 'bpf-object', 'native-addon']);

const NODE = '198.18.0.1';
const CLIENT = '10.244.1.5';
const CLIENT_MAC = '02:00:0a:f4:01:05';
const VETH_MAC = 'ee:ee:ee:ee:ee:ee'; // host side of the client's veth
const BACKEND = '10.244.1.20';
const BACKEND_MAC = '02:00:0a:f4:01:14';
const POOL = ['10.244.1.21', '10.244.1.22', '10.244.2.23'];

const WEB_VIP = '10.96.0.10'; // TCP 80 -> BACKEND:8080, UDP 53 -> BACKEND:5353
const POOL_VIP = '10.96.0.11'; // TCP 80 -> POOL:8080, UDP 53 -> POOL:5353
const SELF_VIP = '10.96.0.12'; // TCP 80 -> CLIENT:8080, UDP 53 -> CLIENT:5353: hairpin
const EMPTY_VIP = '10.96.0.13'; // TCP 80, no endpoints

const SERVICES = [
  clusterIP({ name: 'web', clusterIP: WEB_VIP, port: 80, protocol: 'TCP', endpoints: [[BACKEND, 8080]] }),
  clusterIP({ name: 'web', clusterIP: WEB_VIP, port: 53, protocol: 'UDP', endpoints: [[BACKEND, 5353]] }),
  clusterIP({ name: 'pool', clusterIP: POOL_VIP, port: 80, protocol: 'TCP', endpoints: POOL.map((ip) => [ip, 8080] as const) }),
  clusterIP({ name: 'pool', clusterIP: POOL_VIP, port: 53, protocol: 'UDP', endpoints: POOL.map((ip) => [ip, 5353] as const) }),
  clusterIP({ name: 'self', clusterIP: SELF_VIP, port: 80, protocol: 'TCP', endpoints: [[CLIENT, 8080]] }),
  clusterIP({ name: 'self', clusterIP: SELF_VIP, port: 53, protocol: 'UDP', endpoints: [[CLIENT, 5353]] }),
  clusterIP({ name: 'empty', clusterIP: EMPTY_VIP, port: 80, protocol: 'TCP', endpoints: [] }),
];

/** Service port and target port per protocol (the same for every Service above). */
const PORTS = { TCP: { port: 80, target: 8080 }, UDP: { port: 53, target: 5353 } } as const;
type Proto = keyof typeof PORTS;

const PAYLOAD = Buffer.from('switchyard packet fixture payload\n');

/** A first packet from the client pod: a SYN for TCP, a datagram for UDP. */
function fromClient(proto: Proto, vip: string, sport = 40000, extra: Partial<FrameSpec> = {}): FrameSpec {
  return { srcMac: CLIENT_MAC, dstMac: VETH_MAC, src: CLIENT, dst: vip, proto, sport, dport: PORTS[proto].port, tcpFlags: TCP.SYN, payload: PAYLOAD, ...extra };
}

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

/** Which of the candidate frames the output is (exactly one must match). */
function whichOf(actual: Uint8Array, candidates: readonly Buffer[]): number {
  const i = candidates.findIndex((c) => c.equals(actual));
  if (i < 0) expectFrame(actual, candidates[0] as Buffer); // fails, showing the difference from the first
  return i;
}

/** Conntrack without the creation times (checked separately to be set). */
function timeless(c: Conntrack): unknown {
  for (const e of [...c.ct, ...c.rnat]) expect(e.value.lastSeenNs).toBeGreaterThan(0n);
  return {
    ct: c.ct.map((e) => ({ key: e.key, value: { ...e.value, lastSeenNs: undefined } })),
    rnat: c.rnat.map((e) => ({ key: e.key, value: { ...e.value, lastSeenNs: undefined } })),
  };
}

describe.skipIf(skip)('packet fixtures: sy_ingress through BPF_PROG_TEST_RUN', () => {
  let h: PacketHarness;

  beforeAll(async () => {
    h = await PacketHarness.open({ nodeAddress: NODE });
    expect(await h.program(SERVICES)).toEqual([]);
  });

  afterAll(() => h?.close());

  beforeEach(async () => {
    await h.flushConntrack();
  });

  /** Runs a frame the program must leave alone: TC_ACT_OK, every byte as it was, no flow recorded. */
  async function expectUntouched(input: Buffer): Promise<void> {
    const r = await h.run(input);
    expect(r.verdict).toBe(TC_ACT_OK);
    expectFrame(r.data, input);
    expect(r.ct).toEqual([]);
    expect(r.rnat).toEqual([]);
  }

  describe.each(['TCP', 'UDP'] as const)('%s', (proto) => {
    const { port, target } = PORTS[proto];

    test('DNAT to the ClusterIP: destination becomes the backend, checksums valid, both directions tracked', async () => {
      const pkt = fromClient(proto, WEB_VIP);
      const r = await h.run(frame(pkt));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, frame({ ...pkt, dst: BACKEND, dport: target }));
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true });
      expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
      expect(timeless(r)).toEqual({
        ct: [
          {
            key: { saddr: CLIENT, daddr: WEB_VIP, sport: 40000, dport: port, proto },
            value: { backendId: h.backendId(BACKEND, target, proto), backendAddr: BACKEND, backendPort: target, natAddr: '0.0.0.0', natPort: 0, flags: 0 },
          },
        ],
        rnat: [
          {
            key: { saddr: BACKEND, daddr: CLIENT, sport: target, dport: 40000, proto },
            value: { frontAddr: WEB_VIP, frontPort: port, clientAddr: CLIENT, clientPort: 40000, flags: 0 },
          },
        ],
      });
    });

    test('later packets of a flow go to the backend its first packet chose', async () => {
      const first = fromClient(proto, POOL_VIP, 40100);
      const candidates = POOL.map((ip) => frame({ ...first, dst: ip, dport: target }));
      const r = await h.run(frame(first));
      expect(r.verdict).toBe(TC_ACT_OK);
      const chosen = whichOf(r.data, candidates);
      expect(chosen).toBeGreaterThanOrEqual(0);
      const backend = POOL[chosen] as string;
      for (let i = 1; i <= 12; i++) {
        const later: FrameSpec = { ...first, tcpFlags: TCP.ACK | TCP.PSH, seq: 0x01020305 + i * PAYLOAD.length, ack: 0x0a0b0c0d, id: 0x1234 + i };
        const next = await h.run(frame(later));
        expect(next.verdict).toBe(TC_ACT_OK);
        expectFrame(next.data, frame({ ...later, dst: backend, dport: target }));
        expect(verifyChecksums(next.data)).toEqual({ ip: true, l4: true });
        expect(next.counted).toEqual({ SVC_HIT: 1n });
      }
      expect((await h.conntrack()).ct.map((e) => e.value.backendAddr)).toEqual([backend]);
    });

    test('new flows are spread over every backend', async () => {
      // 60 flows over 3 backends: all land on fewer than 3 with probability 3 * (2/3)^60 < 1e-10.
      const seen = new Set<string>();
      for (let sport = 41000; sport < 41060; sport++) {
        const pkt = fromClient(proto, POOL_VIP, sport);
        const r = await h.run(frame(pkt));
        seen.add(
          POOL[
            whichOf(
              r.data,
              POOL.map((ip) => frame({ ...pkt, dst: ip, dport: target })),
            )
          ] as string,
        );
      }
      expect([...seen].sort()).toEqual([...POOL].sort());
    });

    test('reverse NAT: a reply from the backend comes from ClusterIP:port', async () => {
      await h.run(frame(fromClient(proto, WEB_VIP)));
      const reply: FrameSpec = {
        srcMac: BACKEND_MAC,
        dstMac: VETH_MAC,
        src: BACKEND,
        dst: CLIENT,
        proto,
        sport: target,
        dport: 40000,
        tcpFlags: TCP.SYN | TCP.ACK,
        seq: 0x77665544,
        ack: 0x01020305,
        payload: Buffer.from('reply'),
      };
      const r = await h.run(frame(reply));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, frame({ ...reply, src: WEB_VIP, sport: port }));
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true });
      expect(r.counted).toEqual({ RNAT: 1n });
    });

    test('a reply with no tracked flow is left alone', async () => {
      await expectUntouched(frame({ srcMac: BACKEND_MAC, dstMac: VETH_MAC, src: BACKEND, dst: CLIENT, proto, sport: target, dport: 40000, tcpFlags: TCP.ACK }));
    });

    test('hairpin: a pod reaching itself is masqueraded to the node, DNATed, and bounced back out (redirect)', async () => {
      const pkt = fromClient(proto, SELF_VIP, 40200);
      const r = await h.run(frame(pkt));
      expect(r.verdict).toBe(TC_ACT_REDIRECT);
      // The masquerade port is the client's own when that reply tuple is free.
      expectFrame(r.data, swapMacs(frame({ ...pkt, src: NODE, sport: 40200, dst: CLIENT, dport: target })));
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true });
      expect(timeless(r)).toEqual({
        ct: [
          {
            key: { saddr: CLIENT, daddr: SELF_VIP, sport: 40200, dport: port, proto },
            value: {
              backendId: h.backendId(CLIENT, target, proto),
              backendAddr: CLIENT,
              backendPort: target,
              natAddr: NODE,
              natPort: 40200,
              flags: SY_CT_F_SNAT | SY_CT_F_HAIRPIN,
            },
          },
        ],
        rnat: [
          {
            key: { saddr: CLIENT, daddr: NODE, sport: target, dport: 40200, proto },
            value: { frontAddr: SELF_VIP, frontPort: port, clientAddr: CLIENT, clientPort: 40200, flags: SY_CT_F_SNAT | SY_CT_F_HAIRPIN },
          },
        ],
      });

      // The pod answers the node address; the reply is turned back into Service -> client and bounced again.
      const reply: FrameSpec = {
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: CLIENT,
        dst: NODE,
        proto,
        sport: target,
        dport: 40200,
        tcpFlags: TCP.SYN | TCP.ACK,
      };
      const back = await h.run(frame(reply));
      expect(back.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(back.data, swapMacs(frame({ ...reply, src: SELF_VIP, sport: port, dst: CLIENT, dport: 40200 })));
      expect(verifyChecksums(back.data)).toEqual({ ip: true, l4: true });
      expect(back.counted).toEqual({ RNAT: 1n });
    });

    test('IPv4 options (ihl 6 and 15): translated after the options, which are kept', async () => {
      const routerAlert = Buffer.from([0x94, 0x04, 0x00, 0x00]);
      const longest = Buffer.concat([Buffer.alloc(39, 0x01), Buffer.from([0x00])]); // 39 NOPs, EOL: 40 bytes
      for (const [i, ipOptions] of [routerAlert, longest].entries()) {
        const pkt = fromClient(proto, WEB_VIP, 40300 + i, { ipOptions });
        const r = await h.run(frame(pkt));
        expect(r.verdict).toBe(TC_ACT_OK);
        expectFrame(r.data, frame({ ...pkt, dst: BACKEND, dport: target }));
        expect(parseFrame(r.data).ip?.ihl).toBe(5 + ipOptions.length / 4);
        expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true });
      }
    });

    test('a first fragment (MF, offset 0) is translated; its L4 checksum stays that of the whole datagram', async () => {
      const pkt = fromClient(proto, WEB_VIP, 40400, { payload: Buffer.alloc(400, 0xab) });
      const input = firstFragment(frame(pkt), 48);
      const r = await h.run(input);
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, firstFragment(frame({ ...pkt, dst: BACKEND, dport: target }), 48));
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: 'n/a' });
    });

    test('a non-first fragment is left alone, even when its first bytes look like the Service ports', async () => {
      const looksLikePorts = Buffer.alloc(16);
      looksLikePorts.writeUInt16BE(40000, 0);
      looksLikePorts.writeUInt16BE(port, 2);
      await expectUntouched(frame({ ...fromClient(proto, WEB_VIP), fragOffset: 6, l4: looksLikePorts, payload: undefined }));
      await expectUntouched(frame({ ...fromClient(proto, WEB_VIP), fragOffset: 6, mf: true, l4: looksLikePorts, payload: undefined }));
    });
  });

  describe('the backend of an open flow is removed', () => {
    afterEach(async () => {
      expect(await h.program(SERVICES)).toEqual([]);
    });

    async function openFlowThenRemoveItsBackend(proto: Proto, sport: number): Promise<{ first: FrameSpec; gone: string; left: string[] }> {
      const first = fromClient(proto, POOL_VIP, sport);
      const r = await h.run(frame(first));
      const gone = POOL[
        whichOf(
          r.data,
          POOL.map((ip) => frame({ ...first, dst: ip, dport: PORTS[proto].target })),
        )
      ] as string;
      const left = POOL.filter((ip) => ip !== gone);
      const others = SERVICES.filter((sp) => !(sp.name === 'pool' && sp.protocol === proto));
      const pool = clusterIP({
        name: 'pool',
        clusterIP: POOL_VIP,
        port: PORTS[proto].port,
        protocol: proto,
        endpoints: left.map((ip) => [ip, PORTS[proto].target] as const),
      });
      expect(await h.program([...others, pool])).toEqual([]);
      return { first, gone, left };
    }

    test('TCP: an established connection keeps its backend (kube-proxy leaves it to time out)', async () => {
      const { first, gone } = await openFlowThenRemoveItsBackend('TCP', 40700);
      const ack: FrameSpec = { ...first, tcpFlags: TCP.ACK, seq: 0x01020305 };
      const r = await h.run(frame(ack));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, frame({ ...ack, dst: gone, dport: 8080 }));
    });

    test('UDP: the flow moves to a live backend at once and stays there', async () => {
      const { first, gone, left } = await openFlowThenRemoveItsBackend('UDP', 40800);
      expect(left.length).toBe(POOL.length - 1);
      const r = await h.run(frame(first));
      expect(r.verdict).toBe(TC_ACT_OK);
      const moved = left[
        whichOf(
          r.data,
          left.map((ip) => frame({ ...first, dst: ip, dport: 5353 })),
        )
      ] as string;
      expect(moved).not.toBe(gone);
      expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
      for (let i = 0; i < 5; i++) expectFrame((await h.run(frame(first))).data, frame({ ...first, dst: moved, dport: 5353 }));
      expect(r.ct.map((e) => e.value.backendAddr)).toEqual([moved]);
    });
  });

  describe('UDP checksums', () => {
    test('a datagram with checksum 0 (none) keeps 0 after DNAT and after reverse NAT', async () => {
      const pkt = fromClient('UDP', WEB_VIP, 40500, { udpChecksum: 'none' });
      const r = await h.run(frame(pkt));
      expect(r.verdict).toBe(TC_ACT_OK);
      expectFrame(r.data, frame({ ...pkt, dst: BACKEND, dport: 5353 }));
      expect(parseFrame(r.data).udp?.checksum).toBe('0x0000');
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: 'none' });

      const reply: FrameSpec = {
        srcMac: BACKEND_MAC,
        dstMac: VETH_MAC,
        src: BACKEND,
        dst: CLIENT,
        proto: 'UDP',
        sport: 5353,
        dport: 40500,
        udpChecksum: 'none',
      };
      const back = await h.run(frame(reply));
      expectFrame(back.data, frame({ ...reply, src: WEB_VIP, sport: 53 }));
      expect(parseFrame(back.data).udp?.checksum).toBe('0x0000');
    });

    test('a translated datagram whose checksum computes to 0 carries 0xffff (RFC 768), not 0', async () => {
      // Two payload bytes chosen so that the translated datagram's sum is 0xffff.
      const translated: FrameSpec = { ...fromClient('UDP', WEB_VIP, 40600), dst: BACKEND, dport: 5353, payload: Buffer.alloc(2) };
      const seg = Buffer.from(frame(translated).subarray(34));
      seg.writeUInt16BE(0, 6);
      const fill = internetChecksum(pseudoHeader(ipv4(CLIENT), ipv4(BACKEND), IPPROTO_UDP, seg.length), seg);
      const payload = Buffer.from([fill >> 8, fill & 0xff]);
      const pkt = fromClient('UDP', WEB_VIP, 40600, { payload });
      const r = await h.run(frame(pkt));
      const expected = frame({ ...pkt, dst: BACKEND, dport: 5353 });
      expect(parseFrame(expected).udp?.checksum).toBe('0xffff');
      expectFrame(r.data, expected);
      expect(verifyChecksums(r.data)).toEqual({ ip: true, l4: true });
    });
  });

  describe('truncated and malformed frames', () => {
    const syn = frame(fromClient('TCP', WEB_VIP));
    const udp = frame(fromClient('UDP', WEB_VIP));

    // BPF_PROG_TEST_RUN on 6.18 refuses an IPv4 frame (EtherType 0x0800)
    // shorter than Ethernet + 20 bytes with EINVAL before the program runs
    // (any other EtherType runs from 14 bytes: see the next fixture); the 5.x
    // kernels had no such check and run the program, which must leave it alone.
    test('Ethernet header only, or IPv4 header cut short: refused by the kernel, or left alone', async () => {
      for (const length of [14, 14 + 10, 14 + 19]) {
        const input = truncate(syn, length);
        let r: Awaited<ReturnType<PacketHarness['run']>>;
        try {
          r = await h.run(input);
        } catch (e) {
          expect(e).toMatchObject({ code: 'EINVAL', syscall: 'bpf_prog_test_run_opts' });
          continue;
        }
        expect(r.verdict).toBe(TC_ACT_OK);
        expectFrame(r.data, input);
        expect(r.ct).toEqual([]);
      }
    });

    test('Ethernet header only, not IPv4: left alone', async () => {
      await expectUntouched(truncate(frame({ ...fromClient('TCP', WEB_VIP), etherType: 0x88b5 }), 14));
    });

    test('IPv4 header complete, nothing after it: left alone', async () => {
      await expectUntouched(truncate(syn, 14 + 20));
    });

    test('TCP header cut before the flags (ports only): left alone', async () => {
      await expectUntouched(truncate(syn, 14 + 20 + 4));
      await expectUntouched(truncate(syn, 14 + 20 + 13));
    });

    test('UDP header cut after the ports: left alone', async () => {
      await expectUntouched(truncate(udp, 14 + 20 + 2));
    });

    test('TCP header cut between the flags and the checksum: dropped, after the flow was recorded', async () => {
      // The program parses ports and flags, picks a backend and records the
      // flow, then cannot reach the checksum field: bpf_l4_csum_replace
      // fails and the packet is dropped. The entries stay (LRU maps).
      const r = await h.run(truncate(syn, 14 + 20 + 16));
      expect(r.verdict).toBe(TC_ACT_SHOT);
      expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
      expect(r.ct.length).toBe(1);
    });

    test('UDP header cut before the checksum: dropped, after the flow was recorded', async () => {
      const r = await h.run(truncate(udp, 14 + 20 + 6));
      expect(r.verdict).toBe(TC_ACT_SHOT);
      expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
    });

    test('ihl pointing past the end of the frame: left alone', async () => {
      const f = frame(fromClient('TCP', WEB_VIP, 40000, { payload: Buffer.alloc(0) }));
      f[14] = 0x4f; // ihl 15: the TCP header would start at 14 + 60, past the 54-byte frame
      await expectUntouched(f);
    });

    test('ihl below 5: left alone', async () => {
      const f = frame(fromClient('TCP', WEB_VIP));
      f[14] = 0x44;
      await expectUntouched(f);
    });

    test('not IPv4 (ARP EtherType): left alone', async () => {
      await expectUntouched(frame({ ...fromClient('TCP', WEB_VIP), etherType: 0x0806 }));
    });

    test('fewer than 14 bytes: the kernel refuses the run (EINVAL), the program never sees it', async () => {
      await expect(h.run(truncate(frame({ ...fromClient('TCP', WEB_VIP), etherType: 0x88b5 }), 13))).rejects.toMatchObject({
        code: 'EINVAL',
        syscall: 'bpf_prog_test_run_opts',
      });
    });
  });

  describe('traffic that is not for a Service', () => {
    test('an unknown protocol (GRE) to a ClusterIP: left alone', async () => {
      await expectUntouched(
        frame({ srcMac: CLIENT_MAC, dstMac: VETH_MAC, src: CLIENT, dst: WEB_VIP, proto: IPPROTO_GRE, l4: Buffer.from('00000800', 'hex'), payload: PAYLOAD }),
      );
    });

    test('a non-Service address, a port the ClusterIP does not serve, the other protocol: left alone', async () => {
      await expectUntouched(frame(fromClient('TCP', '10.96.0.99')));
      await expectUntouched(frame(fromClient('TCP', WEB_VIP, 40000, { dport: 81 })));
      await expectUntouched(frame(fromClient('UDP', WEB_VIP, 40000, { dport: 80 })));
      await expectUntouched(frame(fromClient('TCP', NODE)));
    });
  });

  test('a Service with no backends: dropped (TC_ACT_SHOT) and counted, no flow recorded', async () => {
    const r = await h.run(frame(fromClient('TCP', EMPTY_VIP)));
    expect(r.verdict).toBe(TC_ACT_SHOT);
    expect(r.counted).toEqual({ SVC_HIT: 1n, NO_BACKEND: 1n });
    expect(r.ct).toEqual([]);
    expect(r.rnat).toEqual([]);
  });
});
