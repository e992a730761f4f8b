// The one error the configuration layer throws: every problem found in the
// flags and the file at once, each naming the option as the user wrote it
// (`--ipvs-scheduler`, or `ipvs.scheduler` with the file and line), the value
// and what is allowed. Thrown before anything on the host is touched.

import { SwitchyardError } from '../util/errors.ts';

export interface ConfigProblem {
  /** The option as the user wrote it: "--ipvs-scheduler", "ipvs.scheduler", "kind". */
  readonly field: string;
  /** The config file, when the value came from it. */
  readonly file?: string;
  readonly line?: number;
  /** The whole line: `[file[:line]: ]field: value: what is allowed`. */
  readonly message: string;
}

export class ConfigError extends SwitchyardError {
  declare readonly code: 'ERR_SY_INVALID_CONFIG';
  /** The first problem's field. */
  readonly field: string;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const first = problems[0];
    super(
      'ERR_SY_INVALID_CONFIG',
      problems.length === 1 && first ? first.message : `${problems.length} problems:\n${problems.map((p) => `  ${p.message}`).join('\n')}`,
    );
    this.field = first?.field ?? '';
    this.problems = problems;
  }
}

/** Where a value came from, and how to name it in a message. */
export type Origin =
  | { readonly kind: 'flag'; readonly flag: string }
  | { readonly kind: 'file'; readonly file: string; readonly line: number | undefined; readonly field: string }
  /** Not given anywhere: a default, named by its field. */
  | { readonly kind: 'default'; readonly field: string };

/** Builds a problem line: `file:line: field: value: message` or `--flag: value: message`. */
export function problem(origin: Origin, shownValue: string | undefined, message: string): ConfigProblem {
  const body = shownValue === undefined ? message : `${shownValue}: ${message}`;
  if (origin.kind === 'flag') {
    const field = `--${origin.flag}`;
    return { field, message: `${field}: ${body}` };
  }
  if (origin.kind === 'default') return { field: origin.field, message: `${origin.field}: ${body}` };
  const where = origin.line === undefined ? origin.file : `${origin.file}:${origin.line}`;
  return { field: origin.field, file: origin.file, ...(origin.line === undefined ? {} : { line: origin.line }), message: `${where}: ${origin.field}: ${body}` };
}

/** A field's name in a message. */
export function fieldName(origin: Origin): string {
  return origin.kind === 'flag' ? `--${origin.flag}` : origin.field;
}

/** Renders a value the way it would be written: strings quoted, the rest as is. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(showValue).join(', ')}]`;
  if (typeof value === 'object') {
    const json = JSON.stringify(value);
    return json.length <= 80 ? json : 'a mapping';
  }
  return String(value);
}
