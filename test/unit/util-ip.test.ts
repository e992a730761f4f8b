// src/util/ip.ts, table by table, both families: family, IPv4 and IPv6
// parse/format/canonical text (RFC 5952), the two leading-zero rules, IPv4-
// mapped addresses, CIDRs and containment, host:port.

import { isIP } from 'node:net';
import { describe, expect, test } from 'vitest';
import {
  appendPortIfNeeded,
  canonicalIP,
  canonicalIPv4,
  cidrContains,
  familyOf,
  formatIP,
  formatIPv4,
  formatIPv6,
  hasLeadingZero,
  ipFamily,
  isUnspecifiedIP,
  parseCidr,
  parseIP,
  parseIPv4,
  parseIPv6,
  splitHostPort,
  unmapIPv4,
  type IPFamily,
  type LeadingZeros,
} from '../../src/util/ip.ts';

const hex = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('hex'));

describe('family', () => {
  test.each<[string, IPFamily]>([
    ['10.0.0.1', 'IPv4'],
    ['10.0.0.0/8', 'IPv4'],
    ['fd00::1', 'IPv6'],
    ['fd00::/64', 'IPv6'],
    ['::ffff:10.0.0.1', 'IPv6'],
    ['not an ip', 'IPv4'],
  ])('familyOf(%j) = %s (text, not validated)', (text, family) => {
    expect(familyOf(text)).toBe(family);
  });

  test.each<[string, LeadingZeros, IPFamily | null]>([
    ['10.0.0.1', 'reject', 'IPv4'],
    ['010.000.000.001', 'decimal', 'IPv4'],
    ['010.000.000.001', 'reject', null],
    ['fd00::1', 'reject', 'IPv6'],
    ['::ffff:10.0.0.1', 'reject', 'IPv6'],
    ['10.0.0', 'decimal', null],
    ['10.0.0.256', 'decimal', null],
    ['fe80::1%eth0', 'decimal', null],
    ['node-1', 'decimal', null],
    ['', 'decimal', null],
  ])('ipFamily(%j, %s) = %s', (text, lz, family) => {
    expect(ipFamily(text, lz)).toBe(family);
  });
});

describe('IPv4', () => {
  test.each<[string, number]>([
    ['1.2.3.4', 0x01020304],
    ['255.255.255.255', 0xffffffff],
    ['0.0.0.0', 0],
    ['10.96.0.10', 0x0a60000a],
  ])('parseIPv4(%j) = %i in both modes', (text, n) => {
    expect(parseIPv4(text, 'reject')).toBe(n);
    expect(parseIPv4(text, 'decimal')).toBe(n);
    expect(formatIPv4(n)).toBe(text);
  });

  test.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1..2.3',
    '.1.2.3',
    '1.2.3.',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.-4',
    'fd00::1',
    '1.2.3.4/32',
    '1.2.3.1000',
    '0x1.2.3.4',
    '1e1.0.0.1',
  ])('parseIPv4(%j) = -1 in both modes', (text) => {
    expect(parseIPv4(text, 'reject')).toBe(-1);
    expect(parseIPv4(text, 'decimal')).toBe(-1);
  });

  test.each<[string, number]>([
    ['010.001.0.09', 0x0a010009],
    ['00.0.0.0', 0],
    ['0000000000001.0.0.1', 0x01000001],
    ['1.2.3.0255', 0x010203ff],
  ])('leading zeros: parseIPv4(%j) is decimal with "decimal", refused with "reject"', (text, n) => {
    expect(parseIPv4(text, 'decimal')).toBe(n);
    expect(parseIPv4(text, 'reject')).toBe(-1);
    expect(hasLeadingZero(text)).toBe(true);
  });

  test.each<[string, string | null]>([
    ['010.001.0.09', '10.1.0.9'],
    ['10.0.0.0', '10.0.0.0'],
    ['10.96.0.10', '10.96.0.10'],
    ['100.0.10.0', '100.0.10.0'],
    ['x', null],
    ['fd00::1', null],
  ])('canonicalIPv4(%j) = %j', (text, canonical) => {
    expect(canonicalIPv4(text)).toBe(canonical);
    if (canonical !== null) expect(hasLeadingZero(text)).toBe(canonical !== text);
  });
});

