// A Kubernetes-shaped cluster built from network namespaces, for end-to-end
// tests (DESIGN.md §7). Owns the lifecycle: it applies a plan from
// topology.ts, runs commands and tracked processes inside the cluster's
// namespaces, starts backends (backend.ts) and load clients (client.ts), and
// tears everything down: on destroy(), on a failed create, and on process
// exit or SIGINT/SIGTERM.
//
// Only `ip` (iproute2), `sh` and node are used, and writes go to /proc/sys
// and /run only, so the rig runs unchanged inside the busybox qemu VMs of the
// kernel matrix. Nothing is created in, or changed about, the root namespace
// except the namespace files under /run/netns.

import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SwitchyardError } from '../util/errors.ts';
import { CommandError, NODE_CMD, RigProcess, inNetns, run, runSync } from './proc.ts';
import type { ExecOptions, ExecResult, SpawnOptions } from './proc.ts';
import { formatEndpoint } from './protocol.ts';
import type { ClientOutput, PlanOutput, PlanRun, Proto, RequestResult } from './protocol.ts';
import { planCluster, podHostSide, podSide } from './topology.ts';
import type { ClusterNode, ClusterPlan, Host, Pod } from './topology.ts';
import { parseSctpClientOutput, sctpHelper } from './sctp.ts';
import { scaled } from './timing.ts';
import type { HolderOutput } from './holder.ts';
import type { MeterPlan, MeterReport } from './meter-core.ts';

export type { ClusterNode, ClusterPlan, Host, Pod } from './topology.ts';
export type { Endpoint, Proto, RequestResult } from './protocol.ts';
export type { ExecOptions, ExecResult, SpawnOptions } from './proc.ts';
export { CommandError, RigProcess } from './proc.ts';
export {
  CLIENT_GATEWAY,
  CLIENT_GATEWAY6,
  CLUSTER_POD_CIDR,
  CLUSTER_POD_CIDR6,
  EXT2_ADDR,
  EXT2_ADDR6,
  EXT_ADDR,
  EXT_ADDR6,
  FABRIC_GATEWAY,
  FABRIC_GATEWAY6,
  LB_CIDR,
  LB_CIDR6,
  NODE_NFT_TABLE,
  SERVICE_CIDR,
  SERVICE_CIDR6,
  planCluster,
} from './topology.ts';

export interface ClusterOptions {
  nodes: number;
  podsPerNode: number;
  /** Starts every namespace name (`<prefix>-n1p0`); default `sy<pid%10000><2 random>`. */
  prefix?: string;
}

/** Anything that names a rig namespace: a Pod, a ClusterNode, `ext`, or `{ ns }`. */
export type Where = string | { readonly ns: string };

export interface BackendOptions {
  tcp?: number[];
  udp?: number[];
  /** Long-lived TCP ports: every line received is answered (see holder.ts). */
  echo?: number[];
  /** TCP ports that echo every byte after their line (RequestOptions.bulkBytes). */
  bulk?: number[];
  /** SCTP ports, served by the C helper (sctp.c) in a second process. */
  sctp?: number[];
  /** The NAME the backend answers with; default the pod's (or host's) name. */
  name?: string;
}

/** A traffic meter (meter.ts) running in one namespace: `stop()` ends it and resolves with its counts. */
export interface Meter {
  readonly proc: RigProcess;
  stop(): Promise<MeterReport>;
}

/** One held TCP connection (holder.ts): wait for `result` after the event under test. */
export interface Hold {
  readonly proc: RigProcess;
  readonly result: Promise<HolderOutput>;
}

export interface RequestOptions {
  proto: Proto;
  ip: string;
  port: number;
  count?: number;
  /** Per request; default 1000. */
  timeoutMs?: number;
  /** Requests in flight; default 10. */
  concurrency?: number;
  /** TCP to a bulk port: send this many bytes and expect them back (the timeout covers the transfer). */
  bulkBytes?: number;
  /** UDP: connect the socket, so an ICMP port unreachable shows as ECONNREFUSED. */
  udpConnected?: boolean;
}

const BACKEND = fileURLToPath(new URL('./backend.ts', import.meta.url));
const CLIENT = fileURLToPath(new URL('./client.ts', import.meta.url));
const HOLDER = fileURLToPath(new URL('./holder.ts', import.meta.url));
const METER = fileURLToPath(new URL('./meter.ts', import.meta.url));
/** Node starts slowly under emulation: be generous with "ready". */
const READY_TIMEOUT_MS = scaled(60_000);
const NETNS_DIR = '/run/netns';
const SETUP_CONCURRENCY = 16;

