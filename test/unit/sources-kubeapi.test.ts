// The Kubernetes API source against a fake API server on loopback
// (test/fake-apiserver), driven through the real @kubernetes/client-node.

import { expect, onTestFinished, test, vi } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type Resource } from '../fake-apiserver/server.ts';
import { KubeApiSource, PROXY_LABEL_SELECTOR, type KubeApiSourceOptions } from '../../src/sources/kube-api.ts';
import { ClusterCache } from '../../src/sources/cache.ts';
import { createLogger } from '../../src/util/log.ts';

const NODE = 'node-1';

function svc(name: string, opts: { port?: number | string; ip?: string; labels?: Record<string, string>; type?: string } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: {
      type: opts.type ?? 'ClusterIP',
      clusterIP: opts.ip ?? '10.96.0.10',
      clusterIPs: [opts.ip ?? '10.96.0.10'],
      ports: [{ name: 'http', port: opts.port ?? 80, targetPort: 8080, protocol: 'TCP' }],
    },
  };
}

function slice(name: string, service: string, ips: string[], extraLabels: Record<string, string> = {}) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service, ...extraLabels } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: NODE })),
  };
}

function node(name: string, labels: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
}

function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'test' }],
    currentContext: 'fake',
  });
  return kc;
}

interface Harness {
  fake: FakeApiServer;
  cache: ClusterCache;
  source: KubeApiSource;
  lines: string[];
  changes: { count: number };
}

/** A source against a fresh fake API server, both stopped when the test finishes. */
async function harness(options: Partial<KubeApiSourceOptions> = {}, seed: (fake: FakeApiServer) => void = () => {}): Promise<Harness> {
  const fake = await FakeApiServer.start();
  seed(fake);
  const cache = new ClusterCache();
  const lines: string[] = [];
  const changes = { count: 0 };
  const source = new KubeApiSource({
    kubeConfig: kubeConfigFor(fake.url),
    nodeName: NODE,
    cache,
    logger: createLogger('kube-api', { level: 'debug', write: (l) => lines.push(l) }),
    onChange: () => changes.count++,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  onTestFinished(async () => {
    await source.stop();
    await fake.close();
  });
  return { fake, cache, source, lines, changes };
}

/** Polls `cond` until true; fails with `what` and the source's log after `timeout` ms. */
function until(h: Harness, what: string, cond: () => boolean, timeout = 5000): Promise<void> {
  return vi.waitFor(
    () => {
      if (!cond()) throw new Error(`timed out waiting for ${what}\n${h.lines.join('\n')}`);
    },
    { timeout, interval: 5 },
  );
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const serviceKeys = (h: Harness) => [...h.cache.services.values()].map((s) => s.key).sort();
const lists = (h: Harness, r: Resource) => h.fake.requestsFor(r, false).length;
const watches = (h: Harness, r: Resource) => h.fake.requestsFor(r, true);

test('the initial list fills the cache; start waits until Services and EndpointSlices have both listed', async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
    fake.put(slice('web-b', 'web', ['10.0.0.2', '10.0.0.3']));
    fake.put(node(NODE, { 'topology.kubernetes.io/zone': 'z1' }));
  });
  const releaseSlices = h.fake.holdLists('endpointslices');
  let started = false;
  const starting = h.source.start().then(() => (started = true));
  await until(h, 'the Service list', () => h.cache.services.get('default/web') !== undefined);
  await delay(50);
  expect(started, 'start must wait for the EndpointSlice list').toBe(false);
  expect(h.source.isSynced).toBe(false);
  expect(h.changes.count, 'nothing is programmed before both lists are in').toBe(0);

  releaseSlices();
  await starting;
  expect(h.source.isSynced).toBe(true);
  await h.source.synced;
  expect(h.changes.count).toBeGreaterThanOrEqual(1);
  expect(serviceKeys(h)).toStrictEqual(['default/web']);
  const slices = h.cache.endpointSlices.forService('default/web');
  expect([...(slices?.keys() ?? [])].sort(), 'slices indexed by their Service').toStrictEqual(['default/web-a', 'default/web-b']);
  expect(slices?.get('default/web-b')?.endpoints.map((e) => e.addresses[0])).toStrictEqual(['10.0.0.2', '10.0.0.3']);
  await until(h, 'the Node', () => h.cache.nodes.get(NODE) !== undefined);
  expect(h.cache.nodes.get(NODE)?.labels['topology.kubernetes.io/zone']).toBe('z1');

  // kube-proxy's selectors, and a watch resuming from the list's resourceVersion with bookmarks.
  for (const r of ['services', 'endpointslices'] as const) {
    expect(h.fake.requestsFor(r, false)[0]?.query['labelSelector']).toBe(PROXY_LABEL_SELECTOR);
  }
  expect(PROXY_LABEL_SELECTOR).toBe('!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name');
  expect(h.fake.requestsFor('nodes', false)[0]?.query['fieldSelector']).toBe(`metadata.name=${NODE}`);
  await until(h, 'the Service watch', () => watches(h, 'services').length === 1);
  const w = watches(h, 'services')[0]!.query;
  expect(w['resourceVersion']).toBe('5');
  expect(w['allowWatchBookmarks']).toBe('true');
  expect(w['labelSelector']).toBe(PROXY_LABEL_SELECTOR);
});

