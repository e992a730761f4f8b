// The addon's netlink socket (native/src/netlink.cc) against the kernel, and
// the fake kernel (test/support/fake-netlink.ts) beside it where they should
// agree: generic netlink family resolution, the kernel's errors as errno/code/
// syscall with the extended-ack text, batches with one outcome per message
// (more messages than fit in one datagram), dumps across several datagrams,
// NETLINK_ROUTE, a closed socket. Read-only: nothing here changes the host.

import { describe, expect, test } from 'vitest';
import { AttrWriter, Attrs } from '../../src/host/netlink/attributes.ts';
import { CTRL_CMD_GETFAMILY, GENL_ID_CTRL, decodeFamily, encodeGenl, encodeGetFamily } from '../../src/host/netlink/genl.ts';
import { NLM_F_DUMP, NLM_F_MULTI, encodeMessage } from '../../src/host/netlink/message.ts';
import { GenericNetlink, NETLINK_GENERIC, NETLINK_ROUTE, NetlinkSocket } from '../../src/host/netlink/socket.ts';
import { loadBinding } from '../../src/native/binding.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the netlink socket suite', ['root', 'native-addon']);

describe.skipIf(skip)('netlink socket against the kernel', () => {
  const binding = skip ? null : loadBinding();

  test('nlctrl resolves itself; the fake kernel describes it the same', async () => {
    const g = GenericNetlink.open(binding!);
    const f = await g.family('nlctrl');
    expect(f).toMatchObject({ id: GENL_ID_CTRL, name: 'nlctrl' });
    expect(f.ops.map((o) => o.id)).toContain(CTRL_CMD_GETFAMILY);
    const fake = await GenericNetlink.open(new FakeNativeBinding()).family('nlctrl');
    expect(fake).toMatchObject({ id: f.id, name: f.name, version: f.version, hdrsize: f.hdrsize });
    expect(fake.ops.find((o) => o.id === CTRL_CMD_GETFAMILY)).toEqual(f.ops.find((o) => o.id === CTRL_CMD_GETFAMILY));
    g.close();
  });

  test('an unknown family: ENOENT with errno, code, syscall and the label, as the fake says it', async () => {
    const kernel = await GenericNetlink.open(binding!)
      .family('switchyard-none')
      .catch((e: unknown) => e);
    const fake = await GenericNetlink.open(new FakeNativeBinding())
      .family('switchyard-none')
      .catch((e: unknown) => e);
    expect(kernel).toMatchObject({
      errno: 2,
      code: 'ENOENT',
      syscall: 'netlink',
      message: 'netlink on generic netlink family switchyard-none (CTRL_CMD_GETFAMILY): No such file or directory',
    });
    expect({ ...(fake as object), message: (fake as Error).message }).toEqual({ ...(kernel as object), message: (kernel as Error).message });
  });

  test("an attribute that fails the family's policy: the kernel's errno and its extended-ack text", async () => {
    const s = NetlinkSocket.open(binding!, NETLINK_GENERIC);
    const bad = encodeGenl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, new AttrWriter().u8(1, 5)); // CTRL_ATTR_FAMILY_ID is a u16
    const err = await s.request(bad, 'a bad GETFAMILY').catch((e: unknown) => e);
    expect(['EINVAL', 'ERANGE']).toContain((err as { code: string }).code);
    expect((err as Error).message).toMatch(/^netlink on a bad GETFAMILY: .+ \(kernel: .+\)$/);
    s.close();
  });

  test('a batch larger than one datagram: one outcome per message, in order, failures in place', async () => {
    const s = NetlinkSocket.open(binding!, NETLINK_GENERIC);
    // Every 7th fails the policy (CTRL_ATTR_FAMILY_ID is a u16, this one a u8):
    // refused before any lookup. (An unknown name would do too, but the kernel
    // runs modprobe for each: ~1.5 s apiece in a TCG VM.)
    const bad = (i: number): boolean => i % 7 === 3;
    const messages = Array.from({ length: 2000 }, (_, i) =>
      bad(i) ? encodeGenl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, new AttrWriter().u8(1, 5)) : encodeGetFamily('nlctrl'),
    );
    const out = await s.batch(
      messages,
      messages.map((_, i) => `message ${i}`),
    );
    expect(out.length).toBe(2000);
    const wrong = out.flatMap((o, i) => {
      if (bad(i)) return o.error?.message.startsWith(`netlink on message ${i}: `) && o.messages.length === 0 ? [] : [i];
      return o.error === null && o.messages.length === 1 && decodeFamily(o.messages[0]!).name === 'nlctrl' ? [] : [i];
    });
    expect(wrong).toEqual([]);
    const seqs = out.filter((o) => o.error === null).map((o) => o.messages[0]!.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    s.close();
  });

  test('a dump spans several datagrams and ends at NLMSG_DONE: every family, each once', async () => {
    const s = NetlinkSocket.open(binding!, NETLINK_GENERIC, { rcvbuf: 8192 });
    const ms = await s.request(encodeGenl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, null, NLM_F_DUMP));
    const fams = ms.map((m) => decodeFamily(m));
    expect(ms.every((m) => (m.flags & NLM_F_MULTI) !== 0)).toBe(true);
    expect(fams.map((f) => f.name)).toContain('nlctrl');
    expect(new Set(fams.map((f) => f.id)).size).toBe(fams.length);
    s.close();
  });

  test('NETLINK_ROUTE: an RTM_GETLINK dump lists lo', async () => {
    const s = NetlinkSocket.open(binding!, NETLINK_ROUTE);
    const RTM_NEWLINK = 16;
    const RTM_GETLINK = 18;
    const IFLA_IFNAME = 3;
    const ms = await s.request(encodeMessage(RTM_GETLINK, 0x1 | NLM_F_DUMP, Buffer.alloc(16)));
    const names = ms.filter((m) => m.type === RTM_NEWLINK).map((m) => new Attrs('link', m.payload.subarray(16)).string(IFLA_IFNAME));
    expect(names).toContain('lo');
    s.close();
  });

  test('a closed socket: EBADF, as on the fake', async () => {
    const s = binding!.netlinkOpen(NETLINK_GENERIC);
    expect(typeof s.portId).toBe('number');
    s.close();
    s.close();
    expect(s.portId).toBeNull();
    const kernel = await s.request(encodeGetFamily('nlctrl')).catch((e: unknown) => e);
    const f = new FakeNativeBinding().netlinkOpen(NETLINK_GENERIC);
    f.close();
    const fake = await f.request(encodeGetFamily('nlctrl')).catch((e: unknown) => e);
    expect(kernel).toMatchObject({ code: 'EBADF', syscall: 'netlink request' });
    expect((fake as Error).message).toBe((kernel as Error).message);
  });

  test('arguments that are not messages are TypeErrors', async () => {
    const s = binding!.netlinkOpen(NETLINK_GENERIC);
    expect(() => s.request(Buffer.alloc(8))).toThrow(TypeError);
    expect(() => s.request(Buffer.from('ff00000010000100', 'hex'))).toThrow(/partial nlmsghdr|does not fit/);
    expect(() => s.request(Buffer.alloc(0))).toThrow(/at least one message/);
    s.close();
  });
});
