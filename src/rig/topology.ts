// The rig's topology as plain data: which namespaces, links, addresses, routes
// and sysctls a cluster of N nodes x P pods consists of, and the `ip -batch`
// and `sh` text that creates it. Pure: cluster.ts applies the plan.
//
//            ext (198.18.0.100)
//                 |
//   fabric ns: br0 198.18.0.254/24  (every host's default gateway; no forwarding)
//        |                 |
//   node-1 ns eth0     node-2 ns eth0 ...      198.18.0.i/24
//     lo 10.244.1.1/32 (pod gateway)
//     veth0   veth1 ...                         routes 10.244.1.(10+k)/32 dev veth<k>
//       |       |                               routes 10.244.j.0/24 via 198.18.0.j
//   pod-1-0  pod-1-1 (eth0 10.244.1.10/32, 10.244.1.11/32; default via 10.244.1.1 onlink)
//
// Pods are routed, not bridged, as with Calico's or Cilium's native routing:
// each pod has a /32 and a default route via its node's pod gateway
// 10.244.i.1, which sits on the node's `lo`. The node answers the pod's ARP
// for it because Linux replies to ARP for any local address with arp_ignore=0
// (we set that explicitly, since a new namespace inherits IPv4 `conf`
// settings from the root namespace unless net.core.devconf_inherit_init_net
// says otherwise). A node's own pod CIDR is `unreachable` except for its
// pods' /32s, so a packet to a pod that does not exist fails at once instead
// of looping between node and gateway.
//
// The gateway does not forward: a packet that leaves a node toward an address
// not on 198.18.0.0/24 (an untranslated Service IP, say) is dropped there.
// Hosts have the default route anyway, so that such a packet is actually sent
// and passes the dataplane's hooks, instead of failing in connect() with
// ENETUNREACH. IPv6 is disabled in every rig namespace to keep link-local
// chatter (RS, MLD, DAD) out of the dataplane's counters.

export const FABRIC_GATEWAY = '198.18.0.254';
export const EXT_ADDR = '198.18.0.100';
export const NODE_PREFIX_LEN = 24;
export const CLUSTER_POD_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/12';
/** Node i has address 198.18.0.i; .100 is the external client. */
export const MAX_NODES = 99;
/** Pod k on node i has 10.244.i.(10+k). */
export const MAX_PODS_PER_NODE = 240;

export interface Pod {
  /** Kubernetes-ish name, `pod-<node>-<k>`. */
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
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
  readonly podCidr: string;
  /** 10.244.i.1, on the node's `lo`. */
  readonly podGateway: string;
  readonly pods: readonly Pod[];
}

export interface Host {
  readonly name: string;
  readonly ns: string;
  readonly addr: string;
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
  readonly ext: Host;
  readonly nodes: readonly ClusterNode[];
  /** Every namespace of the cluster, fabric first. */
  readonly namespaces: readonly string[];
  /**
   * Runs first, in the fabric namespace: the bridge, and every link of the
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

function sysctlScript(ipForward: 0 | 1): string {
  // `set -e`: any failed write or batch line fails the setup with its message.
  // Per-interface values are written after `ip -batch` so that links created
  // from the fabric namespace (before `default` was set here) get them too.
  return [
    'set -e',
    'c=/proc/sys/net/ipv4/conf',
    `echo ${ipForward} > /proc/sys/net/ipv4/ip_forward`,
    'for d in all default; do echo 0 > $c/$d/rp_filter; echo 0 > $c/$d/arp_ignore; done',
    'if [ -d /proc/sys/net/ipv6/conf ]; then',
    '  echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6',
    '  echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
    'fi',
    'ip -batch -',
    'for d in $c/*; do echo 0 > $d/rp_filter; echo 0 > $d/arp_ignore; done',
  ].join('\n');
}

/** The complete, deterministic plan for a cluster. */
export function planCluster(o: PlanOptions): ClusterPlan {
  validatePlanOptions(o);
  const p = o.prefix;
  const fabric = { name: 'fabric', ns: `${p}-fab`, addr: FABRIC_GATEWAY, bridge: 'br0' };
  const ext: Host = { name: 'ext', ns: `${p}-ext`, addr: EXT_ADDR };

  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const pods: Pod[] = [];
    for (let k = 0; k < o.podsPerNode; k++) {
      pods.push({
        name: `pod-${i}-${k}`,
        ns: `${p}-n${i}p${k}`,
        ip: `10.244.${i}.${10 + k}`,
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
      podCidr: `10.244.${i}.0/24`,
      podGateway: `10.244.${i}.1`,
      pods,
    });
  }

  const links: string[] = [
    `link add ${fabric.bridge} type bridge`,
    `link set ${fabric.bridge} up`,
    `addr add ${fabric.addr}/${NODE_PREFIX_LEN} dev ${fabric.bridge}`,
    'link set lo up',
  ];
  const port = (name: string, peerNs: string): string[] => [
    `link add ${name} type veth peer name eth0 netns ${peerNs}`,
    `link set ${name} master ${fabric.bridge}`,
    `link set ${name} up`,
  ];
  for (const n of nodes) {
    links.push(...port(`n${n.index}`, n.ns));
    for (const pod of n.pods) {
      // Created from the fabric namespace straight into the node's and the
      // pod's namespaces: one `ip` run makes every link of the cluster, and
      // nothing is ever created in the root namespace.
      links.push(`link add ${pod.hostIf} netns ${n.ns} type veth peer name eth0 netns ${pod.ns}`);
    }
  }
  links.push(...port('ext', ext.ns));

  // The gateway only answers for its own address; nothing is forwarded.
  const fabricSetup: NamespaceSetup = { ns: fabric.ns, script: sysctlScript(0), batch: links };
  const setup: NamespaceSetup[] = [
    {
      ns: ext.ns,
      script: sysctlScript(0),
      batch: ['link set lo up', `addr add ${ext.addr}/${NODE_PREFIX_LEN} dev eth0`, 'link set eth0 up', `route add default via ${fabric.addr} dev eth0`],
    },
  ];
  for (const n of nodes) {
    const batch = [
      'link set lo up',
      `addr add ${n.podGateway}/32 dev lo`,
      `addr add ${n.addr}/${NODE_PREFIX_LEN} dev eth0`,
      'link set eth0 up',
      `route add default via ${fabric.addr} dev eth0`,
      `route add unreachable ${n.podCidr}`,
    ];
    for (const other of nodes) {
      if (other !== n) batch.push(`route add ${other.podCidr} via ${other.addr} dev eth0`);
    }
    for (const pod of n.pods) {
      batch.push(`link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} src ${n.podGateway}`);
    }
    setup.push({ ns: n.ns, script: sysctlScript(1), batch });
    for (const pod of n.pods) {
      setup.push({
        ns: pod.ns,
        script: sysctlScript(0),
        batch: [
          'link set lo up',
          `addr add ${pod.ip}/32 dev eth0`,
          'link set eth0 up',
          `route add ${pod.gateway} dev eth0 scope link`,
          `route add default via ${pod.gateway} dev eth0`,
        ],
      });
    }
  }

  const namespaces = [fabric.ns, ext.ns, ...nodes.flatMap((n) => [n.ns, ...n.pods.map((pod) => pod.ns)])];
  return { prefix: p, fabric, ext, nodes, namespaces, fabricSetup, setup };
}
