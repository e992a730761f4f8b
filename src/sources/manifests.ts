// The `--manifests DIR` source: Services, EndpointSlices and Nodes read from
// the *.yaml / *.yml files of one directory (not recursive; dotfiles such as
// editor swap files skipped), multi-document ("---") and `kind: List` (any
// *List kind with items) accepted. It follows the directory while running:
// fs.watch events, debounced, trigger a rescan, and a periodic rescan catches
// whatever fs.watch missed. Each scan re-reads only files whose stat changed
// and re-parses only files whose text changed, then reconciles the cache with
// what the files now say: new and changed objects applied, objects no longer
// in any file deleted.
//
// Bad input affects only what is bad. A document that is not valid YAML, or
// an object that fails validation, is logged (file, document index, object,
// field) and skipped; the rest of the file loads. An object that was valid
// before and is now malformed keeps its last good version in the cache
// (nothing already programmed is lost) until it is fixed or removed from the
// files. A broken document is matched to its object by the name it still
// carries (whatever of it parsed) or, failing that, by position: the object
// last read at the same file/document/item is kept.
// An object that becomes ignored (headless, ExternalName, proxy-name label,
// FQDN slice) is deleted: kube-proxy stops proxying it too.
// A file that cannot be read for another reason than "gone" keeps its last
// good objects; a directory that cannot be listed after start keeps all.
// Writers should replace files atomically (write + rename): a half-written
// file is read as what it is. Symlinked files are followed, so a mounted
// ConfigMap (files -> ..data/, swapped atomically by kubelet) works.

import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { SwitchyardError } from '../util/errors.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { describeValue, isRecord, parseObject, type KubeObject, type ObjectRef, type ParseResult } from './objects.ts';

const RACY_MS = 2000;

/** Where the source writes; ClusterCache implements it. */
export interface ObjectSink {
  apply(obj: KubeObject): boolean;
  delete(ref: ObjectRef): boolean;
}

export interface ManifestsSourceOptions {
  readonly dir: string;
  readonly cache: ObjectSink;
  /** Called after a scan that changed the cache (including the first). */
  readonly onChange?: () => void;
  readonly logger?: Logger;
  /** Quiet time after a watch event before rescanning; default 100 ms. */
  readonly debounceMs?: number;
  /** Safety-net rescan period; default 5000 ms. */
  readonly rescanMs?: number;
}

/** One object (or one unusable document) read from a file. */
interface Entry {
  /** "doc=2" or "doc=2 item=5": where in the file. */
  readonly pos: string;
  readonly doc: number;
  readonly item: number | null;
  readonly result: ParseResult | { readonly status: 'unparsable'; readonly message: string };
  /** The cache object this entry speaks for: its own, or the one last read at `pos` when it names none. */
  readonly ref: ObjectRef | null;
  /** Parsed in this scan (so its problems are logged once, not on every rescan). */
  fresh: boolean;
}

interface FileState {
  readonly stamp: string;
  readonly text: string;
  readonly entries: readonly Entry[];
}

export class ManifestsSource {
  readonly #dir: string;
  readonly #cache: ObjectSink;
  readonly #onChange: () => void;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #rescanMs: number;
  readonly #files = new Map<string, FileState>();
  /** Objects this source put in the cache, by refId. */
  readonly #owned = new Map<string, ObjectRef>();
  #reportedDuplicates = new Set<string>();
  #watcher: FSWatcher | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #rescan: NodeJS.Timeout | null = null;
  #scanning: Promise<boolean> | null = null;
  #scanAgain = false;
  #started = false;
  #stopped = false;
  #isSynced = false;
  #markSynced: () => void = () => {};
  readonly synced: Promise<void>;

