// `switchyard status` without root: a BpfDataplane on the fake binding
// programs ClusterIP (both families), NodePort with externalTrafficPolicy
// Local, LoadBalancer with source ranges and a Service without endpoints,
// stops (the maps stay pinned), and the status reader decodes the pins back
// into the dataplane-neutral model; its map fill is the daemon's own
// mapUsage(); the tables and the JSON document print it; nothing pinned,
// layout 1 only, left-over entries and a damaged slot are reported as such.

import { describe, expect, test } from 'vitest';
import { formatStatusJson, formatStatusText, status, STATUS_EXIT } from '../../src/cli/status.ts';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { backend4Codec, encode, MAPS, SY_SCOPE_INTERNAL, svc4KeyCodec, trafficCodec, u32Codec } from '../../src/dataplane/bpf/layout.ts';
import { MAPS as V1 } from '../../src/dataplane/bpf/layout-v1.ts';
import { readPinnedStatus, type PinnedRead } from '../../src/dataplane/bpf/status.ts';
import type { DataplaneStatus, FrontendStatus } from '../../src/dataplane/status.ts';
import { BpfMap } from '../../src/native/index.ts';
import { createLogger } from '../../src/util/log.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { endpoint, servicePortInfo, snapshot, TEST_NODE } from '../support/snapshots.ts';

const PIN = '/sys/fs/bpf/switchyard';
const NODE4 = '198.18.0.10';
const NODE6 = 'fd00:198:18::10';

const SERVICES = [
  // ClusterIP, dual stack: a local and a remote backend per family.
  servicePortInfo({
    name: 'web',
    clusterIPs: ['10.96.0.10', 'fd00:10:96::10'],
    port: 80,
    endpoints: [endpoint('10.244.1.5:8080', TEST_NODE), endpoint('10.244.2.6:8080', 'node-b'), endpoint('[fd00:10:244:1::5]:8080', TEST_NODE)],
  }),
  // NodePort, externalTrafficPolicy Local: external clients get the local backend only, unmasqueraded.
  servicePortInfo({
    name: 'npl',
    clusterIPs: ['10.96.0.11'],
    port: 80,
    nodePort: 30081,
    externalPolicyLocal: true,
    endpoints: [endpoint('10.244.1.7:8080', TEST_NODE), endpoint('10.244.2.8:8080', 'node-b')],
  }),
  // LoadBalancer with source ranges.
  servicePortInfo({
    name: 'lbr',
    clusterIPs: ['10.96.0.12'],
    port: 443,
    loadBalancerIPs: ['198.19.0.30'],
    loadBalancerSourceRanges: ['198.18.1.0/24'],
    endpoints: [endpoint('10.244.2.9:8443', 'node-b')],
  }),
  // No endpoints: REJECT.
  servicePortInfo({ name: 'empty', clusterIPs: ['10.96.0.13'], port: 53, protocol: 'UDP', endpoints: [] }),
];

async function programmed(): Promise<{ fake: FakeNativeBinding; usage: ReturnType<BpfDataplane['mapUsage']> }> {
  const fake = new FakeNativeBinding();
  fake.addLink('eth0');
  fake.addLink('veth1');
  fake.addLink('dummy0');
  const dp = new BpfDataplane(
    dataplaneOptions(fake, {
      log: createLogger('bpf', { level: 'error', write: () => {} }),
      pinPath: PIN,
      node: { ipv4: NODE4, ipv6: NODE6 },
      nodeInterface: 'eth0',
      detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] },
      links: fake.linkSource(),
    }),
  );
  await dp.start(new AbortController().signal);
  await dp.sync(snapshot(SERVICES));
  const usage = dp.mapUsage();
  await dp.stop(); // the daemon is down; the maps stay pinned, the programs attached
  return { fake, usage };
}

async function read(fake: FakeNativeBinding): Promise<PinnedRead> {
  return readPinnedStatus({ native: fake, pinPath: PIN, links: fake.links(), nodeAddresses: [NODE4, NODE6] });
}

async function statusOf(fake: FakeNativeBinding): Promise<DataplaneStatus> {
  const r = await read(fake);
  if (r.kind !== 'status') throw new Error(`expected a status, got ${r.kind}`);
  return r.status;
}

/** A frontend in one line: "TCP 10.96.0.10:80 ClusterIP DNAT [10.244.1.5:8080 local, ...] | external ...". */
function brief(f: FrontendStatus): string {
  const scope = (s: FrontendStatus['internal']) =>
    `${s.action}${s.masquerade ? '+masq' : ''} [${s.backends.map((b) => `${b.address}:${b.port}${b.local ? ' local' : ''}`).join(', ')}]`;
  const ranges = f.sourceRanges.length > 0 ? ` ranges=${f.sourceRanges.join(',')}` : '';
  return `${f.protocol} ${f.address}:${f.port} ${f.kind} etp=${f.externalTrafficPolicy} | ${scope(f.internal)} | ${f.sharedScope ? 'shared ' : ''}${scope(f.external)}${ranges}`;
}

