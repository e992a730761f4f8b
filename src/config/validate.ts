// kube-proxy's validation (pkg/proxy/apis/config/validation/validation.go),
// applied to the merged, defaulted configuration, plus the rules of
// Switchyard's own modes and options. Each problem names the option the way
// the user gave it (flag, or file field and line), shows the value and says
// what is allowed. Things that are accepted but worth knowing (kube-proxy
// modes Switchyard maps to its own, options it ignores, flags with no effect
// in the chosen mode) come back as warnings.
//
// Where we differ from kube-proxy, on purpose:
//  - the IPVS section is checked whenever the IPVS dataplane may run (mode
//    ipvs, or auto, which may fall back to it), not only in ipvs mode, and the
//    scheduler is checked against the kernel's schedulers up front (kube-proxy
//    finds an unknown one only when it fails to load its kernel module);
//  - mode also allows bpf and auto; kernelspace (Windows) is refused.

import { problem, showValue, type ConfigProblem, type Origin } from './errors.ts';
import { formatGoDuration } from '../util/duration.ts';
import { RUN_FLAGS, type RunFlag } from './flags.ts';
import { ipFamily, parseCidr, splitHostPort } from '../util/ip.ts';
import type { Settings } from './settings.ts';
import { isPrime, MAGLEV_MAX_M } from '../dataplane/bpf/maglev.ts';
import { IPVS_SCHEDULERS, LB_ALGORITHMS, LOCAL_MODES, NODE_PORT_ADDRESSES_PRIMARY, PROXY_MODES, type ConfigWarning, type SwitchyardConfig } from './types.ts';

export interface Validation {
  readonly problems: ConfigProblem[];
  readonly warnings: ConfigWarning[];
}

const MODES_ALLOWED = "must be one of bpf, ipvs, auto (Switchyard's dataplanes), iptables or nftables (kube-proxy's, which mean auto here), or empty (auto)";
const CIDR_EXAMPLE = 'such as 10.244.0.0/16 or fd00:10:244::/56';

/** Reads origins and written values of settings, for messages. */
class Fields {
  readonly settings: Settings;
  readonly problems: ConfigProblem[] = [];
  readonly warnings: ConfigWarning[] = [];
  constructor(settings: Settings) {
    this.settings = settings;
  }
  origin(path: string): Origin {
    return this.settings.get(path)?.origin ?? { kind: 'default', field: path };
  }
  given(path: string): boolean {
    return this.settings.has(path);
  }
  label(path: string): string {
    const o = this.origin(path);
    return o.kind === 'flag' ? `--${o.flag}` : o.field;
  }
  /** The value as the user wrote it, else the effective value rendered. */
  shown(path: string, effective: unknown): string {
    return this.settings.get(path)?.shown ?? showValue(effective);
  }
  fail(path: string, effective: unknown, message: string, origin = this.origin(path)): void {
    this.problems.push(problem(origin, this.shown(path, effective), message));
  }
  warn(path: string, message: string): void {
    const o = this.origin(path);
    const p = problem(o, undefined, message);
    this.warnings.push({ field: p.field, message: p.message });
  }
}

function item(origin: Origin, i: number): Origin {
  return origin.kind === 'file' ? { ...origin, field: `${origin.field}[${i}]` } : origin;
}

export function validateConfig(c: SwitchyardConfig, settings: Settings): Validation {
  const f = new Fields(settings);
  validateMode(f, c);
  validateSyncPeriods(f, c);
  validateAddresses(f, c);
  validateDetectLocal(f, c);
  validateIPTablesAndNFTables(f, c);
  validateIPVS(f, c);
  validateLinux(f, c);
  validateLogging(f, c);
  validateSwitchyard(f, c);
  warnIgnored(f);
  warnModeMismatches(f, c);
  return { problems: f.problems, warnings: f.warnings };
}

function validateMode(f: Fields, c: SwitchyardConfig): void {
  const written = f.settings.get('mode')?.value;
  if (typeof written === 'string' && !(PROXY_MODES as readonly string[]).includes(written)) {
    f.fail('mode', written, written === 'kernelspace' ? `is kube-proxy's Windows mode; on Linux, mode ${MODES_ALLOWED}` : MODES_ALLOWED);
    return;
  }
  if (c.mode === 'iptables' || c.mode === 'nftables') {
    f.warn(
      'mode',
      `${JSON.stringify(c.mode)} is a kube-proxy mode Switchyard does not implement; it picks its dataplane as for auto (bpf where the kernel can run it, else ipvs)`,
    );
  }
}

