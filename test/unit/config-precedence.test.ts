// Flags and file together: a flag given overrides the file's value, a flag not
// given leaves it alone, and where kube-proxy would have ignored the flag
// (it applies only --hostname-override and the logging flags over --config)
// there is a warning saying so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/index.ts';

const CONF = '/etc/kube-proxy/config.yaml';

const IPVS_FILE = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
clusterCIDR: 10.244.0.0/16
hostnameOverride: from-file
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
ipvs:
  scheduler: wrr
  strictARP: true
  syncPeriod: 15s
  minSyncPeriod: 2s
iptables:
  masqueradeAll: true
logging:
  verbosity: 2
  vmodule:
  - filePattern: proxier
    verbosity: 5
featureGates:
  A: true
  B: true
---
apiVersion: switchyard.io/v1alpha1
kind: SwitchyardConfiguration
manifests: /etc/switchyard/manifests
bpf:
  pinPath: /run/switchyard/bpf
`;

function load(file: string, ...flags: string[]) {
  return loadConfig([`--config=${CONF}`, ...flags], () => file);
}

test('flags override the file', () => {
  const { config } = load(
    IPVS_FILE,
    '--ipvs-scheduler=sh',
    '--masquerade-all=false',
    '--cluster-cidr=10.250.0.0/16',
    '--ipvs-sync-period=1m',
    '--healthz-bind-address=127.0.0.1:10256',
    '--kubeconfig=/etc/other.conf',
    '--bpf-pin-path=/sys/fs/bpf/sy',
    '--manifests=/tmp/m',
  );
  assert.equal(config.ipvs.scheduler, 'sh');
  assert.equal(config.masqueradeAll, false);
  assert.equal(config.iptables.masqueradeAll, false);
  assert.equal(config.clusterCIDR, '10.250.0.0/16');
  assert.equal(config.syncPeriod, 60_000);
  assert.equal(config.healthzBindAddress, '127.0.0.1:10256');
  assert.equal(config.clientConnection.kubeconfig, '/etc/other.conf');
  assert.equal(config.switchyard.bpf.pinPath, '/sys/fs/bpf/sy');
  assert.equal(config.switchyard.manifests, '/tmp/m');
});

test("flags not given leave the file's values alone (flag defaults never reset them)", () => {
  const { config } = load(IPVS_FILE, '--hostname-override=node-1');
  assert.equal(config.hostnameOverride, 'node-1');
  assert.equal(config.dataplane, 'ipvs');
  assert.equal(config.ipvs.scheduler, 'wrr');
  assert.equal(config.ipvs.strictARP, true);
  assert.equal(config.syncPeriod, 15_000);
  assert.equal(config.minSyncPeriod, 2000);
  assert.equal(config.masqueradeAll, true);
  assert.equal(config.clusterCIDR, '10.244.0.0/16');
  assert.equal(config.clientConnection.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
  assert.equal(config.logging.verbosity, 2);
  assert.equal(config.switchyard.manifests, '/etc/switchyard/manifests');
  assert.equal(config.switchyard.bpf.pinPath, '/run/switchyard/bpf');
  assert.deepEqual(config.switchyard.bpf.podInterfaces, ['veth*'], 'a field neither gives is defaulted');
});

test('--proxy-mode over the file switches the section the sync periods come from', () => {
  const { config } = load(IPVS_FILE, '--proxy-mode=bpf');
  assert.equal(config.dataplane, 'bpf');
  // Not ipvs any more: iptables.* (defaulted) applies, as kube-proxy's conversion does for every mode but ipvs and nftables.
  assert.equal(config.syncPeriod, 30_000);
  assert.equal(config.minSyncPeriod, 1000);
  assert.equal(config.ipvs.syncPeriod, 15_000, 'the ipvs section itself is kept');
});

test("the per-mode sync flags apply to the mode's section only, with a warning otherwise", () => {
  const nft = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nnftables:\n  syncPeriod: 20s\n`;
  // kube-proxy: --iptables-sync-period sets the sync period in every mode but ipvs.
  assert.equal(load(nft, '--iptables-sync-period=45s').config.syncPeriod, 45_000);
  const ipvs = load(IPVS_FILE, '--iptables-sync-period=45s', '--iptables-min-sync-period=0');
  assert.equal(ipvs.config.syncPeriod, 15_000);
  assert.ok(ipvs.warnings.some((w) => w.message === '--iptables-sync-period: has no effect in ipvs mode; use --ipvs-sync-period'));
  assert.ok(ipvs.warnings.some((w) => w.message === '--iptables-min-sync-period: has no effect in ipvs mode; use --ipvs-min-sync-period'));
  const bpf = loadConfig(['--proxy-mode=bpf', '--ipvs-min-sync-period=5s', '--ipvs-scheduler=wrr']);
  assert.deepEqual(
    bpf.warnings.map((w) => w.message),
    [
      '--ipvs-scheduler: has no effect with mode bpf: the IPVS dataplane does not run',
      '--ipvs-min-sync-period: has no effect unless mode is ipvs (mode is bpf); use --iptables-min-sync-period',
    ],
  );
});

