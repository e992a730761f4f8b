import { expect, onTestFinished, test } from 'vitest';
import { mkdir, writeFile, unlink, rename, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterCache } from '../../src/sources/cache.ts';
import { ManifestsSource } from '../../src/sources/manifests.ts';
import { createLogger, type Logger } from '../../src/util/log.ts';
import { tempDir } from '../support/temp-dir.ts';

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
}

/** A source over a fresh directory; when the test finishes the source stops, then the directory goes (hooks run last-in first-out). */
function harness(options: { rescanMs?: number; debounceMs?: number } = {}): Harness {
  const dir = tempDir('switchyard-manifests-');
  const cache = new ClusterCache();
  const lines: string[] = [];
  const logger: Logger = createLogger('manifests', { level: 'debug', write: (l) => lines.push(l) });
  const changes = { count: 0 };
  const source = new ManifestsSource({ dir, cache, logger, onChange: () => changes.count++, ...options });
  onTestFinished(() => source.stop());
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
  };
}

test('reads multi-document files and Lists, skipping other files and kinds', async () => {
  const h = harness();
  await h.write(
    'a.yaml',
    `${SVC('web')}---\n${SLICE('web-1', 'web', ['10.0.0.1', '10.0.0.2'])}---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n`,
  );
  await h.write(
    'b.yml',
    `apiVersion: v1\nkind: List\nitems:\n- ${SVC('api').split('\n').join('\n  ')}\n- apiVersion: v1\n  kind: Node\n  metadata: {name: node-1}\n`,
  );
  await h.write('notes.txt', SVC('ignored-txt'));
  expect(h.source.isSynced).toBe(false);
  await h.source.start();
  expect(h.source.isSynced).toBe(true);
  await h.source.synced;
  expect([...h.cache.services.values()].map((s) => s.key).sort()).toStrictEqual(['default/api', 'default/web']);
  expect(h.cache.endpointSlices.forService('default/web')?.get('default/web-1')?.endpoints.length).toBe(2);
  expect(h.cache.nodes.get('node-1')?.name).toBe('node-1');
  expect(h.changes.count, 'one onChange for the whole first read').toBe(1);
});

test('an edited file is picked up, a deleted file deletes its objects', async () => {
  const h = harness();
  await h.write('web.yaml', `${SVC('web')}---\n${SLICE('web-1', 'web', ['10.0.0.1'])}`);
  await h.write('db.yaml', SVC('db'));
  await h.source.start();
  h.cache.takeChanges();

  await h.write('web.yaml', `${SVC('web', 8080)}---\n${SLICE('web-1', 'web', ['10.0.0.1'])}`);
  expect(await h.source.rescan()).toBe(true);
  expect(h.cache.services.get('default/web')?.ports[0]?.port).toBe(8080);
  expect(h.cache.takeChanges(), 'only the edited Service changed').toStrictEqual(new Set(['default/web']));

  expect(await h.source.rescan(), 'a rescan of unchanged files changes nothing').toBe(false);

  await unlink(join(h.dir, 'web.yaml'));
  expect(await h.source.rescan()).toBe(true);
  expect(h.cache.services.get('default/web')).toBe(undefined);
  expect(h.cache.endpointSlices.get('default/web-1')).toBe(undefined);
  expect(h.cache.services.get('default/db')).toBeDefined();
  expect(
    h.lines.some((l) => / info manifests object deleted: no longer in any manifest object="Service default\/web"/.test(l)),
    h.lines.join('\n'),
  ).toBeTruthy();
});

test('an object removed from a file is deleted; one that becomes headless too', async () => {
  const h = harness();
  await h.write('all.yaml', `${SVC('a')}---\n${SVC('b')}---\n${SVC('c')}`);
  await h.source.start();
  await h.write('all.yaml', `${SVC('a')}---\n${SVC('c', 80, 'None')}`);
  await h.source.rescan();
  expect([...h.cache.services.values()].map((s) => s.key)).toStrictEqual(['default/a']);
  expect(h.lines.some((l) => l.includes('object deleted: now ignored') && l.includes('reason="headless (clusterIP None)"'))).toBeTruthy();
});

