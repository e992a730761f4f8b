// Kernel download for the kernel-matrix runner.
// Owns: the private apt configuration under <cache>/apt/<suite>/ (own sources.list,
// lists, archives and dpkg status; the system's apt setup is only read, to learn the
// mirror), picking the newest image package of a kernel line, `apt-get download`,
// extraction with `dpkg-deb -x` and `depmod -b`. Results are cached under <cache>:
// once a kernel has been resolved and extracted, later runs never touch the network
// unless asked to (`--refresh`).

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KernelSpec } from './kernels.ts';
import { compareDebianVersions, exactPackageRegex } from './kernels.ts';

const run = promisify(execFile);

export interface Kernel {
  key: string;
  /** Kernel release, as `uname -r` prints it inside the VM. */
  release: string;
  /** Debian source version, e.g. 5.10.262-1. */
  version: string;
  /** Packages downloaded, as name=version. */
  packages: string[];
  /** Root of the extracted packages. */
  root: string;
  vmlinuz: string;
  /** <root>/lib/modules/<release> with a fresh modules.dep (symlinks resolved). */
  modulesDir: string;
}

interface Resolved {
  key: string;
  release: string;
  version: string;
  packages: string[];
}

export interface FetchOptions {
  cacheDir: string;
  refresh: boolean;
  log: (line: string) => void;
}

interface Mirrors {
  main: string;
  security: string;
}

/** Learn the Debian mirror from the system's apt sources (read only). Env overrides win. */
export function systemMirrors(): Mirrors {
  let main = process.env.SY_KERNEL_MIRROR ?? '';
  let security = process.env.SY_KERNEL_SECURITY_MIRROR ?? '';
  const uris: string[] = [];
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  if (existsSync('/etc/apt/sources.list.d')) {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join('/etc/apt/sources.list.d', f));
    }
  }
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        if (/^Enabled:\s*no\s*$/im.test(stanza)) continue;
        if (!/^Types:.*\bdeb\b/im.test(stanza)) continue;
        const m = /^URIs:\s*(.+)$/im.exec(stanza);
        if (m?.[1]) uris.push(...m[1].trim().split(/\s+/));
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
        if (m?.[1]) uris.push(m[1]);
      }
    }
  }
  const clean = (u: string) => u.replace(/\/+$/, '');
  if (!main) main = uris.map(clean).find((u) => /\/debian$/.test(u)) ?? '';
  if (!security) security = uris.map(clean).find((u) => /\/debian-security$/.test(u)) ?? '';
  if (!main && security) main = security.replace(/\/debian-security$/, '/debian');
  if (!security && main) security = main.replace(/\/debian$/, '/debian-security');
  if (!main) {
    throw new Error('no Debian mirror found in /etc/apt/sources.list{,.d}; set SY_KERNEL_MIRROR (and SY_KERNEL_SECURITY_MIRROR)');
  }
  return { main, security };
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

class PrivateApt {
  readonly dir: string;
  readonly spec: KernelSpec;
  constructor(cacheDir: string, spec: KernelSpec) {
    this.dir = join(cacheDir, 'apt', spec.suite);
    this.spec = spec;
  }

  options(): string[] {
    const d = this.dir;
    const o: Record<string, string> = {
      'Dir::Etc::sourcelist': join(d, 'sources.list'),
      'Dir::Etc::sourceparts': join(d, 'sources.list.d'),
      'Dir::Etc::preferences': join(d, 'preferences'),
      'Dir::Etc::preferencesparts': join(d, 'preferences.d'),
      'Dir::State': join(d, 'state'),
      'Dir::State::Lists': join(d, 'lists'),
      'Dir::State::status': join(d, 'state', 'status'),
      'Dir::Cache': join(d, 'cache'),
      'Dir::Cache::archives': join(d, 'cache', 'archives'),
      'Dir::Log': join(d, 'log'),
      'APT::Get::List-Cleanup': '0',
      'APT::Architecture': 'amd64',
      'APT::Architectures': 'amd64',
      'APT::Sandbox::User': 'root',
      'Acquire::Languages': 'none',
      'Acquire::Check-Valid-Until': 'false',
      'Acquire::Retries': '3',
    };
    return Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  }

