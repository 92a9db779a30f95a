/**
 * The shared store seen from a session worker. The store itself stays in the
 * primary (one store for every worker, as proftpd's sessions share one
 * scoreboard and mod_ban's one table); each operation is one synchronous call
 * over the worker's SyncChannel (type "store"), so versions, CAS and the scope
 * bounds are the primary's and every result is exactly the local store's.
 *
 * A call costs 7–9 µs idle, up to ~75 µs on busy cores (spike 15 §3), so an
 * operation is one round trip: `add` is not a `get` then a `set`.
 */
import { scopeOf } from "../abi/shared-store.js";
import type { SharedAddResult, SharedEntry, SharedResult, SharedScope, SharedStoreApi } from "../abi/shared-store.js";
import type { Answered, StoreCall, StoreOperation } from "../abi/store-replay.js";
import type { BodyHandler } from "./ipc.js";
import type { SyncChannel } from "./sync-channel.js";
import { fromWireNumber, isWireNumber, toWireNumber } from "./wire-number.js";
import type { WireNumber } from "./wire-number.js";

/** The sync channel's request type for the store. */
export const STORE_CALL = "store";

/** One store operation as it crosses the channel. */
export type StoreRequest = StoreOperation<WireNumber>;

interface WireAddResult {
  readonly result: SharedResult;
  readonly value: WireNumber;
}

/** The worker's store: every operation answered by the primary's. */
export class RemoteSharedStore implements SharedStoreApi {
  readonly #channel: Pick<SyncChannel, "call">;

  constructor(channel: Pick<SyncChannel, "call">) {
    this.#channel = channel;
  }

  get(scope: string, key: string): SharedEntry | undefined {
    return this.#call({ op: "get", scope, key }) as SharedEntry | undefined;
  }

  bytes(scope: string): number {
    return this.#call({ op: "bytes", scope }) as number;
  }

  set(scope: string, key: string, value: string, cas: number, bound: number): SharedResult {
    return this.#call({
      op: "set",
      scope,
      key,
      value,
      cas: toWireNumber(cas),
      bound: toWireNumber(bound),
    }) as SharedResult;
  }

  delete(scope: string, key: string, cas: number): SharedResult {
    return this.#call({ op: "delete", scope, key, cas: toWireNumber(cas) }) as SharedResult;
  }

  add(scope: string, key: string, delta: number, bound: number): SharedAddResult {
    const reply = this.#call({
      op: "add",
      scope,
      key,
      delta: toWireNumber(delta),
      bound: toWireNumber(bound),
    }) as WireAddResult;
    return { result: reply.result, value: fromWireNumber(reply.value) };
  }

  scope(name: string, bound: number): SharedScope {
    return scopeOf(this, name, bound);
  }

  #call(request: StoreRequest): unknown {
    return this.#channel.call(STORE_CALL, request);
  }
}

/**
 * A recorded operation as it crosses to a worker (in a guest control's
 * request): its numbers as WireNumbers. JSON has no undefined: a `get` of an
 * absent entry crosses without its answer.
 */
export type WireStoreCall = Answered<StoreRequest, WireNumber>;

export function toWireCall(call: StoreCall): WireStoreCall {
  switch (call.op) {
    case "get":
    case "bytes":
      return call;
    case "set":
      return { ...call, cas: toWireNumber(call.cas), bound: toWireNumber(call.bound) };
    case "delete":
      return { ...call, cas: toWireNumber(call.cas) };
    case "add":
      return {
        ...call,
        delta: toWireNumber(call.delta),
        bound: toWireNumber(call.bound),
        answer: { result: call.answer.result, value: toWireNumber(call.answer.value) },
      };
  }
}

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null;
}

/** A store result code as the local store returns them. */
function isResult(value: unknown): value is SharedResult {
  return typeof value === "number" && Number.isInteger(value);
}

/** One crossed call back as the primary recorded it; undefined when it is not one (a bug of ours). */
export function fromWireCall(value: unknown): StoreCall | undefined {
  if (!isRecord(value) || typeof value.scope !== "string") return undefined;
  const { op, scope, key, answer } = value;
  if (op === "bytes") return typeof answer === "number" ? { op, scope, answer } : undefined;
  if (typeof key !== "string") return undefined;
  switch (op) {
    case "get":
      if (answer === undefined) return { op, scope, key, answer };
      if (!isRecord(answer) || typeof answer.value !== "string" || typeof answer.version !== "number") return undefined;
      return { op, scope, key, answer: { value: answer.value, version: answer.version } };
    case "set": {
      const { value: written, cas, bound } = value;
      if (typeof written !== "string" || !isWireNumber(cas) || !isWireNumber(bound) || !isResult(answer))
        return undefined;
      return { op, scope, key, value: written, cas: fromWireNumber(cas), bound: fromWireNumber(bound), answer };
    }
    case "delete": {
      const { cas } = value;
      if (!isWireNumber(cas) || !isResult(answer)) return undefined;
      return { op, scope, key, cas: fromWireNumber(cas), answer };
    }
    case "add": {
      const { delta, bound } = value;
      if (!isWireNumber(delta) || !isWireNumber(bound) || !isRecord(answer)) return undefined;
      if (!isResult(answer.result) || !isWireNumber(answer.value)) return undefined;
      return {
        op,
        scope,
        key,
        delta: fromWireNumber(delta),
        bound: fromWireNumber(bound),
        answer: { result: answer.result, value: fromWireNumber(answer.value) },
      };
    }
    default:
      return undefined;
  }
}

/** The primary's side, for serveSyncChannel: each worker's operations applied to the one store. */
export function storeHandlers(store: SharedStoreApi): Readonly<Record<string, BodyHandler<unknown>>> {
  return {
    [STORE_CALL]: (request: StoreRequest): unknown => {
      switch (request.op) {
        case "get":
          return store.get(request.scope, request.key);
        case "bytes":
          return store.bytes(request.scope);
        case "set":
          return store.set(
            request.scope,
            request.key,
            request.value,
            fromWireNumber(request.cas),
            fromWireNumber(request.bound),
          );
        case "delete":
          return store.delete(request.scope, request.key, fromWireNumber(request.cas));
        case "add": {
          const { result, value } = store.add(
            request.scope,
            request.key,
            fromWireNumber(request.delta),
            fromWireNumber(request.bound),
          );
          return { result, value: toWireNumber(value) } satisfies WireAddResult;
        }
        default:
          throw new Error(`unknown store operation ${JSON.stringify((request as { op?: unknown }).op)}`);
      }
    },
  };
}
