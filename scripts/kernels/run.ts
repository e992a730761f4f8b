// Kernel-matrix runner (DESIGN.md §8): `npm run test:kernels`.
// Owns: the command line, the prerequisites check, the order of work (fetch every
// kernel, build its initramfs, boot it and run the command) and the summary; exits 0
// only if the command passed on every selected kernel.
//
//   node scripts/kernels/run.ts [options] [-- command...]
//
// See usage() below, or `node scripts/kernels/run.ts --help`.

import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Kernel } from './fetch.ts';
import { fetchKernel } from './fetch.ts';
import { buildBaseInitrd, MODULES } from './initramfs.ts';
import type { ModuleWant } from './initramfs.ts';
import { DEFAULT_KERNELS, findKernel, KERNELS } from './kernels.ts';
import type { KernelSpec } from './kernels.ts';
import { buildSctpHelper, PREBUILT_DIR } from '../../src/rig/sctp.ts';
import type { VmResult } from './vm.ts';
import { runVm, running, shellQuote, workDirs } from './vm.ts';

const REPO = resolve(import.meta.dirname, '..', '..');
/**
 * Vitest in the VM, where the repository is read-only: the config is loaded
 * natively (the default loader writes a bundled copy into node_modules), and
 * vmEnv points vitest's cache at /tmp (SY_VITEST_DIR).
 */
const VITEST = 'vitest run --configLoader native --project privileged';
/**
 * The dataplane's end-to-end tests on each kernel: the addon against the
 * kernel (maps and tc), ClusterIP traffic (pod interfaces attached from link
 * events included), the real-node regression (item 0 of issue 7),
 * north-south traffic on both families, SCTP, the IPVS client against
 * ipvsadm (the VMs have SCTP and IPVS; this machine's kernel has neither),
 * and host-network clients through the socket hooks (the addon's cgroup
 * links; hostclients.test.ts is left out by vitest.config.ts on kernels
 * before 5.14, with a note).
 * links.test.ts (the addon's link events alone) is left to `--files`: on
 * 5.10 under TCG the kernel's clean-up of its flood of veths and namespaces
 * stalled the next file's daemons for minutes (one run, 2026-12-03).
 */
const DEFAULT_COMMAND = `${VITEST} ${[
  'native.test.ts',
  'native-cgroup.test.ts',
  'clusterip.test.ts',
  'realnode.test.ts',
  'northsouth.test.ts',
  'northsouth.sctp.test.ts',
  'hostclients.test.ts',
  'ipvs-client.test.ts',
]
  .map((f) => `test/privileged/${f}`)
  .join(' ')}`;
/** --all: every privileged test (~25 min per kernel under TCG on 2 cores). */
const ALL_COMMAND = VITEST;

function usage(): string {
  return `usage: node scripts/kernels/run.ts [options] [-- command...]

Boots each selected Debian kernel under qemu with the host root shared read-only
over 9p and runs the command inside it as root, in ${REPO}.

options:
  --kernels LIST   comma-separated, from: ${KERNELS.map((k) => k.key).join(', ')} (default ${DEFAULT_KERNELS.join(',')};
                   env SY_KERNELS)
  --timeout SEC    per kernel (default 1200; env SY_KERNEL_TIMEOUT)
  --memory MIB     VM memory (default 2048; env SY_KERNEL_MEMORY)
  --cpus N         VM CPUs (default 2; env SY_KERNEL_CPUS)
  --jobs N         VMs run at the same time (default 1; env SY_KERNEL_JOBS)
  --refresh        ask the archive for newer kernels instead of using the cached ones
  --fetch-only     download and prepare the kernels, boot nothing
  --all            run every privileged test (timeout default 3600 s per kernel)
  --files LIST     run these test files (comma-separated) with vitest's privileged project
  -h, --help

command: the arguments after --, else env SY_KERNEL_TEST_CMD (a shell command line),
else: ${DEFAULT_COMMAND}
(--all: ${ALL_COMMAND})

Inside the VM: PATH=/run/sy/bin:<repo>/node_modules/.bin:<usual>; HOME=TMPDIR=/tmp; CI=true and
SY_REQUIRE_PRIVILEGED=1 (a skipped test fails the run); SY_VITEST_DIR=/tmp/vitest (vitest's cache);
SY_VM=1, SY_KERNEL=<key>, SY_KERNEL_RELEASE=<uname -r>; the host's SY_* variables and
those named in SY_KERNEL_PASS_ENV (comma-separated) are passed on. Only /tmp, /run,
/var/tmp, /dev/shm, /sys/fs/bpf and /sys/fs/cgroup are writable. 'modprobe' (a wrapper
in /run/sy/bin) and the kernel's module auto-loading see the whole module tree.

other env: SY_KERNEL_CACHE (default <repo>/.cache/kernels), SY_KERNEL_MODULES (extra
modules to load at boot, comma-separated), SY_KERNEL_APPEND (extra kernel command
line, e.g. module_blacklist=cls_bpf, which /init honours too), SY_KERNEL_9P_CACHE
(9p cache mode of the host root, default loose: it is read only and mounted for one
run only; 'none' makes node start 5-10x slower), SY_KERNEL_ACCEL (default tcg),
SY_KERNEL_MIRROR / SY_KERNEL_SECURITY_MIRROR (default: taken from /etc/apt).
`;
}

