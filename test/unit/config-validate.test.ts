// kube-proxy's validation rules on the merged configuration, the rules of
// Switchyard's own modes, and the value syntaxes underneath (Go durations,
// IPs, CIDRs, host:port).

import { expect, test } from 'vitest';
import { loadConfig, ConfigError } from '../../src/config/index.ts';
import { parseGoDuration, formatGoDuration } from '../../src/util/duration.ts';
import { hostPortProblem } from '../../src/config/validate.ts';

const CONF = '/etc/kube-proxy/config.yaml';
const HEAD = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

function load(text: string, ...flags: string[]) {
  return loadConfig([`--config=${CONF}`, ...flags], () => text);
}

function refused(text: string, ...flags: string[]): ConfigError {
  try {
    load(text, ...flags);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  expect.unreachable('the configuration was accepted');
}

test("mode: Switchyard's bpf and auto are accepted in the file too; each mode maps to a dataplane", () => {
  const dataplane = (mode: string) => load(`${HEAD}mode: ${JSON.stringify(mode)}\n`).config.dataplane;
  expect(['', 'auto', 'bpf', 'ipvs', 'iptables', 'nftables'].map(dataplane)).toStrictEqual(['auto', 'auto', 'bpf', 'ipvs', 'auto', 'auto']);
  expect(refused(`${HEAD}mode: userspace\n`).message).toBe(
    `${CONF}:3: mode: "userspace": must be one of bpf, ipvs, auto (Switchyard's dataplanes), iptables or nftables (kube-proxy's, which mean auto here), or empty (auto)`,
  );
});

test('the IPVS section is checked whenever the IPVS dataplane may run (ipvs, auto), not with bpf', () => {
  const bad = `${HEAD}ipvs:\n  scheduler: fastest\n`;
  expect(refused(bad).message, 'auto may fall back to ipvs').toMatch(/ipvs\.scheduler: "fastest": must be one of/);
  expect(() => load(`${bad}mode: bpf\n`)).not.toThrow();
});

test('nftables.masqueradeBit is checked in nftables mode only, iptables.masqueradeBit always (as kube-proxy)', () => {
  expect(() => load(`${HEAD}nftables:\n  masqueradeBit: 40\n`)).not.toThrow();
  expect(refused(`${HEAD}mode: nftables\nnftables:\n  masqueradeBit: 40\n`).message).toBe(`${CONF}:5: nftables.masqueradeBit: 40: must be from 0 to 31`);
  expect(refused(`${HEAD}mode: nftables\niptables:\n  masqueradeBit: -1\n`).message).toBe(`${CONF}:5: iptables.masqueradeBit: -1: must be from 0 to 31`);
});

test('detectLocalMode and its companions', () => {
  expect(refused(`${HEAD}detectLocalMode: InterfaceNamePrefix\n`).message).toBe(
    `${CONF}:3: detectLocalMode: "InterfaceNamePrefix": needs the interface name prefix in detectLocal.interfaceNamePrefix (--pod-interface-name-prefix)`,
  );
  expect(() => load(`${HEAD}detectLocalMode: BridgeInterface\ndetectLocal:\n  bridgeInterface: cbr0\n`)).not.toThrow();
  expect(() => load(`${HEAD}detectLocalMode: NodeCIDR\n`)).not.toThrow();
  // ClusterCIDR without a clusterCIDR: kube-proxy carries on; we warn when the mode was asked for.
  const { warnings } = load(`${HEAD}detectLocalMode: ClusterCIDR\n`);
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${CONF}:3: detectLocalMode: "ClusterCIDR" with no clusterCIDR (--cluster-cidr): no traffic is recognised as coming from local pods`,
  ]);
  expect(load(HEAD).warnings, 'not when the mode is only the default').toStrictEqual([]);
  // The clusterCIDR is only looked at in ClusterCIDR mode, as in kube-proxy.
  expect(() => load(`${HEAD}detectLocalMode: NodeCIDR\nclusterCIDR: nonsense\n`)).not.toThrow();
});

test('addresses, conntrack, oomScoreAdj, burst', () => {
  const cases: [string, string][] = [
    ['bindAddress: 10.0.0.300\n', `${CONF}:3: bindAddress: "10.0.0.300": must be an IP address (0.0.0.0 or :: to detect the node's)`],
    ['healthzBindAddress: 0.0.0.0:0\n', `${CONF}:3: healthzBindAddress: "0.0.0.0:0": must be IP:port, and "0" is not a port from 1 to 65535`],
    ['metricsBindAddress: "[::1]10249"\n', `${CONF}:3: metricsBindAddress: "[::1]10249": must be IP:port (unexpected text after "]")`],
    ['conntrack:\n  min: -1\n', `${CONF}:4: conntrack.min: -1: must be greater than or equal to 0`],
    ['conntrack:\n  udpTimeout: -1s\n', `${CONF}:4: conntrack.udpTimeout: "-1s": must be greater than or equal to 0`],
    ['oomScoreAdj: 1001\n', `${CONF}:3: oomScoreAdj: 1001: must be from -1000 to 1000`],
    ['clientConnection:\n  burst: -5\n', `${CONF}:4: clientConnection.burst: -5: must be greater than or equal to 0`],
    ['portRange: 70000\n', `${CONF}:3: portRange: 70000: must be a string (quote it: "70000")`],
    ['portRange: "100-99"\n', `${CONF}:3: portRange: "100-99": must be a port range such as 30000-32767 or 30000+2767, or empty`],
  ];
  for (const [body, message] of cases) expect(refused(`${HEAD}${body}`).message, body).toBe(message);
});

test('logging: format, vmodule', () => {
  expect(refused(`${HEAD}logging:\n  format: json\n  vmodule:\n  - filePattern: proxier\n    verbosity: 4\n`).message).toBe(
    `${CONF}:5: logging.vmodule: [{"filePattern":"proxier","verbosity":4}]: only works with the text log format`,
  );
  expect(refused(`${HEAD}logging:\n  vmodule:\n  - filePattern: "a=b"\n    verbosity: 4\n`).message).toBe(
    `${CONF}:4: logging.vmodule[0]: "a=b": the file pattern must not contain "=" or ","`,
  );
  expect(refused(`${HEAD}logging:\n  vmodule:\n  - file: x\n`).message).toBe(
    `${CONF}:4: logging.vmodule: [{"file":"x"}]: must be a list of {filePattern: string, verbosity: integer}; item 0 has an unknown field "file"`,
  );
  const { config, warnings } = load(`${HEAD}logging:\n  format: json\n  flushFrequency: 2000000000\n`);
  expect(config.logging.flushFrequency, 'an integer flushFrequency is nanoseconds').toBe(2000);
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${CONF}:5: logging.flushFrequency: 2000000000: accepted for compatibility and ignored: Switchyard writes each line unbuffered`,
  ]);
});

test('SwitchyardConfiguration fields are checked like flags, named as written', () => {
  const sy = (body: string) => `${HEAD}---\napiVersion: switchyard.io/v1alpha1\nkind: SwitchyardConfiguration\n${body}`;
  expect(refused(sy('bpf:\n  pinPath: relative/dir\n')).message).toBe(
    `${CONF}:7: bpf.pinPath: "relative/dir": must be an absolute path (a directory on a bpffs, such as /sys/fs/bpf/switchyard)`,
  );
  expect(refused(sy('bpf:\n  podInterfaces: []\n')).message).toBe(
    `${CONF}:7: bpf.podInterfaces: []: must be one or more non-empty globs, such as veth* or cali*`,
  );
  expect(refused(sy('bpf:\n  pinpath: /x\n')).message).toBe(`${CONF}:7: bpf.pinpath: unknown field (did you mean "pinPath"?)`);
  expect(refused(sy('mode: bpf\n')).message).toBe(`${CONF}:6: mode: unknown field; SwitchyardConfiguration has manifests, bpf, serviceNodePortRange`);
});

test('--bpf-snat-port-range: inside 1024-65535, MIN <= MAX, not overlapping --service-node-port-range', () => {
  expect(load(HEAD).config.switchyard.bpf.snatPortRange).toBe('61000-65535');
  expect(load(HEAD, '--bpf-snat-port-range=40000-40999').config.switchyard.bpf.snatPortRange).toBe('40000-40999');
  expect(refused(HEAD, '--bpf-snat-port-range=80-1000').message).toMatch(/--bpf-snat-port-range.*must be a port range MIN-MAX inside 1024-65535/);
  expect(refused(HEAD, '--bpf-snat-port-range=65000-61000').message).toMatch(/must be a port range MIN-MAX inside 1024-65535 with MIN <= MAX/);
  expect(refused(HEAD, '--bpf-snat-port-range=nope').message).toMatch(/--bpf-snat-port-range/);
  expect(refused(HEAD, '--bpf-snat-port-range=32000-33000').message).toMatch(/overlaps the NodePort range 30000-32767 \(--service-node-port-range\)/);
  expect(load(HEAD, '--bpf-snat-port-range=32000-33000', '--service-node-port-range=20000-22767').config.switchyard.serviceNodePortRange).toBe('20000-22767');
  expect(refused(HEAD, '--service-node-port-range=9-1').message).toMatch(/--service-node-port-range/);
  expect(refused(HEAD, '--bpf-services-max=3').message).toMatch(/--bpf-services-max.*at least 16/);
  expect(refused(HEAD, '--bpf-affinity-max=3').message).toMatch(/--bpf-affinity-max.*at least 16/);
  expect(refused(HEAD, '--bpf-lb-algorithm=roundrobin').message).toBe('--bpf-lb-algorithm: "roundrobin": must be one of random, maglev');
  expect(refused(HEAD, '--bpf-maglev-table-size=16384').message).toMatch(/--bpf-maglev-table-size.*must be a prime number up to 131071/);
  expect(load(HEAD, '--bpf-maglev-table-size=251').config.switchyard.bpf.maglevTableSize).toBe(251);
});

test('Windows-only and removed options are accepted and reported as ignored', () => {
  const { warnings } = load(`${HEAD}winkernel:\n  networkName: l2bridge\nwindowsRunAsService: true\niptables:\n  snatNodeInternalIP: true\n`);
  expect(warnings.map((w) => w.message)).toStrictEqual([
    `${CONF}:4: winkernel.networkName: "l2bridge": accepted for compatibility and ignored: Switchyard runs on Linux only`,
    `${CONF}:5: windowsRunAsService: true: accepted for compatibility and ignored: Switchyard runs on Linux only`,
    `${CONF}:7: iptables.snatNodeInternalIP: true: accepted for compatibility and ignored: Switchyard masquerades to the address of the node it picked (bindAddress, or the detected one)`,
  ]);
});

// --- value syntax ----------------------------------------------------------

test('Go durations parse and format as Go does', () => {
  const ok: [string, number][] = [
    ['0', 0],
    ['30s', 30_000],
    ['1m0s', 60_000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['2h45m', 9_900_000],
    ['1.5h', 5_400_000],
    ['500ms', 500],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['100ns', 0.0001],
    ['-1s', -1000],
    ['+5s', 5000],
    ['.5s', 500],
    ['1.s', 1000],
  ];
  for (const [text, ms] of ok) {
    const d = parseGoDuration(text);
    expect(d.ok, text).toBe(true);
    if (d.ok) expect(Math.abs(d.ms - ms), `${text}: ${d.ms} != ${ms}`).toBeLessThan(1e-9);
  }
  const bad: [string, string][] = [
    ['', 'is empty'],
    ['30', 'has a number without a unit'],
    ['5 s', 'has an unknown unit " s"'],
    ['1d', 'has an unknown unit "d"'],
    ['s', 'is not a number followed by a unit'],
    ['1..5s', 'has a number without a unit'],
  ];
  for (const [text, reason] of bad) expect(parseGoDuration(text), text).toStrictEqual({ ok: false, reason });
  const formats: [number, string][] = [
    [0, '0s'],
    [500, '500ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [60_000, '1m0s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [86_400_000, '24h0m0s'],
    [0.25, '250µs'],
    [-2000, '-2s'],
  ];
  for (const [ms, text] of formats) expect(formatGoDuration(ms), String(ms)).toBe(text);
});

test('host:port as kube-proxy parses it', () => {
  expect(hostPortProblem('0.0.0.0:10256')).toBe(null);
  expect(hostPortProblem('[::]:10256')).toBe(null);
  expect(hostPortProblem('0.0.0.0')).toBe('must be IP:port (missing port in address)');
  expect(hostPortProblem('::1:10256')).toBe('must be IP:port (too many colons in address)');
});
