// Settings (flags over file) -> a fully defaulted SwitchyardConfig, with
// kube-proxy's defaulting rules:
//  - v1alpha1 defaulting (pkg/proxy/apis/config/v1alpha1/defaults.go) treats a
//    zero value as unset: `iptables.minSyncPeriod: 0s` in a file becomes 1s.
//    kube-proxy defaults before it applies flags, so a flag's zero is kept:
//    `--iptables-min-sync-period=0` means 0. Same here.
//  - Pointer fields (masqueradeBit, localhostNodePorts, oomScoreAdj,
//    conntrack.maxPerCore/min/tcp*Timeout) default only when absent.
//  - The internal configuration's syncPeriod/minSyncPeriod/masqueradeAll come
//    from the section of the mode (v1alpha1 conversion), and Linux platform
//    defaults follow: detectLocalMode ClusterCIDR, nodePortAddresses [primary]
//    in nftables mode.
//  - healthz/metrics addresses get their default port when given as a bare IP;
//    an empty address from a flag disables the server (from a file, empty
//    means the default, as in kube-proxy).
// Pure: no I/O. Values are not validated here (validate.ts does that).

import { appendPortIfNeeded, ipFamily } from '../util/ip.ts';
import { SettingsReader, type Settings } from './settings.ts';
import {
  DEFAULT_BPF_OBJECT,
  DEFAULT_PIN_PATH,
  DEFAULT_POD_INTERFACES,
  DEFAULT_AFFINITY_MAX,
  DEFAULT_MAGLEV_TABLE_SIZE,
  DEFAULT_BACKENDS_MAX,
  DEFAULT_SERVICE_NODE_PORT_RANGE,
  DEFAULT_SERVICES_MAX,
  DEFAULT_SNAT_PORT_RANGE,
  LOCAL_MODES,
  PROXY_MODES,
  type Dataplane,
  type LocalMode,
  type LogStreamOptions,
  type ProxyMode,
  type SwitchyardConfig,
} from './types.ts';

const HEALTHZ_PORT = 10256;
const METRICS_PORT = 10249;
const SECOND = 1000;

