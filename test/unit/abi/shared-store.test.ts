/**
 * The shared store's pure core (host/abi/shared-store.ts): compare-and-swap
 * after proxy-wasm's shared data, counters, per-scope byte accounting and the
 * bound carved out of the memory cap (memory-cap.ts); then the pr_shared_*
 * host symbols over it, with guest strings faked by a table.
 */
import { describe, expect, it } from "vitest";
import type { GuestStrings } from "../../../host/abi/guest-memory.js";
import { HOST_SYMBOLS, SHARED_DATA_SYMBOLS } from "../../../host/abi/host-symbols.js";
import type { HostServices, ImporterState } from "../../../host/abi/host-symbols.js";
import {
  ABSENT_VERSION,
  ANY_VERSION,
  ENTRY_OVERHEAD_BYTES,
  SharedResults,
  SharedStore,
  entryBytes,
  sharedDataBytes,
} from "../../../host/abi/shared-store.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { shareMemoryCap } from "../../../host/modules/memory-cap.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { wat } from "../../helpers/wat.js";

const PAGE = 65_536;
const BIG = 1 << 30;

describe("compare-and-swap", () => {
  it("writes with any version, and gives every write a new version", () => {
    const store = new SharedStore();
    expect(store.get("mod_a.c", "k")).toBeUndefined();
    expect(store.set("mod_a.c", "k", "one", ANY_VERSION, BIG)).toBe(SharedResults.OK);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "one", version: 1 });
    expect(store.set("mod_a.c", "k", "two", ANY_VERSION, BIG)).toBe(SharedResults.OK);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "two", version: 2 });
  });

  it("fails on a stale version and succeeds on the current one", () => {
    const store = new SharedStore();
    store.set("mod_a.c", "k", "one", ANY_VERSION, BIG);
    const read = store.get("mod_a.c", "k")?.version ?? -2;
    store.set("mod_a.c", "k", "other session", read, BIG);
    expect(store.set("mod_a.c", "k", "mine", read, BIG)).toBe(SharedResults.CAS_MISMATCH);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "other session", version: 2 });
    expect(store.set("mod_a.c", "k", "mine", 2, BIG)).toBe(SharedResults.OK);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "mine", version: 3 });
  });

  it("creates with ABSENT_VERSION only while there is no entry", () => {
    const store = new SharedStore();
    expect(store.set("mod_a.c", "k", "first", ABSENT_VERSION, BIG)).toBe(SharedResults.OK);
    expect(store.set("mod_a.c", "k", "second", ABSENT_VERSION, BIG)).toBe(SharedResults.CAS_MISMATCH);
    expect(store.get("mod_a.c", "k")?.value).toBe("first");
  });

  it("never reuses a version: one read before a delete does not match the entry made after it", () => {
    const store = new SharedStore();
    store.set("mod_a.c", "k", "v", ANY_VERSION, BIG);
    expect(store.delete("mod_a.c", "k", 1)).toBe(SharedResults.OK);
    store.set("mod_a.c", "k", "v", ABSENT_VERSION, BIG);
    expect(store.get("mod_a.c", "k")?.version).toBe(2);
    expect(store.set("mod_a.c", "k", "stale", 1, BIG)).toBe(SharedResults.CAS_MISMATCH);
  });

  it("deletes on a matching version only, and says when there is nothing to delete", () => {
    const store = new SharedStore();
    expect(store.delete("mod_a.c", "k", ANY_VERSION)).toBe(SharedResults.NOT_FOUND);
    store.set("mod_a.c", "k", "v", ANY_VERSION, BIG);
    expect(store.delete("mod_a.c", "k", 7)).toBe(SharedResults.CAS_MISMATCH);
    expect(store.delete("mod_a.c", "k", ANY_VERSION)).toBe(SharedResults.OK);
    expect(store.get("mod_a.c", "k")).toBeUndefined();
  });

  it("refuses an empty key and a version that is neither -1 nor a whole number >= 0", () => {
    const store = new SharedStore();
    for (const cas of [-2, 1.5, NaN, Infinity]) {
      expect(store.set("mod_a.c", "k", "v", cas, BIG)).toBe(SharedResults.BAD_ARGUMENT);
      expect(store.delete("mod_a.c", "k", cas)).toBe(SharedResults.BAD_ARGUMENT);
    }
    expect(store.set("mod_a.c", "", "v", ANY_VERSION, BIG)).toBe(SharedResults.BAD_ARGUMENT);
    expect(store.bytes("mod_a.c")).toBe(0);
  });

  it("keeps each scope to itself", () => {
    const store = new SharedStore();
    store.set("mod_a.c", "k", "a", ANY_VERSION, BIG);
    store.set("mod_b.c", "k", "b", ANY_VERSION, BIG);
    expect(store.get("mod_a.c", "k")?.value).toBe("a");
    expect(store.get("mod_b.c", "k")?.value).toBe("b");
    expect(store.delete("mod_b.c", "k", ANY_VERSION)).toBe(SharedResults.OK);
    expect(store.get("mod_a.c", "k")?.value).toBe("a");
  });
});

