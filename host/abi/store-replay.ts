/**
 * A guest control's shared-store operations, recorded where it runs first and
 * repeated where it runs again. With session workers a guest control
 * (`dsoctl ban user alice`) runs in the primary's reference host, whose answer
 * is given, and then in every worker, whose template instances must come to
 * the same state. The store is one, in the primary: had each copy written it
 * again, an `add` would count once per process, and every other copy would
 * find the reference's write already made and answer otherwise ("already
 * banned") from another state.
 *
 * So the primary records what its run did (RecordingStore) and each worker's
 * run is answered from that record (ReplayingStore): the same operations get
 * the same answers and change nothing, as if the worker were the process that
 * made them. A copy that asks for something else (its instances held other
 * state) is answered by the store from there on, for reads; a write of its own
 * is refused as CAS_MISMATCH, which is what it is: the reference, another
 * process, wrote first.
 */
import { SharedResults, scopeOf } from "./shared-store.js";
import type { SharedAddResult, SharedEntry, SharedResult, SharedScope, SharedStoreApi } from "./shared-store.js";

/**
 * One store operation as asked, its numbers as `N`: numbers here, and the
 * WireNumbers JSON can carry where it crosses between processes
 * (host/cluster/remote-store.ts).
 */
export type StoreOperation<N = number> =
  | { readonly op: "get"; readonly scope: string; readonly key: string }
  | { readonly op: "bytes"; readonly scope: string }
  | {
      readonly op: "set";
      readonly scope: string;
      readonly key: string;
      readonly value: string;
      readonly cas: N;
      readonly bound: N;
    }
  | { readonly op: "delete"; readonly scope: string; readonly key: string; readonly cas: N }
  | { readonly op: "add"; readonly scope: string; readonly key: string; readonly delta: N; readonly bound: N };

/** What each operation answers, its numbers as `N`. */
interface StoreAnswers<N> {
  readonly get: SharedEntry | undefined;
  readonly bytes: number;
  readonly set: SharedResult;
  readonly delete: SharedResult;
  readonly add: { readonly result: SharedResult; readonly value: N };
}

/** Each kind of operation in `O` with its answer (a conditional type distributes over a union). */
export type Answered<O, N> = O extends { readonly op: infer K extends keyof StoreAnswers<N> }
  ? O & { readonly answer: StoreAnswers<N>[K] }
  : never;

/** One store operation of a guest control, and what the store answered. */
export type StoreCall = Answered<StoreOperation, number>;

/** The same operation with the same arguments (Object.is, so NaN is NaN and -0 is not 0). */
function sameRequest(call: StoreCall, request: StoreOperation): boolean {
  if (call.op !== request.op) return false;
  const asked = request as Readonly<Record<string, unknown>>;
  const recorded = call as Readonly<Record<string, unknown>>;
  return Object.keys(asked).every((field) => Object.is(recorded[field], asked[field]));
}

/** The primary's store: as the one it wraps, and while `record` runs, each operation and its answer noted. */
export class RecordingStore implements SharedStoreApi {
  readonly #store: SharedStoreApi;
  #calls: StoreCall[] | undefined;

  constructor(store: SharedStoreApi) {
    this.#store = store;
  }

  /**
   * Runs `run` and returns what it returned with the operations made while it
   * ran. Only what `run` does synchronously is its own: a guest control's
   * callback runs within the action's call (module-controls.ts).
   */
  record<T>(run: () => T): { readonly result: T; readonly calls: readonly StoreCall[] } {
    const outer = this.#calls;
    const calls: StoreCall[] = [];
    this.#calls = calls;
    try {
      return { result: run(), calls };
    } finally {
      this.#calls = outer;
    }
  }

  get(scope: string, key: string): SharedEntry | undefined {
    const answer = this.#store.get(scope, key);
    this.#calls?.push({ op: "get", scope, key, answer });
    return answer;
  }

  bytes(scope: string): number {
    const answer = this.#store.bytes(scope);
    this.#calls?.push({ op: "bytes", scope, answer });
    return answer;
  }

