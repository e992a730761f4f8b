// The IPVS dataplane (src/dataplane/ipvs/): compile from the shared
// frontends and verdicts, the scoped diff, and the dataplane over the fake
// IPVS kernel (test/support/fake-ipvs.ts, the kernel's bytes and errnos)
// with an in-memory kube-ipvs0: first sync, a one-Service change that
// touches only that Service, adoption of what a previous daemon left; the
// sysctls; the rtnetlink messages for kube-ipvs0.

import { describe, expect, test } from 'vitest';
import { IpvsClient, type IpvsOp } from '../../src/host/ipvs/client.ts';
import { Attrs } from '../../src/host/netlink/attributes.ts';
import { parseMessages } from '../../src/host/netlink/message.ts';
import { decodeAddr, encodeDelAddr, encodeGetLink, encodeNewAddr, encodeNewDummy, RTM_NEWADDR } from '../../src/host/netlink/rtnl.ts';
import type { ServiceAddresses } from '../../src/host/service-device.ts';
import { changedScope, compile, ipvsCompileOptions, type IpvsDesired } from '../../src/dataplane/ipvs/compile.ts';
import { ipvsSysctls, IpvsDataplane, type IpvsTable, type Sysctl } from '../../src/dataplane/ipvs/dataplane.ts';
import { diff } from '../../src/dataplane/ipvs/diff.ts';
import type { Virtual, VirtualKey } from '../../src/dataplane/ipvs/state.ts';
import type { ServicePortInfo } from '../../src/model/types.ts';
import { nullLogger } from '../../src/util/log.ts';
import { FakeIpvs } from '../support/fake-ipvs.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { endpoint, servicePortInfo, snapshot } from '../support/snapshots.ts';

const NODE_IPS = ['198.18.0.1', 'fd00:198:18::1'];
const OPTS = ipvsCompileOptions({ nodeIPs: NODE_IPS });

function web(eps: string[] = ['10.244.1.5:8080', '10.244.2.6:8080'], more: Partial<ServicePortInfo> = {}): ServicePortInfo {
  return servicePortInfo({ name: 'web', clusterIPs: ['10.96.0.10'], port: 80, endpoints: eps.map((e) => endpoint(e)), ...more });
}

function dns(eps: string[] = ['10.244.1.7:5353']): ServicePortInfo {
  return servicePortInfo({ name: 'dns', protocol: 'UDP', clusterIPs: ['10.96.0.53'], port: 53, endpoints: eps.map((e) => endpoint(e)) });
}

/** The desired table as lines: "key scheduler [persistence] -> reals". */
function lines(d: IpvsDesired): string[] {
  return [...d.virtuals.values()]
    .map((v) => {
      const p = v.service.persistence ? ` persistent ${v.service.persistence.timeout}s /${v.service.persistence.prefix}` : '';
      return `${v.key} ${v.service.scheduler}${p} ${v.kind} -> ${[...v.reals.keys()].join(' ') || '(none)'}`;
    })
    .sort();
}

