// The --config file: kube-proxy configuration files as users write them are
// accepted and read as kube-proxy reads them; broken ones are refused with a
// message naming the file, line, field, value and what is allowed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError, formatConfigFile, type SwitchyardConfig } from '../../src/config/index.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/config/', import.meta.url));
const CONF = '/var/lib/kube-proxy/config.conf';

function fromFixture(name: string, ...flags: string[]) {
  return loadConfig([`--config=${FIXTURES}${name}`, ...flags]);
}

/** Loads `text` as the --config file. */
function fromText(text: string, ...flags: string[]) {
  return loadConfig([`--config=${CONF}`, ...flags], (path) => {
    assert.equal(path, CONF);
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
  assert.fail('the configuration was accepted');
}

const HEAD = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

test("kubeadm's all-zero config.conf reads as kube-proxy's defaults", () => {
  const { config, warnings } = fromFixture('kubeadm-iptables.yaml');
  const defaults = loadConfig([]).config;
  assert.deepEqual(warnings, []);
  assert.equal(config.clientConnection.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
  assert.equal(config.clusterCIDR, '10.244.0.0/16');
  assert.deepEqual(config.clusterCIDRs, ['10.244.0.0/16']);
  // Everything else is exactly what no file at all gives.
  const strip = (c: SwitchyardConfig) => ({
    ...c,
    clientConnection: { ...c.clientConnection, kubeconfig: '' },
    clusterCIDR: '',
    clusterCIDRs: [],
    command: { ...c.command, configFile: '' },
  });
  assert.deepEqual(strip(config), strip(defaults));
  // ... and those are kube-proxy's defaults.
  assert.equal(defaults.healthzBindAddress, '0.0.0.0:10256');
  assert.equal(defaults.metricsBindAddress, '127.0.0.1:10249');
  assert.equal(defaults.bindAddress, '0.0.0.0');
  assert.equal(defaults.oomScoreAdj, -999);
  assert.deepEqual(defaults.iptables, {
    masqueradeAll: false,
    masqueradeBit: 14,
    localhostNodePorts: true,
    snatNodeInternalIP: false,
    syncPeriod: 30_000,
    minSyncPeriod: 1000,
  });
  assert.equal(defaults.ipvs.syncPeriod, 30_000);
  assert.equal(defaults.ipvs.minSyncPeriod, 0, 'kube-proxy does not default ipvs.minSyncPeriod');
  assert.deepEqual(defaults.nftables, { masqueradeAll: false, masqueradeBit: 14, syncPeriod: 30_000, minSyncPeriod: 1000 });
  assert.deepEqual(defaults.conntrack, {
    maxPerCore: 32768,
    min: 131072,
    tcpEstablishedTimeout: 24 * 3600_000,
    tcpCloseWaitTimeout: 3600_000,
    tcpBeLiberal: false,
    udpTimeout: 0,
    udpStreamTimeout: 0,
  });
  assert.equal(defaults.configSyncPeriod, 15 * 60_000);
  assert.deepEqual(defaults.clientConnection, {
    kubeconfig: '',
    acceptContentTypes: '',
    contentType: 'application/vnd.kubernetes.protobuf',
    qps: 5,
    burst: 10,
  });
  assert.equal(defaults.logging.format, 'text');
  assert.equal(defaults.logging.flushFrequency, 5000);
  assert.equal(defaults.detectLocalMode, 'ClusterCIDR');
  assert.deepEqual(defaults.nodePortAddresses, []);
  assert.equal(defaults.mode, '');
  assert.equal(defaults.dataplane, 'auto');
  assert.equal(defaults.syncPeriod, 30_000);
  assert.equal(defaults.minSyncPeriod, 1000);
});

test('an ipvs config with scheduler, strictARP, excludeCIDRs and timeouts', () => {
  const { config, warnings } = fromFixture('ipvs-metallb.yaml');
  assert.equal(config.mode, 'ipvs');
  assert.equal(config.dataplane, 'ipvs');
  assert.deepEqual(config.ipvs, {
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
  assert.equal(config.syncPeriod, 15_000);
  assert.equal(config.minSyncPeriod, 2000);
  assert.equal(config.metricsBindAddress, '0.0.0.0:10249');
  assert.equal(config.healthzBindAddress, '0.0.0.0:10256');
  assert.deepEqual(warnings, []);
});

test('an nftables dual-stack config: nftables section, primary NodePorts, mapped to auto with a note', () => {
  const { config, warnings } = fromFixture('nftables-dualstack.yaml');
  assert.equal(config.mode, 'nftables');
  assert.equal(config.dataplane, 'auto');
  assert.equal(config.syncPeriod, 60_000);
  assert.equal(config.minSyncPeriod, 500);
  assert.equal(config.masqueradeAll, true, 'nftables mode reads nftables.masqueradeAll');
  assert.equal(config.nftables.masqueradeBit, 15);
  assert.deepEqual(config.nodePortAddresses, ['primary'], 'nftables mode defaults nodePortAddresses to primary');
  assert.deepEqual(config.clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/56']);
  assert.equal(config.conntrack.maxPerCore, 0, 'an explicit 0 of a pointer field is kept');
  assert.equal(config.conntrack.min, 131072);
  assert.equal(config.conntrack.tcpBeLiberal, true);
  assert.deepEqual({ qps: config.clientConnection.qps, burst: config.clientConnection.burst }, { qps: 50, burst: 100 });
  assert.equal(config.logging.verbosity, 2);
  assert.deepEqual(
    warnings.map((w) => w.message),
    [
      `${FIXTURES}nftables-dualstack.yaml:5: mode: "nftables" is a kube-proxy mode Switchyard does not implement; it picks its dataplane as for auto (bpf where the kernel can run it, else ipvs)`,
    ],
  );
});

test("kind's iptables config: conntrack left alone, masqueradeAll, primary NodePorts", () => {
  const { config, warnings } = fromFixture('kind-iptables.yaml');
  assert.equal(config.mode, 'iptables');
  assert.equal(config.dataplane, 'auto');
  assert.equal(config.masqueradeAll, true);
  assert.equal(config.conntrack.maxPerCore, 0);
  assert.equal(config.conntrack.tcpEstablishedTimeout, 0);
  assert.equal(config.conntrack.tcpCloseWaitTimeout, 0);
  assert.deepEqual(config.nodePortAddresses, ['primary']);
  assert.deepEqual(config.featureGates, {});
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]?.message ?? '', /mode: "iptables" is a kube-proxy mode Switchyard does not implement/);
});

test("a SwitchyardConfiguration document after --- sets Switchyard's options", () => {
  const { config, warnings } = fromFixture('with-switchyard.yaml');
  assert.deepEqual(config.switchyard, {
    manifests: '/etc/switchyard/manifests',
    bpf: { pinPath: '/run/switchyard/bpf', object: '/opt/switchyard/switchyard.bpf.o', podInterfaces: ['veth*', 'cali*'] },
  });
  assert.deepEqual(config.nodePortAddresses, ['192.168.0.0/16', 'fd00::/64']);
  assert.deepEqual(warnings, []);
});

test('a JSON config file is read too', () => {
  const { config, warnings } = fromFixture('kubeadm.json');
  assert.equal(config.dataplane, 'ipvs');
  assert.equal(config.ipvs.scheduler, 'lc');
  assert.equal(config.syncPeriod, 10_000);
  assert.deepEqual(config.featureGates, { TopologyAwareHints: true });
  assert.deepEqual(
    warnings.map((w) => w.message),
    [`${FIXTURES}kubeadm.json:7: featureGates: {"TopologyAwareHints":true}: accepted for compatibility and ignored: Switchyard has no feature gates`],
  );
});

test("the shipped ConfigMap's config is accepted", () => {
  const { config } = fromText(`${HEAD}mode: ""\nclusterCIDR: 10.244.0.0/16\n`);
  assert.equal(config.dataplane, 'auto');
});

test("YAML 1.1 booleans and null read as kube-proxy's decoder reads them", () => {
  const { config } = fromText(`${HEAD}ipvs:\n  strictARP: yes\niptables:\n  masqueradeAll: on\nmode: ~\nconntrack:\n  min:\n`);
  assert.equal(config.ipvs.strictARP, true);
  assert.equal(config.iptables.masqueradeAll, true);
  assert.equal(config.mode, '');
  assert.equal(config.conntrack.min, 131072, 'null is unset');
});

test('a file zero means the default, a bare healthz IP gets its port, an IPv6 bindAddress moves the defaults', () => {
  const { config } = fromText(`${HEAD}bindAddress: "::"\nhealthzBindAddress: "::1"\niptables:\n  minSyncPeriod: 0s\n`);
  assert.equal(config.iptables.minSyncPeriod, 1000);
  assert.equal(config.healthzBindAddress, '[::1]:10256');
  assert.equal(config.metricsBindAddress, '[::1]:10249');
});

test('hostnameOverride is trimmed and lower-cased, as kube-proxy does with the node name', () => {
  assert.equal(fromText(`${HEAD}hostnameOverride: " Worker-1 "\n`).config.hostnameOverride, 'worker-1');
});

test("fields removed from v1alpha1 long ago are ignored with a warning, as kube-proxy's lenient decoding does", () => {
  const { warnings } = fromText(`${HEAD}udpIdleTimeout: 250ms\nresourceContainer: /kube-proxy\nconntrack:\n  max: 0\n`);
  assert.deepEqual(
    warnings.map((w) => w.message),
    [
      `${CONF}:3: udpIdleTimeout: ignored: applied only to the userspace proxier, removed in Kubernetes 1.26`,
      `${CONF}:4: resourceContainer: ignored: removed from kube-proxy in Kubernetes 1.16`,
      `${CONF}:6: conntrack.max: ignored: removed in Kubernetes 1.19; use conntrack.maxPerCore and conntrack.min`,
    ],
  );
});

// --- refused ---------------------------------------------------------------

test('an unknown field is refused with its path, line and the nearest known name', () => {
  const err = refused(`${HEAD}ipvs:\n  schedular: wrr\n`);
  assert.equal(err.code, 'ERR_SY_INVALID_CONFIG');
  assert.equal(err.field, 'ipvs.schedular');
  assert.equal(err.message, `${CONF}:4: ipvs.schedular: unknown field (did you mean "scheduler"?)`);
  assert.deepEqual(err.problems[0], { field: 'ipvs.schedular', file: CONF, line: 4, message: err.message });
});

test('a field named like an Object property is just unknown', () => {
  assert.equal(refused(`${HEAD}constructor: 1\n`).message.split(';')[0], `${CONF}:3: constructor: unknown field`);
  assert.match(refused(`${HEAD}iptables:\n  syncPeriod: 1constructor\n`).message, /has an unknown unit "constructor"$/);
});

test("field names are case-sensitive, as kube-proxy's decoder is", () => {
  assert.equal(refused(`${HEAD}Mode: ipvs\n`).message, `${CONF}:3: Mode: unknown field (did you mean "mode"?)`);
});

test('an unknown field with no near name lists what the section has', () => {
  assert.equal(
    refused(`${HEAD}ipvs:\n  weights: true\n`).message,
    `${CONF}:4: ipvs.weights: unknown field; ipvs has syncPeriod, minSyncPeriod, scheduler, excludeCIDRs, strictARP, tcpTimeout, tcpFinTimeout, udpTimeout`,
  );
});

test("Switchyard's options inside KubeProxyConfiguration are refused: they belong in their own document", () => {
  assert.match(
    refused(`${HEAD}manifests: /etc/m\n`).message,
    /^\/var\/lib\/kube-proxy\/config\.conf:3: manifests: unknown field; KubeProxyConfiguration has featureGates, /,
  );
});

test('a bad duration names the field and the syntax', () => {
  assert.equal(
    refused(`${HEAD}iptables:\n  syncPeriod: 30 seconds\n`).message,
    `${CONF}:4: iptables.syncPeriod: "30 seconds": must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); this one has an unknown unit " seconds"`,
  );
  assert.equal(
    refused(`${HEAD}configSyncPeriod: 30\n`).message,
    `${CONF}:3: configSyncPeriod: 30: must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); a bare number has no unit: write "30s" for 30 seconds`,
  );
});

test('a bad IPVS scheduler is refused with the list', () => {
  assert.equal(
    refused(`${HEAD}mode: ipvs\nipvs:\n  scheduler: round-robin\n`).message,
    `${CONF}:5: ipvs.scheduler: "round-robin": must be one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, or empty (rr)`,
  );
  assert.match(refused(`${HEAD}mode: ipvs\nipvs:\n  scheduler: WRR\n`).message, /\(did you mean "wrr"\?\)$/);
});

test('minSyncPeriod greater than syncPeriod is refused in the section the mode uses', () => {
  assert.equal(
    refused(`${HEAD}mode: ipvs\nipvs:\n  syncPeriod: 10s\n  minSyncPeriod: 1m\n`).message,
    `${CONF}:6: ipvs.minSyncPeriod: "1m": must be less than or equal to ipvs.syncPeriod ("10s")`,
  );
  assert.equal(
    refused(`${HEAD}iptables:\n  syncPeriod: 500ms\n`).message,
    `${CONF}:4: iptables.syncPeriod: "500ms": must be greater than or equal to iptables.minSyncPeriod ("1s")`,
  );
  // kube-proxy checks only the section of its mode; so do we.
  assert.doesNotThrow(() => fromText(`${HEAD}mode: ipvs\niptables:\n  syncPeriod: 500ms\n`));
});

test('bad CIDRs are refused with the entry that is wrong', () => {
  assert.equal(
    refused(`${HEAD}clusterCIDR: 10.244.0.0/33\n`).message,
    `${CONF}:3: clusterCIDR: "10.244.0.0/33": must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56 (or a dual-stack pair of them), and "10.244.0.0/33" is not one`,
  );
  assert.equal(
    refused(`${HEAD}clusterCIDR: 10.244.0.0/16,10.245.0.0/16\n`).message,
    `${CONF}:3: clusterCIDR: "10.244.0.0/16,10.245.0.0/16": a pair must be dual-stack: one IPv4 and one IPv6 CIDR`,
  );
  assert.equal(
    refused(`${HEAD}mode: ipvs\nipvs:\n  excludeCIDRs: [10.0.0.0/8, 10.1.2.3]\n`).message,
    `${CONF}:5: ipvs.excludeCIDRs[1]: "10.1.2.3": must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56`,
  );
  assert.equal(
    refused(`${HEAD}nodePortAddresses: [primary, 10.0.0.0/8]\n`).message,
    `${CONF}:3: nodePortAddresses[0]: "primary": can't be combined with CIDRs: give either "primary" alone or a list of CIDRs`,
  );
});

test('a wrong apiVersion, a wrong kind or none are refused', () => {
  assert.equal(
    refused('apiVersion: kubeproxy.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n').message,
    `${CONF}:1: apiVersion: "kubeproxy.config.k8s.io/v1beta1": must be kubeproxy.config.k8s.io/v1alpha1 for kind KubeProxyConfiguration (the only version Switchyard reads)`,
  );
  assert.equal(
    refused('kind: KubeProxyConfiguration\nmode: ipvs\n').message,
    `${CONF}:1: apiVersion: missing: must be kubeproxy.config.k8s.io/v1alpha1 for kind KubeProxyConfiguration (the only version Switchyard reads)`,
  );
  assert.equal(
    refused('apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n').message,
    `${CONF}:2: kind: "KubeletConfiguration": must be KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1) or SwitchyardConfiguration (apiVersion switchyard.io/v1alpha1)`,
  );
  assert.equal(
    refused('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n').message,
    `${CONF}:1: kind: missing: must be KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1) or SwitchyardConfiguration (apiVersion switchyard.io/v1alpha1)`,
  );
  assert.equal(
    refused(`${HEAD}---\napiVersion: switchyard.io/v1beta1\nkind: SwitchyardConfiguration\n`).message,
    `${CONF}:4: apiVersion: "switchyard.io/v1beta1": must be switchyard.io/v1alpha1 for kind SwitchyardConfiguration (the only version Switchyard reads)`,
  );
});

test("values of the wrong type are refused as Go's strict decoder would", () => {
  assert.equal(
    refused(`${HEAD}iptables:\n  masqueradeBit: "14"\n`).message,
    `${CONF}:4: iptables.masqueradeBit: "14": must be an integer from -2147483648 to 2147483647`,
  );
  assert.equal(refused(`${HEAD}ipvs:\n  strictARP: "yes please"\n`).message, `${CONF}:4: ipvs.strictARP: "yes please": must be true or false`);
  assert.equal(refused(`${HEAD}hostnameOverride: 1234\n`).message, `${CONF}:3: hostnameOverride: 1234: must be a string (quote it: "1234")`);
  assert.equal(refused(`${HEAD}nodePortAddresses: 10.0.0.0/8\n`).message, `${CONF}:3: nodePortAddresses: "10.0.0.0/8": must be a list of strings`);
  assert.equal(
    refused(`${HEAD}ipvs: wrr\n`).message,
    `${CONF}:3: ipvs: "wrr": must be a mapping with the fields syncPeriod, minSyncPeriod, scheduler, excludeCIDRs, strictARP, tcpTimeout, tcpFinTimeout, udpTimeout`,
  );
});

test('broken YAML, duplicate keys and an empty file are refused with the line', () => {
  assert.match(refused(`${HEAD}ipvs:\n  excludeCIDRs: [10.0.0.0/8\n`).message, /^\/var\/lib\/kube-proxy\/config\.conf:\d+: not valid YAML: /);
  assert.equal(refused(`${HEAD}mode: ipvs\nmode: iptables\n`).message, `${CONF}:4: not valid YAML: Map keys must be unique`);
  assert.equal(refused('# nothing here\n').message, `${CONF}: is empty: must hold a KubeProxyConfiguration (apiVersion kubeproxy.config.k8s.io/v1alpha1)`);
});

test('a second KubeProxyConfiguration document is refused', () => {
  assert.equal(
    refused(`${HEAD}---\n${HEAD}`).message,
    `${CONF}:5: kind: "KubeProxyConfiguration": a second KubeProxyConfiguration document; the file may hold one of each kind`,
  );
});

test('every problem in the file is reported at once', () => {
  const err = refused(`${HEAD}ipvs:\n  schedular: wrr\n  syncPeriod: soon\nmasqueradeAll: true\n`);
  assert.deepEqual(
    err.problems.map((p) => p.field),
    ['ipvs.schedular', 'ipvs.syncPeriod', 'masqueradeAll'],
  );
  assert.match(err.message, /^3 problems:\n {2}\/var\/lib\/kube-proxy\/config\.conf:4: ipvs\.schedular: /);
  assert.match(err.problems[2]?.message ?? '', /masqueradeAll: unknown field; KubeProxyConfiguration has /);
});

test('an unreadable --config is refused naming the flag', () => {
  const err = (() => {
    try {
      loadConfig(['--config=/nonexistent/kube-proxy.yaml']);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof ConfigError);
  assert.equal(err.field, '--config');
  assert.match(err.message, /^--config: "\/nonexistent\/kube-proxy\.yaml": cannot be read: ENOENT/);
});

test('the written configuration reads back to the same configuration', () => {
  for (const name of ['kubeadm-iptables.yaml', 'ipvs-metallb.yaml', 'nftables-dualstack.yaml', 'with-switchyard.yaml']) {
    const { config } = fromFixture(name);
    const again = fromText(formatConfigFile(config)).config;
    assert.deepEqual({ ...again, command: config.command }, config, name);
  }
});