test("a flag's zero is kept while a file's zero means the default, as kube-proxy defaults before applying flags", () => {
  const file = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  minSyncPeriod: 0s\n  syncPeriod: 10s\n`;
  assert.equal(load(file).config.minSyncPeriod, 1000);
  assert.equal(load(file, '--iptables-min-sync-period=0').config.minSyncPeriod, 0);
  assert.equal(loadConfig(['--iptables-min-sync-period=0']).config.minSyncPeriod, 0);
});

test('each flag kube-proxy would ignore under --config gets a warning; --hostname-override and logging flags do not', () => {
  const { warnings } = load(
    IPVS_FILE,
    '--ipvs-scheduler=sh',
    '--conntrack-min=0',
    '--hostname-override=node-1',
    '-v=4',
    '--cleanup',
    '--bpf-pin-path=/sys/fs/bpf/sy',
  );
  const overrides = warnings.filter((w) => w.message.includes('kube-proxy would ignore'));
  assert.deepEqual(
    overrides.map((w) => w.message),
    [
      `--ipvs-scheduler: "sh": overrides ipvs.scheduler: "wrr" from ${CONF} (kube-proxy would ignore this flag because --config is given)`,
      `--conntrack-min: "0": is applied over ${CONF} (kube-proxy would ignore this flag because --config is given)`,
    ],
  );
  assert.deepEqual(
    overrides.map((w) => w.field),
    ['--ipvs-scheduler', '--conntrack-min'],
  );
});

test("logging flags override the file; --vmodule entries come before the file's, as kube-proxy joins them", () => {
  const { config } = load(IPVS_FILE, '-v=4', '--vmodule=runner=6');
  assert.equal(config.logging.verbosity, 4);
  assert.deepEqual(config.logging.vmodule, [
    { filePattern: 'runner', verbosity: 6 },
    { filePattern: 'proxier', verbosity: 5 },
  ]);
});

test("--feature-gates joins the file's gates, a flag's key winning", () => {
  assert.deepEqual(load(IPVS_FILE, '--feature-gates=B=false,C=true').config.featureGates, { A: true, B: false, C: true });
});

test('a problem caused by a flag over the file names the flag, and one left in the file names the field', () => {
  let err: unknown;
  try {
    load(IPVS_FILE, '--ipvs-min-sync-period=1m');
  } catch (e) {
    err = e;
  }
  assert.equal((err as Error).message, '--ipvs-min-sync-period: "1m": must be less than or equal to ipvs.syncPeriod ("15s")');
  try {
    load(IPVS_FILE, '--ipvs-sync-period=1s');
  } catch (e) {
    err = e;
  }
  assert.equal((err as Error).message, '--ipvs-sync-period: "1s": must be greater than or equal to ipvs.minSyncPeriod ("2s")');
});

test('--masquerade-all sets the masquerade of whichever mode the file picks', () => {
  const nft = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n`;
  assert.equal(load(nft, '--masquerade-all').config.masqueradeAll, true);
  assert.equal(load(nft).config.masqueradeAll, false);
});

test('without --config, flags alone: no file is read and no override warnings', () => {
  const { config, warnings } = loadConfig(['--proxy-mode=ipvs', '--ipvs-scheduler=rr', '--hostname-override=n1'], () => assert.fail('read'));
  assert.equal(config.dataplane, 'ipvs');
  assert.deepEqual(warnings, []);
  assert.equal(config.command.configFile, '');
});