  constructor(options: ManifestsSourceOptions) {
    this.#dir = options.dir;
    this.#cache = options.cache;
    this.#onChange = options.onChange ?? (() => {});
    this.#log = options.logger ?? createLogger('manifests');
    this.#debounceMs = options.debounceMs ?? 100;
    this.#rescanMs = options.rescanMs ?? 5000;
    this.synced = new Promise((resolve) => (this.#markSynced = resolve));
  }

  /** True once the first complete read of the directory has reached the cache. */
  get isSynced(): boolean {
    return this.#isSynced;
  }

  /**
   * Reads the directory once (rejecting if it cannot be listed), then follows
   * it until stop() or `signal` aborts. Resolves after that first scan, which
   * normally syncs (isSynced; `synced` resolves on the first scan that does).
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#started) throw new SwitchyardError('ERR_SY_ALREADY_STARTED', 'ManifestsSource already started');
    this.#started = true;
    if (signal?.aborted) return this.stop();
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    await readdir(this.#dir); // fail fast on a missing or unreadable directory
    this.#startWatcher(); // before the first scan, so no change falls between the two
    await this.rescan();
    this.#scheduleRescan();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#debounce) clearTimeout(this.#debounce);
    if (this.#rescan) clearTimeout(this.#rescan);
    this.#debounce = this.#rescan = null;
  }

  /** One scan and reconcile; concurrent calls coalesce. Resolves true when the cache changed. */
  async rescan(): Promise<boolean> {
    if (this.#scanning) {
      this.#scanAgain = true;
      return this.#scanning;
    }
    this.#scanning = this.#scanLoop();
    try {
      return await this.#scanning;
    } finally {
      this.#scanning = null;
    }
  }

  async #scanLoop(): Promise<boolean> {
    let changed = false;
    do {
      this.#scanAgain = false;
      changed = (await this.#scanOnce()) || changed;
    } while (this.#scanAgain && !this.#stopped);
    return changed;
  }

  async #scanOnce(): Promise<boolean> {
    if (this.#stopped) return false;
    const names = await this.#listFiles();
    if (names === null) return false;
    await this.#refreshFiles(names);
    const changed = this.#reconcile();
    if (!this.#isSynced) {
      this.#isSynced = true;
      this.#markSynced();
      this.#log.info('manifests synced', { dir: this.#dir, files: this.#files.size, objects: this.#owned.size });
    }
    if (changed && !this.#stopped) this.#onChange();
    return changed;
  }

  // -------------------------------------------------------------------------
  // Reading

  async #listFiles(): Promise<string[] | null> {
    try {
      const names = await readdir(this.#dir);
      return names.filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
    } catch (err) {
      this.#log.error('cannot list manifests directory; keeping what was read before', { dir: this.#dir, error: err });
      return null;
    }
  }

  async #refreshFiles(names: readonly string[]): Promise<void> {
    const listed = new Set(names);
    for (const name of [...this.#files.keys()]) {
      if (!listed.has(name)) this.#forgetFile(name);
    }
    for (const name of names) await this.#refreshFile(name);
  }

  #forgetFile(name: string): void {
    this.#files.delete(name);
    this.#log.info('manifest file removed', { file: name });
  }

  async #refreshFile(name: string): Promise<void> {
    const path = join(this.#dir, name);
    const previous = this.#files.get(name);
    try {
      const st = await stat(path);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
      // Like git's "racy clean" check: a file modified within the timestamp
      // granularity of its last read may have changed without its stat changing.
      if (previous?.stamp === stamp && Date.now() - st.mtimeMs > RACY_MS) return;
      const text = await readFile(path, 'utf8');
      const entries = previous?.text === text ? previous.entries : parseFile(text, previous?.entries ?? []);
      this.#files.set(name, { stamp, text, entries });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (previous) this.#forgetFile(name);
        return;
      }
      this.#log.error('cannot read manifest file; keeping its last good objects', { file: name, error: err });
    }
  }

  // -------------------------------------------------------------------------
  // Reconciling the cache with the files

  #reconcile(): boolean {
    const desired = this.#desiredEntries();
    let changed = false;
    for (const [id, { entry, file }] of desired) {
      changed = this.#applyEntry(id, entry, file) || changed;
    }
    for (const [id, ref] of [...this.#owned]) {
      if (desired.has(id)) continue;
      this.#owned.delete(id);
      if (this.#cache.delete(ref)) {
        changed = true;
        this.#log.info('object deleted: no longer in any manifest', { object: refLabel(ref) });
      }
    }
    return changed;
  }

  /** Every identifiable entry by refId; a later file (name order) or document wins. */
  #desiredEntries(): Map<string, { entry: Entry; file: string }> {
    const desired = new Map<string, { entry: Entry; file: string }>();
    const duplicates = new Set<string>();
    for (const [file, state] of this.#files) {
      for (const entry of state.entries) {
        this.#reportEntry(file, entry);
        if (!entry.ref) continue;
        const id = refId(entry.ref);
        if (desired.has(id)) duplicates.add(id);
        desired.set(id, { entry, file });
      }
    }
    this.#reportDuplicates(duplicates, desired);
    return desired;
  }

  #applyEntry(id: string, entry: Entry, file: string): boolean {
    const { result, ref } = entry;
    if (result.status === 'valid') {
      this.#owned.set(id, ref!);
      return this.#cache.apply(result.object);
    }
    if (result.status === 'ignored' && this.#owned.delete(id)) {
      this.#log.info('object deleted: now ignored', { file, object: refLabel(ref!), reason: result.reason });
      return this.#cache.delete(ref!);
    }
    return false; // invalid or unparsable: the last good version (if any) stays
  }

  // -------------------------------------------------------------------------
  // Reporting (each problem once per file content)

