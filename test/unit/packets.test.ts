// The packet builder and the independent checksum of test/support/packets.ts,
// which the privileged packet fixtures trust: RFC 1071's worked example, a
// published IPv4 header, a UDP checksum worked out by hand, and the builder's
// and parser's fields, lengths and fragment handling.
import { describe, expect, test } from 'vitest';
import {
  firstFragment,
  frame,
  internetChecksum,
  ipv4,
  l4Checksum,
  onesComplementSum,
  parseFrame,
  swapMacs,
  TCP,
  truncate,
  verifyChecksums,
} from '../support/packets.ts';

describe('Internet checksum (RFC 1071)', () => {
  test("RFC 1071 section 3's example: 0001 f203 f4f5 f6f7 sums to ddf2", () => {
    const bytes = Buffer.from('0001f203f4f5f6f7', 'hex');
    expect(onesComplementSum(bytes)).toBe(0xddf2);
    expect(internetChecksum(bytes)).toBe(0x220d);
  });

  test('a published IPv4 header (checksum b861) sums to ffff, and its checksum recomputes to b861', () => {
    const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(internetChecksum(header)).toBe(0xb861);
    header.writeUInt16BE(0xb861, 10);
    expect(onesComplementSum(header)).toBe(0xffff);
  });

  test('an odd trailing byte is padded with zero', () => {
    expect(onesComplementSum(Buffer.from([0x01]))).toBe(0x0100);
    expect(internetChecksum(Buffer.from([0xab, 0xcd, 0x01]))).toBe(~(0xabcd + 0x0100) & 0xffff);
  });

  test('UDP 10.0.0.1:1 -> 10.0.0.2:2, no payload: worked by hand', () => {
    // Pseudo-header 0a00 0001 0a00 0002 0011 0008, header 0001 0002 0008 0000:
    // 0a00+0001+0a00+0002+0011+0008+0001+0002+0008 = 1427, checksum ~1427 = ebd8.
    const seg = Buffer.from('0001000200080000', 'hex');
    expect(l4Checksum(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 17, seg)).toBe(0xebd8);
  });

  test('a UDP checksum that computes to 0 is sent as ffff; TCP keeps 0', () => {
    // Choose the payload word that makes the sum ffff.
    const seg = Buffer.from('00010002000a00000000', 'hex');
    const fill = l4Checksum(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 17, seg);
    seg.writeUInt16BE(fill, 8);
    expect(l4Checksum(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 17, seg)).toBe(0xffff);
    const tcp = Buffer.alloc(22);
    tcp[12] = 0x50;
    tcp.writeUInt16BE(l4Checksum(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 6, tcp), 20);
    expect(l4Checksum(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 6, tcp)).toBe(0);
  });
});

describe('frames', () => {
  const syn = { src: '10.244.1.5', dst: '10.96.0.10', proto: 'TCP' as const, sport: 40000, dport: 80, tcpFlags: TCP.SYN, payload: Buffer.from('hello') };

  test('a TCP frame: lengths, fields and checksums', () => {
    const f = frame(syn);
    expect(f.length).toBe(14 + 20 + 20 + 5);
    const p = parseFrame(f);
    expect(p.eth).toEqual({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', type: 0x0800 });
    expect(p.ip).toMatchObject({
      ihl: 5,
      totalLength: 45,
      ttl: 64,
      proto: 6,
      src: '10.244.1.5',
      dst: '10.96.0.10',
      df: false,
      mf: false,
      fragOffset: 0,
      options: '',
    });
    expect(p.tcp).toMatchObject({ sport: 40000, dport: 80, flags: TCP.SYN });
    expect(p.rest).toBe(Buffer.from('hello').toString('hex'));
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: true });
  });

  test('any changed byte of the IP header or the segment fails the check', () => {
    const f = frame(syn);
    for (const at of [14 + 8, 14 + 12, 14 + 19]) {
      const g = Buffer.from(f);
      g[at] = (g[at] as number) ^ 0x01;
      expect(verifyChecksums(g).ip).toBe(false);
    }
    for (const at of [34, 34 + 13, f.length - 1]) {
      const g = Buffer.from(f);
      g[at] = (g[at] as number) ^ 0x80;
      expect(verifyChecksums(g)).toEqual({ ip: true, l4: false });
    }
  });

  test('IP options set ihl and move the TCP header', () => {
    const f = frame({ ...syn, ipOptions: Buffer.from('94040000', 'hex') });
    const p = parseFrame(f);
    expect(p.ip).toMatchObject({ ihl: 6, totalLength: 24 + 20 + 5, options: '94040000' });
    expect(p.tcp?.dport).toBe(80);
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: true });
    expect(() => frame({ ...syn, ipOptions: Buffer.alloc(3) })).toThrow(/4-byte words/);
  });

  test('UDP with no checksum', () => {
    const f = frame({ ...syn, proto: 'UDP', udpChecksum: 'none' });
    expect(parseFrame(f).udp).toEqual({ sport: 40000, dport: 80, length: 13, checksum: '0x0000' });
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: 'none' });
  });

  test('raw L4 bytes and another protocol: no TCP/UDP header is built', () => {
    const f = frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 47, l4: Buffer.from('00000800', 'hex') });
    expect(f.length).toBe(14 + 20 + 4);
    expect(parseFrame(f)).toMatchObject({ ip: { proto: 47 }, rest: '00000800' });
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: 'n/a' });
  });

  test('first fragment: MF, shorter total length, header checksum fixed, L4 left as the whole datagram had it', () => {
    const whole = frame({ ...syn, proto: 'UDP', payload: Buffer.alloc(100, 7) });
    const f = firstFragment(whole, 16);
    expect(f.length).toBe(14 + 20 + 16);
    expect(parseFrame(f).ip).toMatchObject({ mf: true, fragOffset: 0, totalLength: 36 });
    expect(parseFrame(f).udp).toEqual(parseFrame(whole).udp);
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: 'n/a' });
  });

  test('a non-first fragment is not parsed as TCP', () => {
    const f = frame({ ...syn, fragOffset: 3, l4: Buffer.from('9c400050', 'hex'), payload: undefined });
    expect(parseFrame(f).tcp).toBeUndefined();
    expect(parseFrame(f).ip?.fragOffset).toBe(3);
  });

  test('truncation is reported by the parser, by header', () => {
    const f = frame(syn);
    expect(parseFrame(truncate(f, 10)).truncatedIn).toBe('eth');
    expect(parseFrame(truncate(f, 30)).truncatedIn).toBe('ip');
    expect(parseFrame(truncate(f, 40)).truncatedIn).toBe('tcp');
    expect(truncate(f, 40).readUInt16BE(16)).toBe(45); // the IP total length still claims the whole
  });

  test('swapMacs swaps source and destination, nothing else', () => {
    const f = frame(syn);
    const s = swapMacs(f);
    expect(parseFrame(s).eth).toEqual({ dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02', type: 0x0800 });
    expect(s.subarray(12).equals(f.subarray(12))).toBe(true);
  });
});
