// The common form both sources are read into before defaults: a flat map from
// a field path ("ipvs.scheduler", "switchyard.bpf.pinPath", "command.cleanup")
// to a typed value, with where it came from and how the user wrote it. Flags
// and file each produce one; merging them is a map overlay, so "a flag not
// given leaves the file's value alone" holds by construction, and every later
// message can name the option the way the user wrote it.

import type { Origin } from './errors.ts';
import type { VModuleItem } from './types.ts';

export type SettingValue = string | number | boolean | readonly string[] | Readonly<Record<string, boolean>> | readonly VModuleItem[];

export interface Setting {
  readonly value: SettingValue;
  /** The value as written, for messages: `"5s"`, `true`, `["a", "b"]`. */
  readonly shown: string;
  readonly origin: Origin;
}

export type Settings = ReadonlyMap<string, Setting>;

/** Paths whose flag and file values are joined rather than replaced, as kube-proxy does for them. */
const JOINED = new Set(['featureGates', 'logging.vmodule']);

/**
 * The file's settings with the flags' laid over them. kube-proxy joins
 * vmodule (flag entries first, then the file's) and we also join feature gates
 * key by key (a flag's key wins); every other flag replaces the file's value.
 */
export function overlay(file: Settings, flags: Settings): Map<string, Setting> {
  const out = new Map(file);
  for (const [path, s] of flags) {
    const under = out.get(path);
    if (under && JOINED.has(path)) {
      if (Array.isArray(s.value) && Array.isArray(under.value)) {
        out.set(path, { ...s, value: [...(s.value as readonly VModuleItem[]), ...(under.value as readonly VModuleItem[])] });
        continue;
      }
      if (isBoolMap(s.value) && isBoolMap(under.value)) {
        out.set(path, { ...s, value: { ...under.value, ...s.value } });
        continue;
      }
    }
    out.set(path, s);
  }
  return out;
}

export function isBoolMap(v: SettingValue): v is Readonly<Record<string, boolean>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed reads of a settings map; each returns undefined when the path is unset or of another type. */
export class SettingsReader {
  readonly settings: Settings;
  constructor(settings: Settings) {
    this.settings = settings;
  }
  has(path: string): boolean {
    return this.settings.has(path);
  }
  origin(path: string): Origin | undefined {
    return this.settings.get(path)?.origin;
  }
  fromFlag(path: string): boolean {
    return this.settings.get(path)?.origin.kind === 'flag';
  }
  string(path: string): string | undefined {
    const v = this.settings.get(path)?.value;
    return typeof v === 'string' ? v : undefined;
  }
  number(path: string): number | undefined {
    const v = this.settings.get(path)?.value;
    return typeof v === 'number' ? v : undefined;
  }
  bool(path: string): boolean | undefined {
    const v = this.settings.get(path)?.value;
    return typeof v === 'boolean' ? v : undefined;
  }
  strings(path: string): readonly string[] | undefined {
    const v = this.settings.get(path)?.value;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as readonly string[]) : undefined;
  }
  boolMap(path: string): Readonly<Record<string, boolean>> | undefined {
    const v = this.settings.get(path)?.value;
    return v !== undefined && isBoolMap(v) ? v : undefined;
  }
  vmodule(path: string): readonly VModuleItem[] | undefined {
    const v = this.settings.get(path)?.value;
    return Array.isArray(v) && v.every((x) => typeof x === 'object') ? (v as readonly VModuleItem[]) : undefined;
  }
}
