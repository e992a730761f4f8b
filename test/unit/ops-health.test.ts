// kube-proxy's /healthz and /livez contract (pkg/proxy/healthcheck), served
// on 127.0.0.1 ephemeral ports: JSON fields and their order, headers, the
// 503 once a queued update waited 2 x syncPeriod, per-family status and
// node eligibility (deleted, deleting, ToBeDeletedByClusterAutoscaler).

import { afterEach, describe, expect, test } from 'vitest';
import { ProxyHealth, TO_BE_DELETED_TAINT, type NodeState } from '../../src/ops/health.ts';
import { goTime, listenHttp, parseBindAddress, type Listening } from '../../src/ops/http.ts';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const SYNC_PERIOD = 30_000;

const open: Listening[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function setup(node?: () => NodeState | undefined) {
  let now = T0;
  const codes: string[] = [];
  const health = new ProxyHealth({ healthTimeoutMs: 2 * SYNC_PERIOD, now: () => now, ...(node ? { node } : {}) });
  const observer = { healthz: (c: number) => codes.push(`healthz ${c}`), livez: (c: number) => codes.push(`livez ${c}`) };
  return {
    health,
    codes,
    advance: (ms: number) => {
      now += ms;
    },
    async get(path: string) {
      const s = await health.serve('127.0.0.1:0', observer);
      open.push(s);
      const r = await fetch(`http://127.0.0.1:${s.port}${path}`);
      return { status: r.status, headers: r.headers, text: await r.text() };
    },
  };
}

describe('goTime: Go json.Marshal of a UTC time.Time', () => {
  test('trailing zeros of the fraction dropped, none when whole, zero time', () => {
    expect(goTime(Date.UTC(2026, 0, 2, 3, 4, 5, 120))).toBe('2026-01-02T03:04:05.12Z');
    expect(goTime(Date.UTC(2026, 0, 2, 3, 4, 5, 0))).toBe('2026-01-02T03:04:05Z');
    expect(goTime(Date.UTC(2026, 0, 2, 3, 4, 5, 1) + 0.25)).toBe('2026-01-02T03:04:05.00125Z');
    expect(goTime(null)).toBe('0001-01-01T00:00:00Z');
  });
});

describe('/healthz and /livez', () => {
  test('before any sync: healthy, zero lastUpdated replaced by now, no status, kube-proxy headers', async () => {
    const h = setup();
    const r = await h.get('/healthz');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.text).toBe(`{"lastUpdated":"${goTime(T0)}","currentTime":"${goTime(T0)}","nodeEligible":true,"healthy":true}`);
    const l = await h.get('/livez');
    expect(l.text).toBe(`{"lastUpdated":"${goTime(T0)}","currentTime":"${goTime(T0)}","healthy":true}`);
    expect(h.codes).toEqual(['healthz 200', 'livez 200']);
  });

  test('per-family status after syncs; a queued update is fine until 2 x syncPeriod, then 503 with the real lastUpdated', async () => {
    const h = setup();
    h.health.updated(['IPv4', 'IPv6']);
    const synced = T0;
    h.advance(1000);
    h.health.queuedUpdate(['IPv4']);
    h.advance(2 * SYNC_PERIOD - 1);
    const ok = await h.get('/healthz');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toEqual({
      lastUpdated: goTime(T0 + 2 * SYNC_PERIOD + 999),
      currentTime: goTime(T0 + 2 * SYNC_PERIOD + 999),
      nodeEligible: true,
      healthy: true,
      status: { IPv4: { lastUpdated: goTime(synced), healthy: true }, IPv6: { lastUpdated: goTime(synced), healthy: true } },
    });
    h.advance(1);
    const late = await h.get('/healthz');
    expect(late.status).toBe(503);
    expect(late.text).toBe(
      `{"lastUpdated":"${goTime(synced)}","currentTime":"${goTime(T0 + 2 * SYNC_PERIOD + 1000)}","nodeEligible":true,"healthy":false,` +
        `"status":{"IPv4":{"lastUpdated":"${goTime(synced)}","healthy":false},"IPv6":{"lastUpdated":"${goTime(synced)}","healthy":true}}}`,
    );
    expect((await h.get('/livez')).status).toBe(503);
    // A later queued update does not move the oldest one; a successful sync clears it.
    h.health.queuedUpdate(['IPv4']);
    expect(h.health.healthy).toBe(false);
    h.health.updated(['IPv4']);
    expect(h.health.healthy).toBe(true);
    expect((await h.get('/livez')).status).toBe(200);
    expect(h.codes).toEqual(['healthz 200', 'healthz 503', 'livez 503', 'livez 200']);
  });

  test('nodeEligible: false while deleting, tainted for deletion, or gone after being seen; /livez ignores it', async () => {
    let node: NodeState | undefined;
    const h = setup(() => node);
    expect(JSON.parse((await h.get('/healthz')).text).nodeEligible).toBe(true); // not seen yet
    node = { deleting: false, taintKeys: ['node.kubernetes.io/unschedulable'] };
    expect((await h.get('/healthz')).status).toBe(200);
    node = { deleting: false, taintKeys: [TO_BE_DELETED_TAINT] };
    const tainted = await h.get('/healthz');
    expect(tainted.status).toBe(503);
    expect(JSON.parse(tainted.text)).toMatchObject({ nodeEligible: false, healthy: true });
    expect((await h.get('/livez')).status).toBe(200);
    node = { deleting: true, taintKeys: [] };
    expect((await h.get('/healthz')).status).toBe(503);
    node = undefined;
    expect((await h.get('/healthz')).status).toBe(503);
  });

  test('other paths answer Go 404', async () => {
    const h = setup();
    const r = await h.get('/healthz/x');
    expect(r.status).toBe(404);
    expect(r.text).toBe('404 page not found\n');
    expect((await h.get('/livez?verbose=1')).status).toBe(200);
  });
});

describe('bind addresses', () => {
  test('host:port, [v6]:port; bad ones named', () => {
    expect(parseBindAddress('0.0.0.0:10256')).toEqual({ host: '0.0.0.0', port: 10256 });
    expect(parseBindAddress('[::]:10256')).toEqual({ host: '::', port: 10256 });
    expect(() => parseBindAddress('10256')).toThrow(/missing port/);
    expect(() => parseBindAddress('1.2.3.4:99999')).toThrow(/invalid port/);
  });

  test('0.0.0.0 answers on both families where the host has IPv6, as Go listeners do', async () => {
    const s = await listenHttp('0.0.0.0', 0, (_q, r) => r.end('ok'));
    open.push(s);
    expect(await (await fetch(`http://127.0.0.1:${s.port}/`)).text()).toBe('ok');
    if (s.address.startsWith('[::]')) expect(await (await fetch(`http://[::1]:${s.port}/`)).text()).toBe('ok');
    else expect(s.address).toBe(`0.0.0.0:${s.port}`); // a host without IPv6
  });

  test('a port in use rejects with EADDRINUSE', async () => {
    const a = await listenHttp('127.0.0.1', 0, (_q, s) => s.end());
    open.push(a);
    await expect(listenHttp('127.0.0.1', a.port, (_q, s) => s.end())).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
