// The error a call throws, checked for its class and returned typed, so a
// test can assert on its fields (code, errno, the field it names). Unlike
// `expect(f).toThrow(...)` it calls `f` once: some calls change state.
import { expect } from 'vitest';

/** What `f` throws, which must be an instance of `type`; fails the test if `f` returns. */
export function thrownBy<E>(f: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    f();
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(type);
    return e as E;
  }
  return expect.unreachable(`expected ${type.name} to be thrown, but the call returned`);
}
