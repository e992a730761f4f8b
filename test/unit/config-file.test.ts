// The --config file: kube-proxy configuration files as users write them are
// accepted and read as kube-proxy reads them; broken ones are refused with a
// message naming the file, line, field, value and what is allowed.

import { expect, test } from 'vitest';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError, formatConfigFile, type SwitchyardConfig } from '../../src/config/index.ts';
import { thrownBy } from '../support/thrown.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/config/', import.meta.url));
const CONF = '/var/lib/kube-proxy/config.conf';

function fromFixture(name: string, ...flags: string[]) {
  return loadConfig([`--config=${FIXTURES}${name}`, ...flags]);
}

/** Loads `text` as the --config file. */
function fromText(text: string, ...flags: string[]) {
  return loadConfig([`--config=${CONF}`, ...flags], (path) => {
    expect(path).toBe(CONF);
    return text;
  });
}

function refused(text: string, ...flags: string[]): ConfigError {
  try {
    fromText(text, ...flags);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  expect.unreachable('the configuration was accepted');
}

const HEAD = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

test("kubeadm's all-zero config.conf reads as kube-proxy's defaults", () => {
  const { config, warnings } = fromFixture('kubeadm-iptables.yaml');
  const defaults = loadConfig([]).config;
  expect(warnings).toStrictEqual([]);
  expect(config.clientConnection.kubeconfig).toBe('/var/lib/kube-proxy/kubeconfig.conf');
  expect(config.clusterCIDR).toBe('10.244.0.0/16');
  expect(config.clusterCIDRs).toStrictEqual(['10.244.0.0/16']);
  // Everything else is exactly what no file at all gives.
  const strip = (c: SwitchyardConfig) => ({
    ...c,
    clientConnection: { ...c.clientConnection, kubeconfig: '' },
    clusterCIDR: '',
    clusterCIDRs: [],
    command: { ...c.command, configFile: '' },
  });
  expect(strip(config)).toStrictEqual(strip(defaults));
  // ... and those are kube-proxy's defaults.
  expect(defaults.healthzBindAddress).toBe('0.0.0.0:10256');
  expect(defaults.metricsBindAddress).toBe('127.0.0.1:10249');
  expect(defaults.bindAddress).toBe('0.0.0.0');
  expect(defaults.oomScoreAdj).toBe(-999);
  expect(defaults.iptables).toStrictEqual({
    masqueradeAll: false,
    masqueradeBit: 14,
    localhostNodePorts: true,
    snatNodeInternalIP: false,
    syncPeriod: 30_000,
    minSyncPeriod: 1000,
  });
  expect(defaults.ipvs.syncPeriod).toBe(30_000);
  expect(defaults.ipvs.minSyncPeriod, 'kube-proxy does not default ipvs.minSyncPeriod').toBe(0);
  expect(defaults.nftables).toStrictEqual({ masqueradeAll: false, masqueradeBit: 14, syncPeriod: 30_000, minSyncPeriod: 1000 });
  expect(defaults.conntrack).toStrictEqual({
    maxPerCore: 32768,
    min: 131072,
    tcpEstablishedTimeout: 24 * 3600_000,
    tcpCloseWaitTimeout: 3600_000,
    tcpBeLiberal: false,
    udpTimeout: 0,
    udpStreamTimeout: 0,
  });
  expect(defaults.configSyncPeriod).toBe(15 * 60_000);
  expect(defaults.clientConnection).toStrictEqual({
    kubeconfig: '',
    acceptContentTypes: '',
    contentType: 'application/vnd.kubernetes.protobuf',
    qps: 5,
    burst: 10,
  });
  expect(defaults.logging.format).toBe('text');
  expect(defaults.logging.flushFrequency).toBe(5000);
  expect(defaults.detectLocalMode).toBe('ClusterCIDR');
  expect(defaults.nodePortAddresses).toStrictEqual([]);
  expect(defaults.mode).toBe('');
  expect(defaults.dataplane).toBe('auto');
  expect(defaults.syncPeriod).toBe(30_000);
  expect(defaults.minSyncPeriod).toBe(1000);
});

test('an ipvs config with scheduler, strictARP, excludeCIDRs and timeouts', () => {
  const { config, warnings } = fromFixture('ipvs-metallb.yaml');
  expect(config.mode).toBe('ipvs');
  expect(config.dataplane).toBe('ipvs');
  expect(config.ipvs).toStrictEqual({
    syncPeriod: 15_000,
    minSyncPeriod: 2000,
    scheduler: 'wrr',
    excludeCIDRs: ['10.10.0.0/24', '192.168.100.0/22'],
    strictARP: true,
    tcpTimeout: 15 * 60_000,
    tcpFinTimeout: 120_000,
    udpTimeout: 300_000,
  });
  // ipvs mode takes its sync periods from the ipvs section.
  expect(config.syncPeriod).toBe(15_000);
  expect(config.minSyncPeriod).toBe(2000);
  expect(config.metricsBindAddress).toBe('0.0.0.0:10249');
  expect(config.healthzBindAddress).toBe('0.0.0.0:10256');
  expect(warnings).toStrictEqual([]);
});

test('an nftables dual-stack config: nftables section, primary NodePorts, mapped to auto with a note', () => {
  const { config, warnings } = fromFixture('nftables-dualstack.yaml');
  expect(config.mode).toBe('nftables');
  expect(config.dataplane).toBe('auto');
  expect(config.syncPeriod).toBe(60_000);
  expect(config.minSyncPeriod).toBe(500);
  expect(config.masqueradeAll, 'nftables mode reads nftables.masqueradeAll').toBe(true);
  expect(config.nftables.masqueradeBit).toBe(15);
  expect(config.nodePortAddresses, 'nftables mode defaults nodePortAddresses to primary').toStrictEqual(['primary']);
  expect(config.clusterCIDRs).toStrictEqual(['10.244.0.0/16', 'fd00:10:244::/56']);
  expect(config.conntrack.maxPerCore, 'an explicit 0 of a pointer field is kept').toBe(0);
  expect(config.conntrack.min).toBe(131072);
  expect(config.conntrack.tcpBeLiberal).toBe(true);
  expect({ qps: config.clientConnection.qps, burst: config.clientConnection.burst }).toStrictEqual({ qps: 50, burst: 100 });
  expect(config.logging.verbosity).toBe(2);
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${FIXTURES}nftables-dualstack.yaml:5: mode: "nftables" is a kube-proxy mode Switchyard does not implement; it picks its dataplane as for auto (bpf where the kernel can run it, else ipvs)`,
  ]);
});

test("kind's iptables config: conntrack left alone, masqueradeAll, primary NodePorts", () => {
  const { config, warnings } = fromFixture('kind-iptables.yaml');
  expect(config.mode).toBe('iptables');
  expect(config.dataplane).toBe('auto');
  expect(config.masqueradeAll).toBe(true);
  expect(config.conntrack.maxPerCore).toBe(0);
  expect(config.conntrack.tcpEstablishedTimeout).toBe(0);
  expect(config.conntrack.tcpCloseWaitTimeout).toBe(0);
  expect(config.nodePortAddresses).toStrictEqual(['primary']);
  expect(config.featureGates).toStrictEqual({});
  expect(warnings.length).toBe(1);
  expect(warnings[0]?.message ?? '').toMatch(/mode: "iptables" is a kube-proxy mode Switchyard does not implement/);
});

test("a SwitchyardConfiguration document after --- sets Switchyard's options", () => {
  const { config, warnings } = fromFixture('with-switchyard.yaml');
  expect(config.switchyard).toStrictEqual({
    manifests: '/etc/switchyard/manifests',
    bpf: {
      pinPath: '/run/switchyard/bpf',
      object: '/opt/switchyard/switchyard.bpf.o',
      podInterfaces: ['veth*', 'cali*'],
      snatPortRange: '61000-65535',
      servicesMax: 1048576,
      backendsMax: 1048576,
      affinityMax: 65536,
      lbAlgorithm: 'random',
      maglevTableSize: 16381,
      cgroup2Path: '',
    },
    serviceNodePortRange: '30000-32767',
  });
  expect(config.nodePortAddresses).toStrictEqual(['192.168.0.0/16', 'fd00::/64']);
  expect(warnings).toStrictEqual([]);
});

test('a JSON config file is read too', () => {
  const { config, warnings } = fromFixture('kubeadm.json');
  expect(config.dataplane).toBe('ipvs');
  expect(config.ipvs.scheduler).toBe('lc');
  expect(config.syncPeriod).toBe(10_000);
  expect(config.featureGates).toStrictEqual({ TopologyAwareHints: true });
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${FIXTURES}kubeadm.json:7: featureGates: {"TopologyAwareHints":true}: accepted for compatibility and ignored: Switchyard has no feature gates`,
  ]);
});