describe('status read back from the pinned maps', () => {
  test('every frontend, its backends, actions, policies and source ranges, sorted by kind, family, address, port', async () => {
    const { fake } = await programmed();
    const s = await statusOf(fake);
    expect(s.frontends.map(brief)).toStrictEqual([
      'TCP 10.96.0.10:80 ClusterIP etp=null | DNAT [10.244.1.5:8080 local, 10.244.2.6:8080] | shared DNAT+masq [10.244.1.5:8080 local, 10.244.2.6:8080]',
      'TCP 10.96.0.11:80 ClusterIP etp=null | DNAT [10.244.1.7:8080 local, 10.244.2.8:8080] | shared DNAT+masq [10.244.1.7:8080 local, 10.244.2.8:8080]',
      'TCP 10.96.0.12:443 ClusterIP etp=null | DNAT [10.244.2.9:8443] | shared DNAT+masq [10.244.2.9:8443]',
      'UDP 10.96.0.13:53 ClusterIP etp=null | REJECT [] | shared REJECT []',
      'TCP fd00:10:96::10:80 ClusterIP etp=null | DNAT [fd00:10:244:1::5:8080 local] | shared DNAT+masq [fd00:10:244:1::5:8080 local]',
      'TCP 198.18.0.10:30081 NodePort etp=Local | DNAT [10.244.1.7:8080 local, 10.244.2.8:8080] | DNAT [10.244.1.7:8080 local]',
      'TCP 198.19.0.30:443 LoadBalancer etp=Cluster | DNAT+masq [10.244.2.9:8443] | shared DNAT+masq [10.244.2.9:8443] ranges=198.18.1.0/24',
    ]);
    const web6 = s.frontends.find((f) => f.address === 'fd00:10:96::10');
    expect(web6?.family).toBe('IPv6');
    expect(s.frontends.every((f) => f.problems.length === 0 && f.affinity === null && f.counters?.packets === 0)).toBe(true);
    expect(new Set(s.frontends.map((f) => f.id)).size, 'every frontend has its own svc_id').toBe(s.frontends.length);
    expect(s.notes).toStrictEqual([]);
    expect(s.daemonPids, 'the daemon stopped: nobody holds the pin directory').toStrictEqual([]);
  });

  test("map fill is the daemon's own mapUsage() for the maps it writes, plus conntrack, fragments and affinity from a dump", async () => {
    const { fake, usage } = await programmed();
    const s = await statusOf(fake);
    const programmedTables = s.tables.slice(0, usage.length).map((t) => ({ map: t.name, entries: t.entries, capacity: t.capacity }));
    expect(programmedTables).toStrictEqual(usage);
    expect(s.tables.slice(usage.length).map((t) => [t.name, t.entries, t.capacity])).toStrictEqual([
      [MAPS.ct4.name, 0, MAPS.ct4.maxEntries],
      [MAPS.ct6.name, 0, MAPS.ct6.maxEntries],
      [MAPS.frag4.name, 0, MAPS.frag4.maxEntries],
      [MAPS.aff4.name, 0, MAPS.aff4.maxEntries],
      [MAPS.aff6.name, 0, MAPS.aff6.maxEntries],
    ]);
    expect(usage.find((u) => u.map === MAPS.backend6.name)?.entries).toBe(1);
  });

  test('counters: zero for each frontend and backend after the sync (no entry until the first packet); what the programs add is summed over CPUs, both directions', async () => {
    const { fake } = await programmed();
    const before = await statusOf(fake);
    const all = before.frontends.flatMap((f) => [f.counters, ...f.internal.backends.map((b) => b.counters)]);
    expect(all.every((c) => c !== null && c.packets === 0 && c.bytes === 0 && c.connections === 0)).toBe(true);
    const web = before.frontends.find((f) => f.address === '10.96.0.10');
    const be = web?.internal.backends.find((b) => b.address === '10.244.1.5');
    // What the tc programs would have counted, on two CPUs (the fake has 2).
    const write = async (map: 'svccnt' | 'becnt4', id: number, cpu: Array<[number, number, number, number, number]>): Promise<void> => {
      const m = BpfMap.openPinned(`${PIN}/${MAPS[map].name}`, fake);
      const v = Buffer.alloc(m.valueStride);
      cpu.forEach(([packets, bytes, replyPackets, replyBytes, conns], i) =>
        trafficCodec.encodeInto(
          { packets: BigInt(packets), bytes: BigInt(bytes), replyPackets: BigInt(replyPackets), replyBytes: BigInt(replyBytes), conns: BigInt(conns) },
          v,
          i * 40,
        ),
      );
      await m.update([[encode(u32Codec, id), v]]);
      m.close();
    };
    const backendId = (await BpfMap.openPinned(`${PIN}/${MAPS.backend4.name}`, fake).dump())
      .map(([k, v]) => [u32Codec.decode(k), backend4Codec.decode(v)] as const)
      .find(([, b]) => b.addr === '10.244.1.5')?.[0];
    await write('svccnt', web?.id as number, [
      [3, 300, 2, 120, 1],
      [4, 400, 4, 240, 2],
    ]);
    await write('becnt4', backendId as number, [
      [0, 0, 0, 0, 0],
      [5, 500, 5, 250, 2],
    ]);
    const after = await statusOf(fake);
    const webAfter = after.frontends.find((f) => f.address === '10.96.0.10');
    expect(webAfter?.counters).toStrictEqual({ packets: 13, bytes: 1060, connections: 3 });
    expect(webAfter?.internal.backends.find((b) => b.address === be?.address)?.counters).toStrictEqual({ packets: 10, bytes: 750, connections: 2 });
    expect(after.frontends.find((f) => f.address === '10.96.0.11')?.counters, 'other frontends unchanged').toStrictEqual({
      packets: 0,
      bytes: 0,
      connections: 0,
    });
  });

  test('the tc programs on each interface, by the kernel name of the program attached at our handle', async () => {
    const { fake } = await programmed();
    const s = await statusOf(fake);
    expect(s.attachments.map((a) => `${a.interface} ${a.hook} ${a.program}`)).toStrictEqual([
      'eth0 ingress sy_from_net',
      'eth0 egress sy_to_net',
      'veth1 ingress sy_from_pod',
      'veth1 egress sy_to_pod',
    ]);
  });

  test('the tables name every address and backend; the JSON document is the model as it is', async () => {
    const { fake } = await programmed();
    const s = await statusOf(fake);
    const text = formatStatusText(s);
    for (const a of ['10.96.0.10:80', '[fd00:10:96::10]:80', '198.18.0.10:30081', '198.19.0.30:443', '10.96.0.13:53', '-> 10.244.2.9:8443', '198.18.1.0/24'])
      expect(text, a).toContain(a);
    expect(text).toContain('external clients: DNAT, 1 backend');
    expect(text).toMatch(/^sy_svc4_v2 +\d+ +262144 +0\.0%$/m);
    expect(text).toMatch(/^eth0 +sy_from_net +sy_to_net$/m);
    await expect(text).toMatchFileSnapshot('golden/status.txt');
    const doc = JSON.parse(formatStatusJson(s)) as DataplaneStatus;
    expect(doc).toStrictEqual(JSON.parse(JSON.stringify(s)));
    expect(doc.schema).toBe('switchyard.status/v1');
    expect(Object.keys(doc.frontends[0] as object)).toStrictEqual([
      'family',
      'address',
      'port',
      'protocol',
      'kind',
      'id',
      'internal',
      'external',
      'sharedScope',
      'externalTrafficPolicy',
      'sourceRanges',
      'affinity',
      'counters',
      'problems',
    ]);
  });

  test('left-over entries are a note (not counted), a damaged slot a problem of its frontend', async () => {
    const { fake } = await programmed();
    const svc4 = BpfMap.openPinned(`${PIN}/${MAPS.svc4.name}`, fake);
    const backend4 = BpfMap.openPinned(`${PIN}/${MAPS.backend4.name}`, fake);
    try {
      // A backend no slot points at (a crash before phase 5).
      await backend4.update([[encode(u32Codec, 999), encode(backend4Codec, { addr: '10.244.9.9', port: 1, proto: 'TCP', flags: 0 })]]);
      expect((await statusOf(fake)).notes).toStrictEqual([
        'sy_backend4_v2: 1 entry left over from an interrupted sync, not counted above (a daemon removes them when it starts)',
      ]);
      // Slot 2 of the ClusterIP 10.96.0.10:80 removed (whichever generation holds it: deleting an absent key is no error).
      const slot = { addr: '10.96.0.10', port: 80, proto: 'TCP', scope: SY_SCOPE_INTERNAL, slot: 2 } as const;
      await svc4.delete([encode(svc4KeyCodec, { ...slot, gen: 0 }), encode(svc4KeyCodec, { ...slot, gen: 1 })]);
    } finally {
      svc4.close();
      backend4.close();
    }
    const s = await statusOf(fake);
    const web = s.frontends.find((f) => f.address === '10.96.0.10');
    expect(web?.problems).toStrictEqual(['internal: slot 2 is missing']);
    expect(web?.internal.backends.length).toBe(1);
    expect(formatStatusText(s)).toContain('! internal: slot 2 is missing');
  });

  test('nothing pinned; layout 1 maps only; both layouts (an upgrade not finished)', async () => {
    const fake = new FakeNativeBinding();
    fake.ensureBpffs(PIN);
    expect(await read(fake)).toStrictEqual({ kind: 'nothing' });
    fake.pinMap(`${PIN}/${V1.svc.name}`, V1.svc);
    fake.pinMap(`${PIN}/${V1.ct.name}`, V1.ct);
    expect(await read(fake)).toStrictEqual({ kind: 'layout1', maps: [V1.svc.name, V1.ct.name] });
    fake.pinMap(`${PIN}/${MAPS.svc4.name}`, MAPS.svc4);
    const s = await statusOf(fake);
    expect(s.frontends).toStrictEqual([]);
    expect(
      s.tables.map((t) => t.name),
      'a map that is not pinned has no fill',
    ).toStrictEqual([MAPS.svc4.name]);
    expect(s.notes.join('\n')).toMatch(/^not pinned: sy_svc6_v2, sy_backend4_v2, .* \(read as empty\)$/m);
    expect(s.notes.join('\n')).toContain('layout 1 maps are still pinned (sy_svc4_v1, sy_ct4_v1)');
  });
});