test('a malformed object is reported and skipped, the rest of the file loads, and a previously good version is kept', async () => {
  const h = harness();
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

  expect(h.cache.services.get('default/web')?.ports[0]?.port, 'last good version kept').toBe(80);
  expect(h.cache.services.get('default/api')?.ports[0]?.port, 'the rest of the file still loads').toBe(9090);
  expect(h.cache.services.get('default/fresh')).toBeDefined();
  expect(h.cache.services.get('default/new'), 'never valid: nothing to keep').toBe(undefined);
  const warns = h.lines.filter((l) => l.includes(' warn '));
  expect(warns.length, warns.join('\n')).toBe(2);
  expect(warns[0]!).toMatch(
    / warn manifests skipping invalid object file=svc\.yaml doc=0 object="Service default\/web" field=spec\.ports\[0\]\.port error="must be an integer 1-65535, got \\"http\\"" kept="Service default\/web"$/,
  );
  expect(warns[1]!).toMatch(
    /file=svc\.yaml doc=2 object="Service default\/new" field=spec\.clusterIP error="must be a valid IP address, got \\"10\.96\.0\.999\\""$/,
  );
  expect(warns[1]!).not.toMatch(/kept=/);
  expect(h.cache.takeChanges()).toStrictEqual(new Set(['default/api', 'default/fresh']));

  h.lines.length = 0;
  await h.source.rescan();
  expect(h.lines.filter((l) => l.includes(' warn ')).length, 'problems are reported once per file content, not every rescan').toBe(0);

  await h.write('svc.yaml', `${SVC('web', 81)}---\n${SVC('api', 9090)}`);
  await h.source.rescan();
  expect(h.cache.services.get('default/web')?.ports[0]?.port, 'fixed: applied').toBe(81);
  expect(h.cache.services.get('default/fresh')).toBe(undefined);
});

test('a YAML syntax error keeps the objects the broken document held', async () => {
  const h = harness();
  await h.write('svc.yaml', `${SVC('web')}---\n${SVC('api')}`);
  await h.source.start();
  await h.write('svc.yaml', `${SVC('web')}  bad: [unclosed\n---\n${SVC('api', 9090)}`);
  await h.source.rescan();
  expect(h.cache.services.get('default/web')?.ports[0]?.port).toBe(80);
  expect(h.cache.services.get('default/api')?.ports[0]?.port).toBe(9090);
  const warn = h.lines.find((l) => l.includes('skipping unparsable YAML document'));
  expect(warn, h.lines.join('\n')).toBeDefined();
  expect(warn).toMatch(/file=svc\.yaml doc=0 error=.*kept="Service default\/web"/);
});

test('a broken document is matched to its object by the name it still carries, not only by position', async () => {
  const h = harness();
  await h.write('svc.yaml', `${SVC('web')}---\n${SVC('api')}`);
  await h.source.start();
  // web removed on purpose; api (now first in the file) has a syntax error
  await h.write('svc.yaml', `${SVC('api', 9090)}  bad: [unclosed\n`);
  await h.source.rescan();
  expect(h.cache.services.get('default/web'), 'web was removed from the file').toBe(undefined);
  expect(h.cache.services.get('default/api')?.ports[0]?.port, 'api keeps its last good version').toBe(80);
});

test('an object defined twice: the later definition wins and a warning names it', async () => {
  const h = harness();
  await h.write('a.yaml', SVC('web', 80));
  await h.write('b.yaml', SVC('web', 81));
  await h.source.start();
  expect(h.cache.services.get('default/web')?.ports[0]?.port).toBe(81);
  expect(h.lines.some((l) => l.includes('object defined more than once') && l.includes('file=b.yaml'))).toBeTruthy();
});

test('follows the directory while running (watch or periodic rescan) and stops on abort', async () => {
  const h = harness({ debounceMs: 20, rescanMs: 300 });
  const ac = new AbortController();
  await h.write('web.yaml', SVC('web'));
  await h.source.start(ac.signal);
  const before = h.changes.count;
  await h.write('api.yaml', SVC('api'));
  await expect.poll(() => h.cache.services.get('default/api'), { timeout: 5000, interval: 10 }).toBeDefined();
  expect(h.changes.count, 'onChange called').toBeGreaterThan(before);
  ac.abort();
  await h.write('late.yaml', SVC('late'));
  await new Promise((r) => setTimeout(r, 500));
  expect(h.cache.services.get('default/late'), 'nothing read after stop').toBe(undefined);
});

test('a ConfigMap-style mount (files symlinked through an atomically swapped ..data) is followed', async () => {
  const h = harness();
  await mkdir(join(h.dir, '..v1'));
  await writeFile(join(h.dir, '..v1', 'svc.yaml'), SVC('web', 80));
  await symlink('..v1', join(h.dir, '..data'));
  await symlink('..data/svc.yaml', join(h.dir, 'svc.yaml'));
  await h.source.start();
  expect(h.cache.services.get('default/web')?.ports[0]?.port).toBe(80);
  await mkdir(join(h.dir, '..v2'));
  await writeFile(join(h.dir, '..v2', 'svc.yaml'), SVC('web', 81));
  await symlink('..v2', join(h.dir, '..data_tmp'));
  await rename(join(h.dir, '..data_tmp'), join(h.dir, '..data'));
  await h.source.rescan();
  expect(h.cache.services.get('default/web')?.ports[0]?.port).toBe(81);
});

test('start rejects when the directory does not exist', async () => {
  const source = new ManifestsSource({
    dir: join(tmpdir(), 'switchyard-does-not-exist-xyz'),
    cache: new ClusterCache(),
    logger: createLogger('t', { write: () => {} }),
  });
  await expect(source.start()).rejects.toMatchObject({ code: 'ENOENT' });
  source.stop();
});
