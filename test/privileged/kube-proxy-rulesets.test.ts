// The kube-proxy rulesets the benchmark applies (bench/control.ts) are ones
// the tools accept, at a small size, in a temporary network namespace:
// `nft -c -f` checks kube-proxy's first-sync transaction and, once it is
// applied, its partial-sync transaction; `iptables-restore --test` checks
// the restore input of a full and of a partial sync. Applied for real, the
// tables hold one entry per Service (what the benchmark's check counts).
// Their structure: test/unit/kube-proxy-rulesets.test.ts.

import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeProxyNftFull, kubeProxyNftPartial, nftDeleteChains, staleEndpointChains } from '../support/kube-proxy-nft-ruleset.ts';
import { type KpService, kubeProxyJumps, kubeProxyRestoreInput } from '../support/kube-proxy-ruleset.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the kube-proxy ruleset check', ['root', 'ip', 'nft', 'iptables']);

const NS = `sy-kprs-${process.pid}`;
const OPTS = { clusterCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', v6: false } as const;
const SERVICES = 50;

function svc(i: number, eps: readonly string[]): KpService {
  return { namespace: `ns${i % 3}`, name: `svc-${i}`, clusterIP: `10.96.1.${i + 1}`, ports: [{ name: 'http', port: 80, protocol: 'TCP', endpoints: eps }] };
}

const services = Array.from({ length: SERVICES }, (_, i) => svc(i, [`10.244.${i}.1:8080`, `10.244.${i}.2:8080`, `10.244.${i}.3:8080`]));

/** Runs argv in the namespace with `input` on stdin; the exit status and stderr. */
function inNs(argv: readonly string[], input = ''): { ok: boolean; stderr: string; stdout: string } {
  try {
    const stdout = execFileSync('ip', ['netns', 'exec', NS, ...argv], { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    return { ok: true, stderr: '', stdout };
  } catch (err) {
    const e = err as { stderr?: Buffer };
    return { ok: false, stderr: e.stderr?.toString() ?? String(err), stdout: '' };
  }
}

describe.skipIf(skip)("kube-proxy's rulesets, checked by the tools in a temporary network namespace", () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NS]);
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', NS]);
  });

  it('nft -c accepts the first sync, nft -f applies it, then nft -c accepts a partial sync and the stale-chain deletion', () => {
    const full = kubeProxyNftFull(services, OPTS);
    expect(inNs(['nft', '-c', '-f', '-'], full).stderr).toBe('');
    // -c changes nothing.
    expect(inNs(['nft', 'list', 'tables']).stdout).not.toContain('kube-proxy');
    expect(inNs(['nft', '-f', '-'], full).ok).toBe(true);
    const map = inNs(['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips']).stdout;
    expect(map.split(': goto service-').length - 1).toBe(SERVICES);

    const before = services[7] as KpService;
    const after = svc(7, ['10.244.7.2:8080', '10.244.7.3:8080', '10.244.77.1:8080']);
    const stale = staleEndpointChains(before, after);
    expect(stale).toHaveLength(1);
    const partial = kubeProxyNftPartial([after], stale, OPTS);
    expect(inNs(['nft', '-c', '-f', '-'], partial).stderr).toBe('');
    expect(inNs(['nft', '-f', '-'], partial).ok).toBe(true);
    expect(inNs(['nft', 'list', 'chain', 'ip', 'kube-proxy', stale[0] as string]).stdout).not.toContain('dnat');
    expect(inNs(['nft', '-f', '-'], nftDeleteChains(stale, false)).ok).toBe(true);
    expect(inNs(['nft', 'list', 'table', 'ip', 'kube-proxy']).stdout).toContain('dnat to 10.244.77.1:8080');
  });

  it('iptables-restore --test accepts the full and the partial restore input; applied, KUBE-SERVICES has a rule per Service', () => {
    const full = kubeProxyRestoreInput(services, { clusterCIDR: OPTS.clusterCIDR, v6: false });
    expect(inNs(['iptables-nft-restore', '--noflush', '--test'], kubeProxyJumps()).stderr).toBe('');
    expect(inNs(['iptables-nft-restore', '--noflush', '--counters', '--test'], full).stderr).toBe('');
    expect(inNs(['iptables-nft-restore', '--noflush'], kubeProxyJumps()).ok).toBe(true);
    expect(inNs(['iptables-nft-restore', '--noflush', '--counters'], full).ok).toBe(true);
    const changed = services.map((s, i) => (i === 7 ? svc(7, ['10.244.7.2:8080', '10.244.77.1:8080']) : s));
    const partial = kubeProxyRestoreInput(changed, { clusterCIDR: OPTS.clusterCIDR, v6: false, changed: new Set(['ns1/svc-7']) });
    expect(inNs(['iptables-nft-restore', '--noflush', '--counters', '--test'], partial).stderr).toBe('');
    expect(inNs(['iptables-nft-restore', '--noflush', '--counters'], partial).ok).toBe(true);
    const saved = inNs(['iptables-nft-save', '-t', 'nat']).stdout;
    expect(saved.split('\n-A KUBE-SERVICES -d ').length - 1).toBe(SERVICES);
    expect(saved).toContain('--to-destination 10.244.77.1:8080');
  });

  it('a ruleset the tools reject is reported (the benchmark fails on it)', () => {
    const bad = kubeProxyNftFull(services.slice(0, 1), OPTS).replace('numgen random mod 3', 'numgen random mod');
    expect(inNs(['nft', '-c', '-f', '-'], bad).ok).toBe(false);
  });
});
