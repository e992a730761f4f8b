// The command line of every switchyard command, parsed one way: `switchyard
// run`'s flags are every flag kube-proxy (Linux) has plus Switchyard's own in
// a section of their own; the other commands (cleanup, demo) declare theirs
// in the same form and get the same syntax, conversions, errors and --help.
//
// Syntax as kube-proxy's (spf13/pflag): `--name=value` and `--name value`;
// booleans are `--name` or `--name=false` (never `--name false`); short forms
// only where a flag declares one (`-v4`, `-v=4`, `-v 4`, `-h`); `_` in a name
// reads as `-`; lists are comma-separated and a repeated list flag appends;
// `--` ends the flags. kube-proxy takes no positional arguments and neither
// does any switchyard command.
//
// Each run flag writes one or more setting paths (the file's field names), so
// flags and file merge as two maps; see index.ts for the precedence.

import { ConfigError, problem, type ConfigProblem } from './errors.ts';
import { nearest, QUANTITY } from './file.ts';
import { parseGoDuration, DURATION_HELP } from '../util/duration.ts';
import { ipFamily, splitHostPort } from '../util/ip.ts';
import type { Setting, SettingValue } from './settings.ts';
import {
  DEFAULT_AFFINITY_MAX,
  DEFAULT_MAGLEV_TABLE_SIZE,
  DEFAULT_BACKENDS_MAX,
  DEFAULT_PIN_PATH,
  DEFAULT_POD_INTERFACES,
  DEFAULT_SERVICE_NODE_PORT_RANGE,
  DEFAULT_SERVICES_MAX,
  DEFAULT_SNAT_PORT_RANGE,
  IPVS_SCHEDULERS,
  type VModuleItem,
} from './types.ts';

export type FlagKind =
  | 'string'
  | 'bool'
  | 'int32'
  | 'uint32'
  | 'float'
  | 'duration'
  | 'stringSlice'
  | 'boolMap'
  | 'vmodule'
  | 'quantity'
  | 'ip'
  | 'ipPort'
  | 'version';

export type FlagSection = 'kube-proxy' | 'logging' | 'switchyard';

/** A flag of any command. */
export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  readonly kind: FlagKind;
  /** The value's name in --help. */
  readonly arg?: string;
  readonly help: string;
  /** The default as shown in --help. */
  readonly default?: string;
}

/** A flag of `switchyard run`. */
export interface RunFlag extends FlagSpec {
  readonly section: FlagSection;
  /** The setting paths this flag writes (file field names; `command.*` for options not in the file). */
  readonly paths: readonly string[];
  /** Why Switchyard accepts the flag but does nothing with it. */
  readonly ignored?: string;
  readonly deprecated?: string;
  /**
   * True when kube-proxy applies the flag even when --config is given: the
   * non-config flags, --hostname-override and the logging flags. kube-proxy
   * ignores every other flag then; Switchyard applies them and warns.
   */
  readonly keptWithConfig?: boolean;
}

const kp = (f: Omit<RunFlag, 'section'>): RunFlag => ({ section: 'kube-proxy', ...f });
const log = (f: Omit<RunFlag, 'section' | 'keptWithConfig'>): RunFlag => ({ section: 'logging', keptWithConfig: true, ...f });
const sy = (f: Omit<RunFlag, 'section' | 'keptWithConfig'>): RunFlag => ({ section: 'switchyard', keptWithConfig: true, ...f });

const IGNORED_WINDOWS_OR_GONE = 'Switchyard has no use for it';

