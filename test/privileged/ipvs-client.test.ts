// The IPVS client (src/host/ipvs/) against the kernel's IPVS, checked with a
// tool we did not write: services (TCP, UDP, SCTP; IPv4 and IPv6) and
// destinations added through the client must read back the same through
// `ipvsadm -Ln` (and `--timeout`, `--stats --exact`) and the client's own
// dumps; edits and deletes likewise. The kernel's errors for each mistake are
// compared with FakeIpvs's (test/support/fake-ipvs.ts), the unit tests' stand-in.
//
// Runs only where the kernel has IPVS: the kernel-matrix VMs
//   npm run test:kernels -- --kernels 5.10 --files test/privileged/ipvs-client.test.ts
// (vitest.config.ts leaves ipvs-*.test.ts out of the run on a kernel without
// IPVS, such as this machine's; asked for there, it skips, or fails under
// SY_REQUIRE_PRIVILEGED=1). It works in the network namespace it runs in and
// touches only its own services (198.18.200.0/24, fd00:198:18::c8), never
// flushing the table; the timeouts it changes are put back.

import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DestinationSpec, ServiceKey, ServiceSpec } from '../../src/host/ipvs/codec.ts';
import { IpvsClient } from '../../src/host/ipvs/client.ts';
import { loadBinding } from '../../src/native/binding.ts';
import { isNativeError } from '../../src/native/errors.ts';
import { FakeIpvs } from '../support/fake-ipvs.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the IPVS client suite', ['root', 'native-addon', 'ipvs', 'ipvsadm']);

const V4 = '198.18.200.1';
const V4B = '198.18.200.2';
const V6 = 'fd00:198:18::c8';

interface Want {
  readonly service: ServiceSpec;
  readonly destinations: readonly DestinationSpec[];
}

const WANT: readonly Want[] = [
  {
    service: { protocol: 'TCP', address: V4, port: 80, scheduler: 'rr', persistence: { timeout: 10800 } },
    destinations: [
      { address: '198.18.201.1', port: 8080, weight: 1 },
      { address: '198.18.201.2', port: 8080, weight: 3 },
    ],
  },
  {
    service: { protocol: 'UDP', address: V4, port: 53, scheduler: 'sh', schedFlags: ['sh-fallback', 'sh-port'] },
    destinations: [{ address: '198.18.201.3', port: 5353, weight: 1 }],
  },
  { service: { protocol: 'SCTP', address: V4B, port: 30007, scheduler: 'wrr' }, destinations: [{ address: '198.18.201.4', port: 7777, weight: 5 }] },
  { service: { protocol: 'TCP', address: V6, port: 443, scheduler: 'wlc' }, destinations: [{ address: 'fd00:198:18::c9', port: 8443, weight: 2 }] },
  {
    service: { protocol: 'UDP', address: V6, port: 53, scheduler: 'mh', schedFlags: ['mh-port'], persistence: { timeout: 60 } },
    destinations: [
      { address: 'fd00:198:18::ca', port: 5353, weight: 1 },
      { address: 'fd00:198:18::cb', port: 5353, weight: 1 },
    ],
  },
];

const OURS = (address: string): boolean => address === V4 || address === V4B || address === V6;

// ---------------------------------------------------------------------------
// ipvsadm -Ln, parsed. Service lines: "TCP  198.18.200.1:80 rr persistent 10800",
// "UDP  [fd00:198:18::c8]:53 mh (mh-port) persistent 60"; destination lines:
// "  -> 198.18.201.1:8080            Masq    1      0          0".

interface Row {
  key: string; // "TCP 198.18.200.1:80"
  scheduler: string;
  schedBits: number; // 1, 2, 4 for flag-1/2/3 (sh-/mh- names included)
  persistent: number | null;
  dests: string[]; // "198.18.201.1:8080 Masq 1"
}

function splitAddr(s: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`ipvsadm: cannot split '${s}'`);
  return [m[1]!, Number(m[2])];
}

const FLAG_BITS: Record<string, number> = { 'flag-1': 1, 'sh-fallback': 1, 'mh-fallback': 1, 'flag-2': 2, 'sh-port': 2, 'mh-port': 2, 'flag-3': 4 };

