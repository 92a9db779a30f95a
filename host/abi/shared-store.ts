/**
 * State shared on purpose: a key-value store with compare-and-swap, after
 * proxy-wasm's proxy_get_shared_data/proxy_set_shared_data, and counters with
 * an atomic add, for what proftpd keeps in shared memory across its forked
 * sessions (mod_ban's BanTable, the scoreboard).
 *
 * The store belongs to the daemon's ModuleHost, not to any instance: a scope is
 * keyed by unit name, so it survives the module's fault resets and an rmmod
 * followed by insmod, as mod_ban's table survives its module's sessions. Each
 * unit sees only its own scope.
 *
 * Versions (proxy-wasm's `cas`) come from one counter for the whole store and
 * are never reused, so a version read before a delete never matches the entry
 * made after it (no ABA). Host calls run one at a time on the daemon's thread,
 * so every operation here is atomic as seen by every session.
 *
 * Pure: values in, values out; the host symbols (host-symbols.ts) are its shell.
 */

/**
 * What a store operation returns. The numbers are proxy-wasm's WasmResult
 * where it has one (Ok, NotFound, BadArgument, ParseFailure, CasMismatch);
 * TOO_LARGE is past its last (Unimplemented = 12). The SDK's SHARED_* constants
 * (guest-modules/sdk/constants.ts) are these; test/unit/abi/sdk-constants.test.ts keeps them equal.
 */
export const SharedResults = {
  OK: 0,
  /** No entry under the key (a delete). */
  NOT_FOUND: 1,
  /** An empty key, or a version or delta that is not a finite number of the right kind. */
  BAD_ARGUMENT: 2,
  /** An add to an entry whose value is not a number. */
  PARSE_FAILURE: 4,
  /** The entry's version is not the one given: another session wrote it first. */
  CAS_MISMATCH: 8,
  /** The write would take the scope past its bound; nothing changed. */
  TOO_LARGE: 13,
} as const;

export type SharedResult = (typeof SharedResults)[keyof typeof SharedResults];

/** The `cas` that writes whatever the entry's version (proxy-wasm's cas 0). */
export const ANY_VERSION = -1;
/** The `cas` that writes only when there is no entry yet: 0 is the version of an absent key. */
export const ABSENT_VERSION = 0;

/**
 * What one entry is counted as: its key and value at two bytes a character
 * (V8's representation of a string that is not Latin-1; no more than it can
 * take), plus a fixed cost for the map entry, the version and the strings'
 * headers, so a million empty values are not free.
 */
export const ENTRY_OVERHEAD_BYTES = 64;

export function entryBytes(key: string, value: string): number {
  return ENTRY_OVERHEAD_BYTES + 2 * (key.length + value.length);
}

const PAGE_BYTES = 65_536;

/**
 * The bound of a unit's scope, carved out of its memory cap (ModuleMemoryLimit)
 * as its tables are (memory-cap.ts): a sixteenth of the cap, in whole pages,
 * at least one. A unit that imports the store gets that much less linear
 * memory, so its memory, its tables and its shared data together stay within
 * the cap: 1 MiB of a default 16 MiB cap.
 */
export function sharedDataBytes(capPages: number): number {
  return Math.max(1, Math.floor(capPages / 16)) * PAGE_BYTES;
}

export interface SharedEntry {
  readonly value: string;
  readonly version: number;
}

export interface SharedAddResult {
  readonly result: SharedResult;
  /** The counter's value after the add; NaN when the add was refused. */
  readonly value: number;
}

/** One unit's view of the store, with its bound. */
export interface SharedScope {
  get(key: string): SharedEntry | undefined;
  set(key: string, value: string, cas: number): SharedResult;
  delete(key: string, cas: number): SharedResult;
  add(key: string, delta: number): SharedAddResult;
}

interface Scope {
  readonly entries: Map<string, SharedEntry>;
  bytes: number;
}

function validCas(cas: number): boolean {
  return cas === ANY_VERSION || (Number.isSafeInteger(cas) && cas >= 0);
}

function matches(entry: SharedEntry | undefined, cas: number): boolean {
  if (cas === ANY_VERSION) return true;
  return (entry?.version ?? ABSENT_VERSION) === cas;
}

/**
 * The store as the host uses it: the daemon's own SharedStore, or a session
 * worker's view of the primary's (host/cluster/remote-store.ts), which must
 * give the same results, versions and bounds for every operation.
 */
