// The addon's rtnetlink link events (native/src/links.cc) and the link
// watcher over them (src/host/links.ts) against the kernel: a watcher runs in
// a throwaway network namespace (test/support/link-watch-main.ts under `ip
// netns exec`) while this test adds, renames and deletes veth pairs there
// and in a second namespace it must not hear. Also: a flood of 50 pairs
// with nothing missed, a reader stopped (SIGSTOP) behind a tiny socket
// buffer whose lost events come back as an overrun and a relist, close(),
// and that an open watch does not keep the process alive.

import { type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { LinkEvent } from '../../src/native/binding.ts';
import { scaled } from '../../src/rig/timing.ts';
import { needs, REPO } from '../support/requirements.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the link events suite', ['root', 'ip', 'native-addon']);

const NS = `sy-lnk-${process.pid}`;
const OTHER = `sy-lnk2-${process.pid}`;
const WAIT_MS = scaled(30_000);

type Line = { id?: string; events?: LinkEvent[]; links?: string[]; ok?: string };

/** link-watch-main.ts in NS: commands in, JSON lines out, every line kept. */
class Watcher {
  readonly lines: Line[] = [];
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  #stderr = '';
  #waiters = new Set<() => void>();

  constructor() {
    this.proc = spawn('ip', ['netns', 'exec', NS, ...NODE_CMD, `${REPO}test/support/link-watch-main.ts`]);
    this.proc.stderr.setEncoding('utf8').on('data', (d: string) => (this.#stderr += d));
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as Line);
      for (const w of this.#waiters) w();
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  /** Sends a command and waits for its acknowledgement. */
  async send(cmd: string): Promise<void> {
    this.proc.stdin.write(`${cmd}\n`);
    await this.until(`ack of ${cmd}`, () => this.lines.some((l) => l.ok === cmd));
  }

  /** Waits (generously) until probe holds over the lines so far. */
  until(what: string, probe: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!probe()) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`link watcher: no ${what} within ${WAIT_MS}ms; stderr: ${this.#stderr}; last lines: ${JSON.stringify(this.lines.slice(-5))}`));
      }, WAIT_MS);
      this.#waiters.add(check);
      check();
    });
  }

  /** Link events of watch id, in order. */
  events(id: string): LinkEvent[] {
    return this.lines.filter((l) => l.id === id).flatMap((l) => l.events ?? []);
  }

  /** The last listing of the LinkSource. */
  links(): string[] {
    return this.lines.filter((l) => l.links !== undefined).at(-1)?.links ?? [];
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args);
}

/** ip -batch in ns: one process for many links. */
function ipBatch(ns: string, lines: readonly string[]): void {
  execFileSync('ip', ['-n', ns, '-batch', '-'], { input: lines.map((l) => `${l}\n`).join('') });
}

function ifindex(ns: string, name: string): number {
  const [link] = JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'dev', name], { encoding: 'utf8' })) as { ifindex: number }[];
  return link?.ifindex ?? -1;
}

const named = (events: readonly LinkEvent[], type: 'new' | 'del'): Set<string> => new Set(events.flatMap((e) => (e.type === type ? [e.name] : [])));

