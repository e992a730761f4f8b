// The one list of what the model decides that a dataplane does not carry
// out yet. Each gap names the feature (logged once at start by `run`) and,
// when a ServicePort can be seen to need it, the problem reported for that
// ServicePort on every sync (compile turns it into a Problem), so nothing
// the model decided is silently ignored.

import type { ServicePortInfo } from '../model/types.ts';

export interface Gap {
  /** What is missing, for the start-up log. */
  readonly feature: string;
  /** The ServicePortInfo field whose value needs the feature; null when no ServicePort shows it. */
  readonly field: string | null;
  /** The problem message for a ServicePort that needs the feature, else null. */
  problem(sp: ServicePortInfo): string | null;
}

/** What the bpf dataplane does not program yet. */
export const BPF_GAPS: readonly Gap[] = [];

const IPVS_LATER = 'is not programmed by the ipvs dataplane yet';

/**
 * What the ipvs dataplane does not carry out yet (no nftables table of its
 * own so far: masquerade, hairpin, source ranges, REJECT/DROP).
 */
export const IPVS_GAPS: readonly Gap[] = [
  {
    feature: 'masquerade (externalTrafficPolicy Cluster, --masquerade-all, non-pod sources) and hairpin',
    field: null,
    problem: () => null,
  },
  {
    feature: 'loadBalancerSourceRanges',
    field: 'loadBalancerSourceRanges',
    problem: (sp) =>
      sp.loadBalancerSourceRanges.length > 0 && sp.loadBalancerIPs.length > 0
        ? `loadBalancerSourceRanges ${IPVS_LATER}; every source reaches the LoadBalancer IPs`
        : null,
  },
  {
    feature: 'REJECT and DROP verdicts (a virtual service without real servers answers ICMP port unreachable)',
    field: null,
    problem: () => null,
  },
];

/** The start-up summary: every gap's feature, comma-separated. */
export function gapSummary(gaps: readonly Gap[]): string {
  return gaps.map((g) => g.feature).join(', ');
}

/** The problems of one ServicePort against a gap list. */
export function gapProblems(gaps: readonly Gap[], sp: ServicePortInfo): Array<{ field: string; message: string }> {
  const out: Array<{ field: string; message: string }> = [];
  for (const g of gaps) {
    if (g.field === null) continue;
    const message = g.problem(sp);
    if (message !== null) out.push({ field: g.field, message });
  }
  return out;
}