describe('IPv6', () => {
  // [input, 16 bytes as hex, RFC 5952 text]
  test.each<[string, string, string]>([
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['1::', '00010000000000000000000000000000', '1::'],
    ['2001:0db8::0001', '20010db8000000000000000000000001', '2001:db8::1'],
    ['2001:DB8::A:B', '20010db80000000000000000000a000b', '2001:db8::a:b'],
    ['2001:db8:0:0:0:0:2:1', '20010db8000000000000000000020001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '20010000000000010000000000000001', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000', '1:2:3:4:5:6:7:0'],
    ['::1:2:3:4:5:6:7', '00000001000200030004000500060007', '0:1:2:3:4:5:6:7'],
    ['fd00:10:96::a', 'fd00001000960000000000000000000a', 'fd00:10:96::a'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304', '1:2:3:4:5:6:102:304'],
    ['::1.2.3.4', '00000000000000000000000001020304', '::102:304'],
    ['64:ff9b::1.2.3.4', '0064ff9b000000000000000001020304', '64:ff9b::102:304'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
    ['::ffff:102:304', '00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
    ['0:0:0:0:0:ffff:a00:1', '00000000000000000000ffff0a000001', '::ffff:10.0.0.1'],
  ])('%j is %s, canonical %j', (text, bytes, canonical) => {
    for (const lz of ['reject', 'decimal'] as const) {
      const b = parseIPv6(text, lz);
      expect(hex(b)).toBe(bytes);
      expect(formatIPv6(b as Uint8Array)).toBe(canonical);
      expect(canonicalIP(text, lz)).toBe(canonical);
      // Canonical text parses back to the same bytes and is its own canonical form.
      expect(hex(parseIPv6(canonical, lz))).toBe(bytes);
      expect(canonicalIP(canonical, lz)).toBe(canonical);
    }
  });

  test.each([
    '',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    ':1::',
    '1::2:',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '00001::',
    'g::1',
    '[::1]',
    'fe80::1%eth0',
    '1.2.3.4::',
    '::ffff:1.2.3',
    '::ffff:1.2.3.256',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3.4:1',
    ' ::1',
    '::1 ',
    '1.2.3.4',
  ])('%j is not an IPv6 address', (text) => {
    expect(parseIPv6(text, 'reject')).toBeNull();
    expect(parseIPv6(text, 'decimal')).toBeNull();
  });

  test('leading zeros in the IPv4 tail follow the same rule as IPv4', () => {
    expect(parseIPv6('::ffff:010.0.0.1', 'reject')).toBeNull();
    expect(canonicalIP('::ffff:010.0.0.1', 'decimal')).toBe('::ffff:10.0.0.1');
    // Leading zeros in hex groups are ordinary IPv6 (up to 4 digits).
    expect(canonicalIP('0fd0:0000::0001', 'reject')).toBe('fd0::1');
  });

  test('formatIPv6 wants 16 bytes', () => {
    expect(() => formatIPv6(new Uint8Array(4))).toThrow(RangeError);
  });
});

describe('either family', () => {
  test.each<[string, LeadingZeros, IPFamily | null, string | null]>([
    ['10.1.2.3', 'reject', 'IPv4', '10.1.2.3'],
    ['010.1.2.3', 'decimal', 'IPv4', '10.1.2.3'],
    ['010.1.2.3', 'reject', null, null],
    ['FD00::0001', 'reject', 'IPv6', 'fd00::1'],
    ['::ffff:10.1.2.3', 'reject', 'IPv6', '::ffff:10.1.2.3'],
    ['10.1.2', 'decimal', null, null],
  ])('parseIP(%j, %s): %s, canonical %j', (text, lz, family, canonical) => {
    const ip = parseIP(text, lz);
    expect(ip?.family ?? null).toBe(family);
    expect(ip === null ? null : formatIP(ip)).toBe(canonical);
    expect(canonicalIP(text, lz)).toBe(canonical);
    if (ip !== null) expect(ip.bytes.length).toBe(family === 'IPv4' ? 4 : 16);
  });

  test('with leading zeros refused, the syntax is the one node:net accepts (zones aside)', () => {
    const corpus = [
      '1.2.3.4',
      '010.0.0.1',
      '0.0.0.0',
      '1.2.3.04',
      '255.255.255.255',
      '256.0.0.0',
      '::',
      '::1',
      '1::',
      '::ffff:1.2.3.4',
      '::ffff:01.2.3.4',
      '1::1.2.3.4',
      '1:2:3:4:5:6:1.2.3.4',
      '1:2:3:4:5:6:7:1.2.3.4',
      '1:2:3:4:5:6:7::',
      '::1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      '0001:2::',
      '00001::',
      'FE80::A',
      '1:2:3:4:5:6:7:8',
      ':::',
      '1:::2',
      '1.2.3.4::',
      ':1::',
      '1::2:',
      '[::1]',
      '1.2.3',
      ' 1.2.3.4',
    ];
    const nodeFamily = (text: string) => ({ 4: 'IPv4', 6: 'IPv6' })[isIP(text)] ?? null;
    for (const text of corpus) expect(ipFamily(text, 'reject'), text).toBe(nodeFamily(text));
  });

  test.each<[string, boolean]>([
    ['0.0.0.0', true],
    ['000.0.0.00', true],
    ['::', true],
    ['0:0::0', true],
    ['::0.0.0.0', true],
    ['10.0.0.1', false],
    ['::1', false],
    ['::ffff:0.0.0.0', false],
    ['nonsense', false],
  ])('isUnspecifiedIP(%j) = %s', (text, yes) => {
    expect(isUnspecifiedIP(text)).toBe(yes);
  });

  test.each<[string, string]>([
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:a00:1', '10.0.0.1'],
    ['10.0.0.1', '10.0.0.1'],
    ['fd00::1', 'fd00::1'],
    ['::1.2.3.4', '::1.2.3.4'],
    ['', ''],
  ])('unmapIPv4(%j) = %j', (text, plain) => {
    expect(unmapIPv4(text)).toBe(plain);
  });
});

describe('CIDRs', () => {
  test.each<[string, LeadingZeros, IPFamily | null, number | null]>([
    ['10.244.0.0/16', 'reject', 'IPv4', 16],
    ['10.0.0.1/8', 'reject', 'IPv4', 8],
    ['0.0.0.0/0', 'reject', 'IPv4', 0],
    ['1.2.3.4/32', 'reject', 'IPv4', 32],
    ['fd00:10:244::/56', 'reject', 'IPv6', 56],
    ['::/0', 'reject', 'IPv6', 0],
    ['::1/128', 'reject', 'IPv6', 128],
    ['10.0.0.0/08', 'decimal', 'IPv4', 8],
    ['10.0.0.0/08', 'reject', null, null],
    ['010.0.0.0/8', 'decimal', 'IPv4', 8],
    ['010.0.0.0/8', 'reject', null, null],
    ['10.0.0.0/33', 'decimal', null, null],
    ['fd00::/129', 'decimal', null, null],
    ['10.0.0.0', 'decimal', null, null],
    ['10.0.0.0/', 'decimal', null, null],
    ['10.0.0.0/-1', 'decimal', null, null],
    ['10.0.0.0/8/8', 'decimal', null, null],
    ['10.0.0.0/1000', 'decimal', null, null],
    [' 10.0.0.0/8', 'decimal', null, null],
    ['fe80::%eth0/64', 'decimal', null, null],
    ['primary', 'decimal', null, null],
  ])('parseCidr(%j, %s): %s /%s', (text, lz, family, prefix) => {
    const c = parseCidr(text, lz);
    expect(c?.family ?? null).toBe(family);
    expect(c?.prefix ?? null).toBe(prefix);
    if (c !== null) expect(c.ip).toBe(text.slice(0, text.indexOf('/')));
  });

  test.each<[string, string, boolean]>([
    ['10.244.0.0/16', '10.244.3.7', true],
    ['10.244.0.0/16', '10.245.0.1', false],
    ['10.0.0.1/8', '10.255.255.255', true],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['192.168.1.128/25', '192.168.1.200', true],
    ['192.168.1.128/25', '192.168.1.127', false],
    ['198.18.0.0/15', '198.19.255.255', true],
    ['198.18.0.0/15', '198.20.0.0', false],
    ['1.2.3.4/32', '1.2.3.4', true],
    ['1.2.3.4/32', '1.2.3.5', false],
    ['fd00:10:244::/56', 'fd00:10:244:ff::1', true],
    ['fd00:10:244::/56', 'fd00:10:244:100::1', false],
    ['fd00:10:96::/112', 'fd00:10:96::ffff', true],
    ['fd00:10:96::/112', 'fd00:10:96::1:0', false],
    ['::/0', '2001:db8::1', true],
    ['::/0', '10.0.0.1', false],
    ['0.0.0.0/0', '::ffff:10.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.0.0.1', false],
    ['::ffff:0:0/96', '::ffff:10.0.0.1', true],
  ])('%s contains %s: %s', (cidrText, ipText, inside) => {
    const cidr = parseCidr(cidrText, 'reject');
    const ip = parseIP(ipText, 'reject');
    expect(cidr).not.toBeNull();
    expect(ip).not.toBeNull();
    expect(cidrContains(cidr!, ip!)).toBe(inside);
  });
});

describe('host:port', () => {
  test.each<[string, { host: string; port: string } | string]>([
    ['0.0.0.0:10256', { host: '0.0.0.0', port: '10256' }],
    ['[::]:10256', { host: '::', port: '10256' }],
    ['[fd00::1]:80', { host: 'fd00::1', port: '80' }],
    ['node:80', { host: 'node', port: '80' }],
    [':80', { host: '', port: '80' }],
    ['0.0.0.0', 'missing port in address'],
    ['::1:10256', 'too many colons in address'],
    ['[::1]', 'missing port in address'],
    ['[::1]x:80', 'unexpected text after "]"'],
    ['[::1:80', 'missing "]" in address'],
    ['a]:80', 'unexpected "[" or "]" in address'],
  ])('splitHostPort(%j)', (text, want) => {
    const r = splitHostPort(text);
    if (typeof want === 'string') expect(r).toEqual({ ok: false, reason: want });
    else expect(r).toEqual({ ok: true, ...want });
  });

  test.each<[string, string]>([
    ['10.0.0.1', '10.0.0.1:10256'],
    ['010.0.0.1', '010.0.0.1:10256'],
    ['::', '[::]:10256'],
    ['fd00::1', '[fd00::1]:10256'],
    ['10.0.0.1:80', '10.0.0.1:80'],
    ['[::1]:80', '[::1]:80'],
    ['node-1', 'node-1'],
  ])('appendPortIfNeeded(%j, 10256) = %j', (addr, out) => {
    expect(appendPortIfNeeded(addr, 10256)).toBe(out);
  });
});
