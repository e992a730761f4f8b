// `switchyard cleanup --kube-proxy`: removes what kube-proxy left on this node
// (its --cleanup, every mode: iptables, ipvs, nftables), through the same
// command-line tools an operator would use, each behind a small interface
// with a fake in the unit tests:
//   iptables   every backend present (iptables-nft, iptables-legacy) and both
//              families: iptables-save, then one iptables-restore --noflush
//              transaction per table that flushes and deletes kube-proxy's
//              chains and the built-in rules jumping to them
//              (host/kube-proxy-rules.ts says which);
//   nftables   `table ip kube-proxy` and `table ip6 kube-proxy` (nft delete table);
//   ipvs       when kube-proxy's IPVS mode was here (kube-ipvs0 exists): every
//              virtual service (ipvsadm -C, as kube-proxy's cleanup flushes
//              IPVS), then the kube-ipvs0 device; a kernel without IPVS is
//              reported and skipped;
//   ipset      the IPVS mode's KUBE-* sets, after iptables (a set iptables
//              still references cannot be destroyed).
// Conntrack is not touched: a flow's NAT lives in its conntrack entry, so a
// connection kube-proxy translated keeps its translation after its rules are
// gone, and the flows Switchyard translates before netfilter sees them carry
// no NAT of the kernel's at all.
//
// Used during a migration only once Switchyard carries the traffic:
// assertSwitchyardProgrammed() refuses (one line) unless Switchyard's maps are
// pinned and its programs attached in this network namespace.

