// The image cannot be built on these machines (no Docker engine), so this
// keeps the Dockerfile and the DaemonSet honest by reading them: every path
// the build stage copies from the repository exists, every path the runtime
// stage copies from the build stage is in the repository or is produced by
// `npm ci` (the BPF object, the addon), the build context (.dockerignore)
// holds exactly what is copied, the runtime image installs only packages
// something uses (and bpftool, for debugging), and the DaemonSet runs the
// image's entry point with flags `switchyard run` knows.

import { expect, test } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { RUN_FLAGS } from '../../src/config/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
/** Outputs of `npm ci` (package.json "install" -> build:bpf, build:native). */
const BUILD_OUTPUTS = ['bpf/build', 'native/build/Release'];

interface Copy {
  from: string | null;
  srcs: string[];
  dest: string;
}

function copies(text: string): Copy[] {
  const out: Copy[] = [];
  for (const line of text.split('\n')) {
    const m = /^COPY\s+(?:--from=(\S+)\s+)?(.+)$/.exec(line.trim());
    if (!m || m[2] === undefined) continue;
    const parts = m[2].trim().split(/\s+/);
    out.push({ from: m[1] ?? null, srcs: parts.slice(0, -1), dest: parts[parts.length - 1] ?? '' });
  }
  return out;
}

test('every COPY from the build context names a file or directory in the repository', () => {
  const local = copies(dockerfile).filter((c) => c.from === null);
  expect(local.length, 'the build stage copies the sources').toBeGreaterThanOrEqual(4);
  for (const c of local) for (const s of c.srcs) expect(existsSync(join(ROOT, s)), `Dockerfile copies ${s}, which does not exist`).toBe(true);
});

test('every COPY --from=build names something the build stage has: copied sources or npm ci outputs', () => {
  const local = copies(dockerfile).filter((c) => c.from === null);
  const inBuild = new Set(local.flatMap((c) => (c.srcs.length === 1 && c.dest.startsWith('./') && c.dest !== './' ? [c.dest.slice(2)] : c.srcs)));
  inBuild.add('node_modules');
  for (const o of BUILD_OUTPUTS) inBuild.add(o);
  const fromBuild = copies(dockerfile).filter((c) => c.from === 'build');
  expect(fromBuild.length).toBeGreaterThanOrEqual(4);
  for (const c of fromBuild) {
    for (const s of c.srcs) {
      const rel = s.replace(/^\/app\//, '');
      const ok = [...inBuild].some((p) => rel === p || rel.startsWith(`${p}/`));
      expect(ok, `runtime stage copies ${s}, which the build stage neither copies nor builds`).toBe(true);
    }
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts['build:bpf'] ?? '').toMatch(/make -C bpf/);
  expect(pkg.scripts['build:native'] ?? '').toMatch(/cmake-js .*--out native\/build/);
  expect(readFileSync(join(ROOT, 'bpf/Makefile'), 'utf8')).toMatch(/OUT := build\/switchyard\.bpf\.o/);
});

test('the entry point exists and the DaemonSet runs it (daemon and init container) with flags switchyard run accepts', () => {
  const entry = /^ENTRYPOINT \["\/app\/([^"]+)"\]/m.exec(dockerfile)?.[1];
  expect(entry).toBe('bin/switchyard');
  expect(existsSync(join(ROOT, entry!))).toBe(true);
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  type Container = { command: string[]; args: string[] };
  const ds = docs.find((d) => d['kind'] === 'DaemonSet') as { spec: { template: { spec: { containers: Container[]; initContainers: Container[] } } } };
  const all = [...ds.spec.template.spec.containers, ...ds.spec.template.spec.initContainers];
  expect(all).toHaveLength(2);
  const known = new Set(RUN_FLAGS.map((f) => f.name));
  for (const container of all) {
    expect(container.command).toStrictEqual(['/app/bin/switchyard']);
    expect(container.args[0]).toBe('run');
    const unknown = container.args
      .slice(1)
      .map((a) => a.replace(/^--/, '').split('=')[0] ?? '')
      .filter((n) => !known.has(n));
    expect(unknown).toStrictEqual([]);
  }
});

/** Whether .dockerignore keeps `path` out of the build context (last matching line wins, `!` re-includes). */
function ignored(rules: readonly string[], path: string): boolean {
  let out = false;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const pat = (negate ? rule.slice(1) : rule).replace(/\/$/, '');
    if (pat === '*' || path === pat || path.startsWith(`${pat}/`)) out = !negate;
  }
  return out;
}

test('.dockerignore: the context holds what the build copies and none of the local build outputs or tests', () => {
  const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const c of copies(dockerfile).filter((c) => c.from === null)) {
    for (const s of c.srcs) expect(ignored(rules, s), `${s} is copied but .dockerignore excludes it`).toBe(false);
  }
  for (const p of ['node_modules', '.git', '.cache', 'test', 'bench', 'deploy', 'native/build', 'bpf/build', 'native/build/Release/x.node']) {
    expect(ignored(rules, p), `${p} must stay out of the build context`).toBe(true);
  }
  expect(ignored(rules, 'native/src/addon.cc')).toBe(false);
});

test('the runtime image installs bpftool and only packages something in the image uses', () => {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const install = /apt-get install -y --no-install-recommends ([^\\&]+)/.exec(runtime)?.[1] ?? '';
  const pkgs = install.trim().split(/\s+/);
  expect(pkgs).toContain('bpftool');
  const cmake = readFileSync(join(ROOT, 'native/CMakeLists.txt'), 'utf8');
  const rig = readFileSync(join(ROOT, 'src/rig/cluster.ts'), 'utf8');
  const kubeProxy = readFileSync(join(ROOT, 'src/cli/kube-proxy-cleanup.ts'), 'utf8');
  const why: Record<string, boolean> = {
    libbpf1: /LIBBPF_LIBRARY NAMES libbpf\.so/.test(cmake), // the addon links libbpf (libelf and zlib come with it)
    iproute2: /run\(\['ip'/.test(rig), // `switchyard demo` builds its namespaces with `ip` (src/rig)
    bpftool: true, // for operators (the issue asks for it)
    // cleanup --kube-proxy runs kube-proxy's tools: iptables-save/-restore (both backends), nft, ipset, ipvsadm
    iptables: /-save`/.test(kubeProxy) && /-restore`/.test(kubeProxy),
    nftables: /'nft', 'delete', 'table'/.test(kubeProxy),
    ipset: /'ipset', 'destroy'/.test(kubeProxy),
    ipvsadm: /'ipvsadm'/.test(kubeProxy),
  };
  for (const p of pkgs) expect(why[p], `runtime package ${p}: nothing in the image uses it`).toBe(true);
});
