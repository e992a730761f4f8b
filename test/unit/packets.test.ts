// The packet builder and the independent checksum of test/support/packets.ts,
// which the privileged packet fixtures trust: RFC 1071's worked example, a
// published IPv4 header, a UDP checksum worked out by hand, and the builder's
// and parser's fields, lengths and fragment handling.
import { describe, expect, test } from 'vitest';
import {
  crc32c,
  firstFragment,
  frame,
  ICMP,
  ICMP6,
  icmpError,
  icmpErrorSpec,
  internetChecksum,
  IPPROTO_ICMPV6,
  ipv4,
  ipv6,
  l4Checksum,
  pseudoHeader,
  rejectAnswer,
  sctpChecksum,
  translatedIcmpError,
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

// Frames captured from Linux 6.18 on lo in a network namespace (AF_PACKET):
// the kernel's own checksums, ICMP errors and resets, as independent
// vectors for the builder, the parser and the checks. The UDP datagrams and
// SYNs a socket sent on lo carry an offloaded checksum (CHECKSUM_PARTIAL):
// the field holds the folded pseudo-header sum, not yet complemented with
// the segment's, which checks the pseudo-header by itself. The kernel's own
// answers (RST, ICMP errors, echo reply) carry complete checksums.
const LINUX = {
  udp4: '00000000000000000000000008004500002664f940004011d7cb7f0000017f0000019c4000090012fe2573776974636879617264',
  portUnreach4:
    '000000000000000000000000080045c0004266d30000400115267f0000017f00000103033661000000004500002664f940004011d7cb7f0000017f0000019c4000090012fe2573776974636879617264',
  udp6: '00000000000000000000000086dd600aa0800012114000000000000000000000000000000001000000000000000000000000000000019c4100090012002573776974636879617264',
  portUnreach6:
    '00000000000000000000000086dd6001d59300423a4000000000000000000000000000000001000000000000000000000000000000010104240300000000600aa0800012114000000000000000000000000000000001000000000000000000000000000000019c4100090012002573776974636879617264',
  echo6: '00000000000000000000000086dd6005fd11000c3a40000000000000000000000000000000010000000000000000000000000000000180008eb11234000170696e67',
  echoReply6: '00000000000000000000000086dd600c0a0b000c3a40000000000000000000000000000000010000000000000000000000000000000181008db11234000170696e67',
  syn6: '00000000000000000000000086dd600f86cd002806400000000000000000000000000000000100000000000000000000000000000001c8a2000945680a7300000000a002ffc4003000000204ffc40402080a3cf24524000000000103030a',
  rst6: '00000000000000000000000086dd6004309d0014064000000000000000000000000000000001000000000000000000000000000000010009c8a20000000045680a7450140000001c0000',
  syn4: '00000000000000000000000008004500003c443540004006f8847f0000017f000001bb720009b8f07d3b00000000a002ffd7fe3000000204ffd70402080ae61ed2c6000000000103030a',
  rst4: '0000000000000000000000000800450000280000400040063cce7f0000017f0000010009bb7200000000b8f07d3c50140000c0250000',
} as const;
const ZERO_MAC = '00:00:00:00:00:00';
const lx = (k: keyof typeof LINUX): Buffer => Buffer.from(LINUX[k], 'hex');
/** An offloaded IPv6 ::1 -> ::1 TCP/UDP frame with its checksum completed, as the wire would carry it. */
function completed(f: Buffer, proto: number): Buffer {
  const out = Buffer.from(f);
  out.writeUInt16BE(l4Checksum(ipv6('::1'), ipv6('::1'), proto, f.subarray(54)), 54 + (proto === 6 ? 16 : 6));
  return out;
}

describe('CRC32c (RFC 3309, RFC 4960 appendix B)', () => {
  test('the check value: "123456789" -> e3069283', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  test('RFC 3720 B.4 vectors, in the byte order they are sent (least significant first)', () => {
    const le = (n: number): string => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n, 0);
      return b.toString('hex');
    };
    expect(le(crc32c(Buffer.alloc(32, 0)))).toBe('aa36918a');
    expect(le(crc32c(Buffer.alloc(32, 0xff)))).toBe('43aba862');
    expect(le(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))))).toBe('4e79dd46');
    expect(le(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))))).toBe('5cdb3f11');
    const iscsiRead = Buffer.from('01c000000000000000000000000000001400000000000400000000140000001828000000000000000200000000000000', 'hex');
    expect(le(crc32c(iscsiRead))).toBe('563a96d9');
  });
});

