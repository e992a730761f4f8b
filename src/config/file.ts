// The --config file: kube-proxy's KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1), optionally followed by a
// SwitchyardConfiguration document (switchyard.io/v1alpha1) after `---`.
//
// Why a second document for our own options: kube-proxy's decoder is strict
// about unknown fields, so adding ours to KubeProxyConfiguration would make the
// file one kube-proxy rejects, and the kind/apiVersion pair would lie about the
// schema. A separate kind keeps the KubeProxyConfiguration document exactly
// kube-proxy's (a ConfigMap can be shared or migrated as is). kube-proxy's
// YAML decoder reads only the first document of a stream, so put the
// KubeProxyConfiguration first when kube-proxy must read the same file.
//
// Decoding follows kube-proxy's: YAML 1.1 (as its yaml.v2-based decoder:
// `yes`/`on` are booleans), JSON accepted, field names case-sensitive, types
// strict (a number is not a string, a duration is a string with units). Where
// kube-proxy falls back to lenient decoding on unknown fields, we report them
// with the nearest known name; fields removed from v1alpha1 in past releases
// (which kube-proxy's lenient path still tolerates) get a warning instead.
// Null means unset. Defaults are applied later, to flags and file together.

import { parseAllDocuments, stringify, LineCounter, isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode } from 'yaml';
import { problem, showValue, type ConfigProblem, type Origin } from './errors.ts';
import { parseGoDuration, formatGoDuration, DURATION_HELP } from '../util/duration.ts';
import type { Setting, SettingValue } from './settings.ts';
import type { ConfigWarning, SwitchyardConfig, VModuleItem } from './types.ts';
import { KUBE_PROXY_API_VERSION, KUBE_PROXY_KIND, SWITCHYARD_API_VERSION, SWITCHYARD_KIND } from './types.ts';

export type LeafKind = 'string' | 'bool' | 'int32' | 'uint32' | 'float' | 'duration' | 'durationOrNanos' | 'stringList' | 'boolMap' | 'vmodule' | 'quantity';
export interface ObjectSchema {
  readonly [field: string]: LeafKind | ObjectSchema;
}

const LOG_STREAM: ObjectSchema = { splitStream: 'bool', infoBufferSize: 'quantity' };

/** KubeProxyConfiguration v1alpha1, field by field (apiVersion and kind apart). */
export const KUBE_PROXY_SCHEMA: ObjectSchema = {
  featureGates: 'boolMap',
  clientConnection: { kubeconfig: 'string', acceptContentTypes: 'string', contentType: 'string', qps: 'float', burst: 'int32' },
  logging: { format: 'string', flushFrequency: 'durationOrNanos', verbosity: 'uint32', vmodule: 'vmodule', options: { text: LOG_STREAM, json: LOG_STREAM } },
  hostnameOverride: 'string',
  bindAddress: 'string',
  healthzBindAddress: 'string',
  metricsBindAddress: 'string',
  bindAddressHardFail: 'bool',
  enableProfiling: 'bool',
  showHiddenMetricsForVersion: 'string',
  mode: 'string',
  iptables: {
    masqueradeBit: 'int32',
    masqueradeAll: 'bool',
    localhostNodePorts: 'bool',
    snatNodeInternalIP: 'bool',
    syncPeriod: 'duration',
    minSyncPeriod: 'duration',
  },
  ipvs: {
    syncPeriod: 'duration',
    minSyncPeriod: 'duration',
    scheduler: 'string',
    excludeCIDRs: 'stringList',
    strictARP: 'bool',
    tcpTimeout: 'duration',
    tcpFinTimeout: 'duration',
    udpTimeout: 'duration',
  },
  nftables: { masqueradeBit: 'int32', masqueradeAll: 'bool', syncPeriod: 'duration', minSyncPeriod: 'duration' },
  winkernel: { networkName: 'string', sourceVip: 'string', enableDSR: 'bool', rootHnsEndpointName: 'string', forwardHealthCheckVip: 'bool' },
  detectLocalMode: 'string',
  detectLocal: { bridgeInterface: 'string', interfaceNamePrefix: 'string' },
  clusterCIDR: 'string',
  nodePortAddresses: 'stringList',
  oomScoreAdj: 'int32',
  conntrack: {
    maxPerCore: 'int32',
    min: 'int32',
    tcpEstablishedTimeout: 'duration',
    tcpCloseWaitTimeout: 'duration',
    tcpBeLiberal: 'bool',
    udpTimeout: 'duration',
    udpStreamTimeout: 'duration',
  },
  configSyncPeriod: 'duration',
  portRange: 'string',
  windowsRunAsService: 'bool',
};