  async setup(): Promise<void> {
    const d = this.dir;
    for (const sub of ['sources.list.d', 'preferences.d', 'state', 'lists/partial', 'cache/archives/partial', 'log']) {
      await mkdir(join(d, sub), { recursive: true });
    }
    if (!existsSync(join(d, 'state', 'status'))) await writeFile(join(d, 'state', 'status'), '');
    const mirrors = systemMirrors();
    const opts = existsSync(KEYRING) ? `[arch=amd64 signed-by=${KEYRING}]` : '[arch=amd64 trusted=yes]';
    const lines = this.spec.suites.map((s) => `deb ${opts} ${s.endsWith('-security') ? mirrors.security : mirrors.main} ${s} main`);
    await writeFile(join(d, 'sources.list'), `${lines.join('\n')}\n`);
  }

  async update(): Promise<void> {
    await run('apt-get', [...this.options(), '-q', 'update'], { maxBuffer: 64 << 20 });
  }

  async cache(args: string[]): Promise<string> {
    const { stdout } = await run('apt-cache', [...this.options(), ...args], { maxBuffer: 256 << 20 });
    return stdout;
  }

  async download(names: string[], into: string): Promise<void> {
    await run('apt-get', [...this.options(), '-q', 'download', ...names.map(exactPackageRegex)], {
      cwd: into,
      maxBuffer: 64 << 20,
    });
  }
}

function parseStanzas(text: string): Map<string, string>[] {
  return text
    .split(/\n\s*\n/)
    .filter((s) => s.trim())
    .map((s) => {
      const m = new Map<string, string>();
      for (const line of s.split('\n')) {
        const i = line.indexOf(':');
        if (i > 0 && !line.startsWith(' ')) m.set(line.slice(0, i), line.slice(i + 1).trim());
      }
      return m;
    });
}

/** Ask apt which release of this kernel line is the newest. */
async function resolveNewest(apt: PrivateApt, spec: KernelSpec): Promise<Resolved> {
  const found = await apt.cache(['search', '--names-only', spec.searchRegex]);
  const names = found
    .split('\n')
    .map((l) => l.split(' - ')[0]!.trim())
    .filter((n) => spec.imageName.test(n));
  if (names.length === 0) throw new Error(`no package matching ${spec.imageName} in ${spec.suites.join(', ')}`);
  const shown = parseStanzas(await apt.cache(['show', ...names]));
  let best: { name: string; version: string } | undefined;
  for (const s of shown) {
    const name = s.get('Package');
    const version = s.get('Version');
    if (!name || !version || !spec.imageName.test(name)) continue;
    if (!best || compareDebianVersions(version, best.version) > 0) best = { name, version };
  }
  if (!best) throw new Error(`apt-cache show gave no versions for ${names.join(' ')}`);
  const release = spec.imageName.exec(best.name)![1]!;
  const packages = spec.packages(release);
  const versions = parseStanzas(await apt.cache(['show', '--no-all-versions', ...packages]));
  const pinned = packages.map((p) => {
    const v = versions.find((s) => s.get('Package') === p)?.get('Version');
    if (!v) throw new Error(`package ${p} not found in ${spec.suites.join(', ')}`);
    return `${p}=${v}`;
  });
  return { key: spec.key, release, version: best.version, packages: pinned };
}

function kernelDir(cacheDir: string, release: string): string {
  return join(cacheDir, 'linux', release);
}

/** Where the extracted packages keep the kernel image and the modules. */
function locate(root: string, release: string): { vmlinuz: string; modulesDir: string } {
  const vmlinuz = [
    join(root, 'boot', `vmlinuz-${release}`),
    join(root, 'usr', 'lib', 'modules', release, 'vmlinuz'),
    join(root, 'lib', 'modules', release, 'vmlinuz'),
  ].find((p) => existsSync(p));
  const modulesDir = [join(root, 'usr', 'lib', 'modules', release), join(root, 'lib', 'modules', release)].find((p) => existsSync(join(p, 'modules.dep')));
  if (!vmlinuz || !modulesDir) throw new Error(`incomplete kernel tree under ${root}`);
  return { vmlinuz, modulesDir };
}

