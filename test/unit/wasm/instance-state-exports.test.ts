import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { INSTANCE_STATE_PREFIX, exposeInstanceState } from "../../../host/wasm/instance-state-exports.js";
import type { InstanceStateExports } from "../../../host/wasm/instance-state-exports.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import {
  ByteWriter,
  ExternKind,
  FUNC_TYPE,
  Op,
  SectionId,
  binary,
  name as str,
  section,
  sleb,
} from "../../../bench/wasm-encoder.js";
import { libexec } from "../../helpers/paths.js";
import { wat } from "../../helpers/wat.js";

/** A top-level section of a binary: its id and its content (custom sections: name included). */
interface Section {
  readonly id: number;
  readonly body: Uint8Array;
}

/** Reads an unsigned LEB128 at `offset`: the value and the offset after it. */
function readLeb(bytes: Uint8Array, offset: number): [number, number] {
  let value = 0;
  let at = offset;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[at++] as number;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, at];
  }
}

/** The sections of a binary in file order, read independently of the code under test. */
function sectionsOf(bytes: Uint8Array): Section[] {
  const sections: Section[] = [];
  let offset = 8;
  while (offset < bytes.length) {
    const id = bytes[offset] as number;
    const [size, content] = readLeb(bytes, offset + 1);
    sections.push({ id, body: bytes.subarray(content, content + size) });
    offset = content + size;
  }
  return sections;
}

const ids = (bytes: Uint8Array): number[] => sectionsOf(bytes).map((s) => s.id);

/** The rewrite's result without the bytes, to compare in one `toEqual`. */
function fields(result: InstanceStateExports): Omit<InstanceStateExports, "bytes"> {
  const { bytes: _bytes, ...rest } = result;
  return rest;
}

