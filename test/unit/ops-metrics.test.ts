// The metrics server: kube-proxy's names, types, labels and buckets on
// /metrics, /proxyMode and /healthz on 127.0.0.1 ephemeral ports, the
// switchyard_* series fed through DataplaneStats, and a scrape that
// `promtool check metrics` accepts (Debian's prometheus package,
// scripts/setup.sh installs it).

import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, test } from 'vitest';
import { NETWORK_PROGRAMMING_BUCKETS, ProxyMetrics, SYNC_BUCKETS, dataplaneStatsOf, type DataplaneStats } from '../../src/ops/metrics.ts';
import type { Listening } from '../../src/ops/http.ts';
import { needs } from '../support/requirements.ts';

const open: Listening[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

const noPromtool = needs('the promtool exposition check', ['promtool']);
const NOW = 1_767_225_600_000; // 2026-01-01T00:00:00Z

function metrics(stats?: DataplaneStats) {
  const m = new ProxyMetrics({ families: ['IPv4'], proxyMode: 'bpf', now: () => NOW, pending: () => ({ servicesPending: 2, endpointsPending: 5 }) });
  m.setDataplaneStats(stats);
  return m;
}

/** "# TYPE name type" lines of an exposition. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

describe("kube-proxy's metrics", () => {
  test('names and types', async () => {
    const t = types(await metrics().scrape());
    const want: Record<string, string> = {
      kubeproxy_sync_proxy_rules_duration_seconds: 'histogram',
      kubeproxy_sync_full_proxy_rules_duration_seconds: 'histogram',
      kubeproxy_sync_partial_proxy_rules_duration_seconds: 'histogram',
      kubeproxy_network_programming_duration_seconds: 'histogram',
      kubeproxy_sync_proxy_rules_last_timestamp_seconds: 'gauge',
      kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds: 'gauge',
      kubeproxy_sync_proxy_rules_endpoint_changes_pending: 'gauge',
      kubeproxy_sync_proxy_rules_endpoint_changes_total: 'counter',
      kubeproxy_sync_proxy_rules_service_changes_pending: 'gauge',
      kubeproxy_sync_proxy_rules_service_changes_total: 'counter',
      // a gauge in kube-proxy; untyped so that promtool accepts the _total name
      kubeproxy_sync_proxy_rules_no_local_endpoints_total: 'untyped',
      kubeproxy_proxy_healthz_total: 'counter',
      kubeproxy_proxy_livez_total: 'counter',
      kubeproxy_conntrack_reconciler_sync_duration_seconds: 'histogram',
      kubeproxy_conntrack_reconciler_deleted_entries_total: 'counter',
      switchyard_sync_failures_total: 'counter',
      switchyard_bpf_map_entries: 'gauge',
      switchyard_bpf_map_capacity: 'gauge',
      switchyard_bpf_program_attached: 'gauge',
      process_cpu_seconds_total: 'counter',
    };
    for (const [name, type] of Object.entries(want)) expect(t.get(name), name).toBe(type);
  });

  test('buckets as kube-proxy: 1 ms doubling x15; network programming 0, 0.25, 0.5, 1..59, 60..115/5, 120..300/30', () => {
    expect(SYNC_BUCKETS[0]).toBe(0.001);
    expect(SYNC_BUCKETS).toHaveLength(15);
    expect(SYNC_BUCKETS[14]).toBeCloseTo(16.384, 9);
    expect(NETWORK_PROGRAMMING_BUCKETS.slice(0, 5)).toEqual([0, 0.25, 0.5, 1, 2]);
    expect(NETWORK_PROGRAMMING_BUCKETS).toHaveLength(1 + 2 + 59 + 12 + 7);
    expect(NETWORK_PROGRAMMING_BUCKETS.slice(-8)).toEqual([115, 120, 150, 180, 210, 240, 270, 300]);
  });

  test('sync attempts, queue time, changes, no-local-endpoints, health codes, conntrack: values and labels', async () => {
    const m = metrics();
    m.queued();
    m.syncAttempt({ full: true, seconds: 0.003, ok: true });
    m.syncAttempt({ full: false, seconds: 0.0005, ok: false });
    m.networkProgrammed('IPv4', 1.5);
    m.changeSeen('Service');
    m.changeSeen('EndpointSlice');
    m.changeSeen('EndpointSlice');
    m.noLocalEndpoints('IPv4', 1, 2);
    m.healthz(200);
    m.healthz(503);
    m.livez(200);
    m.conntrackReconciled('IPv4', 0.01, 4);
    m.conntrackGc(100, 6, 0.25);
    m.conntrackGc(94, 0, 0.125);
    const text = await m.scrape();
    const lines = [
      'kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 2',
      'kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{le="0.004",ip_family="IPv4"} 1',
      'kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{le="0.002",ip_family="IPv4"} 0',
      'kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket{le="0.001",ip_family="IPv4"} 1',
      `kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} ${NOW / 1000}`,
      `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family="IPv4"} ${NOW / 1000}`,
      'kubeproxy_network_programming_duration_seconds_bucket{le="2",ip_family="IPv4"} 1',
      'kubeproxy_network_programming_duration_seconds_bucket{le="1",ip_family="IPv4"} 0',
      'kubeproxy_sync_proxy_rules_service_changes_total 1',
      'kubeproxy_sync_proxy_rules_endpoint_changes_total 2',
      'kubeproxy_sync_proxy_rules_service_changes_pending 2',
      'kubeproxy_sync_proxy_rules_endpoint_changes_pending 5',
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"} 1',
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"} 2',
      'kubeproxy_proxy_healthz_total{code="200"} 1',
      'kubeproxy_proxy_healthz_total{code="503"} 1',
      'kubeproxy_proxy_livez_total{code="200"} 1',
      'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"} 4',
      'switchyard_conntrack_gc_passes_total 2',
      'switchyard_conntrack_gc_entries_scanned_total 194',
      'switchyard_conntrack_gc_entries_deleted_total 6',
      'switchyard_conntrack_gc_last_pass_duration_seconds 0.125',
      'switchyard_sync_failures_total{full="false"} 1',
    ];
    for (const l of lines) expect(text.split('\n'), l).toContain(l);
    expect(text).not.toMatch(/switchyard_sync_failures_total\{full="true"\}/);
  });
});

describe('switchyard_* from a dataplane', () => {
  test('no series without a source; map fill, attach state and traffic counters from DataplaneStats', async () => {
    expect(await metrics().scrape()).not.toMatch(/^switchyard_bpf_map_entries\{/m);
    const dp = {
      name: 'bpf',
      mapUsage: () => [{ map: 'sy_svc4_v2', entries: 3, capacity: 65536 }],
      programAttachments: async () => [{ program: 'sy_from_pod', attachPoint: 'veth1', hook: 'ingress', attached: false }],
      trafficCounters: () => ({
        services: [
          {
            namespace: 'ns',
            service: 'web',
            portName: 'http',
            protocol: 'TCP',
            frontend: 'clusterIP',
            ipFamily: 'IPv4',
            packets: 10,
            bytes: 1500,
            replyPackets: 8,
            replyBytes: 4000,
            connections: 2,
          },
        ],
        backends: [{ endpoint: '10.244.1.2:8080', protocol: 'TCP', packets: 10, bytes: 1500, replyPackets: 8, replyBytes: 4000, connections: 2 }],
      }),
    };
    const stats = dataplaneStatsOf(dp);
    expect(stats && Object.keys(stats).sort()).toEqual(['mapUsage', 'programAttachments', 'trafficCounters']);
    expect(dataplaneStatsOf({ name: 'ipvs' })).toBeUndefined();
    const text = (await metrics(stats).scrape()).split('\n');
    expect(text).toContain('switchyard_bpf_map_entries{map="sy_svc4_v2"} 3');
    expect(text).toContain('switchyard_bpf_map_capacity{map="sy_svc4_v2"} 65536');
    expect(text).toContain('switchyard_bpf_program_attached{program="sy_from_pod",attach_point="veth1",hook="ingress"} 0');
    const svc = 'namespace="ns",service="web",port_name="http",protocol="TCP",frontend="clusterIP",ip_family="IPv4"';
    expect(text).toContain(`switchyard_service_packets_total{${svc},direction="original"} 10`);
    expect(text).toContain(`switchyard_service_packets_total{${svc},direction="reply"} 8`);
    expect(text).toContain(`switchyard_service_bytes_total{${svc},direction="original"} 1500`);
    expect(text).toContain(`switchyard_service_bytes_total{${svc},direction="reply"} 4000`);
    expect(text).toContain(`switchyard_service_connections_total{${svc}} 2`);
    expect(text).toContain('switchyard_backend_packets_total{endpoint="10.244.1.2:8080",protocol="TCP",direction="original"} 10');
    expect(text).toContain('switchyard_backend_bytes_total{endpoint="10.244.1.2:8080",protocol="TCP",direction="reply"} 4000');
    expect(text).toContain('switchyard_backend_connections_total{endpoint="10.244.1.2:8080",protocol="TCP"} 2');
  });

  test('the datapath event counters by event, lower case; none before start; a failed read leaves them out', async () => {
    const events = { SVC_HIT: 12n, CT_NEW: 4n, CT_MIDSTREAM: 1n, DROP_NO_PORT: 0n };
    let fail = false;
    let started = false;
    const stats = dataplaneStatsOf({
      name: 'bpf',
      datapathEvents: async () => {
        if (fail) throw new Error('dump sy_stats_v2: EPERM');
        return started ? events : null;
      },
    });
    expect(stats && Object.keys(stats)).toEqual(['datapathEvents']);
    const m = metrics(stats);
    expect(await m.scrape()).not.toMatch(/^switchyard_bpf_datapath_events_total\{/m);
    started = true;
    const text = (await m.scrape()).split('\n');
    expect(text).toContain('switchyard_bpf_datapath_events_total{event="svc_hit"} 12');
    expect(text).toContain('switchyard_bpf_datapath_events_total{event="ct_midstream"} 1');
    expect(text).toContain('switchyard_bpf_datapath_events_total{event="drop_no_port"} 0');
    fail = true;
    expect(await m.scrape()).not.toMatch(/^switchyard_bpf_datapath_events_total\{/m);
  });

  test('rows with the same labels are summed; counters come from one read per scrape', async () => {
    let reads = 0;
    const r = (frontend: string, packets: number) => ({
      namespace: 'ns',
      service: 'web',
      portName: '',
      protocol: 'UDP',
      frontend,
      ipFamily: 'IPv4',
      packets,
      bytes: packets * 100,
      replyPackets: 0,
      replyBytes: 0,
      connections: 1,
    });
    const text = (
      await metrics({
        trafficCounters: async () => {
          reads++;
          return { services: [r('externalIP', 3), r('externalIP', 4), r('clusterIP', 1)], backends: [] };
        },
      }).scrape()
    ).split('\n');
    const l = (frontend: string) => `namespace="ns",service="web",port_name="",protocol="UDP",frontend="${frontend}",ip_family="IPv4"`;
    expect(text).toContain(`switchyard_service_packets_total{${l('externalIP')},direction="original"} 7`);
    expect(text).toContain(`switchyard_service_connections_total{${l('externalIP')}} 2`);
    expect(text).toContain(`switchyard_service_packets_total{${l('clusterIP')},direction="original"} 1`);
    expect(text.filter((x) => x.startsWith('switchyard_backend_'))).toEqual([]);
    expect(reads).toBe(1);
    const failing = await metrics({
      mapUsage: () => [{ map: 'sy_svc4_v2', entries: 3, capacity: 65536 }],
      trafficCounters: async () => {
        throw new Error('dump sy_svc_cnt_v2: EPERM');
      },
    }).scrape();
    expect(failing, 'a failed counter read leaves the rest of the scrape').toContain('switchyard_bpf_map_entries{map="sy_svc4_v2"} 3');
    expect(failing).not.toMatch(/^switchyard_service_packets_total\{/m);
  });
});

describe('the metrics server', () => {
  test('/metrics in the text format, /proxyMode, /healthz, 404 elsewhere', async () => {
    const m = metrics();
    const s = await m.serve('127.0.0.1:0');
    open.push(s);
    const base = `http://127.0.0.1:${s.port}`;
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await r.text()).toMatch(/^# HELP kubeproxy_sync_proxy_rules_duration_seconds SyncProxyRules latency in seconds$/m);
    const mode = await fetch(`${base}/proxyMode`);
    expect(await mode.text()).toBe('bpf');
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  test.skipIf(noPromtool)('promtool check metrics accepts a scrape with every series present', async () => {
    const m = metrics({
      mapUsage: () => [{ map: 'sy_svc4_v2', entries: 3, capacity: 65536 }],
      programAttachments: () => [{ program: 'sy_from_pod', attachPoint: 'veth1', hook: 'ingress', attached: true }],
      trafficCounters: () => ({
        services: [
          {
            namespace: 'ns',
            service: 'web',
            portName: 'http',
            protocol: 'TCP',
            frontend: 'clusterIP',
            ipFamily: 'IPv4',
            packets: 10,
            bytes: 1500,
            replyPackets: 8,
            replyBytes: 4000,
            connections: 2,
          },
        ],
        backends: [{ endpoint: '10.244.1.2:8080', protocol: 'TCP', packets: 10, bytes: 1500, replyPackets: 8, replyBytes: 4000, connections: 2 }],
      }),
    });
    m.queued();
    m.syncAttempt({ full: true, seconds: 0.01, ok: true });
    m.syncAttempt({ full: true, seconds: 0.01, ok: false });
    m.networkProgrammed('IPv4', 0.3);
    m.noLocalEndpoints('IPv4', 0, 1);
    m.healthz(200);
    m.livez(503);
    m.conntrackReconciled('IPv4', 0.002, 1);
    m.dataplaneStarted(true);
    const s = await m.serve('127.0.0.1:0');
    open.push(s);
    const scrape = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: scrape, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim(), 'promtool findings').toBe('');
    expect(r.status).toBe(0);
  });
});
