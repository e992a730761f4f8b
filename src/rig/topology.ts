// The rig's topology as plain data: which namespaces, links, addresses, routes,
// sysctls and firewall rules a cluster of N nodes x P pods consists of, and
// the `ip -batch`, `sh` and `nft` text that creates it. Pure: cluster.ts
// applies the plan.
//
//   ext 198.18.1.100  ext2 198.18.1.101        (external clients; v6 fd00:198:18::1:100, ::1:101)
//          |            |
//   fabric ns: br1 198.18.1.254/24 fd00:198:18::1:254/112   the gateway: forwards between
//              br0 198.18.0.254/24 fd00:198:18::254/112     its two bridges
//        |                 |
//   node-1 ns eth0     node-2 ns eth0 ...      198.18.0.i/24, fd00:198:18::i/112
//     lo 10.244.1.1/32 (pod gateway)
//     veth0   veth1 ...                         routes 10.244.1.(10+k)/32 dev veth<k>
//       |       |                               routes 10.244.j.0/24 via 198.18.0.j
//   pod-1-0  pod-1-1 (eth0 10.244.1.10/32, fd00:10:244:1::10/128; default via 10.244.1.1 onlink
//                     and via fe80::1, the link-local address of every host-side veth)
//
// Nodes are configured like real ones (DESIGN §7): IPv4 and IPv6 forwarding,
// strict reverse-path filtering (rp_filter=1 on `all`, `default` and every
// interface, the RHEL default), an nftables `ct state invalid drop` rule in a
// forward-hook chain (what Calico, firewalld and kube-proxy's KUBE-FORWARD
// install), and a default route (both families) to the gateway.
//
// Pods are routed, not bridged, as with Calico's or Cilium's native routing:
// each pod has a /32 (and a /128) and a default route via its node. IPv4: the
// pod gateway 10.244.i.1 sits on the node's `lo`, and the node answers the
// pod's ARP for it because Linux replies to ARP for any local address with
// arp_ignore=0 (set explicitly: a new namespace inherits IPv4 `conf` settings
// from the root namespace unless net.core.devconf_inherit_init_net says
// otherwise). IPv6 does not answer neighbour solicitations for an address of
// another interface, so every host-side veth carries fe80::1 (as Calico's
// do) and pods route via it. A node's own pod ranges are `unreachable` except
// for its pods' host routes, so a packet to a pod that does not exist fails
// at once instead of looping between node and gateway.
//
// The gateway forwards between the nodes' segment and the external clients'
// one, and routes the LoadBalancer/external IP range (198.19.0.0/24,
// fd00:198:18::2:0/112) to node 1 (tests may point single addresses at
// another node). Service ranges are blackholed there: a packet to a Service
// IP that no dataplane translated leaves the node (hosts have the default
// route, so connect() does not fail with ENETUNREACH and the packet passes
// the dataplane's hooks) and dies silently at the gateway. The gateway has no
// route to pod ranges: the outside world does not reach pods directly.
//
// IPv6 is quiet on purpose: no DAD (addresses are usable at once), no router
// solicitations or advertisements, so the dataplane's counters see only the
// test's traffic (and some MLD reports, which are not ours).

export const FABRIC_GATEWAY = '198.18.0.254';
export const FABRIC_GATEWAY6 = 'fd00:198:18::254';
/** The gateway's address on the external clients' segment. */
export const CLIENT_GATEWAY = '198.18.1.254';
export const CLIENT_GATEWAY6 = 'fd00:198:18::1:254';
export const EXT_ADDR = '198.18.1.100';
export const EXT_ADDR6 = 'fd00:198:18::1:100';
export const EXT2_ADDR = '198.18.1.101';
export const EXT2_ADDR6 = 'fd00:198:18::1:101';
export const NODE_PREFIX_LEN = 24;
export const NODE_PREFIX_LEN6 = 112;
export const CLUSTER_POD_CIDR = '10.244.0.0/16';
export const CLUSTER_POD_CIDR6 = 'fd00:10:244::/56';
export const SERVICE_CIDR = '10.96.0.0/12';
export const SERVICE_CIDR6 = 'fd00:10:96::/112';
/** LoadBalancer ingress IPs and externalIPs; the gateway routes them to node 1. */
export const LB_CIDR = '198.19.0.0/24';
export const LB_CIDR6 = 'fd00:198:18::2:0/112';
/** The link-local address of every host-side pod veth: the pods' IPv6 gateway. */
export const POD_GATEWAY6 = 'fe80::1';
/** Node i has address 198.18.0.i; clients are on 198.18.1.0/24. */
export const MAX_NODES = 99;
/** Pod k on node i has 10.244.i.(10+k). */
export const MAX_PODS_PER_NODE = 240;
/** The nftables table each node gets (inet family: both address families). */
export const NODE_NFT_TABLE = 'sy_rig';

