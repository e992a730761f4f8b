// A ProgrammedState (src/dataplane/bpf/state.ts) as plain sorted data, so
// tests can deep-compare two states and print a readable difference.

import { formatBackendKey, type ProgrammedState } from '../../src/dataplane/bpf/state.ts';

export function programmedToPlain(s: ProgrammedState): unknown {
  return {
    services: s.services.sortedKeys().map((k) => [k, s.services.get(k)]),
    backends: s.backends.sortedKeys().map((k) => [formatBackendKey(k), s.backends.get(k)]),
    backendsById: s.backendsById.sortedKeys().map((k) => [k, s.backendsById.get(k)]),
    backendIds: s.backendIds.toArray(),
    svcIds: s.svcIds.toArray(),
    danglingRefs: [...s.danglingRefs].sort((a, b) => a[0] - b[0]),
  };
}