function instantiate(bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): Record<string, unknown> {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

/** The DsoError `exposeInstanceState` throws; fails the test if it returns or throws anything else. */
function failure(bytes: Uint8Array): DsoError {
  try {
    exposeInstanceState(bytes);
  } catch (error) {
    if (error instanceof DsoError) return error;
    throw new Error(`expected a DsoError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected exposeInstanceState to throw");
}

const STATEFUL = `(module
  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))
  (global $big (mut i64) (i64.const 0))
  (global $ratio (mut f32) (f32.const 0))
  (global $total (mut f64) (f64.const 0))
  (global $fixed i32 (i32.const 99))
  (func (export "bump")
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (global.set $big (i64.add (global.get $big) (i64.const 0x100000000)))
    (global.set $ratio (f32.add (global.get $ratio) (f32.const 0.5)))
    (global.set $total (f64.add (global.get $total) (f64.const 1.25)))
    (i32.store (i32.const 16) (i32.mul (global.get $count) (i32.const 11))))
  (func (export "state") (result i32 i64 f32 f64 i32)
    (global.get $count) (global.get $big) (global.get $ratio) (global.get $total) (i32.load (i32.const 16)))
)`;

describe("exposeInstanceState: globals and memory", () => {
  it("exports every defined mutable numeric global and the memory, as settable exports", async () => {
    const result = exposeInstanceState(await wat(STATEFUL));
    expect(fields(result)).toEqual({
      globals: ["__dso_global_0", "__dso_global_1", "__dso_global_2", "__dso_global_3"],
      memory: "__dso_memory",
      start: undefined,
      unsnapshotable: undefined,
    });
    expect(WebAssembly.validate(result.bytes)).toBe(true);
    const exports = instantiate(result.bytes);
    const globals = result.globals.map((name) => exports[name] as WebAssembly.Global);
    for (const global of globals) expect(global).toBeInstanceOf(WebAssembly.Global);
    expect(globals.map((g): unknown => g.value)).toEqual([0, 0n, 0, 0]);
    // Setting them from JavaScript changes what the guest reads.
    [7, 5n, 1.5, 2.25].forEach((value, i) => {
      (globals[i] as WebAssembly.Global).value = value;
    });
    expect((exports["state"] as () => unknown[])()).toEqual([7, 5n, 1.5, 2.25, 0]);
    // The module's own memory export stays, and names the same memory.
    expect(exports["__dso_memory"]).toBeInstanceOf(WebAssembly.Memory);
    expect(exports["__dso_memory"]).toBe(exports["memory"]);
  });

  it("lets a second instance take over the first one's state, then go its own way", async () => {
    const result = exposeInstanceState(await wat(STATEFUL));
    const template = instantiate(result.bytes);
    (template["bump"] as () => void)();
    (template["bump"] as () => void)();
    (template["bump"] as () => void)();
    const values = result.globals.map((name) => (template[name] as WebAssembly.Global).value as unknown);
    const memory = new Uint8Array((template[result.memory as string] as WebAssembly.Memory).buffer).slice();

    const session = instantiate(result.bytes);
    expect((session["state"] as () => unknown[])()).toEqual([0, 0n, 0, 0, 0]);
    result.globals.forEach((name, i) => {
      (session[name] as WebAssembly.Global).value = values[i];
    });
    new Uint8Array((session[result.memory as string] as WebAssembly.Memory).buffer).set(memory);
    expect((session["state"] as () => unknown[])()).toEqual([3, 0x300000000n, 1.5, 3.75, 33]);

    (session["bump"] as () => void)();
    expect((session["state"] as () => unknown[])()).toEqual([4, 0x400000000n, 2, 5, 44]);
    expect((template["state"] as () => unknown[])()).toEqual([3, 0x300000000n, 1.5, 3.75, 33]);
  });

  it("counts imported globals in the index, and exports neither them nor immutable globals", async () => {
    const result = exposeInstanceState(
      await wat(`(module
        (import "env" "a" (global i32))
        (import "env" "b" (global (mut i64)))
        (global (mut i32) (i32.const 5))
        (global i32 (i32.const 6))
        (global (mut f64) (f64.const 2.5))
        (func (export "f"))
      )`),
    );
    expect(fields(result)).toEqual({
      globals: ["__dso_global_2", "__dso_global_4"],
      memory: undefined,
      start: undefined,
      unsnapshotable: undefined,
    });
    const exports = instantiate(result.bytes, {
      env: { a: 1, b: new WebAssembly.Global({ value: "i64", mutable: true }, 9n) },
    });
    expect((exports["__dso_global_2"] as WebAssembly.Global).value).toBe(5);
    expect((exports["__dso_global_4"] as WebAssembly.Global).value).toBe(2.5);
    expect(Object.keys(exports)).toEqual(["f", "__dso_global_2", "__dso_global_4"]);
  });

  it("does not export an imported memory", async () => {
    const result = exposeInstanceState(
      await wat(`(module
        (import "env" "table" (table 1 4 funcref))
        (import "env" "memory" (memory 1 2))
        (global (mut i32) (i32.const 1))
      )`),
    );
    expect(fields(result)).toEqual({
      globals: ["__dso_global_0"],
      memory: undefined,
      start: undefined,
      unsnapshotable: undefined,
    });
    expect(WebAssembly.Module.exports(new WebAssembly.Module(result.bytes))).toEqual([
      { name: "__dso_global_0", kind: "global" },
    ]);
  });

  it("does not export a defined memory when memory 0 is imported (multi-memory)", () => {
    const original = binary(
      section(SectionId.import, [0x01, ...str("env"), ...str("memory"), ExternKind.memory, 0x00, 0x01]),
      section(SectionId.memory, [0x01, 0x00, 0x01]),
      section(SectionId.global, [0x01, 0x7f, 0x01, Op.i32Const, 0x05, Op.end]),
    );
    expect(fields(exposeInstanceState(original))).toEqual({
      globals: ["__dso_global_0"],
      memory: undefined,
      start: undefined,
      unsnapshotable: undefined,
    });
  });
});

describe("exposeInstanceState: the start function", () => {
  const STARTED = `(module
    (import "env" "ran" (func $ran (param i32)))
    (global $g (mut i32) (i32.const 0))
    (func $init (global.set $g (i32.const 7)) (call $ran (i32.const 1)))
    (start $init)
    (func (export "g") (result i32) (global.get $g))
  )`;

  it("no longer runs at instantiation, and runs when __dso_start is called", async () => {
    const original = await wat(STARTED);
    const calls: number[] = [];
    const imports = { env: { ran: (n: number) => calls.push(n) } };
    instantiate(original, imports);
    expect(calls).toEqual([1]);

    calls.length = 0;
    const result = exposeInstanceState(original);
    expect(fields(result)).toEqual({
      globals: ["__dso_global_0"],
      memory: undefined,
      start: "__dso_start",
      unsnapshotable: undefined,
    });
    expect(ids(original)).toContain(SectionId.start);
    expect(ids(result.bytes)).not.toContain(SectionId.start);
    const exports = instantiate(result.bytes, imports);
    expect(calls).toEqual([]);
    expect((exports["g"] as () => number)()).toBe(0);
    (exports["__dso_start"] as () => void)();
    expect(calls).toEqual([1]);
    expect((exports["g"] as () => number)()).toBe(7);
    expect(readModuleShape(result.bytes).hasStartFunction).toBe(false);
  });

  it("exports the start function even when there is nothing else to export", async () => {
    const result = exposeInstanceState(await wat(`(module (func $s) (start $s))`));
    expect(fields(result)).toEqual({ globals: [], memory: undefined, start: "__dso_start", unsnapshotable: undefined });
    expect(ids(result.bytes)).toEqual([SectionId.type, SectionId.function, SectionId.export, SectionId.code]);
    expect(WebAssembly.Module.exports(new WebAssembly.Module(result.bytes))).toEqual([
      { name: "__dso_start", kind: "function" },
    ]);
  });
});

describe("exposeInstanceState: sections", () => {
  it("adds an export section, in its place, to a module that has none", async () => {
    const original = await wat(`(module
      (memory 1)
      (global (mut i32) (i32.const 3))
      (func (drop (i32.const 0)))
      (data (i32.const 0) "hi")
    )`);
    expect(ids(original)).toEqual([
      SectionId.type,
      SectionId.function,
      SectionId.memory,
      SectionId.global,
      SectionId.code,
      SectionId.data,
    ]);
    const result = exposeInstanceState(original);
    expect(ids(result.bytes)).toEqual([
      SectionId.type,
      SectionId.function,
      SectionId.memory,
      SectionId.global,
      SectionId.export,
      SectionId.code,
      SectionId.data,
    ]);
    const exports = instantiate(result.bytes);
    expect((exports["__dso_global_0"] as WebAssembly.Global).value).toBe(3);
    expect([...new Uint8Array((exports["__dso_memory"] as WebAssembly.Memory).buffer, 0, 2)]).toEqual([0x68, 0x69]);
  });

  it("appends a module's export section at its end when no section must follow it", async () => {
    const original = await wat(`(module (global (mut i64) (i64.const -1)))`);
    const result = exposeInstanceState(original);
    expect(ids(result.bytes)).toEqual([SectionId.global, SectionId.export]);
    expect((instantiate(result.bytes)["__dso_global_0"] as WebAssembly.Global).value).toBe(-1n);
  });

  it("keeps custom sections where they are, and their bytes", () => {
    const custom = (label: string, payload: number[]) => section(SectionId.custom, [...str(label), ...payload]);
    const original = binary(
      custom("first", [1]),
      section(SectionId.type, [0x01, FUNC_TYPE, 0x00, 0x00]),
      custom("afterType", [2, 2]),
      section(SectionId.function, [0x01, 0x00]),
      section(SectionId.global, [0x01, 0x7f, 0x01, Op.i32Const, 0x05, Op.end]),
      section(SectionId.export, [0x01, ...str("f"), ExternKind.func, 0x00]),
      custom("betweenExportAndStart", [3]),
      section(SectionId.start, [0x00]),
      custom("afterStart", []),
      section(SectionId.code, [0x01, 0x02, 0x00, Op.end]),
      custom("last", [4, 4, 4]),
    );
    expect(WebAssembly.validate(original)).toBe(true);
    const result = exposeInstanceState(original);
    const before = sectionsOf(original);
    const after = sectionsOf(result.bytes);
    expect(after.map((s) => s.id)).toEqual([0, 1, 0, 3, 6, 7, 0, 0, 10, 0]);
    // Every section but the export and start sections is byte for byte the same.
    expect(after.filter((s) => s.id !== SectionId.export)).toEqual(
      before.filter((s) => s.id !== SectionId.export && s.id !== SectionId.start),
    );
    const module = new WebAssembly.Module(result.bytes);
    expect([...new Uint8Array(WebAssembly.Module.customSections(module, "last")[0] as ArrayBuffer)]).toEqual([4, 4, 4]);
    expect(WebAssembly.Module.exports(module)).toEqual([
      { name: "f", kind: "function" },
      { name: "__dso_global_0", kind: "global" },
      { name: "__dso_start", kind: "function" },
    ]);
  });

  it("inserts a new export section after the custom sections that precede the sections following it", () => {
    const original = binary(
      section(SectionId.global, [0x01, 0x7f, 0x01, Op.i32Const, 0x05, Op.end]),
      section(SectionId.custom, [...str("c"), 9]),
      section(SectionId.dataCount, [0x00]),
    );
    expect(WebAssembly.validate(original)).toBe(true);
    const result = exposeInstanceState(original);
    expect(ids(result.bytes)).toEqual([SectionId.global, SectionId.custom, SectionId.export, SectionId.dataCount]);
    expect(WebAssembly.validate(result.bytes)).toBe(true);
  });

  /** A module with one mutable i32 global and the exports `names`, all of that global. */
  function exporting(names: readonly string[]): Uint8Array<ArrayBuffer> {
    const exports = new ByteWriter().u32(names.length);
    for (const n of names) exports.name(n).byte(ExternKind.global).u32(0);
    return ByteWriter.module()
      .section(SectionId.global, new ByteWriter().u32(1).byte(0x7f).byte(0x01).byte(Op.i32Const).s32(8).byte(Op.end))
      .section(SectionId.export, exports)
      .toBytes();
  }
  /** The bytes `__dso_global_0`'s entry takes: its name, the kind, index 0. */
  const ENTRY = str("__dso_global_0").length + 2;

  it("re-encodes the export count when its LEB128 grows", () => {
    // 127 exports fit a one-byte count, 128 do not; the section size takes two bytes before and after.
    const original = exporting(Array.from({ length: 127 }, (_, i) => `e${i}`));
    const result = exposeInstanceState(original);
    expect(result.bytes.length).toBe(original.length + 1 + ENTRY);
    const names = WebAssembly.Module.exports(new WebAssembly.Module(result.bytes)).map((e) => e.name);
    expect(names).toHaveLength(128);
    expect(names.slice(125)).toEqual(["e125", "e126", "__dso_global_0"]);
  });

  it("re-encodes the section size when its LEB128 grows", () => {
    // One export with a 120-byte name: 124 bytes of content, which the new entry takes past 127.
    const long = "x".repeat(120);
    const original = exporting([long]);
    expect(sectionsOf(original)[1]?.body.length).toBe(124);
    const result = exposeInstanceState(original);
    expect(result.bytes.length).toBe(original.length + 1 + ENTRY);
    expect(sectionsOf(result.bytes)[1]?.body.length).toBe(124 + ENTRY);
    const names = WebAssembly.Module.exports(new WebAssembly.Module(result.bytes)).map((e) => e.name);
    expect(names).toEqual([long, "__dso_global_0"]);
  });

  it("reads export entries whose name length and index take several LEB128 bytes", () => {
    const functions = 200;
    const long = "y".repeat(200);
    // Each body: its size 2, no locals, end.
    const bodies = new ByteWriter().u32(functions);
    for (let i = 0; i < functions; i++) bodies.byte(0x02).byte(0x00).byte(Op.end);
    const exports = new ByteWriter().u32(2).name(long).byte(ExternKind.func).u32(150);
    exports.name("z").byte(ExternKind.func).u32(3);
    const original = ByteWriter.module()
      .section(SectionId.type, new ByteWriter().u32(1).byte(FUNC_TYPE).u32(0).u32(0))
      .section(SectionId.function, new ByteWriter().u32(functions).bytes(new Uint8Array(functions)))
      .section(SectionId.global, new ByteWriter().u32(1).byte(0x7f).byte(0x01).byte(Op.i32Const).s32(8).byte(Op.end))
      .section(SectionId.export, exports)
      .section(SectionId.code, bodies)
      .toBytes();
    expect(WebAssembly.validate(original)).toBe(true);
    const result = exposeInstanceState(original);
    expect(WebAssembly.Module.exports(new WebAssembly.Module(result.bytes))).toEqual([
      { name: long, kind: "function" },
      { name: "z", kind: "function" },
      { name: "__dso_global_0", kind: "global" },
    ]);
  });
});

describe("exposeInstanceState: refusals and limits", () => {
  it("refuses a module that already exports a name it would add", async () => {
    for (const [text, name] of [
      [`(module (memory (export "__dso_memory") 1))`, "__dso_memory"],
      [`(module (global (export "__dso_global_0") (mut i32) (i32.const 0)))`, "__dso_global_0"],
      [`(module (func $s (export "__dso_start")) (start $s))`, "__dso_start"],
    ] as const) {
      const error = failure(await wat(text));
      expect({ code: error.code, message: error.message }).toEqual({
        code: ErrorCodes.BAD_WASM,
        message: `the module exports '${name}', a name the host reserves for itself`,
      });
    }
  });

  it("accepts other names that start with the prefix", async () => {
    const result = exposeInstanceState(
      await wat(`(module (global (export "${INSTANCE_STATE_PREFIX}global_1") (mut i32) (i32.const 0)))`),
    );
    expect(WebAssembly.Module.exports(new WebAssembly.Module(result.bytes)).map((e) => e.name)).toEqual([
      "__dso_global_1",
      "__dso_global_0",
    ]);
  });

  it("says why a module with a mutable v128 global cannot be restored, and still rewrites the rest", async () => {
    const result = exposeInstanceState(
      await wat(`(module (memory 1) (global (mut v128) (v128.const i64x2 1 2)) (global (mut i32) (i32.const 1)))`, {
        simd: true,
      }),
    );
    expect(fields(result)).toEqual({
      globals: ["__dso_global_1"],
      memory: "__dso_memory",
      start: undefined,
      unsnapshotable: "mutable global 0 has type v128, which a snapshot cannot copy between instances",
    });
    expect(WebAssembly.Module.exports(new WebAssembly.Module(result.bytes))).toEqual([
      { name: "__dso_global_1", kind: "global" },
      { name: "__dso_memory", kind: "memory" },
    ]);
  });

  it("says why a module with a mutable funcref global cannot be restored", async () => {
    const result = exposeInstanceState(
      await wat(`(module (import "env" "g" (global i32)) (global (mut funcref) (ref.null func)) (func (export "f")))`),
    );
    expect(fields(result)).toEqual({
      globals: [],
      memory: undefined,
      start: undefined,
      unsnapshotable: "mutable global 1 has type funcref, which a snapshot cannot copy between instances",
    });
  });

  it("returns the very same bytes when there is nothing to export", async () => {
    const original = await wat(`(module
      (import "env" "memory" (memory 1))
      (global i32 (i32.const 1))
      (global (mut externref) (ref.null extern))
      (func (export "f"))
    )`);
    const result = exposeInstanceState(original);
    expect(result.bytes).toBe(original);
    expect(fields(result)).toEqual({
      globals: [],
      memory: undefined,
      start: undefined,
      unsnapshotable: "mutable global 1 has type externref, which a snapshot cannot copy between instances",
    });
  });

  it("refuses bytes without the magic number or version 1", () => {
    const magic = [0x00, 0x61, 0x73, 0x6d];
    const inputs = [[], magic.slice(0, 3), magic, [...magic, 0x02, 0x00, 0x00, 0x00]];
    const messages = inputs.map((bytes) => failure(new Uint8Array(bytes)).message);
    expect(messages).toEqual([
      "not a WebAssembly binary (bad magic number)",
      "not a WebAssembly binary (bad magic number)",
      "not a valid WebAssembly binary: unsupported binary version at byte 4",
      "not a valid WebAssembly binary: unsupported binary version at byte 4",
    ]);
  });

  it("refuses a truncated binary with DSO_ERR_BAD_WASM, never reading past its end", async () => {
    const full = await wat(STATEFUL);
    const error = failure(full.subarray(0, full.length - 1));
    expect(error.code).toBe(ErrorCodes.BAD_WASM);
    expect(error.message).toMatch(/^not a valid WebAssembly binary: length \d+ runs past the end at byte \d+$/);
    // A cut at any byte yields a rewritten binary (a cut between sections) or a DsoError, nothing else.
    for (let length = 0; length < full.length; length++) {
      let outcome: string;
      try {
        exposeInstanceState(full.subarray(0, length));
        outcome = "rewritten";
      } catch (caught) {
        outcome = caught instanceof DsoError ? caught.code : String(caught);
      }
      expect(["rewritten", ErrorCodes.BAD_WASM], `cut at ${length}`).toContain(outcome);
    }
  });

  it("never reads a section's content past the size it declares", () => {
    // A global section declared 4 bytes long cuts its constant expression short; a custom section follows.
    const truncated = [SectionId.global, 0x04, 0x01, 0x7f, 0x01, Op.i32Const];
    const original = binary(truncated, section(SectionId.custom, str("c")));
    expect(failure(original).message).toBe("not a valid WebAssembly binary: unexpected end at byte 14");
  });

  it("refuses an export name that runs past its section, naming the byte", () => {
    // An export section declared 4 bytes long whose one name claims 10; a custom section follows.
    const truncated = [SectionId.export, 0x04, 0x01, 0x0a, 0x61, 0x62];
    const original = binary(
      section(SectionId.global, [0x01, 0x7f, 0x01, Op.i32Const, 0x05, Op.end]),
      truncated,
      section(SectionId.custom, [...str("padding"), ...new Uint8Array(16)]),
    );
    expect(failure(original).message).toBe("not a valid WebAssembly binary: length 10 runs past the end at byte 20");
  });

  it("refuses a global whose mutability flag is neither 0 nor 1, naming the byte", () => {
    const original = binary(section(SectionId.global, [0x01, 0x7f, 0x02, Op.i32Const, 0x00, Op.end]));
    expect(failure(original).message).toBe("not a valid WebAssembly binary: bad global mutability flag at byte 12");
  });

  it("refuses a global section truncated inside a constant expression, naming the byte", () => {
    const original = binary(section(SectionId.global, [0x01, 0x7f, 0x01, Op.i32Const, 0x85]));
    const error = failure(original);
    expect(error.message).toBe("not a valid WebAssembly binary: unexpected end at byte 15");
  });
});

describe("exposeInstanceState: AssemblyScript guests", () => {
  for (const file of ["mod_counter.wasm", "libcounter.wasm", "mod_test.wasm"]) {
    it(`rewrites ${file} into a binary the engine compiles, with the same imports`, () => {
      const original = readFileSync(libexec(file));
      const result = exposeInstanceState(original);
      expect(result.globals.length).toBeGreaterThan(0);
      expect(result.unsnapshotable).toBeUndefined();
      expect(WebAssembly.validate(result.bytes)).toBe(true);
      const before = new WebAssembly.Module(original);
      const after = new WebAssembly.Module(result.bytes);
      expect(WebAssembly.Module.imports(after)).toEqual(WebAssembly.Module.imports(before));
      const added = [...result.globals, result.memory, result.start].filter((n) => n !== undefined);
      expect(WebAssembly.Module.exports(after)).toEqual([
        ...WebAssembly.Module.exports(before),
        ...added.map((name) => ({ name, kind: name.startsWith("__dso_global_") ? "global" : "memory" })),
      ]);
      // The reader still accepts it, with the same footprint.
      expect(readModuleShape(result.bytes).footprint).toEqual({
        ...readModuleShape(original).footprint,
        binarySize: result.bytes.length,
      });
    });
  }
});

/** mulberry32: a small seeded generator, so every run checks the same modules. */
function random(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const NUMERIC = [
  { code: 0x7f, type: "i32", init: (v: number) => [Op.i32Const, ...sleb(v)], value: (v: number) => v },
  { code: 0x7e, type: "i64", init: (v: number) => [0x42, ...sleb(v)], value: (v: number) => BigInt(v) },
  {
    code: 0x7d,
    type: "f32",
    init: (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
    value: (v: number) => v,
  },
  {
    code: 0x7c,
    type: "f64",
    init: (v: number) => [0x44, ...new Uint8Array(new Float64Array([v]).buffer)],
    value: (v: number) => v,
  },
] as const;

interface Generated {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly imports: WebAssembly.Imports;
  /** What the rewrite should report and add. */
  readonly expected: Omit<InstanceStateExports, "bytes">;
  /** Initial value of each expected global export. */
  readonly values: ReadonlyMap<string, unknown>;
  readonly exportNames: readonly string[];
  readonly customs: ReadonlyMap<string, number[]>;
  readonly sectionIds: readonly number[];
}

/** A random valid module: imported and defined globals, maybe a memory, an export and a start section, customs. */
function generate(seed: number): Generated {
  const rand = random(seed);
  const parts: Array<{ id: number; bytes: Uint8Array }> = [];
  const customs = new Map<string, number[]>();
  const add = (id: number, body: ArrayLike<number>) => {
    if (rand(3) === 0) {
      const label = `c${customs.size}`;
      const payload = Array.from({ length: rand(4) }, () => rand(256));
      customs.set(label, payload);
      parts.push({ id: SectionId.custom, bytes: section(SectionId.custom, [...str(label), ...payload]) });
    }
    parts.push({ id, bytes: section(id, body) });
  };
  const importGlobals = rand(3);
  const memory = ["none", "imported", "defined"][rand(3)];
  const env: Record<string, WebAssembly.ImportValue> = {};
  add(SectionId.type, [0x01, FUNC_TYPE, 0x00, 0x00]);
  const imports = new ByteWriter().u32(importGlobals + (memory === "imported" ? 1 : 0));
  for (let i = 0; i < importGlobals; i++) {
    const kind = NUMERIC[rand(4)] as (typeof NUMERIC)[number];
    const mutable = rand(2) === 1;
    imports
      .name("env")
      .name(`g${i}`)
      .byte(ExternKind.global)
      .byte(kind.code)
      .byte(mutable ? 1 : 0);
    env[`g${i}`] = new WebAssembly.Global({ value: kind.type, mutable }, kind.value(0));
  }
  if (memory === "imported") {
    imports.name("env").name("memory").byte(ExternKind.memory).byte(0x00).u32(1);
    env["memory"] = new WebAssembly.Memory({ initial: 1 });
  }
  if (importGlobals > 0 || memory === "imported") add(SectionId.import, imports.toBytes());
  add(SectionId.function, [0x01, 0x00]);
  if (memory === "defined") add(SectionId.memory, [0x01, 0x00, 0x01]);
  const globals: string[] = [];
  const values = new Map<string, unknown>();
  let unsnapshotable: string | undefined;
  const definedGlobals = rand(5);
  const globalSection = new ByteWriter().u32(definedGlobals);
  for (let i = 0; i < definedGlobals; i++) {
    const index = importGlobals + i;
    const mutable = rand(2) === 1;
    if (rand(6) === 0) {
      globalSection
        .byte(0x70)
        .byte(mutable ? 1 : 0)
        .byte(0xd0)
        .byte(0x70)
        .byte(Op.end);
      if (mutable)
        unsnapshotable ??= `mutable global ${index} has type funcref, which a snapshot cannot copy between instances`;
      continue;
    }
    const kind = NUMERIC[rand(4)] as (typeof NUMERIC)[number];
    const init = rand(100);
    globalSection
      .byte(kind.code)
      .byte(mutable ? 1 : 0)
      .bytes(kind.init(init))
      .byte(Op.end);
    if (mutable) {
      globals.push(`__dso_global_${index}`);
      values.set(`__dso_global_${index}`, kind.value(init));
    }
  }
  if (definedGlobals > 0) add(SectionId.global, globalSection.toBytes());
  const exportNames = Array.from({ length: rand(4) }, (_, i) => `f${i}`);
  const hasExportSection = exportNames.length > 0 || rand(2) === 0;
  if (hasExportSection) {
    const exports = new ByteWriter().u32(exportNames.length);
    for (const n of exportNames) exports.name(n).byte(ExternKind.func).u32(0);
    add(SectionId.export, exports.toBytes());
  }
  const hasStart = rand(2) === 0;
  if (hasStart) add(SectionId.start, [0x00]);
  add(SectionId.code, [0x01, 0x02, 0x00, Op.end]);
  const bytes = binary(...parts.map((p) => p.bytes));

  const expected = {
    globals,
    memory: memory === "defined" ? "__dso_memory" : undefined,
    start: hasStart ? "__dso_start" : undefined,
    unsnapshotable,
  };
  let sectionIds = parts.map((p) => p.id);
  if (!hasExportSection) {
    // A new export section goes right before the first section that must follow it: start or code.
    const after = sectionIds.findIndex((id) => id === SectionId.start || id === SectionId.code);
    sectionIds = [...sectionIds.slice(0, after), SectionId.export, ...sectionIds.slice(after)];
  }
  sectionIds = sectionIds.filter((id) => id !== SectionId.start);
  return { bytes, imports: { env }, expected, values, exportNames, customs, sectionIds };
}

describe("exposeInstanceState: random modules", () => {
  it("adds exactly the expected exports, keeps every other section, and the values are the guest's", () => {
    let rewritten = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const g = generate(seed);
      expect(WebAssembly.validate(g.bytes), `seed ${seed}: generated`).toBe(true);
      const result = exposeInstanceState(g.bytes);
      expect(fields(result), `seed ${seed}`).toEqual(g.expected);
      const added = [...g.expected.globals, g.expected.memory, g.expected.start].filter((n) => n !== undefined);
      if (added.length === 0) {
        expect(result.bytes, `seed ${seed}`).toBe(g.bytes);
        continue;
      }
      rewritten++;
      expect(ids(result.bytes), `seed ${seed}`).toEqual(g.sectionIds);
      const module = new WebAssembly.Module(result.bytes);
      expect(
        WebAssembly.Module.exports(module).map((e) => e.name),
        `seed ${seed}`,
      ).toEqual([...g.exportNames, ...added]);
      for (const [label, payload] of g.customs) {
        const [content] = WebAssembly.Module.customSections(module, label);
        expect([...new Uint8Array(content as ArrayBuffer)], `seed ${seed}: ${label}`).toEqual(payload);
      }
      const exports = new WebAssembly.Instance(module, g.imports).exports as Record<string, unknown>;
      for (const [exportName, value] of g.values)
        expect((exports[exportName] as WebAssembly.Global).value, `seed ${seed}: ${exportName}`).toBe(value);
    }
    // The generator must exercise the rewrite, not only the no-op.
    expect(rewritten).toBeGreaterThan(150);
  });
});