export interface Pod {
  /** Kubernetes-ish name, `pod-<node>-<k>`. */
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  /** fd00:10:244:<i>::<10+k>. */
  readonly ip6: string;
  /** 1-based index of the node the pod runs on. */
  readonly node: number;
  /** 0-based index of the pod on its node. */
  readonly index: number;
  /** Host side of the pod's veth, in the node's namespace (`veth<k>`). */
  readonly hostIf: string;
  /** The pod's default gateway (its node's 10.244.i.1). */
  readonly gateway: string;
}

export interface ClusterNode {
  /** 1-based. */
  readonly index: number;
  /** Kubernetes-ish name, `node-<i>`. */
  readonly name: string;
  readonly ns: string;
  /** The node's address on `eth0`. */
  readonly addr: string;
  /** The node's IPv6 address on `eth0`, fd00:198:18::<i>. */
  readonly addr6: string;
  readonly podCidr: string;
  /** fd00:10:244:<i>::/64. */
  readonly podCidr6: string;
  /** 10.244.i.1, on the node's `lo`. */
  readonly podGateway: string;
  readonly pods: readonly Pod[];
}

export interface Host {
  readonly name: string;
  readonly ns: string;
  readonly addr: string;
  readonly addr6: string;
}

export interface NamespaceSetup {
  readonly ns: string;
  /** Shell script run with `sh -c` inside the namespace; it runs `ip -batch -` on its stdin. */
  readonly script: string;
  /** `ip -batch` lines fed to the script's stdin. */
  readonly batch: readonly string[];
}

export interface ClusterPlan {
  readonly prefix: string;
  readonly fabric: Host & { readonly bridge: string };
  /** The external client. */
  readonly ext: Host;
  /** A second external client (e.g. outside a LoadBalancer's source ranges). */
  readonly ext2: Host;
  readonly nodes: readonly ClusterNode[];
  /** Every namespace of the cluster, fabric first. */
  readonly namespaces: readonly string[];
  /**
   * Runs first, in the fabric namespace: the bridges, and every link of the
   * cluster, each created straight into its namespaces.
   */
  readonly fabricSetup: NamespaceSetup;
  /** Then every other namespace; independent of each other, run in parallel. */
  readonly setup: readonly NamespaceSetup[];
}

export interface PlanOptions {
  nodes: number;
  podsPerNode: number;
  prefix: string;
}

const PREFIX_RE = /^[a-z][a-z0-9]{0,15}$/;

/** Throws unless the options describe a cluster the address plan can hold. */
export function validatePlanOptions(o: PlanOptions): void {
  if (!PREFIX_RE.test(o.prefix)) {
    throw new RangeError(`prefix ${JSON.stringify(o.prefix)}: want ${PREFIX_RE} (it starts every namespace name)`);
  }
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > MAX_NODES) {
    throw new RangeError(`nodes ${o.nodes}: want an integer in [1, ${MAX_NODES}]`);
  }
  if (!Number.isInteger(o.podsPerNode) || o.podsPerNode < 0 || o.podsPerNode > MAX_PODS_PER_NODE) {
    throw new RangeError(`podsPerNode ${o.podsPerNode}: want an integer in [0, ${MAX_PODS_PER_NODE}]`);
  }
}