describe('SCTP', () => {
  const data = { src: '10.244.1.5', dst: '10.96.0.20', proto: 'SCTP' as const, sport: 40000, dport: 9999, payload: Buffer.from('hello') };

  test('DATA: common header, one chunk padded to 4 bytes, CRC32c stored least significant byte first', () => {
    const f = frame(data);
    expect(f.length).toBe(14 + 20 + 12 + 24); // 16 + 5 bytes of chunk, padded to 24
    const seg = f.subarray(34);
    expect(seg.readUInt16BE(12 + 2)).toBe(21); // the chunk length excludes the padding
    const zeroed = Buffer.from(seg);
    zeroed.writeUInt32LE(0, 8);
    expect(seg.readUInt32LE(8)).toBe(crc32c(zeroed));
    expect(sctpChecksum(seg)).toBe(seg.readUInt32LE(8));
    expect(parseFrame(f).sctp).toEqual({
      sport: 40000,
      dport: 9999,
      vtag: 0x5c0ffee5,
      checksum: `0x${crc32c(zeroed).toString(16).padStart(8, '0')}`,
      chunks: [{ type: 0, flags: 3, length: 21 }],
    });
    expect(verifyChecksums(f)).toEqual({ ip: true, l4: true });
  });

  test('INIT: verification tag 0, a 20-byte chunk; over IPv6 as well', () => {
    const f = frame({ ...data, src: 'fd00:10:244::5', dst: 'fd00:10:96::20', payload: undefined, sctp: { chunk: 'INIT' } });
    const p = parseFrame(f);
    expect(p.ip6).toMatchObject({ nextHeader: 132, proto: 132, payloadLength: 32 });
    expect(p.sctp).toMatchObject({ vtag: 0, chunks: [{ type: 1, flags: 0, length: 20 }] });
    expect(verifyChecksums(f)).toEqual({ ip: 'n/a', l4: true });
  });

  test('any changed byte, a port included, fails the CRC; addresses are not covered', () => {
    const f = frame(data);
    for (const at of [34, 34 + 3, 34 + 12, f.length - 4]) {
      const g = Buffer.from(f);
      g[at] = (g[at] as number) ^ 0x10;
      expect(verifyChecksums(g)).toEqual({ ip: true, l4: false });
    }
    expect(
      frame({ ...data, dst: '10.244.9.9' })
        .subarray(34)
        .equals(f.subarray(34)),
    ).toBe(true);
    expect(verifyChecksums(frame({ ...data, sctp: { checksum: 'zero' } })).l4).toBe(false);
  });

  test('odd and long payloads keep the padding rule and the CRC', () => {
    for (const n of [0, 1, 2, 3, 4, 1399, 1400, 3001]) {
      const f = frame({ ...data, payload: Buffer.alloc(n, 0x5a) });
      expect(f.length - 34 - 12).toBe((16 + n + 3) & ~3);
      expect(verifyChecksums(f).l4).toBe(true);
    }
  });
});