describe('compile', () => {
  test('a virtual service per frontend address: ClusterIP, NodePort per node address, ExternalIP, LoadBalancer IP; both families; TCP, UDP, SCTP', () => {
    const dual = servicePortInfo({
      name: 'dual',
      clusterIPs: ['10.96.0.20', 'fd00:10:96::20'],
      port: 443,
      nodePort: 30443,
      externalIPs: ['198.18.5.5'],
      loadBalancerIPs: ['198.18.6.6', 'fd00:198:18::66'],
      endpoints: [endpoint('10.244.1.5:8443'), endpoint('[fd00:10:244::5]:8443')],
    });
    const sctp = servicePortInfo({ name: 's', protocol: 'SCTP', clusterIPs: ['10.96.0.30'], port: 9, endpoints: [endpoint('10.244.1.9:9')] });
    const d = compile(snapshot([dual, dns(), sctp]), OPTS);
    expect(lines(d)).toStrictEqual([
      'SCTP/10.96.0.30:9 rr clusterIP -> 10.244.1.9:9',
      'TCP/10.96.0.20:443 rr clusterIP -> 10.244.1.5:8443',
      'TCP/198.18.0.1:30443 rr nodePort -> 10.244.1.5:8443',
      'TCP/198.18.5.5:443 rr externalIP -> 10.244.1.5:8443',
      'TCP/198.18.6.6:443 rr loadBalancer -> 10.244.1.5:8443',
      'TCP/[fd00:10:96::20]:443 rr clusterIP -> [fd00:10:244::5]:8443',
      'TCP/[fd00:198:18::1]:30443 rr nodePort -> [fd00:10:244::5]:8443',
      'TCP/[fd00:198:18::66]:443 rr loadBalancer -> [fd00:10:244::5]:8443',
      'UDP/10.96.0.53:53 rr clusterIP -> 10.244.1.7:5353',
    ]);
    expect([...d.addresses].sort(), 'kube-ipvs0: ClusterIPs, ExternalIPs, LoadBalancer IPs; never node addresses').toStrictEqual([
      '10.96.0.20',
      '10.96.0.30',
      '10.96.0.53',
      '198.18.5.5',
      '198.18.6.6',
      'fd00:10:96::20',
      'fd00:198:18::66',
    ]);
    expect(d.problems).toStrictEqual([]);
    for (const v of d.virtuals.values()) for (const r of v.reals.values()) expect(r.weight).toBe(1);
  });

  test('--ipvs-scheduler and ClientIP affinity (persistence with its timeout, one client address); --nodeport-addresses filters NodePorts', () => {
    const sticky = web(undefined, { sessionAffinity: { timeoutSeconds: 600 }, nodePort: 30080 });
    const d = compile(snapshot([sticky]), ipvsCompileOptions({ scheduler: 'lc', nodeIPs: [...NODE_IPS, '192.0.2.7'], nodePortAddresses: ['198.18.0.0/15'] }));
    expect(lines(d)).toStrictEqual([
      'TCP/10.96.0.10:80 lc persistent 600s /32 clusterIP -> 10.244.1.5:8080 10.244.2.6:8080',
      'TCP/198.18.0.1:30080 lc persistent 600s /32 nodePort -> 10.244.1.5:8080 10.244.2.6:8080',
    ]);
  });

  test('externalTrafficPolicy Local: NodePorts get this node’s endpoints only; no endpoints: a virtual service without real servers; headless: none', () => {
    const local = servicePortInfo({
      name: 'local',
      clusterIPs: ['10.96.0.40'],
      port: 80,
      nodePort: 30040,
      externalPolicyLocal: true,
      endpoints: [endpoint('10.244.1.5:80', 'node-a'), endpoint('10.244.2.5:80', 'node-b')],
    });
    const empty = servicePortInfo({ name: 'empty', clusterIPs: ['10.96.0.41'], port: 80, endpoints: [] });
    const headless = servicePortInfo({ name: 'headless', clusterIPs: ['None'], port: 80, endpoints: [endpoint('10.244.1.5:80')] });
    const d = compile(snapshot([local, empty, headless]), ipvsCompileOptions({ nodeIPs: ['198.18.0.1'] }));
    expect(lines(d)).toStrictEqual([
      'TCP/10.96.0.40:80 rr clusterIP -> 10.244.1.5:80 10.244.2.5:80',
      'TCP/10.96.0.41:80 rr clusterIP -> (none)',
      'TCP/198.18.0.1:30040 rr nodePort -> 10.244.1.5:80',
    ]);
  });

  test('two ServicePorts on one virtual service: the lower id wins, the other is a problem; bad endpoints are problems', () => {
    const a = servicePortInfo({ name: 'a', clusterIPs: ['10.96.0.10'], port: 80, endpoints: [endpoint('10.244.1.1:80'), endpoint('10.244.1.x:80')] });
    const b = servicePortInfo({ name: 'b', clusterIPs: ['10.96.0.10'], port: 80, endpoints: [endpoint('10.244.1.2:80')] });
    const d = compile(snapshot([b, a]), OPTS);
    expect(lines(d)).toStrictEqual(['TCP/10.96.0.10:80 rr clusterIP -> 10.244.1.1:80']);
    expect(d.problems.map((p) => `${p.owner} ${p.field}`)).toStrictEqual(['ns/a:/TCP endpoints', 'ns/b:/TCP frontend']);
  });

  test('an unchanged ServicePort object is not compiled again; the scope is the changed ServicePorts’ virtual services, before and after', () => {
    const w = web();
    const first = compile(snapshot([w, dns()]), OPTS);
    const moved = web(['10.244.1.5:8080'], { clusterIPs: ['10.96.0.11'] });
    const second = compile(snapshot([moved, first.byServicePort.get(dns().id)!.sp], new Set([w.id])), OPTS, first);
    expect(second.byServicePort.get(dns().id)!.compiled, 'reused').toBe(first.byServicePort.get(dns().id)!.compiled);
    expect([...(changedScope(first, second, new Set([w.id])) as Set<string>)].sort()).toStrictEqual(['TCP/10.96.0.10:80', 'TCP/10.96.0.11:80']);
    expect(changedScope(first, second, 'all')).toBe('all');
  });
});