function defaultPrefix(): string {
  const rand = Math.random().toString(36).slice(2, 4).padEnd(2, '0');
  return `sy${process.pid % 10000}${rand}`;
}

function nsName(where: Where): string {
  return typeof where === 'string' ? where : where.ns;
}

/** Names of all network namespaces under /run/netns (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { check: true });
  return parseNetnsList(r.stdout);
}

function parseNetnsList(stdout: string): string[] {
  // Lines look like `name (id: 3)` or just `name`.
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

async function deleteNamespaces(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  // -force: keep going past a namespace that is already gone.
  await run(['ip', '-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join('') });
}

/**
 * Deletes every namespace whose name starts with `<prefix>-`: the leftovers of
 * a rig that was killed with SIGKILL. Returns the names it deleted.
 */
export async function sweepNamespaces(prefix: string): Promise<string[]> {
  if (!/^[a-z][a-z0-9]*$/.test(prefix)) throw new RangeError(`sweepNamespaces: bad prefix ${JSON.stringify(prefix)}`);
  const mine = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
  await deleteNamespaces(mine);
  return mine;
}

// Clusters not yet destroyed, for the exit and signal handlers. This is the
// one piece of module state: signal handling is per process by nature.
const live = new Set<Cluster>();

function onExit(): void {
  for (const c of live) c.destroySync();
}

