// What a privileged or BTF test needs, and what happens when it is missing.
// Without root (or clang, bpftool, the built object) such a test skips and
// says why; with CI set or SY_REQUIRE_PRIVILEGED=1 it fails instead, naming
// what was missing, so a CI run can never pass by skipping.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kernelHasSctp } from '../../src/rig/sctp.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BPF_OBJECT = `${REPO}bpf/build/switchyard.bpf.o`;
/** The test-only programs of the BPF library headers (bpf/test/lib_test.bpf.c). */
export const BPF_LIB_TEST_OBJECT = `${REPO}bpf/build/lib_test.bpf.o`;
export const NATIVE_ADDON = `${REPO}native/build/Release/switchyard_native.node`;

/** Whether skipping is forbidden in this run. */
export function requirePrivileged(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env['CI'];
  return (ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0') || env['SY_REQUIRE_PRIVILEGED'] === '1';
}

export type Need =
  | 'root'
  | 'clang'
  | 'bpftool'
  | 'bpf-object'
  | 'bpf-lib-test-object'
  | 'native-addon'
  | 'ip'
  | 'nft'
  | 'cc'
  | 'sctp'
  | 'promtool'
  | 'iptables'
  | 'ipset'
  | 'ipvs'
  | 'ipvsadm';

function haveCommand(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const PROBES: Record<Need, () => string | null> = {
  root: () => (process.getuid?.() === 0 ? null : 'root (run as uid 0: the test loads BPF programs and builds network namespaces)'),
  clang: () => (haveCommand('clang', ['--version']) ? null : 'clang (scripts/setup.sh installs it)'),
  bpftool: () => (haveCommand('bpftool', ['version']) ? null : 'bpftool (scripts/setup.sh installs it)'),
  ip: () => (haveCommand('ip', ['-V']) ? null : 'ip from iproute2 (scripts/setup.sh installs it)'),
  nft: () => (haveCommand('nft', ['--version']) ? null : "nft from nftables (scripts/setup.sh installs it; the rig's nodes drop conntrack INVALID with it)"),
  iptables: () =>
    ['iptables-nft-save', 'ip6tables-nft-restore', 'iptables-legacy-save'].every((c) => haveCommand(c, ['--version']))
      ? null
      : 'iptables with both backends (iptables-nft-*, iptables-legacy-*: scripts/setup.sh installs the iptables package)',
  ipset: () => (haveCommand('ipset', ['version']) ? null : 'ipset (scripts/setup.sh installs it)'),
  cc: () => (['cc', 'gcc', 'clang'].some((c) => haveCommand(c, ['--version'])) ? null : "a C compiler (cc, gcc or clang) for the rig's SCTP helper"),
  // This is a kernel property: the kernel-matrix VMs have SCTP (a module); some hosts do not.
  sctp: () => (kernelHasSctp() ? null : 'a kernel with SCTP (the kernel-matrix VMs have it: npm run test:kernels)'),
  ipvs: () => (kernelHasIpvs() ? null : 'a kernel with IPVS (/proc/net/ip_vs; the kernel-matrix VMs have it: npm run test:kernels)'),
  ipvsadm: () => (haveCommand('ipvsadm', ['--version']) ? null : 'ipvsadm (scripts/setup.sh installs it)'),
  promtool: () => (haveCommand('promtool', ['--version']) ? null : "promtool from Debian's prometheus package (scripts/setup.sh installs it)"),
  'bpf-object': () => (existsSync(BPF_OBJECT) ? null : `the built BPF object ${BPF_OBJECT} (npm run build:bpf)`),
  'bpf-lib-test-object': () => (existsSync(BPF_LIB_TEST_OBJECT) ? null : `the built BPF library test object ${BPF_LIB_TEST_OBJECT} (npm run build:bpf)`),
  'native-addon': () => (existsSync(NATIVE_ADDON) ? null : `the native addon ${NATIVE_ADDON} (npm run build:native)`),
};

/**
 * Whether this kernel has IPVS (/proc/net/ip_vs), loading ip_vs first if it
 * can. A kernel property: the kernel-matrix VMs have it (initramfs.ts loads
 * it), this machine's kernel does not (CONFIG_IP_VS off).
 */
export function kernelHasIpvs(): boolean {
  if (existsSync('/proc/net/ip_vs')) return true;
  try {
    execFileSync('modprobe', ['-q', 'ip_vs'], { stdio: 'ignore' });
  } catch {
    // no module, or no modprobe: the check below answers
  }
  return existsSync('/proc/net/ip_vs');
}

/** Every need that this machine lacks, described. */
export function missing(needs: readonly Need[]): string[] {
  return needs.map((n) => PROBES[n]()).filter((m): m is string => m !== null);
}

/**
 * Call at the top of a test file. Returns false when everything is there;
 * otherwise prints why and returns the reason to skip with
 * (`describe.skipIf(reason)`), or throws (failing the file) when skipping
 * is forbidden.
 */
export function needs(what: string, list: readonly Need[]): string | false {
  const gone = missing(list);
  if (gone.length === 0) return false;
  const reason = `${what} needs ${gone.join(', ')}`;
  if (requirePrivileged()) {
    throw new Error(`${reason}; CI/SY_REQUIRE_PRIVILEGED=1 forbids skipping it`);
  }
  console.log(`# skipped: ${reason}`);
  return reason;
}