import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { NativeBinding } from '../native/binding.ts';
import { Tc } from '../native/index.ts';
import { listLinks } from '../host/links.ts';
import { KUBE_IPVS_DEVICE, KUBE_PROXY_IPSETS, KUBE_PROXY_NFT_TABLES, planSave } from '../host/kube-proxy-rules.ts';
import { TC_FILTERS } from '../dataplane/bpf/dataplane.ts';
import { SwitchyardError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The command-line tools this cleanup runs. */
export interface Commands {
  /** Whether `name` is an executable on PATH. */
  has(name: string): boolean;
  run(argv: readonly string[], input?: string): CommandResult;
}

/** IPVS as kube-proxy's cleanup sees it. */
export interface IpvsAdmin {
  /** False when this kernel has no IPVS (not built, or the module is not loaded: then it holds nothing). */
  available(): boolean;
  /** Virtual services, one line each (`TCP 10.96.0.1:443 rr`). */
  services(): string[];
  /** Removes every virtual service (ipvsadm -C). */
  flush(): void;
}

export interface KubeProxyCleanupDeps {
  readonly commands: Commands;
  readonly ipvs: IpvsAdmin;
  readonly log: Logger;
}

export interface KubeProxyCleanupResult {
  /** `iptables-nft nat: KUBE-SERVICES,...` per table that had something of kube-proxy's. */
  readonly iptables: string[];
  readonly nftTables: string[];
  readonly ipvsServices: number;
  readonly ipvsDevice: boolean;
  readonly ipsets: string[];
  /** Steps that failed (logged): the command exits non-zero when there is any. */
  readonly errors: string[];
}

/** The iptables tool pairs to look at: both backends where their own names exist, else the plain names. */
function iptablesTools(c: Commands): { label: string; save: string; restore: string }[] {
  const out: { label: string; save: string; restore: string }[] = [];
  for (const fam of ['iptables', 'ip6tables']) {
    const variants = ['nft', 'legacy'].filter((b) => c.has(`${fam}-${b}-save`) && c.has(`${fam}-${b}-restore`));
    if (variants.length > 0) for (const b of variants) out.push({ label: `${fam}-${b}`, save: `${fam}-${b}-save`, restore: `${fam}-${b}-restore` });
    else if (c.has(`${fam}-save`) && c.has(`${fam}-restore`)) out.push({ label: fam, save: `${fam}-save`, restore: `${fam}-restore` });
  }
  return out;
}

function firstLine(r: CommandResult): string {
  return (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).split('\n')[0] as string;
}

function cleanIptables(d: KubeProxyCleanupDeps, out: KubeProxyCleanupResult): void {
  const tools = iptablesTools(d.commands);
  if (tools.length === 0) d.log.info('no iptables tools installed: no iptables rules to look at');
  for (const tool of tools) {
    // Without -t: only the tables that exist are printed (naming one would create it with the legacy backend).
    const saved = d.commands.run([tool.save]);
    if (saved.code !== 0) {
      out.errors.push(`${tool.save}: ${firstLine(saved)}`);
      continue;
    }
    for (const plan of planSave(saved.stdout)) {
      for (const k of plan.kept) d.log.warn('kube-proxy chain kept: a chain that stays jumps to it', { tool: tool.label, table: plan.table, chain: k });
      if (plan.restore === null) continue;
      const r = d.commands.run([tool.restore, '--noflush'], plan.restore);
      if (r.code !== 0) {
        out.errors.push(`${tool.restore} (${plan.table}): ${firstLine(r)}`);
        continue;
      }
      out.iptables.push(`${tool.label} ${plan.table}: ${plan.chains.length} chains, ${plan.jumps.length} jumps`);
      d.log.info('kube-proxy iptables rules removed', { tool: tool.label, table: plan.table, chains: plan.chains.length, jumps: plan.jumps.length });
    }
  }
}

function cleanNft(d: KubeProxyCleanupDeps, out: KubeProxyCleanupResult): void {
  if (!d.commands.has('nft')) {
    d.log.info('nft not installed: no nftables tables to look at');
    return;
  }
  const listed = d.commands.run(['nft', 'list', 'tables']);
  if (listed.code !== 0) {
    out.errors.push(`nft list tables: ${firstLine(listed)}`);
    return;
  }
  const present = new Set(listed.stdout.split('\n').map((l) => l.trim()));
  for (const t of KUBE_PROXY_NFT_TABLES) {
    if (!present.has(`table ${t.family} ${t.name}`)) continue;
    const r = d.commands.run(['nft', 'delete', 'table', t.family, t.name]);
    if (r.code !== 0) out.errors.push(`nft delete table ${t.family} ${t.name}: ${firstLine(r)}`);
    else {
      out.nftTables.push(`${t.family} ${t.name}`);
      d.log.info('kube-proxy nftables table removed', { table: `${t.family} ${t.name}` });
    }
  }
}

function deviceExists(name: string): boolean {
  return listLinks().some((l) => l.name === name);
}

function cleanIpvs(d: KubeProxyCleanupDeps, out: { ipvsServices: number; ipvsDevice: boolean; errors: string[] }, hasDevice: () => boolean): void {
  const device = hasDevice();
  if (!d.ipvs.available()) {
    d.log.info('IPVS is not in this kernel (or not loaded): no virtual services to remove');
  } else if (!device) {
    // Without kube-proxy's device the virtual services here are someone else's (keepalived, ...).
    d.log.info(`no ${KUBE_IPVS_DEVICE}: kube-proxy's IPVS mode did not run here; IPVS left alone`);
  } else {
    try {
      out.ipvsServices = d.ipvs.services().length;
      d.ipvs.flush();
      d.log.info('IPVS virtual services removed', { count: out.ipvsServices });
    } catch (err) {
      out.errors.push(`ipvs: ${(err as Error).message}`);
    }
  }
  if (!device) return;
  const r = d.commands.run(['ip', 'link', 'del', KUBE_IPVS_DEVICE]);
  if (r.code !== 0) out.errors.push(`ip link del ${KUBE_IPVS_DEVICE}: ${firstLine(r)}`);
  else {
    out.ipvsDevice = true;
    d.log.info('kube-proxy IPVS device removed', { device: KUBE_IPVS_DEVICE });
  }
}

function cleanIpsets(d: KubeProxyCleanupDeps, out: KubeProxyCleanupResult): void {
  if (!d.commands.has('ipset')) {
    d.log.info('ipset not installed: no ipsets to look at');
    return;
  }
  const listed = d.commands.run(['ipset', 'list', '-n']);
  if (listed.code !== 0) {
    out.errors.push(`ipset list -n: ${firstLine(listed)}`);
    return;
  }
  const present = new Set(listed.stdout.split('\n').map((l) => l.trim()));
  for (const name of KUBE_PROXY_IPSETS) {
    if (!present.has(name)) continue;
    const r = d.commands.run(['ipset', 'destroy', name]);
    if (r.code !== 0) out.errors.push(`ipset destroy ${name}: ${firstLine(r)}`);
    else out.ipsets.push(name);
  }
  if (out.ipsets.length > 0) d.log.info('kube-proxy ipsets removed', { count: out.ipsets.length });
}

/**
 * Removes kube-proxy's leftovers in this network namespace. Every step runs
 * even when an earlier one failed; the failures are returned (and logged).
 * Idempotent: a second run finds nothing and changes nothing.
 */
export function cleanupKubeProxy(d: KubeProxyCleanupDeps, hasDevice: () => boolean = () => deviceExists(KUBE_IPVS_DEVICE)): KubeProxyCleanupResult {
  const out = { iptables: [] as string[], nftTables: [] as string[], ipvsServices: 0, ipvsDevice: false, ipsets: [] as string[], errors: [] as string[] };
  cleanIpvs(d, out, hasDevice);
  cleanIptables(d, out);
  cleanIpsets(d, out);
  cleanNft(d, out);
  for (const e of out.errors) d.log.error('kube-proxy cleanup step failed', { error: e });
  d.log.info('kube-proxy cleanup done', {
    iptables: out.iptables.length,
    nftTables: out.nftTables.join(',') || '-',
    ipvsServices: out.ipvsServices,
    ipvsDevice: out.ipvsDevice,
    ipsets: out.ipsets.length,
    errors: out.errors.length,
  });
  return out;
}

/** Runs the real tools (PATH lookups as the shell would). */
export function systemCommands(): Commands {
  const dirs = (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  for (const d of ['/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  return {
    has: (name) => dirs.some((d) => existsSync(join(d, name))),
    run: (argv, input) => {
      const [cmd, ...args] = argv;
      const r = spawnSync(cmd as string, args, { input: input ?? '', encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? (r.error ? 127 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
    },
  };
}

/** IPVS through ipvsadm; absent when the kernel has no /proc/net/ip_vs (this namespace's view). */
export function ipvsadm(commands: Commands, procNetIpvs = '/proc/net/ip_vs'): IpvsAdmin {
  const run = (args: string[]): string => {
    const r = commands.run(['ipvsadm', ...args]);
    if (r.code !== 0) throw new SwitchyardError('ERR_SY_COMMAND_FAILED', `ipvsadm ${args.join(' ')}: ${firstLine(r)}`);
    return r.stdout;
  };
  return {
    available: () => existsSync(procNetIpvs),
    services: () =>
      run(['-Ln'])
        .split('\n')
        .filter((l) => /^(TCP|UDP|SCTP|FWM)\s/.test(l))
        .map((l) => l.trim()),
    flush: () => {
      run(['-C']);
    },
  };
}

/**
 * Refuses (ERR_SY_CLEANUP_NOT_PROGRAMMED) unless Switchyard carries this
 * namespace's Services: its maps pinned under `pinPath` and its programs
 * attached on at least one interface. Removing kube-proxy's rules before
 * that would leave the node's Services unserved.
 */
export function assertSwitchyardProgrammed(native: NativeBinding, pinPath: string): { attached: string[] } {
  const pinned = existsSync(pinPath) && readdirSync(pinPath).some((n) => /^sy_svc[46]_v\d+$/.test(n));
  const tc = new Tc(native);
  const attached = pinned
    ? listLinks()
        .filter((l) => {
          try {
            return TC_FILTERS.some((f) => tc.query(l.ifindex, f) !== null);
          } catch {
            return false;
          }
        })
        .map((l) => l.name)
    : [];
  if (!pinned || attached.length === 0) {
    const what = !pinned ? `no Switchyard maps pinned at ${pinPath}` : 'no Switchyard program attached to any interface';
    throw new SwitchyardError(
      'ERR_SY_CLEANUP_NOT_PROGRAMMED',
      `refusing to remove kube-proxy's rules: ${what}, so they still carry this node's Services; start \`switchyard run\` (same --bpf-pin-path) and wait until it has programmed, or give --force`,
    );
  }
  return { attached };
}
