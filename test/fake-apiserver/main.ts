// The fake API server (server.ts) as a process of its own, for end-to-end
// tests whose daemons run in other network namespaces than the test:
//
//   node test/fake-apiserver/main.ts --host 198.18.0.254 --port 0 --control /tmp/x/control.sock
//
// It serves the Kubernetes API on host:port and prints `listening <url>` on
// stdout once it does. It is driven through a control socket: HTTP on a Unix
// socket, which (unlike a TCP port) the test process reaches from any network
// namespace, since it lives in the file system. `POST /` takes one operation
// or an array of them, applied in order, and answers with the resourceVersion
// after the last one:
//
//   {"op":"apply","object":{...}}                 create or replace (kind decides the resource)
//   {"op":"delete","kind":"Service","namespace":"default","name":"x"}
//
// An unknown kind or a delete of an absent object is a 400 and applies
// nothing after it. `GET /` reports the open watches, request counts and the
// Events posted so far.
// SIGTERM or SIGINT closes both servers and removes the socket.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FakeApiServer, type Resource } from './server.ts';

export type ControlOp =
  | { readonly op: 'apply'; readonly object: Record<string, unknown> }
  | { readonly op: 'delete'; readonly kind: string; readonly namespace?: string; readonly name: string };

const RESOURCES: readonly Resource[] = ['services', 'endpointslices', 'nodes'];

function applyOp(fake: FakeApiServer, op: ControlOp): void {
  if (op.op === 'apply') {
    fake.put(op.object);
    return;
  }
  if (op.op === 'delete') {
    // Nodes are cluster-scoped: their key is the bare name.
    const key = op.kind === 'Node' ? op.name : `${op.namespace ?? 'default'}/${op.name}`;
    if (!fake.remove(op.kind, key)) throw new Error(`delete: no ${op.kind} ${key}`);
    return;
  }
  throw new Error(`unknown op ${JSON.stringify((op as { op?: unknown }).op)}`);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  req.setEncoding('utf8');
  for await (const chunk of req) body += chunk as string;
  return body;
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function control(fake: FakeApiServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET') {
    const openWatches = Object.fromEntries(RESOURCES.map((r) => [r, fake.openWatches(r)]));
    const lists = Object.fromEntries(RESOURCES.map((r) => [r, fake.requestsFor(r, false).length]));
    const watches = Object.fromEntries(RESOURCES.map((r) => [r, fake.requestsFor(r, true).length]));
    reply(res, 200, { resourceVersion: fake.resourceVersion, openWatches, requests: { lists, watches }, events: fake.events });
    return;
  }
  if (req.method !== 'POST') {
    reply(res, 405, { error: `${req.method} not allowed` });
    return;
  }
  try {
    const parsed = JSON.parse(await readBody(req)) as ControlOp | ControlOp[];
    for (const op of Array.isArray(parsed) ? parsed : [parsed]) applyOp(fake, op);
    reply(res, 200, { resourceVersion: fake.resourceVersion });
  } catch (err) {
    reply(res, 400, { error: (err as Error).message });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      control: { type: 'string' },
    },
    strict: true,
  });
  if (!values.control) throw new Error('--control PATH (a Unix socket to create) is required');
  const socketPath = values.control;
  const fake = await FakeApiServer.start({ host: values.host, port: Number(values.port) });
  rmSync(socketPath, { force: true });
  const ctl = createServer((req, res) => void control(fake, req, res));
  await new Promise<void>((resolve, reject) => {
    ctl.once('error', reject);
    ctl.listen(socketPath, () => resolve());
  });
  const stop = (): void => {
    ctl.closeAllConnections();
    ctl.close();
    rmSync(socketPath, { force: true });
    void fake.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`listening ${fake.url}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake-apiserver: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
