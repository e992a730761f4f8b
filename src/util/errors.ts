// The project's error convention. Every error Switchyard itself throws is a
// SwitchyardError: a stable `code` of the form ERR_SY_<WHAT> that callers and
// tests match on (messages may be reworded, codes may not), a message that
// names the object and field that was wrong, and the error it wraps as
// `cause`. Errors from the kernel keep the kernel's shape instead (errno, a
// code such as ENOENT, the syscall: src/native/errors.ts); a layer that
// wraps one keeps it as `cause`, so errno, code and syscall stay reachable.
// A call outside a function's contract (an id out of range, a buffer of the
// wrong size) throws the built-in RangeError, as JavaScript's own APIs do:
// that is a bug in the caller, not a condition to handle.
//
// Codes, by where they are thrown:
//   ERR_SY_INVALID_CONFIG       config/errors.ts ConfigError (every problem of flags and file)
//   ERR_SY_INVALID_OBJECT       sources/objects.ts ValidationError (an object and field)
//   ERR_SY_INVALID_KUBECONFIG   sources/kube-config.ts KubeConfigError (the flag at fault)
//   ERR_SY_WATCH_ERROR          sources/kube-reflector.ts WatchStatusError (an ERROR watch event)
//   ERR_SY_ALREADY_STARTED      a component's start() called twice
//   ERR_SY_SNAPSHOT_COMMIT      model/snapshot.ts: commit() of a snapshot it cannot take
//   ERR_SY_DATAPLANE_*          dataplane/types.ts DataplaneError (operation, and the kernel's error as cause)
//   ERR_SY_LAYOUT               dataplane/bpf/layout.ts LayoutError (a struct and field)
//   ERR_SY_UNSUPPORTED_HOST     dataplane/bpf/layout.ts: a big-endian host
//   ERR_SY_SYNC_FAILED          sync/runner.ts: a sync threw something that is not an error
//   ERR_SY_COW_EDITOR_DONE      util/cow.ts CowEditorDoneError
//   ERR_SY_NATIVE_ADDON         native/binding.ts: the addon cannot be loaded or is stale
//   ERR_SY_NO_SUCH_MAP, ERR_SY_NO_SUCH_PROGRAM   native/index.ts: a name the object does not have
//   ERR_SY_NETLINK_DECODE       host/netlink/message.ts NetlinkDecodeError (a netlink message or attribute that does not parse)
//   ERR_SY_DEMO_FAILED          cli/demo.ts
//   ERR_SY_CLEANUP_NOT_PROGRAMMED  cli/kube-proxy-cleanup.ts: cleanup --kube-proxy before Switchyard is programmed here
//   ERR_SY_PREFLIGHT            cli/preflight.ts PreflightError (a start-up check: privileges, kernel, bpffs, API server)
//   ERR_SY_BIND                 ops/: a port that cannot be bound (health, metrics with --bind-address-hard-fail, a healthCheckNodePort)
//   ERR_SY_BIND_ADDRESS         ops/http.ts: a bind address that is not host:port
//   ERR_SY_USAGE                the rig's helper programs: a bad command line
//   ERR_SY_COMMAND_FAILED       rig/proc.ts CommandError (a command's exit code and output)
//   ERR_SY_RIG_*                rig/: a destroyed cluster, namespaces in use or left behind, a process that
//                               exited or stayed silent

export type SwitchyardErrorCode = `ERR_SY_${string}`;

export class SwitchyardError extends Error {
  readonly code: SwitchyardErrorCode;

  constructor(code: SwitchyardErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