describe('diff', () => {
  const none = { virtuals: new Map<VirtualKey, Virtual>(), addresses: new Set<string>() };

  test('from nothing: addresses first, services, then their real servers', () => {
    const d = compile(snapshot([web()]), OPTS);
    const plan = diff(d, none, 'all');
    expect(plan.addAddresses).toStrictEqual(['10.96.0.10']);
    expect(plan.ops.map((o) => o.op)).toStrictEqual(['add-service', 'add-destination', 'add-destination']);
    expect(plan.touched).toStrictEqual(['TCP/10.96.0.10:80']);
  });

  test('a change to one Service issues only that Service’s commands, in order: new real server, then the one that left', () => {
    const before = compile(snapshot([web(), dns()]), OPTS);
    const current = { virtuals: before.virtuals as ReadonlyMap<VirtualKey, Virtual>, addresses: before.addresses };
    const w2 = web(['10.244.1.5:8080', '10.244.3.3:8080']);
    const after = compile(snapshot([w2, dns()], new Set([w2.id])), OPTS, before);
    const plan = diff(after, current, changedScope(before, after, new Set([w2.id])));
    expect(plan.ops).toStrictEqual<IpvsOp[]>([
      { op: 'add-destination', service: { protocol: 'TCP', address: '10.96.0.10', port: 80 }, destination: { address: '10.244.3.3', port: 8080, weight: 1 } },
      { op: 'delete-destination', service: { protocol: 'TCP', address: '10.96.0.10', port: 80 }, destination: { address: '10.244.2.6', port: 8080 } },
    ]);
    expect(plan.touched).toStrictEqual(['TCP/10.96.0.10:80']);
    expect([plan.addAddresses, plan.deleteAddresses]).toStrictEqual([[], []]);
  });

  test('a deleted Service: its virtual service goes, then its address; affinity added: SET_SERVICE, real servers kept', () => {
    const before = compile(snapshot([web(), dns()]), OPTS);
    const current = { virtuals: before.virtuals as ReadonlyMap<VirtualKey, Virtual>, addresses: before.addresses };
    const gone = compile(snapshot([web()], new Set([dns().id])), OPTS, before);
    const p1 = diff(gone, current, changedScope(before, gone, new Set([dns().id])));
    expect(p1.ops).toStrictEqual([{ op: 'delete-service', service: { protocol: 'UDP', address: '10.96.0.53', port: 53 } }]);
    expect(p1.deleteAddresses).toStrictEqual(['10.96.0.53']);
    const sticky = web(undefined, { sessionAffinity: { timeoutSeconds: 30 } });
    const p2 = diff(compile(snapshot([sticky, dns()]), OPTS, before), current, new Set(['TCP/10.96.0.10:80']));
    expect(p2.ops.map((o) => o.op)).toStrictEqual(['edit-service']);
  });

  test('only the scope is looked at: a virtual service outside it is not compared (a one-Service change costs that Service only)', () => {
    const d = compile(snapshot([web(), dns()]), OPTS);
    const drifted = new Map<VirtualKey, Virtual>(d.virtuals);
    drifted.delete('UDP/10.96.0.53:53');
    expect(diff(d, { virtuals: drifted, addresses: d.addresses }, new Set(['TCP/10.96.0.10:80'])).ops).toStrictEqual([]);
    expect(diff(d, { virtuals: drifted, addresses: d.addresses }, 'all').ops.map((o) => o.op)).toStrictEqual(['add-service', 'add-destination']);
  });

  test('nothing changed: no command, whatever the scope', () => {
    const d = compile(snapshot([web(), dns()]), OPTS);
    expect(diff(d, { virtuals: d.virtuals, addresses: d.addresses }, 'all').ops).toStrictEqual([]);
  });
});