function fail(msg: string): never {
  process.stderr.write(`kernels: ${msg}\n`);
  process.exit(2);
}

function intOption(v: string | undefined, env: string, dflt: number, name: string): number {
  const s = v ?? process.env[env];
  if (s === undefined || s === '') return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive integer, got '${s}'`);
  return n;
}

function checkPrerequisites(): void {
  const tools: [string, string][] = [
    ['qemu-system-x86_64', 'qemu-system-x86'],
    ['cpio', 'cpio'],
    ['depmod', 'kmod'],
    ['xz', 'xz-utils'],
    ['zstd', 'zstd'],
    ['dpkg-deb', 'dpkg'],
    ['apt-get', 'apt'],
  ];
  const missing = tools.filter(([bin]) => {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    fail(`missing ${missing.map(([b]) => b).join(', ')}: apt-get install ${missing.map(([, p]) => p).join(' ')}`);
  }
}

function vmEnv(spec: KernelSpec, kernel: Kernel): Record<string, string> {
  const env: Record<string, string> = {};
  const pass = new Set((process.env.SY_KERNEL_PASS_ENV ?? '').split(',').filter(Boolean));
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (k.startsWith('SY_') || pass.has(k)) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) env[k] = v;
  }
  Object.assign(env, {
    PATH: `/run/sy/bin:${join(REPO, 'node_modules', '.bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: '/tmp',
    TMPDIR: '/tmp',
    CI: 'true',
    SY_REQUIRE_PRIVILEGED: '1',
    SY_VITEST_DIR: '/tmp/vitest',
    LANG: 'C.UTF-8',
    SY_VM: '1',
    SY_KERNEL: spec.key,
    SY_KERNEL_RELEASE: kernel.release,
  });
  return env;
}

const fmt = (s: number | undefined) => (s === undefined ? '-' : `${s.toFixed(1)}s`);