test("the shipped ConfigMap's config is accepted", () => {
  const { config } = fromText(`${HEAD}mode: ""\nclusterCIDR: 10.244.0.0/16\n`);
  expect(config.dataplane).toBe('auto');
});

test("YAML 1.1 booleans and null read as kube-proxy's decoder reads them", () => {
  const { config } = fromText(`${HEAD}ipvs:\n  strictARP: yes\niptables:\n  masqueradeAll: on\nmode: ~\nconntrack:\n  min:\n`);
  expect(config.ipvs.strictARP).toBe(true);
  expect(config.iptables.masqueradeAll).toBe(true);
  expect(config.mode).toBe('');
  expect(config.conntrack.min, 'null is unset').toBe(131072);
});

test('a file zero means the default, a bare healthz IP gets its port, an IPv6 bindAddress moves the defaults', () => {
  const { config } = fromText(`${HEAD}bindAddress: "::"\nhealthzBindAddress: "::1"\niptables:\n  minSyncPeriod: 0s\n`);
  expect(config.iptables.minSyncPeriod).toBe(1000);
  expect(config.healthzBindAddress).toBe('[::1]:10256');
  expect(config.metricsBindAddress).toBe('[::1]:10249');
});

test('hostnameOverride is trimmed and lower-cased, as kube-proxy does with the node name', () => {
  expect(fromText(`${HEAD}hostnameOverride: " Worker-1 "\n`).config.hostnameOverride).toBe('worker-1');
});

