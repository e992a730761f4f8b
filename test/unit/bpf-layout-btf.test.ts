// layout.ts (layout 2) and layout-v1.ts (the frozen layout 1) against the
// truth. Every struct of bpf/include/sy_maps.h (sy_maps_v1.h) must be in
// STRUCTS with the same size and the same members (name, byte offset, size,
// C type including __be16/__be32 byte order and __be32[4] addresses): checked
// against the BTF of a small object compiled here from the header alone, so
// the codecs are checked before any program uses every struct. Every
// #define SY_* must equal HEADER_DEFINES. And every map in MAPS must be
// declared in the .maps of the program object (bpf/build/switchyard.bpf.o,
// `npm run build:bpf`) with that type, key, value, max_entries and
// map_flags, pinned by name.
//
// The BTF checks need bpftool and the built object, the #define check needs
// clang (test/support/requirements.ts): without them they skip and say why;
// under CI or SY_REQUIRE_PRIVILEGED=1 the file fails naming what is missing.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { HEADER_DEFINES, MAPS, SOCK_MAPS, STRUCTS, SY_CT4_VALUE, SY_SVC4_KEY } from '../../src/dataplane/bpf/layout.ts';
import type { FieldKind, MapSpec, MapType, StructSpec } from '../../src/dataplane/bpf/layout.ts';
import * as v1 from '../../src/dataplane/bpf/layout-v1.ts';
import { BPF_OBJECT, needs, REPO } from '../support/requirements.ts';
import { tempDir } from '../support/temp-dir.ts';

const HEADER = join(REPO, 'bpf/include/sy_maps.h');
const HEADER_V1 = join(REPO, 'bpf/include/sy_maps_v1.h');
const SYS_INCLUDE = '/usr/include/x86_64-linux-gnu';

