// The netlink codec (src/host/netlink/): message framing, attributes, generic
// netlink and nlctrl, table-tested against bytes captured from the kernel
// (fixtures/netlink/nlctrl.json: test/support/netlink-capture.ts nlctrl), and
// GenericNetlink over the fake kernel (test/support/fake-netlink.ts).
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { AttrWriter, Attrs, NLA_F_NESTED } from '../../src/host/netlink/attributes.ts';
import { CTRL_ATTR_FAMILY_NAME, decodeFamily, decodeGenl, encodeGenl, encodeGetFamily, GENL_ID_CTRL } from '../../src/host/netlink/genl.ts';
import { encodeMessage, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDecodeError, nlmsgerrErrno, parseMessages } from '../../src/host/netlink/message.ts';
import { GenericNetlink, NetlinkSocket } from '../../src/host/netlink/socket.ts';
import { isNativeError } from '../../src/native/errors.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { FakeIpvs } from '../support/fake-ipvs.ts';

const nlctrl = JSON.parse(readFileSync(new URL('./fixtures/netlink/nlctrl.json', import.meta.url), 'utf8')) as Record<
  string,
  { request: string; replies: string; errno: number }
>;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('nlmsghdr', () => {
  test('encodeMessage lays out len, type, flags, seq, pid in host order and pads to 4', () => {
    const m = encodeMessage(0x1234, NLM_F_REQUEST | NLM_F_ACK, Buffer.of(1, 2, 3), 7, 9);
    expect(m.toString('hex')).toBe('13000000' + '3412' + '0500' + '07000000' + '09000000' + '010203' + '00');
    expect(m.length).toBe(20);
  });

  test.each([
    ['a header cut short', '1000000010000100', /stray bytes at offset 0/],
    ['nlmsg_len past the end', '14000000100001000000000000000000', /nlmsg_len 20 at offset 0 does not fit in 16 bytes/],
    ['nlmsg_len below the header', '08000000100001000000000000000000', /nlmsg_len 8 at offset 0/],
  ])('parseMessages refuses %s', (_, bytes, msg) => {
    expect(() => parseMessages(hex(bytes))).toThrow(NetlinkDecodeError);
    expect(() => parseMessages(hex(bytes))).toThrow(msg);
  });

  test('parseMessages walks messages back to back, skipping the padding', () => {
    const two = Buffer.concat([encodeMessage(16, 0, Buffer.of(1)), encodeMessage(17, 2, Buffer.of(2, 3, 4, 5), 3)]);
    const ms = parseMessages(two);
    expect(ms.map((m) => [m.type, m.flags, m.seq, m.payload.toString('hex')])).toEqual([
      [16, 0, 0, '01'],
      [17, 2, 3, '02030405'],
    ]);
  });

  test('an NLMSG_ERROR payload is a negative errno; 0 is an ACK', () => {
    expect(nlmsgerrErrno(hex('feffffff'))).toBe(2);
    expect(nlmsgerrErrno(hex('00000000'))).toBe(0);
  });
});

describe('attributes', () => {
  test('u16/u32 are host order, be16/be32 network order; each padded to 4', () => {
    const b = new AttrWriter().u16(1, 0x1f90).be16(2, 0x1f90).u32(3, 1).be32(4, 0xffffffff).u8(5, 7).toBuffer();
    expect(b.toString('hex')).toBe('06000100901f0000' + '060002001f900000' + '0800030001000000' + '08000400ffffffff' + '0500050007000000');
  });

  test('a string is NUL-terminated; nla_len counts the header and the NUL, not the padding', () => {
    expect(new AttrWriter().string(6, 'rr').toBuffer().toString('hex')).toBe('0700060072720000');
  });

  test('nested attributes sit inside their parent; NLA_F_NESTED only when asked', () => {
    const plain = new AttrWriter().nest(1, (w) => w.u16(1, 2)).toBuffer();
    expect(plain.toString('hex')).toBe('0c000100' + '0600010002000000');
    const flagged = new AttrWriter().nest(1, (w) => w.u16(1, 2), { flag: true }).toBuffer();
    expect(flagged.readUInt16LE(2)).toBe(1 | NLA_F_NESTED);
    expect(new Attrs('t', flagged).nested(1)?.u16(1)).toBe(2);
  });

  test('out-of-range values are the caller’s bug (RangeError)', () => {
    expect(() => new AttrWriter().u16(1, 65536)).toThrow(RangeError);
    expect(() => new AttrWriter().be32(1, -1)).toThrow(RangeError);
    expect(() => new AttrWriter().u8(1, 1.5)).toThrow(RangeError);
  });

  test('decoding: a repeated type keeps every value and get() is the last; lengths are checked', () => {
    const a = new Attrs('t', new AttrWriter().u32(1, 5).u32(1, 6).u16(2, 1).toBuffer());
    expect(a.all(1).map((b) => b.readUInt32LE(0))).toEqual([5, 6]);
    expect(a.u32(1)).toBe(6);
    expect(() => a.u32(2)).toThrow(/t: attribute 2 has 2 bytes, expected 4/);
    expect(() => a.need(9, a.u32, 'X')).toThrow(/t: no X \(attribute 9\)/);
    expect(a.u32(9)).toBeUndefined();
  });

  test('decoding refuses an attribute that runs past its parent', () => {
    expect(() => new Attrs('t', hex('0c000100aabbccdd'))).toThrow(/attribute length 12 at offset 0 does not fit in 8 bytes/);
  });
});

