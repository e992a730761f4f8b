import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile, unlink, rename, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterCache } from '../../src/sources/cache.ts';
import { ManifestsSource } from '../../src/sources/manifests.ts';
import { createLogger, type Logger } from '../../src/util/log.ts';

const SVC = (name: string, port = 80, ip = '10.96.0.10') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  clusterIP: ${ip}
  ports:
  - name: http
    port: ${port}
`;

const SLICE = (name: string, svc: string, ips: string[]) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: default
  labels:
    kubernetes.io/service-name: ${svc}
addressType: IPv4
ports:
- name: http
  port: 8080
endpoints:
${ips.map((ip) => `- addresses: ["${ip}"]`).join('\n')}
`;

interface Harness {
  dir: string;
  cache: ClusterCache;
  source: ManifestsSource;
  lines: string[];
  changes: { count: number };
  write(name: string, text: string): Promise<void>;
  done(): Promise<void>;
}

async function harness(options: { rescanMs?: number; debounceMs?: number } = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-manifests-'));
  const cache = new ClusterCache();
  const lines: string[] = [];
  const logger: Logger = createLogger('manifests', { level: 'debug', write: (l) => lines.push(l) });
  const changes = { count: 0 };
  const source = new ManifestsSource({ dir, cache, logger, onChange: () => changes.count++, ...options });
  return {
    dir,
    cache,
    source,
    lines,
    changes,
    // write + rename, as the source asks writers to do
    write: async (name, text) => {
      await writeFile(join(dir, `.${name}.tmp`), text);
      await rename(join(dir, `.${name}.tmp`), join(dir, name));
    },
    done: async () => {
      source.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('reads multi-document files and Lists, skipping other files and kinds', async () => {
  const h = await harness();
  try {
    await h.write(
      'a.yaml',
      `${SVC('web')}---\n${SLICE('web-1', 'web', ['10.0.0.1', '10.0.0.2'])}---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n`,
    );
    await h.write(
      'b.yml',
      `apiVersion: v1\nkind: List\nitems:\n- ${SVC('api').split('\n').join('\n  ')}\n- apiVersion: v1\n  kind: Node\n  metadata: {name: node-1}\n`,
    );
    await h.write('notes.txt', SVC('ignored-txt'));
    assert.equal(h.source.isSynced, false);
    await h.source.start();
    assert.equal(h.source.isSynced, true);
    await h.source.synced;
    assert.deepEqual([...h.cache.services.values()].map((s) => s.key).sort(), ['default/api', 'default/web']);
    assert.equal(h.cache.endpointSlices.forService('default/web')?.get('default/web-1')?.endpoints.length, 2);
    assert.equal(h.cache.nodes.get('node-1')?.name, 'node-1');
    assert.equal(h.changes.count, 1, 'one onChange for the whole first read');
  } finally {
    await h.done();
  }
});

test('an edited file is picked up, a deleted file deletes its objects', async () => {
  const h = await harness();
  try {
    await h.write('web.yaml', `${SVC('web')}---\n${SLICE('web-1', 'web', ['10.0.0.1'])}`);
    await h.write('db.yaml', SVC('db'));
    await h.source.start();
    h.cache.takeChanges();

    await h.write('web.yaml', `${SVC('web', 8080)}---\n${SLICE('web-1', 'web', ['10.0.0.1'])}`);
    assert.equal(await h.source.rescan(), true);
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 8080);
    assert.deepEqual(h.cache.takeChanges(), new Set(['default/web']), 'only the edited Service changed');

    assert.equal(await h.source.rescan(), false, 'a rescan of unchanged files changes nothing');

    await unlink(join(h.dir, 'web.yaml'));
    assert.equal(await h.source.rescan(), true);
    assert.equal(h.cache.services.get('default/web'), undefined);
    assert.equal(h.cache.endpointSlices.get('default/web-1'), undefined);
    assert.ok(h.cache.services.get('default/db'));
    assert.ok(
      h.lines.some((l) => / info manifests object deleted: no longer in any manifest object="Service default\/web"/.test(l)),
      h.lines.join('\n'),
    );
  } finally {
    await h.done();
  }
});

test('an object removed from a file is deleted; one that becomes headless too', async () => {
  const h = await harness();
  try {
    await h.write('all.yaml', `${SVC('a')}---\n${SVC('b')}---\n${SVC('c')}`);
    await h.source.start();
    await h.write('all.yaml', `${SVC('a')}---\n${SVC('c', 80, 'None')}`);
    await h.source.rescan();
    assert.deepEqual(
      [...h.cache.services.values()].map((s) => s.key),
      ['default/a'],
    );
    assert.ok(h.lines.some((l) => l.includes('object deleted: now ignored') && l.includes('reason="headless (clusterIP None)"')));
  } finally {
    await h.done();
  }
});

test('a malformed object is reported and skipped, the rest of the file loads, and a previously good version is kept', async () => {
  const h = await harness();
  try {
    await h.write('svc.yaml', `${SVC('web')}---\n${SVC('api')}`);
    await h.source.start();
    h.cache.takeChanges();
    h.lines.length = 0;

    const broken = SVC('web').replace('port: 80', 'port: http');
    await h.write(
      'svc.yaml',
      `${broken}---\n${SVC('api', 9090)}---\n${SVC('new').replace('clusterIP: 10.96.0.10', 'clusterIP: 10.96.0.999')}---\n${SVC('fresh')}`,
    );
    await h.source.rescan();

    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 80, 'last good version kept');
    assert.equal(h.cache.services.get('default/api')?.ports[0]?.port, 9090, 'the rest of the file still loads');
    assert.ok(h.cache.services.get('default/fresh'));
    assert.equal(h.cache.services.get('default/new'), undefined, 'never valid: nothing to keep');
    const warns = h.lines.filter((l) => l.includes(' warn '));
    assert.equal(warns.length, 2, warns.join('\n'));
    assert.match(
      warns[0]!,
      / warn manifests skipping invalid object file=svc\.yaml doc=0 object="Service default\/web" field=spec\.ports\[0\]\.port error="must be an integer 1-65535, got \\"http\\"" kept="Service default\/web"$/,
    );
    assert.match(
      warns[1]!,
      /file=svc\.yaml doc=2 object="Service default\/new" field=spec\.clusterIP error="must be a valid IP address, got \\"10\.96\.0\.999\\""$/,
    );
    assert.doesNotMatch(warns[1]!, /kept=/);
    assert.deepEqual(h.cache.takeChanges(), new Set(['default/api', 'default/fresh']));

    h.lines.length = 0;
    await h.source.rescan();
    assert.equal(h.lines.filter((l) => l.includes(' warn ')).length, 0, 'problems are reported once per file content, not every rescan');

    await h.write('svc.yaml', `${SVC('web', 81)}---\n${SVC('api', 9090)}`);
    await h.source.rescan();
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 81, 'fixed: applied');
    assert.equal(h.cache.services.get('default/fresh'), undefined);
  } finally {
    await h.done();
  }
});