describe("counters", () => {
  it("add from 0, return the new value and leave it readable as a decimal string", () => {
    const store = new SharedStore();
    expect(store.add("mod_a.c", "fails:10.0.0.1", 1, BIG)).toEqual({ result: SharedResults.OK, value: 1 });
    expect(store.add("mod_a.c", "fails:10.0.0.1", 2, BIG)).toEqual({ result: SharedResults.OK, value: 3 });
    expect(store.add("mod_a.c", "fails:10.0.0.1", -4.5, BIG)).toEqual({ result: SharedResults.OK, value: -1.5 });
    expect(store.get("mod_a.c", "fails:10.0.0.1")).toEqual({ value: "-1.5", version: 3 });
  });

  it("refuse a value that is not a number, and a delta or result that is not finite, changing nothing", () => {
    const store = new SharedStore();
    for (const value of ["abc", "", " 1", "0x10", "1e999"]) {
      store.set("mod_a.c", "k", value, ANY_VERSION, BIG);
      expect(store.add("mod_a.c", "k", 1, BIG)).toEqual({ result: SharedResults.PARSE_FAILURE, value: NaN });
      expect(store.get("mod_a.c", "k")?.value).toBe(value);
    }
    expect(store.add("mod_a.c", "n", NaN, BIG)).toEqual({ result: SharedResults.BAD_ARGUMENT, value: NaN });
    store.set("mod_a.c", "max", String(Number.MAX_VALUE), ANY_VERSION, BIG);
    expect(store.add("mod_a.c", "max", Number.MAX_VALUE, BIG)).toEqual({
      result: SharedResults.BAD_ARGUMENT,
      value: NaN,
    });
    expect(store.add("mod_a.c", "", 1, BIG).result).toBe(SharedResults.BAD_ARGUMENT);
    expect(store.get("mod_a.c", "n")).toBeUndefined();
  });
});

describe("bytes and the bound", () => {
  it("count each entry as its key and value at two bytes a character, plus a fixed overhead", () => {
    expect(ENTRY_OVERHEAD_BYTES).toBe(64);
    expect(entryBytes("key", "value")).toBe(64 + 16);
    const store = new SharedStore();
    store.set("mod_a.c", "key", "value", ANY_VERSION, BIG);
    store.set("mod_a.c", "k2", "", ANY_VERSION, BIG);
    expect(store.bytes("mod_a.c")).toBe(80 + 68);
    store.set("mod_a.c", "key", "v", ANY_VERSION, BIG);
    expect(store.bytes("mod_a.c")).toBe(72 + 68);
    store.delete("mod_a.c", "key", ANY_VERSION);
    store.delete("mod_a.c", "k2", ANY_VERSION);
    expect(store.bytes("mod_a.c")).toBe(0);
  });

  it("allow a write up to the bound exactly and refuse one more character, leaving the entry as it was", () => {
    const store = new SharedStore();
    const bound = entryBytes("k", "x".repeat(100));
    expect(store.set("mod_a.c", "k", "x".repeat(100), ANY_VERSION, bound)).toBe(SharedResults.OK);
    expect(store.set("mod_a.c", "k", "y".repeat(101), ANY_VERSION, bound)).toBe(SharedResults.TOO_LARGE);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "x".repeat(100), version: 1 });
    expect(store.set("mod_a.c", "other", "", ANY_VERSION, bound)).toBe(SharedResults.TOO_LARGE);
    expect(store.add("mod_a.c", "n", 1, bound)).toEqual({ result: SharedResults.TOO_LARGE, value: NaN });
    expect(store.bytes("mod_a.c")).toBe(bound);
  });

  it("let a scope left over a smaller bound be rewritten at the same size and emptied, but not grown", () => {
    const store = new SharedStore();
    store.set("mod_a.c", "k", "x".repeat(100), ANY_VERSION, BIG);
    expect(store.set("mod_a.c", "k", "y".repeat(100), ANY_VERSION, 100)).toBe(SharedResults.OK);
    expect(store.set("mod_a.c", "k", "y".repeat(101), ANY_VERSION, 100)).toBe(SharedResults.TOO_LARGE);
    expect(store.set("mod_a.c", "k", "short", ANY_VERSION, 100)).toBe(SharedResults.OK);
    expect(store.delete("mod_a.c", "k", ANY_VERSION)).toBe(SharedResults.OK);
  });

  it("bound each scope by its own", () => {
    const store = new SharedStore();
    const bound = entryBytes("k", "v");
    expect(store.scope("mod_a.c", bound).set("k", "v", ANY_VERSION)).toBe(SharedResults.OK);
    expect(store.scope("mod_b.c", bound).set("k", "v", ANY_VERSION)).toBe(SharedResults.OK);
    expect(store.scope("mod_a.c", bound).set("k2", "v", ANY_VERSION)).toBe(SharedResults.TOO_LARGE);
  });

  it("is a sixteenth of the memory cap in whole pages, at least one", () => {
    expect(sharedDataBytes(256)).toBe(16 * PAGE);
    expect(sharedDataBytes(40)).toBe(2 * PAGE);
    expect(sharedDataBytes(15)).toBe(PAGE);
    expect(sharedDataBytes(1)).toBe(PAGE);
  });
});