export interface SharedStoreApi {
  get(scope: string, key: string): SharedEntry | undefined;
  bytes(scope: string): number;
  set(scope: string, key: string, value: string, cas: number, bound: number): SharedResult;
  delete(scope: string, key: string, cas: number): SharedResult;
  add(scope: string, key: string, delta: number, bound: number): SharedAddResult;
  scope(name: string, bound: number): SharedScope;
}

/** `name`'s view of `store`, with the bound its unit's cap gives it (the same for every SharedStoreApi). */
export function scopeOf(store: SharedStoreApi, name: string, bound: number): SharedScope {
  return {
    get: (key) => store.get(name, key),
    set: (key, value, cas) => store.set(name, key, value, cas, bound),
    delete: (key, cas) => store.delete(name, key, cas),
    add: (key, delta) => store.add(name, key, delta, bound),
  };
}

export class SharedStore implements SharedStoreApi {
  readonly #scopes = new Map<string, Scope>();
  #lastVersion = 0;

  get(scope: string, key: string): SharedEntry | undefined {
    return this.#scopes.get(scope)?.entries.get(key);
  }

  /** The bytes a scope holds (entryBytes of each entry). */
  bytes(scope: string): number {
    return this.#scopes.get(scope)?.bytes ?? 0;
  }

  /**
   * Writes `value` under `key` when `cas` matches (ANY_VERSION always does,
   * ABSENT_VERSION only while there is no entry, any other number the entry's
   * version). A write that would take the scope past `bound` is refused, unless
   * it does not grow the scope: a scope left over a smaller bound (the module
   * reloaded with a smaller cap) can still be rewritten and emptied.
   */
  set(scope: string, key: string, value: string, cas: number, bound: number): SharedResult {
    if (key === "" || !validCas(cas)) return SharedResults.BAD_ARGUMENT;
    const current = this.#scopes.get(scope);
    const entry = current?.entries.get(key);
    if (!matches(entry, cas)) return SharedResults.CAS_MISMATCH;
    const before = current?.bytes ?? 0;
    const after = before - (entry === undefined ? 0 : entryBytes(key, entry.value)) + entryBytes(key, value);
    if (after > bound && after > before) return SharedResults.TOO_LARGE;
    const target = current ?? this.#scope(scope);
    target.entries.set(key, { value, version: ++this.#lastVersion });
    target.bytes = after;
    return SharedResults.OK;
  }

  /** Removes `key` when `cas` matches its version (ANY_VERSION always does). */
  delete(scope: string, key: string, cas: number): SharedResult {
    if (key === "" || !validCas(cas)) return SharedResults.BAD_ARGUMENT;
    const current = this.#scopes.get(scope);
    const entry = current?.entries.get(key);
    if (current === undefined || entry === undefined) return SharedResults.NOT_FOUND;
    if (!matches(entry, cas)) return SharedResults.CAS_MISMATCH;
    current.entries.delete(key);
    current.bytes -= entryBytes(key, entry.value);
    if (current.entries.size === 0) this.#scopes.delete(scope);
    return SharedResults.OK;
  }

  /**
   * Adds `delta` to the counter under `key` (an absent key counts from 0) and
   * returns its new value; the entry's value is the number's decimal string, so
   * `get` reads it too. Refused when the value there is not a number, or when
   * a longer number would take the scope past `bound`.
   */
  add(scope: string, key: string, delta: number, bound: number): SharedAddResult {
    if (key === "" || !Number.isFinite(delta)) return { result: SharedResults.BAD_ARGUMENT, value: NaN };
    const entry = this.get(scope, key);
    const base = entry === undefined ? 0 : parseNumber(entry.value);
    if (base === undefined) return { result: SharedResults.PARSE_FAILURE, value: NaN };
    const value = base + delta;
    if (!Number.isFinite(value)) return { result: SharedResults.BAD_ARGUMENT, value: NaN };
    const result = this.set(scope, key, String(value), ANY_VERSION, bound);
    return { result, value: result === SharedResults.OK ? value : NaN };
  }

  /** `scope`'s view, with the bound its unit's cap gives it. */
  scope(name: string, bound: number): SharedScope {
    return scopeOf(this, name, bound);
  }

  #scope(name: string): Scope {
    const scope: Scope = { entries: new Map(), bytes: 0 };
    this.#scopes.set(name, scope);
    return scope;
  }
}

/** A value `add` accepts: a finite decimal number as String(number) writes it, nothing else (no "", no " 1", no "0x10"). */
function parseNumber(value: string): number | undefined {
  if (!/^-?(\d+(\.\d+)?)(e[+-]\d+)?$/.test(value)) return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}