describe('IPv6', () => {
  test('the pseudo-header: addresses, 32-bit length, three zeros, next header', () => {
    const ph = pseudoHeader(ipv6('fd00::1'), ipv6('fd00::2'), 17, 0x10203);
    expect(ph.toString('hex')).toBe(`fd000000000000000000000000000001fd000000000000000000000000000002${'00010203'}000000${'11'}`);
  });

  test('a UDP datagram Linux sent: parsed, verified, and rebuilt byte for byte', () => {
    const f = lx('udp6');
    const p = parseFrame(f);
    expect(p.ip6).toEqual({ trafficClass: 0, flowLabel: 0xaa080, payloadLength: 18, nextHeader: 17, hopLimit: 64, src: '::1', dst: '::1', proto: 17 });
    expect(p.udp).toEqual({ sport: 40001, dport: 9, length: 18, checksum: '0x0025' });
    // Offloaded: the field is the pseudo-header's sum (1 + 1 + 18 + 17 = 0x25), so the whole does not verify yet.
    expect(onesComplementSum(pseudoHeader(ipv6('::1'), ipv6('::1'), 17, 18))).toBe(0x25);
    expect(verifyChecksums(f)).toEqual({ ip: 'n/a', l4: false });
    expect(onesComplementSum(pseudoHeader(ipv4('127.0.0.1'), ipv4('127.0.0.1'), 17, 18))).toBe(lx('udp4').readUInt16BE(34 + 6));
    const built = frame({
      srcMac: ZERO_MAC,
      dstMac: ZERO_MAC,
      src: '::1',
      dst: '::1',
      proto: 'UDP',
      sport: 40001,
      dport: 9,
      flowLabel: 0xaa080,
      payload: Buffer.from('switchyard'),
    });
    expect(verifyChecksums(built)).toEqual({ ip: 'n/a', l4: true });
    expect(built.toString('hex')).toBe(completed(f, 17).toString('hex'));
  });

  test("Linux's RST+ACK answers to a SYN, IPv6 and IPv4, rebuilt byte for byte", () => {
    // The IPv6 reset leaves offloaded too (field = 1 + 1 + 20 + 6 = 0x1c); the IPv4 one is complete.
    expect(lx('rst6').readUInt16BE(54 + 16)).toBe(onesComplementSum(pseudoHeader(ipv6('::1'), ipv6('::1'), 6, 20)));
    expect(verifyChecksums(completed(lx('rst6'), 6))).toEqual({ ip: 'n/a', l4: true });
    expect(verifyChecksums(lx('rst4'))).toEqual({ ip: true, l4: true });
    const syn = parseFrame(lx('syn6')).tcp;
    const rst = frame({
      srcMac: ZERO_MAC,
      dstMac: ZERO_MAC,
      src: '::1',
      dst: '::1',
      proto: 'TCP',
      flowLabel: 0x4309d,
      sport: 9,
      dport: syn?.sport,
      seq: 0,
      ack: (syn?.seq ?? 0) + 1,
      tcpFlags: TCP.RST | TCP.ACK,
      window: 0,
    });
    expect(rst.toString('hex')).toBe(completed(lx('rst6'), 6).toString('hex'));
    const rst4 = frame({
      srcMac: ZERO_MAC,
      dstMac: ZERO_MAC,
      src: '127.0.0.1',
      dst: '127.0.0.1',
      proto: 'TCP',
      id: 0,
      df: true,
      sport: 9,
      dport: 0xbb72,
      seq: 0,
      ack: 0xb8f07d3c,
      tcpFlags: TCP.RST | TCP.ACK,
      window: 0,
    });
    expect(rst4.toString('hex')).toBe(LINUX.rst4);
    expect(parseFrame(lx('syn4')).tcp?.seq).toBe(0xb8f07d3b);
  });

  test('a Fragment header: next header 44, the L4 protocol behind it, later fragments not parsed as L4', () => {
    const spec = { src: 'fd00::1', dst: 'fd00::2', proto: 'UDP' as const, sport: 1, dport: 2, payload: Buffer.alloc(16) };
    const first = parseFrame(frame({ ...spec, fragment6: { offset: 0, more: true, id: 0xabcd } }));
    expect(first.ip6).toMatchObject({ nextHeader: 44, proto: 17, payloadLength: 8 + 24, frag: { offset: 0, more: true, id: 0xabcd } });
    expect(first.udp?.dport).toBe(2);
    const later = parseFrame(frame({ ...spec, l4: Buffer.alloc(8), fragment6: { offset: 3, more: false, id: 0xabcd } }));
    expect(later.udp).toBeUndefined();
    expect(verifyChecksums(frame({ ...spec, fragment6: { offset: 0, more: true, id: 1 } })).l4).toBe('n/a');
  });

  test('IPv4-only fields on an IPv6 frame, and mixed families, are refused', () => {
    expect(() => frame({ src: 'fd00::1', dst: 'fd00::2', proto: 'UDP', df: true })).toThrow(/IPv4 field/);
    expect(() => frame({ src: '10.0.0.1', dst: 'fd00::2', proto: 'UDP' })).toThrow(/different families/);
    expect(() => frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'UDP', flowLabel: 1 })).toThrow(/IPv6 fields/);
  });

  test('a changed byte in an address fails the UDP check through the pseudo-header', () => {
    const f = lx('udp6');
    const g = Buffer.from(f);
    g[14 + 8 + 15] = 2; // source ::1 -> ::2
    expect(verifyChecksums(g)).toEqual({ ip: 'n/a', l4: false });
  });
});