describe("the bound counts against the memory cap", () => {
  const importing = (symbol: string, minPages: number): Promise<Uint8Array> =>
    wat(`(module
      (import "env" "memory" (memory ${minPages}))
      (import "env" "${symbol}" (func (param i32) (result f64))))`);

  it("takes the bound off the memory of a unit that imports a pr_shared_* symbol", async () => {
    const shape = readModuleShape(await importing("pr_shared_version", 1));
    expect(shareMemoryCap("mod_x.c", shape, 256)).toEqual({
      tableBytes: 0,
      sharedDataBytes: 16 * PAGE,
      memoryPages: 240,
    });
  });

  it("leaves the cap of a unit that does not import the store as it was", async () => {
    const shape = readModuleShape(await importing("pr_time_now_is_not_shared", 1));
    expect(shareMemoryCap("mod_x.c", shape, 256)).toEqual({ tableBytes: 0, memoryPages: 256 });
  });

  it("refuses a memory that needs what the bound took, saying so", async () => {
    const shape = readModuleShape(await importing("pr_shared_version", 16));
    expect(() => shareMemoryCap("mod_x.c", shape, 16)).toThrow(
      "mod_x.c: memory needs 16 pages, over the 15 pages its cap of 16 pages leaves beside its shared data (65536 bytes)",
    );
  });

  it("names every symbol of the store", () => {
    expect([...SHARED_DATA_SYMBOLS]).toEqual([
      "pr_shared_get",
      "pr_shared_version",
      "pr_shared_set",
      "pr_shared_delete",
      "pr_shared_add",
    ]);
  });
});

describe("the pr_shared_* host symbols", () => {
  /** Guest strings as a table: a pointer is an index; a created string gets the next one. */
  function importer(name: string): { state: ImporterState; ptr(value: string): number; text(ptr: number): string } {
    const table: string[] = [""];
    const strings: GuestStrings = {
      read: (ptr) => {
        const value = table[ptr];
        if (value === undefined) throw new Error(`no string at ${ptr}`);
        return value;
      },
      create: (value) => table.push(value) - 1,
      release: () => {},
    };
    return {
      state: { name, features: [], help: [], strings },
      ptr: (value) => strings.create(value),
      text: (ptr) => strings.read(ptr),
    };
  }

  /** The pr_shared_* symbols take and return numbers only (string pointers are numbers too). */
  type NumberFunction = (...args: number[]) => number;

  function bind(symbol: string, state: ImporterState, services: HostServices): NumberFunction {
    const hostSymbol = HOST_SYMBOLS.get(symbol);
    if (hostSymbol === undefined) throw new Error(`no host symbol ${symbol}`);
    return hostSymbol.bind(state, services) as NumberFunction;
  }

  const base: HostServices = { log: () => {}, trace: () => {}, activeCommand: () => undefined };

  it("reach the caller's own scope of the store, with the bound the host gives it", () => {
    const store = new SharedStore();
    const asked: string[] = [];
    const services: HostServices = {
      ...base,
      sharedData: (name) => {
        asked.push(name);
        return store.scope(name, entryBytes("k", "12345"));
      },
    };
    const a = importer("mod_a.c");
    const set = bind("pr_shared_set", a.state, services);
    const get = bind("pr_shared_get", a.state, services);
    const version = bind("pr_shared_version", a.state, services);
    const del = bind("pr_shared_delete", a.state, services);
    const add = bind("pr_shared_add", a.state, services);

    expect(a.text(get(a.ptr("k")))).toBe("");
    expect(version(a.ptr("k"))).toBe(0);
    expect(set(a.ptr("k"), a.ptr("hello"), ABSENT_VERSION)).toBe(SharedResults.OK);
    expect(a.text(get(a.ptr("k")))).toBe("hello");
    expect(version(a.ptr("k"))).toBe(1);
    expect(set(a.ptr("k"), a.ptr("stale"), 0)).toBe(SharedResults.CAS_MISMATCH);
    expect(set(a.ptr("k"), a.ptr("123456"), 1)).toBe(SharedResults.TOO_LARGE);
    expect(store.get("mod_a.c", "k")).toEqual({ value: "hello", version: 1 });
    expect(add(a.ptr("k"), 1)).toBeNaN();
    expect(del(a.ptr("k"), 1)).toBe(SharedResults.OK);
    expect(add(a.ptr("k"), 2)).toBe(2);
    expect(add(a.ptr("k"), 3)).toBe(5);
    expect(store.get("mod_b.c", "k")).toBeUndefined();
    expect(new Set(asked)).toEqual(new Set(["mod_a.c"]));
  });

  it("trap in a host embedded without a store", () => {
    const a = importer("mod_a.c");
    const get = bind("pr_shared_get", a.state, base);
    const error = (() => {
      try {
        get(a.ptr("k"));
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(DsoError);
    expect(error).toMatchObject({
      code: ErrorCodes.GUEST_TRAP,
      message: "'pr_shared_get' called in a host without a shared store",
    });
  });
});
