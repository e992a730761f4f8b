// Kernel table for the kernel-matrix runner (DESIGN.md §8).
// Owns: which Debian suites hold each kernel line, how the newest image package of
// that line is recognised, and which .deb files make up one bootable kernel.
// Nothing here touches the network or the disk; fetch.ts does.

export interface KernelSpec {
  /** The name used on the command line (`--kernels 5.10,6.1`). */
  key: string;
  /** Other accepted spellings of `key`. */
  aliases: string[];
  /** Debian suite the kernel comes from (the private apt configuration is per suite). */
  suite: string;
  /** Suites listed in that configuration; `-security` ones come from the security mirror. */
  suites: string[];
  /** POSIX ERE for `apt-cache search --names-only`; a coarse pre-filter. */
  searchRegex: string;
  /** The exact shape of an image package name; group 1 is the kernel release (`uname -r`). */
  imageName: RegExp;
  /** The packages that must be downloaded for release `abi`, all from the same source version. */
  packages(abi: string): string[];
}

const imagePackage = (abi: string): string[] => [`linux-image-${abi}`];

export const KERNELS: readonly KernelSpec[] = [
  {
    key: '5.10',
    aliases: ['5.10.x', 'bullseye'],
    suite: 'bullseye',
    suites: ['bullseye', 'bullseye-security'],
    searchRegex: '^linux-image-5\\.10\\.0-[0-9]+-amd64$',
    // Not -cloud-/-rt-, and not the 6.1 backports that bullseye-security also carries.
    imageName: /^linux-image-(5\.10\.0-\d+-amd64)$/,
    packages: imagePackage,
  },
  {
    key: '6.1',
    aliases: ['6.1.x', 'bookworm'],
    suite: 'bookworm',
    suites: ['bookworm', 'bookworm-security'],
    searchRegex: '^linux-image-6\\.1\\.0-[0-9]+-amd64$',
    imageName: /^linux-image-(6\.1\.0-\d+-amd64)$/,
    packages: imagePackage,
  },
  {
    key: '6.12',
    aliases: ['6.12.x', 'trixie'],
    suite: 'trixie',
    suites: ['trixie', 'trixie-security'],
    searchRegex: '^linux-image-6\\.12\\.[0-9]+\\+deb13(\\.[0-9]+)?-amd64$',
    // `+deb13` only: bookworm's 6.12 backports are `+deb12`.
    imageName: /^linux-image-(6\.12\.\d+\+deb13(?:\.\d+)?-amd64)$/,
    packages: imagePackage,
  },
  {
    key: '7',
    aliases: ['7.x', 'forky'],
    suite: 'forky',
    suites: ['forky'],
    searchRegex: '^linux-image-7\\.[0-9]+\\.[0-9]+\\+deb14(\\.[0-9]+)?-amd64$',
    imageName: /^linux-image-(7\.\d+\.\d+\+deb14(?:\.\d+)?-amd64)$/,
    // From 7.x on, linux-image-* is an empty package depending on these three:
    // the vmlinuz, the modules (.ko.xz) and modules.builtin/modules.order/config.
    packages: (abi) => [`linux-binary-${abi}`, `linux-modules-${abi}`, `linux-base-${abi}`],
  },
];

export const DEFAULT_KERNELS = ['5.10', '6.1'];

export function findKernel(name: string): KernelSpec {
  const n = name.trim().toLowerCase();
  const spec = KERNELS.find((k) => k.key === n || k.aliases.includes(n));
  if (!spec) {
    const known = KERNELS.map((k) => k.key).join(', ');
    throw new Error(`unknown kernel '${name}' (known: ${known})`);
  }
  return spec;
}

/** `apt-get download` reads names with `+` or `.` as regular expressions: anchor and escape. */
export function exactPackageRegex(name: string): string {
  return `^${name.replace(/[.+*?^$()[\]{}|\\]/g, '\\$&')}$`;
}

/** Debian version comparison (deb-version(7)): <0 if a<b, 0 if equal, >0 if a>b. */
export function compareDebianVersions(a: string, b: string): number {
  const split = (v: string): [number, string, string] => {
    let epoch = 0;
    const colon = v.indexOf(':');
    if (colon >= 0) {
      epoch = Number(v.slice(0, colon)) || 0;
      v = v.slice(colon + 1);
    }
    const dash = v.lastIndexOf('-');
    return dash >= 0 ? [epoch, v.slice(0, dash), v.slice(dash + 1)] : [epoch, v, ''];
  };
  const order = (c: string): number => {
    if (c === '~') return -1;
    if (c === '') return 0;
    if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
    return c.charCodeAt(0) + 256;
  };
  const part = (x: string, y: string): number => {
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      // Non-digit prefix, compared with ~ < end < letters < other characters.
      while ((i < x.length && !/\d/.test(x[i]!)) || (j < y.length && !/\d/.test(y[j]!))) {
        const cx = i < x.length && !/\d/.test(x[i]!) ? x[i]! : '';
        const cy = j < y.length && !/\d/.test(y[j]!) ? y[j]! : '';
        const d = order(cx) - order(cy);
        if (d !== 0) return d;
        if (cx) i++;
        if (cy) j++;
      }
      let nx = '';
      let ny = '';
      while (i < x.length && /\d/.test(x[i]!)) nx += x[i++];
      while (j < y.length && /\d/.test(y[j]!)) ny += y[j++];
      const d = Number(nx || '0') - Number(ny || '0');
      if (d !== 0) return d;
    }
    return 0;
  };
  const [ea, ua, ra] = split(a);
  const [eb, ub, rb] = split(b);
  return ea - eb || part(ua, ub) || part(ra, rb);
}