describe('ICMP and ICMPv6', () => {
  test('ICMPv6 echo request and reply Linux exchanged: checksums over the pseudo-header, rebuilt byte for byte', () => {
    for (const [k, type, fl] of [
      ['echo6', ICMP6.ECHO_REQUEST, 0x5fd11],
      ['echoReply6', ICMP6.ECHO_REPLY, 0xc0a0b],
    ] as const) {
      const f = lx(k);
      expect(verifyChecksums(f)).toEqual({ ip: 'n/a', l4: true });
      expect(parseFrame(f).icmp).toEqual({ type, code: 0, checksum: hex(f.readUInt16BE(14 + 40 + 2)), rest: 0x12340001 });
      const built = frame({
        srcMac: ZERO_MAC,
        dstMac: ZERO_MAC,
        src: '::1',
        dst: '::1',
        proto: 'ICMPv6',
        flowLabel: fl,
        icmp: { type, code: 0, rest: 0x12340001 },
        payload: Buffer.from('ping'),
      });
      expect(built.toString('hex')).toBe(f.toString('hex'));
    }
  });

  test("Linux's ICMP port unreachable for a UDP datagram equals icmpError() of that datagram", () => {
    const orig = lx('udp4');
    const err = lx('portUnreach4');
    // The quoted datagram carries the offloaded checksum it left with, so its own check fails.
    expect(verifyChecksums(err)).toEqual({ ip: true, l4: true, inner: { ip: true, l4: false } });
    const p = parseFrame(err);
    expect(p.icmp).toMatchObject({ type: ICMP.DEST_UNREACH, code: ICMP.PORT_UNREACH, rest: 0 });
    expect(p.icmp?.inner?.udp).toEqual(parseFrame(orig).udp);
    const built = frame({ ...icmpErrorSpec(orig, { type: ICMP.DEST_UNREACH, code: ICMP.PORT_UNREACH }), tos: 0xc0, id: 0x66d3 });
    expect(built.toString('hex')).toBe(err.toString('hex'));
  });

  test("Linux's ICMPv6 port unreachable equals icmpError() of the IPv6 datagram", () => {
    const orig = lx('udp6');
    const err = lx('portUnreach6');
    expect(verifyChecksums(err)).toEqual({ ip: 'n/a', l4: true, inner: { ip: 'n/a', l4: false } });
    const whole = icmpError(frame({ src: '::1', dst: '::1', proto: 'UDP', sport: 1, dport: 9 }), { type: 1, code: 4 });
    expect(verifyChecksums(whole)).toEqual({ ip: 'n/a', l4: true, inner: { ip: 'n/a', l4: true } });
    const built = frame({ ...icmpErrorSpec(orig, { type: ICMP6.DEST_UNREACH, code: ICMP6.PORT_UNREACH }), flowLabel: 0x1d593 });
    expect(built.toString('hex')).toBe(err.toString('hex'));
  });

  test('a quote cut short: the inner IP header still checks, the inner L4 cannot; the outer ICMP checksum covers the quote', () => {
    const orig = frame({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'TCP', sport: 40000, dport: 80, payload: Buffer.alloc(1400, 1) });
    const err = icmpError(orig, { type: ICMP.DEST_UNREACH, code: ICMP.FRAG_NEEDED, rest: 1280, from: '198.18.0.9', quoteBytes: 28 });
    expect(err.length).toBe(14 + 20 + 8 + 28);
    const p = parseFrame(err);
    expect(p.ip).toMatchObject({ src: '198.18.0.9', dst: '10.244.1.5', proto: 1 });
    expect(p.icmp).toMatchObject({ type: 3, code: 4, rest: 1280 });
    expect(p.icmp?.inner?.ip).toMatchObject({ src: '10.244.1.5', dst: '10.96.0.10', totalLength: 1440 });
    expect(p.icmp?.inner?.truncatedIn).toBe('tcp');
    expect(verifyChecksums(err)).toEqual({ ip: true, l4: true, inner: { ip: true, l4: 'n/a' } });
    const g = Buffer.from(err);
    g[g.length - 1] = (g[g.length - 1] as number) ^ 1; // a quoted byte: only the ICMP checksum notices
    expect(verifyChecksums(g)).toEqual({ ip: true, l4: false, inner: { ip: true, l4: 'n/a' } });
    const h = Buffer.from(err);
    h[14 + 28 + 12] = (h[14 + 28 + 12] as number) ^ 1; // the inner source address
    expect(verifyChecksums(h)).toMatchObject({ l4: false, inner: { ip: false } });
  });

  test('packet too big (IPv6): MTU in the 32-bit word, the quote fills at most 1280 bytes', () => {
    const orig = frame({ src: 'fd00:10:244::5', dst: 'fd00:10:96::10', proto: 'UDP', sport: 40000, dport: 53, payload: Buffer.alloc(1452, 2) });
    const err = icmpError(orig, { type: ICMP6.PACKET_TOO_BIG, code: 0, rest: 1280, from: 'fd00:198:18::9' });
    expect(err.length).toBe(14 + 1280);
    expect(parseFrame(err).icmp).toMatchObject({ type: 2, code: 0, rest: 1280 });
    expect(parseFrame(err).icmp?.inner?.udp).toMatchObject({ sport: 40000, dport: 53, length: 1460 });
    expect(verifyChecksums(err)).toEqual({ ip: 'n/a', l4: true, inner: { ip: 'n/a', l4: 'n/a' } });
  });

  test('an ICMPv4 echo has no pseudo-header: its checksum does not change with the addresses', () => {
    const a = frame({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'ICMP',
      icmp: { type: ICMP.ECHO_REQUEST, code: 0, rest: 0x00010002 },
      payload: Buffer.from('abc'),
    });
    const b = frame({
      src: '10.9.9.9',
      dst: '10.0.0.2',
      proto: 'ICMP',
      icmp: { type: ICMP.ECHO_REQUEST, code: 0, rest: 0x00010002 },
      payload: Buffer.from('abc'),
    });
    expect(a.subarray(34).equals(b.subarray(34))).toBe(true);
    expect(internetChecksum(a.subarray(34))).toBe(0);
    expect(verifyChecksums(a)).toEqual({ ip: true, l4: true });
    expect(parseFrame(a).icmp?.inner).toBeUndefined();
  });

  test('l4Checksum dispatches on the protocol: ICMPv6 with the IPv6 pseudo-header, ICMPv4 without', () => {
    const msg = Buffer.from('8000000012340001', 'hex');
    const v6 = l4Checksum(ipv6('::1'), ipv6('::1'), IPPROTO_ICMPV6, msg);
    expect(v6).toBe(internetChecksum(pseudoHeader(ipv6('::1'), ipv6('::1'), 58, 8), msg));
    expect(l4Checksum(ipv4('1.2.3.4'), ipv4('5.6.7.8'), 1, msg)).toBe(internetChecksum(msg));
  });
});