export function buildConfig(settings: Settings): SwitchyardConfig {
  const s = new SettingsReader(settings);
  /** A value defaulted when unset or when the file gave its zero value. */
  const num = (path: string, def: number): number => {
    const v = s.number(path);
    return v === undefined || (v === 0 && !s.fromFlag(path)) ? def : v;
  };
  const str = (path: string, def: string): string => {
    const v = s.string(path);
    return v === undefined || (v === '' && !s.fromFlag(path)) ? def : v;
  };
  const bool = (path: string, def = false): boolean => s.bool(path) ?? def;
  /** A pointer field: defaulted only when absent. */
  const ptr = (path: string, def: number): number => s.number(path) ?? def;

  const mode = modeOf(s.string('mode'));
  const bindAddress = str('bindAddress', '0.0.0.0');
  const v6 = ipFamily(bindAddress, 'decimal') === 'IPv6';

  const iptables = {
    masqueradeAll: bool('iptables.masqueradeAll'),
    masqueradeBit: ptr('iptables.masqueradeBit', 14),
    localhostNodePorts: bool('iptables.localhostNodePorts', true),
    snatNodeInternalIP: bool('iptables.snatNodeInternalIP'),
    syncPeriod: num('iptables.syncPeriod', 30 * SECOND),
    minSyncPeriod: num('iptables.minSyncPeriod', 1 * SECOND),
  };
  const ipvs = {
    syncPeriod: num('ipvs.syncPeriod', 30 * SECOND),
    minSyncPeriod: s.number('ipvs.minSyncPeriod') ?? 0,
    scheduler: s.string('ipvs.scheduler') ?? '',
    excludeCIDRs: s.strings('ipvs.excludeCIDRs') ?? [],
    strictARP: bool('ipvs.strictARP'),
    tcpTimeout: s.number('ipvs.tcpTimeout') ?? 0,
    tcpFinTimeout: s.number('ipvs.tcpFinTimeout') ?? 0,
    udpTimeout: s.number('ipvs.udpTimeout') ?? 0,
  };
  const nftables = {
    masqueradeAll: bool('nftables.masqueradeAll'),
    masqueradeBit: ptr('nftables.masqueradeBit', 14),
    syncPeriod: num('nftables.syncPeriod', 30 * SECOND),
    minSyncPeriod: num('nftables.minSyncPeriod', 1 * SECOND),
  };
  const section = mode === 'ipvs' ? ipvs : mode === 'nftables' ? nftables : iptables;
  const clusterCIDR = s.string('clusterCIDR') ?? '';
  const nodePortAddresses = s.strings('nodePortAddresses') ?? [];
  const hostname = (s.string('hostnameOverride') ?? '').trim().toLowerCase();

  return {
    featureGates: { ...(s.boolMap('featureGates') ?? {}) },
    clientConnection: {
      kubeconfig: s.string('clientConnection.kubeconfig') ?? '',
      acceptContentTypes: s.string('clientConnection.acceptContentTypes') ?? '',
      contentType: str('clientConnection.contentType', 'application/vnd.kubernetes.protobuf'),
      qps: num('clientConnection.qps', 5),
      burst: num('clientConnection.burst', 10),
    },
    logging: {
      format: str('logging.format', 'text'),
      flushFrequency: num('logging.flushFrequency', 5 * SECOND),
      verbosity: s.number('logging.verbosity') ?? 0,
      vmodule: s.vmodule('logging.vmodule') ?? [],
      options: { text: logStream(s, 'text'), json: logStream(s, 'json') },
    },
    hostnameOverride: hostname,
    bindAddress,
    healthzBindAddress: serverAddress(s, 'healthzBindAddress', 'deprecated.healthzPort', v6 ? '[::]' : '0.0.0.0', HEALTHZ_PORT),
    metricsBindAddress: serverAddress(s, 'metricsBindAddress', 'deprecated.metricsPort', v6 ? '[::1]' : '127.0.0.1', METRICS_PORT),
    bindAddressHardFail: bool('bindAddressHardFail'),
    enableProfiling: bool('enableProfiling'),
    showHiddenMetricsForVersion: s.string('showHiddenMetricsForVersion') ?? '',
    mode,
    iptables,
    ipvs,
    nftables,
    winkernel: {
      networkName: s.string('winkernel.networkName') ?? '',
      sourceVip: s.string('winkernel.sourceVip') ?? '',
      enableDSR: bool('winkernel.enableDSR'),
      rootHnsEndpointName: s.string('winkernel.rootHnsEndpointName') ?? '',
      forwardHealthCheckVip: bool('winkernel.forwardHealthCheckVip'),
    },
    detectLocalMode: localModeOf(s.string('detectLocalMode')),
    detectLocal: {
      bridgeInterface: s.string('detectLocal.bridgeInterface') ?? '',
      interfaceNamePrefix: s.string('detectLocal.interfaceNamePrefix') ?? '',
    },
    clusterCIDR,
    nodePortAddresses: nodePortAddresses.length === 0 && mode === 'nftables' ? ['primary'] : nodePortAddresses,
    oomScoreAdj: ptr('oomScoreAdj', -999),
    conntrack: {
      maxPerCore: ptr('conntrack.maxPerCore', 32 * 1024),
      min: ptr('conntrack.min', 128 * 1024),
      tcpEstablishedTimeout: ptr('conntrack.tcpEstablishedTimeout', 24 * 3600 * SECOND),
      tcpCloseWaitTimeout: ptr('conntrack.tcpCloseWaitTimeout', 3600 * SECOND),
      tcpBeLiberal: bool('conntrack.tcpBeLiberal'),
      udpTimeout: s.number('conntrack.udpTimeout') ?? 0,
      udpStreamTimeout: s.number('conntrack.udpStreamTimeout') ?? 0,
    },
    configSyncPeriod: num('configSyncPeriod', 15 * 60 * SECOND),
    portRange: s.string('portRange') ?? '',
    windowsRunAsService: bool('windowsRunAsService'),

    dataplane: dataplaneOf(mode),
    syncPeriod: section.syncPeriod,
    minSyncPeriod: section.minSyncPeriod,
    masqueradeAll: mode === 'nftables' ? nftables.masqueradeAll : iptables.masqueradeAll,
    clusterCIDRs: clusterCIDR === '' ? [] : clusterCIDR.split(','),

    switchyard: {
      manifests: s.string('switchyard.manifests'),
      bpf: {
        pinPath: s.string('switchyard.bpf.pinPath') ?? DEFAULT_PIN_PATH,
        object: s.string('switchyard.bpf.object') ?? DEFAULT_BPF_OBJECT,
        podInterfaces: s.strings('switchyard.bpf.podInterfaces') ?? DEFAULT_POD_INTERFACES,
        snatPortRange: s.string('switchyard.bpf.snatPortRange') ?? DEFAULT_SNAT_PORT_RANGE,
        servicesMax: s.number('switchyard.bpf.servicesMax') ?? DEFAULT_SERVICES_MAX,
        backendsMax: s.number('switchyard.bpf.backendsMax') ?? DEFAULT_BACKENDS_MAX,
        affinityMax: s.number('switchyard.bpf.affinityMax') ?? DEFAULT_AFFINITY_MAX,
        lbAlgorithm: (s.string('switchyard.bpf.lbAlgorithm') ?? 'random') as SwitchyardConfig['switchyard']['bpf']['lbAlgorithm'],
        maglevTableSize: s.number('switchyard.bpf.maglevTableSize') ?? DEFAULT_MAGLEV_TABLE_SIZE,
        cgroup2Path: s.string('switchyard.bpf.cgroup2Path') ?? '',
      },
      serviceNodePortRange: s.string('switchyard.serviceNodePortRange') ?? DEFAULT_SERVICE_NODE_PORT_RANGE,
    },
    command: {
      configFile: s.string('command.configFile') ?? '',
      cleanup: bool('command.cleanup'),
      initOnly: bool('command.initOnly'),
      writeConfigTo: s.string('command.writeConfigTo') ?? '',
      master: s.string('command.master') ?? '',
      help: bool('command.help'),
      version: s.settings.get('command.version')?.value === 'raw' ? 'raw' : bool('command.version'),
    },
  };
}