test('ADDED, MODIFIED and DELETED events reach the cache, and each change calls onChange', async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
  });
  await h.source.start();
  await until(h, 'all three watches', () => h.fake.openWatches() === 3);
  const before = h.changes.count;
  h.cache.takeChanges();

  h.fake.put(svc('api', { ip: '10.96.0.11' }));
  await until(h, 'ADDED Service', () => h.cache.services.get('default/api') !== undefined);
  h.fake.put(svc('web', { port: 8080 }));
  await until(h, 'MODIFIED Service', () => h.cache.services.get('default/web')?.ports[0]?.port === 8080);
  h.fake.put(slice('api-a', 'api', ['10.0.1.1']));
  await until(h, 'ADDED slice', () => h.cache.endpointSlices.forService('default/api')?.has('default/api-a') === true);
  h.fake.put(slice('web-a', 'web', ['10.0.0.1', '10.0.0.9']));
  await until(h, 'MODIFIED slice', () => h.cache.endpointSlices.get('default/web-a')?.endpoints.length === 2);
  h.fake.remove('EndpointSlice', 'default/web-a');
  await until(h, 'DELETED slice', () => h.cache.endpointSlices.forService('default/web') === undefined);
  h.fake.remove('Service', 'default/api');
  await until(h, 'DELETED Service', () => h.cache.services.get('default/api') === undefined);

  expect(serviceKeys(h)).toStrictEqual(['default/web']);
  expect(h.changes.count - before, 'one onChange per event that changed the cache').toBe(6);
  expect(h.cache.takeChanges()).toStrictEqual(new Set(['default/api', 'default/web']));
  expect(lists(h, 'services'), 'no relist').toBe(1);
});

test("objects kube-proxy doesn't proxy are excluded: label-selected ones by the server, the rest by validation", async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(svc('other-proxy', { labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }));
    fake.put(svc('marked-headless', { labels: { 'service.kubernetes.io/headless': '' } }));
    fake.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'ext', namespace: 'default' },
      spec: { type: 'ExternalName', externalName: 'example.com' },
    });
    fake.put({ ...svc('headless'), spec: { clusterIP: 'None', clusterIPs: ['None'], ports: [{ port: 80 }] } });
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
    fake.put(slice('hl-a', 'headless', ['10.0.0.5'], { 'service.kubernetes.io/headless': '' }));
  });
  await h.source.start();
  expect(serviceKeys(h)).toStrictEqual(['default/web']);
  expect(h.cache.endpointSlices.get('default/hl-a')).toBe(undefined);
  expect(
    h.lines.some((l) => l.includes('ignoring object') && l.includes('reason="type ExternalName"')),
    h.lines.join('\n'),
  ).toBeTruthy();

  // Gaining the label: the server now filters it out and says DELETED.
  h.fake.put(svc('web', { labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }));
  await until(h, 'the relabelled Service to go', () => h.cache.services.get('default/web') === undefined);
  // Losing it again: ADDED.
  h.fake.put(svc('web'));
  await until(h, 'the Service to come back', () => h.cache.services.get('default/web') !== undefined);
});