async function downloadAndExtract(apt: PrivateApt, r: Resolved, opts: FetchOptions): Promise<void> {
  const dir = kernelDir(opts.cacheDir, r.release);
  const debs = join(dir, 'debs');
  await mkdir(debs, { recursive: true });
  const names = r.packages.map((p) => p.split('=')[0]!);
  const have = () => readdirSync(debs).filter((f) => f.endsWith('.deb'));
  const missing = names.filter((n) => !have().some((f) => f.startsWith(`${n}_`)));
  if (missing.length) {
    opts.log(`downloading ${missing.join(' ')}`);
    await apt.download(missing, debs);
  }
  const files = have();
  for (const n of names) {
    if (!files.some((f) => f.startsWith(`${n}_`))) throw new Error(`apt-get download did not fetch ${n}`);
  }
  const tmp = join(dir, `root.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  for (const f of files.sort()) {
    opts.log(`extracting ${f}`);
    await run('dpkg-deb', ['-x', join(debs, f), tmp]);
  }
  // depmod -b looks in <base>/lib/modules; newer packages put modules in usr/lib/modules.
  if (!existsSync(join(tmp, 'lib')) && existsSync(join(tmp, 'usr', 'lib', 'modules'))) {
    await symlink('usr/lib', join(tmp, 'lib'));
  }
  // The packages ship no modules.dep (the postinst would make it).
  await run('depmod', ['-b', tmp, r.release]);
  locate(tmp, r.release);
  await rm(join(dir, 'root'), { recursive: true, force: true });
  await rename(tmp, join(dir, 'root'));
  // The .debs are no longer needed once extracted and make up most of the cache's size.
  for (const f of await readdir(debs)) await rm(join(debs, f), { force: true });
}

/** Resolve, download and extract one kernel line; cached after the first success. */
export async function fetchKernel(spec: KernelSpec, opts: FetchOptions): Promise<Kernel> {
  const resolvedFile = join(opts.cacheDir, 'resolved', `${spec.key}.json`);
  let r: Resolved | undefined;
  if (!opts.refresh && existsSync(resolvedFile)) {
    r = JSON.parse(await readFile(resolvedFile, 'utf8')) as Resolved;
  }
  const apt = new PrivateApt(opts.cacheDir, spec);
  let replaced: string | undefined;
  if (!r) {
    const previous = existsSync(resolvedFile) ? (JSON.parse(await readFile(resolvedFile, 'utf8')) as Resolved).release : undefined;
    await apt.setup();
    opts.log(`apt-get update (${spec.suites.join(', ')})`);
    await apt.update();
    r = await resolveNewest(apt, spec);
    opts.log(`newest: ${r.packages.join(' ')}`);
    if (previous && previous !== r.release) replaced = previous;
  }
  const root = join(kernelDir(opts.cacheDir, r.release), 'root');
  if (!existsSync(root)) {
    await apt.setup();
    if (!readdirSync(join(apt.dir, 'lists')).some((f) => f.endsWith('_Packages'))) {
      await apt.update();
    }
    await downloadAndExtract(apt, r, opts);
  }
  if (replaced) {
    opts.log(`removing the older ${replaced}`);
    await rm(kernelDir(opts.cacheDir, replaced), { recursive: true, force: true });
  }
  await mkdir(join(opts.cacheDir, 'resolved'), { recursive: true });
  await writeFile(`${resolvedFile}.tmp-${process.pid}`, `${JSON.stringify(r, null, 2)}\n`);
  await rename(`${resolvedFile}.tmp-${process.pid}`, resolvedFile);
  const { vmlinuz, modulesDir } = locate(root, r.release);
  return { ...r, root, vmlinuz, modulesDir };
}
