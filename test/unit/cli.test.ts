// The switchyard command line as an operator runs it (no root needed for
// these paths): kube-proxy's --version and --write-config-to, help, errors.

import { expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.ts';
import { tempDir } from '../support/temp-dir.ts';

const BIN = fileURLToPath(new URL('../../bin/switchyard', import.meta.url));
const sy = (...args: string[]) => spawnSync(BIN, args, { encoding: 'utf8' });

test('run --version prints the version from package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = sy('run', '--version');
  expect(r.status).toBe(0);
  expect(r.stdout.trim()).toBe(`switchyard ${pkg.version}`);
});

test('run --write-config-to writes the effective configuration, which loads back the same', () => {
  const file = join(tempDir('sy-cli-'), 'config.yaml');
  const r = sy('run', `--write-config-to=${file}`, '--ipvs-scheduler=wrr', '--cluster-cidr=10.244.0.0/16');
  expect(r.status, r.stderr).toBe(0);
  const back = loadConfig([`--config=${file}`]).config;
  expect(back.ipvs.scheduler).toBe('wrr');
  expect(back.clusterCIDR).toBe('10.244.0.0/16');
});

test('run --help documents kube-proxy flags and our own; a bad config file exits 2 naming the field', () => {
  const help = sy('run', '--help');
  expect(help.status).toBe(0);
  for (const flag of ['--proxy-mode', '--cluster-cidr', '--nodeport-addresses', '--ipvs-scheduler', '--cleanup', '--manifests', '--bpf-pin-path']) {
    expect(help.stdout, `--help mentions ${flag}`).toContain(flag);
  }
  const file = join(tempDir('sy-cli-'), 'bad.yaml');
  spawnSync('sh', ['-c', `printf 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\\nkind: KubeProxyConfiguration\\nipvs:\\n  scheduler: fastest\\n' > ${file}`]);
  const r = sy('run', `--config=${file}`);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/ipvs\.scheduler/);
  expect(r.stderr).toMatch(/fastest/);
});