// ---------------------------------------------------------------------------
// The dataplane over the fake kernel.

class FakeDevice implements ServiceAddresses {
  readonly addresses = new Set<string>();
  exists = false;
  log: string[] = [];
  async ensure(): Promise<boolean> {
    const created = !this.exists;
    this.exists = true;
    return created;
  }
  async list(): Promise<Set<string>> {
    return new Set(this.addresses);
  }
  async add(list: readonly string[]): Promise<void> {
    for (const a of list) {
      this.addresses.add(a);
      this.log.push(`add ${a}`);
    }
  }
  async delete(list: readonly string[]): Promise<void> {
    for (const a of list) {
      this.addresses.delete(a);
      this.log.push(`del ${a}`);
    }
  }
  close(): void {}
}

class FakeSysctl implements Sysctl {
  readonly values = new Map<string, string>([['net/ipv4/vs/conntrack', '0']]);
  read(name: string): string | null {
    return this.values.get(name) ?? null;
  }
  write(name: string, value: string): void {
    this.values.set(name, value);
  }
}

function rig(device = new FakeDevice(), fake = new FakeNativeBinding(), ipvs = FakeIpvs.install(fake.netlink)) {
  const sysctl = new FakeSysctl();
  const client = IpvsClient.open(fake);
  /** Every batch of commands a dataplane sent. */
  const batches: IpvsOp[][] = [];
  const make = () => {
    const own = IpvsClient.open(fake);
    const spy: IpvsTable = {
      services: () => own.services(),
      destinations: (k) => own.destinations(k),
      setTimeouts: (t) => own.setTimeouts(t),
      familyId: () => own.familyId(),
      close: () => own.close(),
      batch: (ops) => {
        batches.push([...ops]);
        return own.batch(ops);
      },
    };
    return new IpvsDataplane({
      ipvs: spy,
      device,
      log: nullLogger(),
      node: { ipv4: '198.18.0.1', ipv6: null, all: ['198.18.0.1'] },
      scheduler: '',
      masqueradeAll: false,
      detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
      nodePortAddresses: [],
      excludeCIDRs: [],
      strictARP: false,
      timeouts: { tcp: 0, tcpFin: 0, udp: 0 },
      sysctl,
      kernelRelease: '5.10.0-30-amd64',
    });
  };
  /** The kernel's table as ipvsadm -Ln would list it, sorted. */
  const table = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const s of await client.services()) {
      const reals = (await client.destinations(s)).map((d) => `${d.address}:${d.port} w${d.weight}`).sort();
      out.push(`${s.protocol} ${s.address}:${s.port} ${s.scheduler}${s.persistent ? ` persistent ${s.timeout}` : ''} -> ${reals.join(' ')}`);
    }
    return out.sort();
  };
  return { device, fake, ipvs, sysctl, client, make, table, batches };
}

