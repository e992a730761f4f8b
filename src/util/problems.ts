// Logs input problems once: a problem that persists across syncs (every
// periodic full resync reports it again) is logged when it first appears and
// again only after it went away and came back.

import type { Logger } from './log.ts';

export interface ProblemLike {
  readonly owner: string;
  readonly field: string;
  readonly message: string;
}

export class ProblemLog {
  #log: Logger;
  #seen = new Set<string>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Logs the problems not logged before; returns how many were new. */
  report(problems: readonly ProblemLike[]): number {
    const now = new Set<string>();
    let fresh = 0;
    for (const p of problems) {
      const id = `${p.owner}\0${p.field}\0${p.message}`;
      now.add(id);
      if (this.#seen.has(id)) continue;
      this.#log.warn('not programmed', { servicePort: p.owner, field: p.field, error: p.message });
      fresh++;
    }
    this.#seen = now;
    return fresh;
  }
}
