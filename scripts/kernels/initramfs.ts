// Initramfs for the kernel-matrix runner.
// Owns: the list of kernel modules the VM needs, their closure and load order
// (computed on the host from modules.dep / modules.builtin), the busybox /init script
// that loads them, mounts the host root over 9p and runs the test command in a chroot,
// and the cpio archives: a cached per-kernel base archive and a small per-run archive
// (command, environment, result marker nonce) that vm.ts appends to it.

import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gunzipSync } from 'node:zlib';
import type { Kernel } from './fetch.ts';

const run = promisify(execFile);

export interface ModuleWant {
  /** Alternative names, first one that exists wins (names differ between kernels). */
  names: string[];
  optional?: boolean;
}

/** Loaded in this order (each after its dependencies). */
export const MODULES: ModuleWant[] = [
  // libcrc32c (ip_vs, nf_nat, nf_conntrack...) asks the crypto API for "crc32c" when it
  // loads; without a provider it fails. Up to 6.x that is crc32c_generic; 7.x renamed
  // it crc32c-cryptoapi (and libcrc32c is gone).
  { names: ['crc32c_generic', 'crc32c_cryptoapi'], optional: true },
  // The host root over 9p.
  { names: ['virtio_pci'] },
  { names: ['virtio_rng'], optional: true },
  { names: ['9pnet_virtio'] },
  { names: ['9p'] },
  // Network plumbing used by the end-to-end tests.
  { names: ['veth'] },
  { names: ['dummy'] },
  { names: ['bridge'] },
  { names: ['br_netfilter'], optional: true },
  // tc eBPF dataplane: clsact lives in sch_ingress.
  { names: ['sch_ingress'] },
  { names: ['cls_bpf'] },
  { names: ['act_bpf'], optional: true },
  { names: ['act_gact'], optional: true },
  // Netfilter.
  { names: ['nf_conntrack'] },
  { names: ['nf_nat'] },
  { names: ['nf_tables'] },
  { names: ['nft_chain_nat'], optional: true },
  { names: ['nft_ct'], optional: true },
  { names: ['nft_masq'], optional: true },
  { names: ['nft_nat'], optional: true },
  { names: ['nf_conntrack_netlink'], optional: true },
  // The rig's nodes: `ct state invalid counter drop` in an inet table.
  { names: ['nft_counter'], optional: true },
  // Closing host sockets of removed backends (sock_diag SOCK_DESTROY; the VM has no modprobe to autoload them).
  { names: ['inet_diag'], optional: true },
  { names: ['tcp_diag'], optional: true },
  { names: ['udp_diag'], optional: true },
  // SCTP end-to-end tests (northsouth.sctp.test.ts).
  { names: ['sctp'], optional: true },
  // IPVS backend (ip_vs needs a crc32c provider, first in this list) and
  // every scheduler the kernel ships (twos since 6.4); the kernel would also
  // load a scheduler on first use through the modprobe wrapper.
  { names: ['ip_vs'] },
  { names: ['ip_vs_rr'] },
  { names: ['ip_vs_wrr'] },
  { names: ['ip_vs_sh'] },
  ...['lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'].map((s) => ({ names: [`ip_vs_${s}`], optional: true })),
];

export const modName = (file: string) =>
  basename(file)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');

interface ModuleIndex {
  /** name → path relative to the modules dir, and direct+indirect dependencies' names. */
  files: Map<string, { path: string; deps: string[] }>;
  builtin: Set<string>;
  haveBuiltinList: boolean;
}

function readIndex(modulesDir: string): ModuleIndex {
  const files = new Map<string, { path: string; deps: string[] }>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const path = line.slice(0, i).trim();
    const deps = line
      .slice(i + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(modName);
    files.set(modName(path), { path, deps });
  }
  const builtinFile = join(modulesDir, 'modules.builtin');
  const haveBuiltinList = existsSync(builtinFile);
  const builtin = new Set(haveBuiltinList ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(modName) : []);
  return { files, builtin, haveBuiltinList };
}

export interface ModulePlan {
  /** Load order: name, file relative to the modules dir, required or not. */
  load: { name: string; path: string; required: boolean }[];
  builtin: string[];
  /** Optional modules this kernel has neither as module nor built in. */
  absent: string[];
}