/** The v1alpha1 section whose sync periods the mode uses (kube-proxy's conversion to its internal configuration). */
function syncSection(c: SwitchyardConfig): 'ipvs' | 'nftables' | 'iptables' {
  return c.mode === 'ipvs' ? 'ipvs' : c.mode === 'nftables' ? 'nftables' : 'iptables';
}

function validateSyncPeriods(f: Fields, c: SwitchyardConfig): void {
  const section = syncSection(c);
  const sync = `${section}.syncPeriod`;
  const min = `${section}.minSyncPeriod`;
  const d = (ms: number) => JSON.stringify(formatGoDuration(ms));
  if (c.syncPeriod <= 0) f.fail(sync, formatGoDuration(c.syncPeriod), 'must be greater than 0');
  if (c.minSyncPeriod < 0) f.fail(min, formatGoDuration(c.minSyncPeriod), 'must be greater than or equal to 0');
  if (c.syncPeriod > 0 && c.minSyncPeriod > c.syncPeriod) {
    // Blame the one a flag set (it overrode the file), else the one the user set, else the minimum.
    const byFlag = (p: string) => f.origin(p).kind === 'flag';
    const blameMin = byFlag(min) || (!byFlag(sync) && (f.given(min) || !f.given(sync)));
    if (blameMin) f.fail(min, formatGoDuration(c.minSyncPeriod), `must be less than or equal to ${f.label(sync)} (${d(c.syncPeriod)})`);
    else f.fail(sync, formatGoDuration(c.syncPeriod), `must be greater than or equal to ${f.label(min)} (${d(c.minSyncPeriod)})`);
  }
  if (c.configSyncPeriod <= 0) f.fail('configSyncPeriod', formatGoDuration(c.configSyncPeriod), 'must be greater than 0');
}

function validateAddresses(f: Fields, c: SwitchyardConfig): void {
  if (ipFamily(c.bindAddress, 'decimal') === null) f.fail('bindAddress', c.bindAddress, "must be an IP address (0.0.0.0 or :: to detect the node's)");
  for (const path of ['healthzBindAddress', 'metricsBindAddress'] as const) {
    const v = c[path];
    const why = v === '' ? null : hostPortProblem(v);
    if (why !== null) f.fail(path, v, why);
  }
  const npa = c.nodePortAddresses;
  const origin = f.origin('nodePortAddresses');
  npa.forEach((a, i) => {
    if (a === NODE_PORT_ADDRESSES_PRIMARY) {
      if (npa.length !== 1)
        f.problems.push(problem(item(origin, i), JSON.stringify(a), 'can\'t be combined with CIDRs: give either "primary" alone or a list of CIDRs'));
    } else if (parseCidr(a, 'decimal') === null) {
      f.problems.push(problem(item(origin, i), JSON.stringify(a), `must be a CIDR ${CIDR_EXAMPLE}, or "primary" alone`));
    }
  });
  if (c.portRange !== '' && !validPortRange(c.portRange)) f.fail('portRange', c.portRange, 'must be a port range such as 30000-32767 or 30000+2767, or empty');
  if (c.showHiddenMetricsForVersion !== '' && !/^\d+\.\d+$/.test(c.showHiddenMetricsForVersion)) {
    f.fail('showHiddenMetricsForVersion', c.showHiddenMetricsForVersion, 'must be MAJOR.MINOR, such as "1.33", or empty');
  }
}

/** k8s.io/apimachinery's port range syntax: N, N-M or N+K, within 0-65535. */
function validPortRange(text: string): boolean {
  const m = /^\s*(\d+)(?:([-+])(\d+))?\s*$/.exec(text);
  if (!m) return false;
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : m[2] === '-' ? Number(m[3]) : low + Number(m[3]);
  return low <= 65535 && high <= 65535 && low <= high;
}

function validateDetectLocal(f: Fields, c: SwitchyardConfig): void {
  const written = f.settings.get('detectLocalMode')?.value;
  if (typeof written === 'string' && written !== '' && !(LOCAL_MODES as readonly string[]).includes(written)) {
    f.fail('detectLocalMode', written, `must be one of ${LOCAL_MODES.join(', ')}, or empty (ClusterCIDR)`);
    return;
  }
  switch (c.detectLocalMode) {
    case 'BridgeInterface':
      if (c.detectLocal.bridgeInterface === '')
        f.fail('detectLocalMode', c.detectLocalMode, "needs the bridge's name in detectLocal.bridgeInterface (--pod-bridge-interface)");
      break;
    case 'InterfaceNamePrefix':
      if (c.detectLocal.interfaceNamePrefix === '')
        f.fail('detectLocalMode', c.detectLocalMode, 'needs the interface name prefix in detectLocal.interfaceNamePrefix (--pod-interface-name-prefix)');
      break;
    case 'ClusterCIDR':
      validateClusterCIDR(f, c);
      break;
    case 'NodeCIDR':
      break;
  }
}

