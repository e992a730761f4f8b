// Runs programs of the BPF object through BPF_PROG_TEST_RUN in whatever
// network namespace it is started in (bpf_fib_lookup resolves routes and
// neighbours of the caller's namespace), on maps already pinned under
// PIN_ROOT by a PacketHarness. Started by PacketHarness.runInNetns under
// `ip netns exec`; reads [{prog, frame (hex)}] as JSON on stdin and prints
// [{verdict, data (hex)}] as JSON on the last line of stdout.
//   node test/support/testrun-main.ts OBJECT PIN_ROOT < runs.json

import fs from 'node:fs';
import { BpfObject, loadBinding } from '../../src/native/index.ts';

const [objectPath, pinRoot] = process.argv.slice(2);
if (objectPath === undefined || pinRoot === undefined) throw new Error('usage: testrun-main.ts OBJECT PIN_ROOT < runs.json');
const runs = JSON.parse(fs.readFileSync(0, 'utf8')) as Array<{ prog: string; frame: string }>;
const obj = await BpfObject.open(objectPath, pinRoot, loadBinding());
try {
  const out: Array<{ verdict: number; data: string }> = [];
  for (const r of runs) {
    const res = await obj.program(r.prog).testRun(Buffer.from(r.frame, 'hex'));
    out.push({ verdict: res.retval | 0, data: res.data.toString('hex') });
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  obj.close();
}
