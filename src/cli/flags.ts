// Command-line parsing for every switchyard command: a table of flag specs
// per command, `--name=value` and `--name value` forms, and errors that name
// the flag and what it accepts. Nothing here touches the system.

export type FlagKind = 'string' | 'bool' | 'duration' | 'int';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly help: string;
  readonly default?: string;
  /** Allowed values for a string flag. */
  readonly choices?: readonly string[];
}

export type FlagValues = ReadonlyMap<string, string | boolean | number>;

export class FlagError extends Error {
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(`--${flag}: ${message}`);
    this.name = 'FlagError';
    this.flag = flag;
  }
}

/** Parses "500ms", "2s", "1m30s", "1h" into milliseconds (Go duration syntax, as kube-proxy). */
export function parseDuration(text: string): number | null {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let at = 0;
  if (text === '0') return 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m || m[1] === undefined || m[2] === undefined) return null;
    total += Number(m[1]) * (unit[m[2]] ?? 0);
    at = re.lastIndex;
  }
  return at > 0 ? total : null;
}

function convert(spec: FlagSpec, raw: string): string | boolean | number {
  switch (spec.kind) {
    case 'bool':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new FlagError(spec.name, `must be true or false, got "${raw}"`);
    case 'int': {
      if (!/^-?\d+$/.test(raw)) throw new FlagError(spec.name, `must be an integer, got "${raw}"`);
      return Number(raw);
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === null) throw new FlagError(spec.name, `must be a duration like 1s, 500ms or 1m, got "${raw}"`);
      return ms;
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new FlagError(spec.name, `must be one of ${spec.choices.join(', ')}, got "${raw}"`);
      }
      return raw;
  }
}

/** Parses argv against specs; defaults fill flags not given. Positional arguments are returned apart. */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): { values: FlagValues; positional: string[] } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string | boolean | number>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(name);
    if (!spec) {
      throw new FlagError(name, `unknown flag; known flags: ${specs.map((s) => `--${s.name}`).join(' ')}`);
    }
    let raw: string;
    if (eq >= 0) raw = body.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new FlagError(name, 'needs a value');
      raw = next;
      i++;
    }
    values.set(name, convert(spec, raw));
  }
  for (const s of specs) {
    if (!values.has(s.name) && s.default !== undefined) values.set(s.name, convert(s, s.default));
  }
  return { values, positional };
}

export function formatHelp(command: string, summary: string, specs: readonly FlagSpec[]): string {
  const lines = [`Usage: switchyard ${command} [flags]`, '', summary, '', 'Flags:'];
  for (const s of specs) {
    const def = s.default !== undefined ? ` (default ${s.default})` : '';
    const choices = s.choices ? ` [${s.choices.join('|')}]` : '';
    lines.push(`  --${s.name}${s.kind === 'bool' ? '' : `=${s.kind.toUpperCase()}`}${choices}`);
    lines.push(`      ${s.help}${def}`);
  }
  return lines.join('\n');
}

export function str(values: FlagValues, name: string): string | undefined {
  const v = values.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function num(values: FlagValues, name: string): number | undefined {
  const v = values.get(name);
  return typeof v === 'number' ? v : undefined;
}

export function bool(values: FlagValues, name: string): boolean {
  return values.get(name) === true;
}