function validateClusterCIDR(f: Fields, c: SwitchyardConfig): void {
  const cidrs = c.clusterCIDRs;
  if (cidrs.length === 0) {
    // kube-proxy logs this and carries on; worth a warning only when the mode was chosen, not defaulted.
    if (f.given('detectLocalMode'))
      f.warn('detectLocalMode', '"ClusterCIDR" with no clusterCIDR (--cluster-cidr): no traffic is recognised as coming from local pods');
    return;
  }
  if (cidrs.length > 2) {
    f.fail('clusterCIDR', c.clusterCIDR, 'must be one CIDR or a dual-stack pair, one IPv4 and one IPv6 (such as 10.244.0.0/16,fd00:10:244::/56)');
    return;
  }
  const parsed = cidrs.map((cidr) => parseCidr(cidr, 'decimal'));
  const badAt = parsed.indexOf(null);
  if (badAt >= 0) {
    f.fail('clusterCIDR', c.clusterCIDR, `must be a CIDR ${CIDR_EXAMPLE} (or a dual-stack pair of them), and ${JSON.stringify(cidrs[badAt])} is not one`);
    return;
  }
  if (parsed.length === 2 && parsed[0]?.family === parsed[1]?.family) {
    f.fail('clusterCIDR', c.clusterCIDR, 'a pair must be dual-stack: one IPv4 and one IPv6 CIDR');
  }
}

function validateIPTablesAndNFTables(f: Fields, c: SwitchyardConfig): void {
  const bit = (path: string, v: number) => {
    if (v < 0 || v > 31) f.fail(path, v, 'must be from 0 to 31');
  };
  bit('iptables.masqueradeBit', c.iptables.masqueradeBit);
  if (c.mode === 'nftables') bit('nftables.masqueradeBit', c.nftables.masqueradeBit);
}

function validateIPVS(f: Fields, c: SwitchyardConfig): void {
  if (c.dataplane === 'bpf') return; // the IPVS dataplane cannot run
  const s = c.ipvs.scheduler;
  if (s !== '' && !(IPVS_SCHEDULERS as readonly string[]).includes(s)) {
    const lower = s.toLowerCase();
    const hint = (IPVS_SCHEDULERS as readonly string[]).includes(lower) ? ` (did you mean "${lower}"?)` : '';
    f.fail('ipvs.scheduler', s, `must be one of ${IPVS_SCHEDULERS.join(', ')}, or empty (rr)${hint}`);
  }
  for (const t of ['tcpTimeout', 'tcpFinTimeout', 'udpTimeout'] as const) {
    if (c.ipvs[t] < 0) f.fail(`ipvs.${t}`, formatGoDuration(c.ipvs[t]), "must be greater than or equal to 0 (0 leaves the kernel's)");
  }
  const origin = f.origin('ipvs.excludeCIDRs');
  c.ipvs.excludeCIDRs.forEach((cidr, i) => {
    if (parseCidr(cidr, 'decimal') === null) f.problems.push(problem(item(origin, i), JSON.stringify(cidr), `must be a CIDR ${CIDR_EXAMPLE}`));
  });
}

function validateLinux(f: Fields, c: SwitchyardConfig): void {
  const nonNegative = (path: string, v: number, shown: unknown = v) => {
    if (v < 0) f.fail(path, shown, 'must be greater than or equal to 0');
  };
  nonNegative('conntrack.maxPerCore', c.conntrack.maxPerCore);
  nonNegative('conntrack.min', c.conntrack.min);
  for (const t of ['tcpEstablishedTimeout', 'tcpCloseWaitTimeout', 'udpTimeout', 'udpStreamTimeout'] as const) {
    nonNegative(`conntrack.${t}`, c.conntrack[t], formatGoDuration(c.conntrack[t]));
  }
  if (c.oomScoreAdj < -1000 || c.oomScoreAdj > 1000) f.fail('oomScoreAdj', c.oomScoreAdj, 'must be from -1000 to 1000');
  nonNegative('clientConnection.burst', c.clientConnection.burst);
  // kube-proxy: a --hostname-override that is only blanks is an error (an empty one is no override).
  const host = f.settings.get('hostnameOverride');
  if (host?.origin.kind === 'flag' && typeof host.value === 'string' && host.value !== '' && host.value.trim() === '') {
    f.fail('hostnameOverride', host.value, 'must not be blank');
  }
}