describe('generic netlink and nlctrl (bytes from kernel 6.18)', () => {
  const fx = nlctrl['getfamily-nlctrl']!;

  test('CTRL_CMD_GETFAMILY for nlctrl encodes to the captured request', () => {
    expect(encodeGetFamily('nlctrl').toString('hex')).toBe(fx.request);
  });

  test("the kernel's CTRL_CMD_NEWFAMILY reply decodes to nlctrl's family", () => {
    const [m, ...rest] = parseMessages(hex(fx.replies));
    expect(rest).toEqual([]);
    expect(m!.type).toBe(GENL_ID_CTRL);
    expect(m!.seq).toBe(1);
    expect(decodeFamily(m!)).toEqual({
      id: 0x10,
      name: 'nlctrl',
      version: 2,
      hdrsize: 0,
      maxattr: 0,
      ops: [
        { id: 3, flags: 0xe },
        { id: 10, flags: 0xc },
      ],
      mcastGroups: [{ name: 'notify', id: 0x10 }],
    });
  });

  test('GETFAMILY of a name nobody registered: the kernel answered ENOENT', () => {
    expect(nlctrl['getfamily-missing']!.errno).toBe(2);
    expect(encodeGetFamily('switchyard-none').toString('hex')).toBe(nlctrl['getfamily-missing']!.request);
  });

  test('decodeFamily refuses a reply that is not NEWFAMILY from nlctrl', () => {
    const wrong = encodeGenl(GENL_ID_CTRL, 3, 1, new AttrWriter().string(CTRL_ATTR_FAMILY_NAME, 'x'));
    expect(() => decodeFamily(parseMessages(wrong)[0]!)).toThrow(/cmd 3, expected 16 cmd 1/);
  });

  test('a genlmsghdr shorter than 4 bytes is refused', () => {
    expect(() => decodeGenl(parseMessages(encodeMessage(0x20, 0, Buffer.of(1)))[0]!, 'x')).toThrow(/shorter than genlmsghdr/);
  });

  test('encodeGenl: a dump sets NLM_F_REQUEST|NLM_F_DUMP', () => {
    const m = parseMessages(encodeGenl(0x20, 4, 1, null, NLM_F_DUMP))[0]!;
    expect(m.flags).toBe(NLM_F_REQUEST | NLM_F_DUMP);
    expect(m.payload.toString('hex')).toBe('04010000');
  });
});

describe('GenericNetlink on the fake kernel', () => {
  test('family() resolves IPVS through nlctrl once, and caches it', async () => {
    const fake = new FakeNativeBinding();
    FakeIpvs.install(fake.netlink);
    const g = GenericNetlink.open(fake);
    const f = await g.family('IPVS');
    expect(f.name).toBe('IPVS');
    expect(f.version).toBe(1);
    expect(f.ops.find((o) => o.id === 4)?.flags).toBe(0x1 | 0x2 | 0x4 | 0x8);
    expect(await g.family('IPVS')).toBe(f);
  });

  test("the fake controller describes itself as the kernel's did (fixture)", async () => {
    const g = GenericNetlink.open(new FakeNativeBinding());
    expect(await g.family('nlctrl')).toEqual(decodeFamily(parseMessages(hex(nlctrl['getfamily-nlctrl']!.replies))[0]!));
  });

  test('an unknown family is the kernel’s ENOENT with errno, code, syscall; not cached', async () => {
    const fake = new FakeNativeBinding();
    const g = GenericNetlink.open(fake);
    const err = await g.family('IPVS').catch((e: unknown) => e);
    expect(isNativeError(err)).toBe(true);
    expect(err).toMatchObject({
      errno: 2,
      code: 'ENOENT',
      syscall: 'netlink',
      message: 'netlink on generic netlink family IPVS (CTRL_CMD_GETFAMILY): No such file or directory',
    });
    FakeIpvs.install(fake.netlink); // modprobe ip_vs
    expect((await g.family('IPVS')).name).toBe('IPVS');
  });

  test('batch(): each message has its own outcome; a failure does not stop the next', async () => {
    const fake = new FakeNativeBinding();
    const s = NetlinkSocket.open(fake, 16);
    const out = await s.batch([encodeGetFamily('nlctrl'), encodeGetFamily('nope'), encodeGetFamily('nlctrl')], ['a', 'b', 'c']);
    expect(out.map((o) => [o.messages.length, o.error?.code ?? null])).toEqual([
      [1, null],
      [0, 'ENOENT'],
      [1, null],
    ]);
    expect(out[1]!.error?.message).toBe('netlink on b: No such file or directory');
    expect(out[2]!.messages[0]!.seq).toBe(3);
  });

  test('a closed socket fails with EBADF', async () => {
    const fake = new FakeNativeBinding();
    const s = NetlinkSocket.open(fake, 16);
    s.close();
    await expect(s.request(encodeGetFamily('nlctrl'))).rejects.toMatchObject({ code: 'EBADF', syscall: 'netlink request' });
  });

  test('a protocol the fake kernel lacks: EPROTONOSUPPORT socket', () => {
    expect(() => NetlinkSocket.open(new FakeNativeBinding(), 0)).toThrow(expect.objectContaining({ code: 'EPROTONOSUPPORT', syscall: 'socket' }));
  });
});