export const RUN_FLAGS: readonly RunFlag[] = [
  // --- kube-proxy's flags, in the order of its --help ---
  kp({
    name: 'bind-address',
    kind: 'ip',
    paths: ['bindAddress'],
    arg: 'IP',
    default: '0.0.0.0',
    help: "Overrides the proxy's idea of this node's primary IP (the name is historical: nothing binds to it). 0.0.0.0 or :: means: detect it.",
  }),
  kp({
    name: 'bind-address-hard-fail',
    kind: 'bool',
    paths: ['bindAddressHardFail'],
    help: 'Exit when the health or metrics server cannot bind its port, instead of logging and carrying on.',
  }),
  kp({
    name: 'cleanup',
    kind: 'bool',
    paths: ['command.cleanup'],
    keptWithConfig: true,
    help: 'Remove the rules, programs and maps the proxy installed, then exit.',
  }),
  kp({
    name: 'cluster-cidr',
    kind: 'string',
    paths: ['clusterCIDR'],
    arg: 'CIDR[,CIDR]',
    help: "The pods' CIDR range (for dual-stack, a comma-separated pair, one per family). With --detect-local-mode=ClusterCIDR, traffic from it counts as local.",
  }),
  kp({
    name: 'config',
    kind: 'string',
    paths: ['command.configFile'],
    arg: 'FILE',
    keptWithConfig: true,
    help: 'A configuration file: a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1), optionally followed by a SwitchyardConfiguration (switchyard.io/v1alpha1) after ---. Flags given on the command line override its values.',
  }),
  kp({
    name: 'config-sync-period',
    kind: 'duration',
    paths: ['configSyncPeriod'],
    default: '15m0s',
    help: 'How often the Service, EndpointSlice and Node caches re-list from the API server. Must be greater than 0.',
  }),
  kp({
    name: 'conntrack-max-per-core',
    kind: 'int32',
    paths: ['conntrack.maxPerCore'],
    arg: 'N',
    default: '32768',
    help: 'Most NAT connections to track per CPU core (nf_conntrack_max = this x CPUs, at least --conntrack-min); 0 leaves the limit as it is.',
  }),
  kp({
    name: 'conntrack-min',
    kind: 'int32',
    paths: ['conntrack.min'],
    arg: 'N',
    default: '131072',
    help: 'Least conntrack table size to set, whatever --conntrack-max-per-core gives.',
  }),
  kp({
    name: 'conntrack-tcp-be-liberal',
    kind: 'bool',
    paths: ['conntrack.tcpBeLiberal'],
    help: 'Set nf_conntrack_tcp_be_liberal=1, so out-of-window TCP packets are not marked INVALID.',
  }),
  kp({
    name: 'conntrack-tcp-timeout-close-wait',
    kind: 'duration',
    paths: ['conntrack.tcpCloseWaitTimeout'],
    default: '1h0m0s',
    help: 'Conntrack timeout for TCP connections in CLOSE_WAIT; 0 leaves it as it is.',
  }),
  kp({
    name: 'conntrack-tcp-timeout-established',
    kind: 'duration',
    paths: ['conntrack.tcpEstablishedTimeout'],
    default: '24h0m0s',
    help: 'Conntrack timeout for idle established TCP connections; 0 leaves it as it is.',
  }),
  kp({
    name: 'conntrack-udp-timeout',
    kind: 'duration',
    paths: ['conntrack.udpTimeout'],
    default: '0s',
    help: 'Conntrack timeout for UNREPLIED UDP flows; 0 leaves it as it is.',
  }),
  kp({
    name: 'conntrack-udp-timeout-stream',
    kind: 'duration',
    paths: ['conntrack.udpStreamTimeout'],
    default: '0s',
    help: 'Conntrack timeout for ASSURED UDP flows; 0 leaves it as it is.',
  }),
  kp({
    name: 'detect-local-mode',
    kind: 'string',
    paths: ['detectLocalMode'],
    arg: 'MODE',
    default: 'ClusterCIDR',
    help: "How traffic from this node's pods is recognised: ClusterCIDR (source in --cluster-cidr), NodeCIDR (source in the Node's podCIDRs), BridgeInterface (arrives on --pod-bridge-interface) or InterfaceNamePrefix (arrives on an interface named --pod-interface-name-prefix*).",
  }),
  kp({
    name: 'feature-gates',
    kind: 'boolMap',
    paths: ['featureGates'],
    arg: 'NAME=BOOL,...',
    help: 'Kubernetes feature gates, name=true|false pairs.',
    ignored: 'Switchyard has no feature gates',
  }),
  kp({
    name: 'healthz-bind-address',
    kind: 'ipPort',
    paths: ['healthzBindAddress'],
    arg: 'IP[:PORT]',
    default: '0.0.0.0:10256',
    help: 'Where the health server (/healthz, /livez) listens; a bare IP gets port 10256; empty disables it.',
  }),
  kp({
    name: 'healthz-port',
    kind: 'int32',
    paths: ['deprecated.healthzPort'],
    arg: 'PORT',
    default: '10256',
    deprecated: 'use --healthz-bind-address',
    help: "The health server's port; 0 disables it. As in kube-proxy, it only fills in the port of an address given without one.",
  }),
  kp({ name: 'help', short: 'h', kind: 'bool', paths: ['command.help'], keptWithConfig: true, help: 'Print this help and exit.' }),
  kp({
    name: 'hostname-override',
    kind: 'string',
    paths: ['hostnameOverride'],
    arg: 'NAME',
    keptWithConfig: true,
    help: "This node's name, as in its Node object and EndpointSlice nodeName (trimmed, lower-cased); default: the host's name. Overrides the config file, as in kube-proxy.",
  }),
  kp({
    name: 'init-only',
    kind: 'bool',
    paths: ['command.initOnly'],
    keptWithConfig: true,
    help: 'Do the initialisation that needs full root privileges, then exit.',
  }),
  kp({
    name: 'iptables-localhost-nodeports',
    kind: 'bool',
    paths: ['iptables.localhostNodePorts'],
    default: 'true',
    help: "kube-proxy's iptables mode answers NodePorts on 127.0.0.1 (IPv4) unless this is false.",
  }),
  kp({
    name: 'iptables-masquerade-bit',
    kind: 'int32',
    paths: ['iptables.masqueradeBit'],
    arg: 'BIT',
    default: '14',
    help: 'The fwmark bit marking packets to masquerade, 0 to 31.',
  }),
  kp({
    name: 'iptables-min-sync-period',
    kind: 'duration',
    paths: ['iptables.minSyncPeriod', 'nftables.minSyncPeriod'],
    default: '1s',
    help: 'Least time between two syncs (changes within it are coalesced); 0 syncs on every change. Applies in every mode except ipvs.',
  }),
  kp({
    name: 'iptables-sync-period',
    kind: 'duration',
    paths: ['iptables.syncPeriod', 'nftables.syncPeriod'],
    default: '30s',
    help: 'Longest time between two full resyncs; must be greater than 0. Applies in every mode except ipvs.',
  }),
  kp({
    name: 'ipvs-exclude-cidrs',
    kind: 'stringSlice',
    paths: ['ipvs.excludeCIDRs'],
    arg: 'CIDR,...',
    help: 'IPVS virtual services in these CIDRs are never removed by cleanup.',
  }),
  kp({
    name: 'ipvs-min-sync-period',
    kind: 'duration',
    paths: ['ipvs.minSyncPeriod'],
    default: '0s',
    help: 'Least time between two syncs in ipvs mode; 0 syncs on every change.',
  }),
  kp({
    name: 'ipvs-scheduler',
    kind: 'string',
    paths: ['ipvs.scheduler'],
    arg: 'NAME',
    help: `The IPVS scheduler: ${IPVS_SCHEDULERS.join(', ')}; empty means rr.`,
  }),
  kp({
    name: 'ipvs-strict-arp',
    kind: 'bool',
    paths: ['ipvs.strictARP'],
    help: 'Set arp_ignore=1 and arp_announce=2, so the node does not answer ARP for the Service IPs on kube-ipvs0.',
  }),
  kp({
    name: 'ipvs-sync-period',
    kind: 'duration',
    paths: ['ipvs.syncPeriod'],
    default: '30s',
    help: 'Longest time between two full resyncs in ipvs mode; must be greater than 0.',
  }),
  kp({
    name: 'ipvs-tcp-timeout',
    kind: 'duration',
    paths: ['ipvs.tcpTimeout'],
    default: '0s',
    help: "IPVS timeout for idle TCP connections; 0 leaves the kernel's.",
  }),
  kp({
    name: 'ipvs-tcpfin-timeout',
    kind: 'duration',
    paths: ['ipvs.tcpFinTimeout'],
    default: '0s',
    help: "IPVS timeout for TCP connections after a FIN; 0 leaves the kernel's.",
  }),
  kp({ name: 'ipvs-udp-timeout', kind: 'duration', paths: ['ipvs.udpTimeout'], default: '0s', help: "IPVS timeout for UDP; 0 leaves the kernel's." }),
  kp({
    name: 'kube-api-burst',
    kind: 'int32',
    paths: ['clientConnection.burst'],
    arg: 'N',
    default: '10',
    help: 'Burst of requests allowed to the API server.',
  }),
  kp({
    name: 'kube-api-content-type',
    kind: 'string',
    paths: ['clientConnection.contentType'],
    arg: 'TYPE',
    default: 'application/vnd.kubernetes.protobuf',
    help: 'Content type of requests sent to the API server.',
  }),
  kp({ name: 'kube-api-qps', kind: 'float', paths: ['clientConnection.qps'], arg: 'QPS', default: '5', help: 'Queries per second allowed to the API server.' }),
  kp({
    name: 'kubeconfig',
    kind: 'string',
    paths: ['clientConnection.kubeconfig'],
    arg: 'FILE',
    help: "A kubeconfig file with the API server's address and credentials (--master overrides the address). With neither, the in-cluster configuration is used.",
  }),
  kp({
    name: 'masquerade-all',
    kind: 'bool',
    paths: ['iptables.masqueradeAll', 'nftables.masqueradeAll'],
    help: 'Masquerade (SNAT) all traffic sent to Service cluster IPs; some CNI plugins need it.',
  }),
  kp({
    name: 'master',
    kind: 'string',
    paths: ['command.master'],
    arg: 'URL',
    keptWithConfig: true,
    help: "The API server's address; overrides the kubeconfig's.",
  }),
  kp({
    name: 'metrics-bind-address',
    kind: 'ipPort',
    paths: ['metricsBindAddress'],
    arg: 'IP[:PORT]',
    default: '127.0.0.1:10249',
    help: 'Where /metrics is served; a bare IP gets port 10249; 0.0.0.0:10249 or [::]:10249 for every interface; empty disables it.',
  }),
  kp({
    name: 'metrics-port',
    kind: 'int32',
    paths: ['deprecated.metricsPort'],
    arg: 'PORT',
    default: '10249',
    deprecated: 'use --metrics-bind-address',
    help: "The metrics server's port; 0 disables it. As in kube-proxy, it only fills in the port of an address given without one.",
  }),
  kp({
    name: 'nodeport-addresses',
    kind: 'stringSlice',
    paths: ['nodePortAddresses'],
    arg: 'CIDR,...|primary',
    help: "The node IPs NodePorts answer on: CIDRs, or the single word primary (the node's primary IPs, from its Node object). Default: every local IP (with kube-proxy's nftables mode, primary).",
  }),
  kp({ name: 'oom-score-adj', kind: 'int32', paths: ['oomScoreAdj'], arg: 'N', default: '-999', help: "The proxy process's oom_score_adj, -1000 to 1000." }),
  kp({
    name: 'pod-bridge-interface',
    kind: 'string',
    paths: ['detectLocal.bridgeInterface'],
    arg: 'NAME',
    help: 'With --detect-local-mode=BridgeInterface: traffic arriving on this bridge is local.',
  }),
  kp({
    name: 'pod-interface-name-prefix',
    kind: 'string',
    paths: ['detectLocal.interfaceNamePrefix'],
    arg: 'PREFIX',
    help: 'With --detect-local-mode=InterfaceNamePrefix: traffic arriving on interfaces with this prefix is local.',
  }),
  kp({
    name: 'profiling',
    kind: 'bool',
    paths: ['enableProfiling'],
    help: "kube-proxy serves Go's /debug/pprof on the metrics server.",
    ignored: 'there is no Go runtime to profile',
  }),
  kp({
    name: 'proxy-mode',
    kind: 'string',
    paths: ['mode'],
    arg: 'MODE',
    default: 'auto',
    help: "Which dataplane programs Services: bpf (tc eBPF), ipvs, or auto (probe the kernel: bpf where it can run, else ipvs). kube-proxy's iptables and nftables are accepted and mean auto.",
  }),
  kp({
    name: 'proxy-port-range',
    kind: 'string',
    paths: ['portRange'],
    arg: 'BEGIN-END',
    deprecated: 'it has had no effect since the userspace proxier was removed',
    help: 'Host ports the userspace proxier used.',
    ignored: IGNORED_WINDOWS_OR_GONE,
  }),
  kp({
    name: 'show-hidden-metrics-for-version',
    kind: 'string',
    paths: ['showHiddenMetricsForVersion'],
    arg: 'MAJOR.MINOR',
    help: 'The previous minor version (e.g. 1.33) whose deprecated, now hidden, metrics to show again.',
  }),
  kp({
    name: 'version',
    kind: 'version',
    paths: ['command.version'],
    arg: 'true|raw',
    keptWithConfig: true,
    help: 'Print the version and exit; --version=raw prints the build details.',
  }),
  kp({
    name: 'write-config-to',
    kind: 'string',
    paths: ['command.writeConfigTo'],
    arg: 'FILE',
    keptWithConfig: true,
    help: 'Write the effective configuration (defaults, file and flags merged) to this file as a --config file, then exit.',
  }),
  kp({
    name: 'boot-id-file',
    kind: 'string',
    paths: ['ignored.bootIdFile'],
    arg: 'FILES',
    keptWithConfig: true,
    help: "cAdvisor's flag, which the kube-proxy binary carries.",
    ignored: IGNORED_WINDOWS_OR_GONE,
  }),
  kp({
    name: 'machine-id-file',
    kind: 'string',
    paths: ['ignored.machineIdFile'],
    arg: 'FILES',
    keptWithConfig: true,
    help: "cAdvisor's flag, which the kube-proxy binary carries.",
    ignored: IGNORED_WINDOWS_OR_GONE,
  }),

  // --- kube-proxy's logging flags (k8s.io/component-base/logs) ---
  log({
    name: 'v',
    short: 'v',
    kind: 'uint32',
    paths: ['logging.verbosity'],
    arg: 'N',
    default: '0',
    help: "Log verbosity as kube-proxy's: 0 logs errors, warnings and the daemon's milestones; 2 adds each sync and health check opened or closed; 4 and up adds detail.",
  }),
  log({
    name: 'vmodule',
    kind: 'vmodule',
    paths: ['logging.vmodule'],
    arg: 'PATTERN=N,...',
    help: 'Per-file verbosity, for the text format.',
    ignored: "Switchyard's logger has one level per component",
  }),
  log({
    name: 'logging-format',
    kind: 'string',
    paths: ['logging.format'],
    arg: 'FORMAT',
    default: 'text',
    help: 'Log format: text (klog lines, as kube-proxy writes them) or json (one JSON object per line).',
  }),
  log({
    name: 'log-flush-frequency',
    kind: 'duration',
    paths: ['logging.flushFrequency'],
    default: '5s',
    help: 'Longest time between log flushes.',
    ignored: 'Switchyard writes each line unbuffered',
  }),
  log({
    name: 'log-json-info-buffer-size',
    kind: 'quantity',
    paths: ['logging.options.json.infoBufferSize'],
    arg: 'SIZE',
    default: '0',
    help: 'JSON format with split streams: buffer for info messages.',
    ignored: 'Switchyard writes every line to stderr, unbuffered',
  }),
  log({
    name: 'log-json-split-stream',
    kind: 'bool',
    paths: ['logging.options.json.splitStream'],
    help: 'JSON format: errors to stderr, info to stdout.',
    ignored: 'Switchyard writes every line to stderr',
  }),
  log({
    name: 'log-text-info-buffer-size',
    kind: 'quantity',
    paths: ['logging.options.text.infoBufferSize'],
    arg: 'SIZE',
    default: '0',
    help: 'Text format with split streams: buffer for info messages.',
    ignored: 'Switchyard writes every line to stderr, unbuffered',
  }),
  log({
    name: 'log-text-split-stream',
    kind: 'bool',
    paths: ['logging.options.text.splitStream'],
    help: 'Text format: errors to stderr, info to stdout.',
    ignored: 'Switchyard writes every line to stderr',
  }),

  // --- Switchyard's own ---
  sy({
    name: 'manifests',
    kind: 'string',
    paths: ['switchyard.manifests'],
    arg: 'DIR',
    help: 'Read Services, EndpointSlices and Nodes from the *.yaml files in this directory and follow their changes.',
  }),
  sy({
    name: 'bpf-pin-path',
    kind: 'string',
    paths: ['switchyard.bpf.pinPath'],
    arg: 'DIR',
    default: DEFAULT_PIN_PATH,
    help: 'Directory on a bpffs where the maps are pinned (bpffs is mounted there when missing); a restarted daemon adopts them.',
  }),
  sy({
    name: 'bpf-object',
    kind: 'string',
    paths: ['switchyard.bpf.object'],
    arg: 'FILE',
    default: '<install dir>/bpf/build/switchyard.bpf.o',
    help: 'The compiled tc program.',
  }),
  sy({
    name: 'pod-interfaces',
    kind: 'stringSlice',
    paths: ['switchyard.bpf.podInterfaces'],
    arg: 'GLOB,...',
    default: DEFAULT_POD_INTERFACES.join(','),
    help: 'Globs naming the host side of pod interfaces; the program is attached to each as it appears.',
  }),
  sy({
    name: 'bpf-snat-port-range',
    kind: 'string',
    paths: ['switchyard.bpf.snatPortRange'],
    arg: 'MIN-MAX',
    default: DEFAULT_SNAT_PORT_RANGE,
    help: "Source ports of masqueraded connections, inside 1024-65535; must not overlap --service-node-port-range nor the node's net.ipv4.ip_local_port_range.",
  }),
  sy({
    name: 'service-node-port-range',
    kind: 'string',
    paths: ['switchyard.serviceNodePortRange'],
    arg: 'MIN-MAX',
    default: DEFAULT_SERVICE_NODE_PORT_RANGE,
    help: "The cluster's NodePort range (the API server's --service-node-port-range); only checked against --bpf-snat-port-range.",
  }),
  sy({
    name: 'bpf-services-max',
    kind: 'int32',
    paths: ['switchyard.bpf.servicesMax'],
    arg: 'N',
    default: String(DEFAULT_SERVICES_MAX),
    help: 'Capacity of each frontend map (one entry per frontend and scope, plus one per backend slot); frontends that do not fit are reported and not programmed.',
  }),
  sy({
    name: 'bpf-backends-max',
    kind: 'int32',
    paths: ['switchyard.bpf.backendsMax'],
    arg: 'N',
    default: String(DEFAULT_BACKENDS_MAX),
    help: 'Capacity of each backend map (one entry per distinct endpoint address, port and protocol).',
  }),
  sy({
    name: 'bpf-affinity-max',
    kind: 'int32',
    paths: ['switchyard.bpf.affinityMax'],
    arg: 'N',
    default: String(DEFAULT_AFFINITY_MAX),
    help: 'Capacity of each session-affinity map (one entry per client address and frontend of a Service with sessionAffinity: ClientIP); when full, the least recently used client loses its affinity.',
  }),
  sy({
    name: 'bpf-lb-algorithm',
    kind: 'string',
    paths: ['switchyard.bpf.lbAlgorithm'],
    arg: 'random|maglev',
    default: 'random',
    help: "How the bpf dataplane picks a backend for a new connection, for Services without the service.switchyard.dev/lb-algorithm annotation: random (kube-proxy's) or maglev (consistent hashing of the 5-tuple: removing one of N backends moves about 1/N of new flows).",
  }),
  sy({
    name: 'bpf-maglev-table-size',
    kind: 'int32',
    paths: ['switchyard.bpf.maglevTableSize'],
    arg: 'PRIME',
    default: String(DEFAULT_MAGLEV_TABLE_SIZE),
    help: 'Entries of each Maglev lookup table (a prime, at most 131071; about 100 x the backends of the largest Maglev Service). Memory goes only to Services that use Maglev: about 64 bytes per entry and scope.',
  }),
  sy({
    name: 'cgroup2-path',
    kind: 'string',
    paths: ['switchyard.bpf.cgroup2Path'],
    arg: 'DIR',
    default: '<the cgroup2 mount in /proc/mounts>',
    help: "cgroup v2 directory whose processes reach Services through the socket hooks (host-network clients); the cgroup2 root on a node. 'none': not attached.",
  }),
];