/** The mode as written; an unknown one reads as "" here and is reported by validation. */
function modeOf(v: string | undefined): ProxyMode {
  return (PROXY_MODES as readonly string[]).includes(v ?? '') ? ((v ?? '') as ProxyMode) : '';
}

/** kube-proxy's Linux platform default: ClusterCIDR; an unknown one is reported by validation. */
function localModeOf(v: string | undefined): LocalMode {
  return v !== undefined && (LOCAL_MODES as readonly string[]).includes(v) ? (v as LocalMode) : 'ClusterCIDR';
}

/** kube-proxy's iptables and nftables modes have no Switchyard dataplane of their own: Switchyard picks, as for auto. */
export function dataplaneOf(mode: ProxyMode): Dataplane {
  return mode === 'bpf' || mode === 'ipvs' ? mode : 'auto';
}

function logStream(s: SettingsReader, format: 'text' | 'json'): LogStreamOptions {
  return {
    splitStream: s.bool(`logging.options.${format}.splitStream`) ?? false,
    infoBufferSize: s.string(`logging.options.${format}.infoBufferSize`) ?? '0',
  };
}

/**
 * healthzBindAddress / metricsBindAddress. From the file, "" means the
 * default; from a flag, "" disables the server. A bare IP gets the default
 * port. The deprecated --healthz-port / --metrics-port: 0 disables the server;
 * another port fills in only an address that has none (kube-proxy's
 * AppendPortIfNeeded), which after defaulting means almost never.
 */
function serverAddress(s: SettingsReader, path: string, portPath: string, defaultHost: string, defaultPort: number): string {
  const v = s.string(path);
  let addr: string;
  if (v === undefined || (v === '' && !s.fromFlag(path))) addr = `${defaultHost}:${defaultPort}`;
  else if (v === '') return '';
  else addr = v;
  const port = s.number(portPath);
  if (port === 0) return '';
  return appendPortIfNeeded(addr, port ?? defaultPort);
}
