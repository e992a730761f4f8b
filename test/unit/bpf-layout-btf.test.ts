// layout.ts against the truth: the BTF of a BPF object built from
// bpf/include/sy_maps.h. Every struct of the header must be in STRUCTS with
// the same size and the same members (name, byte offset, size, C type
// including __be16/__be32 byte order); every #define SY_* must equal
// HEADER_DEFINES; and every map in MAPS must be declared in .maps with that
// type, key, value, max_entries and map_flags, pinned by name.
//
// Object used: bpf/build/switchyard.bpf.o when it exists (make -C bpf);
// otherwise a fixture compiled here from the header (each struct as a
// global, maps declared as the header's comments describe them), with a
// note in the output (SY_BTF_FIXTURE=1 forces the fixture). Needs clang and
// bpftool; skips with a note without.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HEADER_DEFINES, MAPS, STRUCTS, SY_CT_VALUE, SY_SVC_KEY } from '../../src/dataplane/bpf/layout.ts';
import type { FieldKind, MapSpec, MapType, StructSpec } from '../../src/dataplane/bpf/layout.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HEADER_DIR = join(ROOT, 'bpf/include');
const HEADER = join(HEADER_DIR, 'sy_maps.h');
const REAL_OBJECT = join(ROOT, 'bpf/build/switchyard.bpf.o');
const SYS_INCLUDE = '/usr/include/x86_64-linux-gnu';

function have(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const CLANG = ['clang', 'clang-14'].find((c) => have(c, ['--version']));
const BPFTOOL = have('bpftool', ['version']) ? 'bpftool' : undefined;

// ---------------------------------------------------------------------------
// The fixture: the header's structs and maps, as the BPF program will have them.

const FIXTURE_C = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sy_maps.h"

struct sy_svc_key    fx_svc_key;
struct sy_svc_value  fx_svc_value;
struct sy_backend    fx_backend;
struct sy_ct_key     fx_ct_key;
struct sy_ct_value   fx_ct_value;
struct sy_rnat_value fx_rnat_value;
struct sy_config     fx_config;

#define PINNED __uint(pinning, LIBBPF_PIN_BY_NAME)
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, SY_SVC_MAX); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, struct sy_svc_key); __type(value, struct sy_svc_value); PINNED; } sy_svc4_v1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, SY_BACKEND_MAX); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, __u32); __type(value, struct sy_backend); PINNED; } sy_backend4_v1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, SY_CT_MAX);
         __type(key, struct sy_ct_key); __type(value, struct sy_ct_value); PINNED; } sy_ct4_v1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, SY_CT_MAX);
         __type(key, struct sy_ct_key); __type(value, struct sy_rnat_value); PINNED; } sy_rnat4_v1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct sy_config); PINNED; } sy_config_v1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, SY_STAT_MAX);
         __type(key, __u32); __type(value, __u64); PINNED; } sy_stats_v1 SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";