export interface ParsedFlags {
  readonly settings: Map<string, Setting>;
  /** Flags given, by name, in order (a repeated flag once). */
  readonly given: readonly RunFlag[];
  readonly problems: ConfigProblem[];
}

/** Parses `switchyard run`'s arguments (without the command name). */
export function parseRunFlags(argv: readonly string[]): ParsedFlags {
  const settings = new Map<string, Setting>();
  const given: RunFlag[] = [];
  const { values, problems } = scanFlags(argv, RUN_FLAGS, 'run');
  for (const { flag, raw, value } of values) {
    if (!given.includes(flag)) given.push(flag);
    for (const path of flag.paths) {
      const before = settings.get(path);
      const v = before?.origin.kind === 'flag' && before.origin.flag === flag.name ? repeat(flag.kind, before.value, value) : value;
      settings.set(path, { value: v, shown: JSON.stringify(raw), origin: { kind: 'flag', flag: flag.name } });
    }
  }
  return { settings, given, problems };
}

/**
 * Parses the arguments of a command other than run: each flag given, by
 * name, with its value (the last one, or all items of a repeated list).
 * Throws a ConfigError listing every problem.
 */
export function parseCommandFlags(argv: readonly string[], flags: readonly FlagSpec[], command: string): Map<string, SettingValue> {
  const { values, problems } = scanFlags(argv, flags, command);
  if (problems.length > 0) throw new ConfigError(problems);
  const out = new Map<string, SettingValue>();
  for (const { flag, value } of values) {
    const before = out.get(flag.name);
    out.set(flag.name, before === undefined ? value : repeat(flag.kind, before, value));
  }
  return out;
}