function ipvsadm(...args: string[]): string {
  return execFileSync('ipvsadm', args, { encoding: 'utf8' });
}

function ipvsadmTable(): Map<string, Row> {
  const out = ipvsadm('-Ln');
  const rows = new Map<string, Row>();
  let cur: Row | null = null;
  for (const line of out.split('\n')) {
    const svc = /^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)(.*)$/.exec(line);
    if (svc) {
      const [addr, port] = splitAddr(svc[2]!);
      const rest = svc[4]!;
      const flags = /\(([^)]*)\)/.exec(rest)?.[1]?.split(',') ?? [];
      const pers = /persistent (\d+)/.exec(rest);
      cur = {
        key: `${svc[1]} ${addr}:${port}`,
        scheduler: svc[3]!,
        schedBits: flags.reduce((b, f) => b | (FLAG_BITS[f.trim()] ?? 0), 0),
        persistent: pers ? Number(pers[1]) : null,
        dests: [],
      };
      if (OURS(addr)) rows.set(cur.key, cur);
      continue;
    }
    const d = /^\s+->\s+(\S+)\s+(\w+)\s+(\d+)\s+\d+\s+\d+/.exec(line);
    if (d && cur) {
      const [addr, port] = splitAddr(d[1]!);
      cur.dests.push(`${addr}:${port} ${d[2]} ${d[3]}`);
    }
  }
  for (const r of rows.values()) r.dests.sort();
  return rows;
}

/** What the client dumps, in ipvsadm's terms. */
async function clientTable(c: IpvsClient): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  for (const s of await c.services()) {
    if (!OURS(s.address)) continue;
    const dests = await c.destinations(s);
    const fwd = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', route: 'Route', bypass: 'Bypass' } as const;
    rows.set(`${s.protocol} ${s.address}:${s.port}`, {
      key: `${s.protocol} ${s.address}:${s.port}`,
      scheduler: s.scheduler,
      schedBits: (s.flags >> 3) & 7,
      persistent: s.persistent ? s.timeout : null,
      dests: dests.map((d) => `${d.address}:${d.port} ${fwd[d.forward]} ${d.weight}`).sort(),
    });
  }
  return rows;
}

/** What WANT says, in ipvsadm's terms. */
function wantTable(want: readonly Want[]): Map<string, Row> {
  const bits: Record<string, number> = { 'sh-fallback': 1, 'mh-fallback': 1, 'sh-port': 2, 'mh-port': 2, 'flag-1': 1, 'flag-2': 2, 'flag-3': 4 };
  return new Map(
    want.map((w) => {
      const key = `${w.service.protocol} ${w.service.address}:${w.service.port}`;
      return [
        key,
        {
          key,
          scheduler: w.service.scheduler,
          schedBits: (w.service.schedFlags ?? []).reduce((b, f) => b | (bits[f] ?? 0), 0),
          persistent: w.service.persistence?.timeout ?? null,
          dests: w.destinations.map((d) => `${d.address}:${d.port} Masq ${d.weight}`).sort(),
        },
      ];
    }),
  );
}

async function removeOurs(c: IpvsClient): Promise<void> {
  for (const s of await c.services()) if (OURS(s.address)) await c.deleteService(s);
}