/** `ip -batch` lines for the node's end of a pod's veth (named hostIf): the pod's gateway addresses and its host routes. */
export function podHostSide(n: ClusterNode, pod: Pod, hostIf: string): string[] {
  return [
    `addr add ${POD_GATEWAY6}/64 dev ${hostIf} nodad`,
    `link set ${hostIf} up`,
    `route add ${pod.ip}/32 dev ${hostIf} src ${n.podGateway}`,
    `route add ${pod.ip6}/128 dev ${hostIf}`,
  ];
}

/** `ip -batch` lines for the pod's end of its veth (eth0): its addresses and default routes via its node. */
export function podSide(pod: Pod): string[] {
  return [
    `addr add ${pod.ip}/32 dev eth0`,
    `addr add ${pod.ip6}/128 dev eth0 nodad`,
    'link set eth0 up',
    `route add ${pod.gateway} dev eth0 scope link`,
    `route add default via ${pod.gateway} dev eth0`,
    `route add default via ${POD_GATEWAY6} dev eth0`,
  ];
}

type Role = 'host' | 'gateway' | 'node';

/**
 * The namespace's sysctls around its `ip -batch`. `set -e`: any failed write
 * or batch line fails the setup with its message. Per-interface values are
 * written before `ip -batch` (links created from the fabric namespace exist
 * already, before `default` was set here; IPv6 settings must be in place
 * before a link comes up) and after it (links the batch creates).
 */
