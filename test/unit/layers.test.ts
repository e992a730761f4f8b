// Dependencies point one way (DESIGN.md section 2): every import in src/ goes
// to a module of its own layer or of a layer below. The layers, lowest first:
//
//   util       logging, errors, IP addresses, copy-on-write containers, ...
//   native     the addon's typed layer: mechanisms, no Kubernetes
//   host       this machine's links and addresses: no Kubernetes
//   sources    Kubernetes objects: validation, caches, API and manifests
//   model      ServicePorts, endpoint selection, verdicts, snapshots
//   sync       the bounded-frequency runner and the snapshot pipeline
//   dataplane  compile, diff, apply (on native and host)
//   ops        what the daemon reports: health, metrics, Events (reads model, sync, dataplane results)
//   config | rig   kube-proxy's flags and file | the test rig (peers: neither imports the other)
//   cli        the commands, which wire everything together
//   main       the entry point
//
// Layers on one line are peers and may not import each other. A new folder
// under src/ must be given a place here.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, test } from 'vitest';

const LAYERS: readonly (readonly string[])[] = [
  ['util'],
  ['native'],
  ['host'],
  ['sources'],
  ['model'],
  ['sync'],
  ['dataplane'],
  ['ops'],
  ['config', 'rig'],
  ['cli'],
  ['main'],
];

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

function rankOf(layer: string): number {
  return LAYERS.findIndex((peers) => peers.includes(layer));
}

/** The layer of a file under src/: its top folder, or its name for a file directly in src/ (main.ts -> main). */
function layerOf(file: string): string {
  const [top = '', ...rest] = relative(SRC, file).split('/');
  return rest.length === 0 ? top.replace(/\.ts$/, '') : top;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

interface Edge {
  readonly from: string;
  readonly specifier: string;
  readonly to: string;
}

/** Every relative import, export-from and dynamic import() of every module under src/. */
function imports(): Edge[] {
  return sourceFiles(SRC).flatMap((from) => {
    const info = ts.preProcessFile(readFileSync(from, 'utf8'), true, true);
    return info.importedFiles
      .map((f) => f.fileName)
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => ({ from, specifier, to: resolve(dirname(from), specifier) }));
  });
}

/** Why an import breaks the layering, or null when it does not. */
function violation(e: Edge): string | null {
  const from = layerOf(e.from);
  const to = layerOf(e.to);
  const where = `${relative(ROOT, e.from)} imports '${e.specifier}'`;
  if (!e.to.startsWith(`${SRC}/`)) return `${where}: outside src/`;
  if (from === to) return null;
  const a = rankOf(from);
  const b = rankOf(to);
  if (a < 0 || b < 0) return `${where}: layer ${a < 0 ? from : to} has no place in LAYERS (test/unit/layers.test.ts)`;
  if (b > a) return `${where}: ${to} is a layer above ${from}`;
  if (b === a) return `${where}: ${to} and ${from} are peers`;
  return null;
}

test('the layering sees the imports it checks', () => {
  const edges = imports();
  const layersSeen = new Set(edges.map((e) => layerOf(e.from)));
  for (const layer of ['native', 'sources', 'model', 'sync', 'dataplane', 'config', 'cli', 'main']) expect(layersSeen, layer).toContain(layer);
  // A multi-line import and a dynamic import() are both seen.
  expect(edges.some((e) => e.from.endsWith('src/cli/main.ts') && e.specifier === '../config/index.ts')).toBe(true);
  expect(edges.some((e) => e.from.endsWith('src/main.ts') && e.specifier === './cli/main.ts')).toBe(true);
});

test('the checker flags an upward import, a peer import and an unplaced folder', () => {
  const edge = (from: string, specifier: string): Edge => ({ from: join(SRC, from), specifier, to: resolve(dirname(join(SRC, from)), specifier) });
  expect(violation(edge('sources/objects.ts', '../model/types.ts'))).toBe("src/sources/objects.ts imports '../model/types.ts': model is a layer above sources");
  expect(violation(edge('config/flags.ts', '../rig/proc.ts'))).toBe("src/config/flags.ts imports '../rig/proc.ts': rig and config are peers");
  expect(violation(edge('metrics/x.ts', '../util/log.ts'))).toMatch(/layer metrics has no place in LAYERS/);
  expect(violation(edge('model/types.ts', '../sources/objects.ts'))).toBeNull();
  expect(violation(edge('dataplane/bpf/state.ts', './layout.ts'))).toBeNull();
});

test('no module under src/ imports from a layer above its own', () => {
  expect(
    imports()
      .map(violation)
      .filter((v) => v !== null),
  ).toEqual([]);
});