describe('the tables', () => {
  const backend = { address: '10.244.1.5', port: 8080, local: true, weight: 2, terminating: true, counters: { packets: 7, bytes: 700, connections: 1 } };
  const scope = { action: 'DNAT', masquerade: false, backends: [backend] } as const;
  const model: DataplaneStatus = {
    schema: 'switchyard.status/v1',
    dataplane: 'ipvs',
    source: 'ipvs',
    layout: 1,
    daemonPids: [42],
    frontends: [
      {
        family: 'IPv4',
        address: '10.96.0.10',
        port: 80,
        protocol: 'TCP',
        kind: 'ClusterIP',
        id: null,
        internal: scope,
        external: scope,
        sharedScope: true,
        externalTrafficPolicy: null,
        sourceRanges: [],
        affinity: { timeoutSeconds: 10800 },
        counters: { packets: 12, bytes: 3400, connections: 3 },
        problems: [],
      },
    ],
    tables: [],
    attachments: [],
    socketHooks: [],
    notes: [],
  };

  test('counters, weights, terminating backends and affinity (another dataplane, or counters later) get their columns and flags', () => {
    expect(formatStatusText(model).split('\n').slice(0, 6)).toStrictEqual([
      'ipvs dataplane, layout 1, read from ipvs; daemon pid 42 holds them',
      '',
      'Frontends (1):',
      'PROTO  FRONTEND              KIND       ACTION  BACKENDS  FLAGS                       PACKETS  BYTES  CONNS',
      'TCP    10.96.0.10:80         ClusterIP  DNAT           1  affinity=10800s                  12   3400      3',
      '         -> 10.244.1.5:8080                               local weight=2 terminating        7    700      1',
    ]);
  });
});

