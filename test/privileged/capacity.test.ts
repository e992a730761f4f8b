// Map capacities against the kernel: the daemon's BpfDataplane loads the
// real object (bpf/build/switchyard.bpf.o) with tiny max_entries for the
// frontend and backend maps (openObject's maxEntries, set between open and
// load), the kernel's maps get them, and a snapshot that does not fit is
// programmed as far as it fits: the Services left out are reported by name,
// no kernel write fails, nothing programmed is emptied, and they are
// programmed once room is made. No interface is attached.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { MAPS } from '../../src/dataplane/bpf/layout.ts';
import { BpfMap, loadBinding } from '../../src/native/index.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';
import { resolveFrontends } from '../support/fake-maps.ts';
import { dumpPinned } from '../support/pinned-dump.ts';
import { BPF_OBJECT, needs } from '../support/requirements.ts';
import { servicePort, snapshot } from '../support/snapshots.ts';

const skip = needs('the map capacity test', ['root', 'bpf-object', 'native-addon']);

describe.skipIf(skip)('capacities on the kernel', () => {
  const root = skip ? '' : fs.mkdtempSync('/run/sy-capacity-');
  afterAll(() => {
    if (!root) return;
    // The dataplane mounted a bpffs at the pin path (ensureBpffs).
    while (spawnSync('umount', [`${root}/pins`], { stdio: 'ignore' }).status === 0);
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('tiny max_entries: what fits is programmed, the rest reported by name and programmed once there is room', async () => {
    const native = loadBinding();
    const pinPath = `${root}/pins`;
    const capacities = { svc4: 7, backend4: 5 };
    const dp = new BpfDataplane(dataplaneOptions(native, { objectPath: BPF_OBJECT, pinPath, capacities }));
    await dp.start(new AbortController().signal);
    try {
      const svc = BpfMap.openPinned(`${pinPath}/${MAPS.svc4.name}`, native);
      const be = BpfMap.openPinned(`${pinPath}/${MAPS.backend4.name}`, native);
      expect([svc.maxEntries, be.maxEntries], 'the kernel maps have the capacities asked for').toEqual([7, 5]);
      svc.close();
      be.close();

      // a (1+2) and b (1+2) fit in 7 frontend entries; c does not.
      const a = servicePort('a', '10.96.0.1', 80, ['10.244.1.1:80', '10.244.1.2:80']);
      const b = servicePort('b', '10.96.0.2', 80, ['10.244.1.3:80', '10.244.1.4:80']);
      const c = servicePort('c', '10.96.0.3', 80, ['10.244.1.5:80', '10.244.1.6:80']);
      const r1 = await dp.sync(snapshot([a, b, c]));
      expect(r1.problems.map((p) => [p.owner, p.message])).toEqual([
        [
          c.id,
          '10.96.0.3:80/TCP not programmed: map full: svc4 holds 6 of 7 entries, this frontend needs 3 more; backend4 holds 4 of 5 entries, this frontend needs 2 more',
        ],
      ]);
      const programmed = async () => resolveFrontends(await dumpPinned(native, pinPath));
      expect(await programmed()).toEqual({
        '10.96.0.1:80/TCP int': ['10.244.1.1:80/TCP', '10.244.1.2:80/TCP'],
        '10.96.0.2:80/TCP int': ['10.244.1.3:80/TCP', '10.244.1.4:80/TCP'],
      });

      // b grows beyond what the frontend map holds next to its old generation: b keeps its programmed version.
      const b2 = servicePort('b', '10.96.0.2', 80, ['10.244.1.3:80', '10.244.1.4:80', '10.244.1.7:80', '10.244.1.8:80', '10.244.1.9:80', '10.244.1.10:80']);
      const r2 = await dp.sync(snapshot([a, b2, c], new Set([b2.id])));
      expect(r2.problems.map((p) => p.owner)).toEqual([b2.id, c.id]);
      expect((await programmed())['10.96.0.2:80/TCP int'], 'never emptied').toEqual(['10.244.1.3:80/TCP', '10.244.1.4:80/TCP']);

      // a goes: its entries leave the maps; the next sync programs c (b2 still does not fit).
      await dp.sync(snapshot([b2, c], new Set([a.id])));
      const r4 = await dp.sync(snapshot([b2, c], new Set()));
      expect(r4.problems.map((p) => p.owner)).toEqual([b2.id]);
      expect(Object.keys(await programmed()).sort()).toEqual(['10.96.0.2:80/TCP int', '10.96.0.3:80/TCP int']);
    } finally {
      await dp.stop();
    }
  });
});
