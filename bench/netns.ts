// Network namespaces for the kube-proxy side of the benchmarks: each
// ruleset is applied in a fresh namespace the benchmark creates
// (`ip netns add`) and deletes, with the command run as
// `ip netns exec NS CMD < FILE`, timed from spawn to exit. A command that
// runs past its limit is killed and reported as such (a result, not a
// failure); one that exits non-zero is a failure (the ruleset did not apply).

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface Timed {
  /** Wall time from spawn to exit (the limit when it was stopped). */
  readonly ms: number;
  /** Stopped at the limit: ms is a lower bound. */
  readonly stopped: boolean;
}

/** Thrown when a command exits non-zero: the ruleset is not what the kernel or the tool accepts. */
export class ApplyFailed extends Error {}

let made = 0;

export class BenchNetns {
  readonly name: string;
  #deleted = false;

  constructor(tag: string) {
    this.name = `sy-bench-${process.pid}-${++made}-${tag}`;
    execFileSync('ip', ['netns', 'add', this.name], { stdio: 'pipe' });
    live.add(this);
  }

  /** Runs `argv` in the namespace with stdin from `inputFile`, killed after `limitMs`. */
  run(argv: readonly string[], inputFile: string, limitMs: number): Promise<Timed> {
    const fd = openSync(inputFile, 'r');
    return new Promise<Timed>((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn('ip', ['netns', 'exec', this.name, ...argv], { stdio: [fd, 'ignore', 'pipe'] });
      let stderr = '';
      let stopped = false;
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString();
      });
      const timer = setTimeout(() => {
        stopped = true;
        child.kill('SIGKILL');
      }, limitMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        closeSync(fd);
        reject(err);
      });
      child.on('close', (code) => {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        closeSync(fd);
        if (stopped) resolve({ ms: limitMs, stopped: true });
        else if (code === 0) resolve({ ms, stopped: false });
        else reject(new ApplyFailed(`${argv.join(' ')} < ${inputFile} in ${this.name}: exit ${code}: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`));
      });
    });
  }

  /** Runs a command in the namespace and returns its stdout (for the checks, untimed). */
  output(argv: readonly string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 }).toString();
  }

  /** Deletes the namespace (and with it every rule in it). Idempotent, synchronous (for signal handlers). */
  delete(): void {
    if (this.#deleted) return;
    this.#deleted = true;
    live.delete(this);
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'pipe' });
    } catch {
      // already gone
    }
  }
}

const live = new Set<BenchNetns>();

/** Deletes every namespace still open (at exit, on error, on a signal). */
export function deleteAllNetns(): void {
  for (const ns of [...live]) ns.delete();
}
