// tc-probe.ts: the tc half of test/privileged/native.test.ts. tc attaches in
// the network namespace of the calling process, so the test runs this script
// under `ip netns exec <ns>` and asserts on the one JSON line it prints.
//
// Usage: node native/test/tc-probe.ts <fixture.o> <pinRoot>
// Opens the fixture twice (two program instances with different ids, same
// pinned hash map), then attaches, queries, replaces, detaches on `lo`, and
// sends one datagram through lo to see the attached program run.
import dgram from 'node:dgram';

import { BpfObject, isNativeError, loadBinding, Tc, type TcFilter } from '../../src/native/index.ts';

const [objPath, pinRoot] = process.argv.slice(2);
if (objPath === undefined || pinRoot === undefined) throw new Error('usage: tc-probe.ts <fixture.o> <pinRoot>');

function errorOf(f: () => unknown): { code: string; errno: number; syscall: string; message: string } | null {
  try {
    f();
    return null;
  } catch (e) {
    if (!isNativeError(e)) throw e;
    return { code: e.code, errno: e.errno, syscall: e.syscall, message: e.message };
  }
}

async function sendUdp(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.send('x', port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  socket.close();
}

const native = loadBinding();
const tc = new Tc(native);
const a = await BpfObject.open(objPath, pinRoot, native);
const b = await BpfObject.open(objPath, pinRoot, native);
try {
  const progA = a.program('sy_fixture_pass');
  const progB = b.program('sy_fixture_pass');
  const counters = a.map('sy_fixture_percpu');
  const lo = tc.ifindex('lo');
  const ingress: TcFilter = { direction: 'ingress', handle: 1, priority: 1 };
  const egress: TcFilter = { direction: 'egress', handle: 7, priority: 3 };
  const hitsOfA = async (): Promise<number> => {
    const [value] = await counters.lookup([Buffer.alloc(4)]);
    let sum = 0;
    for (let off = 0; value !== undefined && off < value.length; off += 8) sum += value.readUInt32LE(off);
    return sum;
  };

  const out = {
    lo,
    loName: tc.ifname(lo),
    idA: native.progIdFromFd(progA.fd),
    idB: native.progIdFromFd(progB.fd),
    queryBefore: tc.query(lo, ingress),
    detachBefore: tc.detach(lo, ingress),
    attach: tc.attach(lo, progA.fd, ingress),
    queryAfterAttach: tc.query(lo, ingress),
    hitsBeforeTraffic: await hitsOfA(),
    hitsAfterTraffic: 0,
    noReplace: errorOf(() => tc.attach(lo, progB.fd, { ...ingress, replace: false })),
    queryAfterNoReplace: tc.query(lo, ingress),
    replace: tc.attach(lo, progB.fd, ingress),
    queryAfterReplace: tc.query(lo, ingress),
    egress: tc.attach(lo, progA.fd, egress),
    queryEgress: tc.query(lo, egress),
    detach: tc.detach(lo, ingress),
    detachAgain: tc.detach(lo, ingress),
    queryAfterDetach: tc.query(lo, ingress),
    queryEgressAfterDetach: tc.query(lo, egress),
    destroy: false,
    destroyAgain: false,
    queryEgressAfterDestroy: null as number | null,
    badIfname: errorOf(() => tc.ifindex('sy-no-such0')),
    badAttach: errorOf(() => tc.attach(lo, 1_000_000, ingress)),
  };
  // The datagram goes out and comes back in on lo; only ingress runs A's
  // counter (B replaced it), so count with A attached alone first.
  out.destroy = tc.destroyHook(lo);
  tc.attach(lo, progA.fd, ingress);
  await sendUdp(9);
  out.hitsAfterTraffic = await hitsOfA();
  tc.destroyHook(lo);
  out.destroyAgain = tc.destroyHook(lo);
  out.queryEgressAfterDestroy = tc.query(lo, egress);
  console.log(JSON.stringify(out));
} finally {
  a.close();
  b.close();
}