test("fields removed from v1alpha1 long ago are ignored with a warning, as kube-proxy's lenient decoding does", () => {
  const { warnings } = fromText(`${HEAD}udpIdleTimeout: 250ms\nresourceContainer: /kube-proxy\nconntrack:\n  max: 0\n`);
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${CONF}:3: udpIdleTimeout: ignored: applied only to the userspace proxier, removed in Kubernetes 1.26`,
    `${CONF}:4: resourceContainer: ignored: removed from kube-proxy in Kubernetes 1.16`,
    `${CONF}:6: conntrack.max: ignored: removed in Kubernetes 1.19; use conntrack.maxPerCore and conntrack.min`,
  ]);
});

// --- refused ---------------------------------------------------------------

test('an unknown field is refused with its path, line and the nearest known name', () => {
  const err = refused(`${HEAD}ipvs:\n  schedular: wrr\n`);
  expect(err.code).toBe('ERR_SY_INVALID_CONFIG');
  expect(err.field).toBe('ipvs.schedular');
  expect(err.message).toBe(`${CONF}:4: ipvs.schedular: unknown field (did you mean "scheduler"?)`);
  expect(err.problems[0]).toStrictEqual({ field: 'ipvs.schedular', file: CONF, line: 4, message: err.message });
});

test('a field named like an Object property is just unknown', () => {
  expect(refused(`${HEAD}constructor: 1\n`).message.split(';')[0]).toBe(`${CONF}:3: constructor: unknown field`);
  expect(refused(`${HEAD}iptables:\n  syncPeriod: 1constructor\n`).message).toMatch(/has an unknown unit "constructor"$/);
});

test("field names are case-sensitive, as kube-proxy's decoder is", () => {
  expect(refused(`${HEAD}Mode: ipvs\n`).message).toBe(`${CONF}:3: Mode: unknown field (did you mean "mode"?)`);
});

test('an unknown field with no near name lists what the section has', () => {
  expect(refused(`${HEAD}ipvs:\n  weights: true\n`).message).toBe(
    `${CONF}:4: ipvs.weights: unknown field; ipvs has syncPeriod, minSyncPeriod, scheduler, excludeCIDRs, strictARP, tcpTimeout, tcpFinTimeout, udpTimeout`,
  );
});

test("Switchyard's options inside KubeProxyConfiguration are refused: they belong in their own document", () => {
  expect(refused(`${HEAD}manifests: /etc/m\n`).message).toMatch(
    /^\/var\/lib\/kube-proxy\/config\.conf:3: manifests: unknown field; KubeProxyConfiguration has featureGates, /,
  );
});

test('a bad duration names the field and the syntax', () => {
  expect(refused(`${HEAD}iptables:\n  syncPeriod: 30 seconds\n`).message).toBe(
    `${CONF}:4: iptables.syncPeriod: "30 seconds": must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); this one has an unknown unit " seconds"`,
  );
  expect(refused(`${HEAD}configSyncPeriod: 30\n`).message).toBe(
    `${CONF}:3: configSyncPeriod: 30: must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); a bare number has no unit: write "30s" for 30 seconds`,
  );
});

test('a bad IPVS scheduler is refused with the list', () => {
  expect(refused(`${HEAD}mode: ipvs\nipvs:\n  scheduler: round-robin\n`).message).toBe(
    `${CONF}:5: ipvs.scheduler: "round-robin": must be one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, or empty (rr)`,
  );
  expect(refused(`${HEAD}mode: ipvs\nipvs:\n  scheduler: WRR\n`).message).toMatch(/\(did you mean "wrr"\?\)$/);
});

test('minSyncPeriod greater than syncPeriod is refused in the section the mode uses', () => {
  expect(refused(`${HEAD}mode: ipvs\nipvs:\n  syncPeriod: 10s\n  minSyncPeriod: 1m\n`).message).toBe(
    `${CONF}:6: ipvs.minSyncPeriod: "1m": must be less than or equal to ipvs.syncPeriod ("10s")`,
  );
  expect(refused(`${HEAD}iptables:\n  syncPeriod: 500ms\n`).message).toBe(
    `${CONF}:4: iptables.syncPeriod: "500ms": must be greater than or equal to iptables.minSyncPeriod ("1s")`,
  );
  // kube-proxy checks only the section of its mode; so do we.
  expect(() => fromText(`${HEAD}mode: ipvs\niptables:\n  syncPeriod: 500ms\n`)).not.toThrow();
});

test('bad CIDRs are refused with the entry that is wrong', () => {
  expect(refused(`${HEAD}clusterCIDR: 10.244.0.0/33\n`).message).toBe(
    `${CONF}:3: clusterCIDR: "10.244.0.0/33": must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56 (or a dual-stack pair of them), and "10.244.0.0/33" is not one`,
  );
  expect(refused(`${HEAD}clusterCIDR: 10.244.0.0/16,10.245.0.0/16\n`).message).toBe(
    `${CONF}:3: clusterCIDR: "10.244.0.0/16,10.245.0.0/16": a pair must be dual-stack: one IPv4 and one IPv6 CIDR`,
  );
  expect(refused(`${HEAD}mode: ipvs\nipvs:\n  excludeCIDRs: [10.0.0.0/8, 10.1.2.3]\n`).message).toBe(
    `${CONF}:5: ipvs.excludeCIDRs[1]: "10.1.2.3": must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56`,
  );
  expect(refused(`${HEAD}nodePortAddresses: [primary, 10.0.0.0/8]\n`).message).toBe(
    `${CONF}:3: nodePortAddresses[0]: "primary": can't be combined with CIDRs: give either "primary" alone or a list of CIDRs`,
  );
});