describe('IpvsDataplane over the fake IPVS kernel', () => {
  test('start sets the sysctls and creates kube-ipvs0; the first sync programs every Service', async () => {
    const r = rig();
    const dp = r.make();
    await dp.start(new AbortController().signal);
    expect(r.device.exists).toBe(true);
    expect(r.sysctl.values.get('net/ipv4/vs/conntrack')).toBe('1');
    expect(r.sysctl.values.get('net/ipv4/vs/expire_nodest_conn')).toBe('1');
    expect(await r.table(), 'start changes nothing in IPVS').toStrictEqual([]);
    const res = await dp.sync(snapshot([web(undefined, { nodePort: 30080 }), dns()]));
    expect(await r.table()).toStrictEqual([
      'TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1 10.244.2.6:8080 w1',
      'TCP 198.18.0.1:30080 rr -> 10.244.1.5:8080 w1 10.244.2.6:8080 w1',
      'UDP 10.96.0.53:53 rr -> 10.244.1.7:5353 w1',
    ]);
    expect([...r.device.addresses].sort()).toStrictEqual(['10.96.0.10', '10.96.0.53']);
    expect(res.frontendsChanged).toBe(3);
    expect(res.operations).toBe(2 + 3 + 5);
  });

  test('a change to one Service issues only that Service’s commands', async () => {
    const r = rig();
    const dp = r.make();
    await dp.start(new AbortController().signal);
    const d = dns();
    await dp.sync(snapshot([web(), d]));
    const w2 = web(['10.244.1.5:8080']);
    r.batches.length = 0;
    const res = await dp.sync(snapshot([w2, d], new Set([w2.id])));
    expect(res.frontendsChanged).toBe(1);
    expect(r.batches, 'one DEL_DEST of web, nothing of dns').toStrictEqual([
      [{ op: 'delete-destination', service: { protocol: 'TCP', address: '10.96.0.10', port: 80 }, destination: { address: '10.244.2.6', port: 8080 } }],
    ]);
    expect(res.operations).toBe(1);
    expect(await r.table()).toStrictEqual(['TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1', 'UDP 10.96.0.53:53 rr -> 10.244.1.7:5353 w1']);
    const gone = await dp.sync(snapshot([w2], new Set([d.id])));
    expect([gone.frontendsChanged, gone.operations], 'DEL_SERVICE and its address').toStrictEqual([1, 2]);
    expect(await r.table()).toStrictEqual(['TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1']);
    expect([...r.device.addresses]).toStrictEqual(['10.96.0.10']);
  });

  test('a restarted daemon adopts the table: what matches is kept (its counters too), what differs is fixed, services not ours are left alone', async () => {
    const r = rig();
    const first = r.make();
    await first.start(new AbortController().signal);
    const d = dns();
    await first.sync(snapshot([web(), d]));
    await first.stop();
    // Someone else's service on an address that is not on kube-ipvs0, and a live connection counted on ours.
    await r.client.addService({ protocol: 'TCP', address: '192.0.2.80', port: 80, scheduler: 'wlc' });
    r.ipvs.setStats({ address: '10.96.0.53', port: 53 }, { conns: 7n });
    const second = r.make();
    await second.start(new AbortController().signal);
    const w2 = web(['10.244.1.5:8080', '10.244.9.9:8080']);
    const res = await second.sync(snapshot([w2, d]));
    expect([res.frontendsChanged, res.operations], 'one new real server, one gone; nothing else').toStrictEqual([1, 2]);
    expect(await r.table()).toStrictEqual([
      'TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1 10.244.9.9:8080 w1',
      'TCP 192.0.2.80:80 wlc -> ',
      'UDP 10.96.0.53:53 rr -> 10.244.1.7:5353 w1',
    ]);
    const kept = (await r.client.services()).find((s) => s.address === '10.96.0.53');
    expect(kept?.stats.conns, 'the UDP service was not recreated').toBe(7);
  });

  test('adopt fixes a service whose scheduler differs (SET_SERVICE, real servers kept) and deletes ours that no Service wants', async () => {
    const r = rig();
    r.device.exists = true;
    r.device.addresses.add('10.96.0.10').add('10.96.0.99');
    await r.client.addService({ protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'wrr' });
    await r.client.addDestination({ protocol: 'TCP', address: '10.96.0.10', port: 80 }, { address: '10.244.1.5', port: 8080, weight: 1 });
    await r.client.addService({ protocol: 'TCP', address: '10.96.0.99', port: 80, scheduler: 'rr' });
    const dp = r.make();
    await dp.start(new AbortController().signal);
    const res = await dp.sync(snapshot([web()]));
    expect(await r.table()).toStrictEqual(['TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1 10.244.2.6:8080 w1']);
    expect(res.operations, 'SET_SERVICE, NEW_DEST, DEL_SERVICE, one address deleted').toBe(4);
    expect(r.device.log).toStrictEqual(['del 10.96.0.99']);
  });

  test('a refused command rejects the sync with the kernel’s error; the next sync reads back and finishes the job', async () => {
    const r = rig();
    const dp = r.make();
    await dp.start(new AbortController().signal);
    // Someone else made the same service meanwhile: NEW_SERVICE EEXIST.
    await r.client.addService({ protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr' });
    r.device.addresses.add('10.96.0.10');
    await expect(dp.sync(snapshot([web()]))).rejects.toMatchObject({ code: 'ERR_SY_DATAPLANE_KERNEL', cause: { code: 'EEXIST' } });
    await dp.sync(snapshot([web()]));
    expect(await r.table()).toStrictEqual(['TCP 10.96.0.10:80 rr -> 10.244.1.5:8080 w1 10.244.2.6:8080 w1']);
  });

  test('sync before start is refused', async () => {
    await expect(rig().make().sync(snapshot([]))).rejects.toMatchObject({ code: 'ERR_SY_DATAPLANE_NOT_STARTED' });
  });
});

test('sysctls: kube-proxy’s, conn_reuse_mode only on 4.1 to 5.8, ARP ones with --ipvs-strict-arp', () => {
  const names = (r: string, strict: boolean) => ipvsSysctls(r, strict).map(([n, v]) => `${n}=${v}`);
  expect(names('5.10.0-30-amd64', false)).toStrictEqual([
    'net/ipv4/vs/conntrack=1',
    'net/ipv4/vs/expire_nodest_conn=1',
    'net/ipv4/vs/expire_quiescent_template=1',
    'net/ipv4/ip_forward=1',
  ]);
  expect(names('4.19.0', false)).toContain('net/ipv4/vs/conn_reuse_mode=0');
  expect(names('6.12.1', true).slice(-2)).toStrictEqual(['net/ipv4/conf/all/arp_ignore=1', 'net/ipv4/conf/all/arp_announce=2']);
});

describe('rtnetlink messages for kube-ipvs0', () => {
  test('RTM_GETLINK by name and RTM_NEWLINK of a dummy link', () => {
    const get = parseMessages(encodeGetLink('kube-ipvs0'))[0]!;
    expect([get.type, get.flags]).toStrictEqual([18, 0x1]);
    expect(new Attrs('t', get.payload.subarray(16)).string(3)).toBe('kube-ipvs0');
    const add = parseMessages(encodeNewDummy('kube-ipvs0'))[0]!;
    expect([add.type, add.flags]).toStrictEqual([16, 0x1 | 0x400 | 0x200]);
    const a = new Attrs('t', add.payload.subarray(16));
    expect(a.nested(18)!.string(1)).toBe('dummy');
  });

  test('RTM_NEWADDR /32 with IFA_LOCAL and IFA_ADDRESS; IPv6 /128 without DAD; RTM_DELADDR; decoded back', () => {
    const v4 = parseMessages(encodeNewAddr(7, '10.96.0.10'))[0]!;
    expect(v4.payload.subarray(0, 8).toString('hex')).toBe('0220000007000000'); // AF_INET, /32, flags 0, scope universe, ifindex 7
    const a4 = new Attrs('t', v4.payload.subarray(8));
    expect([a4.get(2)!.toString('hex'), a4.get(1)!.toString('hex')]).toStrictEqual(['0a60000a', '0a60000a']);
    expect(decodeAddr(v4)).toStrictEqual({ index: 7, address: '10.96.0.10', prefixLength: 32 });
    const v6 = parseMessages(encodeNewAddr(7, 'fd00:10:96::a'))[0]!;
    expect(v6.payload.subarray(0, 8).toString('hex')).toBe('0a80020007000000'); // AF_INET6, /128, IFA_F_NODAD
    expect(new Attrs('t', v6.payload.subarray(8)).u32(8)).toBe(0x02);
    expect(decodeAddr({ ...v6, type: RTM_NEWADDR })).toStrictEqual({ index: 7, address: 'fd00:10:96::a', prefixLength: 128 });
    const del = parseMessages(encodeDelAddr(7, '10.96.0.10'))[0]!;
    expect([del.type, del.flags]).toStrictEqual([21, 0x1]);
  });
});
