// Packet fixtures for datapath v2: the real bpf/build/switchyard.bpf.o, map
// entries written with the layout v2 codecs (test/support/bpf-harness.ts),
// each frame run through BPF_PROG_TEST_RUN on one of the four programs.
// Every fixture states the verdict and the whole output frame, built here
// from a description (test/support/packets.ts, checksums computed from
// scratch), the connection tracking it leaves and the counters it moves.
// Everything runs for IPv4 and IPv6 alike (FAMILIES). Fixtures whose
// verdict depends on bpf_fib_lookup (masqueraded flows are redirected) run
// in a throwaway network namespace with routes and neighbours.

import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { type CtEntry, PacketHarness, type ProgramName, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, trafficDelta } from '../support/bpf-harness.ts';
import { firstFragment, frame, IPPROTO_GRE, ICMP, ICMP6, icmpError, parseFrame, TCP, truncate, verifyChecksums, type FrameSpec } from '../support/packets.ts';
import { needs } from '../support/requirements.ts';
import {
  SY_ACT_DROP,
  SY_CFG_DETECT_CIDR,
  SY_CFG_KERNEL_HANDOVER,
  SY_CFG_LAYOUT_UPGRADE,
  SY_CT_DIR_FWD,
  SY_CT_DIR_REV,
  SY_CT_F_EXT,
  SY_CT_F_HAIRPIN,
  SY_CT_F_KERNEL,
  SY_CT_F_SNAT,
  SY_SCOPE_EXTERNAL,
  SY_SCOPE_INTERNAL,
  SY_SVC_F_EXT_SCOPE,
  SY_SVC_F_MASQ_EXT,
  SY_SVC_F_SRC_RANGES,
  type CtKey,
  type CtValue,
  ZERO_TRAFFIC,
} from '../../src/dataplane/bpf/layout.ts';

const skip = needs('packet fixture', ['root', 'bpf-object', 'native-addon', 'ip']);

const SY_TCP_SYN_SENT = 1;
const SY_TCP_ESTABLISHED = 2;
const SY_TCP_CLOSING = 3;
const SY_TCP_CLOSED = 4;

const SNAT_MIN = 61000;
const SNAT_MAX = 65535;

const CLIENT_MAC = '02:00:0a:f4:01:05';
const VETH_MAC = 'ee:ee:ee:ee:ee:ee'; // host side of a pod's veth
const BACKEND_MAC = '02:00:0a:f4:01:14';
const NODE_MAC = '02:00:c6:12:00:01';
const EXT_MAC = '02:00:c6:12:00:64';
const PEER_MAC = '02:00:c6:12:00:02'; // the other node, where the pod routes point

/** Every address a fixture uses, per family. */
interface Family {
  readonly name: 'IPv4' | 'IPv6';
  /** svc ids and backend ids of this family start here (the maps are per family; distinct ids keep failures readable). */
  readonly base: number;
  readonly node: string;
  readonly peer: string;
  readonly ext: string;
  readonly extOutside: string;
  readonly extRange: string;
  readonly client: string;
  readonly backend: string;
  readonly pool: readonly string[];
  readonly vip: string;
  readonly poolVip: string;
  readonly selfVip: string;
  readonly emptyVip: string;
  readonly lb: string;
  readonly elsewhere: string;
  readonly any: string;
  readonly podNet: string;
}

const FAMILIES: readonly Family[] = [
  {
    name: 'IPv4',
    base: 0,
    node: '198.18.0.1',
    peer: '198.18.0.2',
    ext: '198.18.0.100',
    extOutside: '198.18.0.200',
    extRange: '198.18.0.96/28',
    client: '10.244.1.5',
    backend: '10.244.1.20',
    pool: ['10.244.1.21', '10.244.1.22', '10.244.2.23'],
    vip: '10.96.0.10',
    poolVip: '10.96.0.11',
    selfVip: '10.96.0.12',
    emptyVip: '10.96.0.13',
    lb: '198.18.1.10',
    elsewhere: '198.18.5.5',
    any: '0.0.0.0',
    podNet: '10.244.0.0/16',
  },
  {
    name: 'IPv6',
    base: 1000,
    node: 'fd00:198:18::1',
    peer: 'fd00:198:18::2',
    ext: 'fd00:198:18::100',
    extOutside: 'fd00:198:18::200',
    extRange: 'fd00:198:18::100/120',
    client: 'fd00:10:244:1::5',
    backend: 'fd00:10:244:1::20',
    pool: ['fd00:10:244:1::21', 'fd00:10:244:1::22', 'fd00:10:244:2::23'],
    vip: 'fd00:10:96::10',
    poolVip: 'fd00:10:96::11',
    selfVip: 'fd00:10:96::12',
    emptyVip: 'fd00:10:96::13',
    lb: 'fd00:198:18:1::10',
    elsewhere: 'fd00:198:18:5::5',
    any: '::',
    podNet: 'fd00:10:244::/56',
  },
];

/** Service port -> target port per protocol. */
const PORTS = { TCP: { port: 80, target: 8080 }, UDP: { port: 53, target: 5353 }, SCTP: { port: 3868, target: 3869 } } as const;
type Proto = keyof typeof PORTS;
const NODEPORT = 30080; // masquerades external clients (externalTrafficPolicy Cluster)
const NODEPORT_LOCAL = 30081; // EXT_SCOPE: external clients get only BACKEND, unmasqueraded
const NODEPORT_DROP = 30082; // EXT_SCOPE: the external master says DROP

const PAYLOAD = Buffer.from('switchyard packet fixture payload\n');

/** ids: svc ids and backend ids of one family. */
function ids(f: Family) {
  return {
    web: f.base + 1,
    pool: f.base + 2,
    self: f.base + 3,
    empty: f.base + 4,
    np: f.base + 5,
    npLocal: f.base + 6,
    npDrop: f.base + 7,
    lb: f.base + 8,
    backend: (proto: Proto) => f.base + 10 + Object.keys(PORTS).indexOf(proto),
    pool0: (proto: Proto) => f.base + 20 + 10 * Object.keys(PORTS).indexOf(proto),
    self0: (proto: Proto) => f.base + 60 + Object.keys(PORTS).indexOf(proto),
  };
}

/** The frontends every fixture starts with, for one family. */
async function programFamily(h: PacketHarness, f: Family): Promise<void> {
  const id = ids(f);
  for (const proto of Object.keys(PORTS) as Proto[]) {
    const { port, target } = PORTS[proto];
    const be = { id: id.backend(proto), addr: f.backend, port: target };
    await h.frontend({ addr: f.vip, port, proto, svcId: id.web, backends: [be] });
    await h.frontend({ addr: f.poolVip, port, proto, svcId: id.pool, backends: f.pool.map((addr, i) => ({ id: id.pool0(proto) + i, addr, port: target })) });
    await h.frontend({ addr: f.selfVip, port, proto, svcId: id.self, backends: [{ id: id.self0(proto), addr: f.client, port: target }] });
    await h.frontend({ addr: f.emptyVip, port, proto, svcId: id.empty, backends: [] });
  }
  const web = { id: id.backend('TCP'), addr: f.backend, port: 8080 };
  await h.frontend({ addr: f.node, port: NODEPORT, proto: 'TCP', svcId: id.np, flags: SY_SVC_F_MASQ_EXT, backends: [web] });
  const pool = f.pool.map((addr, i) => ({ id: id.pool0('TCP') + i, addr, port: 8080 }));
  await h.frontend({ addr: f.node, port: NODEPORT_LOCAL, proto: 'TCP', svcId: id.npLocal, flags: SY_SVC_F_EXT_SCOPE, backends: pool });
  await h.frontend({ addr: f.node, port: NODEPORT_LOCAL, proto: 'TCP', svcId: id.npLocal, scope: SY_SCOPE_EXTERNAL, backends: [web] });
  await h.frontend({ addr: f.node, port: NODEPORT_DROP, proto: 'TCP', svcId: id.npDrop, flags: SY_SVC_F_EXT_SCOPE, backends: [web] });
  await h.frontend({ addr: f.node, port: NODEPORT_DROP, proto: 'TCP', svcId: id.npDrop, scope: SY_SCOPE_EXTERNAL, action: SY_ACT_DROP, backends: [] });
  await h.frontend({ addr: f.lb, port: 80, proto: 'TCP', svcId: id.lb, flags: SY_SVC_F_SRC_RANGES, backends: [web] });
  await h.sourceRanges(id.lb, [f.extRange]);
  for (const vip of [f.vip, f.poolVip, f.selfVip, f.emptyVip]) await h.vip(vip);
}

