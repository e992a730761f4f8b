// The daemon of the previous main, for the upgrade test: commit 9ef8560 (the
// last main of map layout 1) exported with `git archive` into
// .cache/v1-daemon-<commit>/ and built there (BPF object and native addon)
// with this checkout's node_modules, once; later runs reuse the build. The
// build goes to a temporary directory renamed into place when it is complete,
// so an interrupted build is never mistaken for a finished one.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './requirements.ts';

/**
 * Layout 1 cannot carry TCP through a ClusterIP on a node with strict
 * rp_filter or a conntrack INVALID drop rule (it reverse-translated replies
 * before the host stack: issue 7 item 0), so no such node ever had live
 * layout 1 connections to keep. The upgrade is tested on nodes set up as
 * layout 1 needed them: rp_filter off, no nftables rules (in the node's own
 * namespace; a rig without them is left as it is).
 */
export const RELAX_NODE_FOR_V1 = 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done; if command -v nft >/dev/null; then nft flush ruleset; fi';

/** The last main whose datapath used map layout 1. */
export const V1_COMMIT = '9ef8560';

export interface V1Daemon {
  /** Root of the exported tree. */
  readonly root: string;
  /** Its bin/switchyard. */
  readonly switchyard: string;
  readonly objectPath: string;
}

function paths(root: string): V1Daemon {
  return { root, switchyard: join(root, 'bin', 'switchyard'), objectPath: join(root, 'bpf', 'build', 'switchyard.bpf.o') };
}

/** The v1 daemon, built on first use (about a minute); `log` hears what happens. */
export function v1Daemon(log: (line: string) => void = () => {}): V1Daemon {
  const cache = join(REPO, '.cache');
  const root = join(cache, `v1-daemon-${V1_COMMIT}`);
  const done = paths(root);
  if (existsSync(join(root, '.built'))) return done;
  mkdirSync(cache, { recursive: true });
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  log(`building the layout 1 daemon (${V1_COMMIT}) in ${root}`);
  try {
    const tar = execFileSync('git', ['-C', REPO, 'archive', V1_COMMIT], { maxBuffer: 256 * 1024 * 1024 });
    execFileSync('tar', ['-x', '-C', tmp], { input: tar });
    symlinkSync(realpathSync(join(REPO, 'node_modules')), join(tmp, 'node_modules'));
    execFileSync('npm', ['run', 'build'], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
    execFileSync('touch', [join(tmp, '.built')]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(
      `building the layout 1 daemon (${V1_COMMIT}) failed: ${e.message}\n${e.stdout?.toString().slice(-2000) ?? ''}\n${e.stderr?.toString().slice(-2000) ?? ''}`,
    );
  }
  return done;
}