`;

let tmp: string | undefined;
after(() => {
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

let built: { path: string; real: boolean } | undefined;

function objectUnderTest(): { path: string; real: boolean } {
  built ??= buildObject();
  return built;
}

function buildObject(): { path: string; real: boolean } {
  if (existsSync(REAL_OBJECT) && process.env.SY_BTF_FIXTURE !== '1') return { path: REAL_OBJECT, real: true };
  tmp = mkdtempSync(join(tmpdir(), 'sy-btf-'));
  const src = join(tmp, 'fixture.bpf.c');
  const obj = join(tmp, 'fixture.bpf.o');
  writeFileSync(src, FIXTURE_C);
  execFileSync(CLANG as string, ['-O2', '-g', '-target', 'bpf', `-I${SYS_INCLUDE}`, `-I${HEADER_DIR}`, '-c', src, '-o', obj]);
  return { path: obj, real: false };
}

// ---------------------------------------------------------------------------
// BTF, as bpftool -j btf dump file X prints it.

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}
interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  vars?: Array<{ type_id: number; offset: number; size: number }>;
}

class Btf {
  readonly types: BtfType[];
  private readonly byId = new Map<number, BtfType>();
  constructor(types: BtfType[]) {
    this.types = types;
    for (const t of types) this.byId.set(t.id, t);
  }
  static load(path: string): Btf {
    const out = execFileSync(BPFTOOL as string, ['-j', 'btf', 'dump', 'file', path], { maxBuffer: 64 << 20 }).toString();
    return new Btf((JSON.parse(out) as { types: BtfType[] }).types);
  }
  get(id: number): BtfType {
    const t = this.byId.get(id);
    assert.ok(t !== undefined, `BTF type id ${id} missing`);
    return t;
  }
  struct(name: string): BtfType | undefined {
    return this.types.find((t) => t.kind === 'STRUCT' && t.name === name);
  }
  /** Skips const/volatile; stops at the first typedef, struct, int or array. */
  strip(id: number): BtfType {
    let t = this.get(id);
    while (t.kind === 'CONST' || t.kind === 'VOLATILE' || t.kind === 'RESTRICT') t = this.get(t.type_id as number);
    return t;
  }
  /** Follows typedefs (and qualifiers) to the underlying type. */
  resolve(id: number): BtfType {
    let t = this.strip(id);
    while (t.kind === 'TYPEDEF') t = this.strip(t.type_id as number);
    return t;
  }
  sizeOf(id: number): number {
    const t = this.resolve(id);
    if (t.kind === 'ARRAY') return (t.nr_elems as number) * this.sizeOf(t.type_id as number);
    assert.ok(t.size !== undefined, `BTF type ${t.id} (${t.kind}) has no size`);
    return t.size;
  }
  /** "__be32", "__u8[3]", "struct sy_svc_key", "int": the C spelling of a member's type. */
  spell(id: number): string {
    const t = this.strip(id);
    if (t.kind === 'TYPEDEF' || t.kind === 'INT') return t.name;
    if (t.kind === 'STRUCT') return `struct ${t.name}`;
    if (t.kind === 'ARRAY') return `${this.spell(t.type_id as number)}[${t.nr_elems}]`;
    return t.kind;
  }
}

const KIND_C: Record<Exclude<FieldKind, 'u8[]' | 'hole'>, string> = { u8: '__u8', u16: '__u16', u32: '__u32', u64: '__u64', be16: '__be16', be32: '__be32' };

function expectedC(f: { kind: FieldKind; size: number }): string {
  return f.kind === 'u8[]' ? `__u8[${f.size}]` : KIND_C[f.kind as keyof typeof KIND_C];
}

/** Every difference between a StructSpec and the object's BTF, as readable lines. */
function structDrift(btf: Btf, spec: StructSpec): string[] {
  const t = btf.struct(spec.name);
  if (t === undefined) return [`struct ${spec.name}: not in the object's BTF`];
  const out: string[] = [];
  if (t.size !== spec.size) out.push(`struct ${spec.name}: size ${t.size} in BTF, ${spec.size} in layout.ts`);
  const members = t.members ?? [];
  const fields = spec.fields.filter((f) => f.kind !== 'hole');
  for (const m of members) {
    const f = fields.find((x) => x.name === m.name);
    const where = `${spec.name}.${m.name}`;
    if (f === undefined) {
      out.push(`${where}: in BTF, missing from layout.ts`);
      continue;
    }
    if (m.bitfield_size) out.push(`${where}: is a bitfield`);
    if (m.bits_offset !== f.offset * 8) out.push(`${where}: offset ${m.bits_offset / 8} in BTF, ${f.offset} in layout.ts`);
    const size = btf.sizeOf(m.type_id);
    if (size !== f.size) out.push(`${where}: size ${size} in BTF, ${f.size} in layout.ts`);
    const c = btf.spell(m.type_id);
    if (c !== expectedC(f)) out.push(`${where}: type ${c} in BTF, ${expectedC(f)} (${f.kind}) in layout.ts`);
  }
  for (const f of fields) if (!members.some((m) => m.name === f.name)) out.push(`${spec.name}.${f.name}: in layout.ts, not in BTF`);
  for (const h of spec.fields.filter((f) => f.kind === 'hole')) {
    const overlap = members.find((m) => m.bits_offset / 8 < h.offset + h.size && m.bits_offset / 8 + btf.sizeOf(m.type_id) > h.offset);
    if (overlap !== undefined) out.push(`${spec.name}: layout.ts has a hole at ${h.offset}..${h.offset + h.size} where BTF has member ${overlap.name}`);
  }
  return out;
}

const MAP_TYPE_ID: Record<MapType, number> = { hash: 1, array: 2, percpu_array: 6, lru_hash: 9 };

