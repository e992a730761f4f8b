// `npm run bench [-- PART ...] [--quick | --render]`: runs the benchmark parts named
// (every part when none is), prints their progress, and writes
// docs/benchmarks.json (the raw figures of each part's last run, with the
// machine, kernel, date and load average), docs/benchmarks.md (tables,
// rendered from that JSON) and docs/benchmarks/*.svg (plots rendered with
// vega-lite and vega, offline). A part run alone replaces only its own
// entry; the page is rebuilt from every part's last figures. `--render`
// only rebuilds the page and plots from docs/benchmarks.json.
//
// A benchmark, not a test: nothing asserts a time. The run exits non-zero
// only when something is functionally wrong (a ruleset a tool rejects, maps
// that do not hold what was written), or on a usage error.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { control } from './control.ts';
import type { Part, Plot, RunContext } from './part.ts';
import { fixed } from './report.ts';

// Parts in the order they run and appear on the page. Issue 11's other
// parts (memory and restart, packets, scale, profile) are added here.
// biome-ignore lint/suspicious/noExplicitAny: each part has its own data type; the runner only passes it through.
const PARTS: readonly Part<any>[] = [control];

const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));
const JSON_PATH = join(DOCS, 'benchmarks.json');
const MD_PATH = join(DOCS, 'benchmarks.md');
const SVG_DIR = join(DOCS, 'benchmarks');

interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  /** Load average (1, 5, 15 min) at the start and at the end of the part. */
  readonly loadStart: readonly number[];
  readonly loadEnd: readonly number[];
}

interface PartEntry {
  readonly date: string;
  readonly seconds: number;
  readonly quick: boolean;
  readonly machine: Machine;
  readonly data: unknown;
}

interface Report {
  readonly parts: Record<string, PartEntry>;
}

function machine(loadStart: readonly number[]): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model.trim() ?? '?',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadStart,
    loadEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function parseArgs(argv: readonly string[]): { quick: boolean; render: boolean; parts: string[] } | string {
  let quick = false;
  let render = false;
  const parts: string[] = [];
  for (const a of argv) {
    if (a === '--quick') quick = true;
    else if (a === '--render') render = true;
    else if (a.startsWith('-')) return `unknown option ${a} (options: --quick, --render)`;
    else if (PARTS.some((p) => p.name === a)) parts.push(a);
    else return `unknown part ${a} (parts: ${PARTS.map((p) => p.name).join(', ')})`;
  }
  return { quick, render, parts: parts.length > 0 ? parts : PARTS.map((p) => p.name) };
}

function readReport(): Report {
  if (!existsSync(JSON_PATH)) return { parts: {} };
  try {
    const r = JSON.parse(readFileSync(JSON_PATH, 'utf8')) as Report;
    return r.parts !== undefined ? r : { parts: {} };
  } catch {
    return { parts: {} };
  }
}

async function renderSvg(p: Plot): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(p.spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

function machineLine(e: PartEntry): string {
  const m = e.machine;
  const load = (l: readonly number[]): string => l.map((x) => fixed(x, 2)).join(' / ');
  return (
    `Run ${e.date}${e.quick ? ' (`--quick`: fewer sizes and repetitions)' : ''}, ${fixed(e.seconds, 0)} s: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, ` +
    `Linux ${m.kernel}, Node ${m.node}; load average (1 / 5 / 15 min) ${load(m.loadStart)} at the start, ${load(m.loadEnd)} at the end.`
  );
}

async function writeDocs(report: Report): Promise<string[]> {
  mkdirSync(SVG_DIR, { recursive: true });
  const written: string[] = [];
  const md: string[] = [
    '# Benchmarks',
    '',
    '<!-- Written by `npm run bench` (bench/run.ts) from docs/benchmarks.json; do not edit by hand. -->',
    '',
    'Measured by `npm run bench` (see `bench/README.md`): every figure on this page comes from one run of its part, and every ratio compares figures measured in that same run. ' +
      'Raw figures, with the machine and kernel: [`benchmarks.json`](benchmarks.json).',
  ];
  for (const part of PARTS) {
    const e = report.parts[part.name];
    if (e === undefined) continue;
    md.push('', `## ${part.title}`, '', machineLine(e), '');
    for (const p of part.plots(e.data)) {
      const svg = await renderSvg(p);
      writeFileSync(join(SVG_DIR, p.file), svg);
      written.push(join(SVG_DIR, p.file));
      md.push(`![${p.title}](benchmarks/${p.file})`, '');
    }
    md.push(part.markdown(e.data));
  }
  writeFileSync(MD_PATH, `${md.join('\n')}\n`);
  writeFileSync(JSON_PATH, `${JSON.stringify(report, null, 2)}\n`);
  return [MD_PATH, JSON_PATH, ...written];
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    console.error(`bench: ${args}`);
    return 2;
  }
  const failures: string[] = [];
  const report = readReport();
  if (args.render) {
    // Only the page and the plots, again from docs/benchmarks.json (after a change to the rendering).
    const files = await writeDocs(report);
    console.log(`bench: wrote ${files.map((f) => f.slice(DOCS.length - 'docs/'.length)).join(', ')}`);
    return 0;
  }
  let ran = 0;
  const began = performance.now();
  for (const name of args.parts) {
    const part = PARTS.find((p) => p.name === name);
    if (part === undefined) continue;
    const why = part.cannotRun();
    if (why !== null) {
      console.log(`bench: part ${part.name} skipped: ${why}`);
      continue;
    }
    console.log(`bench: part ${part.name}${args.quick ? ' (--quick)' : ''}`);
    const ctx: RunContext = {
      quick: args.quick,
      log: (line) => console.log(line),
      fail: (message) => {
        failures.push(`${part.name}: ${message}`);
        console.error(`FAILED: ${message}`);
      },
    };
    const loadStart = loadavg().map((l) => Math.round(l * 100) / 100);
    const t0 = performance.now();
    const date = new Date().toISOString();
    try {
      const data = await part.run(ctx);
      report.parts[part.name] = { date, seconds: (performance.now() - t0) / 1000, quick: args.quick, machine: machine(loadStart), data };
      ran++;
      console.log(`\n${part.markdown(data)}\n`);
    } catch (err) {
      ctx.fail(`stopped: ${(err as Error).message}`);
    }
  }
  if (ran > 0) {
    const files = await writeDocs(report);
    console.log(`bench: wrote ${files.map((f) => f.slice(DOCS.length - 'docs/'.length)).join(', ')}`);
  }
  console.log(`bench: ${fixed((performance.now() - began) / 1000, 0)} s in all`);
  if (failures.length === 0) return 0;
  console.error(`\nbench FAILED (something is functionally wrong, not slow):\n  ${failures.join('\n  ')}`);
  return 1;
}

process.exitCode = await main();