const CONFIG = {
  nodeAddr4: FAMILIES[0]?.node ?? null,
  nodeAddr6: FAMILIES[1]?.node ?? null,
  podCidr4: FAMILIES[0]?.podNet ?? null,
  podCidr6: FAMILIES[1]?.podNet ?? null,
  snatPortMin: SNAT_MIN,
  snatPortMax: SNAT_MAX,
  flags: SY_CFG_DETECT_CIDR,
};

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

/** The checksums a translated frame must have. */
function goodSums(f: Family, proto: Proto | 'ICMP'): unknown {
  return { ip: f.name === 'IPv4' ? true : 'n/a', l4: proto === 'UDP' || proto === 'TCP' || proto === 'SCTP' || proto === 'ICMP' ? true : 'n/a' };
}

type Flow = Omit<CtValue, 'createdNs' | 'lastSeenNs'>;

/** Conntrack without the times (checked to be set, and equal in both halves). */
function timeless(ct: readonly CtEntry[]): Array<{ key: CtKey; value: Flow }> {
  return ct.map((e) => {
    expect(e.value.createdNs).toBeGreaterThan(0n);
    expect(e.value.lastSeenNs).toBeGreaterThanOrEqual(e.value.createdNs);
    const { createdNs: _c, lastSeenNs: _l, ...value } = e.value;
    return { key: e.key, value };
  });
}

/** Both halves of a flow as the program must record them, in conntrack()'s order (REV keys sort before FWD keys here). */
function halves(proto: Proto, v: Flow): Array<{ key: CtKey; value: Flow }> {
  const snat = (v.flags & SY_CT_F_SNAT) !== 0;
  const fwd: CtKey = { saddr: v.clientAddr, daddr: v.frontAddr, sport: v.clientPort, dport: v.frontPort, proto, dir: SY_CT_DIR_FWD };
  const rev: CtKey = snat
    ? { saddr: v.backendAddr, daddr: v.natAddr, sport: v.backendPort, dport: v.natPort, proto, dir: SY_CT_DIR_REV }
    : { saddr: v.backendAddr, daddr: v.clientAddr, sport: v.backendPort, dport: v.clientPort, proto, dir: SY_CT_DIR_REV };
  const text = (k: CtKey): string => `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport}/${k.proto} ${k.dir === 0 ? 'fwd' : 'rev'}`;
  return [
    { key: fwd, value: v },
    { key: rev, value: v },
  ].sort((a, b) => text(a.key).localeCompare(text(b.key)));
}