describe.skipIf(skip)('IPVS client against the kernel', () => {
  let client: IpvsClient;
  let savedTimeouts: { tcp: number; tcpFin: number; udp: number };

  beforeAll(async () => {
    client = IpvsClient.open(loadBinding());
    await removeOurs(client); // a previous run that died half way
    savedTimeouts = await client.timeouts();
  });

  afterAll(async () => {
    if (!client) return;
    await removeOurs(client);
    await client.setTimeouts(savedTimeouts);
    client.close();
  });

  test('services and destinations added through the client read back the same through ipvsadm -Ln and the client', async () => {
    for (const w of WANT) {
      await client.addService(w.service);
      for (const d of w.destinations) await client.addDestination(w.service, d);
    }
    const shown = ipvsadmTable();
    console.log(
      `# ipvsadm -Ln (ours):\n${ipvsadm('-Ln')
        .split('\n')
        .filter((l) => l.startsWith(' ') || /198\.18\.200|fd00:198:18::c8/.test(l))
        .join('\n')}`,
    );
    expect(shown).toEqual(wantTable(WANT));
    expect(await clientTable(client)).toEqual(shown);
    const v6 = await client.getService(WANT[4]!.service);
    expect(v6).toMatchObject({ family: 'IPv6', prefix: 128, persistent: true, timeout: 60, schedFlags: ['mh-port'] });
  });

  test('the version matches the header of ipvsadm -Ln', async () => {
    const info = await client.info();
    expect(ipvsadm('-Ln').split('\n')[0]).toBe(`IP Virtual Server version ${info.version} (size=${info.connTableSize})`);
  });

  test('edits: scheduler and flags of a service, weight of a destination', async () => {
    const tcp = WANT[0]!;
    const udp = WANT[1]!;
    await client.editService({ ...tcp.service, scheduler: 'wrr', persistence: undefined });
    await client.editService({ ...udp.service, schedFlags: ['sh-port'] });
    await client.editDestination(tcp.service, { ...tcp.destinations[0]!, weight: 0 });
    const shown = ipvsadmTable();
    expect(shown.get(`TCP ${V4}:80`)).toEqual({
      key: `TCP ${V4}:80`,
      scheduler: 'wrr',
      schedBits: 0,
      persistent: null,
      dests: [`198.18.201.1:8080 Masq 0`, `198.18.201.2:8080 Masq 3`],
    });
    expect(shown.get(`UDP ${V4}:53`)).toMatchObject({ scheduler: 'sh', schedBits: 2 });
    expect(await clientTable(client)).toEqual(shown);
  });

  test('statistics: the client reads what ipvsadm --stats --exact prints', async () => {
    const stats = ipvsadm('-Ln', '--stats', '--exact');
    const line = stats.split('\n').find((l) => l.startsWith(`TCP  ${V4}:80`));
    expect(line, stats).toBeDefined();
    const [conns, inPkts, outPkts, inBytes, outBytes] = line!.trim().split(/\s+/).slice(2).map(Number);
    expect((await client.getService(WANT[0]!.service)).stats).toMatchObject({ conns, inPackets: inPkts, outPackets: outPkts, inBytes, outBytes });
  });

  test('timeouts: set through the client, shown by ipvsadm --timeout; 0 leaves one as it was', async () => {
    await client.setTimeouts({ tcp: 901, tcpFin: 121, udp: 0 });
    expect(await client.timeouts()).toEqual({ tcp: 901, tcpFin: 121, udp: savedTimeouts.udp });
    expect(ipvsadm('-Ln', '--timeout').trim()).toBe(`Timeout (tcp tcpfin udp): 901 121 ${savedTimeouts.udp}`);
  });

  // The same mistakes on the kernel and on FakeIpvs: the same errno.
  const MISTAKES: ReadonlyArray<[string, (c: IpvsClient) => Promise<unknown>]> = [
    ['a service that is there', (c) => c.addService(WANT[0]!.service)],
    ['editing a service that is not there', (c) => c.editService({ ...WANT[0]!.service, port: 81 })],
    ['deleting a service that is not there', (c) => c.deleteService({ ...WANT[0]!.service, port: 81 })],
    ['getting a service that is not there', (c) => c.getService({ ...WANT[0]!.service, port: 81 })],
    ['an unknown scheduler', (c) => c.addService({ ...WANT[0]!.service, port: 81, scheduler: 'nosuch' })],
    ['a destination that is there', (c) => c.addDestination(WANT[0]!.service, WANT[0]!.destinations[1]!)],
    ['a destination of a missing service', (c) => c.addDestination({ ...WANT[0]!.service, port: 81 }, WANT[0]!.destinations[0]!)],
    ['a multicast destination', (c) => c.addDestination(WANT[0]!.service, { address: '224.0.0.1', port: 80, weight: 1 })],
    ['a 0.0.0.0 destination', (c) => c.addDestination(WANT[0]!.service, { address: '0.0.0.0', port: 80, weight: 1 })],
    ['an IPv6 link-local destination', (c) => c.addDestination(WANT[3]!.service, { address: 'fe80::1', port: 80, weight: 1 })],
    ['an IPv4 destination in an IPv6 service', (c) => c.addDestination(WANT[3]!.service, { address: '198.18.201.9', port: 80, weight: 1 })],
    ['a weight above 2^31-1', (c) => c.addDestination(WANT[0]!.service, { address: '198.18.201.9', port: 80, weight: 0x80000000 })],
    [
      'a lower threshold above the upper',
      (c) => c.addDestination(WANT[0]!.service, { address: '198.18.201.9', port: 80, weight: 1, upperThreshold: 1, lowerThreshold: 2 }),
    ],
    ['editing a destination that is not there', (c) => c.editDestination(WANT[0]!.service, { address: '198.18.201.9', port: 80, weight: 1 })],
    ['deleting a destination that is not there', (c) => c.deleteDestination(WANT[0]!.service, { address: '198.18.201.9', port: 80 })],
    [
      'an IPv6 persistence prefix of 1 (accepted)',
      (c) =>
        c
          .addService({ ...WANT[3]!.service, port: 444, persistence: { timeout: 5, prefix: 1 } })
          .then(() => c.deleteService({ ...WANT[3]!.service, port: 444 })),
    ],
    ['a timeout above INT_MAX/HZ', (c) => c.setTimeouts({ udp: 9_000_000 })],
  ];

  test.each(MISTAKES)('%s: the kernel and FakeIpvs answer the same', async (_, act) => {
    const kernelErr = await act(client).then(
      () => null,
      (e: unknown) => e,
    );
    const fake = new FakeNativeBinding();
    FakeIpvs.install(fake.netlink);
    const f = IpvsClient.open(fake);
    for (const w of WANT) {
      await f.addService(w.service);
      for (const d of w.destinations) await f.addDestination(w.service, d);
    }
    const fakeErr = await act(f).then(
      () => null,
      (e: unknown) => e,
    );
    if (kernelErr !== null) expect(isNativeError(kernelErr), String(kernelErr)).toBe(true);
    expect({ code: (fakeErr as { code?: string } | null)?.code ?? null, message: (fakeErr as Error | null)?.message ?? null }).toEqual({
      code: (kernelErr as { code?: string } | null)?.code ?? null,
      message: (kernelErr as Error | null)?.message ?? null,
    });
  });

  test('a dump of the destinations of a service that is not there is empty', async () => {
    expect(await client.destinations({ protocol: 'TCP', address: V4, port: 81 })).toEqual([]);
  });

  test('a batch of 300 services with a destination each: one outcome per change, all visible to ipvsadm', async () => {
    const svcs: ServiceKey[] = Array.from({ length: 300 }, (_, i) => ({ protocol: 'TCP', address: V4B, port: 10000 + i }));
    const errs = await client.batch(
      svcs.flatMap((s, i) => [
        { op: 'add-service' as const, service: { ...s, scheduler: 'rr' } },
        { op: 'add-destination' as const, service: s, destination: { address: '198.18.202.1', port: 20000 + i, weight: 1 } },
      ]),
    );
    expect(errs.filter((e) => e !== null)).toEqual([]);
    const shown = ipvsadmTable();
    expect([...shown.keys()].filter((k) => k.startsWith(`TCP ${V4B}:1`)).length).toBe(300);
    expect(shown.get(`TCP ${V4B}:10299`)?.dests).toEqual(['198.18.202.1:20299 Masq 1']);
    const again = await client.batch(svcs.map((s) => ({ op: 'add-service' as const, service: { ...s, scheduler: 'rr' } })));
    expect(new Set(again.map((e) => e?.code))).toEqual(new Set(['EEXIST']));
    const gone = await client.batch(svcs.map((s) => ({ op: 'delete-service' as const, service: s })));
    expect(gone.every((e) => e === null)).toBe(true);
  });

  test('deletes: a destination, then every service; ipvsadm shows none of ours', async () => {
    await client.deleteDestination(WANT[4]!.service, WANT[4]!.destinations[0]!);
    expect(ipvsadmTable().get(`UDP ${V6}:53`)?.dests).toEqual(['fd00:198:18::cb:5353 Masq 1']);
    for (const w of WANT) await client.deleteService(w.service);
    expect(ipvsadmTable().size).toBe(0);
    expect((await client.services()).filter((s) => OURS(s.address))).toEqual([]);
  });
});
