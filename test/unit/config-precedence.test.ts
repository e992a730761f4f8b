// Flags and file together: a flag given overrides the file's value, a flag not
// given leaves it alone, and where kube-proxy would have ignored the flag
// (it applies only --hostname-override and the logging flags over --config)
// there is a warning saying so.

import { expect, test } from 'vitest';
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
  expect(config.ipvs.scheduler).toBe('sh');
  expect(config.masqueradeAll).toBe(false);
  expect(config.iptables.masqueradeAll).toBe(false);
  expect(config.clusterCIDR).toBe('10.250.0.0/16');
  expect(config.syncPeriod).toBe(60_000);
  expect(config.healthzBindAddress).toBe('127.0.0.1:10256');
  expect(config.clientConnection.kubeconfig).toBe('/etc/other.conf');
  expect(config.switchyard.bpf.pinPath).toBe('/sys/fs/bpf/sy');
  expect(config.switchyard.manifests).toBe('/tmp/m');
});

test("flags not given leave the file's values alone (flag defaults never reset them)", () => {
  const { config } = load(IPVS_FILE, '--hostname-override=node-1');
  expect(config.hostnameOverride).toBe('node-1');
  expect(config.dataplane).toBe('ipvs');
  expect(config.ipvs.scheduler).toBe('wrr');
  expect(config.ipvs.strictARP).toBe(true);
  expect(config.syncPeriod).toBe(15_000);
  expect(config.minSyncPeriod).toBe(2000);
  expect(config.masqueradeAll).toBe(true);
  expect(config.clusterCIDR).toBe('10.244.0.0/16');
  expect(config.clientConnection.kubeconfig).toBe('/var/lib/kube-proxy/kubeconfig.conf');
  expect(config.logging.verbosity).toBe(2);
  expect(config.switchyard.manifests).toBe('/etc/switchyard/manifests');
  expect(config.switchyard.bpf.pinPath).toBe('/run/switchyard/bpf');
  expect(config.switchyard.bpf.podInterfaces, 'a field neither gives is defaulted').toStrictEqual(['veth*']);
});

test('--proxy-mode over the file switches the section the sync periods come from', () => {
  const { config } = load(IPVS_FILE, '--proxy-mode=bpf');
  expect(config.dataplane).toBe('bpf');
  // Not ipvs any more: iptables.* (defaulted) applies, as kube-proxy's conversion does for every mode but ipvs and nftables.
  expect(config.syncPeriod).toBe(30_000);
  expect(config.minSyncPeriod).toBe(1000);
  expect(config.ipvs.syncPeriod, 'the ipvs section itself is kept').toBe(15_000);
});

test("the per-mode sync flags apply to the mode's section only, with a warning otherwise", () => {
  const nft = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nnftables:\n  syncPeriod: 20s\n`;
  // kube-proxy: --iptables-sync-period sets the sync period in every mode but ipvs.
  expect(load(nft, '--iptables-sync-period=45s').config.syncPeriod).toBe(45_000);
  const ipvs = load(IPVS_FILE, '--iptables-sync-period=45s', '--iptables-min-sync-period=0');
  expect(ipvs.config.syncPeriod).toBe(15_000);
  const messages = ipvs.warnings.map((w) => w.message);
  expect(messages).toContain('--iptables-sync-period: has no effect in ipvs mode; use --ipvs-sync-period');
  expect(messages).toContain('--iptables-min-sync-period: has no effect in ipvs mode; use --ipvs-min-sync-period');
  const bpf = loadConfig(['--proxy-mode=bpf', '--ipvs-min-sync-period=5s', '--ipvs-scheduler=wrr']);
  expect(bpf.warnings.map((w) => w.message)).toStrictEqual([
    '--ipvs-scheduler: has no effect with mode bpf: the IPVS dataplane does not run',
    '--ipvs-min-sync-period: has no effect unless mode is ipvs (mode is bpf); use --iptables-min-sync-period',
  ]);
});

test("a flag's zero is kept while a file's zero means the default, as kube-proxy defaults before applying flags", () => {
  const file = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  minSyncPeriod: 0s\n  syncPeriod: 10s\n`;
  expect(load(file).config.minSyncPeriod).toBe(1000);
  expect(load(file, '--iptables-min-sync-period=0').config.minSyncPeriod).toBe(0);
  expect(loadConfig(['--iptables-min-sync-period=0']).config.minSyncPeriod).toBe(0);
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
  expect(overrides.map((w) => w.message)).toStrictEqual([
    `--ipvs-scheduler: "sh": overrides ipvs.scheduler: "wrr" from ${CONF} (kube-proxy would ignore this flag because --config is given)`,
    `--conntrack-min: "0": is applied over ${CONF} (kube-proxy would ignore this flag because --config is given)`,
  ]);
  expect(overrides.map((w) => w.field)).toStrictEqual(['--ipvs-scheduler', '--conntrack-min']);
});

test("logging flags override the file; --vmodule entries come before the file's, as kube-proxy joins them", () => {
  const { config } = load(IPVS_FILE, '-v=4', '--vmodule=runner=6');
  expect(config.logging.verbosity).toBe(4);
  expect(config.logging.vmodule).toStrictEqual([
    { filePattern: 'runner', verbosity: 6 },
    { filePattern: 'proxier', verbosity: 5 },
  ]);
});

test("--feature-gates joins the file's gates, a flag's key winning", () => {
  expect(load(IPVS_FILE, '--feature-gates=B=false,C=true').config.featureGates).toStrictEqual({ A: true, B: false, C: true });
});

test('a problem caused by a flag over the file names the flag, and one left in the file names the field', () => {
  let err: unknown;
  try {
    load(IPVS_FILE, '--ipvs-min-sync-period=1m');
  } catch (e) {
    err = e;
  }
  expect((err as Error).message).toBe('--ipvs-min-sync-period: "1m": must be less than or equal to ipvs.syncPeriod ("15s")');
  try {
    load(IPVS_FILE, '--ipvs-sync-period=1s');
  } catch (e) {
    err = e;
  }
  expect((err as Error).message).toBe('--ipvs-sync-period: "1s": must be greater than or equal to ipvs.minSyncPeriod ("2s")');
});

test('--masquerade-all sets the masquerade of whichever mode the file picks', () => {
  const nft = `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n`;
  expect(load(nft, '--masquerade-all').config.masqueradeAll).toBe(true);
  expect(load(nft).config.masqueradeAll).toBe(false);
});

test('without --config, flags alone: no file is read and no override warnings', () => {
  const { config, warnings } = loadConfig(['--proxy-mode=ipvs', '--ipvs-scheduler=rr', '--hostname-override=n1'], () => expect.unreachable('read'));
  expect(config.dataplane).toBe('ipvs');
  expect(warnings).toStrictEqual([]);
  expect(config.command.configFile).toBe('');
});