describe.skipIf(skip)('packet fixtures: datapath v2 through BPF_PROG_TEST_RUN', () => {
  let h: PacketHarness;

  beforeAll(async () => {
    h = await PacketHarness.open(CONFIG);
    for (const f of FAMILIES) await programFamily(h, f);
  });

  afterAll(() => h?.close());

  beforeEach(async () => {
    await h.flushConntrack();
  });

  /** Runs a frame the program must leave alone: TC_ACT_UNSPEC, every byte as it was, no flow recorded. */
  async function expectUntouched(prog: ProgramName, input: Buffer): Promise<void> {
    const r = await h.run(prog, input);
    expect(r.verdict).toBe(TC_ACT_UNSPEC);
    expectFrame(r.data, input);
    expect(r.ct).toEqual([]);
  }

  describe.each(FAMILIES)('$name', (f) => {
    const id = ids(f);

    /** A first packet from the client pod: a SYN for TCP, a datagram for UDP, an INIT for SCTP. */
    function fromClient(proto: Proto, dst: string, sport = 40000, extra: Partial<FrameSpec> = {}): FrameSpec {
      return {
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: f.client,
        dst,
        proto,
        sport,
        dport: PORTS[proto].port,
        tcpFlags: TCP.SYN,
        payload: PAYLOAD,
        sctp: { chunk: 'DATA' },
        ...extra,
      };
    }

    /** The backend's answer to the client (not yet reverse-translated). */
    function reply(proto: Proto, sport = 40000, extra: Partial<FrameSpec> = {}): FrameSpec {
      return {
        srcMac: BACKEND_MAC,
        dstMac: VETH_MAC,
        src: f.backend,
        dst: f.client,
        proto,
        sport: PORTS[proto].target,
        dport: sport,
        tcpFlags: TCP.SYN | TCP.ACK,
        seq: 0x77665544,
        ack: 0x01020305,
        payload: Buffer.from('reply'),
        sctp: { chunk: 'DATA', vtag: 0x1234 },
        ...extra,
      };
    }

    /** The flow a pod client's first packet to WEB creates. */
    function webFlow(proto: Proto, sport = 40000, extra: Partial<Flow> = {}): Flow {
      return {
        clientAddr: f.client,
        frontAddr: f.vip,
        backendAddr: f.backend,
        natAddr: f.any,
        clientPort: sport,
        frontPort: PORTS[proto].port,
        backendPort: PORTS[proto].target,
        natPort: 0,
        backendId: id.backend(proto),
        svcId: id.web,
        flags: 0,
        tcpState: proto === 'TCP' ? SY_TCP_SYN_SENT : 0,
        finMask: 0,
        ...extra,
      };
    }

    describe.each(['TCP', 'UDP', 'SCTP'] as const)('%s', (proto) => {
      const { port, target } = PORTS[proto];

      test('DNAT at sy_from_pod: destination becomes the backend, checksums valid, both halves hold the whole flow', async () => {
        const pkt = fromClient(proto, f.vip);
        const r = await h.run('sy_from_pod', frame(pkt));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(r.data, frame({ ...pkt, dst: f.backend, dport: target }));
        expect(verifyChecksums(r.data)).toEqual(goodSums(f, proto));
        expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
        expect(timeless(r.ct)).toEqual(halves(proto, webFlow(proto)));
      });

      test('traffic counters: each packet of the flow on its frontend and backend, the connection once, the reply where it is translated', async () => {
        const be = `backend${f.name === 'IPv6' ? 6 : 4} ${id.backend(proto)}`;
        const svc = `svc ${id.web}`;
        const ipBytes = (b: Buffer): bigint => BigInt(b.length - 14); // the IP packet: the frame less its Ethernet header
        const first = frame(fromClient(proto, f.vip));
        const r1 = await h.run('sy_from_pod', first);
        const opened = { packets: 1n, bytes: ipBytes(first), replyPackets: 0n, replyBytes: 0n, conns: 1n };
        expect(r1.traffic).toEqual({ [svc]: opened, [be]: opened });
        const next = frame(fromClient(proto, f.vip, 40000, { tcpFlags: TCP.ACK, payload: Buffer.from('and some more bytes') }));
        const r2 = await h.run('sy_from_pod', next);
        const more = { packets: 1n, bytes: ipBytes(next), replyPackets: 0n, replyBytes: 0n, conns: 0n };
        expect(r2.traffic).toEqual({ [svc]: more, [be]: more });
        const rep = frame(reply(proto));
        expect((await h.run('sy_from_pod', rep)).traffic, "the backend's first hop does not translate: not counted").toEqual({});
        const r3 = await h.run('sy_to_pod', rep);
        const back = { packets: 0n, bytes: 0n, replyPackets: 1n, replyBytes: ipBytes(rep), conns: 0n };
        expect(r3.traffic).toEqual({ [svc]: back, [be]: back });
        expect((await h.run('sy_from_pod', frame(fromClient(proto, f.emptyVip)))).traffic, 'a rejected packet reaches no backend: not counted').toEqual({});
      });

      test('traffic counters: an id written again (reused by the control plane) starts from zero', async () => {
        await h.run('sy_from_pod', frame(fromClient(proto, f.vip)));
        const be = id.backend(proto);
        const fam = f.name === 'IPv6' ? 'IPv6' : 'IPv4';
        expect((await h.traffic()).services.get(id.web)?.packets).toBeGreaterThan(0n);
        await h.put('svccnt', [[id.web, ZERO_TRAFFIC]]);
        await h.put(fam === 'IPv6' ? 'becnt6' : 'becnt4', [[be, ZERO_TRAFFIC]]);
        const zeroed = await h.traffic();
        expect([zeroed.services.get(id.web), zeroed.backends[fam].get(be)]).toEqual([ZERO_TRAFFIC, ZERO_TRAFFIC]);
        const pkt = frame(fromClient(proto, f.vip, 40001));
        await h.run('sy_from_pod', pkt);
        const after = await h.traffic();
        const one = { packets: 1n, bytes: BigInt(pkt.length - 14), replyPackets: 0n, replyBytes: 0n, conns: 1n };
        expect([after.services.get(id.web), after.backends[fam].get(be)]).toEqual([one, one]);
      });

      test('traffic counters: the first forward packet makes the entries; a reply after they were deleted (the id freed) does not bring them back', async () => {
        const be = id.backend(proto);
        const fam = f.name === 'IPv6' ? 'IPv6' : 'IPv4';
        const becnt = fam === 'IPv6' ? 'becnt6' : 'becnt4';
        await h.remove('svccnt', [id.web]);
        await h.remove(becnt, [be]);
        const has = async (): Promise<boolean[]> => {
          const c = await h.traffic();
          return [c.services.has(id.web), c.backends[fam].has(be)];
        };
        expect(await has(), 'no entries').toEqual([false, false]);
        const pkt = frame(fromClient(proto, f.vip));
        const r1 = await h.run('sy_from_pod', pkt);
        const one = { packets: 1n, bytes: BigInt(pkt.length - 14), replyPackets: 0n, replyBytes: 0n, conns: 1n };
        expect(r1.traffic, 'made by the packet, which is counted').toEqual({ [`svc ${id.web}`]: one, [`backend${fam === 'IPv6' ? 6 : 4} ${be}`]: one });
        await h.remove('svccnt', [id.web]);
        await h.remove(becnt, [be]);
        const r2 = await h.run('sy_to_pod', frame(reply(proto)));
        expect(r2.counted.RNAT, 'the reply is still translated').toBe(1n);
        expect(await has(), 'but makes no entry').toEqual([false, false]);
      });

      test("reverse DNAT at sy_to_pod (the client pod's last hop); the backend's first hop leaves it alone", async () => {
        await h.run('sy_from_pod', frame(fromClient(proto, f.vip)));
        const rep = reply(proto);
        const first = await h.run('sy_from_pod', frame(rep));
        expect(first.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(first.data, frame(rep));
        const r = await h.run('sy_to_pod', frame(rep));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(r.data, frame({ ...rep, src: f.vip, sport: port }));
        expect(verifyChecksums(r.data)).toEqual(goodSums(f, proto));
        expect(r.counted).toEqual({ RNAT: 1n });
      });

      test('later packets stay on the backend the first chose (a pool of three)', async () => {
        const first = fromClient(proto, f.poolVip, 40100);
        const r = await h.run('sy_from_pod', frame(first));
        const chosen = f.pool[
          whichOf(
            r.data,
            f.pool.map((ip) => frame({ ...first, dst: ip, dport: target })),
          )
        ] as string;
        for (let i = 1; i <= 6; i++) {
          const later: FrameSpec = {
            ...first,
            tcpFlags: TCP.ACK | TCP.PSH,
            seq: 0x01020305 + i,
            ...(f.name === 'IPv4' ? { id: 0x1234 + i } : {}),
            sctp: { chunk: 'DATA', tsn: i },
          };
          const next = await h.run('sy_from_pod', frame(later));
          expect(next.verdict).toBe(TC_ACT_UNSPEC);
          expectFrame(next.data, frame({ ...later, dst: chosen, dport: target }));
          expect(next.counted).toEqual({ SVC_HIT: 1n });
        }
      });

      test('new flows are spread over every backend', async () => {
        // 45 flows over 3 backends: all on fewer than 3 with probability 3 * (2/3)^45 < 1e-7.
        const seen = new Set<string>();
        for (let sport = 41000; sport < 41045; sport++) {
          const pkt = fromClient(proto, f.poolVip, sport);
          const r = await h.run('sy_from_pod', frame(pkt));
          seen.add(
            f.pool[
              whichOf(
                r.data,
                f.pool.map((ip) => frame({ ...pkt, dst: ip, dport: target })),
              )
            ] as string,
          );
        }
        expect([...seen].sort()).toEqual([...f.pool].sort());
      });

      test('a reply with no tracked flow is left alone at every hook', async () => {
        for (const prog of ['sy_from_pod', 'sy_to_pod', 'sy_from_net', 'sy_to_net'] as const) await expectUntouched(prog, frame(reply(proto, 40999)));
      });

      test('a missing reverse half is restored by the next forward packet, a missing forward half by the next reply', async () => {
        const pkt = fromClient(proto, f.vip, 40500);
        await h.run('sy_from_pod', frame(pkt));
        const whole = timeless(await h.conntrack());
        const rev = whole.find((e) => e.key.dir === SY_CT_DIR_REV)?.key as CtKey;
        const fwd = whole.find((e) => e.key.dir === SY_CT_DIR_FWD)?.key as CtKey;
        const ctMap = f.name === 'IPv4' ? 'ct4' : 'ct6';

        await h.remove(ctMap, [rev]);
        const again = { ...pkt, tcpFlags: TCP.ACK, sctp: { chunk: 'DATA' as const } };
        const r = await h.run('sy_from_pod', frame(again));
        expectFrame(r.data, frame({ ...again, dst: f.backend, dport: target }));
        expect(r.counted).toEqual({ SVC_HIT: 1n, CT_RESTORE: 1n });
        expect(timeless(r.ct)).toEqual(whole);

        await h.remove(ctMap, [fwd]);
        const rep = reply(proto, 40500, { tcpFlags: TCP.ACK });
        const back = await h.run('sy_from_pod', frame(rep));
        expect(back.verdict).toBe(TC_ACT_UNSPEC);
        expect(back.counted).toEqual({ CT_RESTORE: 1n });
        const restored = timeless(back.ct);
        expect(restored.map((e) => e.key)).toEqual(whole.map((e) => e.key));
        // the reply (an ACK) moved a TCP flow on from SYN_SENT; nothing else changed
        expect(restored.map((e) => ({ ...e.value, tcpState: 0 }))).toEqual(whole.map((e) => ({ ...e.value, tcpState: 0 })));
      });

      test('the backend of an open flow is removed: the next packet goes to a live one (re-balanced), the old reply key is gone', async () => {
        const first = fromClient(proto, f.poolVip, 40700);
        const r = await h.run('sy_from_pod', frame(first));
        const gone = whichOf(
          r.data,
          f.pool.map((ip) => frame({ ...first, dst: ip, dport: target })),
        );
        const left = f.pool.map((addr, i) => ({ id: id.pool0(proto) + i, addr, port: target })).filter((_, i) => i !== gone);
        await h.frontend({ addr: f.poolVip, port, proto, svcId: id.pool, gen: 1, backends: left });
        await h.remove(f.name === 'IPv4' ? 'backend4' : 'backend6', [id.pool0(proto) + gone]);
        try {
          const next = { ...first, tcpFlags: TCP.ACK, sctp: { chunk: 'DATA' as const } };
          const moved = await h.run('sy_from_pod', frame(next));
          const to =
            left[
              whichOf(
                moved.data,
                left.map((b) => frame({ ...next, dst: b.addr, dport: target })),
              )
            ];
          expect(moved.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
          expect(moved.ct.map((e) => e.value.backendAddr)).toEqual([to?.addr, to?.addr]);
        } finally {
          await h.frontend({
            addr: f.poolVip,
            port,
            proto,
            svcId: id.pool,
            gen: 0,
            backends: f.pool.map((addr, i) => ({ id: id.pool0(proto) + i, addr, port: target })),
          });
        }
      });

      test('a Service IP on a port no frontend has is dropped', async () => {
        const r = await h.run('sy_from_pod', frame(fromClient(proto, f.vip, 40000, { dport: 81 })));
        expect(r.verdict).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ DROP_NO_PORT: 1n });
        expect(r.ct).toEqual([]);
      });

      test('truncated: an L4 header cut short to a Service IP is dropped, elsewhere passed', async () => {
        const ipLen = f.name === 'IPv4' ? 20 : 40;
        const cut = (dst: string): Buffer => truncate(frame(fromClient(proto, dst)), 14 + ipLen + 2);
        const r = await h.run('sy_from_pod', cut(f.vip));
        expect(r.verdict).toBe(TC_ACT_SHOT);
        expect(r.ct).toEqual([]);
        await expectUntouched('sy_from_pod', cut(f.elsewhere));
      });
    });

    describe('TCP state', () => {
      test('a retransmitted SYN keeps its backend', async () => {
        const syn = fromClient('TCP', f.poolVip, 42000);
        const cands = f.pool.map((ip) => frame({ ...syn, dst: ip, dport: 8080 }));
        const first = whichOf((await h.run('sy_from_pod', frame(syn))).data, cands);
        for (let i = 0; i < 8; i++) {
          const r = await h.run('sy_from_pod', frame(syn));
          expect(whichOf(r.data, cands)).toBe(first);
          expect(r.counted).toEqual({ SVC_HIT: 1n });
        }
      });

      test('SYN, SYN-ACK, FIN both ways: SYN_SENT, ESTABLISHED, CLOSING, CLOSED in both halves; a new SYN then picks again', async () => {
        const syn = fromClient('TCP', f.vip, 42100);
        const states = async (): Promise<number[]> => (await h.conntrack()).map((e) => e.value.tcpState);
        await h.run('sy_from_pod', frame(syn));
        expect(await states()).toEqual([SY_TCP_SYN_SENT, SY_TCP_SYN_SENT]);
        await h.run('sy_from_pod', frame(reply('TCP', 42100)));
        expect(await states()).toEqual([SY_TCP_ESTABLISHED, SY_TCP_ESTABLISHED]);
        await h.run('sy_from_pod', frame({ ...syn, tcpFlags: TCP.FIN | TCP.ACK }));
        expect(await states()).toEqual([SY_TCP_CLOSING, SY_TCP_CLOSING]);
        await h.run('sy_from_pod', frame(reply('TCP', 42100, { tcpFlags: TCP.FIN | TCP.ACK })));
        expect(await states()).toEqual([SY_TCP_CLOSED, SY_TCP_CLOSED]);
        const again = await h.run('sy_from_pod', frame(syn));
        expect(again.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n, TCP_REOPEN: 1n });
        expect(timeless(again.ct)).toEqual(halves('TCP', webFlow('TCP', 42100)));
      });

      test('a SYN after an RST picks again; a non-SYN on the closed flow keeps it', async () => {
        const syn = fromClient('TCP', f.vip, 42200);
        await h.run('sy_from_pod', frame(syn));
        await h.run('sy_from_pod', frame({ ...syn, tcpFlags: TCP.RST }));
        expect((await h.conntrack()).map((e) => e.value.tcpState)).toEqual([SY_TCP_CLOSED, SY_TCP_CLOSED]);
        const ack = await h.run('sy_from_pod', frame({ ...syn, tcpFlags: TCP.ACK }));
        expect(ack.counted).toEqual({ SVC_HIT: 1n });
        const again = await h.run('sy_from_pod', frame(syn));
        expect(again.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n, TCP_REOPEN: 1n });
        expect(again.ct.map((e) => e.value.tcpState)).toEqual([SY_TCP_SYN_SENT, SY_TCP_SYN_SENT]);
      });
    });

    describe("kube-proxy's connections (handover, README migration guide)", () => {
      const ctMap = f.name === 'IPv4' ? ('ct4' as const) : ('ct6' as const);

      test('a SY_CT_F_KERNEL flow is left to the kernel (untouched, no flow added); a bare SYN on its tuple is a new connection, translated', async () => {
        const kernel: CtValue = {
          ...webFlow('TCP', 43000, { backendId: 0, svcId: 0, flags: SY_CT_F_KERNEL, tcpState: SY_TCP_ESTABLISHED }),
          createdNs: 1n,
          lastSeenNs: 1n,
        };
        const key: CtKey = { saddr: f.client, daddr: f.vip, sport: 43000, dport: PORTS.TCP.port, proto: 'TCP', dir: SY_CT_DIR_FWD };
        await h.put(ctMap, [[key, kernel]]);
        const ack = frame(fromClient('TCP', f.vip, 43000, { tcpFlags: TCP.ACK }));
        const r = await h.run('sy_from_pod', ack);
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(r.data, ack);
        expect(r.ct).toEqual([{ key, value: kernel }]);
        const syn = fromClient('TCP', f.vip, 43000);
        const taken = await h.run('sy_from_pod', frame(syn));
        expectFrame(taken.data, frame({ ...syn, dst: f.backend, dport: PORTS.TCP.target }));
        expect(timeless(taken.ct)).toEqual(halves('TCP', webFlow('TCP', 43000)));
      });

      test('SY_CFG_KERNEL_HANDOVER: a TCP packet without a flow that is not a bare SYN is left to the kernel, a SYN and UDP are translated; without it the packet is picked up', async () => {
        await h.setConfig({ ...CONFIG, flags: CONFIG.flags | SY_CFG_KERNEL_HANDOVER });
        try {
          const ack = frame(fromClient('TCP', f.vip, 43100, { tcpFlags: TCP.ACK }));
          const left = await h.run('sy_from_pod', ack);
          expect(left.verdict).toBe(TC_ACT_UNSPEC);
          expectFrame(left.data, ack);
          expect(left.ct).toEqual([]);
          const syn = fromClient('TCP', f.vip, 43101);
          expectFrame((await h.run('sy_from_pod', frame(syn))).data, frame({ ...syn, dst: f.backend, dport: PORTS.TCP.target }));
          const udp = fromClient('UDP', f.vip, 43102);
          expectFrame((await h.run('sy_from_pod', frame(udp))).data, frame({ ...udp, dst: f.backend, dport: PORTS.UDP.target }));
        } finally {
          await h.setConfig(CONFIG);
        }
        await h.flushConntrack();
        const ack = fromClient('TCP', f.vip, 43100, { tcpFlags: TCP.ACK });
        expectFrame((await h.run('sy_from_pod', frame(ack))).data, frame({ ...ack, dst: f.backend, dport: PORTS.TCP.target }));
      });

      test('SY_CFG_LAYOUT_UPGRADE: a TCP packet without a flow that is not a bare SYN is dropped and counted (UPGRADE_HOLD), a SYN and UDP open flows, a carried flow is translated; without it the packet opens a flow', async () => {
        await h.setConfig({ ...CONFIG, flags: CONFIG.flags | SY_CFG_LAYOUT_UPGRADE });
        try {
          const ack = frame(fromClient('TCP', f.vip, 43200, { tcpFlags: TCP.ACK }));
          const held = await h.run('sy_from_pod', ack);
          expect(held.verdict).toBe(TC_ACT_SHOT);
          expect(held.counted).toEqual({ SVC_HIT: 1n, UPGRADE_HOLD: 1n });
          expect(held.ct).toEqual([]);
          const fin = frame(fromClient('TCP', f.vip, 43200, { tcpFlags: TCP.FIN | TCP.ACK }));
          expect((await h.run('sy_from_pod', fin)).counted).toEqual({ SVC_HIT: 1n, UPGRADE_HOLD: 1n });
          const syn = fromClient('TCP', f.vip, 43201);
          const opened = await h.run('sy_from_pod', frame(syn));
          expectFrame(opened.data, frame({ ...syn, dst: f.backend, dport: PORTS.TCP.target }));
          expect(opened.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
          const next = fromClient('TCP', f.vip, 43201, { tcpFlags: TCP.ACK });
          expectFrame((await h.run('sy_from_pod', frame(next))).data, frame({ ...next, dst: f.backend, dport: PORTS.TCP.target }));
          const udp = fromClient('UDP', f.vip, 43202);
          expectFrame((await h.run('sy_from_pod', frame(udp))).data, frame({ ...udp, dst: f.backend, dport: PORTS.UDP.target }));
          // the retransmission after the carry wrote the flow
          const carried = halves('TCP', webFlow('TCP', 43200, { tcpState: SY_TCP_ESTABLISHED }));
          await h.put(
            ctMap,
            carried.map((e) => [e.key, { ...e.value, createdNs: 1n, lastSeenNs: 1n }] as const),
          );
          const again = await h.run('sy_from_pod', ack);
          expectFrame(again.data, frame({ ...fromClient('TCP', f.vip, 43200, { tcpFlags: TCP.ACK }), dst: f.backend, dport: PORTS.TCP.target }));
          expect(again.counted).toEqual({ SVC_HIT: 1n });
        } finally {
          await h.setConfig(CONFIG);
        }
        await h.flushConntrack();
        const ack = fromClient('TCP', f.vip, 43200, { tcpFlags: TCP.ACK });
        const picked = await h.run('sy_from_pod', frame(ack));
        expectFrame(picked.data, frame({ ...ack, dst: f.backend, dport: PORTS.TCP.target }));
        expect(picked.counted, 'a mid-stream pickup, counted as such').toEqual({ SVC_HIT: 1n, CT_NEW: 1n, CT_MIDSTREAM: 1n });
      });
    });

    describe('frontends and verdicts', () => {
      const extSyn = (dst: string, dport: number, src = f.ext): FrameSpec => ({
        srcMac: EXT_MAC,
        dstMac: NODE_MAC,
        src,
        dst,
        proto: 'TCP',
        sport: 43000,
        dport,
        tcpFlags: TCP.SYN,
        payload: PAYLOAD,
      });

      test("EXT_SCOPE: an external client gets the EXTERNAL master's backend, unmasqueraded; the reply is reversed at sy_to_net", async () => {
        const syn = extSyn(f.node, NODEPORT_LOCAL);
        const r = await h.run('sy_from_net', frame(syn));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(r.data, frame({ ...syn, dst: f.backend, dport: 8080 }));
        expect(verifyChecksums(r.data)).toEqual(goodSums(f, 'TCP'));
        const flow: Flow = {
          ...webFlow('TCP', 43000),
          clientAddr: f.ext,
          frontAddr: f.node,
          frontPort: NODEPORT_LOCAL,
          svcId: id.npLocal,
          flags: SY_CT_F_EXT,
        };
        expect(timeless(r.ct)).toEqual(halves('TCP', flow));
        const rep: FrameSpec = {
          srcMac: BACKEND_MAC,
          dstMac: VETH_MAC,
          src: f.backend,
          dst: f.ext,
          proto: 'TCP',
          sport: 8080,
          dport: 43000,
          tcpFlags: TCP.SYN | TCP.ACK,
        };
        expectFrame((await h.run('sy_from_pod', frame(rep))).data, frame(rep));
        const back = await h.run('sy_to_net', frame(rep));
        expect(back.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(back.data, frame({ ...rep, src: f.node, sport: NODEPORT_LOCAL }));
        expect(verifyChecksums(back.data)).toEqual(goodSums(f, 'TCP'));
      });

      test("EXT_SCOPE: a pod client of the same address gets the INTERNAL master's backends", async () => {
        const syn = fromClient('TCP', f.node, 43100, { dport: NODEPORT_LOCAL });
        const r = await h.run('sy_from_pod', frame(syn));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        const i = whichOf(
          r.data,
          f.pool.map((ip) => frame({ ...syn, dst: ip, dport: 8080 })),
        );
        expect(i).toBeGreaterThanOrEqual(0);
        expect(r.ct.every((e) => e.value.flags === 0 && e.value.svcId === id.npLocal)).toBe(true);
      });

      test('DROP: the EXTERNAL master drops external clients; pod clients still get the backend', async () => {
        const r = await h.run('sy_from_net', frame(extSyn(f.node, NODEPORT_DROP)));
        expect(r.verdict).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ SVC_HIT: 1n, DROP_NO_LOCAL: 1n });
        expect(r.ct).toEqual([]);
        const pod = fromClient('TCP', f.node, 43200, { dport: NODEPORT_DROP });
        const ok = await h.run('sy_from_pod', frame(pod));
        expect(ok.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(ok.data, frame({ ...pod, dst: f.backend, dport: 8080 }));
      });

      test('a slot missing under a master (replaced meanwhile) rereads the master (RETRY) instead of picking garbage', async () => {
        // count 2 but only slot 1 written: a pick of slot 2 misses, is retried once, and drops after two misses.
        const vip = f.name === 'IPv4' ? '10.96.0.20' : 'fd00:10:96::20';
        await h.frontend({ addr: vip, port: 53, proto: 'UDP', svcId: f.base + 20, backends: [{ id: id.backend('UDP'), addr: f.backend, port: 5353 }] });
        await h.put(f.name === 'IPv4' ? 'svc4' : 'svc6', [
          [
            { addr: vip, port: 53, proto: 'UDP', scope: 0, slot: 0, gen: 0 },
            { count: 2, gen: 0, action: 0, backendId: 0, svcId: f.base + 20, flags: 0, affinityTimeoutS: 0, maglevM: 0 },
          ],
        ]);
        let retries = 0n;
        for (let sport = 46000; sport < 46024; sport++) {
          const pkt = fromClient('UDP', vip, sport);
          const r = await h.run('sy_from_pod', frame(pkt));
          retries += r.counted.RETRY ?? 0n;
          if (r.verdict === TC_ACT_SHOT) {
            expect(r.counted).toEqual({ SVC_HIT: 1n, RETRY: 2n });
          } else {
            expect(r.verdict).toBe(TC_ACT_UNSPEC);
            expectFrame(r.data, frame({ ...pkt, dst: f.backend, dport: 5353 }));
            expect([undefined, 1n]).toContain(r.counted.RETRY);
          }
        }
        expect(retries).toBeGreaterThan(0n); // all 24 first picks on slot 1: 2^-24
      });

      describe('sessionAffinity ClientIP (new connections; sy_aff*_v2)', () => {
        const AFF_TIMEOUT_S = 100;
        const vip = f.name === 'IPv4' ? '10.96.0.21' : 'fd00:10:96::21';
        const svcId = f.base + 21;
        const pool = f.pool.map((addr, i) => ({ id: id.pool0('UDP') + i, addr, port: 5353 }));
        const affMap = f.name === 'IPv4' ? 'aff4' : 'aff6';
        const flow = (sport: number, src = f.client): FrameSpec => ({ ...fromClient('UDP', vip, sport), src });
        /** The pool backend a translated frame went to (its index). */
        const to = (data: Uint8Array, pkt: FrameSpec): number =>
          whichOf(
            data,
            pool.map((b) => frame({ ...pkt, dst: b.addr, dport: 5353 })),
          );

        beforeAll(async () => {
          await h.frontend({ addr: vip, port: 53, proto: 'UDP', svcId, affinityTimeoutS: AFF_TIMEOUT_S, backends: pool });
        });

        test("the first new flow records the client's backend; every later new flow of the client reaches it (AFFINITY) and refreshes it; another client picks for itself", async () => {
          const t0 = process.hrtime.bigint();
          const first = await h.run('sy_from_pod', frame(flow(47000)));
          const chosen = to(first.data, flow(47000));
          expect(chosen).toBeGreaterThanOrEqual(0);
          expect(first.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
          const [entry] = await h.dump(affMap);
          expect(entry?.key).toEqual({ svcId, addr: f.client });
          expect(entry?.value.backendId).toBe(pool[chosen]?.id);
          expect(entry?.value.lastUsedNs).toBeGreaterThanOrEqual(t0);
          for (let sport = 47001; sport <= 47020; sport++) {
            const r = await h.run('sy_from_pod', frame(flow(sport)));
            expect(to(r.data, flow(sport)), `sport ${sport}`).toBe(chosen);
            expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n, AFFINITY: 1n });
          }
          const [later] = await h.dump(affMap);
          expect(later?.value.lastUsedNs, 'refreshed by each new flow').toBeGreaterThan(entry?.value.lastUsedNs ?? 0n);
          // Another client (same pod network): its own entry, its own picks.
          const other = f.name === 'IPv4' ? '10.244.1.6' : 'fd00:10:244:1::6';
          await h.run('sy_from_pod', frame(flow(47100, other)));
          expect((await h.dump(affMap)).map((e) => e.key.addr).sort()).toEqual([f.client, other].sort());
        });

        test('an entry past its timeout, or naming a backend that is not a member of the frontend any more, is ignored: a random pick replaces it', async () => {
          const now = process.hrtime.bigint();
          const stale = (backendId: number, lastUsedNs: bigint) =>
            h.put(affMap, [
              [
                { svcId, addr: f.client },
                { backendId, lastUsedNs },
              ],
            ]);
          await stale(pool[0]?.id as number, now - BigInt(AFF_TIMEOUT_S + 5) * 1_000_000_000n);
          const r = await h.run('sy_from_pod', frame(flow(47200)));
          expect(r.counted, 'expired: not used').toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
          const [renewed] = await h.dump(affMap);
          expect(renewed?.value.backendId).toBe(pool[to(r.data, flow(47200))]?.id);
          expect(renewed?.value.lastUsedNs).toBeGreaterThanOrEqual(now);

          // A fresh entry whose backend exists but left this frontend (no sy_aff_be_v2 entry).
          await h.remove('affbe', [{ svcId, backendId: pool[1]?.id as number, scope: SY_SCOPE_INTERNAL }]);
          try {
            await stale(pool[1]?.id as number, process.hrtime.bigint());
            const m = await h.run('sy_from_pod', frame(flow(47201)));
            expect(m.counted, 'not a member: not used').toEqual({ SVC_HIT: 1n, CT_NEW: 1n });
            const [replaced] = await h.dump(affMap);
            expect(replaced?.value.backendId).toBe(pool[to(m.data, flow(47201))]?.id);
            // With the member back, the same entry is used.
            await h.put('affbe', [[{ svcId, backendId: pool[1]?.id as number, scope: SY_SCOPE_INTERNAL }, { flags: 0 }]]);
            await stale(pool[1]?.id as number, process.hrtime.bigint());
            const back = await h.run('sy_from_pod', frame(flow(47202)));
            expect(back.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n, AFFINITY: 1n });
            expect(to(back.data, flow(47202))).toBe(1);
          } finally {
            await h.put('affbe', [[{ svcId, backendId: pool[1]?.id as number, scope: SY_SCOPE_INTERNAL }, { flags: 0 }]]);
          }
        });

        test('an established flow keeps its backend when the client is pointed at another one', async () => {
          const pkt = flow(47300);
          const r = await h.run('sy_from_pod', frame(pkt));
          const chosen = to(r.data, pkt);
          const other = (chosen + 1) % pool.length;
          await h.put(affMap, [
            [
              { svcId, addr: f.client },
              { backendId: pool[other]?.id as number, lastUsedNs: process.hrtime.bigint() },
            ],
          ]);
          const again = await h.run('sy_from_pod', frame(pkt));
          expect(to(again.data, pkt), 'the flow stays where it is').toBe(chosen);
          expect(again.counted).toEqual({ SVC_HIT: 1n });
          const fresh = await h.run('sy_from_pod', frame(flow(47301)));
          expect(to(fresh.data, flow(47301)), 'a new flow follows the entry').toBe(other);
        });
      });

      test('Maglev: removing one of four backends moves about 1/4 of new flows (those it had, and few others); established flows stay on their backend', async () => {
        const vip = f.name === 'IPv4' ? '10.96.0.22' : 'fd00:10:96::22';
        const svcId = f.base + 22;
        const M = 1021;
        const four = [...f.pool, f.backend].map((addr, i) => ({ id: f.base + 200 + i, addr, port: 5353 }));
        await h.frontend({ addr: vip, port: 53, proto: 'UDP', svcId, maglevM: M, backends: four });
        const FLOWS = 400;
        const sports = Array.from({ length: FLOWS }, (_, i) => 50000 + i);
        const pkt = (sport: number): FrameSpec => fromClient('UDP', vip, sport);
        const backendOf = (data: Uint8Array, sport: number): string => {
          const i = whichOf(
            data,
            four.map((b) => frame({ ...pkt(sport), dst: b.addr, dport: 5353 })),
          );
          expect(i, `sport ${sport}: translated to one of the four`).toBeGreaterThanOrEqual(0);
          return four[i]?.addr as string;
        };
        const before = new Map<number, string>();
        for (const sport of sports) {
          const r = await h.run('sy_from_pod', frame(pkt(sport)));
          expect(r.counted).toEqual({ SVC_HIT: 1n, CT_NEW: 1n, MAGLEV: 1n });
          before.set(sport, backendOf(r.data, sport));
        }
        expect(new Set(before.values()).size, 'the four share the flows').toBe(4);
        const removed = four[0] as (typeof four)[number];

        // The control plane's update: the other generation's slots and table, then the master.
        await h.frontend({ addr: vip, port: 53, proto: 'UDP', svcId, maglevM: M, gen: 1, backends: four.slice(1) });
        for (const sport of sports.slice(0, 100)) {
          const r = await h.run('sy_from_pod', frame(pkt(sport)));
          expect(backendOf(r.data, sport), `sport ${sport}: an established flow keeps its backend`).toBe(before.get(sport));
          expect(r.counted).toEqual({ SVC_HIT: 1n });
        }

        await h.flushConntrack();
        let moved = 0;
        let movedOff = 0; // flows of a backend that stayed, moved anyway
        for (const sport of sports) {
          const r = await h.run('sy_from_pod', frame(pkt(sport)));
          const now = backendOf(r.data, sport);
          expect(now, 'nothing new goes to the removed backend').not.toBe(removed.addr);
          if (now === before.get(sport)) continue;
          moved++;
          if (before.get(sport) !== removed.addr) movedOff++;
        }
        const onRemoved = [...before.values()].filter((b) => b === removed.addr).length;
        expect(moved - movedOff, 'every flow of the removed backend moved').toBe(onRemoved);
        expect(moved / FLOWS, `moved ${moved} of ${FLOWS}`).toBeGreaterThan(0.15);
        expect(moved / FLOWS, `moved ${moved} of ${FLOWS}`).toBeLessThan(0.35);
        expect(movedOff / FLOWS, `flows of staying backends that moved: ${movedOff}`).toBeLessThan(0.05);
      });

      test('source ranges (LPM): a client inside passes, one outside and a pod outside are dropped', async () => {
        const inside = extSyn(f.lb, 80);
        const r = await h.run('sy_from_net', frame(inside));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expectFrame(r.data, frame({ ...inside, dst: f.backend, dport: 8080 }));
        for (const [prog, spec] of [
          ['sy_from_net', extSyn(f.lb, 80, f.extOutside)],
          ['sy_from_pod', fromClient('TCP', f.lb, 43300)],
        ] as const) {
          const out = await h.run(prog, frame(spec));
          expect(out.verdict).toBe(TC_ACT_SHOT);
          expect(out.counted).toEqual({ SVC_HIT: 1n, DROP_SRC_RANGE: 1n });
        }
      });

      test('not ours: another destination, ICMP echo to a Service IP, GRE, ARP — all TC_ACT_UNSPEC and untouched', async () => {
        const echo = f.name === 'IPv4' ? ICMP.ECHO_REQUEST : ICMP6.ECHO_REQUEST;
        await expectUntouched('sy_from_pod', frame(fromClient('TCP', f.elsewhere)));
        await expectUntouched(
          'sy_from_pod',
          frame({ src: f.client, dst: f.vip, proto: f.name === 'IPv4' ? 'ICMP' : 'ICMPv6', icmp: { type: echo, code: 0, rest: 0x10001 }, payload: PAYLOAD }),
        );
        await expectUntouched('sy_from_net', frame({ src: f.ext, dst: f.vip, proto: IPPROTO_GRE, l4: Buffer.alloc(8) }));
        const arp = Buffer.concat([Buffer.from('ffffffffffff020000000001', 'hex'), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
        for (const prog of ['sy_from_pod', 'sy_to_pod', 'sy_from_net', 'sy_to_net'] as const) await expectUntouched(prog, arp);
      });

      test('REJECT: a frontend without endpoints answers a TCP SYN with an RST from the frontend', async () => {
        const syn = fromClient('TCP', f.emptyVip, 43400);
        const r = await h.run('sy_from_pod', frame(syn));
        expect(r.counted).toEqual({ SVC_HIT: 1n, REJECT: 1n });
        expect(r.ct).toEqual([]);
        expect(r.verdict).toBe(TC_ACT_REDIRECT);
        const out = parseFrame(r.data);
        expect(out.tcp?.flags).toBe(TCP.RST | TCP.ACK);
        expect([out.ip?.src ?? out.ip6?.src, out.ip?.dst ?? out.ip6?.dst, out.tcp?.sport, out.tcp?.dport]).toEqual([f.emptyVip, f.client, 80, 43400]);
        expect(verifyChecksums(r.data)).toEqual(goodSums(f, 'TCP'));
      });

      test('REJECT: UDP gets an ICMP port unreachable quoting the datagram', async () => {
        const dgram = fromClient('UDP', f.emptyVip, 43500);
        const r = await h.run('sy_from_pod', frame(dgram));
        expect(r.counted).toEqual({ SVC_HIT: 1n, REJECT: 1n });
        expect(r.verdict).toBe(TC_ACT_REDIRECT);
        const out = parseFrame(r.data);
        expect(out.icmp?.type).toBe(f.name === 'IPv4' ? ICMP.DEST_UNREACH : ICMP6.DEST_UNREACH);
        expect(out.icmp?.code).toBe(f.name === 'IPv4' ? 3 : 4);
        expect([out.ip?.src ?? out.ip6?.src, out.ip?.dst ?? out.ip6?.dst]).toEqual([f.emptyVip, f.client]);
        expect(verifyChecksums(r.data).l4).toBe(true);
      });
    });

    describe('ICMP errors of translated flows', () => {
      test('toward the client (frag-needed / packet too big from a router): quote and addresses back to the frontend', async () => {
        const pkt = fromClient('UDP', f.vip, 44000);
        const sent = await h.run('sy_from_pod', frame(pkt));
        const err = f.name === 'IPv4' ? { type: ICMP.DEST_UNREACH, code: 4, rest: 1400 } : { type: ICMP6.PACKET_TOO_BIG, code: 0, rest: 1400 };
        const input = icmpError(sent.data, { ...err, from: f.peer });
        const r = await h.run('sy_to_pod', input);
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expect(r.counted).toEqual({ ICMP_XLATE: 1n });
        expectFrame(r.data, icmpError(frame(pkt), { ...err, from: f.peer, srcMac: parseFrame(sent.data).eth.dst, dstMac: parseFrame(sent.data).eth.src }));
      });

      test('from the client about a reply: quote and destination go to the backend', async () => {
        const pkt = fromClient('UDP', f.vip, 44100);
        await h.run('sy_from_pod', frame(pkt));
        const seen = frame({ ...reply('UDP', 44100), src: f.vip, sport: 53 });
        const err = f.name === 'IPv4' ? { type: ICMP.DEST_UNREACH, code: 3 } : { type: ICMP6.DEST_UNREACH, code: 4 };
        const r = await h.run('sy_from_pod', icmpError(seen, err));
        expect(r.verdict).toBe(TC_ACT_UNSPEC);
        expect(r.counted).toEqual({ ICMP_XLATE: 1n });
        const orig = frame(reply('UDP', 44100));
        expectFrame(r.data, icmpError(orig, { ...err, srcMac: parseFrame(seen).eth.dst, dstMac: parseFrame(seen).eth.src, from: f.client, to: f.backend }));
      });
    });

    test('IPv4 fragments: first and later fragments translated; a later one without its first to a Service IP dropped; IPv6 fragments to a Service IP dropped', async () => {
      if (f.name === 'IPv6') {
        const r = await h.run('sy_from_pod', frame({ ...fromClient('UDP', f.vip, 44200), fragment6: { offset: 0, more: true, id: 7 } }));
        expect(r.verdict).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ FRAG_DROP: 1n });
        return;
      }
      const pkt = fromClient('UDP', f.vip, 44200, { id: 0x4242, payload: Buffer.alloc(400, 0xab) });
      const first = await h.run('sy_from_pod', firstFragment(frame(pkt), 48));
      expect(first.verdict).toBe(TC_ACT_UNSPEC);
      expectFrame(first.data, firstFragment(frame({ ...pkt, dst: f.backend, dport: 5353 }), 48));
      expect(await h.dump('frag4')).toEqual([
        { key: { saddr: f.client, daddr: f.vip, id: 0x4242, proto: 'UDP' }, value: { sport: 44200, dport: 53, createdNs: expect.any(BigInt) } },
      ]);
      const rest = { ...pkt, fragOffset: 7, l4: Buffer.alloc(64, 0xab), payload: undefined, proto: 17 } as FrameSpec;
      const later = await h.run('sy_from_pod', frame(rest));
      expect(later.verdict).toBe(TC_ACT_UNSPEC);
      expect(later.counted).toEqual({ FRAG: 1n, SVC_HIT: 1n });
      expectFrame(later.data, frame({ ...rest, dst: f.backend }));
      expect(verifyChecksums(later.data).ip).toBe(true);
      const orphan = await h.run('sy_from_pod', frame({ ...rest, id: 0x4343 }));
      expect(orphan.verdict).toBe(TC_ACT_SHOT);
      expect(orphan.counted).toEqual({ FRAG_DROP: 1n });
      const elsewhere = frame({ ...rest, id: 0x4444, dst: f.elsewhere });
      const passed = await h.run('sy_from_pod', elsewhere);
      expect(passed.verdict).toBe(TC_ACT_UNSPEC);
      expectFrame(passed.data, elsewhere);
    });
  });
});

