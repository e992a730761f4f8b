// Every switchyard command parses its flags with the one parser
// (src/config/flags.ts): kube-proxy's syntax, Go durations, errors that name
// the flag, and --help in one format.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { ConfigError, DEFAULT_PIN_PATH, parseCommandFlags, type FlagSpec } from '../../src/config/index.ts';

const BIN = fileURLToPath(new URL('../../bin/switchyard', import.meta.url));
const sy = (...args: string[]) => spawnSync(BIN, args, { encoding: 'utf8' });

const FLAGS: readonly FlagSpec[] = [
  { name: 'pin-path', kind: 'string', arg: 'DIR', help: 'A directory.' },
  { name: 'period', kind: 'duration', help: 'How often.' },
  { name: 'dry-run', kind: 'bool', help: 'Only say.' },
  { name: 'links', kind: 'stringSlice', help: 'Globs.' },
  { name: 'verbose', short: 'v', kind: 'uint32', help: 'Verbosity.' },
];

function refused(...argv: string[]): string {
  try {
    parseCommandFlags(argv, FLAGS, 'test');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

test("kube-proxy's syntax: --f=v, --f v, booleans, underscores, short forms, repeated lists", () => {
  const v = parseCommandFlags(['--pin_path', '/run/sy', '--period=1m30s', '--dry-run', '--links=veth*', '--links', 'cali*,eth9', '-v4'], FLAGS, 'test');
  expect(Object.fromEntries(v)).toEqual({ 'pin-path': '/run/sy', period: 90_000, 'dry-run': true, links: ['veth*', 'cali*', 'eth9'], verbose: 4 });
  expect(parseCommandFlags(['--dry-run=false'], FLAGS, 'test').get('dry-run')).toBe(false);
  expect(parseCommandFlags([], FLAGS, 'test').size).toBe(0);
});

test.each<[string, number]>([
  ['0', 0],
  ['300ms', 300],
  ['1.5h', 5_400_000],
  ['2h45m', 9_900_000],
  ['250us', 0.25],
  ['-1s', -1000],
])('durations are Go durations: %s', (text, ms) => {
  expect(parseCommandFlags([`--period=${text}`], FLAGS, 'test').get('period')).toBe(ms);
});

test('problems name the flag, the value and what is allowed, all at once', () => {
  expect(refused('--period=5')).toBe(
    '--period: "5": must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); this one has a number without a unit',
  );
  expect(refused('--pin-paht=/x')).toBe('--pin-paht: unknown flag (did you mean --pin-path?); `switchyard test --help` lists them');
  expect(refused('--pin-path')).toBe('--pin-path: needs a value (DIR)');
  expect(refused('extra')).toBe('"extra": unexpected argument: switchyard test takes flags only');
  expect(refused('--dry-run', 'false')).toBe(
    '"false": unexpected argument: switchyard test takes flags only (a boolean flag takes its value after "=": --dry-run=false)',
  );
  expect(refused('--bogus', '--period=x')).toMatch(/^2 problems:\n {2}--bogus: unknown flag; .*\n {2}--period: "x": must be a duration/);
});

test('cleanup and demo --help list their flags in the one help format', () => {
  const cleanup = sy('cleanup', '--help');
  expect(cleanup.status).toBe(0);
  expect(cleanup.stdout).toMatch(/^Usage: switchyard cleanup \[flags\]\n/);
  expect(cleanup.stdout).toContain(`    --bpf-pin-path=DIR\n          The pin directory \`run\` used. (default ${DEFAULT_PIN_PATH})`);
  const demo = sy('demo', '--help');
  expect(demo.status).toBe(0);
  expect(demo.stdout).toMatch(/^Usage: switchyard demo\n\nBuild a two-node cluster/);
  expect(demo.stdout).not.toContain('Flags:');
});

test('status --help lists --bpf-pin-path and --json; a bad --json value exits 2 naming it', () => {
  const help = sy('status', '--help');
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/^Usage: switchyard status \[flags\]\n/);
  expect(help.stdout).toContain(`    --bpf-pin-path=DIR\n          The pin directory \`run\` uses. (default ${DEFAULT_PIN_PATH})`);
  expect(help.stdout).toContain('    --json\n');
  const bad = sy('status', '--json=maybe');
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/^switchyard status: --json: "maybe": /);
});

test("a command's bad flag exits 2 naming it, before anything runs", () => {
  const r = sy('cleanup', '--bpf-pin-path');
  expect(r.status).toBe(2);
  expect(r.stderr).toBe('switchyard cleanup: --bpf-pin-path: needs a value (DIR)\n');
  const d = sy('demo', 'now');
  expect(d.status).toBe(2);
  expect(d.stderr).toBe('switchyard demo: "now": unexpected argument: switchyard demo takes flags only\n');
});
