// A ProgrammedState (src/dataplane/bpf/state.ts) as plain sorted data, so
// tests can deep-compare two states and print a readable difference.

import { FAMILIES, formatBackendKey, type ProgrammedState } from '../../src/dataplane/bpf/state.ts';

export function programmedToPlain(s: ProgrammedState): unknown {
  return {
    services: s.services.sortedKeys().map((k) => [k, s.services.get(k)]),
    backends: Object.fromEntries(
      FAMILIES.map((f) => {
        const b = s.backends[f];
        return [
          f,
          {
            byKey: b.byKey
              .keysArray()
              .map((k) => [formatBackendKey(k), b.byKey.get(k)])
              .sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)),
            byId: b.byId.sortedKeys().map((k) => [k, b.byId.get(k)]),
            ids: b.ids.toArray(),
            danglingRefs: [...b.danglingRefs].sort((x, y) => x[0] - y[0]),
          },
        ];
      }),
    ),
    svcIds: s.svcIds.toArray(),
    vips: [...s.vips].sort(),
    entries: s.entries,
  };
}
