// Two projects. `unit`: pure tests, no root, run in parallel. `privileged`:
// tests that load the native addon and the BPF object into this kernel and
// build network namespaces; one file at a time, each in a forked process
// (the addon and the rig's processes must not share a worker).
//
// With CI set or SY_REQUIRE_PRIVILEGED=1 a skipped test fails the run
// (test/support/no-skip-reporter.ts): under CI nothing may skip.
//
// Vitest writes its cache (node_modules/.vite) and coverage reports
// (.cache/coverage) under the repository; SY_VITEST_DIR moves both there,
// for a checkout that is read-only (the kernel matrix's VMs). Load this file
// with `--configLoader native` there too: the default loader writes a
// bundled copy of it into node_modules/.vite-temp.
import { release } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';
import { kernelHasSctp } from './src/rig/sctp.ts';
import { kernelHasIpvs, requirePrivileged } from './test/support/requirements.ts';

const reporters = requirePrivileged() ? ['default', './test/support/no-skip-reporter.ts'] : ['default'];
const writeDir = process.env['SY_VITEST_DIR'];
// SCTP end-to-end files (*.sctp.test.ts) need a kernel with SCTP: always
// there in the kernel matrix's VMs (SY_VM, where they must run), often not
// on a host (this machine's kernel has none). Elsewhere they are left out of
// the run, with a note, rather than skipped (a skip fails a CI run).
const withSctp = process.env['SY_VM'] !== undefined || (process.getuid?.() === 0 && kernelHasSctp());
if (!withSctp) process.stderr.write('# note: *.sctp.test.ts left out: this kernel has no SCTP (npm run test:kernels runs them)\n');
// The socket hooks for host-network clients need SO_NETNS_COOKIE (5.14): on
// an older kernel (5.10 in the matrix) the daemon does not attach them (it
// logs why) and hostclients.test.ts has nothing to test; left out with a note.
const [major = 0, minor = 0] = release()
  .split('.')
  .map((n) => Number.parseInt(n, 10));
const withHostHooks = major > 5 || (major === 5 && minor >= 14);
if (!withHostHooks)
  process.stderr.write(
    `# note: hostclients.test.ts left out: kernel ${release()} has no SO_NETNS_COOKIE (5.14), so no socket hooks for host-network clients\n`,
  );
// IPVS files (test/privileged/ipvs-*.test.ts) like the SCTP ones: the VMs have
// IPVS, this machine's kernel does not (CONFIG_IP_VS off).
const withIpvs = process.env['SY_VM'] !== undefined || (process.getuid?.() === 0 && kernelHasIpvs());
if (!withIpvs) process.stderr.write('# note: ipvs-*.test.ts left out: this kernel has no IPVS (npm run test:kernels -- --files ... runs them)\n');

export default defineConfig({
  ...(writeDir ? { cacheDir: `${writeDir}/vite` } : {}),
  test: {
    reporters,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          pool: 'threads',
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'privileged',
          include: ['test/privileged/**/*.test.ts'],
          exclude: [
            ...configDefaults.exclude,
            ...(withSctp ? [] : ['test/privileged/**/*.sctp.test.ts']),
            ...(withHostHooks ? [] : ['test/privileged/hostclients.test.ts']),
            ...(withIpvs ? [] : ['test/privileged/**/ipvs-*.test.ts']),
          ],
          pool: 'forks',
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
    ],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/rig/**'],
      reporter: ['text', 'json-summary'],
      reportsDirectory: writeDir ? `${writeDir}/coverage` : '.cache/coverage',
    },
  },
});