async function main(): Promise<number> {
  const options = {
    kernels: { type: 'string' },
    timeout: { type: 'string' },
    memory: { type: 'string' },
    cpus: { type: 'string' },
    jobs: { type: 'string' },
    refresh: { type: 'boolean', default: false },
    'fetch-only': { type: 'boolean', default: false },
    all: { type: 'boolean', default: false },
    files: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  } as const;
  let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; options: typeof options }>>;
  try {
    parsed = parseArgs({ allowPositionals: true, options });
  } catch (e) {
    fail(`${(e as Error).message}\n(the command to run goes after '--')\n\n${usage()}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(usage());
    return 0;
  }
  const keys = (values.kernels ?? process.env.SY_KERNELS ?? DEFAULT_KERNELS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  let specs: KernelSpec[];
  try {
    specs = [...new Set(keys.map(findKernel))];
  } catch (e) {
    fail((e as Error).message);
  }
  const timeoutSec = intOption(values.timeout, 'SY_KERNEL_TIMEOUT', values.all ? 3600 : 1200, '--timeout');
  const memoryMiB = intOption(values.memory, 'SY_KERNEL_MEMORY', 2048, '--memory');
  const vcpus = intOption(values.cpus, 'SY_KERNEL_CPUS', Math.min(2, cpus().length), '--cpus');
  const jobs = intOption(values.jobs, 'SY_KERNEL_JOBS', 1, '--jobs');
  const files = (values.files ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const command =
    positionals.length > 0
      ? positionals.map(shellQuote).join(' ')
      : files.length > 0
        ? `${VITEST} ${files.map(shellQuote).join(' ')}`
        : process.env.SY_KERNEL_TEST_CMD || (values.all ? ALL_COMMAND : DEFAULT_COMMAND);
  const cacheDir = resolve(process.env.SY_KERNEL_CACHE || join(REPO, '.cache', 'kernels'));
  const extra: ModuleWant[] = (process.env.SY_KERNEL_MODULES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((n) => ({ names: [n] }));
  const wants = [...MODULES, ...extra];
  checkPrerequisites();

  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  function stop(sig: string) {
    for (const q of running) q.kill('SIGKILL');
    for (const d of workDirs) rmSync(d, { recursive: true, force: true });
    process.stderr.write(`kernels: ${sig}, stopped\n`);
    process.exit(130);
  }

  // 1. Fetch and prepare every kernel first (the network part), one after the other.
  const prepared: { spec: KernelSpec; kernel: Kernel; initrd: string }[] = [];
  const results = new Map<string, VmResult | { ok: false; reason: string }>();
  for (const spec of specs) {
    const log = (l: string) => process.stdout.write(`[${spec.key}] ${l}\n`);
    try {
      const t0 = Date.now();
      const kernel = await fetchKernel(spec, { cacheDir, refresh: values.refresh, log });
      const base = await buildBaseInitrd(kernel, wants, cacheDir);
      log(
        `kernel ${kernel.release} (${kernel.packages.join(' ')}), ${base.plan.load.length} modules in initramfs, ` +
          `built in: ${base.plan.builtin.join(' ') || '-'}` +
          (base.plan.absent.length ? `, absent: ${base.plan.absent.join(' ')}` : '') +
          ` [${((Date.now() - t0) / 1000).toFixed(1)}s]`,
      );
      prepared.push({ spec, kernel, initrd: base.path });
    } catch (e) {
      log(`preparing the kernel failed: ${(e as Error).message}`);
      results.set(spec.key, { ok: false, reason: `prepare failed: ${(e as Error).message}` });
    }
  }

  // 2. Boot them, `jobs` at a time. The rig's SCTP helper is compiled here
  // first: under TCG that takes minutes; the VMs find it in .cache/rig.
  if (!values['fetch-only']) {
    try {
      process.stdout.write(`kernels: rig SCTP helper ${buildSctpHelper(PREBUILT_DIR)}\n`);
    } catch (e) {
      process.stdout.write(`kernels: building the rig's SCTP helper failed (the VMs will try): ${(e as Error).message}\n`);
    }
    process.stdout.write(`kernels: running in ${REPO}: ${command}\n`);
    const queue = [...prepared];
    const worker = async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        const { spec, kernel, initrd } = p;
        const prefix = `[${spec.key}] `;
        process.stdout.write(`${prefix}booting ${kernel.release} (timeout ${timeoutSec}s)\n`);
        const r = await runVm({
          kernel,
          baseInitrd: initrd,
          command,
          cwd: REPO,
          env: vmEnv(spec, kernel),
          timeoutMs: timeoutSec * 1000,
          memoryMiB,
          cpus: vcpus,
          append: process.env.SY_KERNEL_APPEND ?? '',
          cache9p: process.env.SY_KERNEL_9P_CACHE || 'loose',
          accel: process.env.SY_KERNEL_ACCEL || 'tcg',
          onLine: (l) => process.stdout.write(`${prefix}${l}\n`),
        });
        if (r.ok) {
          process.stdout.write(`${prefix}PASS (boot ${fmt(r.bootSeconds)}, command ${fmt(r.commandSeconds)})\n`);
        } else {
          // A command that ran and failed has just been seen whole; anything else (no
          // result: timeout, panic, setup failure) or interleaved output gets the tail again.
          const showTail = r.rc === undefined || r.reason.startsWith('VM setup') || jobs > 1;
          process.stdout.write(`${prefix}FAIL: ${r.reason}${showTail ? '; last console lines:' : ''}\n`);
          if (showTail) for (const l of r.lastLines) process.stdout.write(`${prefix}| ${l}\n`);
        }
        results.set(spec.key, r);
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, prepared.length)) }, worker));
  }

  // 3. Summary.
  process.stdout.write('\nkernel  release                     boot     command  total    result\n');
  let passed = 0;
  let failed = 0;
  for (const spec of specs) {
    const p = prepared.find((x) => x.spec === spec);
    const r = results.get(spec.key);
    const release = (p?.kernel.release ?? '?').padEnd(27);
    if (!r) {
      process.stdout.write(`${spec.key.padEnd(7)} ${release} prepared\n`);
      passed++;
      continue;
    }
    const v = 'totalSeconds' in r ? r : undefined;
    const res = r.ok ? 'PASS' : `FAIL (${r.reason})`;
    process.stdout.write(
      `${spec.key.padEnd(7)} ${release} ${fmt(v?.bootSeconds).padEnd(8)} ${fmt(v?.commandSeconds).padEnd(8)} ` + `${fmt(v?.totalSeconds).padEnd(8)} ${res}\n`,
    );
    if (r.ok) passed++;
    else failed++;
  }
  process.stdout.write(`kernels: ${passed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