describe.skipIf(skip)('rtnetlink link events', () => {
  const watchers: Watcher[] = [];
  const start = (): Watcher => {
    const w = new Watcher();
    watchers.push(w);
    return w;
  };

  beforeAll(() => {
    ip('netns', 'add', NS);
    ip('netns', 'add', OTHER);
  });

  afterAll(() => {
    for (const w of watchers) w.kill();
    for (const ns of [NS, OTHER]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });

  test('new and del with name and ifindex, flags and renames, from this namespace only', async () => {
    const w = start();
    await w.send('open a');
    ipBatch(OTHER, ['link add ot0 type veth peer name ot1']);
    ipBatch(NS, ['link add ev0 type veth peer name ev1']);
    const ev0 = ifindex(NS, 'ev0');
    const ev1 = ifindex(NS, 'ev1');
    await w.until('new ev0 and ev1', () => named(w.events('a'), 'new').has('ev0') && named(w.events('a'), 'new').has('ev1'));
    expect(w.events('a').find((e) => e.type === 'new' && e.name === 'ev0')).toEqual({
      type: 'new',
      ifindex: ev0,
      name: 'ev0',
      up: false,
      lowerUp: false,
      operstate: 'down',
    });
    expect(w.events('a').find((e) => e.type === 'new' && e.name === 'ev1')).toMatchObject({ ifindex: ev1 });

    ipBatch(NS, ['link set ev0 up', 'link set ev1 up']);
    await w.until('ev0 up with carrier', () => w.events('a').some((e) => e.type === 'new' && e.name === 'ev0' && e.up && e.lowerUp && e.operstate === 'up'));

    ipBatch(NS, ['link set ev1 down', 'link set ev1 name ev9']);
    await w.until('ev1 renamed ev9', () => w.events('a').some((e) => e.type === 'new' && e.name === 'ev9'));
    expect(w.events('a').find((e) => e.type === 'new' && e.name === 'ev9')).toMatchObject({ ifindex: ev1, up: false });

    ipBatch(NS, ['link del ev0']); // a veth pair goes as a whole
    await w.until('del ev0 and ev9', () => named(w.events('a'), 'del').has('ev0') && named(w.events('a'), 'del').has('ev9'));
    expect(w.events('a').find((e) => e.type === 'del' && e.name === 'ev0')).toMatchObject({ ifindex: ev0 });
    expect(w.events('a').find((e) => e.type === 'del' && e.name === 'ev9')).toMatchObject({ ifindex: ev1 });

    const names = new Set(w.events('a').flatMap((e) => (e.type === 'new' || e.type === 'del' ? [e.name] : [])));
    expect([...names].sort(), 'only links of its own namespace').toEqual(['ev0', 'ev1', 'ev9']);
    expect(w.events('a').filter((e) => e.type === 'overrun' || e.type === 'error')).toEqual([]);
    ipBatch(OTHER, ['link del ot0']);
    w.kill();
  });

  test('a flood of 50 veth pairs: every link is announced and listed; deleted, every one goes', async () => {
    const w = start();
    await w.send('open f');
    await w.send('source');
    const host = Array.from({ length: 50 }, (_, i) => `fl${i}`);
    const peer = host.map((_, i) => `fp${i}`);
    const all = [...host, ...peer];
    ipBatch(
      NS,
      host.map((h, i) => `link add ${h} type veth peer name ${peer[i]}`),
    );
    await w.until('new events for all 100 links', () => all.every((n) => named(w.events('f'), 'new').has(n)));
    await w.until('all 100 links listed', () => all.every((n) => w.links().includes(n)));
    expect(
      w.events('f').filter((e) => e.type === 'overrun'),
      'the default buffer holds the burst',
    ).toEqual([]);

    ipBatch(
      NS,
      host.map((h) => `link del ${h}`),
    );
    await w.until('del events for all 100 links', () => all.every((n) => named(w.events('f'), 'del').has(n)));
    await w.until('none of them listed', () => !w.links().some((n) => all.includes(n)));
    w.kill();
  });

  test('a stopped reader behind a tiny buffer loses events: reported as an overrun, the source relists them all, events go on', async () => {
    const w = start();
    await w.send('open o 4096');
    await w.send('source');
    const host = Array.from({ length: 20 }, (_, i) => `ov${i}`);
    const all = [...host, ...host.map((_, i) => `op${i}`)];
    // While the process is stopped the kernel queues events up to the
    // buffer's size and drops the rest; the next read says ENOBUFS.
    w.proc.kill('SIGSTOP');
    try {
      ipBatch(
        NS,
        host.map((h, i) => `link add ${h} type veth peer name op${i}`),
      );
    } finally {
      w.proc.kill('SIGCONT');
    }
    await w.until('an overrun', () => w.events('o').some((e) => e.type === 'overrun'));
    await w.until('all 40 links listed after the relist', () => all.every((n) => w.links().includes(n)));
    expect(all.filter((n) => !named(w.events('o'), 'new').has(n)).length, 'some announcements were lost (else this test shows nothing)').toBeGreaterThan(0);
    ipBatch(NS, ['link add late0 type veth peer name late1']);
    await w.until('events again after the overrun', () => named(w.events('o'), 'new').has('late0'));
    ipBatch(NS, [...host.map((h) => `link del ${h}`), 'link del late0']);
    w.kill();
  });

  test('close() stops one watch while another goes on; an open watch does not keep the process alive', async () => {
    const w = start();
    await w.send('open x');
    await w.send('open y');
    await w.send('close x');
    ipBatch(NS, ['link add cl0 type veth peer name cl1']);
    await w.until('y hears cl0', () => named(w.events('y'), 'new').has('cl0'));
    ipBatch(NS, ['link del cl0']);
    await w.until('y hears cl0 go', () => named(w.events('y'), 'del').has('cl0'));
    expect(w.events('x'), 'nothing after close()').toEqual([]);
    await w.send('close x'); // idempotent
    await w.send('source');
    w.proc.stdin.write('leave\n');
    expect(await w.exited, 'the process exits by itself with watch y and the source open').toBe(0);
  });
});