/** Resolve wanted modules against one kernel: builtins skipped, dependencies first. */
export function planModules(modulesDir: string, wants: ModuleWant[]): ModulePlan {
  const idx = readIndex(modulesDir);
  const plan: ModulePlan = { load: [], builtin: [], absent: [] };
  const seen = new Map<string, ModulePlan['load'][number]>();
  const visit = (name: string, required: boolean, chain: string[]) => {
    const planned = seen.get(name);
    if (planned && (planned.required || !required)) return;
    const entry = idx.files.get(name);
    if (!entry) throw new Error(`module ${name} (needed by ${chain.join(' < ')}) missing from modules.dep`);
    // Seen before only as a dependency of an optional module: now required, with its deps.
    if (planned) planned.required = true;
    for (const d of entry.deps) visit(d, required, [d, ...chain]);
    if (!planned) {
      const m = { name, path: entry.path, required };
      seen.set(name, m);
      plan.load.push(m);
    }
  };
  for (const want of wants) {
    const names = want.names.map((n) => n.replace(/-/g, '_'));
    const asModule = names.find((n) => idx.files.has(n));
    const asBuiltin = names.find((n) => idx.builtin.has(n));
    if (asModule) visit(asModule, !want.optional, [asModule]);
    else if (asBuiltin) plan.builtin.push(asBuiltin);
    else if (want.optional) plan.absent.push(names.join('|'));
    else if (!idx.haveBuiltinList) plan.builtin.push(`${names.join('|')}?`);
    else throw new Error(`module ${names.join('|')} is neither a module nor built in (${modulesDir})`);
  }
  return plan;
}

/**
 * PID 1 inside the VM (busybox sh). /etc/sy/config and /etc/sy/run.sh come from the
 * per-run archive. Everything it prints goes to the serial console, which vm.ts reads.
 * Beware: plain string, shell `${...}` is not used so that this stays a JS template.
 */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
. /etc/sy/config
fail() {
  echo "SY-RESULT $SY_NONCE rc=125 setup failed: $*"
  sleep 1
  poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 10
  exit 1
}
echo "sy-init: $(uname -r) up after $(cut -d' ' -f1 /proc/uptime)s, loading modules"
# module_blacklist=a,b on the kernel command line (SY_KERNEL_APPEND) skips those here too.
blacklist=" $(sed -n 's/.*module_blacklist=\\([^ ]*\\).*/\\1/p' /proc/cmdline | tr ',-' ' _') "
while read -r name kind; do
  [ -e /sys/module/$name/initstate ] && continue
  case "$blacklist" in *" $name "*) echo "sy-init: $name blacklisted, not loaded"; continue ;; esac
  if ! insmod /lib/sy/$name.ko; then
    [ "$kind" = req ] && fail "insmod $name"
    echo "sy-init: optional module $name did not load"
  fi
done </etc/sy/modules
R=/newroot
mkdir -p $R
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=$SY_9P_CACHE,msize=$SY_MSIZE hostroot $R || fail "mount host root over 9p"
mount -t proc proc $R/proc || fail "mount /proc"
mount -t sysfs sysfs $R/sys || fail "mount /sys"
mount -t devtmpfs devtmpfs $R/dev || fail "mount /dev"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
# Kept reachable: a checkout under /tmp (say, CI's) would vanish under the new tmpfs.
mkdir -p /host
mount -o bind $R /host
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || fail "mount /run"
[ -d $R/var/tmp ] && mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
case "$SY_REPO" in
/tmp/* | /run/* | /var/tmp/*)
  mkdir -p "$R$SY_REPO" && mount -o bind "/host$SY_REPO" "$R$SY_REPO" || fail "bind-mount $SY_REPO"
  ;;
esac
mount -t bpf bpf $R/sys/fs/bpf || fail "mount bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
# The whole module tree of this kernel (read only), for modprobe and the kernel's own
# request_module(): the usermode helper runs in this (initramfs) root, hence chroot.
mkdir -p $R/run/sy/kmod/lib/modules $R/run/sy/bin
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=$SY_MSIZE kmod $R/run/sy/kmod/lib/modules; then
  printf '#!/bin/sh\\nexec /sbin/modprobe -d /run/sy/kmod "$@"\\n' >$R/run/sy/bin/modprobe
  chmod 755 $R/run/sy/bin/modprobe
  echo /sbin/sy-modprobe >/proc/sys/kernel/modprobe
else
  echo "sy-init: module tree not mounted; modprobe will not work"
fi
hostname "$SY_HOSTNAME"
ip link set lo up
cp /etc/sy/run.sh $R/run/sy/run.sh
echo "SY-START $SY_NONCE $(cut -d' ' -f1 /proc/uptime)"
chroot $R /bin/sh /run/sy/run.sh </dev/null
rc=$?
echo "SY-RESULT $SY_NONCE rc=$rc"
sleep 1
poweroff -f
echo o >/proc/sysrq-trigger
sleep 10
`;

const SY_MODPROBE = `#!/bin/sh
exec chroot /newroot /sbin/modprobe -d /run/sy/kmod "$@"
`;

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(dir, p)));
  }
  return out;
}

/** `cpio -o -H newc` of a directory, gzipped, written atomically to `out`. */
export async function writeCpioGz(stageDir: string, out: string): Promise<void> {
  const list = `${(await walk(stageDir)).sort().join('\n')}\n`;
  const cpio = spawn('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--quiet'], {
    cwd: stageDir,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number>((res) => cpio.on('close', (code) => res(code ?? 1)));
  cpio.stdin.end(list);
  const tmp = `${out}.tmp-${process.pid}`;
  await pipeline(cpio.stdout, createGzip({ level: 6 }), createWriteStream(tmp));
  const code = await exited;
  if (code !== 0) throw new Error(`cpio exited ${code}`);
  await rename(tmp, out);
}

async function decompressModule(src: string): Promise<Buffer> {
  if (src.endsWith('.xz')) return (await run('xz', ['-dc', src], { encoding: 'buffer', maxBuffer: 1 << 30 })).stdout;
  if (src.endsWith('.zst')) {
    return (await run('zstd', ['-dc', '-q', src], { encoding: 'buffer', maxBuffer: 1 << 30 })).stdout;
  }
  if (src.endsWith('.gz')) return gunzipSync(readFileSync(src));
  return readFileSync(src);
}

/** True if a 64-bit little-endian ELF file has a PT_INTERP program header (is not static). */
function hasInterpreter(elf: Buffer): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  }
  return false;
}