interface FlagValue<F extends FlagSpec> {
  readonly flag: F;
  readonly raw: string;
  readonly value: SettingValue;
}

/** The one argv parser: pflag's syntax over a table of flags; every problem found, each naming the flag. */
function scanFlags<F extends FlagSpec>(argv: readonly string[], flags: readonly F[], command: string): { values: FlagValue<F>[]; problems: ConfigProblem[] } {
  const byName = new Map(flags.map((f) => [f.name, f]));
  const byShort = new Map(flags.filter((f) => f.short !== undefined).map((f) => [f.short as string, f]));
  const values: FlagValue<F>[] = [];
  const problems: ConfigProblem[] = [];
  const bad = (flag: string, value: string | undefined, msg: string) => problems.push(problem({ kind: 'flag', flag }, value, msg));
  const positional = (arg: string, previous?: string): ConfigProblem => {
    const prevFlag = previous?.startsWith('-') ? byName.get(previous.replace(/^--?/, '').split('=')[0]?.replaceAll('_', '-') ?? '') : undefined;
    const hint = prevFlag?.kind === 'bool' && !previous?.includes('=') ? ` (a boolean flag takes its value after "=": ${previous}=${arg})` : '';
    return { field: arg, message: `${JSON.stringify(arg)}: unexpected argument: switchyard ${command} takes flags only${hint}` };
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      for (const rest of argv.slice(i + 1)) problems.push(positional(rest));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      problems.push(positional(arg, argv[i - 1]));
      continue;
    }
    const long = arg.startsWith('--');
    const body = arg.slice(long ? 2 : 1);
    const eq = body.indexOf('=');
    let name = (eq >= 0 ? body.slice(0, eq) : body).replaceAll('_', '-');
    let inline: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    let flag = long ? byName.get(name) : (byShort.get(name) ?? byName.get(name));
    if (!long && flag === undefined && name.length > 1 && byShort.has(name[0] ?? '') && inline === undefined) {
      // -v4: a short flag with its value attached.
      flag = byShort.get(name[0] ?? '');
      inline = name.slice(1);
      name = flag?.name ?? name;
    }
    if (flag === undefined) {
      const near = nearest(
        name,
        flags.map((f) => f.name),
      );
      bad(name, undefined, `unknown flag${near ? ` (did you mean --${near}?)` : ''}; \`switchyard ${command} --help\` lists them`);
      continue;
    }
    let raw: string;
    if (inline !== undefined) raw = inline;
    else if (flag.kind === 'bool' || flag.kind === 'version') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) {
        bad(flag.name, undefined, `needs a value (${flag.arg ?? flag.kind})`);
        continue;
      }
      if (next.startsWith('--') && next.length > 2) {
        bad(flag.name, undefined, `needs a value (${flag.arg ?? flag.kind}), but the next argument is the flag ${next.split('=')[0]}`);
        continue;
      }
      raw = next;
      i++;
    }
    const converted = fromFlagText(flag.kind, raw);
    if (!converted.ok) {
      bad(flag.name, JSON.stringify(raw), converted.reason);
      continue;
    }
    values.push({ flag, raw, value: converted.value });
  }
  return { values, problems };
}

