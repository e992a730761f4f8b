// Captures netlink byte fixtures from the running kernel for the unit tests
// (test/unit/fixtures/netlink/): requests as Switchyard encodes them and the
// kernel's replies, verbatim, as hex, with the kernel release.
//
//   node test/support/netlink-capture.ts nlctrl > test/unit/fixtures/netlink/nlctrl.json
//   unshare -n node test/support/netlink-capture.ts ipvs > test/unit/fixtures/netlink/ipvs-<release>.json
//
// `ipvs` programs services into the IPVS table of the network namespace it
// runs in and flushes it at the end: run it in a new one (unshare -n), in a
// kernel-matrix VM (this machine's kernel has no IPVS):
//   npm run test:kernels -- --kernels 5.10 -- unshare -n node test/support/netlink-capture.ts ipvs
// Root only.

import { release } from 'node:os';
import { loadBinding } from '../../src/native/binding.ts';
import { encode } from '../../src/host/ipvs/codec.ts';
import type { ServiceSpec } from '../../src/host/ipvs/codec.ts';
import { encodeGetFamily } from '../../src/host/netlink/genl.ts';
import { GenericNetlink, NETLINK_GENERIC, NetlinkSocket } from '../../src/host/netlink/socket.ts';

interface Exchange {
  request: string;
  replies: string;
  errno: number;
}

const binding = loadBinding();
const raw = binding.netlinkOpen(NETLINK_GENERIC);
const out: Record<string, Exchange | string | number> = { kernel: release() };

async function capture(name: string, request: Buffer): Promise<Exchange> {
  const [r] = await raw.request(request);
  const e = { request: request.toString('hex'), replies: r!.replies.toString('hex'), errno: r!.error?.errno ?? 0 };
  out[name] = e;
  return e;
}

async function ipvs(): Promise<void> {
  await capture('getfamily-ipvs', encodeGetFamily('IPVS'));
  const f = (await new GenericNetlink(new NetlinkSocket(raw, NETLINK_GENERIC)).family('IPVS')).id;
  out['family'] = f;
  const tcp4: ServiceSpec = { protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr', persistence: { timeout: 10800 } };
  const udp6: ServiceSpec = { protocol: 'UDP', address: 'fd00:10:96::a', port: 53, scheduler: 'sh', schedFlags: ['sh-fallback', 'sh-port'] };
  const sctp4: ServiceSpec = { protocol: 'SCTP', address: '198.18.0.1', port: 30007, scheduler: 'mh', schedFlags: ['mh-port'] };
  await capture('flush', encode.flush(f));
  await capture('get-info', encode.getInfo(f));
  await capture('set-config', encode.setConfig(f, { tcp: 901, tcpFin: 121, udp: 301 }));
  await capture('get-config', encode.getConfig(f));
  await capture('new-service-tcp4', encode.newService(f, tcp4));
  await capture('new-service-udp6', encode.newService(f, udp6));
  await capture('new-service-sctp4', encode.newService(f, sctp4));
  await capture('new-service-exists', encode.newService(f, tcp4));
  await capture('new-service-bad-sched', encode.newService(f, { ...tcp4, port: 81, scheduler: 'nosuch' }));
  await capture('new-dest-tcp4', encode.newDest(f, tcp4, { address: '10.244.1.5', port: 8080, weight: 1 }));
  await capture('new-dest-tcp4-b', encode.newDest(f, tcp4, { address: '10.244.2.6', port: 8080, weight: 3, upperThreshold: 100, lowerThreshold: 10 }));
  await capture('new-dest-udp6', encode.newDest(f, udp6, { address: 'fd00:10:244:1::5', port: 5353, weight: 1 }));
  await capture('new-dest-exists', encode.newDest(f, tcp4, { address: '10.244.1.5', port: 8080, weight: 1 }));
  await capture('new-dest-multicast', encode.newDest(f, tcp4, { address: '224.0.0.1', port: 8080, weight: 1 }));
  await capture('new-dest-weight-range', encode.newDest(f, tcp4, { address: '10.244.3.7', port: 8080, weight: 0x80000000 }));
  await capture('new-dest-no-service', encode.newDest(f, { ...tcp4, port: 82 }, { address: '10.244.1.5', port: 8080, weight: 1 }));
  await capture('set-dest-missing', encode.setDest(f, tcp4, { address: '10.244.9.9', port: 8080, weight: 1 }));
  await capture('del-dest-missing', encode.delDest(f, tcp4, { address: '10.244.9.9', port: 8080 }));
  await capture('get-service-tcp4', encode.getService(f, tcp4));
  await capture('get-service-missing', encode.getService(f, { ...tcp4, port: 82 }));
  await capture('dump-services', encode.dumpServices(f));
  await capture('dump-dests-tcp4', encode.dumpDests(f, tcp4));
  await capture('dump-dests-udp6', encode.dumpDests(f, udp6));
  await capture('dump-dests-missing', encode.dumpDests(f, { ...tcp4, port: 82 }));
  await capture('set-service-tcp4', encode.setService(f, { ...tcp4, scheduler: 'wrr', persistence: undefined }));
  await capture('del-service-missing', encode.delService(f, { ...tcp4, port: 82 }));
  await capture('flush-end', encode.flush(f));
}

const what = process.argv[2];
if (what === 'nlctrl') {
  await capture('getfamily-nlctrl', encodeGetFamily('nlctrl'));
  await capture('getfamily-missing', encodeGetFamily('switchyard-none'));
} else if (what === 'ipvs') {
  await ipvs();
} else {
  process.stderr.write('usage: node test/support/netlink-capture.ts nlctrl|ipvs\n');
  process.exit(2);
}
raw.close();
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