test('a YAML syntax error keeps the objects the broken document held', async () => {
  const h = await harness();
  try {
    await h.write('svc.yaml', `${SVC('web')}---\n${SVC('api')}`);
    await h.source.start();
    await h.write('svc.yaml', `${SVC('web')}  bad: [unclosed\n---\n${SVC('api', 9090)}`);
    await h.source.rescan();
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 80);
    assert.equal(h.cache.services.get('default/api')?.ports[0]?.port, 9090);
    const warn = h.lines.find((l) => l.includes('skipping unparsable YAML document'));
    assert.ok(warn, h.lines.join('\n'));
    assert.match(warn, /file=svc\.yaml doc=0 error=.*kept="Service default\/web"/);
  } finally {
    await h.done();
  }
});

test('a broken document is matched to its object by the name it still carries, not only by position', async () => {
  const h = await harness();
  try {
    await h.write('svc.yaml', `${SVC('web')}---\n${SVC('api')}`);
    await h.source.start();
    // web removed on purpose; api (now first in the file) has a syntax error
    await h.write('svc.yaml', `${SVC('api', 9090)}  bad: [unclosed\n`);
    await h.source.rescan();
    assert.equal(h.cache.services.get('default/web'), undefined, 'web was removed from the file');
    assert.equal(h.cache.services.get('default/api')?.ports[0]?.port, 80, 'api keeps its last good version');
  } finally {
    await h.done();
  }
});

test('an object defined twice: the later definition wins and a warning names it', async () => {
  const h = await harness();
  try {
    await h.write('a.yaml', SVC('web', 80));
    await h.write('b.yaml', SVC('web', 81));
    await h.source.start();
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 81);
    assert.ok(h.lines.some((l) => l.includes('object defined more than once') && l.includes('file=b.yaml')));
  } finally {
    await h.done();
  }
});

test('follows the directory while running (watch or periodic rescan) and stops on abort', async () => {
  const h = await harness({ debounceMs: 20, rescanMs: 300 });
  const ac = new AbortController();
  try {
    await h.write('web.yaml', SVC('web'));
    await h.source.start(ac.signal);
    const before = h.changes.count;
    await h.write('api.yaml', SVC('api'));
    await waitFor(() => h.cache.services.get('default/api') !== undefined, 5000);
    assert.ok(h.changes.count > before, 'onChange called');
    ac.abort();
    await h.write('late.yaml', SVC('late'));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(h.cache.services.get('default/late'), undefined, 'nothing read after stop');
  } finally {
    await h.done();
  }
});

test('a ConfigMap-style mount (files symlinked through an atomically swapped ..data) is followed', async () => {
  const h = await harness();
  try {
    await mkdir(join(h.dir, '..v1'));
    await writeFile(join(h.dir, '..v1', 'svc.yaml'), SVC('web', 80));
    await symlink('..v1', join(h.dir, '..data'));
    await symlink('..data/svc.yaml', join(h.dir, 'svc.yaml'));
    await h.source.start();
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 80);
    await mkdir(join(h.dir, '..v2'));
    await writeFile(join(h.dir, '..v2', 'svc.yaml'), SVC('web', 81));
    await symlink('..v2', join(h.dir, '..data_tmp'));
    await rename(join(h.dir, '..data_tmp'), join(h.dir, '..data'));
    await h.source.rescan();
    assert.equal(h.cache.services.get('default/web')?.ports[0]?.port, 81);
  } finally {
    await h.done();
  }
});

test('start rejects when the directory does not exist', async () => {
  const source = new ManifestsSource({
    dir: join(tmpdir(), 'switchyard-does-not-exist-xyz'),
    cache: new ClusterCache(),
    logger: createLogger('t', { write: () => {} }),
  });
  await assert.rejects(source.start(), { code: 'ENOENT' });
  source.stop();
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