function busyboxPath(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) {
    if (existsSync(p)) return p;
  }
  throw new Error('busybox not found: install busybox-static');
}

export interface BaseInitrd {
  path: string;
  plan: ModulePlan;
}

/** The per-kernel part of the initramfs (busybox, /init, modules); cached by content. */
export async function buildBaseInitrd(kernel: Kernel, wants: ModuleWant[], cacheDir: string): Promise<BaseInitrd> {
  const plan = planModules(kernel.modulesDir, wants);
  const busybox = busyboxPath();
  const bb = statSync(busybox);
  const hash = createHash('sha256')
    .update(JSON.stringify({ release: kernel.release, version: kernel.version, plan, INIT, SY_MODPROBE }))
    .update(`${bb.size}:${bb.mtimeMs}`)
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir, 'linux', kernel.release);
  const path = join(dir, `initrd-${hash}.gz`);
  // Archives of older /init scripts or module lists: dropped after a day unused.
  if (existsSync(dir)) {
    for (const f of await readdir(dir)) {
      const p = join(dir, f);
      if (/^initrd-.*\.gz$/.test(f) && p !== path && Date.now() - statSync(p).mtimeMs > 86_400_000) {
        await rm(p, { force: true });
      }
    }
  }
  if (existsSync(path)) {
    const now = new Date();
    await utimes(path, now, now);
    return { path, plan };
  }

  const stage = await mkdtemp(join(tmpdir(), 'sy-initrd-'));
  try {
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'etc/sy', 'lib/sy', 'newroot']) {
      await mkdir(join(stage, d), { recursive: true });
    }
    // busybox-static: the host's may be the dynamic one (package busybox).
    const bin = readFileSync(busybox);
    if (hasInterpreter(bin)) throw new Error(`${busybox} is dynamically linked: install busybox-static`);
    await writeFile(join(stage, 'bin', 'busybox'), bin);
    await chmod(join(stage, 'bin', 'busybox'), 0o755);
    await writeFile(join(stage, 'init'), INIT, { mode: 0o755 });
    await writeFile(join(stage, 'sbin', 'sy-modprobe'), SY_MODPROBE, { mode: 0o755 });
    // Without /dev/console in the archive the kernel starts /init with no stdio; the
    // script re-opens it after mounting devtmpfs anyway, so this is best effort.
    await run('mknod', ['-m', '600', join(stage, 'dev', 'console'), 'c', '5', '1']).catch(() => undefined);
    for (const m of plan.load) {
      await writeFile(join(stage, 'lib', 'sy', `${m.name}.ko`), await decompressModule(join(kernel.modulesDir, m.path)));
    }
    await writeFile(join(stage, 'etc', 'sy', 'modules'), plan.load.map((m) => `${m.name} ${m.required ? 'req' : 'opt'}\n`).join(''));
    await mkdir(dirname(path), { recursive: true });
    await writeCpioGz(stage, path);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return { path, plan };
}

/** The per-run archive: files (path relative to the archive root → content). */
export async function buildRunArchive(files: Record<string, string>, out: string): Promise<void> {
  const stage = await mkdtemp(join(tmpdir(), 'sy-run-'));
  try {
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(dirname(join(stage, rel)), { recursive: true });
      await writeFile(join(stage, rel), content, { mode: 0o755 });
    }
    await writeCpioGz(stage, out);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
