// Checks that `switchyard run` makes before it touches the kernel's
// networking, so that an expected failure ends the daemon at once with one
// line naming what is wrong and how to fix it (exit 1), never a stack trace,
// a hang, or a half-started proxy. In order (the configuration itself is
// validated before this, see src/config):
//   1. the kubeconfig loads (only with the Kubernetes API source);
//   2. privileges: root, or the capabilities the bpf dataplane needs;
//   3. kernel: a release the BPF program is tested on, the native addon and
//      the BPF object present;
//   4. the API server answers within a bounded wait (API source only);
//   5. the node's address is found (--bind-address, or detected);
//   6. bpffs at the pin path, mounted there when missing (needs
//      CAP_SYS_ADMIN once): last, as the only check with an effect.
// --init-only runs 2, 3 and 6 and exits, as kube-proxy's does for the steps
// that need full privileges (the DaemonSet's init container).
//
// Each check is a function of injected inputs (the status file, the kernel
// release, a probe) so tests drive every failure without root.

import { existsSync, readFileSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { SwitchyardError } from '../util/errors.ts';

/** An expected failure before start: `message` says what is wrong and how to fix it. */
export class PreflightError extends SwitchyardError {
  declare readonly code: 'ERR_SY_PREFLIGHT';
  /** "privileges", "kernel", "bpffs", "api-server". */
  readonly check: string;

  constructor(check: string, message: string, options?: ErrorOptions) {
    super('ERR_SY_PREFLIGHT', message, options);
    this.check = check;
  }
}

/** capability numbers (linux/capability.h). */
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 } as const;

function hasCap(capEff: bigint, n: number): boolean {
  return ((capEff >> BigInt(n)) & 1n) === 1n;
}

/**
 * The bpf dataplane loads programs and maps (CAP_BPF, or CAP_SYS_ADMIN
 * before 5.8), attaches them to tc hooks (CAP_NET_ADMIN) and may mount
 * bpffs (CAP_SYS_ADMIN). `status` is /proc/self/status.
 */
export function checkPrivileges(status: string): void {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m?.[1]) throw new PreflightError('privileges', 'privileges: cannot read the effective capabilities (CapEff) from /proc/self/status');
  const eff = BigInt(`0x${m[1]}`);
  const missing: string[] = [];
  if (!hasCap(eff, CAP.NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  if (!hasCap(eff, CAP.BPF) && !hasCap(eff, CAP.SYS_ADMIN)) missing.push('CAP_BPF (or CAP_SYS_ADMIN)');
  if (missing.length > 0) {
    throw new PreflightError(
      'privileges',
      `privileges: missing ${missing.join(' and ')}; run as root, or give the container these capabilities (deploy/daemonset.yaml shows the set)`,
    );
  }
}

/** The oldest kernel the BPF dataplane is tested on (DESIGN.md section 8). */
export const MIN_KERNEL: readonly [number, number] = [5, 10];

export function checkKernel(release: string, files: { addon: string; object: string }, exists: (p: string) => boolean = existsSync): void {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const [maj, min] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (maj < MIN_KERNEL[0] || (maj === MIN_KERNEL[0] && min < MIN_KERNEL[1])) {
    throw new PreflightError(
      'kernel',
      `kernel: ${release} is older than ${MIN_KERNEL.join('.')}, the oldest the bpf dataplane supports; upgrade the kernel or run kube-proxy on this node`,
    );
  }
  if (!exists(files.object)) {
    throw new PreflightError('kernel', `kernel: the BPF object ${files.object} is missing; build it (npm run build:bpf) or give --bpf-object`);
  }
  if (!exists(files.addon)) {
    throw new PreflightError('kernel', `kernel: the native addon ${files.addon} is missing; build it (npm run build:native)`);
  }
}

/** The native addon is there (the ipvs dataplane's only build artefact: its netlink socket). */
export function checkAddon(addon: string, exists: (p: string) => boolean = existsSync): void {
  if (!exists(addon)) throw new PreflightError('kernel', `kernel: the native addon ${addon} is missing; build it (npm run build:native)`);
}

/** Makes sure `pinPath` is on a bpffs, mounting one when missing (ensureBpffs from the native addon). */
export function checkBpffs(pinPath: string, ensureBpffs: (path: string) => boolean): { mounted: boolean } {
  try {
    return { mounted: ensureBpffs(pinPath) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const fix =
      e.code === 'EPERM' || e.code === 'EACCES'
        ? 'mount it on the host (mount -t bpf bpf /sys/fs/bpf) and mount /sys/fs/bpf into the container, or grant CAP_SYS_ADMIN'
        : 'check --bpf-pin-path and that /sys/fs/bpf is a bpffs mount (mount -t bpf bpf /sys/fs/bpf)';
    throw new PreflightError('bpffs', `bpffs: cannot prepare the pin directory ${pinPath}: ${e.message}; ${fix}`, { cause: err });
  }
}

export interface ApiWaitOptions {
  /** One attempt: resolves when the server answered, rejects with why not. */
  readonly probe: (signal: AbortSignal) => Promise<void>;
  readonly server: string;
  readonly timeoutMs: number;
  /** Pause between attempts; default 1 s. */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Probes the API server until it answers or `timeoutMs` passed; then fails
 * with the last error. An aborted `signal` resolves (the daemon is stopping).
 */
export async function waitForApiServer(o: ApiWaitOptions): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let last: unknown = null;
  while (!o.signal?.aborted) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const attempt = AbortSignal.any([AbortSignal.timeout(remaining), ...(o.signal ? [o.signal] : [])]);
    try {
      await o.probe(attempt);
      return;
    } catch (err) {
      last = err;
    }
    const pause = Math.min(o.intervalMs ?? 1000, deadline - Date.now());
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  if (o.signal?.aborted) return;
  const why = last === null ? 'no answer' : causeChain(last);
  throw new PreflightError(
    'api-server',
    `api-server: ${o.server} did not answer within ${Math.round(o.timeoutMs / 1000)} s (${why}); check the kubeconfig's server address (deploy/configmap.yaml) and that this node can reach it`,
    { cause: last },
  );
}

/** An error's message with those of its causes ("fetch failed: connect ECONNREFUSED 10.0.0.1:6443"). */
export function causeChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 6; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}

/** The real inputs. */
export const host = {
  status: (): string => readFileSync('/proc/self/status', 'utf8'),
  release: (): string => osRelease(),
};