const withoutBtf = needs('BTF layout test', ['bpftool', 'bpf-object']);
const withoutHeaderBtf = needs('header BTF layout test', ['bpftool', 'clang']);
const withoutClang = needs("sy_maps.h's #define test", ['clang']);

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
    const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', path], { maxBuffer: 64 << 20 }).toString();
    return new Btf((JSON.parse(out) as { types: BtfType[] }).types);
  }
  get(id: number): BtfType {
    const t = this.byId.get(id);
    expect(t, `BTF type id ${id} missing`).toBeDefined();
    return t!;
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
    expect(t.size, `BTF type ${t.id} (${t.kind}) has no size`).toBeDefined();
    return t.size!;
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

const KIND_C: Record<Exclude<FieldKind, 'u8[]' | 'be32[]' | 'hole'>, string> = {
  u8: '__u8',
  u16: '__u16',
  u32: '__u32',
  u64: '__u64',
  be16: '__be16',
  be32: '__be32',
};

function expectedC(f: { kind: FieldKind; size: number }): string {
  if (f.kind === 'u8[]') return `__u8[${f.size}]`;
  if (f.kind === 'be32[]') return `__be32[${f.size / 4}]`;
  return KIND_C[f.kind as keyof typeof KIND_C];
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

const MAP_TYPE_ID: Record<MapType, number> = { hash: 1, array: 2, percpu_hash: 5, percpu_array: 6, lru_hash: 9, lpm_trie: 11 };

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

/**
 * Compiles a header alone into a BPF object whose BTF holds every struct it
 * declares (one global of each), so the tables are checked against the
 * header even before a program uses every struct.
 */
function headerBtf(header: string, structs: readonly StructSpec[]): Btf {
  const dir = tempDir('sy-layout-btf-');
  const c = join(dir, 'structs.c');
  const o = join(dir, 'structs.o');
  const vars = structs.filter((st) => st.type === 'struct').map((st, i) => `struct ${st.name} sy_layout_check_${i};`);
  writeFileSync(c, `#include "${header}"\n${vars.join('\n')}\n`);
  execFileSync('clang', ['-g', '-O2', '-target', 'bpf', `-I${SYS_INCLUDE}`, '-c', c, '-o', o]);
  return Btf.load(o);
}

describe.skipIf(withoutHeaderBtf)('the BTF of the headers', () => {
  test('layout.ts matches sy_maps.h, struct by struct', () => {
    const btf = headerBtf(HEADER, STRUCTS);
    const drift = STRUCTS.flatMap((st) => structDrift(btf, st));
    expect(drift, `layout.ts has drifted from sy_maps.h:\n${drift.join('\n')}`).toStrictEqual([]);
  });

  test('layout-v1.ts matches the frozen sy_maps_v1.h', () => {
    const btf = headerBtf(HEADER_V1, v1.STRUCTS);
    const drift = v1.STRUCTS.flatMap((st) => structDrift(btf, st));
    expect(drift, `layout-v1.ts has drifted from sy_maps_v1.h:\n${drift.join('\n')}`).toStrictEqual([]);
  });

  test('the BTF check notices drift', () => {
    const btf = headerBtf(HEADER, STRUCTS);
    const swapped = SY_SVC4_KEY.fields.map((f) => (f.name === 'port_be' ? { ...f, kind: 'u16' as const } : f.name === 'slot' ? { ...f, offset: 9 } : f));
    expect(structDrift(btf, { ...SY_SVC4_KEY, size: 16, fields: swapped })).toStrictEqual([
      'struct sy_svc4_key: size 12 in BTF, 16 in layout.ts',
      'sy_svc4_key.port_be: type __be16 in BTF, __u16 (u16) in layout.ts',
      'sy_svc4_key.slot: offset 8 in BTF, 9 in layout.ts',
    ]);
    const renamed = SY_CT4_VALUE.fields.map((f) =>
      f.name === 'pad' ? { ...f, name: 'pad2' } : f.name === 'nat_addr_be' ? { ...f, kind: 'u8[]' as const } : f,
    );
    expect(structDrift(btf, { ...SY_CT4_VALUE, fields: renamed })).toStrictEqual([
      'sy_ct4_value.nat_addr_be: type __be32 in BTF, __u8[4] (u8[]) in layout.ts',
      'sy_ct4_value.pad: in BTF, missing from layout.ts',
      'sy_ct4_value.pad2: in layout.ts, not in BTF',
    ]);
  });
});

describe.skipIf(withoutBtf)('the BTF of bpf/build/switchyard.bpf.o', () => {
  let btf: Btf;
  beforeAll(() => {
    btf = Btf.load(BPF_OBJECT);
  });

  test('the object declares every map of MAPS as layout.ts says', () => {
    const drift = STRUCTS.flatMap((st) => (btf.struct(st.name) === undefined ? [] : structDrift(btf, st)));
    expect(drift, `the object's structs drifted from layout.ts:\n${drift.join('\n')}`).toStrictEqual([]);
    const mapDrifts = Object.values(MAPS).flatMap((m) => mapDrift(btf, m));
    expect(mapDrifts, `MAPS has drifted from the object's map definitions:\n${mapDrifts.join('\n')}`).toStrictEqual([]);
  });

  test('the map check notices drift', () => {
    expect(mapDrift(btf, { ...MAPS.backend4, key: SY_SVC4_KEY, maxEntries: 7 })).toStrictEqual([
      `map sy_backend4_v2: max_entries is ${MAPS.backend4.maxEntries} in BTF, 7 in layout.ts`,
      'map sy_backend4_v2: key is int:4 in BTF, struct sy_svc4_key in layout.ts',
    ]);
    expect(mapDrift(btf, { ...MAPS.svc4, name: 'sy_nope_v2' })).toStrictEqual(['map sy_nope_v2: not declared in .maps']);
  });
});

describe.skipIf(withoutBtf)('the BTF of bpf/build/sock.bpf.o', () => {
  test('the socket hooks declare SOCK_MAPS and share MAPS as layout.ts says', () => {
    const btf = Btf.load(join(REPO, 'bpf/build/sock.bpf.o'));
    const drift = STRUCTS.flatMap((st) => (btf.struct(st.name) === undefined ? [] : structDrift(btf, st)));
    expect(drift, `the object's structs drifted from layout.ts:\n${drift.join('\n')}`).toStrictEqual([]);
    const mapDrifts = [...Object.values(MAPS), ...Object.values(SOCK_MAPS)].flatMap((m) => mapDrift(btf, m));
    expect(mapDrifts, `layout.ts has drifted from sock.bpf.o's map definitions:\n${mapDrifts.join('\n')}`).toStrictEqual([]);
  });
});

test('every struct in sy_maps.h has a table in layout.ts', () => {
  const header = readFileSync(HEADER, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const declared = [...header.matchAll(/^\s*struct\s+(\w+)\s*\{/gm)].map((m) => m[1]).sort();
  expect(declared).toStrictEqual(STRUCTS.map((s) => s.name).sort());
});

describe.skipIf(withoutClang)('the header through the C preprocessor', () => {
  test("sy_maps.h's #defines equal HEADER_DEFINES", () => {
    const out = execFileSync('clang', ['-E', '-dM', '-target', 'bpf', `-I${SYS_INCLUDE}`, HEADER]).toString();
    const defines: Record<string, number> = {};
    for (const m of out.matchAll(/^#define (SY_\w+) (.+)$/gm)) {
      const [, name, value] = m as unknown as [string, string, string];
      if (name === 'SY_MAPS_H') continue;
      defines[name] = Number(value.trim());
    }
    expect(defines).toStrictEqual({ ...HEADER_DEFINES });
  });
});

test('map names carry the layout version', () => {
  for (const m of Object.values(MAPS)) expect(m.name, m.name).toMatch(new RegExp(`_v${HEADER_DEFINES.SY_LAYOUT_VERSION}$`));
  for (const m of Object.values(v1.MAPS)) expect(m.name, m.name).toMatch(/_v1$/);
});

test('every struct in sy_maps_v1.h has a table in layout-v1.ts', () => {
  const header = readFileSync(HEADER_V1, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const declared = [...header.matchAll(/^\s*struct\s+(\w+)\s*\{/gm)].map((m) => m[1]).sort();
  expect(declared).toStrictEqual(v1.STRUCTS.map((st) => st.name).sort());
});