test('a bookmark moves the resume point without touching the cache', async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
  });
  await h.source.start();
  await until(h, 'all three watches', () => h.fake.openWatches() === 3);
  const listedAt = h.source.resourceVersions()['Service'];
  for (let i = 0; i < 5; i++) h.fake.tick(); // other resources change elsewhere
  h.cache.takeChanges();
  const changesBefore = h.changes.count;

  expect(h.fake.bookmark('services')).toBe(1);
  const bookmarkRv = h.fake.resourceVersion;
  expect(bookmarkRv).not.toBe(listedAt);
  await until(h, 'the bookmark', () => h.source.resourceVersions()['Service'] === bookmarkRv);
  expect(h.changes.count, 'no onChange for a bookmark').toBe(changesBefore);
  expect(h.cache.takeChanges(), 'the cache did not change').toStrictEqual(new Set());

  // The next watch resumes from the bookmark, not from the list.
  const watchesBefore = watches(h, 'services').length;
  h.fake.dropConnections();
  await until(h, 'the Service watch to reconnect', () => watches(h, 'services').length > watchesBefore);
  expect(watches(h, 'services')[watchesBefore]?.query['resourceVersion']).toBe(bookmarkRv);
  expect(lists(h, 'services'), 'no relist').toBe(1);
});

test.for(['ERROR event', 'HTTP 410'] as const)('410 Gone (%s) relists: objects deleted while disconnected are removed, changed ones updated', async (how) => {
  const h = await harness({}, (fake) => {
    fake.put(svc('a', { ip: '10.96.0.1' }));
    fake.put(svc('b', { ip: '10.96.0.2' }));
    fake.put(slice('a-1', 'a', ['10.0.0.1']));
    fake.put(slice('b-1', 'b', ['10.0.0.2']));
  });
  h.fake.goneAsHttpStatus = how === 'HTTP 410';
  await h.source.start();
  await until(h, 'all three watches', () => h.fake.openWatches() === 3);
  h.cache.takeChanges();
  const changesBefore = h.changes.count;

  // While the watches are down: delete, change and add; then the server
  // compacts its history, so resuming from the old resourceVersion is 410.
  h.fake.dropConnections();
  h.fake.remove('Service', 'default/b');
  h.fake.remove('EndpointSlice', 'default/b-1');
  h.fake.put(svc('a', { ip: '10.96.0.1', port: 443 }));
  h.fake.put(svc('c', { ip: '10.96.0.3' }));
  h.fake.compact();

  await until(h, 'the relist', () => lists(h, 'services') === 2 && lists(h, 'endpointslices') === 2);
  await until(h, 'the relisted cache', () => serviceKeys(h).join() === 'default/a,default/c' && h.cache.endpointSlices.get('default/b-1') === undefined);
  expect(h.cache.services.get('default/a')?.ports[0]?.port).toBe(443);
  expect(h.cache.endpointSlices.get('default/b-1')).toBe(undefined);
  expect(h.cache.endpointSlices.get('default/a-1')).toBeDefined();
  expect(h.cache.takeChanges(), 'unchanged objects are not re-applied').toStrictEqual(new Set(['default/a', 'default/b', 'default/c']));
  expect(h.changes.count).toBeGreaterThan(changesBefore);
  expect(
    h.lines.some((l) => l.includes('watch expired (410 Gone); relisting') && l.includes('resource=services')),
    h.lines.join('\n'),
  ).toBeTruthy();
  // After the relist the watch resumes from the new list's resourceVersion.
  await until(h, 'the watch after the relist', () => h.fake.openWatches('services') === 1);
  expect(watches(h, 'services').at(-1)?.query['resourceVersion']).toBe(h.fake.resourceVersion);

  // An open watch told its resourceVersion expired (ERROR 410 event) relists too.
  h.fake.expireWatches('services');
  await until(h, 'a third list', () => lists(h, 'services') === 3);
  expect(lists(h, 'endpointslices'), 'only the expired resource relists').toBe(2);
});

test('dropped and failing watches reconnect with growing backoff; events made meanwhile arrive without a relist', async () => {
  const h = await harness({ backoff: { initialMs: 40, maxMs: 1000, jitter: 0 } }, (fake) => {
    fake.put(svc('web'));
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
  });
  await h.source.start();
  await until(h, 'all three watches', () => h.fake.openWatches() === 3);
  const first = watches(h, 'services').length;

  h.fake.failNextWatches('services', 'drop', 'drop', 'http-500');
  h.fake.dropConnections();
  h.fake.put(svc('api', { ip: '10.96.0.11' })); // made while disconnected
  h.fake.remove('EndpointSlice', 'default/web-a');

  await until(h, 'the missed events', () => h.cache.services.get('default/api') !== undefined && h.cache.endpointSlices.get('default/web-a') === undefined);
  const reconnects = watches(h, 'services').slice(first);
  expect(reconnects.length, 'three failed attempts, then one that works').toBe(4);
  const resumeRv = watches(h, 'services')[first - 1]!.query['resourceVersion'];
  for (const r of reconnects) expect(r.query['resourceVersion'], 'every attempt resumes from the same point').toBe(resumeRv);
  const gaps = reconnects.slice(1).map((r, i) => r.at - reconnects[i]!.at);
  // Delays 40 (after the drop), then 80, 160, 320 ms between the attempts.
  expect(gaps[0]! >= 75 && gaps[1]! >= 155 && gaps[2]! >= 315, `gaps ${gaps.map(Math.round).join(', ')}`).toBeTruthy();
  expect(lists(h, 'services'), 'a resumable watch needs no relist').toBe(1);
  expect(
    h.lines.some((l) => l.includes('watch failed; resuming') && l.includes('HTTP 500')),
    h.lines.join('\n'),
  ).toBeTruthy();
});