function hex(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

describe('rejectAnswer (what bpf/lib/reject.h must send)', () => {
  test("Linux's own reset to a SYN with options is rejectAnswer() of that SYN, byte for byte", () => {
    expect(rejectAnswer(lx('syn4')).toString('hex')).toBe(LINUX.rst4);
  });

  test("IPv6: the same reset as Linux's but for the flow label Linux picked", () => {
    const ours = rejectAnswer(completed(lx('syn6'), 6));
    const linux = completed(lx('rst6'), 6);
    expect({ ...parseFrame(ours), ip6: { ...parseFrame(ours).ip6, flowLabel: 0 } }).toEqual({
      ...parseFrame(linux),
      ip6: { ...parseFrame(linux).ip6, flowLabel: 0 },
    });
    expect(parseFrame(ours).tcp).toMatchObject({ seq: 0, ack: 0x45680a74, flags: TCP.RST | TCP.ACK, window: 0 });
    expect(verifyChecksums(ours)).toEqual({ ip: 'n/a', l4: true });
  });

  test("ICMP port unreachable: Linux's error but for the IP ID (Linux counts, the program sends 0)", () => {
    const ours = rejectAnswer(lx('udp4'));
    const linux = Buffer.from(lx('portUnreach4'));
    linux.writeUInt16BE(0, 14 + 4);
    linux.writeUInt16BE(0, 14 + 10);
    linux.writeUInt16BE(internetChecksum(linux.subarray(14, 34)), 14 + 10);
    expect(ours.toString('hex')).toBe(linux.toString('hex'));
    const ours6 = rejectAnswer(lx('udp6'));
    expect(ours6.subarray(14 + 4).toString('hex')).toBe(
      lx('portUnreach6')
        .subarray(14 + 4)
        .toString('hex'),
    ); // all but version/class/flow label
  });

  test('a segment with ACK gets seq = its ack and RST alone; data, SYN and FIN count in ack; resets are refused', () => {
    const base = { src: '10.0.0.1', dst: '10.96.0.1', proto: 'TCP' as const, sport: 1, dport: 80 };
    expect(parseFrame(rejectAnswer(frame({ ...base, tcpFlags: TCP.ACK, seq: 9, ack: 77, payload: Buffer.alloc(5) }))).tcp).toMatchObject({
      seq: 77,
      ack: 0,
      flags: TCP.RST,
    });
    expect(parseFrame(rejectAnswer(frame({ ...base, tcpFlags: TCP.SYN | TCP.FIN, seq: 0xffffffff, payload: Buffer.alloc(5) }))).tcp).toMatchObject({
      seq: 0,
      ack: 6,
      flags: TCP.RST | TCP.ACK,
    });
    expect(() => rejectAnswer(frame({ ...base, tcpFlags: TCP.RST }))).toThrow(/never answered/);
  });
});

describe('translatedIcmpError (what bpf/lib/icmp.h must leave)', () => {
  const sent = { src: '10.244.1.5', dst: '10.96.0.10', proto: 'TCP' as const, sport: 40000, dport: 80, tcpFlags: TCP.ACK, payload: Buffer.alloc(1000, 1) };
  const translated = { ...sent, dst: '10.244.2.20', dport: 8080 };
  const e = { type: ICMP.DEST_UNREACH, code: ICMP.FRAG_NEEDED, rest: 576, from: '198.18.0.9' };

  test('TCP quoted in part: the error about the sent packet, but with the translated TCP checksum, and a valid ICMP checksum', () => {
    const out = translatedIcmpError(frame(sent), frame(translated), e);
    const plain = icmpError(frame(sent), e);
    const at = 14 + 28 + 20 + 16;
    expect(out.readUInt16BE(at)).toBe(frame(translated).readUInt16BE(34 + 16));
    expect(out.readUInt16BE(at)).not.toBe(plain.readUInt16BE(at));
    expect(
      Buffer.concat([out.subarray(0, 36), out.subarray(38, at), out.subarray(at + 2)]).equals(
        Buffer.concat([plain.subarray(0, 36), plain.subarray(38, at), plain.subarray(at + 2)]),
      ),
    ).toBe(true);
    expect(verifyChecksums(out).l4).toBe(true);
  });

  test('TCP quoted whole and UDP: exactly icmpError of the sent packet', () => {
    const small = { ...sent, payload: Buffer.alloc(4) };
    expect(translatedIcmpError(frame(small), frame({ ...small, dst: '10.244.2.20', dport: 8080 }), e).equals(icmpError(frame(small), e))).toBe(true);
    const udp = { ...sent, proto: 'UDP' as const };
    expect(translatedIcmpError(frame(udp), frame({ ...udp, dport: 8080 }), e).equals(icmpError(frame(udp), e))).toBe(true);
  });

  test('SCTP: the CRC32c stays the translated one', () => {
    const sctp = { ...sent, proto: 'SCTP' as const, payload: Buffer.from('x') };
    const out = translatedIcmpError(frame(sctp), frame({ ...sctp, dport: 8080 }), e);
    expect(out.readUInt32LE(14 + 28 + 20 + 8)).toBe(frame({ ...sctp, dport: 8080 }).readUInt32LE(34 + 8));
    expect(verifyChecksums(out)).toEqual({ ip: true, l4: true, inner: { ip: true, l4: false } });
  });
});

describe('truncation of the new headers', () => {
  test('IPv6, SCTP and ICMP headers cut short are named', () => {
    const v6 = frame({ src: 'fd00::1', dst: 'fd00::2', proto: 'UDP', sport: 1, dport: 2 });
    expect(parseFrame(v6.subarray(0, 14 + 39)).truncatedIn).toBe('ip6');
    expect(parseFrame(v6.subarray(0, 14 + 40 + 7)).truncatedIn).toBe('udp');
    const sctp = frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'SCTP', sport: 1, dport: 2 });
    expect(parseFrame(sctp.subarray(0, 34 + 11)).truncatedIn).toBe('sctp');
    const icmp = frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'ICMP', icmp: { type: 8, code: 0 } });
    expect(parseFrame(icmp.subarray(0, 34 + 7)).truncatedIn).toBe('icmp');
    expect(verifyChecksums(sctp.subarray(0, 34 + 20)).l4).toBe('n/a');
  });

  test('an ICMP frame without its type and code is refused by the builder', () => {
    expect(() => frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'ICMP' })).toThrow(/spec.icmp/);
  });
});