function onSignal(signal: NodeJS.Signals): void {
  onExit();
  uninstallHandlers();
  // Re-raise with our handlers gone, so the process ends the way it would have.
  process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (live.size !== 1) return;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function uninstallHandlers(): void {
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

function track(c: Cluster): void {
  live.add(c);
  installHandlers();
}

function untrack(c: Cluster): void {
  live.delete(c);
  if (live.size === 0) uninstallHandlers();
}

/**
 * argv run as a member of the cgroup v2 directory `cgroup` (it joins before
 * exec, so the program's first socket is already in it); argv as is when
 * undefined.
 */
export function inCgroup(cgroup: string | undefined, argv: readonly string[]): string[] {
  if (cgroup === undefined) return [...argv];
  return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];
}

export class Cluster {
  readonly prefix: string;
  readonly plan: ClusterPlan;
  /** The gateway namespace; its `br0` holds 198.18.0.254/24. */
  readonly fabric: Host;
  /** The external client, 198.18.1.100 (fd00:198:18::1:100), routed to the nodes by the gateway. */
  readonly ext: Host;
  /** A second external client, 198.18.1.101 (fd00:198:18::1:101). */
  readonly ext2: Host;
  readonly nodes: readonly ClusterNode[];
  #namespaces: ReadonlySet<string>;
  #procs = new Set<RigProcess>();
  /** Host side of a pod's veth where unplugPod/plugPod changed it (pod name -> interface; '' while unplugged). */
  #hostIfs = new Map<string, string>();
  #destroying: Promise<void> | undefined;

  constructor(plan: ClusterPlan) {
    this.plan = plan;
    this.prefix = plan.prefix;
    this.fabric = plan.fabric;
    this.ext = plan.ext;
    this.ext2 = plan.ext2;
    this.nodes = plan.nodes;
    this.#namespaces = new Set(plan.namespaces);
  }

  /** Every namespace of the cluster, fabric first. */
  get namespaces(): readonly string[] {
    return this.plan.namespaces;
  }

  get destroyed(): boolean {
    return this.#destroying !== undefined;
  }

  /** Node by 1-based index. */
  node(index: number): ClusterNode {
    const n = this.nodes[index - 1];
    if (!n) throw new RangeError(`node ${index}: cluster has nodes 1..${this.nodes.length}`);
    return n;
  }

  /** Pod by 1-based node index and 0-based pod index: pod(1, 0) is `pod-1-0`. */
  pod(nodeIndex: number, podIndex: number): Pod {
    const n = this.node(nodeIndex);
    const p = n.pods[podIndex];
    if (!p) throw new RangeError(`pod ${podIndex} on node ${nodeIndex}: node has pods 0..${n.pods.length - 1}`);
    return p;
  }

  /** Every pod, node by node. */
  get pods(): Pod[] {
    return this.nodes.flatMap((n) => [...n.pods]);
  }

  /** The node a pod runs on. */
  nodeOf(pod: Pod): ClusterNode {
    return this.node(pod.node);
  }

  #checkNs(where: Where): string {
    const ns = nsName(where);
    if (!this.#namespaces.has(ns)) {
      throw new RangeError(`namespace ${JSON.stringify(ns)} is not part of cluster ${this.prefix}`);
    }
    if (this.#destroying) throw new SwitchyardError('ERR_SY_RIG_DESTROYED', `cluster ${this.prefix} is destroyed`);
    return ns;
  }

  /** The host side of a pod's veth now (its plan's hostIf unless plugPod renamed it), or null while unplugged. */
  hostIf(pod: Pod): string | null {
    const now = this.#hostIfs.get(pod.name) ?? pod.hostIf;
    return now === '' ? null : now;
  }

  /**
   * Takes a pod off its node, as a pod sandbox being torn down: deletes the
   * host side of its veth (the pod's eth0 goes with it). Its namespace and
   * processes stay; plugPod() gives it an interface again.
   */
  async unplugPod(pod: Pod): Promise<void> {
    const hostIf = this.hostIf(pod);
    if (hostIf === null) throw new RangeError(`${pod.name} is unplugged already`);
    await this.exec(this.nodeOf(pod), ['ip', 'link', 'del', hostIf], { check: true });
    this.#hostIfs.set(pod.name, '');
  }

  /**
   * Gives an unplugged pod a new veth, as a new pod sandbox gets: the host
   * side, named hostIf, is a new link (a new ifindex) on the pod's node,
   * configured as at creation (addresses, routes; the node's default
   * sysctls apply), and the pod's end is eth0 with the pod's addresses.
   */
  async plugPod(pod: Pod, hostIf: string): Promise<void> {
    if (this.hostIf(pod) !== null) throw new RangeError(`${pod.name} has an interface: unplugPod() it first`);
    const node = this.nodeOf(pod);
    const batch = async (ns: string, lines: readonly string[]): Promise<void> => {
      await this.exec(ns, ['ip', '-batch', '-'], { input: lines.map((l) => `${l}\n`).join(''), check: true });
    };
    await batch(node.ns, [`link add ${hostIf} type veth peer name eth0 netns ${this.#checkNs(pod.ns)}`, ...podHostSide(node, pod, hostIf)]);
    this.#hostIfs.set(pod.name, hostIf);
    await batch(pod.ns, podSide(pod));
  }

  /** Runs argv to completion inside a namespace of this cluster. */
  exec(where: Where, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(inNetns(this.#checkNs(where), argv), opts);
  }

  /** Starts a long-running process inside a namespace; destroy() stops it. */
  spawn(where: Where, argv: readonly string[], opts: SpawnOptions = {}): RigProcess {
    const proc = RigProcess.start(this.#checkNs(where), argv, opts);
    this.#procs.add(proc);
    void proc.exited.then(() => this.#procs.delete(proc));
    return proc;
  }

  /**
   * Starts backend.ts in a pod (or any host of the cluster, e.g. a node for a
   * host-network backend); resolves once every socket listens.
   */
  async startBackend(where: Pod | Host | ClusterNode, opts: BackendOptions): Promise<RigProcess> {
    if (opts.sctp && opts.sctp.length > 0) {
      const sctp = this.spawn(where, [sctpHelper(), 'server', opts.name ?? where.name, opts.sctp.join(',')]);
      try {
        await sctp.waitForLine('ready', READY_TIMEOUT_MS);
      } catch (err) {
        await sctp.stop();
        throw err;
      }
      if (!opts.tcp?.length && !opts.udp?.length && !opts.echo?.length && !opts.bulk?.length) return sctp;
    }
    const argv = [...NODE_CMD, BACKEND, '--name', opts.name ?? where.name];
    if (opts.tcp && opts.tcp.length > 0) argv.push('--tcp', opts.tcp.join(','));
    if (opts.udp && opts.udp.length > 0) argv.push('--udp', opts.udp.join(','));
    if (opts.echo && opts.echo.length > 0) argv.push('--echo', opts.echo.join(','));
    if (opts.bulk && opts.bulk.length > 0) argv.push('--bulk', opts.bulk.join(','));
    const proc = this.spawn(where, argv);
    try {
      await proc.waitForLine('ready', READY_TIMEOUT_MS);
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  }

  /**
   * Opens one TCP connection from `from` to ip:port (a backend's echo port,
   * usually through a Service) and keeps it busy for durationMs; resolves once
   * connected. `result` settles when the holder ends.
   */
  async hold(from: Where, opts: { ip: string; port: number; durationMs: number; intervalMs?: number }): Promise<Hold> {
    const proc = this.spawn(from, [
      ...NODE_CMD,
      HOLDER,
      '--target',
      formatEndpoint(opts),
      '--duration-ms',
      String(opts.durationMs),
      '--interval-ms',
      String(opts.intervalMs ?? 100),
    ]);
    await proc.waitForLine('connected', READY_TIMEOUT_MS);
    const result = proc.waitForLine(/^\{/, opts.durationMs + READY_TIMEOUT_MS).then((line) => JSON.parse(line) as HolderOutput);
    return { proc, result };
  }

  /**
   * Starts a traffic meter (meter.ts) in `from`; resolves once its long-lived
   * connections and UDP flows have had their first answer and its churn runs.
   */
  async meter(from: Where, plan: MeterPlan): Promise<Meter> {
    const proc = this.spawn(from, [...NODE_CMD, METER, '--plan', JSON.stringify(plan)]);
    try {
      await proc.waitForLine('ready', READY_TIMEOUT_MS);
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return {
      proc,
      stop: async () => {
        proc.kill('SIGTERM');
        // The drain: churn connections in flight (up to their timeout) and outstanding answers.
        const line = await proc.waitForLine(/^\{/, READY_TIMEOUT_MS);
        return JSON.parse(line) as MeterReport;
      },
    };
  }

  /** Runs client.ts once from `from` and returns one result per request. */
  async request(from: Where, opts: RequestOptions): Promise<RequestResult[]> {
    const count = opts.count ?? 1;
    const timeoutMs = scaled(opts.timeoutMs ?? 1000);
    const concurrency = opts.concurrency ?? 10;
    if (opts.proto === 'sctp') {
      // One association after the other (the helper is sequential).
      const r = await this.exec(from, [sctpHelper(), 'client', opts.ip, String(opts.port), String(count), String(timeoutMs)], {
        timeoutMs: count * timeoutMs + READY_TIMEOUT_MS,
        check: true,
      });
      return parseSctpClientOutput(r.stdout);
    }
    const argv = [
      ...NODE_CMD,
      CLIENT,
      '--proto',
      opts.proto,
      '--target',
      formatEndpoint(opts),
      '--count',
      String(count),
      '--timeout-ms',
      String(timeoutMs),
      '--concurrency',
      String(concurrency),
      ...(opts.bulkBytes ? ['--bulk-bytes', String(opts.bulkBytes)] : []),
      ...(opts.udpConnected ? ['--udp-connected'] : []),
    ];
    const budget = Math.ceil(count / concurrency) * timeoutMs + READY_TIMEOUT_MS;
    const r = await this.exec(from, argv, { timeoutMs: budget, check: true });
    let out: ClientOutput;
    try {
      out = JSON.parse(r.stdout) as ClientOutput;
    } catch {
      throw new CommandError(inNetns(nsName(from), argv), { ...r, stderr: `unparsable output: ${r.stdout.slice(0, 500)}\n${r.stderr}` });
    }
    return out.results;
  }

  /**
   * Runs several request sets from `from` in one client process (TCP and UDP
   * only): all at once, bulk transfers after the rest; one result list per
   * set, in order.
   */
  async requestMany(from: Where, sets: readonly RequestOptions[], opts: { cgroup?: string } = {}): Promise<RequestResult[][]> {
    if (sets.length === 0) return [];
    const plan: PlanRun[] = sets.map((o) => {
      if (o.proto === 'sctp') throw new RangeError('requestMany: SCTP goes through request()');
      return {
        proto: o.proto,
        ip: o.ip,
        port: o.port,
        count: o.count ?? 1,
        timeoutMs: scaled(o.timeoutMs ?? 1000),
        concurrency: o.concurrency ?? 10,
        ...(o.bulkBytes ? { bulkBytes: o.bulkBytes } : {}),
        ...(o.udpConnected ? { udpConnected: true } : {}),
      };
    });
    const argv = inCgroup(opts.cgroup, [...NODE_CMD, CLIENT, '--plan', JSON.stringify(plan)]);
    const each = plan.map((p) => Math.ceil((p.count ?? 1) / (p.concurrency ?? 10)) * (p.timeoutMs ?? 1000));
    // Bulk sets run one after another, after the rest (client.ts).
    const budget = each.reduce((a, b) => a + b, 0) + READY_TIMEOUT_MS;
    const r = await this.exec(from, argv, { timeoutMs: budget, check: true });
    try {
      return (JSON.parse(r.stdout) as PlanOutput).runs;
    } catch {
      throw new CommandError(inNetns(nsName(from), argv), { ...r, stderr: `unparsable output: ${r.stdout.slice(0, 500)}\n${r.stderr}` });
    }
  }

  /** Creates the namespaces and configures them. Called once, by createCluster. */
  async apply(): Promise<void> {
    try {
      mkdirSync(NETNS_DIR, { recursive: true });
    } catch {
      // `ip netns add` creates it too, and reports a real problem better.
    }
    const add = this.plan.namespaces.map((n) => `netns add ${n}\n`).join('');
    await run(['ip', '-batch', '-'], { input: add, check: true });
    const configure = async (s: { ns: string; script: string; batch: readonly string[] }): Promise<void> => {
      const input = s.batch.map((l) => `${l}\n`).join('');
      await this.exec(s.ns, ['sh', '-c', s.script], { input, check: true });
    };
    await configure(this.plan.fabricSetup);
    // Bounded: a big cluster in a small VM would otherwise fork hundreds at once.
    const queue = [...this.plan.setup];
    const worker = async (): Promise<void> => {
      for (let s = queue.shift(); s; s = queue.shift()) await configure(s);
    };
    await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, worker));
  }

  /**
   * Stops every process this cluster started (SIGTERM, then SIGKILL), then
   * deletes every namespace. Idempotent; safe after a partial create. Rejects
   * if a namespace of the cluster is still listed afterwards.
   */
  destroy(): Promise<void> {
    this.#destroying ??= this.#destroy();
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    try {
      await Promise.all([...this.#procs].map((p) => p.stop()));
      // A namespace lives on while a process is in it, so processes go first.
      const existing = (await listNamespaces()).filter((n) => this.#namespaces.has(n));
      await deleteNamespaces(existing);
      const left = (await listNamespaces()).filter((n) => this.#namespaces.has(n));
      if (left.length > 0) throw new SwitchyardError('ERR_SY_RIG_CLEANUP', `cluster ${this.prefix}: namespaces left after destroy: ${left.join(', ')}`);
    } finally {
      untrack(this);
    }
  }

  /** Best-effort synchronous teardown for exit and signal handlers. */
  destroySync(): void {
    for (const p of this.#procs) {
      p.kill('SIGKILL');
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const existing = parseNetnsList(runSync(['ip', 'netns', 'list']).stdout).filter((n) => this.#namespaces.has(n));
    if (existing.length > 0) runSync(['ip', '-force', '-batch', '-'], existing.map((n) => `netns del ${n}\n`).join(''));
    this.#destroying ??= Promise.resolve();
    live.delete(this);
  }
}

/**
 * Builds a cluster: `nodes` nodes with `podsPerNode` pods each, a gateway and
 * an external client. If creation fails midway, what was created is deleted
 * before the error is thrown.
 */
export async function createCluster(opts: ClusterOptions): Promise<Cluster> {
  return createClusterFromPlan(planCluster({ nodes: opts.nodes, podsPerNode: opts.podsPerNode, prefix: opts.prefix ?? defaultPrefix() }));
}

/** createCluster for a plan from planCluster (tests use it to inject a failing step). */
export async function createClusterFromPlan(plan: ClusterPlan): Promise<Cluster> {
  const existing = new Set(await listNamespaces());
  const clash = plan.namespaces.filter((n) => existing.has(n));
  if (clash.length > 0)
    throw new SwitchyardError('ERR_SY_RIG_NAMESPACE_IN_USE', `namespaces already exist: ${clash.join(', ')} (prefix ${plan.prefix} in use?)`);
  const c = new Cluster(plan);
  track(c);
  try {
    await c.apply();
  } catch (err) {
    await c.destroy().catch(() => {});
    throw err;
  }
  return c;
}

/** createCluster, run `fn`, and always destroy: also when `fn` throws. */
export async function withCluster<T>(opts: ClusterOptions, fn: (c: Cluster) => Promise<T>): Promise<T> {
  const c = await createCluster(opts);
  let result: T;
  try {
    result = await fn(c);
  } catch (err) {
    await c.destroy().catch((destroyErr: unknown) => {
      if (err instanceof Error) err.message += `\n(and destroy failed: ${String(destroyErr)})`;
    });
    throw err;
  }
  await c.destroy();
  return result;
}
