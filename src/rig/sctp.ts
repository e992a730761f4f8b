// SCTP for the rig: builds src/rig/sctp.c (the SCTP backend and client; Node
// has no SCTP sockets) with the host's C compiler into a cache directory
// keyed by the source's hash, says whether this kernel has SCTP at all, and
// turns the client's output into RequestResults. The kernel matrix builds it
// on the host into <repo>/.cache/rig before booting (compiling under TCG
// takes minutes); a VM finds it there, read-only.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SwitchyardError } from '../util/errors.ts';
import { parseBackendLine, parseEndpoint } from './protocol.ts';
import type { RequestResult } from './protocol.ts';

const SOURCE = fileURLToPath(new URL('./sctp.c', import.meta.url));

/** Where the kernel matrix leaves a prebuilt helper. */
export const PREBUILT_DIR = fileURLToPath(new URL('../../.cache/rig', import.meta.url));

function helperName(): string {
  return `sctp-${createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 16)}`;
}

/** Path of the built helper: the prebuilt one, else built the first time into a temporary directory (cc, gcc or clang). */
export function sctpHelper(): string {
  const prebuilt = join(PREBUILT_DIR, helperName());
  if (existsSync(prebuilt)) return prebuilt;
  return buildSctpHelper(join(tmpdir(), 'sy-rig-sctp'));
}

/** Builds the helper into `dir` unless it is there already; returns its path. */
export function buildSctpHelper(dir: string): string {
  const bin = join(dir, helperName());
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  let lastErr: unknown;
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['-O2', '-Wall', '-o', tmp, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(tmp, bin);
      return bin;
    } catch (err) {
      lastErr = err;
    }
  }
  throw new SwitchyardError('ERR_SY_RIG_SCTP_BUILD', `building ${SOURCE} failed: ${String(lastErr)}`);
}

/** Whether this kernel can open SCTP sockets (loads the module if it can). */
export function kernelHasSctp(): boolean {
  if (existsSync('/proc/sys/net/sctp')) return true;
  try {
    execFileSync('modprobe', ['-q', 'sctp'], { stdio: 'ignore' });
  } catch {
    // no module, or no modprobe: the check below answers
  }
  return existsSync('/proc/sys/net/sctp');
}

/** The client's result lines (see sctp.c) as RequestResults. */
export function parseSctpClientOutput(stdout: string): RequestResult[] {
  const out: RequestResult[] = [];
  for (const l of stdout.split('\n')) {
    if (l === '') continue;
    const f = l.split('\t');
    const ms = Number(f[1] ?? 0);
    if (f[0] === 'err') {
      out.push({ ok: false, ms, error: f[2] ?? 'unknown' });
      continue;
    }
    const r: RequestResult = { ok: false, ms };
    const reply = parseEndpoint(f[2] ?? '');
    const local = parseEndpoint(f[3] ?? '');
    if (reply) r.reply = reply;
    if (local) r.local = local;
    const line = parseBackendLine(f[4] ?? '');
    if (!line) r.error = 'bad-reply';
    else {
      r.ok = true;
      r.backend = line.name;
      r.seenClient = line.client;
      r.seenLocal = line.local;
    }
    out.push(r);
  }
  return out;
}
