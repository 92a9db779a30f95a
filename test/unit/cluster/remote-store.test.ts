/**
 * The worker's store (host/cluster/remote-store.ts) against the local one:
 * the same sequence of operations on a SharedStore, and on a RemoteSharedStore
 * whose calls cross as frames to the handlers over a second SharedStore, gives
 * the same result at every step. The same sequence through a real child
 * process and socketpair is in test/integration/cluster-transport.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ANY_VERSION, SharedResults, SharedStore } from "../../../host/abi/shared-store.js";
import { RemoteSharedStore, STORE_CALL, storeHandlers } from "../../../host/cluster/remote-store.js";
import { FrameDecoder, encodeFrame } from "../../../host/cluster/sync-channel.js";
import { STORE_SEQUENCE, applyOp } from "../../fixtures/cluster/store-sequence.js";

/** What crosses the socketpair: a frame each way, decoded as the other side does. */
function crossed(value: unknown): unknown {
  const [payload] = new FrameDecoder().push(encodeFrame(value));
  return payload === undefined ? undefined : (JSON.parse(payload.toString("utf8")) as unknown);
}

/** A channel answered in this thread by storeHandlers over `store`; `calls` counts the round trips. */
function loopback(store: SharedStore): { call(type: string, body: unknown): unknown; calls: string[] } {
  const handlers = storeHandlers(store);
  const calls: string[] = [];
  return {
    calls,
    call(type, body) {
      calls.push(type);
      const handler = handlers[type];
      if (handler === undefined) throw new Error(`no handler for ${type}`);
      const reply = crossed({ ok: true, value: handler(crossed(body) as never) }) as { value?: unknown };
      return reply.value;
    },
  };
}

describe("RemoteSharedStore", () => {
  it("gives the local store's result for every operation of the sequence", () => {
    const local = new SharedStore();
    const remote = new RemoteSharedStore(loopback(new SharedStore()));
    const results = STORE_SEQUENCE.map((op) => [op.slice(0, 3).join(" "), applyOp(local, op)]);
    expect(STORE_SEQUENCE.map((op) => [op.slice(0, 3).join(" "), applyOp(remote, op)])).toEqual(results);
    // The sequence reaches every result the store has.
    const codes = new Set(results.flatMap(([, r]) => [r, (r as { result?: unknown } | undefined)?.result]));
    expect(Object.values(SharedResults).filter((code) => !codes.has(code))).toEqual([]);
  });

  it("makes one round trip per operation, an add included", () => {
    const channel = loopback(new SharedStore());
    const remote = new RemoteSharedStore(channel);
    expect(remote.add("mod_a.c", "n", 2, 1000)).toEqual({ result: SharedResults.OK, value: 2 });
    expect(remote.scope("mod_a.c", 1000).add("n", -0.5)).toEqual({ result: SharedResults.OK, value: 1.5 });
    expect(remote.set("mod_a.c", "k", "v", ANY_VERSION, 1000)).toBe(SharedResults.OK);
    expect(channel.calls).toEqual([STORE_CALL, STORE_CALL, STORE_CALL]);
  });

  it("is served by one handler that refuses an operation it does not know", () => {
    const handlers = storeHandlers(new SharedStore());
    expect(Object.keys(handlers)).toEqual(["store"]);
    expect(() => handlers.store?.({ op: "clear", scope: "mod_a.c" } as never)).toThrow(
      'unknown store operation "clear"',
    );
  });
});