  #reportEntry(file: string, entry: Entry): void {
    if (!entry.fresh) return;
    entry.fresh = false;
    const where = { file, doc: entry.doc, item: entry.item ?? undefined };
    const r = entry.result;
    const kept = entry.ref && this.#owned.has(refId(entry.ref)) ? refLabel(entry.ref) : undefined;
    if (r.status === 'unparsable') {
      this.#log.warn('skipping unparsable YAML document', { ...where, error: r.message, kept });
    } else if (r.status === 'invalid') {
      const e = r.error;
      this.#log.warn('skipping invalid object', { ...where, object: e.object, field: e.field, error: e.detail, kept });
    } else if (r.status === 'ignored') {
      this.#log.info('ignoring object', { ...where, object: refLabel(r.ref), reason: r.reason });
    } else if (r.status === 'unsupported') {
      this.#log.debug('ignoring object of unsupported kind', { ...where, kind: r.kind });
    } else {
      for (const w of r.warnings) {
        this.#log.warn('ignoring part of object', { ...where, object: w.object, field: w.field, error: w.detail });
      }
    }
  }

  #reportDuplicates(duplicates: Set<string>, desired: Map<string, { entry: Entry; file: string }>): void {
    for (const id of duplicates) {
      if (this.#reportedDuplicates.has(id)) continue;
      const winner = desired.get(id)!;
      this.#log.warn('object defined more than once; using the last definition', {
        object: refLabel(winner.entry.ref!),
        file: winner.file,
        doc: winner.entry.doc,
      });
    }
    this.#reportedDuplicates = duplicates;
  }

  // -------------------------------------------------------------------------
  // Watching

  #startWatcher(): void {
    if (this.#watcher || this.#stopped) return;
    try {
      this.#watcher = watch(this.#dir, () => this.#onWatchEvent());
      this.#watcher.on('error', (err) => {
        this.#log.warn('manifests directory watch failed; relying on periodic rescan', { dir: this.#dir, error: err });
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch (err) {
      this.#log.warn('cannot watch manifests directory; relying on periodic rescan', { dir: this.#dir, error: err });
    }
  }

  #onWatchEvent(): void {
    if (this.#stopped) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      this.#runScan();
    }, this.#debounceMs);
  }

  #scheduleRescan(): void {
    if (this.#stopped) return;
    this.#rescan = setTimeout(() => {
      this.#rescan = null;
      this.#startWatcher(); // re-arm a watcher that died (directory replaced, ...)
      this.#runScan().finally(() => this.#scheduleRescan());
    }, this.#rescanMs);
  }

  async #runScan(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.rescan();
    } catch (err) {
      this.#log.error('manifests scan failed', { dir: this.#dir, error: err });
    }
  }
}

// ---------------------------------------------------------------------------
// Parsing one file (pure)

type DocResult = Entry['result'];

/**
 * Parses a file into entries. `previous` (the file's entries from its last
 * read) supplies the object to hold for a broken document that names none.
 */
export function parseFile(text: string, previous: readonly Entry[]): Entry[] {
  const before = new Map<string, ObjectRef>();
  for (const e of previous) if (e.ref) before.set(e.pos, e.ref);
  const entries: Entry[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    for (const [item, result, hint] of documentResults(doc)) entries.push(entry(i, item, result, hint, before));
  });
  return entries;
}

type YamlDoc = { readonly errors: readonly Error[]; toJS(opts?: object): unknown };

/** [item index (null unless a List), result, ref hint for a document that failed to parse]. */
function documentResults(doc: YamlDoc): [number | null, DocResult, ObjectRef | null][] {
  const err = doc.errors[0];
  if (err) return [[null, { status: 'unparsable', message: err.message.split('\n')[0]! }, partialRef(doc)]];
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return [[null, { status: 'unparsable', message: (e as Error).message }, null]];
  }
  if (value === null || value === undefined) return []; // empty document
  if (!isList(value)) return [[null, parseObject(value), null]];
  const items = value['items'];
  if (!Array.isArray(items)) return [[null, { status: 'unparsable', message: `items: must be a list, got ${describeValue(items)}` }, null]];
  return items.map((obj, j) => [j, parseObject(obj), null]);
}

function isList(v: unknown): v is Record<string, unknown> {
  return isRecord(v) && typeof v['kind'] === 'string' && v['kind'].endsWith('List');
}

/** The object a broken document was meant to be, when what did parse still names it. */
function partialRef(doc: YamlDoc): ObjectRef | null {
  try {
    const r = parseObject(doc.toJS({ maxAliasCount: 100 }));
    return r.status === 'valid' || r.status === 'invalid' || r.status === 'ignored' ? ownRef(r) : null;
  } catch {
    return null;
  }
}

function entry(doc: number, item: number | null, result: DocResult, hint: ObjectRef | null, before: ReadonlyMap<string, ObjectRef>): Entry {
  const pos = item === null ? `doc=${doc}` : `doc=${doc} item=${item}`;
  return { pos, doc, item, result, ref: ownRef(result) ?? hint ?? before.get(pos) ?? null, fresh: true };
}

function ownRef(result: DocResult): ObjectRef | null {
  switch (result.status) {
    case 'valid':
      return { kind: result.object.kind, key: result.object.key };
    case 'ignored':
      return result.ref;
    case 'invalid':
      return result.ref;
    default:
      return null;
  }
}

function refId(ref: ObjectRef): string {
  return `${ref.kind}/${ref.key}`;
}

function refLabel(ref: ObjectRef): string {
  return `${ref.kind} ${ref.key}`;
}
