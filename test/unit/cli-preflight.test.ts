// Fail fast, fail clear: each pre-flight check turns an expected problem
// into one PreflightError line that names it and the fix, from injected
// inputs (no root needed); and the CLI prints exactly that line, exit 1, no
// stack trace, before touching the kernel.

import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { causeChain, checkBpffs, checkKernel, checkPrivileges, MIN_KERNEL } from '../../src/cli/preflight.ts';
import { REPO } from '../support/requirements.ts';

const status = (capEff: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

describe('checkPrivileges', () => {
  test('root (all capabilities), or NET_ADMIN with BPF or SYS_ADMIN, passes', () => {
    expect(() => checkPrivileges(status('000001ffffffffff'))).not.toThrow();
    const netAdminBpf = ((1n << 12n) | (1n << 39n)).toString(16).padStart(16, '0');
    expect(() => checkPrivileges(status(netAdminBpf))).not.toThrow();
    const netAdminSysAdmin = ((1n << 12n) | (1n << 21n)).toString(16).padStart(16, '0');
    expect(() => checkPrivileges(status(netAdminSysAdmin))).not.toThrow();
  });

  test('a missing capability is named with the fix', () => {
    expect(() => checkPrivileges(status('0000000000000000'))).toThrow(
      'privileges: missing CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN); run as root, or give the container these capabilities (deploy/daemonset.yaml shows the set)',
    );
    const bpfOnly = (1n << 39n).toString(16).padStart(16, '0');
    expect(() => checkPrivileges(status(bpfOnly))).toThrow(/^privileges: missing CAP_NET_ADMIN;/);
    expect(() => checkPrivileges('Name:\tx\n')).toThrow(/CapEff/);
  });
});

describe('checkKernel', () => {
  const files = { addon: '/a.node', object: '/o.bpf.o' };
  test(`${MIN_KERNEL.join('.')} and later pass; older kernels, a missing object or addon fail naming the fix`, () => {
    expect(() => checkKernel('5.10.0-30-amd64', files, () => true)).not.toThrow();
    expect(() => checkKernel('6.12.1', files, () => true)).not.toThrow();
    expect(() => checkKernel('5.4.0-150-generic', files, () => true)).toThrow(/^kernel: 5\.4\.0-150-generic is older than 5\.10, .*upgrade the kernel/);
    expect(() => checkKernel('6.1.0', files, (p) => p !== files.object)).toThrow(
      'kernel: the BPF object /o.bpf.o is missing; build it (npm run build:bpf) or give --bpf-object',
    );
    expect(() => checkKernel('6.1.0', files, (p) => p !== files.addon)).toThrow(/native addon \/a\.node is missing; build it/);
  });
});

describe('checkBpffs', () => {
  test('reports whether it mounted; a refusal names the mount to make', () => {
    expect(checkBpffs('/sys/fs/bpf/sy', () => true)).toEqual({ mounted: true });
    const eperm = Object.assign(new Error('Operation not permitted'), { code: 'EPERM', errno: 1, syscall: 'mount' });
    expect(() =>
      checkBpffs('/sys/fs/bpf/sy', () => {
        throw eperm;
      }),
    ).toThrow(/^bpffs: cannot prepare the pin directory \/sys\/fs\/bpf\/sy: Operation not permitted; mount it on the host \(mount -t bpf bpf \/sys\/fs\/bpf\)/);
  });
});

test('causeChain: the messages down the cause chain, without repeats', () => {
  const inner = new Error('connect ECONNREFUSED 10.0.0.1:6443');
  expect(causeChain(new Error('fetch failed', { cause: inner }))).toBe('fetch failed: connect ECONNREFUSED 10.0.0.1:6443');
  expect(causeChain(new Error('a: b', { cause: new Error('b') }))).toBe('a: b');
  expect(causeChain('text')).toBe('text');
});

describe('the CLI', () => {
  const run = (...args: string[]) => spawnSync(`${REPO}node_modules/.bin/node`, [`${REPO}src/main.ts`, 'run', ...args], { encoding: 'utf8', timeout: 60_000 });

  test('a failed check is one line on stderr and exit 1, before anything else happens', () => {
    const r = run('--bpf-object=/nonexistent/switchyard.bpf.o', '--manifests=/nonexistent', '--healthz-bind-address=', '--metrics-bind-address=');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'switchyard run: kernel: the BPF object /nonexistent/switchyard.bpf.o is missing; build it (npm run build:bpf) or give --bpf-object\n',
    );
    expect(r.stdout).toBe('');
  });

  test('a bad kubeconfig is one line and exit 1', () => {
    // The kubeconfig is checked first, so nothing else runs (no bpffs is mounted).
    const r = run('--kubeconfig=/nonexistent/kubeconfig', '--bpf-object=/nonexistent/o');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "switchyard run: --kubeconfig: cannot load /nonexistent/kubeconfig: ENOENT: no such file or directory, open '/nonexistent/kubeconfig'\n",
    );
  });
});
