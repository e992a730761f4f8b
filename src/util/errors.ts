// The project's error convention. Every error Switchyard itself throws is a
// SwitchyardError: a stable `code` of the form ERR_SY_<WHAT> that callers and
// tests match on (messages may be reworded, codes may not), a message that
// names the object and field that was wrong, and the error it wraps as
// `cause`. Errors from the kernel keep the kernel's shape instead (errno, a
// code such as ENOENT, the syscall: src/native/errors.ts); a layer that
// wraps one keeps it as `cause`, so errno, code and syscall stay reachable.

export type SwitchyardErrorCode = `ERR_SY_${string}`;

export class SwitchyardError extends Error {
  readonly code: SwitchyardErrorCode;

  constructor(code: SwitchyardErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
