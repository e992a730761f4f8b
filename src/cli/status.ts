// `switchyard status [--json] [--bpf-pin-path DIR]`: what is programmed
// now, read back from the kernel (dataplane/bpf/status.ts: the pinned maps
// and our tc filters in this network namespace), printed as tables (like
// `ipvsadm -Ln`) or as the JSON document of dataplane/status.ts. Works
// whether or not a daemon runs (the maps stay pinned), and never takes the
// pin directory's lock. Exit codes: 0 printed; 3 nothing pinned there;
// 4 only layout 1 maps there (an older daemon's, which `switchyard run`
// migrates on start); 1 the kernel refused (not root, not a bpffs);
// 2 bad flags.

import { DEFAULT_PIN_PATH, type FlagSpec, parseCommandFlags } from '../config/index.ts';
import { readPinnedStatus } from '../dataplane/bpf/status.ts';
import type { DataplaneStatus, FrontendStatus, ScopeStatus, TrafficCount } from '../dataplane/status.ts';
import { ipAddresses, listLinks } from '../host/links.ts';
import type { NativeBinding } from '../native/binding.ts';

export const STATUS_FLAGS: readonly FlagSpec[] = [
  { name: 'bpf-pin-path', kind: 'string', arg: 'DIR', default: DEFAULT_PIN_PATH, help: 'The pin directory `run` uses.' },
  { name: 'json', kind: 'bool', help: 'Print the JSON document described in the README (schema switchyard.status/v1) instead of tables.' },
];

/** Exit codes of `switchyard status` besides 0 (printed), 1 (error) and 2 (bad flags). */
export const STATUS_EXIT = { nothingPinned: 3, layout1Only: 4 } as const;

