/**
 * snapshot.ts on instances made here from inline WAT, rewritten as the module
 * compiler rewrites binaries (instance-state-exports.ts): what a snapshot
 * holds, exactly, and that restoring it into a fresh instance of the same
 * compiled module makes that instance a copy of the snapshotted one.
 */
import { describe, expect, it } from "vitest";
import { dataSegmentsEnd, restoreSnapshot, stateMemory, takeSnapshot } from "../../../host/modules/snapshot.js";
import type { InstanceSnapshot } from "../../../host/modules/snapshot.js";
import type { InstanceStateLayout } from "../../../host/modules/types.js";
import { exposeInstanceState } from "../../../host/wasm/instance-state-exports.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { wat } from "../../helpers/wat.js";

const PAGE = 65_536;

interface Prepared {
  readonly compiled: WebAssembly.Module;
  readonly layout: InstanceStateLayout;
  /** Where the binary's data segments end, as the host computes it. */
  readonly dataEnd: number;
}

/** The binary as the module compiler prepares it: rewritten, compiled, its layout and data span read. */
async function prepare(text: string): Promise<Prepared> {
  const bytes = await wat(text);
  const { bytes: rewritten, ...layout } = exposeInstanceState(bytes);
  const shape = readModuleShape(bytes);
  return {
    compiled: new WebAssembly.Module(rewritten),
    layout,
    dataEnd: dataSegmentsEnd(shape.staticData, shape.dataBytes),
  };
}

interface Live {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory | undefined;
  call(name: string, ...args: number[]): number;
}

function live(prepared: Prepared, imported?: WebAssembly.Memory): Live {
  const imports = imported === undefined ? {} : { env: { memory: imported } };
  const instance = new WebAssembly.Instance(prepared.compiled, imports);
  return {
    instance,
    memory: stateMemory(instance, imported, prepared.layout),
    call: (name, ...args) => (instance.exports[name] as (...a: number[]) => number)(...args),
  };
}

function snapshot(prepared: Prepared, from: Live): InstanceSnapshot {
  return takeSnapshot(from.instance, from.memory, prepared.layout, prepared.dataEnd);
}

function restore(prepared: Prepared, into: Live, state: InstanceSnapshot): void {
  restoreSnapshot(into.instance, into.memory, prepared.layout, state);
}

function bytesOf(memory: WebAssembly.Memory | undefined): Uint8Array {
  if (memory === undefined) throw new Error("no memory");
  return new Uint8Array(memory.buffer);
}

/** Four mutable globals, one of each numeric type, set from arguments; and an immutable one that is never copied. */
const GLOBALS = `
  (global $i (mut i32) (i32.const 1))
  (global $l (mut i64) (i64.const 2))
  (global $f (mut f32) (f32.const 3))
  (global $d (mut f64) (f64.const 4))
  (global (export "constant") i32 (i32.const 77))
  (func (export "set") (param i32 i64 f32 f64)
    (global.set $i (local.get 0)) (global.set $l (local.get 1))
    (global.set $f (local.get 2)) (global.set $d (local.get 3)))
  (func (export "get_i") (result i32) (global.get $i))
  (func (export "get_l") (result i64) (global.get $l))
  (func (export "get_f") (result f32) (global.get $f))
  (func (export "get_d") (result f64) (global.get $d))`;

/** Bytes a snapshot copies into each instance made from it. */
function copiedBytes(state: InstanceSnapshot): number {
  return state.chunks.reduce((bytes, chunk) => bytes + chunk.bytes.byteLength, 0);
}

/** A snapshot's copied runs as [offset, length] pairs. */
function runs(state: InstanceSnapshot): Array<[number, number]> {
  return state.chunks.map((chunk) => [chunk.offset, chunk.bytes.byteLength]);
}

