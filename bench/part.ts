// What a part of `npm run bench` is: a name (`npm run bench -- NAME`), a
// run that returns plain JSON data (kept in docs/benchmarks.json), and
// renderers from that data to the markdown section and the plots of
// docs/benchmarks.md. Rendering only from the JSON lets one part run alone
// and the page be rebuilt with the other parts' last figures.

import type { TopLevelSpec } from 'vega-lite';

export interface RunContext {
  readonly quick: boolean;
  /** A line of progress on stdout. */
  log(line: string): void;
  /** Something functionally wrong: the run exits non-zero at the end. */
  fail(message: string): void;
}

export interface Plot {
  /** File name under docs/benchmarks/ (`.svg`). */
  readonly file: string;
  readonly title: string;
  readonly spec: TopLevelSpec;
}

export interface Part<D> {
  readonly name: string;
  readonly title: string;
  /** Why the part cannot run here (not root, a tool missing), or null. */
  cannotRun(): string | null;
  run(ctx: RunContext): Promise<D>;
  /** The part's section of docs/benchmarks.md (plots are linked by file name under benchmarks/). */
  markdown(data: D): string;
  plots(data: D): Plot[];
}

/** Thrown by a part that finds it cannot run after all. */
export class PartSkipped extends Error {}
