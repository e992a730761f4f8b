// `switchyard cleanup`: removes what `switchyard run` installed in this
// network namespace: our tc filters (ingress and egress) on every interface (the clsact qdisc too
// when nothing else uses it is left alone: other tools may share it), and the
// pinned maps under the pin path. Safe to run when nothing is installed.
// Refuses (ERR_SY_DATAPLANE_PIN_LOCKED, nothing touched) while a daemon holds
// the pin directory's lock (dataplane/bpf/pinlock.ts): it would pull the maps
// and filters from under a running daemon. That is all `run` installs: it
// writes no sysctl and no iptables or nftables rule; its socket hooks'
// cgroup links are pinned there too and detached first; and its lock is an flock on the directory (gone with the
// process), so kube-proxy can start on the node afterwards. kube-proxy's own
// leftovers are cli/kube-proxy-cleanup.ts's (`cleanup --kube-proxy`).

import { readdirSync, rmSync, existsSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeBinding } from '../native/binding.ts';
import { Tc } from '../native/index.ts';
import { listLinks } from '../host/links.ts';
import { TC_FILTERS } from '../dataplane/bpf/dataplane.ts';
import type { Logger } from '../util/log.ts';
import { holdPinLockNow } from '../dataplane/bpf/pinlock.ts';
import { detachSocketLb } from '../dataplane/bpf/socklb.ts';

export interface CleanupResult {
  readonly detached: string[];
  readonly unpinned: string[];
}

/** Pinned objects of ours: every map name carries the sy_ prefix and a layout version. */
const OUR_PIN = /^sy_[a-z0-9_]+_v\d+$/;

export function cleanup(native: NativeBinding, pinPath: string, log: Logger): CleanupResult {
  const lock = existsSync(pinPath) ? holdPinLockNow(native, pinPath, 'cleanup') : null;
  try {
    return cleanupLocked(native, pinPath, log);
  } finally {
    lock?.release();
  }
}

function cleanupLocked(native: NativeBinding, pinPath: string, log: Logger): CleanupResult {
  const tc = new Tc(native);
  const detached: string[] = [];
  for (const link of listLinks()) {
    try {
      // Both directions (layout 2 attaches ingress and egress; layout 1 only ingress).
      let any = false;
      for (const filter of TC_FILTERS) if (tc.detach(link.ifindex, filter)) any = true;
      if (any) detached.push(link.name);
    } catch (err) {
      log.warn('detach failed', { interface: link.name, error: (err as Error).message });
    }
  }
  // Unpinning a link would release it too; detaching first also ends it for whoever holds an fd.
  const hooks = detachSocketLb(native, pinPath);
  if (hooks.length > 0) detached.push(`cgroup:${hooks.join(',')}`);
  const unpinned: string[] = [];
  if (existsSync(pinPath)) {
    for (const name of readdirSync(pinPath)) {
      if (!OUR_PIN.test(name)) continue;
      rmSync(join(pinPath, name));
      unpinned.push(name);
    }
    try {
      rmdirSync(pinPath);
    } catch {
      // Not empty (someone else's pins) or a mount point: leave it.
    }
  }
  log.info('cleanup done', { detached: detached.join(',') || '-', unpinned: unpinned.length });
  return { detached, unpinned };
}
