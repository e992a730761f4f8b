// pinlock: one daemon at a time writes a pin directory. During a DaemonSet
// surge (or a rolling update with maxSurge) the new pod starts while the old
// one is still terminating on the same node; both would load the object,
// adopt the same pinned maps and write them concurrently. acquirePinLock()
// takes the addon's lock on the pin directory (lockDir: an exclusive flock
// held by an fd until release or exit, so a crashed daemon never leaves it
// stale) before anything is loaded or adopted. While another daemon holds
// it, it retries until `timeoutMs` (default 60 s: longer than the default
// terminationGracePeriodSeconds of 30 s), logging once who holds it, then
// fails with ERR_SY_DATAPLANE_PIN_LOCKED naming the directory and holders.

import { isLockHeld, isNativeError, type NativeBinding } from '../../native/index.ts';
import { type Clock, systemClock } from '../../sync/clock.ts';
import type { Logger } from '../../util/log.ts';
import { DataplaneError } from '../types.ts';

export const PIN_LOCK_TIMEOUT_MS = 60_000;
export const PIN_LOCK_RETRY_MS = 250;

export interface PinLockOptions {
  readonly native: NativeBinding;
  readonly log: Logger;
  /** The pin directory; it must exist (ensureBpffs() first). */
  readonly pinPath: string;
  /** How long to wait for another holder; 0 = fail at once. Default PIN_LOCK_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Between attempts; default PIN_LOCK_RETRY_MS. */
  readonly retryMs?: number;
  readonly clock?: Clock;
  /** Aborting stops the wait: acquirePinLock resolves null. */
  readonly signal?: AbortSignal;
}

/** The held lock: release() lets the next daemon in (exit does too). */
export interface PinLock {
  readonly pinPath: string;
  release(): void;
}

/**
 * Takes the pin directory's lock, waiting for another holder to go away.
 * Resolves null when `signal` aborts first; rejects with a DataplaneError
 * (ERR_SY_DATAPLANE_PIN_LOCKED after the timeout, ERR_SY_DATAPLANE_KERNEL
 * when the directory cannot be opened or locked at all).
 */
export async function acquirePinLock(o: PinLockOptions): Promise<PinLock | null> {
  const clock = o.clock ?? systemClock();
  const timeoutMs = o.timeoutMs ?? PIN_LOCK_TIMEOUT_MS;
  const retryMs = o.retryMs ?? PIN_LOCK_RETRY_MS;
  const started = clock.now();
  let logged = false;
  for (;;) {
    if (o.signal?.aborted) return null;
    try {
      const fd = o.native.lockDir(o.pinPath);
      if (logged) o.log.info('pin directory lock taken', { pinPath: o.pinPath, waitedMs: Math.round(clock.now() - started) });
      return heldLock(o.native, o.pinPath, fd);
    } catch (err) {
      if (!isLockHeld(err)) {
        throw isNativeError(err) ? DataplaneError.kernel('bpf', `lock pin directory ${o.pinPath}`, err) : err;
      }
    }
    const holder = describeHolders(o.native, o.pinPath);
    const waited = clock.now() - started;
    if (waited >= timeoutMs) {
      throw new DataplaneError(
        'ERR_SY_DATAPLANE_PIN_LOCKED',
        'bpf',
        `lock pin directory ${o.pinPath}`,
        `another Switchyard daemon (${holder}) still holds the pin directory after ${Math.round(waited)} ms; two daemons must not write one pin directory (is the old pod still terminating, or does another daemon use --bpf-pin-path ${o.pinPath}?)`,
      );
    }
    if (!logged) {
      o.log.warn('pin directory is locked by another daemon; waiting for it to exit', { pinPath: o.pinPath, holder, timeoutMs });
      logged = true;
    }
    if (!(await sleep(clock, Math.min(retryMs, timeoutMs - waited), o.signal))) return null;
  }
}

/**
 * Takes the lock without waiting, for a one-shot command (`switchyard
 * cleanup`): a daemon holding it is ERR_SY_DATAPLANE_PIN_LOCKED naming it.
 */
export function holdPinLockNow(native: NativeBinding, pinPath: string, operation: string): PinLock {
  try {
    return heldLock(native, pinPath, native.lockDir(pinPath));
  } catch (err) {
    if (isLockHeld(err))
      throw new DataplaneError(
        'ERR_SY_DATAPLANE_PIN_LOCKED',
        'bpf',
        `${operation} ${pinPath}`,
        `a Switchyard daemon (${describeHolders(native, pinPath)}) is using the pin directory: stop it first`,
        { cause: err },
      );
    throw isNativeError(err) ? DataplaneError.kernel('bpf', `${operation}: lock pin directory ${pinPath}`, err) : err;
  }
}

function heldLock(native: NativeBinding, pinPath: string, fd: number): PinLock {
  let open = true;
  return {
    pinPath,
    release(): void {
      if (!open) return;
      open = false;
      native.closeFd(fd);
    },
  };
}

/** "pid 1234", "pids 12, 34", or why it cannot tell. */
function describeHolders(native: NativeBinding, pinPath: string): string {
  let pids: number[];
  try {
    pids = native.lockHolders(pinPath);
  } catch {
    return 'holder unknown: /proc/locks unreadable';
  }
  if (pids.length === 0) return 'a process in another PID namespace';
  return `${pids.length === 1 ? 'pid' : 'pids'} ${pids.join(', ')}`;
}

/** False when the signal aborted the wait. */
function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
