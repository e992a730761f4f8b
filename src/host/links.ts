// The network interfaces of this namespace: listing them (from /sys/class/net,
// which `ip netns exec` remounts for the namespace), their IPv4 addresses, and
// a watcher that reports when links come and go (`ip -o monitor link` events,
// with a periodic rescan as a safety net); hostLinks() bundles listing and
// watching as the LinkSource a dataplane is given. No Kubernetes knowledge here.

import { readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';

export interface Link {
  readonly name: string;
  readonly ifindex: number;
}

export function listLinks(sysClassNet = '/sys/class/net'): Link[] {
  const links: Link[] = [];
  for (const name of readdirSync(sysClassNet)) {
    try {
      const ifindex = Number(readFileSync(`${sysClassNet}/${name}/ifindex`, 'utf8').trim());
      if (Number.isInteger(ifindex) && ifindex > 0) links.push({ name, ifindex });
    } catch {
      // The link went away between readdir and read: it is simply not there.
    }
  }
  return links.sort((a, b) => a.ifindex - b.ifindex);
}

/** IPv4 addresses per interface name (interfaces without an address are absent). */
export function ipv4Addresses(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const v4 = (addrs ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
    if (v4.length > 0) out.set(name, v4);
  }
  return out;
}

/** Non-internal addresses of both families by interface (IPv6 link-local fe80::/10 left out: never a Service or node address). */
export function ipAddresses(): Map<string, { readonly v4: string[]; readonly v6: string[] }> {
  const out = new Map<string, { v4: string[]; v6: string[] }>();
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const list = (addrs ?? []).filter((a) => !a.internal);
    const v4 = list.filter((a) => a.family === 'IPv4').map((a) => a.address);
    const v6 = list.filter((a) => a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address)).map((a) => a.address);
    if (v4.length + v6.length > 0) out.set(name, { v4, v6 });
  }
  return out;
}

/** Compiles comma-separated shell-style globs ("veth*,cali*") into one matcher. */
export function globMatcher(patterns: string): (name: string) => boolean {
  const res = patterns
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map(
      (p) =>
        new RegExp(
          '^' +
            p
              .replace(/[.+^${}()|[\]\\]/g, '\\$&')
              .replace(/\*/g, '.*')
              .replace(/\?/g, '.') +
            '$',
        ),
    );
  return (name) => res.some((re) => re.test(name));
}

export interface LinkWatcherOptions {
  readonly onChange: () => void;
  readonly rescanMs: number;
  readonly spawnMonitor?: () => ChildProcess;
}

/** Calls onChange whenever a link may have appeared or disappeared. */
export class LinkWatcher {
  #opts: LinkWatcherOptions;
  #monitor: ChildProcess | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: LinkWatcherOptions) {
    this.#opts = opts;
  }

  start(signal: AbortSignal): void {
    const spawnMonitor = this.#opts.spawnMonitor ?? (() => spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    try {
      this.#monitor = spawnMonitor();
      this.#monitor.on('error', () => {
        this.#monitor = null;
      });
      this.#monitor.stdout?.on('data', () => this.#opts.onChange());
    } catch {
      this.#monitor = null; // the periodic rescan still finds new links
    }
    this.#timer = setInterval(() => this.#opts.onChange(), this.#opts.rescanMs);
    this.#timer.unref();
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#monitor?.kill();
    this.#monitor = null;
  }
}

/** Where a dataplane learns which links exist and when that may have changed. */
export interface LinkSource {
  list(): Link[];
  /** Calls onChange whenever a link may have appeared or gone, until stop() or the signal aborts. */
  watch(onChange: () => void, signal: AbortSignal): { stop(): void };
}

/** The links of this network namespace: listLinks() and a LinkWatcher. */
export function hostLinks(opts: { readonly rescanMs: number; readonly sysClassNet?: string }): LinkSource {
  return {
    list: () => listLinks(opts.sysClassNet),
    watch(onChange, signal) {
      const watcher = new LinkWatcher({ onChange, rescanMs: opts.rescanMs });
      watcher.start(signal);
      return watcher;
    },
  };
}
