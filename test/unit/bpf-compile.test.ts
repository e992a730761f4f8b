// compile() (layout 2): every frontend kind of both families from the
// model's verdicts, internal and external scopes, actions, flags, source
// ranges, backends sorted and deduplicated per family; bad input reported
// per field without stopping the rest; conflicts won by the lowest id;
// compileChanged() equal to a full compile.

import { expect, test } from 'vitest';
import type { Protocol, ServicePortInfo } from '../../src/model/types.ts';
import { compile, compileChanged, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import {
  SY_ACT_DROP,
  SY_ACT_FORWARD,
  SY_ACT_REJECT,
  SY_SVC_F_AFFINITY,
  SY_SVC_F_CLUSTER_IP,
  SY_SVC_F_EXT_SCOPE,
  SY_SVC_F_MASQ,
  SY_SVC_F_MASQ_EXT,
  SY_SVC_F_SRC_RANGES,
} from '../../src/dataplane/bpf/layout.ts';
import { formatBackendKey, l4Key } from '../../src/dataplane/bpf/state.ts';
import type { DesiredScope, DesiredState } from '../../src/dataplane/bpf/state.ts';
import { endpoint, servicePortInfo, snapshot, TEST_NODE } from '../support/snapshots.ts';

function sp(
  id: string,
  clusterIPs: string[],
  port: number,
  eps: Array<[string, number]>,
  protocol: Protocol = 'TCP',
  more: Partial<ServicePortInfo> = {},
): ServicePortInfo {
  const [ns = '', rest = ''] = id.split('/');
  const endpoints = eps.map(([ip, p]) => endpoint(ip.includes(':') ? `[${ip}]:${p}` : `${ip}:${p}`));
  return servicePortInfo({ namespace: ns, name: rest.split(':')[0] ?? '', portName: rest.split(':')[1] ?? '', protocol, clusterIPs, port, endpoints, ...more });
}

const OFF = compileOptions();
const NODE = compileOptions({ nodeIPs: ['198.18.0.1', 'fd00:198:18::1', '192.0.2.7'] });

function scopeText(s: DesiredScope | null | undefined): string {
  if (s === null || s === undefined) return '-';
  const action = ['forward', 'reject', 'drop'][s.action];
  return `${action} 0x${s.flags.toString(16).padStart(2, '0')} [${s.backends.map((b) => `${l4Key(b)}${b.flags ? ' local' : ''}`).join(' ')}]`;
}

/** Desired state as plain sorted data. */
function plain(d: DesiredState): unknown {
  return {
    services: d.services.sortedKeys().map((k) => {
      const s = d.services.get(k);
      return [k, s?.owner, s?.kind, scopeText(s?.internal), scopeText(s?.external), s?.sourceRanges, s?.internal.backendKeys.map(formatBackendKey)];
    }),
    problems: d.problems,
  };
}

function lines(d: DesiredState): string[] {
  return d.services.sortedKeys().map((k) => {
    const s = d.services.get(k);
    const ranges = s?.sourceRanges.length ? ` ranges ${s.sourceRanges.join(',')}` : '';
    return `${k} ${s?.kind}: int ${scopeText(s?.internal)} ext ${scopeText(s?.external)}${ranges}`;
  });
}

test('ClusterIPs of both families: one frontend each, backends of its family, sorted, deduplicated; CLUSTER_IP flag', () => {
  const d = compile(
    snapshot([
      sp('ns/web:http', ['10.96.0.10', 'fd00:10:96::10'], 80, [
        ['10.244.0.10', 8080],
        ['10.244.0.9', 8080],
        ['fd00:10:244::9', 8080],
        ['10.244.0.9', 8080],
        ['10.244.0.9', 8079],
      ]),
    ]),
    OFF,
  );
  expect(lines(d)).toStrictEqual([
    '10.96.0.10:80/TCP clusterIP: int forward 0x40 [10.244.0.9:8079/TCP 10.244.0.9:8080/TCP 10.244.0.10:8080/TCP] ext -',
    '[fd00:10:96::10]:80/TCP clusterIP: int forward 0x40 [[fd00:10:244::9]:8080/TCP] ext -',
  ]);
  const v6 = d.services.get('[fd00:10:96::10]:80/TCP');
  expect(v6?.family).toBe('IPv6');
  expect(v6?.owner).toBe('ns/web:http/TCP');
  expect(d.problems).toStrictEqual([]);
  expect(d.changed).toBe('all');
  expect(SY_SVC_F_CLUSTER_IP).toBe(0x40);
});

test('NodePort on every node address of each family; --nodeport-addresses narrows them', () => {
  const s = sp(
    'ns/np:',
    ['10.96.0.1', 'fd00:10:96::1'],
    80,
    [
      ['10.244.1.1', 8080],
      ['fd00:10:244:1::1', 8080],
    ],
    'UDP',
    { nodePort: 30080 },
  );
  const all = compile(snapshot([s]), NODE);
  expect(all.services.sortedKeys()).toStrictEqual([
    '10.96.0.1:80/UDP',
    '192.0.2.7:30080/UDP',
    '198.18.0.1:30080/UDP',
    '[fd00:10:96::1]:80/UDP',
    '[fd00:198:18::1]:30080/UDP',
  ]);
  const np = all.services.get('198.18.0.1:30080/UDP');
  // externalTrafficPolicy Cluster: every client is masqueraded, one scope for all.
  expect(scopeText(np?.internal)).toBe(`forward 0x${(SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT).toString(16).padStart(2, '0')} [10.244.1.1:8080/UDP]`);
  expect(np?.external).toBe(null);
  expect(np?.kind).toBe('nodePort');

  const narrow = compile(snapshot([s]), { ...NODE, nodePortAddresses: ['198.18.0.0/15', 'fd00:198:18::/64'] });
  expect(narrow.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/UDP', '198.18.0.1:30080/UDP', '[fd00:10:96::1]:80/UDP', '[fd00:198:18::1]:30080/UDP']);
  const none = compile(snapshot([s]), OFF);
  expect(none.services.sortedKeys(), 'no node address known: no NodePort frontend').toStrictEqual(['10.96.0.1:80/UDP', '[fd00:10:96::1]:80/UDP']);
  const lo = compile(snapshot([s]), { ...NODE, nodePortAddresses: ['198.18.0.0/15'], localhostNodePorts: true });
  expect(lo.services.sortedKeys(), 'localhost NodePorts: 127.0.0.1 too, IPv4 only').toStrictEqual([
    '10.96.0.1:80/UDP',
    '127.0.0.1:30080/UDP',
    '198.18.0.1:30080/UDP',
    '[fd00:10:96::1]:80/UDP',
  ]);
  expect(lo.services.get('127.0.0.1:30080/UDP')?.kind).toBe('nodePort');
});

test('ExternalIP and LoadBalancer IP frontends; source ranges on the LoadBalancer IP only', () => {
  const s = sp('ns/lb:', ['10.96.0.2'], 443, [['10.244.1.2', 8443]], 'TCP', {
    nodePort: 31443,
    externalIPs: ['198.18.1.10'],
    loadBalancerIPs: ['198.18.2.10'],
    loadBalancerSourceRanges: ['203.0.113.77/24', '198.51.100.0/24'],
  });
  const d = compile(snapshot([s]), NODE);
  const masq = `0x${(SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT).toString(16).padStart(2, '0')}`;
  const ranged = `0x${(SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT | SY_SVC_F_SRC_RANGES).toString(16).padStart(2, '0')}`;
  expect(lines(d)).toStrictEqual([
    '10.96.0.2:443/TCP clusterIP: int forward 0x40 [10.244.1.2:8443/TCP] ext -',
    `192.0.2.7:31443/TCP nodePort: int forward ${masq} [10.244.1.2:8443/TCP] ext -`,
    `198.18.0.1:31443/TCP nodePort: int forward ${masq} [10.244.1.2:8443/TCP] ext -`,
    `198.18.1.10:443/TCP externalIP: int forward ${masq} [10.244.1.2:8443/TCP] ext -`,
    `198.18.2.10:443/TCP loadBalancer: int forward ${ranged} [10.244.1.2:8443/TCP] ext - ranges 198.51.100.0/24,203.0.113.0/24`,
  ]);
  // A range holding a node address lets the LoadBalancer IPs in too (the model's allowedSources).
  const withNode = compile(snapshot([{ ...s, loadBalancerSourceRanges: ['198.18.0.0/24'] }]), NODE);
  expect(withNode.services.get('198.18.2.10:443/TCP')?.sourceRanges).toStrictEqual(['198.18.0.0/24', '198.18.2.10/32']);
});

test('externalTrafficPolicy Local: an external scope with the local endpoints; DROP when none is local', () => {
  const eps = [endpoint('10.244.1.5:80', TEST_NODE), endpoint('10.244.2.5:80', 'node-b')];
  const local = servicePortInfo({ name: 'loc', clusterIPs: ['10.96.0.3'], nodePort: 30003, externalPolicyLocal: true, endpoints: eps });
  const d = compile(snapshot([local]), compileOptions({ nodeIPs: ['198.18.0.1'], localCIDRs: ['10.244.0.0/16'] }));
  expect(lines(d)).toStrictEqual([
    '10.96.0.3:80/TCP clusterIP: int forward 0x42 [10.244.1.5:80/TCP local 10.244.2.5:80/TCP] ext -',
    `198.18.0.1:30003/TCP nodePort: int forward 0x${SY_SVC_F_EXT_SCOPE.toString(16).padStart(2, '0')} [10.244.1.5:80/TCP local 10.244.2.5:80/TCP] ext forward 0x00 [10.244.1.5:80/TCP local]`,
  ]);
  const remoteOnly = servicePortInfo({ name: 'loc', clusterIPs: ['10.96.0.3'], nodePort: 30003, externalPolicyLocal: true, endpoints: [eps[1]!] });
  const r = compile(snapshot([remoteOnly]), compileOptions({ nodeIPs: ['198.18.0.1'], localCIDRs: ['10.244.0.0/16'] }));
  const np = r.services.get('198.18.0.1:30003/TCP');
  expect(np?.external?.action).toBe(SY_ACT_DROP);
  expect(np?.internal.action).toBe(SY_ACT_FORWARD);
  expect((np?.internal.flags ?? 0) & SY_SVC_F_EXT_SCOPE).toBe(SY_SVC_F_EXT_SCOPE);
});

test('no usable endpoint: REJECT for every client (one scope)', () => {
  const d = compile(snapshot([sp('ns/empty:', ['10.96.0.4', 'fd00:10:96::4'], 80, [], 'UDP', { nodePort: 30004 })]), NODE);
  for (const key of d.services.keysArray()) {
    const s = d.services.get(key);
    expect(s?.internal.action, key).toBe(SY_ACT_REJECT);
    expect(s?.internal.backends, key).toStrictEqual([]);
    expect(s?.external, key).toBe(null);
  }
  expect(d.services.size).toBe(5);
});

test('masqueradeAll and the local-traffic detectors decide MASQ and MASQ_EXT on ClusterIPs', () => {
  const s = sp('ns/m:', ['10.96.0.5', 'fd00:10:96::5'], 80, [
    ['10.244.1.1', 80],
    ['fd00:10:244::1', 80],
  ]);
  const flags = (o: Parameters<typeof compileOptions>[0]): number[] => {
    const d = compile(snapshot([s]), compileOptions(o));
    return [d.services.get('10.96.0.5:80/TCP')?.internal.flags ?? -1, d.services.get('[fd00:10:96::5]:80/TCP')?.internal.flags ?? -1];
  };
  const C = SY_SVC_F_CLUSTER_IP;
  expect(flags({}), 'no detector: nothing masqueraded').toStrictEqual([C, C]);
  expect(flags({ masqueradeAll: true })).toStrictEqual([C | SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT, C | SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT]);
  expect(flags({ localCIDRs: ['10.244.0.0/16'] }), 'ClusterCIDR of one family: off-cluster clients of that family masqueraded').toStrictEqual([
    C | SY_SVC_F_MASQ_EXT,
    C,
  ]);
  expect(flags({ localByInterface: true }), 'by interface: both families').toStrictEqual([C | SY_SVC_F_MASQ_EXT, C | SY_SVC_F_MASQ_EXT]);
});

test('bad input becomes problems for its owner; the rest compiles', () => {
  const d = compile(
    snapshot([
      sp('ns/bad:ip', ['10.96.0.300', '10.96.0.2'], 80, [
        ['10.244.0.1', 8080],
        ['not-an-ip', 8080],
        ['10.244.0.2', 0],
      ]),
      sp('ns/bad:port', ['10.96.0.3'], 0, [['10.244.0.3', 80]]),
      { ...sp('ns/bad:proto', ['10.96.0.4'], 80, []), protocol: 'ICMP' as Protocol },
      sp('ns/good:', ['010.096.000.005', 'None'], 53, [['10.244.0.05', 53]], 'UDP'),
      sp('ns/bad:ext', ['10.96.0.6'], 80, [], 'TCP', { externalIPs: ['198.18.1.300'] }),
    ]),
    OFF,
  );
  expect(d.services.sortedKeys()).toStrictEqual(['10.96.0.2:80/TCP', '10.96.0.5:53/UDP', '10.96.0.6:80/TCP']);
  expect(d.services.get('10.96.0.2:80/TCP')?.internal.backends.map(l4Key)).toStrictEqual(['10.244.0.1:8080/TCP']);
  expect(d.services.get('10.96.0.5:53/UDP')?.internal.backends.map(l4Key), 'leading zeros read as decimal, as kube-proxy does').toStrictEqual([
    '10.244.0.5:53/UDP',
  ]);
  expect(d.problems.map((p) => `${p.owner} ${p.field}: ${p.message}`)).toStrictEqual([
    'ns/bad:ext/TCP externalIPs: not an IPv4 address: "198.18.1.300"',
    'ns/bad:ip/TCP clusterIPs[0]: not an IP address: "10.96.0.300"',
    'ns/bad:ip/TCP endpoints: endpoint "not-an-ip" is not an IP address',
    'ns/bad:ip/TCP endpoints: endpoint 10.244.0.2 port 0 is not in 1..65535',
    'ns/bad:port/TCP port: port 0 is not in 1..65535',
    'ns/bad:proto/TCP protocol: unsupported protocol "ICMP"',
  ]);
});

test('two ServicePorts claiming one frontend: the lower id wins, the other is reported', () => {
  const b = sp('ns/b:', ['10.96.0.1'], 80, [['10.244.0.2', 80]]);
  const a = sp('ns/a:', ['10.96.0.1', '10.96.0.9'], 80, [['10.244.0.1', 80]]);
  const c = sp('ns/c:', ['10.96.0.1'], 80, [['10.244.0.3', 80]]);
  for (const order of [
    [b, a, c],
    [c, b, a],
    [a, c, b],
  ]) {
    const d = compile(snapshot(order), OFF);
    expect(d.services.get('10.96.0.1:80/TCP')?.owner).toBe('ns/a:/TCP');
    expect(d.problems.map((p) => [p.owner, p.field])).toStrictEqual([
      ['ns/b:/TCP', 'frontend'],
      ['ns/c:/TCP', 'frontend'],
    ]);
    expect(d.problems[0]?.message ?? '').toMatch(/frontend 10\.96\.0\.1:80\/TCP is also claimed/);
  }

  // Incrementally: the winner goes away, the next lowest id takes over the frontend.
  const d0 = compile(snapshot([a, b, c]), OFF);
  const d1 = compileChanged(d0, snapshot([b, c], new Set([a.id])), OFF);
  expect(d1.services.get('10.96.0.1:80/TCP')?.owner).toBe('ns/b:/TCP');
  expect([...(d1.changed as Set<string>)].sort()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.9:80/TCP']);
  expect(plain(d1)).toStrictEqual(plain(compile(snapshot([b, c]), OFF)));
  // ...and comes back: it wins again.
  const d2 = compileChanged(d1, snapshot([a, b, c], new Set([a.id])), OFF);
  expect(plain(d2)).toStrictEqual(plain(d0));
  // A loser changing does not disturb the winner.
  const c2 = sp('ns/c:', ['10.96.0.1', '10.96.0.7'], 80, [['10.244.0.4', 80]]);
  const d3 = compileChanged(d2, snapshot([a, b, c2], new Set([c.id])), OFF);
  expect(plain(d3)).toStrictEqual(plain(compile(snapshot([a, b, c2]), OFF)));
  expect(d3.services.get('10.96.0.1:80/TCP'), 'same object: untouched').toBe(d2.services.get('10.96.0.1:80/TCP'));
});

test('a NodePort and another Service ExternalIP on the same address and port conflict like any frontend', () => {
  const np = sp('ns/a:', ['10.96.0.1'], 80, [['10.244.0.1', 80]], 'TCP', { nodePort: 30000 });
  const ext = sp('ns/b:', ['10.96.0.2'], 30000, [['10.244.0.2', 80]], 'TCP', { externalIPs: ['198.18.0.1'] });
  const d = compile(snapshot([ext, np]), compileOptions({ nodeIPs: ['198.18.0.1'] }));
  expect(d.services.get('198.18.0.1:30000/TCP')?.owner).toBe('ns/a:/TCP');
  expect(d.problems.map((p) => `${p.owner} ${p.field}`)).toStrictEqual(['ns/b:/TCP frontend']);
});

test('compileChanged recompiles only the changed ids and names their frontends', () => {
  const a = sp('ns/a:', ['10.96.0.1'], 80, [['10.244.0.1', 80]]);
  const b = sp('ns/b:', ['10.96.0.2'], 80, [['10.244.0.2', 80]]);
  const d0 = compile(snapshot([a, b]), OFF);
  const a2 = sp('ns/a:', ['10.96.0.11'], 80, [['10.244.0.1', 80]]);
  const d1 = compileChanged(d0, snapshot([a2, b], new Set([a.id])), OFF);
  expect([...(d1.changed as Set<string>)].sort()).toStrictEqual(['10.96.0.11:80/TCP', '10.96.0.1:80/TCP']);
  expect(d1.services.get('10.96.0.2:80/TCP')).toBe(d0.services.get('10.96.0.2:80/TCP'));
  expect(plain(d1)).toStrictEqual(plain(compile(snapshot([a2, b]), OFF)));
  // d0 is untouched (structural sharing, no mutation).
  expect(d0.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.2:80/TCP']);
  // 'all', or other options: a full compile.
  expect(compileChanged(d0, snapshot([a2, b]), OFF).changed).toBe('all');
  expect(compileChanged(d0, snapshot([a2, b], new Set()), compileOptions({ masqueradeAll: true })).changed).toBe('all');
  expect(compileChanged(d0, snapshot([a2, b], new Set()), compileOptions({ nodeIPs: ['198.18.0.9'] })).changed).toBe('all');
  // An id that is in no snapshot and no state: nothing changes.
  const d2 = compileChanged(d0, snapshot([a, b], new Set(['ns/ghost:/TCP'])), OFF);
  expect([...(d2.changed as Set<string>)]).toStrictEqual([]);
});

test('problems follow incremental changes', () => {
  const bad = sp('ns/a:', ['10.96.0.x'], 80, []);
  const good = sp('ns/a:', ['10.96.0.1'], 80, []);
  const d0 = compile(snapshot([bad]), OFF);
  expect(d0.problems.length).toBe(1);
  const d1 = compileChanged(d0, snapshot([good], new Set([good.id])), OFF);
  expect(d1.problems).toStrictEqual([]);
  const d2 = compileChanged(d1, snapshot([], new Set([good.id])), OFF);
  expect(d2.services.size).toBe(0);
});

test('sessionAffinity ClientIP: every frontend of the port carries SY_SVC_F_AFFINITY and the timeout on its masters; no problem is raised', () => {
  const rich = sp('default/web:http', ['10.96.0.10'], 80, [['10.244.1.5', 8080]], 'SCTP', {
    nodePort: 30080,
    sessionAffinity: { timeoutSeconds: 10800 },
  });
  const d = compile(snapshot([rich]), NODE);
  expect(d.problems).toStrictEqual([]);
  expect(d.services.sortedKeys()).toStrictEqual(['10.96.0.10:80/SCTP', '192.0.2.7:30080/SCTP', '198.18.0.1:30080/SCTP']);
  for (const svc of d.services.values()) {
    for (const sc of [svc.internal, svc.external]) {
      if (sc === null) continue;
      expect(sc.flags & SY_SVC_F_AFFINITY, `${svc.key}: flag`).toBe(SY_SVC_F_AFFINITY);
      expect(sc.affinityTimeoutS, `${svc.key}: timeout`).toBe(10800);
    }
  }
  const plain = compile(snapshot([sp('default/p:', ['10.96.0.12'], 80, [['10.244.1.5', 8080]])]), OFF);
  expect(plain.problems, 'a plain ClusterIP Service raises nothing').toStrictEqual([]);
  const internal = plain.services.get('10.96.0.12:80/TCP')?.internal;
  expect((internal?.flags ?? -1) & SY_SVC_F_AFFINITY, 'no affinity: no flag').toBe(0);
  expect(internal?.affinityTimeoutS, 'no affinity: timeout 0').toBe(0);
});
