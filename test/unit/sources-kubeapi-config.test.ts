// Connection settings of the API source (--kubeconfig, --master, in-cluster)
// and the reflector's small pieces (backoff, error descriptions).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig, KubeConfigError } from '../../src/sources/kube-config.ts';
import { Backoff, describeError, objectKey, statusCodeOf } from '../../src/sources/kube-reflector.ts';
import { KubeApiSource } from '../../src/sources/kube-api.ts';
import { ClusterCache } from '../../src/sources/cache.ts';
import { nullLogger } from '../../src/util/log.ts';
import { FakeApiServer } from '../fake-apiserver/server.ts';

const KUBECONFIG = (server: string, extra = '') => `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: ${server}
    certificate-authority-data: ${Buffer.from('not really a CA').toString('base64')}${extra}
users:
- name: proxy
  user:
    token: s3cret
contexts:
- name: proxy@prod
  context: {cluster: prod, user: proxy}
current-context: proxy@prod
`;

async function withKubeconfig(text: string, fn: (path: string) => Promise<void> | void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-kubeconfig-'));
  try {
    const path = join(dir, 'kubeconfig');
    await writeFile(path, text);
    await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('--master alone: that server, no credentials; plain http is allowed', () => {
  const http = loadKubeConfig({ master: 'http://10.0.0.1:8080' });
  assert.equal(http.getCurrentCluster()?.server, 'http://10.0.0.1:8080');
  assert.equal(http.getCurrentCluster()?.skipTLSVerify, true, 'the client refuses http:// otherwise');
  assert.equal(http.getCurrentUser()?.token, undefined);
  const https = loadKubeConfig({ master: 'https://api.example:6443' });
  assert.equal(https.getCurrentCluster()?.skipTLSVerify, false);
});

test('--kubeconfig: the current context; --master overrides only its server', async () => {
  await withKubeconfig(KUBECONFIG('https://api.example:6443'), (path) => {
    const kc = loadKubeConfig({ kubeconfigPath: path });
    assert.equal(kc.getCurrentCluster()?.server, 'https://api.example:6443');
    assert.equal(kc.getCurrentUser()?.token, 's3cret');

    const overridden = loadKubeConfig({ kubeconfigPath: path, master: 'https://10.1.1.1:443' });
    assert.equal(overridden.getCurrentCluster()?.server, 'https://10.1.1.1:443');
    assert.equal(overridden.getCurrentCluster()?.caData, kc.getCurrentCluster()?.caData, 'the CA is kept');
    assert.equal(overridden.getCurrentUser()?.token, 's3cret', 'the credentials are kept');
  });
  await withKubeconfig(KUBECONFIG('http://127.0.0.1:8080'), (path) => {
    assert.equal(loadKubeConfig({ kubeconfigPath: path }).getCurrentCluster()?.skipTLSVerify, true);
  });
});

test('in-cluster is the default, and needs the service environment', () => {
  const saved = { host: process.env['KUBERNETES_SERVICE_HOST'], port: process.env['KUBERNETES_SERVICE_PORT'] };
  const setEnv = (host: string | undefined, port: string | undefined) => {
    if (host === undefined) delete process.env['KUBERNETES_SERVICE_HOST'];
    else process.env['KUBERNETES_SERVICE_HOST'] = host;
    if (port === undefined) delete process.env['KUBERNETES_SERVICE_PORT'];
    else process.env['KUBERNETES_SERVICE_PORT'] = port;
  };
  try {
    setEnv(undefined, undefined);
    assert.throws(
      () => loadKubeConfig({}),
      (err: unknown) => {
        assert.ok(err instanceof KubeConfigError);
        assert.equal(err.code, 'ERR_SY_INVALID_KUBECONFIG');
        assert.match(err.message, /KUBERNETES_SERVICE_HOST/);
        return true;
      },
    );
    setEnv('10.96.0.1', '443');
    const kc = loadKubeConfig({});
    assert.equal(kc.getCurrentCluster()?.server, 'https://10.96.0.1:443');
    assert.equal(kc.getCurrentCluster()?.caFile, '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
    assert.throws(() => loadKubeConfig({ inCluster: false }), KubeConfigError);
  } finally {
    setEnv(saved.host, saved.port);
  }
});

test('bad settings are typed errors naming the flag', async () => {
  assert.throws(
    () => loadKubeConfig({ kubeconfigPath: '/nonexistent/kubeconfig' }),
    (err: unknown) => err instanceof KubeConfigError && err.field === '--kubeconfig' && /cannot load \/nonexistent\/kubeconfig/.test(err.message),
  );
  assert.throws(
    () => loadKubeConfig({ master: 'api.example:6443' }),
    (err: unknown) => err instanceof KubeConfigError && err.field === '--master',
  );
  assert.throws(() => loadKubeConfig({ master: 'ftp://api.example' }), /must be an http:\/\/ or https:\/\/ URL/);
  const source = new KubeApiSource({
    kubeConfig: { kubeconfigPath: '/nonexistent/kubeconfig' },
    nodeName: 'n',
    cache: new ClusterCache(),
    logger: nullLogger(),
  });
  await assert.rejects(source.start(), KubeConfigError);
});

test('the source syncs from --master and from a kubeconfig file', async () => {
  const fake = await FakeApiServer.start();
  try {
    fake.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } });
    const viaMaster = new ClusterCache();
    const a = new KubeApiSource({ kubeConfig: { master: fake.url }, nodeName: 'n', cache: viaMaster, logger: nullLogger() });
    await a.start();
    await a.stop();
    assert.ok(viaMaster.services.get('default/web'));

    await withKubeconfig(
      KUBECONFIG('https://unused.invalid:6443', '\n    insecure-skip-tls-verify: true').replace(/certificate-authority-data: \S+/, ''),
      async (path) => {
        const viaFile = new ClusterCache();
        const b = new KubeApiSource({ kubeConfig: { kubeconfigPath: path, master: fake.url }, nodeName: 'n', cache: viaFile, logger: nullLogger() });
        await b.start();
        await b.stop();
        assert.ok(viaFile.services.get('default/web'));
      },
    );
    assert.ok(fake.requests.length >= 4);
  } finally {
    await fake.close();
  }
});

test('backoff doubles up to its cap, with jitter on top, and resets', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => b.next()),
    [100, 200, 400, 800, 1000, 1000],
  );
  b.reset();
  assert.equal(b.next(), 100);
  const jittered = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 1);
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => jittered.next()),
    [150, 300, 600, 1000, 1000],
  );
  const defaults = new Backoff({}, () => 0);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map(() => defaults.next()),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000],
  );
});

test('errors are described in one line with their HTTP status', () => {
  const apiException = Object.assign(new Error('HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: ...'), {
    code: 403,
    body: { kind: 'Status', message: 'services is forbidden: User "system:anonymous" cannot list' },
  });
  assert.equal(statusCodeOf(apiException), 403);
  assert.equal(describeError(apiException), 'HTTP 403: services is forbidden: User "system:anonymous" cannot list');
  assert.equal(describeError(Object.assign(new Error('Gone'), { statusCode: 410 })), 'HTTP 410: Gone');
  assert.equal(
    describeError(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') })),
    'fetch failed: connect ECONNREFUSED 127.0.0.1:1',
  );
  assert.equal(statusCodeOf(Object.assign(new Error('x'), { code: 'ECONNRESET' })), undefined);
  assert.equal(objectKey({ metadata: { name: 'a', namespace: 'ns' } }), 'ns/a');
  assert.equal(objectKey({ metadata: { name: 'node-1' } }), 'node-1');
  assert.equal(objectKey({ metadata: {} }), null);
});
