// Time for the sync layer, injected so tests are deterministic: now() in
// monotonic milliseconds plus one-shot timers. systemClock() is the real one;
// FakeClock is the test double (time moves only when advance() is called).

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque to callers. */
export type TimerHandle = { readonly __timer: true } | NodeJS.Timeout;

export function systemClock(): Clock {
  return {
    now: () => performance.timeOrigin + performance.now(),
    setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  };
}

interface FakeTimer {
  readonly __timer: true;
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<FakeTimer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { __timer: true, at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as FakeTimer);
  }

  /** Number of timers armed. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the next timer fires, or null. */
  get nextAt(): number | null {
    return this.#next()?.at ?? null;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; after each one
   * (and at the end) lets pending promise callbacks run, so async work a
   * timer started can finish and arm new timers within the same advance.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (let t = this.#next(); t && t.at <= end; t = this.#next()) {
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.at);
      t.fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets queued promise callbacks (several hops deep) run. */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}
