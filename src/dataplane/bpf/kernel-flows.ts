// Flows the kernel translates (kube-proxy's, during a migration) handed to
// the program as "leave alone" entries (SY_CT_F_KERNEL). When Switchyard
// first programs a frontend kube-proxy was carrying, the TCP connections
// kube-proxy DNATed keep their translation in the kernel's conntrack entry.
// Were the program to translate their next packet itself (to a backend it
// picks), netfilter would see a second flow whose reply tuple collides with
// the first: its source port is remapped, or the backend differs, and the
// connection is reset. So, before the first sync lands (and once more right
// after, for connections opened in between), every TCP flow of the kernel's
// conntrack table whose original destination is a frontend about to be
// programmed and whose reply comes from another address (the kernel DNATed
// it) gets a FWD entry with SY_CT_F_KERNEL: the program passes its packets
// to the kernel, which keeps translating them until the connection ends, also
// after kube-proxy's rules are removed (its NAT is in the conntrack entry).
// A new connection on the same tuple (a bare SYN) is the program's again.
// UDP is not handed over: a datagram flow has no connection to break, and a
// kernel entry that expired in a pause would leave the flow untranslated.

import type { ConntrackEntry } from '../../host/conntrack.ts';
import { canonicalIP } from '../../util/ip.ts';
import type { CtKey, CtValue } from './layout.ts';
import { HEADER_DEFINES, SY_CT_DIR_FWD } from './layout.ts';
import { l4Key } from './state.ts';

/** TCP states of a connection still worth carrying (not TIME_WAIT or CLOSE: done). */
const LIVE_TCP = new Set(['SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK']);

export type KernelFlow = readonly [CtKey, CtValue];

/**
 * The SY_CT_F_KERNEL entries for the kernel-DNATed TCP flows to frontends
 * for which `isFrontend` ("10.96.0.10:80/TCP", l4Key form) says true.
 * `nowNs` is CLOCK_MONOTONIC (bpf_ktime_get_ns's clock).
 */
export function kernelFlows(entries: readonly ConntrackEntry[], isFrontend: (key: string) => boolean, nowNs: bigint): { v4: KernelFlow[]; v6: KernelFlow[] } {
  const v4: KernelFlow[] = [];
  const v6: KernelFlow[] = [];
  for (const e of entries) {
    if (e.proto !== 'tcp' || !LIVE_TCP.has(e.state)) continue;
    const client = canonicalIP(e.original.src, 'decimal');
    const front = canonicalIP(e.original.dst, 'decimal');
    const backend = canonicalIP(e.reply.src, 'decimal');
    if (client === null || front === null || backend === null) continue;
    if (backend === front && e.reply.sport === e.original.dport) continue; // not DNATed
    if (!isFrontend(l4Key({ addr: front, port: e.original.dport, proto: 'TCP' }))) continue;
    const key: CtKey = { saddr: client, daddr: front, sport: e.original.sport, dport: e.original.dport, proto: 'TCP', dir: SY_CT_DIR_FWD };
    const value: CtValue = {
      clientAddr: client,
      frontAddr: front,
      backendAddr: backend,
      natAddr: e.family === 'IPv4' ? '0.0.0.0' : '::',
      clientPort: e.original.sport,
      frontPort: e.original.dport,
      backendPort: e.reply.sport,
      natPort: 0,
      backendId: 0,
      svcId: 0,
      flags: HEADER_DEFINES.SY_CT_F_KERNEL,
      tcpState: HEADER_DEFINES.SY_TCP_ESTABLISHED,
      finMask: 0,
      createdNs: nowNs,
      lastSeenNs: nowNs,
    };
    (e.family === 'IPv4' ? v4 : v6).push([key, value]);
  }
  return { v4, v6 };
}