/** A repeated list or map flag adds to its earlier value, as pflag does; any other flag replaces it. */
function repeat(kind: FlagKind, before: SettingValue, now: SettingValue): SettingValue {
  if ((kind === 'stringSlice' || kind === 'vmodule') && Array.isArray(before) && Array.isArray(now)) return [...before, ...now] as SettingValue;
  if (kind === 'boolMap' && typeof before === 'object' && typeof now === 'object') return { ...before, ...now } as SettingValue;
  return now;
}

type Converted = { readonly ok: true; readonly value: SettingValue } | { readonly ok: false; readonly reason: string };

/** strconv.ParseBool's spellings, which pflag accepts. */
const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

function parseBool(text: string): boolean | undefined {
  return TRUE.has(text) ? true : FALSE.has(text) ? false : undefined;
}

function list(text: string): string[] {
  return text === '' ? [] : text.split(',').map((s) => s.trim());
}

export function fromFlagText(kind: FlagKind, text: string): Converted {
  switch (kind) {
    case 'string':
      return { ok: true, value: text };
    case 'bool': {
      const b = parseBool(text);
      return b === undefined ? { ok: false, reason: 'must be true or false' } : { ok: true, value: b };
    }
    case 'version': {
      if (text === 'raw') return { ok: true, value: 'raw' };
      const b = parseBool(text);
      return b === undefined ? { ok: false, reason: 'must be true, false or raw' } : { ok: true, value: b };
    }
    case 'int32':
      return /^[+-]?\d+$/.test(text) && Number(text) >= -2147483648 && Number(text) <= 2147483647
        ? { ok: true, value: Number(text) }
        : { ok: false, reason: 'must be an integer from -2147483648 to 2147483647' };
    case 'uint32':
      return /^\+?\d+$/.test(text) && Number(text) <= 4294967295
        ? { ok: true, value: Number(text) }
        : { ok: false, reason: 'must be an integer from 0 to 4294967295' };
    case 'float':
      return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) ? { ok: true, value: Number(text) } : { ok: false, reason: 'must be a number' };
    case 'duration': {
      const d = parseGoDuration(text);
      return d.ok ? { ok: true, value: d.ms } : { ok: false, reason: `${DURATION_HELP}; this one ${d.reason}` };
    }
    case 'stringSlice':
      return { ok: true, value: list(text) };
    case 'boolMap': {
      const out: Record<string, boolean> = {};
      for (const item of list(text)) {
        const eq = item.indexOf('=');
        const b = eq > 0 ? parseBool(item.slice(eq + 1).trim()) : undefined;
        if (b === undefined) return { ok: false, reason: `must be name=true|false pairs separated by commas, and ${JSON.stringify(item)} is not one` };
        out[item.slice(0, eq).trim()] = b;
      }
      return { ok: true, value: out };
    }
    case 'vmodule': {
      const items: VModuleItem[] = [];
      for (const item of list(text)) {
        const m = /^([^=]+)=(\d+)$/.exec(item);
        if (!m || m[1] === undefined || m[2] === undefined)
          return { ok: false, reason: `must be pattern=N pairs separated by commas, and ${JSON.stringify(item)} is not one` };
        items.push({ filePattern: m[1], verbosity: Number(m[2]) });
      }
      return { ok: true, value: items };
    }
    case 'quantity':
      return QUANTITY.test(text) ? { ok: true, value: text } : { ok: false, reason: 'must be a quantity such as 0, 512, 1k or 64Ki' };
    case 'ip':
      return ipFamily(text, 'decimal') !== null ? { ok: true, value: text } : { ok: false, reason: 'must be an IP address' };
    case 'ipPort': {
      if (text.trim() === '' || ipFamily(text, 'decimal') !== null) return { ok: true, value: text.trim() };
      const hp = splitHostPort(text);
      if (!hp.ok) return { ok: false, reason: `must be IP or IP:port (${hp.reason})` };
      if (ipFamily(hp.host, 'decimal') === null) return { ok: false, reason: `must be IP or IP:port, and ${JSON.stringify(hp.host)} is not an IP address` };
      if (!/^\d{1,5}$/.test(hp.port) || Number(hp.port) > 65535)
        return { ok: false, reason: `must be IP or IP:port, and ${JSON.stringify(hp.port)} is not a port` };
      return { ok: true, value: text };
    }
  }
}

