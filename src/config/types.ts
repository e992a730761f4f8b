// The daemon's configuration once flags and file are merged and defaulted:
// kube-proxy's KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1, the
// field names of the file) plus what kube-proxy resolves from it (the sync
// periods and masquerade setting of the selected mode), plus Switchyard's own
// options. Plain data, no behaviour; every value is filled in.
//
// Durations are milliseconds (Go durations have nanosecond resolution, so a
// value may have a fraction). Addresses and CIDRs are kept as text, validated.

import { fileURLToPath } from 'node:url';

/** Milliseconds. */
export type Millis = number;

/** What `mode` may say: kube-proxy's Linux modes plus Switchyard's. */
export const PROXY_MODES = ['', 'iptables', 'ipvs', 'nftables', 'bpf', 'auto'] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];

/** The dataplane Switchyard runs: `auto` probes the kernel and picks bpf or ipvs. */
export type Dataplane = 'auto' | 'bpf' | 'ipvs';

export const LOCAL_MODES = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'] as const;
export type LocalMode = (typeof LOCAL_MODES)[number];

/** IPVS schedulers the kernel ships and the IPVS dataplane accepts ("" means rr). */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh'] as const;

/** The special `nodePortAddresses` value: only the node's primary IP(s), from its Node object. */
export const NODE_PORT_ADDRESSES_PRIMARY = 'primary';

export const KUBE_PROXY_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const KUBE_PROXY_KIND = 'KubeProxyConfiguration';
export const SWITCHYARD_API_VERSION = 'switchyard.io/v1alpha1';
export const SWITCHYARD_KIND = 'SwitchyardConfiguration';

export const DEFAULT_PIN_PATH = '/sys/fs/bpf/switchyard';
/** The compiled tc program, relative to this file: <repo>/bpf/build/switchyard.bpf.o. */
export const DEFAULT_BPF_OBJECT = fileURLToPath(new URL('../../bpf/build/switchyard.bpf.o', import.meta.url));
export const DEFAULT_POD_INTERFACES: readonly string[] = ['veth*'];
/** Masquerade source ports: above the Linux default ip_local_port_range (32768-60999) and the NodePort range. */
export const DEFAULT_SNAT_PORT_RANGE = '61000-65535';
/** The API server's default --service-node-port-range. */
export const DEFAULT_SERVICE_NODE_PORT_RANGE = '30000-32767';
/** Frontend map capacity: 50k Services x (1 master + 10 slots) with room for NodePorts and a generation flip. */
export const DEFAULT_SERVICES_MAX = 1 << 20;
/** Backend map capacity: 50k Services x 10 endpoints, twice over. */
export const DEFAULT_BACKENDS_MAX = 1 << 20;
/** Session-affinity map capacity per family: clients of Services with sessionAffinity ClientIP (Cilium's default). */
export const DEFAULT_AFFINITY_MAX = 65536;
/** Maglev lookup table entries (a prime, Cilium's default): about 100 x the backends of a large Service. */
export const DEFAULT_MAGLEV_TABLE_SIZE = 16381;
/** The backend choices of the bpf dataplane (--bpf-lb-algorithm, the service.switchyard.dev/lb-algorithm annotation). */
export const LB_ALGORITHMS = ['random', 'maglev'] as const;

export interface ClientConnectionConfig {
  readonly kubeconfig: string;
  readonly acceptContentTypes: string;
  readonly contentType: string;
  readonly qps: number;
  readonly burst: number;
}

export interface VModuleItem {
  readonly filePattern: string;
  readonly verbosity: number;
}

export interface LogStreamOptions {
  readonly splitStream: boolean;
  /** A Kubernetes quantity such as "0", "512", "64Ki". */
  readonly infoBufferSize: string;
}

export interface LoggingConfig {
  readonly format: string;
  readonly flushFrequency: Millis;
  readonly verbosity: number;
  readonly vmodule: readonly VModuleItem[];
  readonly options: { readonly text: LogStreamOptions; readonly json: LogStreamOptions };
}

export interface IPTablesConfig {
  readonly masqueradeAll: boolean;
  readonly masqueradeBit: number;
  readonly localhostNodePorts: boolean;
  readonly snatNodeInternalIP: boolean;
  readonly syncPeriod: Millis;
  readonly minSyncPeriod: Millis;
}

export interface IPVSConfig {
  readonly syncPeriod: Millis;
  readonly minSyncPeriod: Millis;
  /** "" means the default, rr. */
  readonly scheduler: string;
  readonly excludeCIDRs: readonly string[];
  readonly strictARP: boolean;
  readonly tcpTimeout: Millis;
  readonly tcpFinTimeout: Millis;
  readonly udpTimeout: Millis;
}

export interface NFTablesConfig {
  readonly masqueradeAll: boolean;
  readonly masqueradeBit: number;
  readonly syncPeriod: Millis;
  readonly minSyncPeriod: Millis;
}

export interface WinkernelConfig {
  readonly networkName: string;
  readonly sourceVip: string;
  readonly enableDSR: boolean;
  readonly rootHnsEndpointName: string;
  readonly forwardHealthCheckVip: boolean;
}