  set(scope: string, key: string, value: string, cas: number, bound: number): SharedResult {
    const answer = this.#store.set(scope, key, value, cas, bound);
    this.#calls?.push({ op: "set", scope, key, value, cas, bound, answer });
    return answer;
  }

  delete(scope: string, key: string, cas: number): SharedResult {
    const answer = this.#store.delete(scope, key, cas);
    this.#calls?.push({ op: "delete", scope, key, cas, answer });
    return answer;
  }

  add(scope: string, key: string, delta: number, bound: number): SharedAddResult {
    const answer = this.#store.add(scope, key, delta, bound);
    this.#calls?.push({ op: "add", scope, key, delta, bound, answer });
    return answer;
  }

  scope(name: string, bound: number): SharedScope {
    return scopeOf(this, name, bound);
  }
}

/** How a run under `ReplayingStore.replay` went. */
export interface ReplayOutcome<T> {
  readonly result: T;
  /** True when the run asked for exactly the recorded operations, in order. */
  readonly followed: boolean;
  /** Writes the run made that the record did not have: refused, nothing changed. */
  readonly refusedWrites: number;
}

interface Replay {
  readonly calls: readonly StoreCall[];
  next: number;
  diverged: boolean;
  refusedWrites: number;
}

/** A session worker's store: as the one it wraps, and while `replay` runs, answered from a record. */
export class ReplayingStore implements SharedStoreApi {
  readonly #store: SharedStoreApi;
  #replay: Replay | undefined;

  constructor(store: SharedStoreApi) {
    this.#store = store;
  }

  /** Runs `run` with its operations answered from `calls` (RecordingStore.record's), and writing nothing. */
  replay<T>(calls: readonly StoreCall[], run: () => T): ReplayOutcome<T> {
    const outer = this.#replay;
    const replay: Replay = { calls, next: 0, diverged: false, refusedWrites: 0 };
    this.#replay = replay;
    try {
      const result = run();
      const followed = !replay.diverged && replay.next === calls.length;
      return { result, followed, refusedWrites: replay.refusedWrites };
    } finally {
      this.#replay = outer;
    }
  }

  get(scope: string, key: string): SharedEntry | undefined {
    const call = this.#take({ op: "get", scope, key });
    return call?.op === "get" ? call.answer : this.#store.get(scope, key);
  }

  bytes(scope: string): number {
    const call = this.#take({ op: "bytes", scope });
    return call?.op === "bytes" ? call.answer : this.#store.bytes(scope);
  }

  set(scope: string, key: string, value: string, cas: number, bound: number): SharedResult {
    const call = this.#take({ op: "set", scope, key, value, cas, bound });
    if (call?.op === "set") return call.answer;
    return this.#refused() ? SharedResults.CAS_MISMATCH : this.#store.set(scope, key, value, cas, bound);
  }

  delete(scope: string, key: string, cas: number): SharedResult {
    const call = this.#take({ op: "delete", scope, key, cas });
    if (call?.op === "delete") return call.answer;
    return this.#refused() ? SharedResults.CAS_MISMATCH : this.#store.delete(scope, key, cas);
  }

  add(scope: string, key: string, delta: number, bound: number): SharedAddResult {
    const call = this.#take({ op: "add", scope, key, delta, bound });
    if (call?.op === "add") return call.answer;
    return this.#refused()
      ? { result: SharedResults.CAS_MISMATCH, value: NaN }
      : this.#store.add(scope, key, delta, bound);
  }

  scope(name: string, bound: number): SharedScope {
    return scopeOf(this, name, bound);
  }

  /** The recorded call for `request` when replaying and still in step; the first that is not ends the matching. */
  #take(request: StoreOperation): StoreCall | undefined {
    const replay = this.#replay;
    if (replay === undefined || replay.diverged) return undefined;
    const call = replay.calls[replay.next];
    if (call !== undefined && sameRequest(call, request)) {
      replay.next += 1;
      return call;
    }
    replay.diverged = true;
    return undefined;
  }

  /** True (and counted) for a write made while replaying that the record did not have. */
  #refused(): boolean {
    if (this.#replay === undefined) return false;
    this.#replay.refusedWrites += 1;
    return true;
  }
}
