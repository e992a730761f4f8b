// errors.ts: the shape of errors thrown by the native addon and predicates
// over it. Every addon failure is an Error with a positive errno, its code
// ('ENOENT', 'ENOTSUPP', ...) and the syscall or libbpf call that failed
// (or the addon operation, e.g. 'mapUpdate', for arguments that do not fit
// the map; those carry EINVAL). Switchyard's own errors are the other kind:
// SwitchyardErrors with ERR_SY_* codes (src/util/errors.ts), which keep a
// native error they wrap as `cause`.
export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
  // mapUpdate/mapDelete failing part way: records before the failing one
  // (index `done`) were applied, as the message's "(record done of count)".
  done?: number;
}

export function isNativeError(e: unknown): e is NativeError {
  if (!(e instanceof Error)) return false;
  const fields = e as Error & Record<string, unknown>;
  return typeof fields.errno === 'number' && typeof fields.code === 'string' && typeof fields.syscall === 'string';
}

function hasCode(e: unknown, codes: readonly string[]): e is NativeError {
  return isNativeError(e) && codes.includes(e.code);
}

// The object (pinned path, map key, interface) does not exist.
export function isNotExist(e: unknown): e is NativeError {
  return hasCode(e, ['ENOENT', 'ENODEV', 'ENXIO']);
}

// The kernel lacks the feature. EINVAL is left out on purpose: it also means
// a bad argument, so a feature probe must decide that from context.
export function isNotSupported(e: unknown): e is NativeError {
  return hasCode(e, ['EOPNOTSUPP', 'ENOTSUPP']);
}

export function isPermissionDenied(e: unknown): e is NativeError {
  return hasCode(e, ['EPERM', 'EACCES']);
}

// lockDir(): another open file holds the lock (EWOULDBLOCK; Linux calls it EAGAIN).
export function isLockHeld(e: unknown): e is NativeError {
  return hasCode(e, ['EAGAIN', 'EWOULDBLOCK']);
}
