// The commands: builds each from its flags by passing dependencies in; no
// module-level state. Commands: run, cleanup, status, demo, help. `run` and
// `demo` are imported when they run: their dependencies (the API client,
// metrics, the rig) take seconds to load, which the one-shot commands
// (`status`, `cleanup`, `--help`) need not pay.

import {
  loadConfig,
  ConfigError,
  formatCommandHelp,
  formatRunHelp,
  formatConfigFile,
  parseCommandFlags,
  DEFAULT_PIN_PATH,
  type FlagSpec,
} from '../config/index.ts';
import { writeFileSync, readFileSync } from 'node:fs';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
import { cleanup } from './cleanup.ts';
import { status, STATUS_FLAGS } from './status.ts';
import { assertSwitchyardProgrammed, cleanupKubeProxy, ipvsadm, systemCommands } from './kube-proxy-cleanup.ts';
import { loadBinding } from '../native/binding.ts';
import { SwitchyardError } from '../util/errors.ts';
import { createLogger } from '../util/log.ts';

const CLEANUP_FLAGS: readonly FlagSpec[] = [
  { name: 'bpf-pin-path', kind: 'string', arg: 'DIR', default: DEFAULT_PIN_PATH, help: 'The pin directory `run` used.' },
  {
    name: 'kube-proxy',
    kind: 'bool',
    help: "Remove kube-proxy's leftovers instead (iptables/ip6tables chains of both backends, nftables tables, IPVS services, kube-ipvs0, ipsets): the migration step, refused unless Switchyard is programmed here.",
  },
  {
    name: 'force',
    kind: 'bool',
    help: 'With --kube-proxy: remove them even when Switchyard is not programmed here (Services stop working until a proxy programs them).',
  },
];

/** kube-proxy's leftovers with the real tools; exit 1 when a step failed. */
function removeKubeProxyLeftovers(): number {
  const commands = systemCommands();
  const r = cleanupKubeProxy({ commands, ipvs: ipvsadm(commands), log: createLogger('cleanup') });
  if (r.errors.length > 0) {
    process.stderr.write(`switchyard cleanup: ${r.errors.length} step(s) of the kube-proxy cleanup failed; first: ${r.errors[0]}\n`);
    return 1;
  }
  return 0;
}

interface Command {
  readonly summary: string;
  /** Flags of this command; `run` has kube-proxy's whole set (src/config) and its own help. */
  readonly flags: readonly FlagSpec[] | 'kube-proxy';
  readonly main: (argv: readonly string[], stop: AbortSignal) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'Run the proxy: program Services into the dataplane and follow their changes.',
    flags: 'kube-proxy',
    main: async (argv, stop) => {
      const { config, warnings } = loadConfig(argv);
      for (const w of warnings) process.stderr.write(`switchyard run: warning: ${w.message}\n`);
      const cmd = config.command;
      if (cmd.version) {
        process.stdout.write(`switchyard ${VERSION}\n`);
        return 0;
      }
      if (cmd.writeConfigTo) {
        writeFileSync(cmd.writeConfigTo, formatConfigFile(config));
        return 0;
      }
      if (cmd.cleanup) {
        // kube-proxy --cleanup: remove every proxy's rules from this node (kube-proxy's of
        // every mode, and Switchyard's own), then exit; nothing is left programmed.
        cleanup(loadBinding(), config.switchyard.bpf.pinPath, createLogger('cleanup'));
        return removeKubeProxyLeftovers();
      }
      const { run, runConfig } = await import('./run.ts');
      return run(runConfig(config), stop);
    },
  },
  cleanup: {
    summary: "Remove what `switchyard run` installed in this network namespace (tc filters, pinned maps); with --kube-proxy, kube-proxy's leftovers instead.",
    flags: CLEANUP_FLAGS,
    main: async (argv) => {
      const flags = parseCommandFlags(argv, CLEANUP_FLAGS, 'cleanup');
      const pinFlag = flags.get('bpf-pin-path');
      const pinPath = typeof pinFlag === 'string' ? pinFlag : DEFAULT_PIN_PATH;
      if (flags.get('force') === true && flags.get('kube-proxy') !== true) {
        throw new ConfigError([{ field: 'force', message: '--force applies to --kube-proxy only' }]);
      }
      if (flags.get('kube-proxy') === true) {
        const log = createLogger('cleanup');
        if (flags.get('force') === true) log.warn('--force: not checking that Switchyard is programmed here');
        else log.info('Switchyard is programmed here', { pinPath, attached: assertSwitchyardProgrammed(loadBinding(), pinPath).attached.join(',') });
        return removeKubeProxyLeftovers();
      }
      cleanup(loadBinding(), pinPath, createLogger('cleanup'));
      return 0;
    },
  },
  status: {
    summary:
      'Print what is programmed, read back from the kernel (pinned maps, tc programs), daemon running or not. Exits 3 when nothing is pinned, 4 for layout 1 maps only.',
    flags: STATUS_FLAGS,
    main: (argv) =>
      status(argv, {
        native: loadBinding(),
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      }),
  },
  demo: {
    summary: 'Build a two-node cluster out of network namespaces, send traffic through a ClusterIP Service, report, tear down.',
    flags: [],
    main: async (argv) => {
      parseCommandFlags(argv, [], 'demo');
      const { demo } = await import('./demo.ts');
      return demo();
    },
  },
};

function usage(): string {
  const lines = ['Usage: switchyard <command> [flags]', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', 'Run `switchyard <command> --help` for its flags.');
  return lines.join('\n');
}

/** `stop` aborts (with the signal's name) when the process is asked to stop. */
export async function main(argv: readonly string[], stop: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`switchyard: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const help = cmd.flags === 'kube-proxy' ? formatRunHelp(cmd.summary) : formatCommandHelp(name, cmd.summary, cmd.flags);
    process.stdout.write(`${help}\n`);
    return 0;
  }
  try {
    return await cmd.main(rest, stop);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchyard ${name}: ${err.message}\n`);
      return 2;
    }
    // Every error Switchyard expects (a check that failed, a kubeconfig, the
    // kernel refusing, the pin directory locked) is one line and exit 1; only
    // a bug shows a stack.
    if (err instanceof SwitchyardError) {
      process.stderr.write(`switchyard ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