test('a wrong apiVersion, a wrong kind or none are refused', () => {
  expect(refused('apiVersion: kubeproxy.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n').message).toBe(
    `${CONF}:1: apiVersion: "kubeproxy.config.k8s.io/v1beta1": must be kubeproxy.config.k8s.io/v1alpha1 for kind KubeProxyConfiguration (the only version Switchyard reads)`,
  );
  expect(refused('kind: KubeProxyConfiguration\nmode: ipvs\n').message).toBe(
    `${CONF}:1: apiVersion: missing: must be kubeproxy.config.k8s.io/v1alpha1 for kind KubeProxyConfiguration (the only version Switchyard reads)`,
  );
  expect(refused('apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n').message).toBe(
    `${CONF}:2: kind: "KubeletConfiguration": must be KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1) or SwitchyardConfiguration (apiVersion switchyard.io/v1alpha1)`,
  );
  expect(refused('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n').message).toBe(
    `${CONF}:1: kind: missing: must be KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1) or SwitchyardConfiguration (apiVersion switchyard.io/v1alpha1)`,
  );
  expect(refused(`${HEAD}---\napiVersion: switchyard.io/v1beta1\nkind: SwitchyardConfiguration\n`).message).toBe(
    `${CONF}:4: apiVersion: "switchyard.io/v1beta1": must be switchyard.io/v1alpha1 for kind SwitchyardConfiguration (the only version Switchyard reads)`,
  );
});