test('a watch the server ends (timeoutSeconds) or fails with an ERROR event resumes where it was, without a relist', async () => {
  const h = await harness({ watchTimeoutSeconds: 1 }, (fake) => {
    fake.put(svc('web'));
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
  });
  await h.source.start();
  await until(h, 'the Service watch', () => h.fake.openWatches('services') === 1);
  h.fake.put(svc('web', { port: 81 }));
  const rv = h.fake.resourceVersion;
  await until(h, 'the server to end the watch and the client to resume', () => watches(h, 'services').length === 2, 3000);
  expect(watches(h, 'services')[0]?.query['timeoutSeconds']).toBe('1');
  expect(watches(h, 'services')[1]?.query['resourceVersion']).toBe(rv);

  await until(h, 'the resumed watch', () => h.fake.openWatches('services') === 1);
  const n = watches(h, 'services').length;
  expect(h.fake.errorWatches('services')).toBe(1);
  await until(
    h,
    'a resume after the ERROR event',
    () => watches(h, 'services').length > n && h.lines.some((l) => l.includes('watch failed; resuming') && l.includes('injected watch error')),
  );
  expect(watches(h, 'services').at(-1)?.query['resourceVersion']).toBe(rv);
  expect(lists(h, 'services')).toBe(1);
});

test("only this node's Node is watched, and a missing Node list does not hold up the sync", async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(node(NODE, { zone: 'a' }));
    fake.put(node('node-2', { zone: 'b' }));
  });
  const releaseNodes = h.fake.holdLists('nodes');
  await h.source.start();
  expect(h.source.isSynced).toBe(true);
  expect(h.cache.nodes.size).toBe(0);
  releaseNodes();
  await until(h, 'our Node', () => h.cache.nodes.get(NODE) !== undefined);
  expect(h.cache.nodes.size).toBe(1);
  expect(h.cache.nodes.get('node-2')).toBe(undefined);

  await until(h, 'the Node watch', () => h.fake.openWatches('nodes') === 1);
  h.fake.put(node('node-2', { zone: 'c' }));
  h.fake.put(node(NODE, { zone: 'z' }));
  await until(h, 'our Node changed', () => h.cache.nodes.get(NODE)?.labels['zone'] === 'z');
  expect(h.cache.nodes.size).toBe(1);
  h.fake.remove('Node', NODE);
  await until(h, 'our Node deleted', () => h.cache.nodes.size === 0);
});