/** Fields v1alpha1 once had; kube-proxy's lenient decoding still reads files that carry them. */
const REMOVED_FIELDS: Readonly<Record<string, string>> = {
  resourceContainer: 'removed from kube-proxy in Kubernetes 1.16',
  udpIdleTimeout: 'applied only to the userspace proxier, removed in Kubernetes 1.26',
  'conntrack.max': 'removed in Kubernetes 1.19; use conntrack.maxPerCore and conntrack.min',
};

/** SwitchyardConfiguration switchyard.io/v1alpha1: Switchyard's own options. */
export const SWITCHYARD_SCHEMA: ObjectSchema = {
  manifests: 'string',
  bpf: {
    pinPath: 'string',
    object: 'string',
    podInterfaces: 'stringList',
    snatPortRange: 'string',
    servicesMax: 'uint32',
    backendsMax: 'uint32',
    affinityMax: 'uint32',
    lbAlgorithm: 'string',
    maglevTableSize: 'uint32',
    cgroup2Path: 'string',
  },
  serviceNodePortRange: 'string',
};

export interface ParsedFile {
  readonly settings: Map<string, Setting>;
  readonly problems: ConfigProblem[];
  readonly warnings: ConfigWarning[];
}

interface Ctx {
  readonly file: string;
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly out: ParsedFile;
  /** Prefix of setting paths ("" or "switchyard."). */
  readonly pathPrefix: string;
  readonly kind: string;
}

/** Parses the text of a --config file into settings; `file` names it in messages. */
export function parseConfigFile(text: string, file: string): ParsedFile {
  const out: ParsedFile = { settings: new Map(), problems: [], warnings: [] };
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { version: '1.1', uniqueKeys: true, prettyErrors: true, lineCounter: lines });
  const docs = Array.isArray(parsed) ? parsed : [];
  const seen = new Set<string>();
  let any = false;
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const line = e.linePos?.[0].line;
        const msg = e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? e.message;
        out.problems.push({
          field: 'file',
          file,
          ...(line === undefined ? {} : { line }),
          message: `${line === undefined ? file : `${file}:${line}`}: not valid YAML: ${msg}`,
        });
      }
      continue;
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) continue; // an empty document, e.g. after a trailing ---
    any = true;
    const line = lineOf(lines, contents);
    if (!isMap(contents)) {
      out.problems.push(
        problem(
          { kind: 'file', file, line, field: `document ${i + 1}` },
          undefined,
          `must be a mapping with apiVersion and kind (${KUBE_PROXY_KIND} or ${SWITCHYARD_KIND})`,
        ),
      );
      continue;
    }
    const at = (field: string): Origin => ({ kind: 'file', file, line: keyLine(doc, lines, contents, field) ?? line, field });
    const kinds = `${KUBE_PROXY_KIND} (apiVersion ${KUBE_PROXY_API_VERSION}) or ${SWITCHYARD_KIND} (apiVersion ${SWITCHYARD_API_VERSION})`;
    const apiVersion = scalarField(doc, contents, 'apiVersion');
    const rawKind = scalarField(doc, contents, 'kind');
    if (rawKind === undefined) {
      out.problems.push(problem(at('kind'), undefined, `missing: must be ${kinds}`));
      continue;
    }
    if (rawKind !== KUBE_PROXY_KIND && rawKind !== SWITCHYARD_KIND) {
      out.problems.push(problem(at('kind'), showValue(rawKind), `must be ${kinds}`));
      continue;
    }
    const kind: string = rawKind;
    const expected = kind === KUBE_PROXY_KIND ? KUBE_PROXY_API_VERSION : SWITCHYARD_API_VERSION;
    if (apiVersion !== expected) {
      const why = apiVersion === undefined ? 'missing' : showValue(apiVersion);
      out.problems.push(problem(at('apiVersion'), undefined, `${why}: must be ${expected} for kind ${kind} (the only version Switchyard reads)`));
      continue;
    }
    if (seen.has(kind)) {
      out.problems.push(problem(at('kind'), showValue(kind), `a second ${kind} document; the file may hold one of each kind`));
      continue;
    }
    seen.add(kind);
    const schema = kind === KUBE_PROXY_KIND ? KUBE_PROXY_SCHEMA : SWITCHYARD_SCHEMA;
    const ctx: Ctx = { file, doc, lines, out, pathPrefix: kind === SWITCHYARD_KIND ? 'switchyard.' : '', kind };
    walkObject(ctx, contents, schema, '', new Set(['apiVersion', 'kind']));
  }
  if (!any && out.problems.length === 0) {
    out.problems.push({ field: 'file', file, message: `${file}: is empty: must hold a ${KUBE_PROXY_KIND} (apiVersion ${KUBE_PROXY_API_VERSION})` });
  }
  return out;
}

