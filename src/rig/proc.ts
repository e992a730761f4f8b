// Processes for the rig: one-shot commands (`run`, `runSync`) and tracked
// long-running ones (`RigProcess`), in the caller's namespace or, through
// `ip netns exec`, in a rig namespace.
//
// `ip netns exec NS CMD` enters the namespace, unshares a mount namespace,
// remounts /sys and then execs CMD, so the pid we get is CMD's own. Long-running
// processes are started in their own process group (detached) so that stopping
// one also stops anything it forked, and so that a Ctrl-C aimed at the test
// runner reaches the rig's handler first, which then stops them in order.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { SwitchyardError } from '../util/errors.ts';
import { scaled } from './timing.ts';

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Kill (SIGKILL) the command after this long; the result then has signal 'SIGKILL'. Default 30 s. */
  timeoutMs?: number;
  /** Reject with CommandError unless the command exits 0. Default false. */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** A command run with `check` exited non-zero or was killed; `result` has its exit code and output. */
export class CommandError extends SwitchyardError {
  declare readonly code: 'ERR_SY_COMMAND_FAILED';
  readonly argv: readonly string[];
  readonly result: ExecResult;
  constructor(argv: readonly string[], result: ExecResult) {
    const how = result.signal !== null ? `killed by ${result.signal}` : `exit code ${result.code}`;
    const detail = result.stderr.trim() || result.stdout.trim();
    super('ERR_SY_COMMAND_FAILED', `${argv.join(' ')}: ${how}${detail ? `: ${detail.slice(0, 2000)}` : ''}`);
    this.argv = argv;
    this.result = result;
  }
}

/**
 * argv prefix that runs a TypeScript file on this Node, as bin/switchyard
 * does: `--liftoff-only` keeps WebAssembly (Node's type stripper is one) on
 * its baseline compiler. Node 24.21's V8 aborted a daemon at start-up under
 * the kernel matrix's emulated CPU ("Check failed: it->second.Size() >
 * offset" in ThreadIsolation, reached from Runtime_WasmTriggerTierUp), twice
 * in one run; without tier-up that path is never taken.
 */
export const NODE_CMD: readonly string[] = [process.execPath, '--liftoff-only'];

/** argv prefix that runs a command in a named network namespace. */
export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

/**
 * The environment for rig children: `env` with the standard directories
 * added to PATH. What vitest sets for its workers (VITEST, TEST,
 * NODE_ENV=test, VITEST_*) passes through: neither the rig's programs nor
 * switchyard and its dependencies read any of it.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  // A VM's init may start us with a short PATH (or none), and `ip` lives in
  // /usr/sbin. spawn() looks commands up in the child's PATH, so fixing it
  // here also finds `ip` itself.
  const dirs = (out.PATH ?? '').split(':').filter((d) => d !== '');
  for (const d of STANDARD_PATH) if (!dirs.includes(d)) dirs.push(d);
  out.PATH = dirs.join(':');
  return out;
}

const STANDARD_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const MAX_CAPTURE = 4 << 20;

function append(buf: string, chunk: string): string {
  const s = buf + chunk;
  return s.length > MAX_CAPTURE ? s.slice(s.length - MAX_CAPTURE) : s;
}

/** Runs argv (argv[0] looked up in PATH) to completion. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new RangeError('run: empty argv'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv(opts.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout = append(stdout, c)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = append(stderr, c)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? scaled(30_000));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = { stdout, stderr, code, signal };
      if (opts.check === true && code !== 0) reject(new CommandError(argv, result));
      else resolve(result);
    });
    child.stdin.on('error', () => {}); // EPIPE when the command does not read its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Synchronous `run`, for exit handlers only (no event loop there). */
export function runSync(argv: readonly string[], input = ''): ExecResult {
  const [file, ...args] = argv;
  if (file === undefined) throw new RangeError('runSync: empty argv');
  const r = spawnSync(file, args, { input, encoding: 'utf8', timeout: scaled(10_000), env: childEnv() });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status, signal: r.signal };
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A long-running process in a rig namespace, with its output captured. */
export class RigProcess {
  readonly ns: string;
  readonly argv: readonly string[];
  readonly pid: number;
  /** Resolves (never rejects) when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  #stdout = '';
  #stderr = '';
  #status: ExitStatus | undefined;
  #onOutput = new Set<() => void>();

  static start(ns: string, argv: readonly string[], opts: SpawnOptions = {}): RigProcess {
    const full = inNetns(ns, argv);
    const child = spawn(full[0] ?? 'ip', full.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: childEnv(opts.env),
      cwd: opts.cwd,
    });
    return new RigProcess(ns, argv, child);
  }

  constructor(ns: string, argv: readonly string[], child: ChildProcess) {
    this.ns = ns;
    this.argv = argv;
    // pid is undefined only when spawn itself failed (ENOENT); 'error' follows.
    this.pid = child.pid ?? -1;
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      this.#stdout = append(this.#stdout, c);
      this.#notify();
    });
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      this.#stderr = append(this.#stderr, c);
    });
    this.exited = new Promise((resolve) => {
      const done = (status: ExitStatus): void => {
        if (this.#status) return;
        this.#status = status;
        this.#notify();
        resolve(status);
      };
      child.on('close', (code, signal) => done({ code, signal }));
      child.on('error', (err) => {
        this.#stderr = append(this.#stderr, `spawn: ${err.message}\n`);
        done({ code: null, signal: null });
      });
    });
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get running(): boolean {
    return this.#status === undefined && this.pid > 0;
  }

  get status(): ExitStatus | undefined {
    return this.#status;
  }

  #notify(): void {
    for (const f of [...this.#onOutput]) f();
  }

  describe(): string {
    return `[${this.ns}] ${this.argv.join(' ')} (pid ${this.pid})`;
  }

  /**
   * Resolves with the first stdout line matching `pattern` (already printed or
   * printed later). Rejects if the process exits first or after `timeoutMs`.
   */
  waitForLine(pattern: string | RegExp, timeoutMs = scaled(10_000)): Promise<string> {
    const matches = (line: string): boolean => (typeof pattern === 'string' ? line === pattern : pattern.test(line));
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const lines = this.#stdout.split('\n');
        lines.pop(); // the last element is an unterminated line (or '')
        const hit = lines.find(matches);
        if (hit !== undefined) {
          cleanup();
          resolve(hit);
        } else if (this.#status) {
          cleanup();
          reject(
            new SwitchyardError(
              'ERR_SY_RIG_PROCESS_EXITED',
              `${this.describe()} exited (${JSON.stringify(this.#status)}) before printing ${String(pattern)}; stderr: ${this.#stderr.trim().slice(-2000)}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new SwitchyardError(
            'ERR_SY_RIG_TIMEOUT',
            `${this.describe()}: no line matching ${String(pattern)} after ${timeoutMs} ms; stderr: ${this.#stderr.trim().slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#onOutput.delete(check);
      };
      this.#onOutput.add(check);
      check();
    });
  }

  /** Sends `signal` to the process group. No-op once exited. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      try {
        process.kill(this.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /**
   * SIGTERM, then SIGKILL after `graceMs`; resolves once exited. Then SIGKILL
   * whatever is left of its process group (children it forked). Idempotent.
   */
  async stop(graceMs = 2000): Promise<ExitStatus> {
    if (this.pid <= 0) return this.exited;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is empty, as it should be
      }
    }
  }
}
