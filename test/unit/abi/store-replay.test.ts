/**
 * A guest control's store operations recorded in the primary and repeated in
 * a session worker (host/abi/store-replay.ts), and their crossing between the
 * two as JSON (host/cluster/remote-store.ts's WireStoreCall).
 */
import { describe, expect, it } from "vitest";
import { ANY_VERSION, SharedResults, SharedStore } from "../../../host/abi/shared-store.js";
import { RecordingStore, ReplayingStore } from "../../../host/abi/store-replay.js";
import type { StoreCall } from "../../../host/abi/store-replay.js";
import { fromWireCall, toWireCall } from "../../../host/cluster/remote-store.js";

const BOUND = 65_536;

/** A control's run against a store: reads the list, appends to it, counts, as mod_ban's `ban` and a counter do. */
function control(store: RecordingStore | ReplayingStore, item: string): string {
  const list = store.get("mod_x.c", "list");
  const version = list?.version ?? 0;
  const written = store.set("mod_x.c", "list", `${list?.value ?? ""}${item};`, version, BOUND);
  const { value } = store.add("mod_x.c", "count", 1, BOUND);
  return `${written} ${value}`;
}

describe("RecordingStore", () => {
  it("passes every operation to its store and notes those `record` runs, with their answers", () => {
    const shared = new SharedStore();
    const store = new RecordingStore(shared);
    expect(store.set("mod_x.c", "before", "1", ANY_VERSION, BOUND)).toBe(SharedResults.OK);
    const { result, calls } = store.record(() => control(store, "a"));
    expect(result).toBe("0 1");
    expect(calls).toEqual([
      { op: "get", scope: "mod_x.c", key: "list", answer: undefined },
      { op: "set", scope: "mod_x.c", key: "list", value: "a;", cas: 0, bound: BOUND, answer: SharedResults.OK },
      { op: "add", scope: "mod_x.c", key: "count", delta: 1, bound: BOUND, answer: { result: 0, value: 1 } },
    ]);
    // Outside `record`, nothing is noted; the store has every write.
    expect(store.record(() => 0).calls).toEqual([]);
    expect(shared.get("mod_x.c", "list")?.value).toBe("a;");
    expect(shared.get("mod_x.c", "before")?.value).toBe("1");
  });

  it("stops recording when the run throws", () => {
    const store = new RecordingStore(new SharedStore());
    expect(() =>
      store.record(() => {
        store.bytes("mod_x.c");
        throw new Error("trap");
      }),
    ).toThrow("trap");
    expect(store.record(() => store.bytes("mod_x.c")).calls).toEqual([{ op: "bytes", scope: "mod_x.c", answer: 0 }]);
  });
});

