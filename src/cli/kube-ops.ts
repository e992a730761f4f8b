// The daemon's own calls to the API server besides the watches: the
// start-up probe (can this node reach the server, with these credentials?)
// and the Event sink. Loaded on demand with the client library.

import { CoreV1Api, EventsV1Api, type EventsV1Event, type KubeConfig } from '@kubernetes/client-node';
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { abortable } from '../sources/kube-api.ts';
import type { EventSink } from '../ops/events.ts';

/** One probe: list this node's Node (what the proxy will watch), at most one item. */
export function apiProbe(kc: KubeConfig, nodeName: string): (signal: AbortSignal) => Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (signal) => {
    await core.listNode({ fieldSelector: `metadata.name=${nodeName}`, limit: 1 }, abortable(signal));
  };
}

/** Posts events.k8s.io/v1 Events (the body as EventRecorder builds it, in wire form). */
export function apiEventSink(kc: KubeConfig): EventSink {
  const api = kc.makeApiClient(EventsV1Api);
  return {
    post: async (body) => {
      const event = ObjectSerializer.deserialize(body, 'EventsV1Event') as EventsV1Event;
      const namespace = event.metadata?.namespace ?? 'default';
      await api.createNamespacedEvent({ namespace, body: event }, abortable(AbortSignal.timeout(10_000)));
    },
  };
}