function sysctlScript(role: Role): string {
  const forward = role === 'host' ? 0 : 1;
  const rp = role === 'node' ? 1 : 0;
  const perIf = [
    'each() {',
    `  for d in $c/*; do echo 0 > $d/arp_ignore; echo ${rp} > $d/rp_filter; echo 0 > $d/send_redirects; done`,
    '  for d in $c6/*; do echo 0 > $d/accept_dad; echo 0 > $d/accept_ra; echo 0 > $d/router_solicitations; echo 0 > $d/disable_ipv6; done',
    '}',
  ];
  const lines = [
    'set -e',
    'c=/proc/sys/net/ipv4/conf',
    'c6=/proc/sys/net/ipv6/conf',
    `echo ${forward} > /proc/sys/net/ipv4/ip_forward`,
    `echo ${forward} > $c6/all/forwarding`,
    ...perIf,
    'each',
    'ip -batch -',
    'each',
  ];
  if (role === 'node') {
    // The forward path of a real node: conntrack INVALID dropped (counted,
    // so a test can show it), before anything else may accept.
    lines.push(
      `nft -f - <<'NFT'`,
      `table inet ${NODE_NFT_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      '    ct state invalid counter drop',
      '  }',
      '}',
      'NFT',
    );
  }
  return lines.join('\n');
}

/** The complete, deterministic plan for a cluster. */
export function planCluster(o: PlanOptions): ClusterPlan {
  validatePlanOptions(o);
  const p = o.prefix;
  const fabric = { name: 'fabric', ns: `${p}-fab`, addr: FABRIC_GATEWAY, addr6: FABRIC_GATEWAY6, bridge: 'br0' };
  const clientBridge = 'br1';
  const ext: Host = { name: 'ext', ns: `${p}-ext`, addr: EXT_ADDR, addr6: EXT_ADDR6 };
  const ext2: Host = { name: 'ext2', ns: `${p}-ext2`, addr: EXT2_ADDR, addr6: EXT2_ADDR6 };

  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const pods: Pod[] = [];
    for (let k = 0; k < o.podsPerNode; k++) {
      pods.push({
        name: `pod-${i}-${k}`,
        ns: `${p}-n${i}p${k}`,
        ip: `10.244.${i}.${10 + k}`,
        ip6: `fd00:10:244:${i}::${10 + k}`,
        node: i,
        index: k,
        hostIf: `veth${k}`,
        gateway: `10.244.${i}.1`,
      });
    }
    nodes.push({
      index: i,
      name: `node-${i}`,
      ns: `${p}-n${i}`,
      addr: `198.18.0.${i}`,
      addr6: `fd00:198:18::${i}`,
      podCidr: `10.244.${i}.0/24`,
      podCidr6: `fd00:10:244:${i}::/64`,
      podGateway: `10.244.${i}.1`,
      pods,
    });
  }

  const links: string[] = [
    'link set lo up',
    `link add ${fabric.bridge} type bridge`,
    `link set ${fabric.bridge} up`,
    `addr add ${fabric.addr}/${NODE_PREFIX_LEN} dev ${fabric.bridge}`,
    `addr add ${fabric.addr6}/${NODE_PREFIX_LEN6} dev ${fabric.bridge} nodad`,
    `link add ${clientBridge} type bridge`,
    `link set ${clientBridge} up`,
    `addr add ${CLIENT_GATEWAY}/24 dev ${clientBridge}`,
    `addr add ${CLIENT_GATEWAY6}/${NODE_PREFIX_LEN6} dev ${clientBridge} nodad`,
  ];
  const port = (name: string, peerNs: string, bridge: string): string[] => [
    `link add ${name} type veth peer name eth0 netns ${peerNs}`,
    `link set ${name} master ${bridge}`,
    `link set ${name} up`,
  ];
  for (const n of nodes) {
    links.push(...port(`n${n.index}`, n.ns, fabric.bridge));
    for (const pod of n.pods) {
      // Created from the fabric namespace straight into the node's and the
      // pod's namespaces: one `ip` run makes every link of the cluster, and
      // nothing is ever created in the root namespace.
      links.push(`link add ${pod.hostIf} netns ${n.ns} type veth peer name eth0 netns ${pod.ns}`);
    }
  }
  links.push(...port('ext', ext.ns, clientBridge), ...port('ext2', ext2.ns, clientBridge));
  // Routing at the gateway: LoadBalancer/external IPs to node 1, Service
  // ranges nowhere (silently).
  const first = nodes[0];
  if (first) links.push(`route add ${LB_CIDR} via ${first.addr}`, `route add ${LB_CIDR6} via ${first.addr6}`);
  links.push(`route add blackhole ${SERVICE_CIDR}`, `route add blackhole ${SERVICE_CIDR6}`);

  const fabricSetup: NamespaceSetup = { ns: fabric.ns, script: sysctlScript('gateway'), batch: links };
  const client = (h: Host): NamespaceSetup => ({
    ns: h.ns,
    script: sysctlScript('host'),
    batch: [
      'link set lo up',
      `addr add ${h.addr}/24 dev eth0`,
      `addr add ${h.addr6}/${NODE_PREFIX_LEN6} dev eth0 nodad`,
      'link set eth0 up',
      `route add default via ${CLIENT_GATEWAY} dev eth0`,
      `route add default via ${CLIENT_GATEWAY6} dev eth0`,
    ],
  });
  const setup: NamespaceSetup[] = [client(ext), client(ext2)];
  for (const n of nodes) {
    const batch = [
      'link set lo up',
      `addr add ${n.podGateway}/32 dev lo`,
      `addr add ${n.addr}/${NODE_PREFIX_LEN} dev eth0`,
      `addr add ${n.addr6}/${NODE_PREFIX_LEN6} dev eth0 nodad`,
      'link set eth0 up',
      `route add default via ${fabric.addr} dev eth0`,
      `route add default via ${fabric.addr6} dev eth0`,
      `route add unreachable ${n.podCidr}`,
      `route add unreachable ${n.podCidr6}`,
    ];
    for (const other of nodes) {
      if (other !== n) batch.push(`route add ${other.podCidr} via ${other.addr} dev eth0`, `route add ${other.podCidr6} via ${other.addr6} dev eth0`);
    }
    for (const pod of n.pods) batch.push(...podHostSide(n, pod, pod.hostIf));
    setup.push({ ns: n.ns, script: sysctlScript('node'), batch });
    for (const pod of n.pods) setup.push({ ns: pod.ns, script: sysctlScript('host'), batch: ['link set lo up', ...podSide(pod)] });
  }

  const namespaces = [fabric.ns, ext.ns, ext2.ns, ...nodes.flatMap((n) => [n.ns, ...n.pods.map((pod) => pod.ns)])];
  return { prefix: p, fabric, ext, ext2, nodes, namespaces, fabricSetup, setup };
}