describe("ReplayingStore", () => {
  /** The primary's store after its run of `control(…, "a")`, the record, and a worker's store over the same. */
  function recorded(): { shared: SharedStore; calls: readonly StoreCall[]; worker: ReplayingStore } {
    const shared = new SharedStore();
    const primary = new RecordingStore(shared);
    const { calls } = primary.record(() => control(primary, "a"));
    return { shared, calls, worker: new ReplayingStore(primary) };
  }

  it("answers the same run from the record, and changes nothing", () => {
    const { shared, calls, worker } = recorded();
    const versions = [shared.get("mod_x.c", "list")?.version, shared.get("mod_x.c", "count")?.version];
    expect(worker.replay(calls, () => control(worker, "a"))).toEqual({
      result: "0 1",
      followed: true,
      refusedWrites: 0,
    });
    expect(shared.get("mod_x.c", "list")?.value).toBe("a;");
    expect(shared.get("mod_x.c", "count")?.value).toBe("1");
    expect([shared.get("mod_x.c", "list")?.version, shared.get("mod_x.c", "count")?.version]).toEqual(versions);
  });

  it("answers a run that strays from the store, refusing its writes as CAS_MISMATCH", () => {
    const { shared, calls, worker } = recorded();
    // The first operation matches; the write of another item does not: the reference wrote first.
    expect(worker.replay(calls, () => control(worker, "b"))).toEqual({
      result: `${SharedResults.CAS_MISMATCH} NaN`,
      followed: false,
      refusedWrites: 2,
    });
    expect(shared.get("mod_x.c", "list")?.value).toBe("a;");
    expect(shared.get("mod_x.c", "count")?.value).toBe("1");
    // A run that makes fewer operations than the record did has strayed too.
    expect(worker.replay(calls, () => worker.get("mod_x.c", "list"))).toEqual({
      result: undefined,
      followed: false,
      refusedWrites: 0,
    });
    // A read off the record is the store's answer now, not the record's.
    expect(worker.replay([], () => worker.get("mod_x.c", "list")?.value).result).toBe("a;");
  });

  it("matches arguments exactly: NaN is NaN, and -0 is not 0", () => {
    const store = new SharedStore();
    const primary = new RecordingStore(store);
    const { calls } = primary.record(() => [primary.add("s", "k", NaN, BOUND), primary.set("s", "k", "v", -0, BOUND)]);
    const worker = new ReplayingStore(primary);
    expect(
      worker.replay(calls, () => [worker.add("s", "k", NaN, BOUND), worker.set("s", "k", "v", -0, BOUND)]),
    ).toEqual({
      result: [{ result: SharedResults.BAD_ARGUMENT, value: NaN }, SharedResults.OK],
      followed: true,
      refusedWrites: 0,
    });
    expect(worker.replay(calls, () => worker.add("s", "k", NaN, BOUND)).followed).toBe(false);
    const strayed = worker.replay(calls.slice(1), () => worker.set("s", "k", "v", 0, BOUND));
    expect(strayed).toEqual({ result: SharedResults.CAS_MISMATCH, followed: false, refusedWrites: 1 });
  });

  it("is the store it wraps outside `replay`", () => {
    const shared = new SharedStore();
    const worker = new ReplayingStore(shared);
    expect(worker.set("s", "k", "v", ANY_VERSION, BOUND)).toBe(SharedResults.OK);
    expect(worker.add("s", "n", 2, BOUND)).toEqual({ result: SharedResults.OK, value: 2 });
    expect(worker.delete("s", "k", ANY_VERSION)).toBe(SharedResults.OK);
    expect(worker.scope("s", BOUND).get("n")?.value).toBe("2");
    expect(worker.bytes("s")).toBe(shared.bytes("s"));
  });
});

describe("a record as it crosses to a worker", () => {
  it("comes back as recorded through JSON, numbers JSON cannot hold included", () => {
    const shared = new SharedStore();
    const primary = new RecordingStore(shared);
    const { calls } = primary.record(() => {
      primary.get("s", "absent");
      primary.set("s", "k", "v", ANY_VERSION, Infinity);
      primary.get("s", "k");
      primary.add("s", "n", -0, BOUND);
      primary.add("s", "k", 1, BOUND);
      primary.delete("s", "k", -0);
      primary.bytes("s");
    });
    const crossed: unknown = JSON.parse(JSON.stringify(calls.map(toWireCall)));
    const back = (crossed as unknown[]).map(fromWireCall);
    expect(back).toEqual(calls);
    expect(Object.is((back[3] as { delta: number }).delta, -0)).toBe(true);
    expect((back[4] as { answer: { value: number } }).answer.value).toBeNaN();
  });

  it("is refused when it is not one", () => {
    for (const bad of [
      null,
      { op: "get", key: "k" },
      { op: "set", scope: "s", key: "k", value: "v", cas: "1", bound: 1, answer: 0 },
      { op: "add", scope: "s", key: "k", delta: 1, bound: 1, answer: 0 },
      { op: "drop", scope: "s", key: "k" },
    ]) {
      expect(fromWireCall(bad)).toBeUndefined();
    }
  });
});