describe("takeSnapshot / restoreSnapshot", () => {
  it("copies i32, i64, f32 and f64 globals and the memory into a fresh instance", async () => {
    const prepared = await prepare(`(module (memory 1 4) ${GLOBALS}
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`);
    expect(prepared.layout.globals).toEqual(["__dso_global_0", "__dso_global_1", "__dso_global_2", "__dso_global_3"]);
    const template = live(prepared);
    (template.instance.exports.set as (i: number, l: bigint, f: number, d: number) => void)(-7, -(2n ** 40n), 1.5, 0.1);
    template.call("poke", 0, 0xaa);
    template.call("poke", 40_000, 0x5b);
    const state = snapshot(prepared, template);
    expect(state.globals).toEqual([-7, -(2n ** 40n), 1.5, 0.1]);
    expect(state.pages).toBe(1);
    // Blocks 0 and 9 (40,000 / 4,096) hold a byte; the seven all-zero blocks between are never touched.
    expect(runs(state)).toEqual([
      [0, 4096],
      [9 * 4096, 4096],
    ]);

    const copy = live(prepared);
    expect(copy.call("get_i")).toBe(1);
    restore(prepared, copy, state);
    expect(copy.call("get_i")).toBe(-7);
    expect((copy.instance.exports.get_l as () => bigint)()).toBe(-(2n ** 40n));
    expect(copy.call("get_f")).toBe(1.5);
    expect(copy.call("get_d")).toBe(0.1);
    expect(bytesOf(copy.memory)).toEqual(bytesOf(template.memory));
    // The copy is its own: changing it leaves the template as it was.
    copy.call("poke", 0, 1);
    expect(bytesOf(template.memory)[0]).toBe(0xaa);
  });

  it("takes globals only from an instance without memory", async () => {
    const prepared = await prepare(`(module ${GLOBALS})`);
    expect(prepared.layout.memory).toBeUndefined();
    const template = live(prepared);
    expect(template.memory).toBeUndefined();
    (template.instance.exports.set as (i: number, l: bigint, f: number, d: number) => void)(9, 8n, 7, 6);
    const state = snapshot(prepared, template);
    expect(state).toEqual({ pages: 0, chunks: [], globals: [9, 8n, 7, 6] });
    const copy = live(prepared);
    restore(prepared, copy, state);
    expect([copy.call("get_i"), copy.call("get_f"), copy.call("get_d")]).toEqual([9, 7, 6]);
  });

  it("copies the 4 KiB blocks that hold a byte that is not zero, wherever it lies in its word", async () => {
    const prepared = await prepare(`(module (memory 2 2)
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`);
    const copied: Array<Array<[number, number]>> = [];
    for (const at of [0, 7, 8, 4095, 4096, 65_535, 65_536, 2 * PAGE - 1]) {
      const template = live(prepared);
      template.call("poke", at, 1);
      copied.push(runs(snapshot(prepared, template)));
    }
    expect(copied).toEqual([
      [[0, 4096]],
      [[0, 4096]],
      [[0, 4096]],
      [[0, 4096]],
      [[4096, 4096]],
      [[PAGE - 4096, 4096]],
      [[PAGE, 4096]],
      [[2 * PAGE - 4096, 4096]],
    ]);
    expect(runs(snapshot(prepared, live(prepared)))).toEqual([]);
    // Adjacent blocks are one run, and the copy restores every byte.
    const template = live(prepared);
    for (const at of [5000, 9000, 13_000, 30_000]) template.call("poke", at, 3);
    const state = snapshot(prepared, template);
    expect(runs(state)).toEqual([
      [4096, 3 * 4096],
      [7 * 4096, 4096],
    ]);
    expect(copiedBytes(state)).toBe(4 * 4096);
    const copy = live(prepared);
    restore(prepared, copy, state);
    expect(bytesOf(copy.memory)).toEqual(bytesOf(template.memory));
  });

  it("copies to the end of the data segments, also where the template zeroed them, restored zeroed", async () => {
    const prepared = await prepare(`(module (memory 1 1)
      (data (i32.const 16) "head")
      (data (i32.const 3000) "tail")
      (func (export "zero_tail") (memory.fill (i32.const 3000) (i32.const 0) (i32.const 4)))
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`);
    expect(prepared.dataEnd).toBe(3004);
    const template = live(prepared);
    template.call("zero_tail");
    template.call("poke", 100, 0x42);
    const state = snapshot(prepared, template);
    // The last byte that is not zero is at 100: the copy still covers the segment that instantiation writes again.
    expect(runs(state)).toEqual([[0, 4096]]);
    const copy = live(prepared);
    expect(new TextDecoder().decode(bytesOf(copy.memory).subarray(3000, 3004))).toBe("tail");
    restore(prepared, copy, state);
    expect(bytesOf(copy.memory).subarray(3000, 3004)).toEqual(new Uint8Array(4));
    expect(bytesOf(copy.memory)).toEqual(bytesOf(template.memory));
  });

  it("copies the whole memory when a data segment is not located before run time", async () => {
    const passive = await prepare(`(module (memory 1 1) (data "late")
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`);
    expect(passive.dataEnd).toBe(Number.POSITIVE_INFINITY);
    const template = live(passive);
    template.call("poke", 10, 1);
    expect(runs(snapshot(passive, template))).toEqual([[0, PAGE]]);

    const placed = await prepare(`(module (import "env" "base" (global $base i32)) (memory 1 1)
      (data (i32.const 0) "fixed") (data (global.get $base) "moved"))`);
    expect(placed.dataEnd).toBe(Number.POSITIVE_INFINITY);
  });

  it("restores a memory that grew with its grown size", async () => {
    const prepared = await prepare(`(module (memory 1 8)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`);
    const template = live(prepared);
    expect(template.call("grow", 2)).toBe(1);
    template.call("poke", 3 * PAGE - 1, 0x77);
    const state = snapshot(prepared, template);
    expect(state.pages).toBe(3);
    expect(runs(state)).toEqual([[3 * PAGE - 4096, 4096]]);
    const copy = live(prepared);
    restore(prepared, copy, state);
    expect(copy.memory?.buffer.byteLength).toBe(3 * PAGE);
    expect(bytesOf(copy.memory)[3 * PAGE - 1]).toBe(0x77);
    expect(copy.call("grow", 0)).toBe(3);
  });

  it("restores into the memory the host gave the instance when it imports one", async () => {
    const prepared = await prepare(`(module (import "env" "memory" (memory 1 4)) (global $n (mut i32) (i32.const 0))
      (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)) (global.set $n (local.get 1)))
      (func (export "n") (result i32) (global.get $n)))`);
    expect(prepared.layout.memory).toBeUndefined();
    const templateMemory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const template = live(prepared, templateMemory);
    expect(template.memory).toBe(templateMemory);
    template.call("poke", 500, 9);
    const state = snapshot(prepared, template);
    expect(runs(state)).toEqual([[0, 4096]]);
    const copyMemory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const copy = live(prepared, copyMemory);
    restore(prepared, copy, state);
    expect(bytesOf(copyMemory)[500]).toBe(9);
    expect(copy.call("n")).toBe(9);
  });
});

describe("dataSegmentsEnd", () => {
  it("is the furthest end of the segments when all are located, else infinite", () => {
    const ranges = [
      { start: 100, end: 110 },
      { start: 8, end: 12 },
    ];
    expect(dataSegmentsEnd(ranges, 14)).toBe(110);
    expect(dataSegmentsEnd(ranges, 15)).toBe(Number.POSITIVE_INFINITY);
    expect(dataSegmentsEnd([], 0)).toBe(0);
    expect(dataSegmentsEnd([], 1)).toBe(Number.POSITIVE_INFINITY);
  });
});
