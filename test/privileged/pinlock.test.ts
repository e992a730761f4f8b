// The pin directory lock on a real kernel (native/src/lock.cc,
// src/dataplane/bpf/pinlock.ts): the addon's flock on a bpffs directory
// (EAGAIN while another open file holds it, the holder's pid from
// /proc/locks, released when the holding process is killed), two
// BpfDataplanes on one pin path in one process (the second waits, or fails
// after its timeout naming the path), and a DaemonSet surge on the rig: a
// second daemon started on a node whose daemon still runs waits, says who
// holds the pins, and takes over when the first one is stopped.

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import type { LinkSource } from '../../src/host/links.ts';
import { BpfObject, isLockHeld, loadBinding } from '../../src/native/index.ts';
import { createLogger } from '../../src/util/log.ts';
import { BPF_OBJECT, NATIVE_ADDON, needs } from '../support/requirements.ts';
import { thrownBy } from '../support/thrown.ts';
import { e2eTest, PinRoot, SETTLE_MS, SWITCHYARD, scaled, serviceYaml, sliceYaml, startBackends, startDaemon, untilServed } from './fixtures.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the pin directory lock suite', ['root', 'ip', 'bpf-object', 'native-addon']);

const NO_LINKS: LinkSource = { list: () => [], watch: () => ({ stop(): void {} }) };

/** A bpffs of its own for the tests without the rig. */
const test = e2eTest.extend<{ $file: { bpffs: PinRoot } }>({
  bpffs: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const root = new PinRoot('lock');
      try {
        root.mount();
        await use(root);
      } finally {
        root.unmount();
      }
    },
    { scope: 'file' },
  ],
});