export interface StatusIO {
  readonly native: NativeBinding;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export async function status(argv: readonly string[], io: StatusIO): Promise<number> {
  const flags = parseCommandFlags(argv, STATUS_FLAGS, 'status');
  const pinPath = String(flags.get('bpf-pin-path') ?? DEFAULT_PIN_PATH);
  const json = flags.get('json') === true;
  const hostAddrs = [...ipAddresses().values()].flatMap((a) => [...a.v4, ...a.v6]);
  const read = await readPinnedStatus({ native: io.native, pinPath, links: listLinks(), nodeAddresses: hostAddrs });
  if (read.kind === 'nothing') {
    io.err(`switchyard status: nothing is pinned under ${pinPath}: no daemon has run here with --bpf-pin-path ${pinPath} (or cleanup removed it)\n`);
    return STATUS_EXIT.nothingPinned;
  }
  if (read.kind === 'layout1') {
    io.err(
      `switchyard status: ${pinPath} holds layout 1 maps only (${read.maps.join(', ')}), from an older Switchyard; this one reads layout 2, which \`switchyard run\` migrates them to when it starts\n`,
    );
    return STATUS_EXIT.layout1Only;
  }
  io.out(json ? formatStatusJson(read.status) : formatStatusText(read.status));
  return 0;
}

/** The JSON document: DataplaneStatus as it is, two-space indented, one trailing newline. */
export function formatStatusJson(s: DataplaneStatus): string {
  return `${JSON.stringify(s, null, 2)}\n`;
}

/** The tables a person reads: frontends with their backends, map fill, tc programs, notes. */
export function formatStatusText(s: DataplaneStatus): string {
  const out: string[] = [];
  const daemon =
    s.daemonPids.length > 0 ? `daemon pid ${s.daemonPids.join(', ')} holds them` : 'no daemon holds them (none running, or in another PID namespace)';
  const where = s.dataplane === 'bpf' ? `maps pinned in ${s.source}` : `read from ${s.source}`;
  out.push(`${s.dataplane} dataplane, layout ${s.layout}, ${where}; ${daemon}`, '');
  out.push(...frontendLines(s.frontends), '');
  out.push(
    ...table(
      ['MAP', 'ENTRIES', 'CAPACITY', 'FILL'],
      s.tables.map((t) => [t.name, String(t.entries), String(t.capacity), t.capacity > 0 ? `${((100 * t.entries) / t.capacity).toFixed(1)}%` : '-']),
      [false, true, true, true],
    ),
    '',
  );
  out.push(...attachmentLines(s));
  if (s.dataplane === 'bpf')
    out.push(
      '',
      s.socketHooks.length === 0 ? 'socket hooks (host-network clients): not attached' : `socket hooks (host-network clients): ${s.socketHooks.join(', ')}`,
    );
  if (s.notes.length > 0) out.push('', 'Notes:', ...s.notes.map((n) => `  - ${n}`));
  return `${out.join('\n')}\n`;
}

function frontendLines(frontends: readonly FrontendStatus[]): string[] {
  if (frontends.length === 0) return ['Frontends: none programmed'];
  const withCounters = frontends.some((f) => f.counters !== null || [f.internal, f.external].some((sc) => sc.backends.some((b) => b.counters !== null)));
  const head = ['PROTO', 'FRONTEND', 'KIND', 'ACTION', 'BACKENDS', 'FLAGS', ...(withCounters ? COUNTER_HEADS : [])];
  const rows: Row[] = [];
  const backendRows = (sc: ScopeStatus): void => {
    for (const b of sc.backends) {
      const tags = [b.local === true ? 'local' : '', b.weight !== null ? `weight=${b.weight}` : '', b.terminating === true ? 'terminating' : ''].filter(
        (t) => t !== '',
      );
      rows.push(['', `  -> ${hostPort(b.address, b.port)}`, '', '', '', tags.join(' '), ...(withCounters ? counterCells(b.counters) : [])]);
    }
  };
  for (const f of frontends) {
    rows.push([
      f.protocol,
      hostPort(f.address, f.port),
      f.kind,
      f.internal.action,
      String(f.internal.backends.length),
      flagsOf(f).join(' ') || '-',
      ...(withCounters ? counterCells(f.counters) : []),
    ]);
    backendRows(f.internal);
    if (!f.sharedScope) {
      const e = f.external;
      rows.push(
        `       external clients: ${e.action}${e.masquerade ? ', masquerade' : ''}, ${e.backends.length} ${e.backends.length === 1 ? 'backend' : 'backends'}`,
      );
      backendRows(e);
    }
    for (const p of f.problems) rows.push(`       ! ${p}`);
  }
  return [`Frontends (${frontends.length}):`, ...table(head, rows, [false, false, false, false, true, false, true, true, true])];
}

function flagsOf(f: FrontendStatus): string[] {
  const out: string[] = [];
  if (f.internal.masquerade) out.push('masquerade');
  else if (f.sharedScope && f.external.masquerade) out.push('masquerade-external');
  if (f.externalTrafficPolicy !== null) out.push(`etp=${f.externalTrafficPolicy}`);
  if (f.sourceRanges.length > 0) out.push(`source-ranges=${f.sourceRanges.join(',')}`);
  if (f.affinity !== null) out.push(`affinity=${f.affinity.timeoutSeconds}s`);
  return out;
}

const COUNTER_HEADS = ['PACKETS', 'BYTES', 'CONNS'];

function counterCells(c: TrafficCount | null): string[] {
  return c === null ? ['', '', ''] : [String(c.packets), String(c.bytes), String(c.connections)];
}

function attachmentLines(s: DataplaneStatus): string[] {
  if (s.attachments.length === 0) return ['tc programs: attached to no interface in this network namespace'];
  const byIf = new Map<string, { ingress: string; egress: string }>();
  for (const a of s.attachments) {
    const row = byIf.get(a.interface) ?? { ingress: '-', egress: '-' };
    row[a.hook] = a.program ?? `id ${a.programId}`;
    byIf.set(a.interface, row);
  }
  return table(
    ['INTERFACE', 'INGRESS', 'EGRESS'],
    [...byIf].map(([name, r]) => [name, r.ingress, r.egress]),
    [false, false, false],
  );
}

function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** A table row, or a line printed as it is (not aligned, not widening any column). */
type Row = readonly string[] | string;

/** Columns padded to their widest cell (right-aligned where `right`); a cell of the last column is not padded. */
function table(head: readonly string[], rows: readonly Row[], right: readonly boolean[]): string[] {
  const cells = rows.filter((r) => typeof r !== 'string');
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right[i] === true ? c.padStart(widths[i] ?? 0) : i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map((r) => (typeof r === 'string' ? r : line(r)))];
}