function validateLogging(f: Fields, c: SwitchyardConfig): void {
  const l = c.logging;
  if (l.format !== 'text' && l.format !== 'json') f.fail('logging.format', l.format, 'must be text or json');
  if (l.verbosity > 2147483647) f.fail('logging.verbosity', l.verbosity, 'must be at most 2147483647');
  const origin = f.origin('logging.vmodule');
  if (l.vmodule.length > 0 && l.format !== 'text')
    f.fail('logging.vmodule', l.vmodule.map((v) => `${v.filePattern}=${v.verbosity}`).join(','), 'only works with the text log format');
  l.vmodule.forEach((v, i) => {
    if (v.filePattern === '') f.problems.push(problem(item(origin, i), '""', 'the file pattern must not be empty'));
    else if (/[=,]/.test(v.filePattern))
      f.problems.push(problem(item(origin, i), JSON.stringify(v.filePattern), 'the file pattern must not contain "=" or ","'));
    if (v.verbosity > 2147483647) f.problems.push(problem(item(origin, i), String(v.verbosity), 'the verbosity must be at most 2147483647'));
  });
}

function validateSwitchyard(f: Fields, c: SwitchyardConfig): void {
  const sy = c.switchyard;
  if (sy.manifests === '') f.fail('switchyard.manifests', '', 'must name a directory');
  if (sy.bpf.cgroup2Path !== '' && sy.bpf.cgroup2Path !== 'none' && !sy.bpf.cgroup2Path.startsWith('/'))
    f.fail('switchyard.bpf.cgroup2Path', sy.bpf.cgroup2Path, "must be an absolute path (a cgroup v2 directory, such as /sys/fs/cgroup), or 'none'");
  if (!sy.bpf.pinPath.startsWith('/'))
    f.fail('switchyard.bpf.pinPath', sy.bpf.pinPath, 'must be an absolute path (a directory on a bpffs, such as /sys/fs/bpf/switchyard)');
  if (sy.bpf.object === '') f.fail('switchyard.bpf.object', '', 'must name the compiled BPF object');
  if (sy.bpf.podInterfaces.length === 0 || sy.bpf.podInterfaces.some((g) => g === '')) {
    f.fail('switchyard.bpf.podInterfaces', sy.bpf.podInterfaces, 'must be one or more non-empty globs, such as veth* or cali*');
  }
  for (const [path, v] of [
    ['switchyard.bpf.servicesMax', sy.bpf.servicesMax],
    ['switchyard.bpf.backendsMax', sy.bpf.backendsMax],
    ['switchyard.bpf.affinityMax', sy.bpf.affinityMax],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 16)) f.fail(path, v, 'must be a whole number of entries, at least 16');
  }
  if (!(LB_ALGORITHMS as readonly string[]).includes(sy.bpf.lbAlgorithm))
    f.fail('switchyard.bpf.lbAlgorithm', sy.bpf.lbAlgorithm, `must be one of ${LB_ALGORITHMS.join(', ')}`);
  if (!(isPrime(sy.bpf.maglevTableSize) && sy.bpf.maglevTableSize <= MAGLEV_MAX_M))
    f.fail('switchyard.bpf.maglevTableSize', sy.bpf.maglevTableSize, `must be a prime number up to ${MAGLEV_MAX_M}, such as 16381 or 65521`);
  const nodePorts = parsePortRange(sy.serviceNodePortRange);
  if (nodePorts === null) f.fail('switchyard.serviceNodePortRange', sy.serviceNodePortRange, 'must be a port range MIN-MAX such as 30000-32767');
  const snat = parsePortRange(sy.bpf.snatPortRange);
  if (snat === null || snat.min < 1024) {
    f.fail('switchyard.bpf.snatPortRange', sy.bpf.snatPortRange, 'must be a port range MIN-MAX inside 1024-65535 with MIN <= MAX, such as 61000-65535');
  } else if (nodePorts !== null && rangesOverlap(snat, nodePorts)) {
    f.fail(
      'switchyard.bpf.snatPortRange',
      sy.bpf.snatPortRange,
      `overlaps the NodePort range ${sy.serviceNodePortRange} (--service-node-port-range): a masqueraded flow could take a NodePort`,
    );
  }
}

