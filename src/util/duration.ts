// Go's duration syntax, as kube-proxy's flags (time.ParseDuration) and file
// (metav1.Duration) take it: a sign, then one or more decimal numbers each with
// a unit ("300ms", "1.5h", "2h45m"), or a bare "0". Units: ns, us (µs, μs), ms,
// s, m, h. Formatting follows Go's Duration.String ("1m0s", "500ms").

const NS_PER: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3, // U+00B5 micro sign
  μs: 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

export type DurationResult = { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly reason: string };

/** Parses a Go duration into milliseconds, or says what is wrong with it. */
export function parseGoDuration(text: string): DurationResult {
  let s = text;
  let neg = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, ms: 0 };
  if (s === '') return { ok: false, reason: 'is empty' };
  let ns = 0;
  const re = /(\d*)(?:\.(\d*))?([^\d.]*)/y;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2];
    const unit = m?.[3] ?? '';
    if (!m || (whole === '' && (frac === undefined || frac === ''))) return { ok: false, reason: 'is not a number followed by a unit' };
    if (unit === '') return { ok: false, reason: 'has a number without a unit' };
    const scale = Object.hasOwn(NS_PER, unit) ? NS_PER[unit] : undefined;
    if (scale === undefined) return { ok: false, reason: `has an unknown unit "${unit}"` };
    ns += Number(`${whole || '0'}.${frac || '0'}`) * scale;
    at = re.lastIndex;
  }
  // Go's time.Duration is an int64 of nanoseconds: at most 2^63 - 1.
  if (ns >= 2 ** 63) return { ok: false, reason: 'is too large' };
  const ms = ns / 1e6;
  return { ok: true, ms: neg ? -ms : ms };
}

function trimFraction(n: number, digits: number): string {
  return n.toFixed(digits).replace(/\.?0+$/, '');
}

/** Formats milliseconds as Go's Duration.String does: "0s", "500ms", "30s", "1m0s", "1h30m0s". */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  const ns = Math.round(Math.abs(ms) * 1e6);
  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${trimFraction(ns / 1e3, 3)}µs`;
  if (ns < 1e9) return `${sign}${trimFraction(ns / 1e6, 6)}ms`;
  const h = Math.floor(ns / 3600e9);
  const m = Math.floor((ns - h * 3600e9) / 60e9);
  const s = trimFraction((ns - h * 3600e9 - m * 60e9) / 1e9, 9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}

export const DURATION_HELP = 'must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h)';