/** The BTF-defined map `name` (libbpf's __uint/__type convention) against its MapSpec. */
function mapDrift(btf: Btf, spec: MapSpec): string[] {
  const maps = btf.types.find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  const v = maps?.vars?.map((x) => btf.get(x.type_id)).find((x) => x.kind === 'VAR' && x.name === spec.name);
  if (v === undefined) return [`map ${spec.name}: not declared in .maps`];
  const def = btf.resolve(v.type_id as number);
  const member = (n: string): BtfMember | undefined => def.members?.find((m) => m.name === n);
  /** __uint(name, N) is "int (*name)[N]". */
  const uint = (n: string): number | undefined => {
    const m = member(n);
    if (m === undefined) return undefined;
    const ptr = btf.strip(m.type_id);
    return btf.get(ptr.type_id as number).nr_elems;
  };
  /** __type(name, T) is "T *name". */
  const typeOf = (n: string): string | undefined => {
    const m = member(n);
    if (m === undefined) return undefined;
    const target = btf.get(btf.strip(m.type_id).type_id as number);
    const r = btf.resolve(target.id);
    return r.kind === 'STRUCT' ? `struct ${r.name}` : `${r.kind === 'INT' ? 'int' : r.kind}:${btf.sizeOf(target.id)}`;
  };
  const want = (s: StructSpec): string => (s.type === 'struct' ? `struct ${s.name}` : `int:${s.size}`);
  const out: string[] = [];
  const check = (what: string, got: unknown, expected: unknown): void => {
    if (got !== expected) out.push(`map ${spec.name}: ${what} is ${String(got)} in BTF, ${String(expected)} in layout.ts`);
  };
  check('type', uint('type'), MAP_TYPE_ID[spec.type]);
  check('max_entries', uint('max_entries'), spec.maxEntries);
  check('map_flags', uint('map_flags') ?? 0, spec.flags);
  check('pinning (LIBBPF_PIN_BY_NAME = 1: adopt reads the pinned maps)', uint('pinning'), 1);
  if (member('key') !== undefined) check('key', typeOf('key'), want(spec.key));
  else check('key_size', uint('key_size'), spec.key.size);
  if (member('value') !== undefined) check('value', typeOf('value'), want(spec.value));
  else check('value_size', uint('value_size'), spec.value.size);
  return out;
}

// ---------------------------------------------------------------------------

const skip = CLANG === undefined || BPFTOOL === undefined ? 'needs clang and bpftool' : false;

test('layout.ts matches the BTF of the BPF object', { skip }, (t) => {
  const obj = objectUnderTest();
  const note = obj.real
    ? `checking the real object ${obj.path}`
    : `NOTE: ${REAL_OBJECT} not used (not built: make -C bpf; or SY_BTF_FIXTURE=1); checking a fixture compiled from sy_maps.h instead`;
  t.diagnostic(note);
  console.log(`# ${note}`);
  const btf = Btf.load(obj.path);

  const drift = STRUCTS.flatMap((s) => structDrift(btf, s));
  assert.deepEqual(drift, [], `layout.ts has drifted from sy_maps.h:\n${drift.join('\n')}`);

  const mapDrifts = Object.values(MAPS).flatMap((m) => mapDrift(btf, m));
  assert.deepEqual(mapDrifts, [], `MAPS has drifted from the object's map definitions:\n${mapDrifts.join('\n')}`);
});

test('every struct in sy_maps.h has a table in layout.ts', () => {
  const header = readFileSync(HEADER, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const declared = [...header.matchAll(/^\s*struct\s+(\w+)\s*\{/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, STRUCTS.map((s) => s.name).sort());
});

test("sy_maps.h's #defines equal HEADER_DEFINES", { skip: CLANG === undefined ? 'needs clang' : false }, () => {
  const out = execFileSync(CLANG as string, ['-E', '-dM', '-target', 'bpf', `-I${SYS_INCLUDE}`, HEADER]).toString();
  const defines: Record<string, number> = {};
  for (const m of out.matchAll(/^#define (SY_\w+) (.+)$/gm)) {
    const [, name, value] = m as unknown as [string, string, string];
    if (name === 'SY_MAPS_H') continue;
    defines[name] = Number(value.trim());
  }
  assert.deepEqual(defines, { ...HEADER_DEFINES });
});

test('map names carry the layout version', () => {
  for (const m of Object.values(MAPS)) assert.match(m.name, new RegExp(`_v${HEADER_DEFINES.SY_LAYOUT_VERSION}$`), m.name);
});

test('the BTF check notices drift', { skip }, () => {
  const btf = Btf.load(objectUnderTest().path);
  const swapped = SY_SVC_KEY.fields.map((f) => (f.name === 'port_be' ? { ...f, kind: 'u16' as const } : f.name === 'slot' ? { ...f, offset: 9 } : f));
  assert.deepEqual(structDrift(btf, { ...SY_SVC_KEY, size: 16, fields: swapped }), [
    'struct sy_svc_key: size 12 in BTF, 16 in layout.ts',
    'sy_svc_key.port_be: type __be16 in BTF, __u16 (u16) in layout.ts',
    'sy_svc_key.slot: offset 8 in BTF, 9 in layout.ts',
  ]);
  const renamed = SY_CT_VALUE.fields.map((f) => (f.name === 'pad' ? { ...f, name: 'pad2' } : f));
  assert.deepEqual(structDrift(btf, { ...SY_CT_VALUE, fields: renamed }), [
    'sy_ct_value.pad: in BTF, missing from layout.ts',
    'sy_ct_value.pad2: in layout.ts, not in BTF',
  ]);
  assert.deepEqual(mapDrift(btf, { ...MAPS.backend, key: SY_SVC_KEY, maxEntries: 7 }), [
    'map sy_backend4_v1: max_entries is 131072 in BTF, 7 in layout.ts',
    'map sy_backend4_v1: key is int:4 in BTF, struct sy_svc_key in layout.ts',
  ]);
});