export interface ConntrackConfig {
  readonly maxPerCore: number;
  readonly min: number;
  readonly tcpEstablishedTimeout: Millis;
  readonly tcpCloseWaitTimeout: Millis;
  readonly tcpBeLiberal: boolean;
  readonly udpTimeout: Millis;
  readonly udpStreamTimeout: Millis;
}

export interface DetectLocalConfig {
  readonly bridgeInterface: string;
  readonly interfaceNamePrefix: string;
}

/** Switchyard's own options: flags, or a `kind: SwitchyardConfiguration` document in the --config file. */
export interface SwitchyardOptions {
  /** Directory of Service/EndpointSlice/Node YAML files to follow instead of (or before) the API server. */
  readonly manifests: string | undefined;
  readonly bpf: {
    readonly pinPath: string;
    readonly object: string;
    /** Globs naming the host side of pod interfaces. */
    readonly podInterfaces: readonly string[];
    /** Masquerade source ports "MIN-MAX" (--bpf-snat-port-range). */
    readonly snatPortRange: string;
    /** max_entries of sy_svc4_v2 and sy_svc6_v2 (masters plus slots). */
    readonly servicesMax: number;
    /** max_entries of sy_backend4_v2 and sy_backend6_v2. */
    readonly backendsMax: number;
    /** max_entries of sy_aff4_v2 and sy_aff6_v2 (LRU: one entry per client and frontend with session affinity). */
    readonly affinityMax: number;
    /** --bpf-lb-algorithm: how Services without the lb-algorithm annotation pick backends. */
    readonly lbAlgorithm: (typeof LB_ALGORITHMS)[number];
    /** --bpf-maglev-table-size: entries per Maglev table, a prime. */
    readonly maglevTableSize: number;
    /** cgroup v2 directory for the host-socket hooks: "" = the cgroup2 mount in /proc/mounts, "none" = not attached. */
    readonly cgroup2Path: string;
  };
  /** The cluster's NodePort range "MIN-MAX" (the API server's --service-node-port-range), which masquerade ports must avoid. */
  readonly serviceNodePortRange: string;
}

/** Options that steer this invocation rather than configure the proxy (never in the file). */
export interface CommandOptions {
  /** --config, "" when none. */
  readonly configFile: string;
  readonly cleanup: boolean;
  readonly initOnly: boolean;
  /** --write-config-to, "" when none: write the effective configuration there and exit. */
  readonly writeConfigTo: string;
  /** --master: overrides the API server address of the kubeconfig. */
  readonly master: string;
  readonly help: boolean;
  readonly version: boolean | 'raw';
}

export interface SwitchyardConfig {
  // --- KubeProxyConfiguration (v1alpha1), defaulted as kube-proxy does ---
  readonly featureGates: Readonly<Record<string, boolean>>;
  readonly clientConnection: ClientConnectionConfig;
  readonly logging: LoggingConfig;
  /** Trimmed and lower-cased as kube-proxy does; "" means the host's name. */
  readonly hostnameOverride: string;
  /** The node's primary IP override; "0.0.0.0" or "::" means: detect it. */
  readonly bindAddress: string;
  /** host:port, or "" when disabled with --healthz-bind-address="" or --healthz-port=0. */
  readonly healthzBindAddress: string;
  /** host:port, or "" when disabled. */
  readonly metricsBindAddress: string;
  readonly bindAddressHardFail: boolean;
  readonly enableProfiling: boolean;
  readonly showHiddenMetricsForVersion: string;
  /** `mode` as written ("" when unset). See `dataplane` for what runs. */
  readonly mode: ProxyMode;
  readonly iptables: IPTablesConfig;
  readonly ipvs: IPVSConfig;
  readonly nftables: NFTablesConfig;
  readonly winkernel: WinkernelConfig;
  readonly detectLocalMode: LocalMode;
  readonly detectLocal: DetectLocalConfig;
  /** As written: one CIDR or a comma-separated dual-stack pair. */
  readonly clusterCIDR: string;
  /** CIDRs, or exactly ["primary"]; [] means every local IP. */
  readonly nodePortAddresses: readonly string[];
  readonly oomScoreAdj: number;
  readonly conntrack: ConntrackConfig;
  readonly configSyncPeriod: Millis;
  /** Unused by kube-proxy since the userspace proxier went; accepted and ignored. */
  readonly portRange: string;
  readonly windowsRunAsService: boolean;

  // --- resolved from the above as kube-proxy's internal configuration does ---
  /** The dataplane to run: mode "" / auto / iptables / nftables -> auto, ipvs -> ipvs, bpf -> bpf. */
  readonly dataplane: Dataplane;
  /** From the section of the mode: ipvs.* for ipvs, nftables.* for nftables, iptables.* otherwise. */
  readonly syncPeriod: Millis;
  readonly minSyncPeriod: Millis;
  /** nftables.masqueradeAll in nftables mode, iptables.masqueradeAll otherwise. */
  readonly masqueradeAll: boolean;
  /** clusterCIDR split at commas. */
  readonly clusterCIDRs: readonly string[];

  readonly switchyard: SwitchyardOptions;
  readonly command: CommandOptions;
}

/** Something accepted but worth telling the operator (logged by the caller). */
export interface ConfigWarning {
  /** The option as the user wrote it: "--ipvs-scheduler" or "ipvs.scheduler". */
  readonly field: string;
  readonly message: string;
}
