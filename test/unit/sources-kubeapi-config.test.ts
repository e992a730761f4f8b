// Connection settings of the API source (--kubeconfig, --master, in-cluster)
// and the reflector's small pieces (backoff, error descriptions).

import { expect, onTestFinished, test, vi } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKubeConfig, KubeConfigError } from '../../src/sources/kube-config.ts';
import { Backoff, describeError, objectKey, statusCodeOf } from '../../src/sources/kube-reflector.ts';
import { KubeApiSource } from '../../src/sources/kube-api.ts';
import { ClusterCache } from '../../src/sources/cache.ts';
import { nullLogger } from '../../src/util/log.ts';
import { FakeApiServer } from '../fake-apiserver/server.ts';
import { tempDir } from '../support/temp-dir.ts';
import { thrownBy } from '../support/thrown.ts';

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

/** Writes `text` to a kubeconfig file that lives until the test finishes. */
function kubeconfigFile(text: string): string {
  const path = join(tempDir('switchyard-kubeconfig-'), 'kubeconfig');
  writeFileSync(path, text);
  return path;
}

test('--master alone: that server, no credentials; plain http is allowed', () => {
  const http = loadKubeConfig({ master: 'http://10.0.0.1:8080' });
  expect(http.getCurrentCluster()?.server).toBe('http://10.0.0.1:8080');
  expect(http.getCurrentCluster()?.skipTLSVerify, 'the client refuses http:// otherwise').toBe(true);
  expect(http.getCurrentUser()?.token).toBe(undefined);
  const https = loadKubeConfig({ master: 'https://api.example:6443' });
  expect(https.getCurrentCluster()?.skipTLSVerify).toBe(false);
});

test('--kubeconfig: the current context; --master overrides only its server', () => {
  const path = kubeconfigFile(KUBECONFIG('https://api.example:6443'));
  const kc = loadKubeConfig({ kubeconfigPath: path });
  expect(kc.getCurrentCluster()?.server).toBe('https://api.example:6443');
  expect(kc.getCurrentUser()?.token).toBe('s3cret');

  const overridden = loadKubeConfig({ kubeconfigPath: path, master: 'https://10.1.1.1:443' });
  expect(overridden.getCurrentCluster()?.server).toBe('https://10.1.1.1:443');
  expect(overridden.getCurrentCluster()?.caData, 'the CA is kept').toBe(kc.getCurrentCluster()?.caData);
  expect(overridden.getCurrentUser()?.token, 'the credentials are kept').toBe('s3cret');

  expect(loadKubeConfig({ kubeconfigPath: kubeconfigFile(KUBECONFIG('http://127.0.0.1:8080')) }).getCurrentCluster()?.skipTLSVerify).toBe(true);
});

test('in-cluster is the default, and needs the service environment', () => {
  const setEnv = (host: string | undefined, port: string | undefined) => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', host);
    vi.stubEnv('KUBERNETES_SERVICE_PORT', port);
  };
  onTestFinished(() => {
    vi.unstubAllEnvs();
  });
  setEnv(undefined, undefined);
  const err = thrownBy(() => loadKubeConfig({}), KubeConfigError);
  expect(err.code).toBe('ERR_SY_INVALID_KUBECONFIG');
  expect(err.message).toMatch(/KUBERNETES_SERVICE_HOST/);
  setEnv('10.96.0.1', '443');
  const kc = loadKubeConfig({});
  expect(kc.getCurrentCluster()?.server).toBe('https://10.96.0.1:443');
  expect(kc.getCurrentCluster()?.caFile).toBe('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
  expect(() => loadKubeConfig({ inCluster: false })).toThrow(KubeConfigError);
});

test('bad settings are typed errors naming the flag', async () => {
  expect(thrownBy(() => loadKubeConfig({ kubeconfigPath: '/nonexistent/kubeconfig' }), KubeConfigError)).toMatchObject({
    field: '--kubeconfig',
    message: expect.stringMatching(/cannot load \/nonexistent\/kubeconfig/),
  });
  expect(thrownBy(() => loadKubeConfig({ master: 'api.example:6443' }), KubeConfigError).field).toBe('--master');
  expect(() => loadKubeConfig({ master: 'ftp://api.example' })).toThrow(/must be an http:\/\/ or https:\/\/ URL/);
  const source = new KubeApiSource({
    kubeConfig: { kubeconfigPath: '/nonexistent/kubeconfig' },
    nodeName: 'n',
    cache: new ClusterCache(),
    logger: nullLogger(),
  });
  await expect(source.start()).rejects.toThrow(KubeConfigError);
});

test('the source syncs from --master and from a kubeconfig file', async () => {
  const fake = await FakeApiServer.start();
  onTestFinished(() => fake.close());
  fake.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } });
  const viaMaster = new ClusterCache();
  const a = new KubeApiSource({ kubeConfig: { master: fake.url }, nodeName: 'n', cache: viaMaster, logger: nullLogger() });
  await a.start();
  await a.stop();
  expect(viaMaster.services.get('default/web')).toBeDefined();

  const path = kubeconfigFile(KUBECONFIG('https://unused.invalid:6443', '\n    insecure-skip-tls-verify: true').replace(/certificate-authority-data: \S+/, ''));
  const viaFile = new ClusterCache();
  const b = new KubeApiSource({ kubeConfig: { kubeconfigPath: path, master: fake.url }, nodeName: 'n', cache: viaFile, logger: nullLogger() });
  await b.start();
  await b.stop();
  expect(viaFile.services.get('default/web')).toBeDefined();
  expect(fake.requests.length).toBeGreaterThanOrEqual(4);
});

test('backoff doubles up to its cap, with jitter on top, and resets', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  expect([1, 2, 3, 4, 5, 6].map(() => b.next())).toStrictEqual([100, 200, 400, 800, 1000, 1000]);
  b.reset();
  expect(b.next()).toBe(100);
  const jittered = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 1);
  expect([1, 2, 3, 4, 5].map(() => jittered.next())).toStrictEqual([150, 300, 600, 1000, 1000]);
  const defaults = new Backoff({}, () => 0);
  expect([1, 2, 3, 4, 5, 6, 7].map(() => defaults.next())).toStrictEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test('errors are described in one line with their HTTP status', () => {
  const apiException = Object.assign(new Error('HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: ...'), {
    code: 403,
    body: { kind: 'Status', message: 'services is forbidden: User "system:anonymous" cannot list' },
  });
  expect(statusCodeOf(apiException)).toBe(403);
  expect(describeError(apiException)).toBe('HTTP 403: services is forbidden: User "system:anonymous" cannot list');
  expect(describeError(Object.assign(new Error('Gone'), { statusCode: 410 }))).toBe('HTTP 410: Gone');
  expect(describeError(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') }))).toBe(
    'fetch failed: connect ECONNREFUSED 127.0.0.1:1',
  );
  expect(statusCodeOf(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(undefined);
  expect(objectKey({ metadata: { name: 'a', namespace: 'ns' } })).toBe('ns/a');
  expect(objectKey({ metadata: { name: 'node-1' } })).toBe('node-1');
  expect(objectKey({ metadata: {} })).toBe(null);
});
