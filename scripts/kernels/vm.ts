// One VM run for the kernel-matrix runner.
// Owns: the qemu command line (TCG, host root and the kernel's module tree over 9p,
// serial console on stdio, no network), the per-run initramfs (base archive + command
// archive concatenated), streaming the console line by line, the timeout, and parsing
// the `SY-START <nonce>` / `SY-RESULT <nonce> rc=N` lines printed by /init.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import type { Kernel } from './fetch.ts';
import { buildRunArchive } from './initramfs.ts';

export interface VmOptions {
  kernel: Kernel;
  baseInitrd: string;
  /** Shell script text run by /bin/sh inside the chroot, after `cd cwd`. */
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  memoryMiB: number;
  cpus: number;
  /** Extra kernel command line. */
  append: string;
  /** 9p cache mode for the host root (none, loose, mmap...). */
  cache9p: string;
  accel: string;
  /** Receives every console line (without the trailing newline). */
  onLine: (line: string) => void;
}

export interface VmResult {
  ok: boolean;
  rc: number | undefined;
  /** Why it failed, when it did. */
  reason: string;
  bootSeconds: number | undefined;
  commandSeconds: number | undefined;
  totalSeconds: number;
  lastLines: string[];
}

/** Running qemu processes, so that run.ts can stop them on SIGINT/SIGTERM. */
export const running = new Set<ChildProcess>();
/** Their temporary directories, removed by run.ts if it is stopped. */
export const workDirs = new Set<string>();

export const shellQuote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function runScript(o: VmOptions): string {
  const lines = ['#!/bin/sh'];
  for (const [k, v] of Object.entries(o.env)) lines.push(`export ${k}=${shellQuote(v)}`);
  lines.push(`cd ${shellQuote(o.cwd)} || exit 126`, o.command, '');
  return lines.join('\n');
}

function configScript(o: VmOptions, nonce: string): string {
  const vars: Record<string, string> = {
    SY_NONCE: nonce,
    SY_HOSTNAME: `sy-${o.kernel.key.replace(/\./g, '-')}`,
    SY_9P_CACHE: o.cache9p,
    SY_REPO: o.cwd,
    // 512 KiB is the largest msize virtio-9p takes on 5.10.
    SY_MSIZE: '512000',
  };
  return Object.entries(vars)
    .map(([k, v]) => `${k}=${shellQuote(v)}\n`)
    .join('');
}

export async function runVm(o: VmOptions): Promise<VmResult> {
  const nonce = randomBytes(6).toString('hex');
  const work = await mkdtemp(join(tmpdir(), 'sy-vm-'));
  workDirs.add(work);
  const started = Date.now();
  try {
    const runArchive = join(work, 'run.cpio.gz');
    await buildRunArchive({ 'etc/sy/config': configScript(o, nonce), 'etc/sy/run.sh': runScript(o) }, runArchive);
    // The kernel unpacks concatenated (compressed) cpio archives one after the other.
    const initrd = join(work, 'initrd.gz');
    const out = createWriteStream(initrd);
    await pipeline(createReadStream(o.baseInitrd), out, { end: false });
    await pipeline(createReadStream(runArchive), out);

    const modulesRoot = realpathSync(dirname(o.kernel.modulesDir));
    const append = [
      'console=ttyS0,115200',
      'panic=-1',
      'oops=panic',
      'quiet',
      'loglevel=4',
      'mitigations=off',
      'random.trust_cpu=on',
      'rdinit=/init',
      // TCG: the TSC looks unsynchronised at boot, and falling back to the HPET makes
      // every clock read an emulated MMIO access. The emulated TSC is in fact fine.
      ...(o.accel.startsWith('tcg') ? ['tsc=reliable'] : []),
      o.append,
    ]
      .filter(Boolean)
      .join(' ');
    const args = [
      '-accel',
      o.accel,
      ...(o.accel.startsWith('tcg') ? ['-cpu', 'max'] : ['-cpu', 'host']),
      '-m',
      String(o.memoryMiB),
      '-smp',
      String(o.cpus),
      '-nodefaults',
      '-no-reboot',
      '-display',
      'none',
      '-monitor',
      'none',
      '-serial',
      'stdio',
      '-kernel',
      o.kernel.vmlinuz,
      '-initrd',
      initrd,
      '-append',
      append,
      '-virtfs',
      'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
      '-virtfs',
      `local,path=${modulesRoot},mount_tag=kmod,security_model=none,readonly=on,multidevs=remap`,
      '-device',
      'virtio-rng-pci',
    ];
    return await new Promise<VmResult>((resolve) => {
      const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(qemu);
      const last: string[] = [];
      let rc: number | undefined;
      let setupError = '';
      let startAt: number | undefined;
      let endAt: number | undefined;
      let reason = '';
      let grace: NodeJS.Timeout | undefined;
      const startRe = new RegExp(`SY-START ${nonce}\\b`);
      const resultRe = new RegExp(`SY-RESULT ${nonce} rc=(\\d+)(.*)`);
      const line = (raw: string) => {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the VM console's ANSI escapes
        const l = raw.replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
        last.push(l);
        if (last.length > 50) last.shift();
        o.onLine(l);
        if (startAt === undefined && startRe.test(l)) startAt = Date.now();
        const m = resultRe.exec(l);
        if (m && rc === undefined) {
          rc = Number(m[1]);
          setupError = m[2]!.trim();
          endAt = Date.now();
          // /init powers off by itself; do not wait forever if that fails.
          grace = setTimeout(() => qemu.kill('SIGKILL'), 15_000);
        }
      };
      const splitter = (prefix: string) => {
        let buf = '';
        // A chunk can end inside a multi-byte character.
        const decoder = new StringDecoder('utf8');
        return {
          data(chunk: Buffer) {
            buf += decoder.write(chunk);
            let i: number;
            while ((i = buf.indexOf('\n')) >= 0) {
              line(prefix + buf.slice(0, i));
              buf = buf.slice(i + 1);
            }
          },
          end() {
            buf += decoder.end();
            if (buf) line(prefix + buf);
            buf = '';
          },
        };
      };
      const so = splitter('');
      const se = splitter('qemu: ');
      qemu.stdout!.on('data', so.data);
      qemu.stderr!.on('data', se.data);
      const timer = setTimeout(() => {
        reason = `timed out after ${Math.round(o.timeoutMs / 1000)} s`;
        qemu.kill('SIGKILL');
      }, o.timeoutMs);
      qemu.on('error', (e) => {
        reason = `cannot start qemu-system-x86_64: ${e.message}`;
      });
      qemu.on('close', (code, signal) => {
        so.end();
        se.end();
        clearTimeout(timer);
        if (grace) clearTimeout(grace);
        running.delete(qemu);
        const ok = rc === 0;
        if (!ok && !reason) {
          if (setupError) reason = `VM setup failed (${setupError})`;
          else if (rc !== undefined) reason = `command exited ${rc}`;
          else reason = `VM stopped without a result (qemu ${signal ?? `exit ${code}`}; kernel panic or crash?)`;
        }
        resolve({
          ok,
          rc,
          reason: ok ? '' : reason,
          bootSeconds: startAt === undefined ? undefined : (startAt - started) / 1000,
          commandSeconds: startAt === undefined || endAt === undefined ? undefined : (endAt - startAt) / 1000,
          totalSeconds: (Date.now() - started) / 1000,
          lastLines: last,
        });
      });
    });
  } finally {
    await rm(work, { recursive: true, force: true });
    workDirs.delete(work);
  }
}
