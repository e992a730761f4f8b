// The kube-proxy rulesets the benchmark (bench/control.ts) and the migration
// test apply: chain names as kube-proxy computes them (checked against the
// names in kube-proxy's own test fixtures and comments), the structure of
// the nftables transactions (every chain a rule or element jumps to is
// added before; one service-ips element and one numgen vmap per Service
// port), and the iptables restore input of a full and of a partial sync.
// That the tools accept them: test/privileged/kube-proxy-rulesets.test.ts.

import { describe, expect, it } from 'vitest';
import {
  kubeProxyNftFull,
  kubeProxyNftPartial,
  nftDeleteChains,
  nftEndpointChain,
  nftServiceChain,
  staleEndpointChains,
} from '../support/kube-proxy-nft-ruleset.ts';
import { type KpService, kubeProxyRestoreInput, LARGE_CLUSTER_ENDPOINTS, sepChain, svcChain } from '../support/kube-proxy-ruleset.ts';

const OPTS = { clusterCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', v6: false } as const;

function svc(i: number, endpoints: number): KpService {
  const eps = Array.from({ length: endpoints }, (_, e) => `10.244.${i}.${e + 1}:8080`);
  return { namespace: `ns${i % 2}`, name: `svc-${i}`, clusterIP: `10.96.0.${i + 1}`, ports: [{ name: 'http', port: 80, protocol: 'TCP', endpoints: eps }] };
}

/** Chains an `nft -f` transaction adds, and the chains its rules and elements jump or go to, in order. */
function nftStructure(text: string): { added: string[]; targets: { line: number; chain: string; added: boolean }[] } {
  const added: string[] = [];
  const targets: { line: number; chain: string; added: boolean }[] = [];
  text
    .trimEnd()
    .split('\n')
    .forEach((line, i) => {
      const add = /^add chain ip kube-proxy (\S+)/.exec(line);
      if (add?.[1] !== undefined) added.push(add[1]);
      for (const m of line.matchAll(/(?:goto|jump) ([^\s,}]+)/g)) {
        const chain = m[1] as string;
        targets.push({ line: i + 1, chain, added: added.includes(chain) });
      }
    });
  return { added, targets };
}