// ---------------------------------------------------------------------------
// --help

const SECTION_TITLES: Readonly<Record<FlagSection, string>> = {
  'kube-proxy': "kube-proxy's options (same names, syntax and defaults):",
  logging: "kube-proxy's logging options:",
  switchyard: "Switchyard options (not kube-proxy's; in a file, they go in a SwitchyardConfiguration document):",
};

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

function argName(f: FlagSpec): string {
  if (f.kind === 'bool') return '';
  if (f.kind === 'version') return '[=true|raw]';
  const fallback: Record<FlagKind, string> = {
    string: 'STRING',
    bool: '',
    int32: 'N',
    uint32: 'N',
    float: 'NUMBER',
    duration: 'DURATION',
    stringSlice: 'LIST',
    boolMap: 'NAME=BOOL,...',
    vmodule: 'PATTERN=N,...',
    quantity: 'SIZE',
    ip: 'IP',
    ipPort: 'IP[:PORT]',
    version: '',
  };
  return `=${f.arg ?? fallback[f.kind]}`;
}

/** `switchyard run --help`: every flag, by section, with its default and what Switchyard does with it. */
export function formatRunHelp(summary: string): string {
  const out = [
    'Usage: switchyard run [flags]',
    '',
    ...wrap(summary, 100, ''),
    '',
    ...wrap(
      "Switchyard takes kube-proxy's command line and configuration file. With --config, the file is read first and every flag given on the " +
        "command line overrides the value it sets; flags not given leave the file's values alone. (kube-proxy itself applies only " +
        '--hostname-override and the logging flags over its --config file and ignores the rest; Switchyard applies them all and logs a warning for each ' +
        'that kube-proxy would have ignored.) Unknown flags, unknown file fields and bad values are errors that name the option and what it accepts.',
      100,
      '',
    ),
    '',
  ];
  for (const section of ['kube-proxy', 'logging', 'switchyard'] as const) {
    out.push(SECTION_TITLES[section]);
    for (const f of RUN_FLAGS.filter((x) => x.section === section)) {
      let notes = '';
      if (f.deprecated !== undefined) notes += ` [deprecated: ${f.deprecated}]`;
      if (f.ignored !== undefined) notes += ` [accepted for compatibility and ignored: ${f.ignored}]`;
      out.push(...flagEntry(f, notes));
    }
    out.push('');
  }
  out.push(
    'Config file (--config FILE), YAML or JSON:',
    '  apiVersion: kubeproxy.config.k8s.io/v1alpha1',
    '  kind: KubeProxyConfiguration',
    "  mode: ipvs                    # any field of kube-proxy's v1alpha1 format",
    '  ipvs: { scheduler: wrr }',
    "  ---                           # optional: Switchyard's own options",
    '  apiVersion: switchyard.io/v1alpha1',
    '  kind: SwitchyardConfiguration',
    '  manifests: /etc/switchyard/manifests',
    '  bpf:',
    '    pinPath: /sys/fs/bpf/switchyard',
    '    object: /opt/switchyard/switchyard.bpf.o',
    '    podInterfaces: ["veth*", "cali*"]',
  );
  return out.join('\n');
}

/** `switchyard <command> --help` for a command other than run. */
export function formatCommandHelp(command: string, summary: string, flags: readonly FlagSpec[]): string {
  const out = [`Usage: switchyard ${command}${flags.length > 0 ? ' [flags]' : ''}`, '', ...wrap(summary, 100, '')];
  if (flags.length > 0) out.push('', 'Flags:', ...flags.flatMap((f) => flagEntry(f, '')));
  return out.join('\n');
}

/** One flag in --help: its names and argument, then its help, default and notes, wrapped. */
function flagEntry(f: FlagSpec, notes: string): string[] {
  const names = f.short !== undefined ? `-${f.short}, --${f.name}` : `    --${f.name}`;
  const text = `${f.help}${f.default !== undefined ? ` (default ${f.default})` : ''}${notes}`;
  return [`  ${names}${argName(f)}`, ...wrap(text, 100, '          ')];
}
