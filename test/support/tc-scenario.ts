// One sequence of tc and interface calls, run against a NativeBinding: the
// real addon inside a throwaway network namespace (tc-scenario-main.ts,
// started by test/privileged/fake-vs-kernel.test.ts) and the fake in
// process, so the two transcripts can be compared. Program ids and fds
// differ between the two and are replaced by labels.

import type { NativeBinding, TcFilter } from '../../src/native/binding.ts';

/** The interface (one end of a veth pair) the namespace has besides lo. */
export const SCENARIO_LINK = 'sy0';

export type Step = [what: string, outcome: unknown];

export async function tcScenario(native: NativeBinding, objectPath: string, pinRoot: string): Promise<Step[]> {
  const steps: Step[] = [];
  const labels = new Map<number, string>();
  const label = (id: number): string => {
    if (!labels.has(id)) labels.set(id, `prog${labels.size + 1}`);
    return labels.get(id) as string;
  };
  const normalize = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    const o = { ...(v as Record<string, unknown>) };
    if (typeof o['progId'] === 'number') o['progId'] = label(o['progId']);
    return o;
  };
  const run = (what: string, f: () => unknown): void => {
    try {
      steps.push([what, { ok: normalize(f()) }]);
    } catch (e) {
      const err = e as Error & { code?: string; syscall?: string; errno?: number };
      const message = err.message.replace(/fd \d+/g, 'fd N');
      steps.push([what, { error: err.code === undefined ? { type: err.name, message } : { code: err.code, errno: err.errno, syscall: err.syscall, message } }]);
    }
  };

  const a = await native.openObject(objectPath, { pinRoot });
  const b = await native.openObject(objectPath, { pinRoot });
  const progA = a.programs()[0]?.fd ?? -1;
  const progB = b.programs()[0]?.fd ?? -1;
  const mapFd = a.maps()[0]?.fd ?? -1;
  const ifx = native.ifNameToIndex(SCENARIO_LINK);
  const f: TcFilter = { direction: 'ingress', handle: 1, priority: 1 };
  const egress: TcFilter = { ...f, direction: 'egress' };
  label(native.progIdFromFd(progA));
  label(native.progIdFromFd(progB));

  run('index of the link', () => ifx);
  run('name of the link', () => native.ifIndexToName(ifx));
  run('query with no qdisc', () => native.tcQuery(ifx, f));
  run('detach with no qdisc', () => native.tcDetach(ifx, f));
  run('flush ingress with no qdisc', () => native.tcHookDestroy(ifx, 'ingress'));
  run('attach a map fd', () => native.tcAttach(ifx, mapFd, f));
  run('query after the failed attach', () => native.tcQuery(ifx, f));
  run('flush ingress: the qdisc is there', () => native.tcHookDestroy(ifx, 'ingress'));
  run('attach A ingress', () => native.tcAttach(ifx, progA, f));
  run('attach A egress', () => native.tcAttach(ifx, progA, egress));
  run('attach B ingress without replace', () => native.tcAttach(ifx, progB, { ...f, replace: false }));
  run('query ingress', () => native.tcQuery(ifx, f));
  run('attach B ingress, replacing', () => native.tcAttach(ifx, progB, f));
  run('query ingress after replace', () => native.tcQuery(ifx, f));
  run('attach A ingress handle 2', () => native.tcAttach(ifx, progA, { ...f, handle: 2 }));
  run('query handle 2', () => native.tcQuery(ifx, { ...f, handle: 2 }));
  run('query priority 2', () => native.tcQuery(ifx, { ...f, priority: 2 }));
  run('detach ingress handle 1', () => native.tcDetach(ifx, f));
  run('detach it again', () => native.tcDetach(ifx, f));
  run('query handle 2 after', () => native.tcQuery(ifx, { ...f, handle: 2 }));
  run('flush egress', () => native.tcHookDestroy(ifx, 'egress'));
  run('query egress after flush', () => native.tcQuery(ifx, egress));
  run('query handle 2 after egress flush', () => native.tcQuery(ifx, { ...f, handle: 2 }));
  run('destroy both', () => native.tcHookDestroy(ifx));
  run('destroy both again', () => native.tcHookDestroy(ifx));
  run('query after destroy', () => native.tcQuery(ifx, { ...f, handle: 2 }));
  run('attach to a missing ifindex', () => native.tcAttach(9999, progA, f));
  run('query a missing ifindex', () => native.tcQuery(9999, f));
  run('detach on a missing ifindex', () => native.tcDetach(9999, f));
  run('destroy on a missing ifindex', () => native.tcHookDestroy(9999));
  run('flush ingress on a missing ifindex', () => native.tcHookDestroy(9999, 'ingress'));
  run('index of a missing name', () => native.ifNameToIndex('nope0'));
  run('name of a missing index', () => native.ifIndexToName(9999));
  run('priority out of range', () => native.tcAttach(ifx, progA, { ...f, priority: 70000 }));
  run('handle 0', () => native.tcAttach(ifx, progA, { ...f, handle: 0 }));
  run('bad direction', () => native.tcAttach(ifx, progA, { ...f, direction: 'up' as 'ingress' }));
  run('ifindex 0', () => native.tcQuery(0, f));
  run('destroy in a bad direction', () => native.tcHookDestroy(ifx, 'sideways' as 'both'));
  a.close();
  run('attach a closed program fd', () => native.tcAttach(ifx, progA, f));
  run('the program id of a closed fd', () => native.progIdFromFd(progA));
  run('destroy after the failed attach', () => native.tcHookDestroy(ifx));
  b.close();
  return steps;
}
