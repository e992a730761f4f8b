// A tiny structured logger: one line per event on stderr,
//   2025-01-01T00:00:00.000Z warn manifests skipping object file=a.yaml doc=1
// Each component creates its own logger and receives it by injection; there
// is no global logger. Dependency-free on purpose.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  /** Lowest level written; default 'info'. */
  readonly level?: LogLevel;
  /** Where lines go (without the trailing newline); default stderr. */
  readonly write?: (line: string) => void;
  /** Time source; default wall clock. */
  readonly now?: () => Date;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    write(formatLine(now(), level, component, msg, fields));
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that drops everything, for tests and optional wiring. */
export function nullLogger(): Logger {
  const drop = () => {};
  return { debug: drop, info: drop, warn: drop, error: drop };
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
