// A tiny structured logger: one line per event on stderr, in one of three
// formats:
//   plain (the library default, tests read it):
//     2025-01-01T00:00:00.000Z warn manifests skipping object file=a.yaml doc=1
//   klog (the daemon's text format, kube-proxy's --logging-format=text):
//     W0101 00:00:00.000000    4242 manifests] "skipping object" file="a.yaml" doc=1
//   json (--logging-format=json, Kubernetes' JSON lines):
//     {"ts":1735689600000.123,"logger":"manifests","msg":"skipping object","v":0,"file":"a.yaml","doc":1}
// klog puts file:line where the component stands here; there is no line
// number to give, so the component names the source. Levels map to klog's:
// error E (JSON: an "err" field, no "v"), warn W, info I at V(0), verbose at
// V(2) (-v=2: per-sync and per-object news, as kube-proxy's), debug at V(4)
// (-v=4: detail).
// Each component creates its own logger and receives it by injection; there
// is no global logger. Dependency-free on purpose.

/** debug is klog's V(4), verbose V(2), info V(0). */
export type LogLevel = 'debug' | 'verbose' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  /** Per-object and per-sync news an operator follows with -v=2 (kube-proxy's V(2)). */
  verbose(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export type LogFormat = 'plain' | 'klog' | 'json';

export interface LoggerOptions {
  /** Lowest level written; default 'info'. */
  readonly level?: LogLevel;
  /** Default 'plain'. */
  readonly format?: LogFormat;
  /** The pid klog lines carry; default this process's. */
  readonly pid?: number;
  /** Where lines go (without the trailing newline); default stderr. */
  readonly write?: (line: string) => void;
  /** Time source; default wall clock. */
  readonly now?: () => Date;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, verbose: 15, info: 20, warn: 30, error: 40 };

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const format = options.format ?? 'plain';
  const pid = options.pid ?? process.pid;
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const at = now();
    if (format === 'klog') write(formatKlogLine(at, pid, level, component, msg, fields));
    else if (format === 'json') write(formatJsonLine(at, level, component, msg, fields));
    else write(formatLine(at, level, component, msg, fields));
  };
  return { debug: emit('debug'), verbose: emit('verbose'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that drops everything, for tests and optional wiring. */
export function nullLogger(): Logger {
  const drop = () => {};
  return { debug: drop, verbose: drop, info: drop, warn: drop, error: drop };
}

export function formatLine(at: Date, level: LogLevel, component: string, msg: string, fields?: LogFields): string {
  let line = `${at.toISOString()} ${level} ${component} ${msg}`;
  if (fields) {
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      line += ` ${key}=${formatValue(value)}`;
    }
  }
  return line;
}

const KLOG_SEVERITY: Readonly<Record<LogLevel, string>> = { debug: 'I', verbose: 'I', info: 'I', warn: 'W', error: 'E' };

/** klog's header and structured (InfoS) body: strings and errors quoted, numbers and booleans bare. */
export function formatKlogLine(at: Date, pid: number, level: LogLevel, component: string, msg: string, fields?: LogFields): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const micros = String(at.getUTCMilliseconds() * 1000).padStart(6, '0');
  const time = `${p2(at.getUTCMonth() + 1)}${p2(at.getUTCDate())} ${p2(at.getUTCHours())}:${p2(at.getUTCMinutes())}:${p2(at.getUTCSeconds())}.${micros}`;
  let line = `${KLOG_SEVERITY[level]}${time} ${String(pid).padStart(7)} ${component}] ${JSON.stringify(msg)}`;
  for (const [key, value] of orderedFields(level, fields)) line += ` ${key}=${klogValue(value)}`;
  return line;
}

/** One JSON object per line, Kubernetes' JSON log format ("ts" in ms since the epoch, "v" on non-errors). */
export function formatJsonLine(at: Date, level: LogLevel, component: string, msg: string, fields?: LogFields): string {
  const out: Record<string, unknown> = { ts: at.getTime(), logger: component, msg };
  if (level !== 'error') out['v'] = level === 'debug' ? 4 : level === 'verbose' ? 2 : 0;
  for (const [key, value] of orderedFields(level, fields)) {
    if (key in out) continue;
    out[key] = value instanceof Error ? value.message : typeof value === 'bigint' ? value.toString() : value;
  }
  return safeJson(out);
}

/** Fields without undefined values; on an error line the `error` field goes first as klog's `err`. */
function orderedFields(level: LogLevel, fields?: LogFields): [string, unknown][] {
  const entries = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined);
  if (level !== 'error') return entries;
  const err = entries.find(([k]) => k === 'error');
  return err ? [['err', err[1]], ...entries.filter(([k]) => k !== 'error')] : entries;
}

function klogValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return safeJson(value);
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return quoteIfNeeded(value.message);
  if (typeof value === 'string') return quoteIfNeeded(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return quoteIfNeeded(safeJson(value));
}

function quoteIfNeeded(s: string): string {
  return s === '' || /[\s"=\\]/.test(s) ? JSON.stringify(s) : s;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
