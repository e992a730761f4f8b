// A link watcher for test/privileged/links.test.ts, run under `ip netns exec`
// so that the addon's rtnetlink socket is made in that namespace. Driven by
// commands on stdin, one per line; reports JSON lines on stdout:
//   open ID [RCVBUF]  linkWatch() as watch ID      -> {"ok":"open ID"}, then {"id":ID,"events":[...]} per batch
//   close ID          close() it                    -> {"ok":"close ID"}
//   source            hostLinks().watch() with a one-hour rescan, so that only
//                     events (and overruns) relist -> {"links":[names]} now and after each onChange
//   stop              stop the source               -> {"ok":"stop"}
//   leave             end stdin, leaving whatever is open: the process exits
//                     by itself unless something holds the event loop
//   node test/support/link-watch-main.ts

import { createInterface } from 'node:readline';
import { hostLinks } from '../../src/host/links.ts';
import { loadBinding, type NativeLinkWatch } from '../../src/native/binding.ts';

const native = loadBinding();
const watches = new Map<string, NativeLinkWatch>();
let source: { stop(): void } | null = null;

function say(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, (_k, x) => (x instanceof Error ? { message: x.message, code: (x as Error & { code?: string }).code } : x))}\n`);
}

function listing(links: ReturnType<typeof hostLinks>): void {
  say({ links: links.list().map((l) => l.name) });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, id = '', arg] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'open':
      watches.set(
        id,
        native.linkWatch((events) => say({ id, events }), arg === undefined ? undefined : { rcvbuf: Number(arg) }),
      );
      break;
    case 'close':
      watches.get(id)?.close();
      break;
    case 'source': {
      const links = hostLinks({ native, rescanMs: 3_600_000 });
      source = links.watch(() => listing(links), new AbortController().signal);
      listing(links);
      break;
    }
    case 'stop':
      source?.stop();
      break;
    case 'leave':
      rl.close();
      process.stdin.destroy();
      break;
    default:
      throw new Error(`link-watch-main: unknown command ${line}`);
  }
  say({ ok: line.trim() });
});
