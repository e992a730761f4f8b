// Switchyard's configuration, kube-proxy compatible: `loadConfig(argv)` turns
// `switchyard run`'s arguments (and the --config file they name) into one
// typed, defaulted, validated SwitchyardConfig, or throws a ConfigError that
// lists every problem before anything on the host is touched. Pure except for
// reading the --config file, which goes through the injected `readFile`.
//
// Pipeline: flags.ts (argv -> settings) and file.ts (file -> settings), then
// settings.ts overlays the flags on the file, build.ts applies kube-proxy's
// defaults, validate.ts applies its rules. flags.ts also parses the other
// commands' flags (parseCommandFlags), in the same syntax.
//
// Precedence, and how it differs from kube-proxy's (cmd/kube-proxy/app/options.go):
//  - Without --config both agree: defaults, then the flags given.
//  - With --config, kube-proxy replaces its whole flag-built configuration by
//    the file's and then re-applies only --hostname-override and the logging
//    flags (-v, --vmodule, --logging-format, ...); every other config flag is
//    silently ignored (kubernetes/kubernetes#98302, #108737; its --help says
//    "ignored if a config file is specified by --config").
//  - Switchyard applies every flag given over the file, and the file's values
//    stay for flags not given. For each flag kube-proxy would have ignored it
//    returns a warning, so a migrated command line that relied on the flag
//    being ignored is noticed.
//  - --cleanup, --master, --init-only, --write-config-to, --version and --help
//    are not configuration and apply either way, as in kube-proxy.

import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from './errors.ts';
import { parseConfigFile, type ParsedFile } from './file.ts';
import { parseRunFlags, type ParsedFlags } from './flags.ts';
import { buildConfig } from './build.ts';
import { validateConfig } from './validate.ts';
import { overlay } from './settings.ts';
import type { ConfigWarning, SwitchyardConfig } from './types.ts';

export type { SwitchyardConfig, ConfigWarning, Dataplane, ProxyMode, Millis } from './types.ts';
export {
  DEFAULT_AFFINITY_MAX,
  DEFAULT_MAGLEV_TABLE_SIZE,
  DEFAULT_BACKENDS_MAX,
  DEFAULT_BPF_OBJECT,
  DEFAULT_PIN_PATH,
  DEFAULT_POD_INTERFACES,
  DEFAULT_SERVICE_NODE_PORT_RANGE,
  DEFAULT_SERVICES_MAX,
  DEFAULT_SNAT_PORT_RANGE,
  IPVS_SCHEDULERS,
} from './types.ts';
export { ConfigError, type ConfigProblem } from './errors.ts';
export { RUN_FLAGS, formatCommandHelp, formatRunHelp, parseCommandFlags, type FlagSpec, type RunFlag } from './flags.ts';
export { formatConfigFile, parseConfigFile } from './file.ts';

export type ReadFile = (path: string) => string | Uint8Array;

export interface LoadedConfig {
  readonly config: SwitchyardConfig;
  /** Accepted but noteworthy: log each (as a warning) at startup. */
  readonly warnings: readonly ConfigWarning[];
}

const defaultReadFile: ReadFile = (path) => readFileSync(path);

/**
 * Parses `switchyard run`'s arguments (without "run"), reads --config if
 * given, merges, defaults and validates. With --help or --version the file is
 * not read and nothing is validated beyond the flags' syntax; the caller
 * checks `config.command.help` / `.version` first.
 */
export function loadConfig(argv: readonly string[], readFile: ReadFile = defaultReadFile): LoadedConfig {
  const flags = parseRunFlags(argv);
  const problems: ConfigProblem[] = [...flags.problems];
  const version = flags.settings.get('command.version')?.value;
  if (flags.settings.get('command.help')?.value === true || version === true || version === 'raw') {
    if (problems.length > 0) throw new ConfigError(problems);
    return { config: buildConfig(flags.settings), warnings: [] };
  }

  const configFile = flags.settings.get('command.configFile')?.value;
  let file: ParsedFile | undefined;
  if (typeof configFile === 'string' && configFile !== '') {
    const text = read(configFile, readFile, problems);
    if (text !== undefined) {
      file = parseConfigFile(text, configFile);
      problems.push(...file.problems);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const merged = overlay(file?.settings ?? new Map(), flags.settings);
  const config = buildConfig(merged);
  const checked = validateConfig(config, merged);
  if (checked.problems.length > 0) throw new ConfigError(checked.problems);
  const overridden = file && typeof configFile === 'string' ? overrideWarnings(flags, file, configFile) : [];
  const warnings = [...(file?.warnings ?? []), ...overridden, ...checked.warnings];
  return { config, warnings };
}

function read(path: string, readFile: ReadFile, problems: ConfigProblem[]): string | undefined {
  try {
    const data = readFile(path);
    return typeof data === 'string' ? data : new TextDecoder('utf-8').decode(data);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    problems.push({ field: '--config', message: `--config: ${JSON.stringify(path)}: cannot be read: ${why}` });
    return undefined;
  }
}

/** One warning per flag given that kube-proxy would have ignored because --config was given. */
function overrideWarnings(flags: ParsedFlags, file: ParsedFile, configFile: string): ConfigWarning[] {
  const out: ConfigWarning[] = [];
  for (const flag of flags.given) {
    if (flag.keptWithConfig) continue;
    const shown = flags.settings.get(flag.paths[0] ?? '')?.shown ?? '';
    const under = flag.paths.map((p) => file.settings.get(p)).find((s) => s !== undefined);
    const what = under && under.origin.kind === 'file' ? `overrides ${under.origin.field}: ${under.shown} from ${configFile}` : `is applied over ${configFile}`;
    out.push({ field: `--${flag.name}`, message: `--${flag.name}: ${shown}: ${what} (kube-proxy would ignore this flag because --config is given)` });
  }
  return out;
}