describe("kube-proxy's chain names", () => {
  const s: KpService = {
    namespace: 'ns1',
    name: 'svc1',
    clusterIP: '172.30.0.41',
    ports: [{ name: 'p80', port: 80, protocol: 'TCP', endpoints: ['10.180.0.1:80'] }],
  };
  const p = s.ports[0]!;

  it('iptables: KUBE-SVC and KUBE-SEP as in kube-proxy’s test fixtures', () => {
    expect(svcChain('ns1/svc1:p80', 'tcp')).toBe('KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(sepChain('ns1/svc1:p80', 'tcp', '10.180.0.1:80')).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
  });

  it('nftables: service- and endpoint- chains as in kube-proxy’s comments', () => {
    expect(nftServiceChain(s, p)).toBe('service-ULMVA6XW-ns1/svc1/tcp/p80');
    expect(nftEndpointChain(s, p, '10.180.0.1:80')).toBe('endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
    expect(nftEndpointChain(s, p, '[fd00:10:244::1]:80')).toMatch(/^endpoint-[A-Z2-7]{8}-ns1\/svc1\/tcp\/p80__fd00.10.244..1\/80$/);
  });
});

describe("kube-proxy's nftables transactions", () => {
  const services = [svc(0, 3), svc(1, 1), svc(2, 10)];

  it('first sync: the table set up, every jump and goto to a chain added before, one element and one numgen vmap per Service port', () => {
    const text = kubeProxyNftFull(services, OPTS);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
    expect(lines.every((l) => /^(add|flush|delete) (table|chain|rule|set|map|element) ip kube-proxy /.test(l))).toBe(true);
    const { targets } = nftStructure(text);
    expect(targets.filter((t) => !t.added)).toEqual([]);
    for (const s of services) {
      const p = s.ports[0]!;
      expect(lines).toContain(`add element ip kube-proxy service-ips { ${s.clusterIP} . tcp . 80 : goto ${nftServiceChain(s, p)} }`);
      expect(lines).toContain(`add element ip kube-proxy cluster-ips { ${s.clusterIP} }`);
      const vmap = lines.find((l) => l.startsWith(`add rule ip kube-proxy ${nftServiceChain(s, p)} numgen random mod `));
      expect(vmap).toBe(
        `add rule ip kube-proxy ${nftServiceChain(s, p)} numgen random mod ${p.endpoints.length} vmap { ${p.endpoints
          .map((ep, i) => `${i} : goto ${nftEndpointChain(s, p, ep)}`)
          .join(' , ')} }`,
      );
      for (const ep of p.endpoints) expect(lines).toContain(`add rule ip kube-proxy ${nftEndpointChain(s, p, ep)} meta l4proto tcp dnat to ${ep}`);
    }
    // Base chains on kube-proxy's hooks and priorities.
    expect(lines).toContain('add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }');
    expect(lines).toContain('add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips');
  });

  it('partial sync: only the changed Service’s chains, the stale endpoint chain flushed, no table or map touched', () => {
    const before = svc(0, 3);
    const p = before.ports[0]!;
    const after: KpService = { ...before, ports: [{ ...p, endpoints: [...p.endpoints.slice(1), '10.244.9.9:8080'] }] };
    const stale = staleEndpointChains(before, after);
    expect(stale).toEqual([nftEndpointChain(before, p, p.endpoints[0]!)]);
    const text = kubeProxyNftPartial([after], stale, OPTS);
    expect(text).not.toMatch(/ (table|map|set|element) /);
    const { added, targets } = nftStructure(text);
    // mark-for-masquerade is the first sync's.
    expect(targets.filter((t) => !t.added && t.chain !== 'mark-for-masquerade')).toEqual([]);
    expect(added).toEqual([...after.ports[0]!.endpoints.map((ep) => nftEndpointChain(after, p, ep)), nftServiceChain(after, p)]);
    expect(text.trimEnd().split('\n').at(-1)).toBe(`flush chain ip kube-proxy ${stale[0]}`);
    expect(nftDeleteChains(stale, false)).toBe(`delete chain ip kube-proxy ${stale[0]}\n`);
  });

  it('refuses a Service port without endpoints (its verdict maps are not generated)', () => {
    expect(() => kubeProxyNftFull([svc(0, 0)], OPTS)).toThrow(/ns0\/svc-0:http has no endpoints/);
  });
});

describe("kube-proxy's iptables restore input", () => {
  const declared = (text: string): string[] => [...text.matchAll(/^:(KUBE-(?:SVC|SEP)-\S+) /gm)].map((m) => m[1] as string);

  it('full sync: KUBE-SERVICES rules, KUBE-SVC with the statistic probabilities, KUBE-SEP with the DNAT', () => {
    const s = svc(0, 3);
    const text = kubeProxyRestoreInput([s], { clusterCIDR: '10.244.0.0/16', v6: false });
    const chain = svcChain('ns0/svc-0:http', 'tcp');
    expect(text).toMatch(/^\*filter\n[\s\S]*\nCOMMIT\n\*nat\n[\s\S]*\nCOMMIT\n$/);
    expect(text).not.toMatch(/^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /m); // the jumps are kube-proxy's `iptables -I`, not the restore's
    expect(text).toContain(`-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "ns0/svc-0:http cluster IP" -m tcp --dport 80 -j ${chain}`);
    const probs = [...text.matchAll(new RegExp(`^-A ${chain} .*?(?:--probability (\\S+) )?-j (KUBE-SEP-\\S+)$`, 'gm'))].map((m) => m[1]);
    expect(probs).toEqual(['0.3333333333', '0.5000000000', undefined]);
    expect(text).toContain(
      `-A ${sepChain('ns0/svc-0:http', 'tcp', '10.244.0.1:8080')} -p tcp -m comment --comment "ns0/svc-0:http" -m tcp -j DNAT --to-destination 10.244.0.1:8080`,
    );
    expect(declared(text)).toHaveLength(1 + 3);
  });

  it('partial sync: KUBE-SERVICES in full, chains of the changed Service only', () => {
    const services = [svc(0, 2), svc(1, 2), svc(2, 2)];
    const text = kubeProxyRestoreInput(services, { clusterCIDR: '10.244.0.0/16', v6: false, changed: new Set(['ns1/svc-1']) });
    expect(text.match(/^-A KUBE-SERVICES -d /gm)).toHaveLength(3);
    expect(declared(text)).toEqual([svcChain('ns1/svc-1:http', 'tcp'), ...services[1]!.ports[0]!.endpoints.map((ep) => sepChain('ns1/svc-1:http', 'tcp', ep))]);
  });

  it('large-cluster mode: no comments on KUBE-SVC and KUBE-SEP rules above the endpoint threshold', () => {
    const many = Array.from({ length: LARGE_CLUSTER_ENDPOINTS / 10 + 1 }, (_, i) => svc(i, 10));
    const text = kubeProxyRestoreInput(many, { clusterCIDR: '10.244.0.0/16', v6: false });
    expect(text).not.toMatch(/^-A KUBE-SEP-\S+ .*--comment/m);
    expect(text).not.toMatch(/^-A KUBE-SVC-\S+ -m comment --comment "[^"]* -> /m);
    expect(text).toMatch(/^-A KUBE-SERVICES -d .*--comment "ns0\/svc-0:http cluster IP"/m);
  });
});
