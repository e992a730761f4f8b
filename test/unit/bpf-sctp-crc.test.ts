// The arithmetic of bpf/lib/sctp.h, checked where BPF_PROG_TEST_RUN cannot
// reach (its frames stop near 4 KiB, the header serves 64 KiB): the
// constants x^(8 j 16^k) mod P written in the header are derived here
// independently (a CRC32c register fed zero bytes through the byte table),
// and the header's algorithm, transcribed, turns a port change into the
// CRC32c that a full recompute (test/support/packets.ts) gives, for packets
// up to 64 KiB. test/privileged/bpf-lib.test.ts runs the C itself.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { crc32c, sctpChecksum } from '../support/packets.ts';
import { REPO } from '../support/requirements.ts';

const POLY = 0x82f63b78;
const X0 = 0x80000000;

/** The header's constants, row k = digit position, column j = digit value. */
function headerConstants(): number[][] {
  const src = readFileSync(`${REPO}bpf/lib/sctp.h`, 'utf8');
  const fn = src.slice(src.indexOf('sy_crc32c_x8pow_digit(int k'));
  const rows = [...fn.matchAll(/SY_X8_ROW\(j,([^;]*)\);/g)].map((m) =>
    [...(m[1] ?? '').matchAll(/0x([0-9a-f]{8})u/g)].map((h) => Number.parseInt(h[1] ?? '', 16)),
  );
  return rows;
}

/** The register state X0 advanced over `bytes` zero bytes, byte-table style: x^(8 bytes) mod P. */
function x8pow(bytes: number): number {
  const table: number[] = [];
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    table.push(c >>> 0);
  }
  let s = X0;
  for (let i = 0; i < bytes; i++) s = ((table[s & 0xff] as number) ^ (s >>> 8)) >>> 0;
  return s;
}

// The header's functions, transcribed.
function mulmod(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 32; i++) {
    if ((a >>> (31 - i)) & 1) p ^= b;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

function lin16(v: number): number {
  let c = v >>> 8;
  for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  c ^= v & 0xff;
  for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  return c >>> 0;
}

function shift(crc: number, n: number, consts: number[][]): number {
  for (let k = 0; k < 4 && n >>> (4 * k) !== 0; k++) crc = mulmod(consts[k]?.[(n >>> (4 * k)) & 0xf] ?? 0, crc);
  return crc;
}

describe('sctp.h arithmetic', () => {
  const consts = headerConstants();

  test('the header holds 4 rows of 16 constants, each x^(8 j 16^k) mod P', () => {
    expect(consts.map((r) => r.length)).toEqual([16, 16, 16, 16]);
    for (let k = 0; k < 4; k++) for (let j = 0; j < 16; j++) expect(consts[k]?.[j], `k=${k} j=${j}`).toBe(x8pow(j * 16 ** k));
  });

  test('a port change at either position, packets of 12 bytes to 64 KiB: the update equals a full recompute', () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 8;
    };
    const lengths = [12, 13, 16, 17, 255, 256, 4095, 4096, 4097, 9000, 30001, 65535, 65536 + 3];
    for (const len of lengths) {
      const pkt = Buffer.alloc(len);
      for (let i = 0; i < len; i++) pkt[i] = rnd() & 0xff;
      pkt.writeUInt32LE(sctpChecksum(pkt), 8);
      for (const isDst of [false, true]) {
        const at = isDst ? 2 : 0;
        const old = pkt.readUInt16BE(at);
        const next = (old ^ (rnd() & 0xffff)) & 0xffff || 1;
        const after = len - at - 2;
        const changed = Buffer.from(pkt);
        changed.writeUInt16BE(next, at);
        const expected = sctpChecksum(changed);
        if (after > 0xffff) {
          expect(len, 'the header refuses these').toBeGreaterThan(0xffff);
          continue;
        }
        const updated = (pkt.readUInt32LE(8) ^ shift(lin16(old ^ next), after, consts)) >>> 0;
        expect(updated, `len ${len} ${isDst ? 'dport' : 'sport'}`).toBe(expected);
      }
    }
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});
