// kube-proxy-rules.ts: which of a node's iptables rules are kube-proxy's, and
// the iptables-restore input that removes them. Pure: it reads the text of
// `iptables-save` (either backend, either family) and returns the text to
// feed `iptables-restore --noflush`, so the whole removal of a table is one
// transaction, as kube-proxy's own CleanupLeftovers does it.
//
// What is kube-proxy's (kubernetes/kubernetes pkg/proxy/iptables/cleanup.go
// and pkg/proxy/ipvs/cleanup.go, both modes, current and older releases):
//   nat     KUBE-SERVICES KUBE-NODEPORTS KUBE-POSTROUTING KUBE-MARK-MASQ
//           KUBE-PROXY-CANARY, every KUBE-SVC-/SVL-/EXT-/FW-/SEP-/XLB- chain,
//           and the IPVS mode's KUBE-NODE-PORT KUBE-LOAD-BALANCER KUBE-FIREWALL
//           (nat only: the filter table's KUBE-FIREWALL is kubelet's)
//   filter  KUBE-SERVICES KUBE-EXTERNAL-SERVICES KUBE-FORWARD KUBE-NODEPORTS
//           KUBE-PROXY-FIREWALL KUBE-PROXY-CANARY, and the IPVS mode's
//           KUBE-NODE-PORT KUBE-SOURCE-RANGES-FIREWALL KUBE-IPVS-FILTER
//           KUBE-IPVS-OUT-FILTER
//   mangle  KUBE-PROXY-CANARY
// plus every rule of a built-in chain (PREROUTING, INPUT, FORWARD, OUTPUT,
// POSTROUTING) that jumps to one of them. kube-proxy deletes its jump rules
// by their exact text; removing any built-in rule whose target is one of
// these chains also catches the jumps of older releases (other comments).
//
// Left alone, as kube-proxy leaves them: kubelet's chains (KUBE-FIREWALL in
// filter, KUBE-KUBELET-CANARY, KUBE-MARK-DROP, KUBE-IPTABLES-HINT), every
// chain and rule without a KUBE- name, and the tables themselves (with
// iptables-nft they are the nftables tables `ip nat`, `ip filter`, ...,
// which other tools share). A kube-proxy chain that a chain kept here still
// jumps to is kept too (deleting it would fail the whole transaction) and
// reported, so nothing someone else relies on disappears.

/** A table as iptables-save printed it. */
export interface SavedTable {
  readonly name: string;
  /** Chain names in the order declared (`:NAME POLICY [p:b]`). */
  readonly chains: readonly string[];
  /** Rules as printed, `-A CHAIN ...`, in order. */
  readonly rules: readonly string[];
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

const FIXED: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-PROXY-CANARY', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-FIREWALL'],
  filter: [
    'KUBE-SERVICES',
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-FORWARD',
    'KUBE-NODEPORTS',
    'KUBE-PROXY-FIREWALL',
    'KUBE-PROXY-CANARY',
    'KUBE-NODE-PORT',
    'KUBE-SOURCE-RANGES-FIREWALL',
    'KUBE-IPVS-FILTER',
    'KUBE-IPVS-OUT-FILTER',
  ],
  mangle: ['KUBE-PROXY-CANARY'],
};

/** Per-Service and per-endpoint chains of the iptables mode (nat only). */
const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP|XLB)-[A-Z0-9]+$/;

/** Whether `chain` of `table` is one kube-proxy creates (and deletes in its cleanup). */
export function isKubeProxyChain(table: string, chain: string): boolean {
  if (FIXED[table]?.includes(chain)) return true;
  return table === 'nat' && SERVICE_CHAIN.test(chain);
}

/** The tables of an iptables-save output (comments and blank lines skipped). */
export function parseSave(text: string): SavedTable[] {
  const tables: { name: string; chains: string[]; rules: string[] }[] = [];
  let cur: { name: string; chains: string[]; rules: string[] } | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      cur = { name: line.slice(1), chains: [], rules: [] };
      tables.push(cur);
    } else if (line === 'COMMIT') {
      cur = null;
    } else if (cur !== null && line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name) cur.chains.push(name);
    } else if (cur !== null && line.startsWith('-A ')) {
      cur.rules.push(line);
    }
  }
  return tables;
}