test('malformed objects are logged with name and field and skipped; a good earlier version is kept', async () => {
  const h = await harness({}, (fake) => {
    fake.put(svc('web'));
    fake.put(svc('bad-listed', { ip: '10.96.0.999' }));
    fake.put(svc('bad-port-listed', { ip: '10.96.0.20', port: 'http' }));
    const odd = svc('odd-date', { ip: '10.96.0.21' });
    fake.put({ ...odd, metadata: { ...odd.metadata, creationTimestamp: 'not a date' } }); // the typed client makes it an Invalid Date
    fake.put(slice('web-a', 'web', ['10.0.0.1']));
  });
  await h.source.start();
  expect(serviceKeys(h)).toStrictEqual(['default/odd-date', 'default/web']);
  const listWarn = (re: RegExp) =>
    expect(
      h.lines.some((l) => re.test(l)),
      `${re}\n${h.lines.join('\n')}`,
    ).toBeTruthy();
  listWarn(/warn kube-api skipping invalid object object="Service default\/bad-listed" field=spec.clusterIP/);
  listWarn(/warn kube-api skipping invalid object object="Service default\/bad-port-listed" field=spec.ports\[0\].port/);
  await until(h, 'all three watches', () => h.fake.openWatches() === 3);
  h.lines.length = 0;

  h.fake.put(svc('web', { port: 'http' })); // a port name where a number belongs
  h.fake.put(svc('bad', { ip: 'ten' }));
  h.fake.put({ ...slice('orphan', 'x', ['10.0.0.7']), metadata: { name: 'orphan', namespace: 'default' } }); // no service-name label
  h.fake.put(svc('later', { ip: '10.96.0.12' }));
  await until(h, 'the later Service', () => h.cache.services.get('default/later') !== undefined);

  expect(h.cache.services.get('default/web')?.ports[0]?.port, 'the last good version is kept').toBe(80);
  expect(h.cache.services.get('default/bad')).toBe(undefined);
  expect(h.cache.endpointSlices.get('default/orphan')).toBe(undefined);
  const warned = (re: RegExp) => until(h, String(re), () => h.lines.some((l) => re.test(l)));
  await warned(/skipping invalid object object="Service default\/web" field=spec.ports\[0\].port .*kept="Service default\/web"/);
  await warned(/skipping invalid object object="Service default\/bad" field=spec.clusterIP/);
  await warned(/skipping invalid object object="EndpointSlice default\/orphan" field=.*kubernetes.io\/service-name/);

  // Fixed: applied. Deleted while its last version was bad: deleted.
  h.fake.put(svc('bad', { ip: '10.96.0.13' }));
  await until(h, 'the fixed Service', () => h.cache.services.get('default/bad') !== undefined);
  h.fake.remove('Service', 'default/web');
  await until(h, 'the deleted Service', () => h.cache.services.get('default/web') === undefined);
});

test('lists are paged; an expired continue token restarts the list unpaged', async () => {
  const h = await harness({ pageSize: 2 }, (fake) => {
    for (let i = 1; i <= 5; i++) fake.put(svc(`s${i}`, { ip: `10.96.0.${i}` }));
  });
  await h.source.start();
  expect(serviceKeys(h).length).toBe(5);
  const pages = h.fake.requestsFor('services', false);
  expect(pages.length).toBe(3);
  expect(pages[0]?.query['limit']).toBe('2');
  expect(pages[1]?.query['continue'] && pages[2]?.query['continue']).toBeTruthy();

  // Relist with a token that expires between pages.
  let expired = false;
  h.fake.beforeList = (resource, query) => {
    if (resource === 'services' && query['continue'] && !expired) {
      expired = true;
      h.fake.expireContinueTokens();
    }
  };
  h.fake.remove('Service', 'default/s3');
  h.fake.dropConnections();
  h.fake.compact();
  await until(h, 'the unpaged relist', () => h.fake.requestsFor('services', false).some((r, i) => i >= 3 && r.query['limit'] === undefined));
  await until(h, 's3 gone', () => serviceKeys(h).length === 4);
  expect(
    h.lines.some((l) => l.includes('list continue token expired')),
    h.lines.join('\n'),
  ).toBeTruthy();
});

test('an unreachable API server is retried; stop() ends a start() that is still waiting, and the requests in flight', async () => {
  const h = await harness({}, (fake) => fake.put(svc('web')));
  const release = h.fake.holdLists('endpointslices');
  let started = false;
  const starting = h.source.start().then(() => (started = true));
  await until(h, 'the held list', () => lists(h, 'endpointslices') === 1);
  await h.source.stop();
  await starting;
  expect(started).toBe(true);
  expect(h.source.isSynced).toBe(false);
  const count = h.fake.requests.length;
  await delay(100);
  expect(h.fake.requests.length, 'nothing more after stop()').toBe(count);
  release();

  // Nothing listening: the source keeps trying (logging) until stopped.
  const fake = await FakeApiServer.start();
  const url = fake.url;
  await fake.close();
  const lines: string[] = [];
  const source = new KubeApiSource({
    kubeConfig: kubeConfigFor(url),
    nodeName: NODE,
    cache: new ClusterCache(),
    logger: createLogger('kube-api', { write: (l) => lines.push(l) }),
    backoff: { initialMs: 10, maxMs: 20 },
  });
  const ac = new AbortController();
  const retrying = source.start(ac.signal);
  await vi.waitFor(
    () =>
      expect(lines.filter((l) => l.includes('list failed; retrying') && l.includes('resource=services')).length, lines.join('\n')).toBeGreaterThanOrEqual(3),
    { timeout: 5000, interval: 5 },
  );
  expect(
    lines.some((l) => /list failed; retrying resource=services error=".*ECONNREFUSED/.test(l)),
    lines.join('\n'),
  ).toBeTruthy();
  ac.abort();
  await retrying;
  await source.stop();
  expect(source.isSynced).toBe(false);
});