describe('the status command', () => {
  const run = async (fake: FakeNativeBinding, ...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await status(argv, { native: fake, out: (t) => out.push(t), err: (t) => err.push(t) });
    return { code, out: out.join(''), err: err.join('') };
  };

  test('exit 3 with one line when nothing is pinned, 4 for layout 1 only, 0 with the JSON document', async () => {
    const empty = new FakeNativeBinding();
    const none = await run(empty, `--bpf-pin-path=${PIN}`, '--json');
    expect(none).toStrictEqual({
      code: STATUS_EXIT.nothingPinned,
      out: '',
      err: `switchyard status: nothing is pinned under ${PIN}: no daemon has run here with --bpf-pin-path ${PIN} (or cleanup removed it)\n`,
    });
    const v1 = new FakeNativeBinding();
    v1.ensureBpffs(PIN);
    v1.pinMap(`${PIN}/${V1.svc.name}`, V1.svc);
    const old = await run(v1, `--bpf-pin-path=${PIN}`);
    expect(old.code).toBe(STATUS_EXIT.layout1Only);
    expect(old.err).toMatch(/^switchyard status: \/sys\/fs\/bpf\/switchyard holds layout 1 maps only \(sy_svc4_v1\), .*migrates them to when it starts\n$/);
    const { fake } = await programmed();
    const ok = await run(fake, `--bpf-pin-path=${PIN}`, '--json');
    expect(ok.code, ok.err).toBe(0);
    const doc = JSON.parse(ok.out) as DataplaneStatus;
    expect(doc.frontends.map((f) => `${f.address}:${f.port}`)).toContain('198.19.0.30:443');
    expect(doc.source).toBe(PIN);
  });
});