test("values of the wrong type are refused as Go's strict decoder would", () => {
  expect(refused(`${HEAD}iptables:\n  masqueradeBit: "14"\n`).message).toBe(
    `${CONF}:4: iptables.masqueradeBit: "14": must be an integer from -2147483648 to 2147483647`,
  );
  expect(refused(`${HEAD}ipvs:\n  strictARP: "yes please"\n`).message).toBe(`${CONF}:4: ipvs.strictARP: "yes please": must be true or false`);
  expect(refused(`${HEAD}hostnameOverride: 1234\n`).message).toBe(`${CONF}:3: hostnameOverride: 1234: must be a string (quote it: "1234")`);
  expect(refused(`${HEAD}nodePortAddresses: 10.0.0.0/8\n`).message).toBe(`${CONF}:3: nodePortAddresses: "10.0.0.0/8": must be a list of strings`);
  expect(refused(`${HEAD}ipvs: wrr\n`).message).toBe(
    `${CONF}:3: ipvs: "wrr": must be a mapping with the fields syncPeriod, minSyncPeriod, scheduler, excludeCIDRs, strictARP, tcpTimeout, tcpFinTimeout, udpTimeout`,
  );
});

test('broken YAML, duplicate keys and an empty file are refused with the line', () => {
  expect(refused(`${HEAD}ipvs:\n  excludeCIDRs: [10.0.0.0/8\n`).message).toMatch(/^\/var\/lib\/kube-proxy\/config\.conf:\d+: not valid YAML: /);
  expect(refused(`${HEAD}mode: ipvs\nmode: iptables\n`).message).toBe(`${CONF}:4: not valid YAML: Map keys must be unique`);
  expect(refused('# nothing here\n').message).toBe(`${CONF}: is empty: must hold a KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1)`);
});

test('a second KubeProxyConfiguration document is refused', () => {
  expect(refused(`${HEAD}---\n${HEAD}`).message).toBe(
    `${CONF}:5: kind: "KubeProxyConfiguration": a second KubeProxyConfiguration document; the file may hold one of each kind`,
  );
});

test('every problem in the file is reported at once', () => {
  const err = refused(`${HEAD}ipvs:\n  schedular: wrr\n  syncPeriod: soon\nmasqueradeAll: true\n`);
  expect(err.problems.map((p) => p.field)).toStrictEqual(['ipvs.schedular', 'ipvs.syncPeriod', 'masqueradeAll']);
  expect(err.message).toMatch(/^3 problems:\n {2}\/var\/lib\/kube-proxy\/config\.conf:4: ipvs\.schedular: /);
  expect(err.problems[2]?.message ?? '').toMatch(/masqueradeAll: unknown field; KubeProxyConfiguration has /);
});

test('an unreadable --config is refused naming the flag', () => {
  const err = thrownBy(() => loadConfig(['--config=/nonexistent/kube-proxy.yaml']), ConfigError);
  expect(err.field).toBe('--config');
  expect(err.message).toMatch(/^--config: "\/nonexistent\/kube-proxy\.yaml": cannot be read: ENOENT/);
});

test('the written configuration reads back to the same configuration', () => {
  for (const name of ['kubeadm-iptables.yaml', 'ipvs-metallb.yaml', 'nftables-dualstack.yaml', 'with-switchyard.yaml']) {
    const { config } = fromFixture(name);
    const again = fromText(formatConfigFile(config)).config;
    expect({ ...again, command: config.command }, name).toStrictEqual(config);
  }
});