function lineOf(lines: LineCounter, node: { range?: readonly number[] | null } | null | undefined): number | undefined {
  const offset = node?.range?.[0];
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

function keyLine(doc: Document, lines: LineCounter, map: YamlNode, key: string): number | undefined {
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => keyName(doc, p.key) === key);
  return pair ? lineOf(lines, pair.key as { range?: readonly number[] | null } | null) : undefined;
}

function resolve(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function scalarField(doc: Document, map: YamlNode, key: string): unknown {
  if (!isMap(map)) return undefined;
  const v = resolve(doc, map.get(key, true));
  return isScalar(v) ? (v.value ?? undefined) : v === undefined ? undefined : v;
}

function keyName(doc: Document, key: unknown): string {
  const k = resolve(doc, key);
  return isScalar(k) ? String(k.value) : String(k);
}

function walkObject(ctx: Ctx, map: YamlNode, schema: ObjectSchema, prefix: string, skip: ReadonlySet<string>): void {
  if (!isMap(map)) return;
  for (const pair of map.items) {
    const name = keyName(ctx.doc, pair.key);
    if (prefix === '' && skip.has(name)) continue;
    const path = prefix + name;
    const line = lineOf(ctx.lines, pair.key as { range?: readonly number[] | null } | null);
    const origin: Origin = { kind: 'file', file: ctx.file, line, field: path };
    // Own properties only: a field named "constructor" is unknown, not Object's.
    const spec = Object.hasOwn(schema, name) ? schema[name] : undefined;
    if (spec === undefined) {
      const removed = ctx.pathPrefix === '' && Object.hasOwn(REMOVED_FIELDS, path) ? REMOVED_FIELDS[path] : undefined;
      if (removed !== undefined) {
        ctx.out.warnings.push({ field: path, message: `${ctx.file}:${line}: ${path}: ignored: ${removed}` });
        continue;
      }
      ctx.out.problems.push(problem(origin, undefined, unknownFieldMessage(name, schema, prefix, ctx.kind)));
      continue;
    }
    const value = resolve(ctx.doc, pair.value);
    if (value === null || value === undefined || (isScalar(value) && value.value === null)) continue; // null: unset
    if (typeof spec === 'object') {
      if (!isMap(value)) {
        ctx.out.problems.push(problem(origin, showValue(plain(ctx.doc, value)), `must be a mapping with the fields ${Object.keys(spec).join(', ')}`));
        continue;
      }
      walkObject(ctx, value, spec, `${path}.`, skip);
      continue;
    }
    const raw = plain(ctx.doc, value);
    const converted = fromYaml(spec, raw);
    if (!converted.ok) {
      ctx.out.problems.push(problem(origin, showValue(raw), converted.reason));
      continue;
    }
    ctx.out.settings.set(ctx.pathPrefix + path, { value: converted.value, shown: showValue(raw), origin });
  }
}

/** A node as plain data. */
function plain(doc: Document, node: unknown): unknown {
  const n = resolve(doc, node);
  if (isScalar(n)) return n.value;
  if (isMap(n) || isSeq(n)) return n.toJS(doc);
  return n;
}

function unknownFieldMessage(name: string, schema: ObjectSchema, prefix: string, kind: string): string {
  const known = Object.keys(schema);
  const near = nearest(name, known);
  if (near !== undefined) return `unknown field (did you mean "${near}"?)`;
  const owner = prefix === '' ? kind : prefix.slice(0, -1);
  return `unknown field; ${owner} has ${known.join(', ')}`;
}

/** The known name closest to a misspelt one: same letters in another case, or within a small edit distance. */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameCase = known.find((k) => k.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d <= bestDistance) {
      best = k;
      bestDistance = d - 1;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

type Converted = { readonly ok: true; readonly value: SettingValue } | { readonly ok: false; readonly reason: string };

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
export const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[kMGTPE]|[KMGTPE]i|m)?$/;

/** Converts a value read from YAML/JSON to the kind the field has, as Go's strict JSON decoding would. */
export function fromYaml(kind: LeafKind, raw: unknown): Converted {
  switch (kind) {
    case 'string':
      return typeof raw === 'string'
        ? { ok: true, value: raw }
        : { ok: false, reason: `must be a string${typeof raw === 'number' || typeof raw === 'boolean' ? ` (quote it: "${String(raw)}")` : ''}` };
    case 'bool':
      return typeof raw === 'boolean' ? { ok: true, value: raw } : { ok: false, reason: 'must be true or false' };
    case 'int32':
      return Number.isInteger(raw) && (raw as number) >= INT32_MIN && (raw as number) <= INT32_MAX
        ? { ok: true, value: raw as number }
        : { ok: false, reason: `must be an integer from ${INT32_MIN} to ${INT32_MAX}` };
    case 'uint32':
      return Number.isInteger(raw) && (raw as number) >= 0 && (raw as number) <= 4294967295
        ? { ok: true, value: raw as number }
        : { ok: false, reason: 'must be an integer from 0 to 4294967295' };
    case 'float':
      return typeof raw === 'number' && Number.isFinite(raw) ? { ok: true, value: raw } : { ok: false, reason: 'must be a number' };
    case 'duration':
    case 'durationOrNanos': {
      if (kind === 'durationOrNanos' && Number.isInteger(raw)) return { ok: true, value: (raw as number) / 1e6 };
      if (typeof raw !== 'string') {
        const bare = typeof raw === 'number' ? `; a bare number has no unit: write "${raw}s" for ${raw} seconds` : '';
        return { ok: false, reason: `${DURATION_HELP}${bare}` };
      }
      const d = parseGoDuration(raw);
      return d.ok ? { ok: true, value: d.ms } : { ok: false, reason: `${DURATION_HELP}; this one ${d.reason}` };
    }
    case 'stringList':
      return Array.isArray(raw) && raw.every((x) => typeof x === 'string')
        ? { ok: true, value: raw as string[] }
        : { ok: false, reason: 'must be a list of strings' };
    case 'boolMap': {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'must be a mapping of names to true or false' };
      const entries = Object.entries(raw as Record<string, unknown>);
      const bad = entries.find(([, v]) => typeof v !== 'boolean');
      if (bad) return { ok: false, reason: `must map names to true or false, and ${bad[0]} is ${showValue(bad[1])}` };
      return { ok: true, value: Object.fromEntries(entries) as Record<string, boolean> };
    }
    case 'vmodule':
      return vmoduleFromYaml(raw);
    case 'quantity': {
      const text = typeof raw === 'number' ? String(raw) : raw;
      return typeof text === 'string' && QUANTITY.test(text)
        ? { ok: true, value: text }
        : { ok: false, reason: 'must be a quantity such as 0, 512, 1k or 64Ki' };
    }
  }
}

