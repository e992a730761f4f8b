// The switchyard command line as an operator runs it (no root needed for
// these paths): kube-proxy's --version and --write-config-to, help, errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.ts';

const BIN = fileURLToPath(new URL('../../bin/switchyard', import.meta.url));
const sy = (...args: string[]) => spawnSync(BIN, args, { encoding: 'utf8' });

test('run --version prints the version from package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = sy('run', '--version');
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), `switchyard ${pkg.version}`);
});

test('run --write-config-to writes the effective configuration, which loads back the same', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-cli-'));
  try {
    const file = join(dir, 'config.yaml');
    const r = sy('run', `--write-config-to=${file}`, '--ipvs-scheduler=wrr', '--cluster-cidr=10.244.0.0/16');
    assert.equal(r.status, 0, r.stderr);
    const back = loadConfig([`--config=${file}`]).config;
    assert.equal(back.ipvs.scheduler, 'wrr');
    assert.equal(back.clusterCIDR, '10.244.0.0/16');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run --help documents kube-proxy flags and our own; a bad config file exits 2 naming the field', () => {
  const help = sy('run', '--help');
  assert.equal(help.status, 0);
  for (const flag of ['--proxy-mode', '--cluster-cidr', '--nodeport-addresses', '--ipvs-scheduler', '--cleanup', '--manifests', '--bpf-pin-path']) {
    assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sy-cli-'));
  try {
    const file = join(dir, 'bad.yaml');
    spawnSync('sh', ['-c', `printf 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\\nkind: KubeProxyConfiguration\\nipvs:\\n  scheduler: fastest\\n' > ${file}`]);
    const r = sy('run', `--config=${file}`);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /ipvs\.scheduler/);
    assert.match(r.stderr, /fastest/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
