// Test-only helpers on top of src/rig: root detection and polling.

import type { RigProcess } from '../../src/rig/proc.ts';

export * from '../../src/rig/switchyard.ts';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Retries `probe` until it returns true or the deadline passes. */
export async function eventually(what: string, timeoutMs: number, probe: () => Promise<boolean>, daemons: RigProcess[] = []): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(200);
  }
  const logs = daemons.map((d) => `--- ${d.ns} stderr ---\n${d.stderr.slice(-3000)}`).join('\n');
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs}`);
}


export { scaled, TIME_SCALE } from '../../src/rig/timing.ts';
import { scaled as scaleMs } from '../../src/rig/timing.ts';
/** How long a daemon may take to program a change; SY_E2E_SETTLE_MS overrides. */
export const SETTLE_MS = Number(process.env['SY_E2E_SETTLE_MS'] ?? scaleMs(30_000));
