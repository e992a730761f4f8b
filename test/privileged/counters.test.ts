// End to end, real kernel, real traffic: the datapath's traffic counters
// (sy_svc_cnt_v2, sy_be_cnt4_v2) on the client's node match the traffic a
// pod sent through a ClusterIP, per frontend and per backend, read back from
// the pinned maps (readPinnedCounters, what `switchyard status` reads) and
// scraped from the daemon's /metrics; they survive a daemon restart; and an
// id a new Service gets after a restart (the quarantine is gone with the old
// process) starts from zero.

import { describe, expect } from 'vitest';
import { readPinnedCounters, type RawCounters, type Traffic } from '../../src/dataplane/bpf/counters.ts';
import { decodeEntries, MAPS, ZERO_TRAFFIC } from '../../src/dataplane/bpf/layout.ts';
import { BpfMap, loadBinding } from '../../src/native/index.ts';
import type { Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import { formatBackendLine, type RequestResult } from '../../src/rig/protocol.ts';
import { startDaemon } from '../../src/rig/switchyard.ts';
import { needs } from '../support/requirements.ts';
import {
  type Backend,
  e2eTest,
  failures,
  requestService,
  serviceYaml,
  sliceYaml,
  startBackends,
  until,
  untilServed,
  WEB_PORTS,
  WEB_SLICE_PORTS,
} from './fixtures.ts';

const skip = needs('the traffic counter end-to-end suite', ['root', 'ip', 'bpf-object', 'native-addon']);

const VIP = '10.96.0.30';
const OTHER_VIP = '10.96.0.31';
const THIRD_VIP = '10.96.0.32';
/** `other` and `third` send UDP 53 to this target port: backends of their own (ids not shared with web's). */
const OTHER_TARGET = 5354;
/** The rig client's UDP request ("ping\n") as an IPv4 packet: 20 + 8 + 5 bytes. */
const UDP_REQUEST_BYTES = 33n;

interface Scenario {
  backends: Backend[];
  daemon: RigProcess;
}

function webYaml(eps: readonly Backend[]): string {
  return `${serviceYaml('web', VIP, WEB_PORTS)}---\n${sliceYaml('web', [...eps], WEB_SLICE_PORTS)}`;
}

function dnsOnlyYaml(name: string, vip: string, eps: readonly Backend[]): string {
  return `${serviceYaml(name, vip, [{ name: 'dns', port: 53, targetPort: OTHER_TARGET, protocol: 'UDP' }])}---\n${sliceYaml(name, [...eps], [{ name: 'dns', port: OTHER_TARGET, protocol: 'UDP' }])}`;
}

/** Every node's pin directory holds its maps; node 1 runs the daemon and the client. */
const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, manifests }, use) => {
      const s = { backends: [] as Backend[], daemon: null as RigProcess | null };
      try {
        s.backends = await startBackends(c, { tcp: [8080], udp: [5353, OTHER_TARGET] });
        manifests.write('web.yaml', webYaml(s.backends));
        manifests.write('other.yaml', dnsOnlyYaml('other', OTHER_VIP, s.backends.slice(0, 1)));
        s.daemon = startDaemon(c, c.node(1), manifests, pins, ['--metrics-bind-address=127.0.0.1:10249']);
        const d = s.daemon;
        await untilServed(c, 1, 'tcp', VIP, [d]);
        await untilServed(c, 1, 'udp', VIP, [d]);
        await untilServed(c, 1, 'udp', OTHER_VIP, [d]);
        await use(s as Scenario);
      } finally {
        await s.daemon?.stop();
      }
    },
    { scope: 'file', auto: true },
  ],
});

function pinDir(c: Cluster, pins: { dirFor(n: Cluster['nodes'][number]): string }): string {
  return pins.dirFor(c.node(1));
}

/** Dumps a pinned map of node 1. */
async function pinnedDump(dir: string, name: string): Promise<Array<[Buffer, Buffer]>> {
  const m = BpfMap.openPinned(`${dir}/${name}`, loadBinding());
  try {
    return await m.dump();
  } finally {
    m.close();
  }
}

/** The svc_id of a frontend (its internal master in sy_svc4_v2), undefined when not programmed. */
async function svcIdOf(dir: string, addr: string, port: number, proto: 'TCP' | 'UDP'): Promise<number | undefined> {
  const masters = decodeEntries('svc4', await pinnedDump(dir, MAPS.svc4.name));
  return masters.find(([k]) => k.addr === addr && k.port === port && k.proto === proto && k.slot === 0 && k.scope === 0)?.[1].svcId;
}

/** The id of each backend (addr:port/proto) in sy_backend4_v2. */
async function backendIds(dir: string): Promise<Map<string, number>> {
  return new Map(decodeEntries('backend4', await pinnedDump(dir, MAPS.backend4.name)).map(([id, b]) => [`${b.addr}:${b.port}/${b.proto}`, id]));
}

