// The network interfaces of this namespace: listing them (from /sys/class/net,
// which `ip netns exec` remounts for the namespace), their IPv4 addresses, and
// a watcher that reports when links come and go (rtnetlink link events from
// the native addon, a relist at once when the kernel says events were lost,
// and a periodic rescan as the safety net); hostLinks() bundles listing and
// watching as the LinkSource a dataplane is given. No Kubernetes knowledge here.

import { readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { LinkEvent, LinkWatchOptions, NativeBinding, NativeLinkWatch } from '../native/binding.ts';
import { nullLogger, type Logger } from '../util/log.ts';

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
  readonly native: Pick<NativeBinding, 'linkWatch'>;
  readonly onChange: () => void;
  /** onChange this often whatever the events say: the safety net. */
  readonly rescanMs: number;
  readonly log?: Logger;
  /** The event socket's receive buffer (LinkWatchOptions.rcvbuf); the addon's default when absent. */
  readonly rcvbuf?: number;
}

/**
 * Calls onChange whenever a link may have appeared or disappeared: once per
 * burst of link events (the addon's batches, coalesced until the next turn
 * of the event loop), at once when events were lost (socket overrun), and
 * every rescanMs. If the event socket cannot be opened or fails, the rescan
 * carries on alone and reopens it.
 */
export class LinkWatcher {
  #opts: LinkWatcherOptions;
  #log: Logger;
  #watch: NativeLinkWatch | null = null;
  #timer: NodeJS.Timeout | null = null;
  #pending: NodeJS.Immediate | null = null;
  #running = false;
  /** The last failure was logged: log the next one only after a success. */
  #warned = false;

  constructor(opts: LinkWatcherOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? nullLogger();
  }

  start(signal: AbortSignal): void {
    if (this.#running || signal.aborted) return;
    this.#running = true;
    this.#open();
    this.#timer = setInterval(() => {
      if (this.#watch === null) this.#open();
      this.#opts.onChange();
    }, this.#opts.rescanMs);
    this.#timer.unref();
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#pending) clearImmediate(this.#pending);
    this.#pending = null;
    this.#watch?.close();
    this.#watch = null;
  }

  #open(): void {
    const opts: LinkWatchOptions = { rcvbuf: this.#opts.rcvbuf };
    try {
      this.#watch = this.#opts.native.linkWatch((events) => this.#onEvents(events), opts);
      if (this.#warned) this.#log.info('link events resumed');
      this.#warned = false;
    } catch (err) {
      this.#failed('cannot subscribe to link events', err);
    }
  }

  #onEvents(events: readonly LinkEvent[]): void {
    if (!this.#running) return;
    for (const e of events) {
      if (e.type === 'overrun') this.#log.warn('link events were lost (socket buffer overrun): relisting the links');
      if (e.type === 'error') {
        this.#watch?.close();
        this.#watch = null;
        this.#failed('link events stopped', e.error);
      }
    }
    if (this.#pending === null) {
      this.#pending = setImmediate(() => {
        this.#pending = null;
        this.#opts.onChange();
      });
    }
  }

  #failed(what: string, err: unknown): void {
    if (!this.#warned) this.#log.warn(`${what}: relisting the links every ${this.#opts.rescanMs}ms instead`, { error: (err as Error).message });
    this.#warned = true;
  }
}

/** Where a dataplane learns which links exist and when that may have changed. */
export interface LinkSource {
  list(): Link[];
  /** Calls onChange whenever a link may have appeared or gone, until stop() or the signal aborts. */
  watch(onChange: () => void, signal: AbortSignal): { stop(): void };
}

export interface HostLinksOptions {
  readonly native: Pick<NativeBinding, 'linkWatch'>;
  readonly rescanMs: number;
  readonly log?: Logger;
  readonly sysClassNet?: string;
}

/** The links of this network namespace: listLinks() and a LinkWatcher. */
export function hostLinks(opts: HostLinksOptions): LinkSource {
  return {
    list: () => listLinks(opts.sysClassNet),
    watch(onChange, signal) {
      const watcher = new LinkWatcher({ native: opts.native, onChange, rescanMs: opts.rescanMs, log: opts.log });
      watcher.start(signal);
      return watcher;
    },
  };
}
