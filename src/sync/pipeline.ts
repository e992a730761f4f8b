// The sync function the runner calls: pending changes -> snapshot ->
// dataplane, committing the changes only once the dataplane succeeded.
//
//   const token    = cache.changes.peek()          (nothing consumed yet)
//   const snapshot = builder.build(full ? 'all' : token.services)
//   await sink.sync(snapshot)                      (throws -> runner retries;
//                                                   token and baseline untouched)
//   builder.commit(snapshot); cache.changes.commit(token); latency recorded
//
// A Node change triggers a build: the builder rebuilds everything when this
// node's zone changed (topology hints depend on it) and nothing otherwise.

import type { ChangeTracker } from '../sources/cache.ts';
import type { SnapshotBuilder } from '../model/snapshot.ts';
import type { ProxySnapshot } from '../model/types.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { systemClock, type Clock } from './clock.ts';
import type { ProgrammingLatency } from './latency.ts';
import type { SyncFunction, SyncRequest } from './runner.ts';

/**
 * What the sync layer needs of a dataplane (src/dataplane/types.ts
 * Dataplane satisfies it, with R = SyncResult).
 */
export interface SnapshotSink<R = unknown> {
  /** Programs the snapshot; throws/rejects when it could not (the changes then stay pending). */
  sync(snapshot: ProxySnapshot): Promise<R> | R;
}

export interface SnapshotSyncOptions<R = unknown> {
  readonly changes: ChangeTracker;
  readonly builder: SnapshotBuilder;
  readonly sink: SnapshotSink<R>;
  /** Called after each successful sync with what the sink returned (problems, counts: for logs and metrics). */
  readonly onSynced?: (result: R, snapshot: ProxySnapshot, request: SyncRequest) => void;
  readonly latency?: ProgrammingLatency;
  /** Must share its time base with the ChangeTracker's (both default to monotonic epoch ms). */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export function createSnapshotSync<R>(options: SnapshotSyncOptions<R>): SyncFunction {
  const { changes, builder, sink, latency } = options;
  const clock = options.clock ?? systemClock();
  const log = options.logger ?? createLogger('sync');
  return async (request: SyncRequest) => {
    const token = changes.peek();
    // A Node change alone can matter (this node's zone label drives topology
    // hints): the builder decides whether it rebuilds anything.
    if (!request.full && token.services.size === 0 && !token.nodes) {
      changes.commit(token);
      return;
    }
    const started = clock.now();
    const snapshot = builder.build(request.full ? 'all' : token.services);
    const result = await sink.sync(snapshot);
    builder.commit(snapshot);
    changes.commit(token);
    const done = clock.now();
    latency?.programmed(token.seenAt, done, token.triggeredAt);
    options.onSynced?.(result, snapshot, request);
    log.debug('synced', {
      full: request.full,
      reason: request.reason,
      services: token.services.size,
      servicePorts: snapshot.servicePorts.size,
      changed: changedCount(snapshot),
      ms: Math.round(done - started),
    });
  };
}

function changedCount(snapshot: ProxySnapshot): number | 'all' {
  return snapshot.changed === 'all' ? 'all' : snapshot.changed.size;
}