/** Splits a rule line into words, as iptables-restore does (double quotes group, backslash escapes). */
export function ruleWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (ch === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** A rule's chain (`-A CHAIN`) and its jump or goto target, if any. */
export function ruleChainAndTarget(line: string): { chain: string; target: string | null } {
  const w = ruleWords(line);
  const chain = w[1] ?? '';
  let target: string | null = null;
  for (let i = 2; i < w.length - 1; i++) if (w[i] === '-j' || w[i] === '--jump' || w[i] === '-g' || w[i] === '--goto') target = w[i + 1] ?? null;
  return { chain, target };
}

export interface TablePlan {
  readonly table: string;
  /** Chains flushed and deleted. */
  readonly chains: readonly string[];
  /** Built-in chain rules deleted (as printed, `-A ...`). */
  readonly jumps: readonly string[];
  /** kube-proxy chains kept because a chain not removed here jumps to them: `CHAIN (from OTHER)`. */
  readonly kept: readonly string[];
  /** The iptables-restore --noflush input, or null when there is nothing to remove. */
  readonly restore: string | null;
}

/** What to remove from one saved table, and the restore input that does it in one transaction. */
export function planTable(t: SavedTable): TablePlan {
  const existing = new Set(t.chains);
  const remove = new Set(t.chains.filter((c) => !BUILTIN.has(c) && isKubeProxyChain(t.name, c)));
  const kept: string[] = [];
  // A chain that stays (someone else's) and jumps into one of ours keeps it, and what it jumps to in turn.
  for (let changed = true; changed; ) {
    changed = false;
    for (const rule of t.rules) {
      const { chain, target } = ruleChainAndTarget(rule);
      if (target === null || !remove.has(target) || remove.has(chain) || BUILTIN.has(chain)) continue;
      remove.delete(target);
      kept.push(`${target} (from ${chain})`);
      changed = true;
    }
  }
  const jumps = t.rules.filter((rule) => {
    const { chain, target } = ruleChainAndTarget(rule);
    return BUILTIN.has(chain) && target !== null && remove.has(target);
  });
  const chains = t.chains.filter((c) => remove.has(c) && existing.has(c));
  if (chains.length === 0 && jumps.length === 0) return { table: t.name, chains, jumps, kept, restore: null };
  const lines = [
    `*${t.name}`,
    // In --noflush mode a chain line flushes that chain: after these, no chain of ours jumps anywhere.
    ...chains.map((c) => `:${c} - [0:0]`),
    ...jumps.map((rule) => `-D${rule.slice(2)}`),
    ...chains.map((c) => `-X ${c}`),
    'COMMIT',
  ];
  return { table: t.name, chains, jumps, kept, restore: `${lines.join('\n')}\n` };
}

/** The plans of every table kube-proxy writes to (nat, filter, mangle) in one iptables-save output. */
export function planSave(text: string): TablePlan[] {
  return parseSave(text)
    .filter((t) => t.name in FIXED)
    .map(planTable);
}

/** kube-proxy's nftables tables (its nftables mode): `table ip kube-proxy`, `table ip6 kube-proxy`. */
export const KUBE_PROXY_NFT_TABLES = [
  { family: 'ip', name: 'kube-proxy' },
  { family: 'ip6', name: 'kube-proxy' },
] as const;

/** The IPVS mode's dummy interface, holding every Service IP. */
export const KUBE_IPVS_DEVICE = 'kube-ipvs0';

/** The IPVS mode's ipsets (pkg/proxy/ipvs/ipset.go), IPv4 names; IPv6 ones are `KUBE-6-...`, cut to 31 characters. */
const IPVS_IPSETS_V4 = [
  'KUBE-LOOP-BACK',
  'KUBE-CLUSTER-IP',
  'KUBE-EXTERNAL-IP',
  'KUBE-EXTERNAL-IP-LOCAL',
  'KUBE-LOAD-BALANCER',
  'KUBE-LOAD-BALANCER-LOCAL',
  'KUBE-LOAD-BALANCER-FW',
  'KUBE-LOAD-BALANCER-SOURCE-IP',
  'KUBE-LOAD-BALANCER-SOURCE-CIDR',
  'KUBE-NODE-PORT-TCP',
  'KUBE-NODE-PORT-LOCAL-TCP',
  'KUBE-NODE-PORT-UDP',
  'KUBE-NODE-PORT-LOCAL-UDP',
  'KUBE-NODE-PORT-SCTP-HASH',
  'KUBE-NODE-PORT-LOCAL-SCTP-HASH',
  'KUBE-HEALTH-CHECK-NODE-PORT',
  'KUBE-IPVS-IPS',
];

/** Every ipset name kube-proxy's IPVS mode creates, both families. */
export const KUBE_PROXY_IPSETS: readonly string[] = [...IPVS_IPSETS_V4, ...IPVS_IPSETS_V4.map((n) => n.replace('KUBE-', 'KUBE-6-').slice(0, 31))];