function vmoduleFromYaml(raw: unknown): Converted {
  const shape = 'must be a list of {filePattern: string, verbosity: integer}';
  if (!Array.isArray(raw)) return { ok: false, reason: shape };
  const items: VModuleItem[] = [];
  for (const [i, item] of raw.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return { ok: false, reason: `${shape}; item ${i} is not a mapping` };
    const extra = Object.keys(item).find((k) => k !== 'filePattern' && k !== 'verbosity');
    if (extra !== undefined) return { ok: false, reason: `${shape}; item ${i} has an unknown field "${extra}"` };
    const { filePattern, verbosity } = item as { filePattern?: unknown; verbosity?: unknown };
    if (typeof filePattern !== 'string') return { ok: false, reason: `${shape}; item ${i} has no string filePattern` };
    if (verbosity !== undefined && (!Number.isInteger(verbosity) || (verbosity as number) < 0))
      return { ok: false, reason: `${shape}; item ${i} has a bad verbosity` };
    items.push({ filePattern, verbosity: (verbosity as number | undefined) ?? 0 });
  }
  return { ok: true, value: items };
}

// ---------------------------------------------------------------------------
// Writing a file (--write-config-to): the effective configuration in the same
// two-document form, every field spelled out, durations in Go's notation.

/** The configuration as a --config file: a KubeProxyConfiguration, then a SwitchyardConfiguration. */
export function formatConfigFile(c: SwitchyardConfig): string {
  const d = formatGoDuration;
  const kubeProxy = {
    apiVersion: KUBE_PROXY_API_VERSION,
    kind: KUBE_PROXY_KIND,
    bindAddress: c.bindAddress,
    bindAddressHardFail: c.bindAddressHardFail,
    clientConnection: { ...c.clientConnection },
    clusterCIDR: c.clusterCIDR,
    configSyncPeriod: d(c.configSyncPeriod),
    conntrack: {
      maxPerCore: c.conntrack.maxPerCore,
      min: c.conntrack.min,
      tcpBeLiberal: c.conntrack.tcpBeLiberal,
      tcpCloseWaitTimeout: d(c.conntrack.tcpCloseWaitTimeout),
      tcpEstablishedTimeout: d(c.conntrack.tcpEstablishedTimeout),
      udpStreamTimeout: d(c.conntrack.udpStreamTimeout),
      udpTimeout: d(c.conntrack.udpTimeout),
    },
    detectLocal: { ...c.detectLocal },
    detectLocalMode: c.detectLocalMode,
    enableProfiling: c.enableProfiling,
    featureGates: { ...c.featureGates },
    healthzBindAddress: c.healthzBindAddress,
    hostnameOverride: c.hostnameOverride,
    iptables: {
      localhostNodePorts: c.iptables.localhostNodePorts,
      masqueradeAll: c.iptables.masqueradeAll,
      masqueradeBit: c.iptables.masqueradeBit,
      minSyncPeriod: d(c.iptables.minSyncPeriod),
      snatNodeInternalIP: c.iptables.snatNodeInternalIP,
      syncPeriod: d(c.iptables.syncPeriod),
    },
    ipvs: {
      excludeCIDRs: [...c.ipvs.excludeCIDRs],
      minSyncPeriod: d(c.ipvs.minSyncPeriod),
      scheduler: c.ipvs.scheduler,
      strictARP: c.ipvs.strictARP,
      syncPeriod: d(c.ipvs.syncPeriod),
      tcpFinTimeout: d(c.ipvs.tcpFinTimeout),
      tcpTimeout: d(c.ipvs.tcpTimeout),
      udpTimeout: d(c.ipvs.udpTimeout),
    },
    logging: {
      flushFrequency: d(c.logging.flushFrequency),
      format: c.logging.format,
      options: { json: { ...c.logging.options.json }, text: { ...c.logging.options.text } },
      verbosity: c.logging.verbosity,
      vmodule: c.logging.vmodule.map((v) => ({ ...v })),
    },
    metricsBindAddress: c.metricsBindAddress,
    mode: c.mode,
    nftables: {
      masqueradeAll: c.nftables.masqueradeAll,
      masqueradeBit: c.nftables.masqueradeBit,
      minSyncPeriod: d(c.nftables.minSyncPeriod),
      syncPeriod: d(c.nftables.syncPeriod),
    },
    nodePortAddresses: [...c.nodePortAddresses],
    oomScoreAdj: c.oomScoreAdj,
    portRange: c.portRange,
    showHiddenMetricsForVersion: c.showHiddenMetricsForVersion,
    windowsRunAsService: c.windowsRunAsService,
    winkernel: { ...c.winkernel },
  };
  const switchyard = {
    apiVersion: SWITCHYARD_API_VERSION,
    kind: SWITCHYARD_KIND,
    ...(c.switchyard.manifests === undefined ? {} : { manifests: c.switchyard.manifests }),
    bpf: {
      object: c.switchyard.bpf.object,
      pinPath: c.switchyard.bpf.pinPath,
      podInterfaces: [...c.switchyard.bpf.podInterfaces],
      snatPortRange: c.switchyard.bpf.snatPortRange,
      servicesMax: c.switchyard.bpf.servicesMax,
      backendsMax: c.switchyard.bpf.backendsMax,
      affinityMax: c.switchyard.bpf.affinityMax,
      lbAlgorithm: c.switchyard.bpf.lbAlgorithm,
      maglevTableSize: c.switchyard.bpf.maglevTableSize,
      cgroup2Path: c.switchyard.bpf.cgroup2Path,
    },
    serviceNodePortRange: c.switchyard.serviceNodePortRange,
  };
  // YAML 1.1 output, so strings such as "yes" or "y" come out quoted and read back as strings.
  return `${stringify(kubeProxy, { version: '1.1' })}---\n${stringify(switchyard, { version: '1.1' })}`;
}
