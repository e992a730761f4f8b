// Reads the maps of layout.ts's MAPS pinned under a pin root through a
// NativeBinding (the addon or the fake), for comparing what two bindings
// hold (formatDump, resolveFrontends in fake-maps.ts).

import { MAPS } from '../../src/dataplane/bpf/layout.ts';
import { BpfMap, type MapRecord, type NativeBinding } from '../../src/native/index.ts';

/** Map name -> its entries, for every map of MAPS pinned under pinRoot. */
export async function dumpPinned(native: NativeBinding, pinRoot: string): Promise<Map<string, MapRecord[]>> {
  const out = new Map<string, MapRecord[]>();
  for (const spec of Object.values(MAPS)) {
    const m = BpfMap.openPinned(`${pinRoot}/${spec.name}`, native);
    try {
      out.set(spec.name, await m.dump());
    } finally {
      m.close();
    }
  }
  return out;
}