describe.skipIf(skip)('the pin directory lock', () => {
  test('lockDir: EAGAIN while another fd holds it, the holder from /proc/locks, free again after closeFd', async ({ bpffs }) => {
    const native = loadBinding();
    const dir = `${bpffs.path}/a`;
    mkdirSync(dir);
    const fd = native.lockDir(dir);
    const e = thrownBy(() => native.lockDir(dir), Error);
    expect(isLockHeld(e), String(e)).toBe(true);
    expect(e).toMatchObject({ code: 'EAGAIN', errno: 11, syscall: 'flock' });
    expect(e.message).toContain(dir);
    expect(native.lockHolders(dir)).toEqual([process.pid]);
    native.closeFd(fd);
    expect(native.lockHolders(dir)).toEqual([]);
    native.closeFd(native.lockDir(dir));
    expect(thrownBy(() => native.lockDir(`${dir}/missing`), Error)).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    // A pinned map is not a directory (as the fake says too).
    const obj = await BpfObject.open(BPF_OBJECT, dir, native);
    const pin = obj.maps()[0]?.pinPath as string;
    obj.close();
    expect(thrownBy(() => native.lockDir(pin), Error)).toMatchObject({ code: 'ENOTDIR', syscall: 'open' });
  });

  test('a holder killed with SIGKILL leaves no stale lock', async ({ bpffs }) => {
    const native = loadBinding();
    const dir = `${bpffs.path}/b`;
    mkdirSync(dir);
    const [node, ...nodeArgs] = NODE_CMD as [string, ...string[]];
    const child = spawn(
      node,
      [...nodeArgs, '-e', `require(${JSON.stringify(NATIVE_ADDON)}).lockDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (d.toString().includes('locked') ? resolve() : undefined));
        child.on('exit', (code) => reject(new Error(`the holder exited (${code}) before locking`)));
      });
      expect(isLockHeld(thrownBy(() => native.lockDir(dir), Error))).toBe(true);
      expect(native.lockHolders(dir)).toEqual([child.pid]);
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      native.closeFd(native.lockDir(dir));
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('two BpfDataplanes on one pin path: the second waits for the first, or fails after its timeout naming the path', async ({ bpffs }) => {
    const native = loadBinding();
    const pinPath = `${bpffs.path}/node`;
    const lines: string[] = [];
    const make = (timeoutMs: number): BpfDataplane =>
      new BpfDataplane({
        native,
        log: createLogger('bpf', { level: 'debug', write: (l) => lines.push(l) }),
        objectPath: BPF_OBJECT,
        pinPath,
        node: { ipv4: '198.18.0.10', ipv6: null },
        nodeInterface: null,
        podInterfaces: 'veth*',
        masqueradeAll: false,
        detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
        nodePortAddresses: [],
        snatPorts: { min: 61000, max: 65535 },
        capacities: {},
        links: NO_LINKS,
        pinLockTimeoutMs: timeoutMs,
      });
    const a = make(0);
    await a.start(new AbortController().signal);
    const failing = make(500);
    await expect(failing.start(new AbortController().signal)).rejects.toMatchObject({
      code: 'ERR_SY_DATAPLANE_PIN_LOCKED',
      message: expect.stringContaining(pinPath),
    });
    expect(lines.some((l) => l.includes('locked by another daemon') && l.includes(`pid ${process.pid}`))).toBe(true);
    const b = make(scaled(30_000));
    let bStarted = false;
    const p = b.start(new AbortController().signal).then(() => {
      bStarted = true;
    });
    await new Promise((r) => setTimeout(r, 600));
    expect(bStarted).toBe(false);
    await a.stop();
    await p;
    expect(lines.some((l) => l.includes('pin directory lock taken'))).toBe(true);
    await b.stop();
    expect(native.lockHolders(pinPath)).toEqual([]);
  });

  test('DaemonSet surge on the rig: the new daemon waits for the old one, then takes over the pins and serves', async ({ cluster, pins, manifests }) => {
    const node = cluster.node(1);
    const backends = await startBackends(cluster, { tcp: [8080] });
    manifests.write(
      'web.yaml',
      `${serviceYaml('web', '10.96.0.30', [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }])}---\n${sliceYaml(
        'web',
        backends.map((b) => ({ ip: b.ip, node: b.node })),
        [{ name: 'http', port: 8080, protocol: 'TCP' }],
      )}`,
    );
    const old = startDaemon(cluster, node, manifests, pins);
    const daemons = [old];
    try {
      await untilServed(cluster, 1, 'tcp', '10.96.0.30', daemons);
      const surge = startDaemon(cluster, node, manifests, pins);
      daemons.push(surge);
      await waitStderr(surge, /locked by another daemon; waiting/);
      const waiting = surge.stderr.split('\n').find((l) => l.includes('locked by another daemon')) ?? '';
      expect(waiting).toContain(pins.dirFor(node));
      expect(waiting).toMatch(/holder="?pid \d+/);
      expect(surge.stderr, 'the new daemon loaded nothing while the old one held the pins').not.toMatch(/adopted pinned maps/);
      expect(surge.running).toBe(true);
      expect(await old.stop(scaled(10_000))).toStrictEqual({ code: 0, signal: null });
      await waitStderr(surge, / switchyard\] "running"/);
      const log = surge.stderr;
      expect(log.indexOf('pin directory lock taken')).toBeGreaterThan(-1);
      expect(log.indexOf('pin directory lock taken')).toBeLessThan(log.indexOf('adopted pinned maps'));
      await untilServed(cluster, 1, 'tcp', '10.96.0.30', daemons);
      // `switchyard cleanup` refuses to pull the pins from under the running daemon.
      const refused = await cluster.exec(node, [SWITCHYARD, 'cleanup', `--bpf-pin-path=${pins.dirFor(node)}`], { timeoutMs: scaled(60_000) });
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/is using the pin directory: stop it first/);
      expect(readdirSync(pins.dirFor(node)).filter((n) => n.startsWith('sy_')).length).toBeGreaterThan(0);
      await untilServed(cluster, 1, 'tcp', '10.96.0.30', daemons);
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
    }
  });
});

/** Polls a daemon's stderr (the daemon logs there) for a line. */
async function waitStderr(d: { stderr: string; running: boolean }, re: RegExp, timeoutMs = SETTLE_MS): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!re.test(d.stderr)) {
    if (!d.running) throw new Error(`the daemon exited before logging ${re}: ${d.stderr.slice(-2000)}`);
    if (Date.now() > end) throw new Error(`no ${re} in the daemon's log after ${timeoutMs} ms: ${d.stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