// ---------------------------------------------------------------------------
// Masqueraded flows are redirected by the FIB: run in a namespace with a
// node interface (veth sy-fib0, NODE_MAC), the node addresses, pod routes
// via the other node (PEER_MAC) and the external client as a neighbour.

const NETNS = `sy-dp-fib-${process.pid}`;

function ns(...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', NETNS, ...args], { stdio: 'pipe' });
}

describe.skipIf(skip)('packet fixtures: masquerade and FIB redirect (in a network namespace)', () => {
  let h: PacketHarness;

  beforeAll(async () => {
    spawnSync('ip', ['netns', 'del', NETNS], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'add', NETNS]);
    ns('ip', 'link', 'set', 'lo', 'up');
    ns('ip', 'link', 'add', 'sy-fib0', 'address', NODE_MAC, 'type', 'veth', 'peer', 'name', 'sy-fib1');
    ns('ip', 'link', 'set', 'sy-fib0', 'up');
    ns('ip', 'link', 'set', 'sy-fib1', 'up');
    ns('sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    for (const f of FAMILIES) {
      const six = f.name === 'IPv6' ? ['-6'] : ['-4'];
      ns('ip', ...six, 'addr', 'add', `${f.node}/${f.name === 'IPv6' ? 64 : 24}`, 'dev', 'sy-fib0', ...(f.name === 'IPv6' ? ['nodad'] : []));
      ns('ip', ...six, 'neigh', 'add', f.peer, 'lladdr', PEER_MAC, 'dev', 'sy-fib0', 'nud', 'permanent');
      ns('ip', ...six, 'neigh', 'add', f.ext, 'lladdr', EXT_MAC, 'dev', 'sy-fib0', 'nud', 'permanent');
      ns('ip', ...six, 'route', 'add', f.podNet, 'via', f.peer, 'dev', 'sy-fib0');
    }
    h = await PacketHarness.open(CONFIG);
    for (const f of FAMILIES) await programFamily(h, f);
  });

  afterAll(() => {
    h?.close();
    spawnSync('ip', ['netns', 'del', NETNS], { stdio: 'ignore' });
  });

  beforeEach(async () => {
    await h.flushConntrack();
  });

  describe.each(FAMILIES)('$name', (f) => {
    test('NodePort from an external client (masquerade): SNAT to node:port from the range, redirected toward the backend; the reply is reversed at sy_from_net and redirected to the client', async () => {
      const syn: FrameSpec = {
        srcMac: EXT_MAC,
        dstMac: NODE_MAC,
        src: f.ext,
        dst: f.node,
        proto: 'TCP',
        sport: 45000,
        dport: NODEPORT,
        tcpFlags: TCP.SYN,
        payload: PAYLOAD,
      };
      const [r] = h.runInNetns(NETNS, [{ prog: 'sy_from_net', frame: frame(syn) }]);
      const ct = await h.conntrack();
      const flow = ct.find((e) => e.key.dir === SY_CT_DIR_FWD)?.value as CtValue;
      expect(flow.flags).toBe(SY_CT_F_SNAT | SY_CT_F_EXT);
      expect(flow.natAddr).toBe(f.node);
      expect(flow.natPort).toBeGreaterThanOrEqual(SNAT_MIN);
      expect(flow.natPort).toBeLessThanOrEqual(SNAT_MAX);
      expect(r?.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(r?.data as Buffer, frame({ ...syn, srcMac: NODE_MAC, dstMac: PEER_MAC, src: f.node, sport: flow.natPort, dst: f.backend, dport: 8080 }));
      expect(verifyChecksums(r?.data as Buffer)).toEqual(goodSums(f, 'TCP'));
      expect(ct.find((e) => e.key.dir === SY_CT_DIR_REV)?.key).toEqual({
        saddr: f.backend,
        daddr: f.node,
        sport: 8080,
        dport: flow.natPort,
        proto: 'TCP',
        dir: SY_CT_DIR_REV,
      });

      const rep: FrameSpec = {
        srcMac: PEER_MAC,
        dstMac: NODE_MAC,
        src: f.backend,
        dst: f.node,
        proto: 'TCP',
        sport: 8080,
        dport: flow.natPort,
        tcpFlags: TCP.SYN | TCP.ACK,
      };
      const before = await h.traffic();
      const [back] = h.runInNetns(NETNS, [{ prog: 'sy_from_net', frame: frame(rep) }]);
      expect(back?.verdict).toBe(TC_ACT_REDIRECT);
      // A masqueraded flow's reply is counted at the ingress that reverses it (once: the redirect's egress does not match it again).
      const replied = { packets: 0n, bytes: 0n, replyPackets: 1n, replyBytes: BigInt(frame(rep).length - 14), conns: 0n };
      expect(trafficDelta(before, await h.traffic())).toEqual({
        [`svc ${ids(f).np}`]: replied,
        [`backend${f.name === 'IPv6' ? 6 : 4} ${ids(f).backend('TCP')}`]: replied,
      });
      expectFrame(back?.data as Buffer, frame({ ...rep, srcMac: NODE_MAC, dstMac: EXT_MAC, src: f.node, sport: NODEPORT, dst: f.ext, dport: 45000 }));
      expect(verifyChecksums(back?.data as Buffer)).toEqual(goodSums(f, 'TCP'));
    });

    test('hairpin: a pod reaching itself is masqueraded to the node and redirected; CT records SNAT | HAIRPIN', async () => {
      const syn: FrameSpec = { srcMac: CLIENT_MAC, dstMac: VETH_MAC, src: f.client, dst: f.selfVip, proto: 'UDP', sport: 45100, dport: 53, payload: PAYLOAD };
      const [r] = h.runInNetns(NETNS, [{ prog: 'sy_from_pod', frame: frame(syn) }]);
      const flow = (await h.conntrack()).find((e) => e.key.dir === SY_CT_DIR_FWD)?.value as CtValue;
      expect(flow.flags).toBe(SY_CT_F_SNAT | SY_CT_F_HAIRPIN);
      expect(r?.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(r?.data as Buffer, frame({ ...syn, srcMac: NODE_MAC, dstMac: PEER_MAC, src: f.node, sport: flow.natPort, dst: f.client, dport: 5353 }));
      expect(verifyChecksums(r?.data as Buffer)).toEqual(goodSums(f, 'UDP'));
    });

    test('hairpin reply: the pod answers node:port; reversed to frontend -> pod and redirected', async () => {
      const syn: FrameSpec = { srcMac: CLIENT_MAC, dstMac: VETH_MAC, src: f.client, dst: f.selfVip, proto: 'TCP', sport: 45300, dport: 80, tcpFlags: TCP.SYN };
      h.runInNetns(NETNS, [{ prog: 'sy_from_pod', frame: frame(syn) }]);
      const flow = (await h.conntrack()).find((e) => e.key.dir === SY_CT_DIR_FWD)?.value as CtValue;
      const rep: FrameSpec = {
        srcMac: CLIENT_MAC,
        dstMac: VETH_MAC,
        src: f.client,
        dst: f.node,
        proto: 'TCP',
        sport: 8080,
        dport: flow.natPort,
        tcpFlags: TCP.SYN | TCP.ACK,
      };
      const before = await h.stats();
      const [back] = h.runInNetns(NETNS, [{ prog: 'sy_from_pod', frame: frame(rep) }]);
      expect(back?.verdict).toBe(TC_ACT_REDIRECT);
      expectFrame(back?.data as Buffer, frame({ ...rep, srcMac: NODE_MAC, dstMac: PEER_MAC, src: f.selfVip, sport: 80, dst: f.client, dport: 45300 }));
      expect(verifyChecksums(back?.data as Buffer)).toEqual(goodSums(f, 'TCP'));
      expect((await h.stats()).RNAT - before.RNAT).toBe(1n);
      expect((await h.conntrack()).map((e) => e.value.tcpState)).toEqual([SY_TCP_ESTABLISHED, SY_TCP_ESTABLISHED]);
    });

    test('an ICMP error about a masqueraded flow (frag-needed / packet too big to the node) goes back to the external client, redirected', async () => {
      const pkt: FrameSpec = {
        srcMac: EXT_MAC,
        dstMac: NODE_MAC,
        src: f.ext,
        dst: f.node,
        proto: 'TCP',
        sport: 45400,
        dport: NODEPORT,
        tcpFlags: TCP.ACK,
        payload: PAYLOAD,
      };
      const [sent] = h.runInNetns(NETNS, [{ prog: 'sy_from_net', frame: frame(pkt) }]);
      expect(sent?.verdict).toBe(TC_ACT_REDIRECT);
      const err = f.name === 'IPv4' ? { type: ICMP.DEST_UNREACH, code: ICMP.FRAG_NEEDED, rest: 1400 } : { type: ICMP6.PACKET_TOO_BIG, code: 0, rest: 1400 };
      const input = icmpError(sent?.data as Buffer, { ...err, from: f.peer, srcMac: PEER_MAC, dstMac: NODE_MAC });
      const before = await h.stats();
      const [r] = h.runInNetns(NETNS, [{ prog: 'sy_from_net', frame: input }]);
      expect(r?.verdict).toBe(TC_ACT_REDIRECT);
      expect((await h.stats()).ICMP_XLATE - before.ICMP_XLATE).toBe(1n);
      // The error as the client's own router would have sent it about the packet the client sent.
      expectFrame(r?.data as Buffer, icmpError(frame(pkt), { ...err, from: f.peer, srcMac: NODE_MAC, dstMac: EXT_MAC }));
    });

    test('masquerade ports run out: the range holds one port, a second flow to the same backend fails (SNAT_FAIL, dropped)', async () => {
      await h.setConfig({ ...CONFIG, snatPortMin: 61000, snatPortMax: 61000 });
      try {
        const syn = (sport: number): Buffer =>
          frame({ srcMac: EXT_MAC, dstMac: NODE_MAC, src: f.ext, dst: f.node, proto: 'TCP', sport, dport: NODEPORT, tcpFlags: TCP.SYN });
        const [first, second] = h.runInNetns(NETNS, [
          { prog: 'sy_from_net', frame: syn(45500) },
          { prog: 'sy_from_net', frame: syn(45501) },
        ]);
        expect(first?.verdict).toBe(TC_ACT_REDIRECT);
        expect(parseFrame(first?.data as Buffer).tcp?.sport).toBe(61000);
        expect(second?.verdict).toBe(TC_ACT_SHOT);
        const ct = await h.conntrack();
        expect(ct.map((e) => [e.key.dir, e.value.clientPort, e.value.natPort])).toEqual([
          [SY_CT_DIR_REV, 45500, 61000],
          [SY_CT_DIR_FWD, 45500, 61000],
        ]);
        expect((await h.stats()).SNAT_FAIL).toBeGreaterThanOrEqual(1n);
      } finally {
        await h.setConfig(CONFIG);
      }
    });

    test('no route for a masqueraded packet: dropped and counted (FIB_FAIL)', async () => {
      await h.put(f.name === 'IPv4' ? 'backend4' : 'backend6', [
        [9999 + f.base, { addr: f.name === 'IPv4' ? '203.0.113.9' : '2001:db8::9', port: 8080, proto: 'TCP', flags: 0 }],
      ]);
      await h.frontend({
        addr: f.node,
        port: 30999,
        proto: 'TCP',
        svcId: 99 + f.base,
        flags: SY_SVC_F_MASQ_EXT,
        backends: [{ id: 9999 + f.base, addr: f.name === 'IPv4' ? '203.0.113.9' : '2001:db8::9', port: 8080 }],
      });
      const before = (await h.stats()).FIB_FAIL;
      const [r] = h.runInNetns(NETNS, [
        { prog: 'sy_from_net', frame: frame({ src: f.ext, dst: f.node, proto: 'TCP', sport: 45200, dport: 30999, tcpFlags: TCP.SYN }) },
      ]);
      expect(r?.verdict).toBe(TC_ACT_SHOT);
      expect((await h.stats()).FIB_FAIL - before).toBe(1n);
    });
  });
});