function minus(a: Traffic | undefined, b: Traffic | undefined): Traffic {
  const x = a ?? ZERO_TRAFFIC;
  const y = b ?? ZERO_TRAFFIC;
  return {
    packets: x.packets - y.packets,
    bytes: x.bytes - y.bytes,
    replyPackets: x.replyPackets - y.replyPackets,
    replyBytes: x.replyBytes - y.replyBytes,
    conns: x.conns - y.conns,
  };
}

/** UDP: what n answered requests must have moved (the reply is the backend's line, in an IPv4 UDP packet). */
function udpTraffic(results: readonly RequestResult[]): Traffic {
  let replyBytes = 0n;
  for (const r of results) {
    const line = formatBackendLine({ name: r.backend as string, client: r.seenClient as never, local: r.seenLocal as never });
    replyBytes += 28n + BigInt(Buffer.byteLength(line));
  }
  const n = BigInt(results.length);
  return { packets: n, bytes: n * UDP_REQUEST_BYTES, replyPackets: n, replyBytes, conns: n };
}

async function scrape(c: Cluster): Promise<string[]> {
  const r = await c.exec(c.node(1), ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:10249/metrics']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n');
}

/** One series' value from a scrape; undefined when absent. */
function series(lines: readonly string[], name: string, labels: string): number | undefined {
  const prefix = `${name}{${labels}} `;
  const line = lines.find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

describe.skipIf(skip)('traffic counters of a ClusterIP through the daemon', () => {
  test('UDP: packets, bytes, replies and connections match the requests exactly, on the frontend and on each backend', async ({
    cluster: c,
    pins,
    scenario: s,
  }) => {
    const dir = pinDir(c, pins);
    const native = loadBinding();
    const svc = await svcIdOf(dir, VIP, 53, 'UDP');
    expect(svc, 'web:53/UDP is programmed').toBeDefined();
    const ids = await backendIds(dir);
    const before = await readPinnedCounters(native, dir);
    const results = await requestService(c, 1, 'udp', VIP, 40);
    expect(failures(results).map((r) => r.error)).toStrictEqual([]);
    const after = await readPinnedCounters(native, dir);
    expect(minus(after.services.get(svc as number), before.services.get(svc as number)), 'the frontend').toStrictEqual(udpTraffic(results));
    for (const b of s.backends) {
      const id = ids.get(`${b.ip}:5353/UDP`) as number;
      expect(id, `${b.name} has a backend id`).toBeDefined();
      const mine = results.filter((r) => r.backend === b.name);
      expect(minus(after.backends.IPv4.get(id), before.backends.IPv4.get(id)), `backend ${b.name} (id ${id})`).toStrictEqual(udpTraffic(mine));
    }
  });

  test('TCP: one connection per request on the frontend and on the backend that answered; the frontend carries what its backends carried', async ({
    cluster: c,
    pins,
    scenario: s,
  }) => {
    const dir = pinDir(c, pins);
    const native = loadBinding();
    const svc = (await svcIdOf(dir, VIP, 80, 'TCP')) as number;
    const ids = await backendIds(dir);
    const tcpIds = s.backends.map((b) => ids.get(`${b.ip}:8080/TCP`) as number);
    const before = await readPinnedCounters(native, dir);
    const results = await requestService(c, 1, 'tcp', VIP, 20);
    expect(failures(results).map((r) => r.error)).toStrictEqual([]);
    // The connections' last packets (FIN, ACK) may still be on their way when the client returns: wait until the counts stop moving.
    let after: RawCounters = await readPinnedCounters(native, dir);
    await until('the TCP counters settle', async () => {
      const again = await readPinnedCounters(native, dir);
      const same =
        JSON.stringify(again, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) ===
        JSON.stringify(after, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      after = again;
      return same;
    }, [s.daemon]);
    const front = minus(after.services.get(svc), before.services.get(svc));
    expect(front.conns).toBe(20n);
    const perBackend = tcpIds.map((id) => minus(after.backends.IPv4.get(id), before.backends.IPv4.get(id)));
    s.backends.forEach((b, i) => {
      expect(perBackend[i]?.conns, `connections to ${b.name}`).toBe(BigInt(results.filter((r) => r.backend === b.name).length));
    });
    const sum = (f: keyof Traffic): bigint => perBackend.reduce((a, t) => a + t[f], 0n);
    expect(front).toStrictEqual({
      packets: sum('packets'),
      bytes: sum('bytes'),
      replyPackets: sum('replyPackets'),
      replyBytes: sum('replyBytes'),
      conns: sum('conns'),
    });
    // Each connection: at least SYN, ACK, request from the client; SYN-ACK and the answer back.
    expect(front.packets).toBeGreaterThanOrEqual(3n * 20n);
    expect(front.replyPackets).toBeGreaterThanOrEqual(2n * 20n);
  });

  test('/metrics: the Service port and each endpoint that carried traffic, with the values the maps hold', async ({ cluster: c, pins, scenario: s }) => {
    const dir = pinDir(c, pins);
    const raw = await readPinnedCounters(loadBinding(), dir);
    const svc = (await svcIdOf(dir, VIP, 53, 'UDP')) as number;
    const t = raw.services.get(svc) as Traffic;
    const lines = await scrape(c);
    const labels = 'namespace="default",service="web",port_name="dns",protocol="UDP",frontend="clusterIP",ip_family="IPv4"';
    expect(series(lines, 'switchyard_service_connections_total', labels)).toBe(Number(t.conns));
    expect(series(lines, 'switchyard_service_packets_total', `${labels},direction="original"`)).toBe(Number(t.packets));
    expect(series(lines, 'switchyard_service_packets_total', `${labels},direction="reply"`)).toBe(Number(t.replyPackets));
    expect(series(lines, 'switchyard_service_bytes_total', `${labels},direction="original"`)).toBe(Number(t.bytes));
    expect(series(lines, 'switchyard_service_bytes_total', `${labels},direction="reply"`)).toBe(Number(t.replyBytes));
    const ids = await backendIds(dir);
    for (const b of s.backends) {
      const bt = raw.backends.IPv4.get(ids.get(`${b.ip}:5353/UDP`) as number) as Traffic;
      expect(series(lines, 'switchyard_backend_connections_total', `endpoint="${b.ip}:5353",protocol="UDP"`), b.name).toBe(Number(bt.conns));
      expect(series(lines, 'switchyard_backend_packets_total', `endpoint="${b.ip}:5353",protocol="UDP",direction="reply"`), b.name).toBe(
        Number(bt.replyPackets),
      );
    }
  });

  test('a daemon restart keeps the counters; an id a new Service gets after it (no quarantine across restarts) starts from zero', async ({
    cluster: c,
    pins,
    manifests,
    scenario: s,
  }) => {
    const dir = pinDir(c, pins);
    const native = loadBinding();
    // `other` carries traffic, then goes: its svc_id and backend id (and their counters) are freed.
    expect(failures(await requestService(c, 1, 'udp', OTHER_VIP, 5))).toStrictEqual([]);
    const otherSvc = (await svcIdOf(dir, OTHER_VIP, 53, 'UDP')) as number;
    const otherBe = (await backendIds(dir)).get(`${s.backends[0]?.ip}:${OTHER_TARGET}/UDP`) as number;
    const counted = await readPinnedCounters(native, dir);
    expect(counted.services.get(otherSvc)?.conns).toBeGreaterThanOrEqual(5n);
    manifests.remove('other.yaml');
    await until('other is removed', async () => (await svcIdOf(dir, OTHER_VIP, 53, 'UDP')) === undefined, [s.daemon]);
    const gone = await readPinnedCounters(native, dir);
    expect([gone.services.has(otherSvc), gone.backends.IPv4.has(otherBe)], 'counters deleted with the ids').toStrictEqual([false, false]);

    const webSvc = (await svcIdOf(dir, VIP, 53, 'UDP')) as number;
    await s.daemon.stop();
    const whileDown = await readPinnedCounters(native, dir);
    expect(whileDown.services.get(webSvc), 'pinned: the counters outlive the daemon').toStrictEqual(gone.services.get(webSvc));
    // `third` appears while no daemon runs: the restarted one hands it the lowest free ids, other's.
    manifests.write('third.yaml', dnsOnlyYaml('third', THIRD_VIP, s.backends.slice(0, 1)));
    s.daemon = startDaemon(c, c.node(1), manifests, pins, ['--metrics-bind-address=127.0.0.1:10249']);
    await until('third is programmed', async () => (await svcIdOf(dir, THIRD_VIP, 53, 'UDP')) !== undefined, [s.daemon]);
    const restarted = await readPinnedCounters(native, dir);
    expect(restarted.services.get(webSvc), 'adopted, not reset').toStrictEqual(gone.services.get(webSvc));
    const thirdSvc = await svcIdOf(dir, THIRD_VIP, 53, 'UDP');
    const thirdBe = (await backendIds(dir)).get(`${s.backends[0]?.ip}:${OTHER_TARGET}/UDP`);
    expect([thirdSvc, thirdBe], "third reuses other's ids").toStrictEqual([otherSvc, otherBe]);
    expect([restarted.services.get(otherSvc), restarted.backends.IPv4.get(otherBe)], 'from zero').toStrictEqual([ZERO_TRAFFIC, ZERO_TRAFFIC]);
    const results = await requestService(c, 1, 'udp', THIRD_VIP, 7);
    expect(failures(results)).toStrictEqual([]);
    const after = await readPinnedCounters(native, dir);
    expect(after.services.get(otherSvc), "third's frontend: its own 7 requests only").toStrictEqual(udpTraffic(results));
    expect(after.backends.IPv4.get(otherBe), "third's backend: its own 7 requests only").toStrictEqual(udpTraffic(results));
  });
});