/** "MIN-MAX" (or a single port) within 1-65535 with MIN <= MAX; null otherwise. */
export function parsePortRange(text: string): { min: number; max: number } | null {
  const m = /^\s*(\d{1,5})(?:-(\d{1,5}))?\s*$/.exec(text);
  if (!m) return null;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  return min >= 1 && max <= 65535 && min <= max ? { min, max } : null;
}

export function rangesOverlap(a: { min: number; max: number }, b: { min: number; max: number }): boolean {
  return a.min <= b.max && b.min <= a.max;
}

/** Options kube-proxy has that Switchyard accepts and ignores, by setting path. */
const IGNORED_PATHS: ReadonlyMap<string, string> = new Map([
  ...RUN_FLAGS.filter((fl): fl is RunFlag & { ignored: string } => fl.ignored !== undefined).flatMap((fl) =>
    fl.paths.map((p): [string, string] => [p, fl.ignored]),
  ),
  ['windowsRunAsService', 'Switchyard runs on Linux only'],
  ['winkernel.networkName', 'Switchyard runs on Linux only'],
  ['winkernel.sourceVip', 'Switchyard runs on Linux only'],
  ['winkernel.enableDSR', 'Switchyard runs on Linux only'],
  ['winkernel.rootHnsEndpointName', 'Switchyard runs on Linux only'],
  ['winkernel.forwardHealthCheckVip', 'Switchyard runs on Linux only'],
  ['iptables.snatNodeInternalIP', 'Switchyard masquerades to the address of the node it picked (bindAddress, or the detected one)'],
]);

function isZero(v: unknown): boolean {
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length === 0;
  return v === false || v === '' || v === 0 || v === '0';
}

function warnIgnored(f: Fields): void {
  for (const [path, s] of f.settings) {
    const why = IGNORED_PATHS.get(path);
    if (why !== undefined && !isZero(s.value)) f.warn(path, `${s.shown}: accepted for compatibility and ignored: ${why}`);
  }
  for (const fl of RUN_FLAGS) {
    if (fl.deprecated === undefined || fl.ignored !== undefined) continue; // an ignored one was warned about above
    const s = f.settings.get(fl.paths[0] ?? '');
    if (s?.origin.kind === 'flag' && s.origin.flag === fl.name) f.warn(fl.paths[0] ?? '', `is deprecated: ${fl.deprecated}`);
  }
}

/** Flags given explicitly that the chosen mode does not use (kube-proxy ignores them silently). */
function warnModeMismatches(f: Fields, c: SwitchyardConfig): void {
  const fromFlag = (path: string) => f.settings.get(path)?.origin.kind === 'flag';
  const mode = c.mode === '' ? 'auto (the default)' : c.mode;
  if (c.dataplane === 'bpf') {
    for (const path of ['ipvs.scheduler', 'ipvs.excludeCIDRs', 'ipvs.strictARP', 'ipvs.tcpTimeout', 'ipvs.tcpFinTimeout', 'ipvs.udpTimeout']) {
      if (fromFlag(path)) f.warn(path, 'has no effect with mode bpf: the IPVS dataplane does not run');
    }
  }
  if (c.mode === 'ipvs') {
    for (const [path, instead] of [
      ['iptables.syncPeriod', '--ipvs-sync-period'],
      ['iptables.minSyncPeriod', '--ipvs-min-sync-period'],
    ] as const) {
      if (fromFlag(path)) f.warn(path, `has no effect in ipvs mode; use ${instead}`);
    }
  } else {
    for (const [path, instead] of [
      ['ipvs.syncPeriod', '--iptables-sync-period'],
      ['ipvs.minSyncPeriod', '--iptables-min-sync-period'],
    ] as const) {
      if (fromFlag(path)) f.warn(path, `has no effect unless mode is ipvs (mode is ${mode}); use ${instead}`);
    }
  }
}

/** Why `text` is not a valid IP:port (leading zeros read as decimal, as kube-proxy does), or null when it is. */
export function hostPortProblem(text: string): string | null {
  const hp = splitHostPort(text);
  if (!hp.ok) return `must be IP:port (${hp.reason})`;
  if (ipFamily(hp.host, 'decimal') === null) return `must be IP:port, and ${JSON.stringify(hp.host)} is not an IP address`;
  if (!/^\d{1,5}$/.test(hp.port) || Number(hp.port) < 1 || Number(hp.port) > 65535) {
    return `must be IP:port, and ${JSON.stringify(hp.port)} is not a port from 1 to 65535`;
  }
  return null;
}
