import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { DEFAULT_LOAD_LIMITS } from "../../../host/wasm/limits.js";
import type { LoadLimits } from "../../../host/wasm/limits.js";
import { looksLikeWasm, readModuleShape } from "../../../host/wasm/reader.js";
import type { ModuleShape } from "../../../host/wasm/types.js";
import { WASM_HEADER as HEADER, binary, leb, name as str, section } from "../../../bench/wasm-encoder.js";
import { libexec } from "../../helpers/paths.js";
import { wat } from "../../helpers/wat.js";

// Hand-made binaries (bench/wasm-encoder.ts): the malformed cases need bytes no
// assembler would write, and the offsets in the expected messages are counted
// from these arrays.

/** The DsoError readModuleShape throws; fails the test if it returns or throws anything else. */
function failure(bytes: Uint8Array): DsoError {
  try {
    readModuleShape(bytes);
  } catch (error) {
    if (error instanceof DsoError) return error;
    throw new Error(`expected a DsoError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected readModuleShape to throw");
}

function expectMalformed(bytes: Uint8Array, what: string): void {
  const error = failure(bytes);
  expect({ code: error.code, message: error.message, errno: error.errno }).toEqual({
    code: ErrorCodes.BAD_WASM,
    message: `not a valid WebAssembly binary: ${what}`,
    errno: undefined,
  });
}

function exportOf(shape: ModuleShape, name: string) {
  return shape.exports.find((e) => e.name === name);
}

describe("readModuleShape: imports", () => {
  it("reads every import kind with its exact type, in import order", async () => {
    const shape = readModuleShape(
      await wat(`(module
        (type $t (func (param i32 i64) (result f32)))
        (import "env" "f" (func (type $t)))
        (import "env" "nil" (func))
        (import "libm" "tbl" (table 2 10 funcref))
        (import "libm" "ext" (table 1 externref))
        (import "env" "memory" (memory 1))
        (import "env" "g" (global i32))
        (import "env" "gm" (global (mut f64)))
        (import "mod_x" "v" (func (param v128)))
      )`),
    );
    expect(shape.imports).toEqual([
      { module: "env", name: "f", type: { kind: "func", type: { params: ["i32", "i64"], results: ["f32"] } } },
      { module: "env", name: "nil", type: { kind: "func", type: { params: [], results: [] } } },
      {
        module: "libm",
        name: "tbl",
        type: { kind: "table", element: "funcref", limits: { min: 2, max: 10, shared: false } },
      },
      { module: "libm", name: "ext", type: { kind: "table", element: "externref", limits: { min: 1, shared: false } } },
      { module: "env", name: "memory", type: { kind: "memory", limits: { min: 1, shared: false } } },
      { module: "env", name: "g", type: { kind: "global", valueType: "i32", mutable: false } },
      { module: "env", name: "gm", type: { kind: "global", valueType: "f64", mutable: true } },
      { module: "mod_x", name: "v", type: { kind: "func", type: { params: ["v128"], results: [] } } },
    ]);
    // Imported memories are not the module's own.
    expect(shape.definedMemories).toEqual([]);
  });

  it("reads a memory import with a maximum", async () => {
    const shape = readModuleShape(await wat(`(module (import "env" "memory" (memory 2 5)))`));
    expect(shape.imports).toEqual([
      { module: "env", name: "memory", type: { kind: "memory", limits: { min: 2, max: 5, shared: false } } },
    ]);
  });

  it("reads a shared memory import", async () => {
    const shape = readModuleShape(await wat(`(module (import "env" "memory" (memory 1 4 shared)))`, { threads: true }));
    expect(shape.imports).toEqual([
      { module: "env", name: "memory", type: { kind: "memory", limits: { min: 1, max: 4, shared: true } } },
    ]);
  });

  it("reads tag imports and exports (exception handling)", async () => {
    const shape = readModuleShape(
      await wat(`(module (tag (import "env" "err") (param i32)) (tag (export "oops") (param i64 f32)))`, {
        exceptions: true,
      }),
    );
    expect(shape.imports).toEqual([
      { module: "env", name: "err", type: { kind: "tag", type: { params: ["i32"], results: [] } } },
    ]);
    expect(shape.exports).toEqual([
      { name: "oops", type: { kind: "tag", type: { params: ["i64", "f32"], results: [] } } },
    ]);
  });

  it("reads multi-value results", async () => {
    const shape = readModuleShape(
      await wat(`(module
        (import "env" "pair" (func (param f64) (result i32 i64)))
        (func (export "triple") (result i32 f32 f64) i32.const 1 f32.const 2 f64.const 3))`),
    );
    expect(shape.imports[0]?.type).toEqual({ kind: "func", type: { params: ["f64"], results: ["i32", "i64"] } });
    expect(exportOf(shape, "triple")?.type).toEqual({
      kind: "func",
      type: { params: [], results: ["i32", "f32", "f64"] },
    });
  });
});

describe("readModuleShape: exports", () => {
  it("types function exports by index across imported and defined functions", async () => {
    // Index 0 is the import, so the export of index 1 must get the defined function's type.
    const shape = readModuleShape(
      await wat(`(module
        (import "env" "imp" (func $imp (param i32)))
        (func $def (param i64 i64) (result i64) local.get 0)
        (export "re_export" (func $imp))
        (export "defined" (func $def)))`),
    );
    expect(shape.exports).toEqual([
      { name: "re_export", type: { kind: "func", type: { params: ["i32"], results: [] } } },
      { name: "defined", type: { kind: "func", type: { params: ["i64", "i64"], results: ["i64"] } } },
    ]);
  });

  it("reads table, memory and global exports, defined and re-exported", async () => {
    const shape = readModuleShape(
      await wat(`(module
        (import "env" "g_in" (global $gin i64))
        (table $t (export "table") 3 funcref)
        (memory $m (export "memory") 2 8)
        (global (export "g_in_again") i64 (global.get $gin))
        (export "g_imported" (global $gin)))`),
    );
    expect(shape.exports).toEqual([
      { name: "table", type: { kind: "table", element: "funcref", limits: { min: 3, shared: false } } },
      { name: "memory", type: { kind: "memory", limits: { min: 2, max: 8, shared: false } } },
      // Initialised from another global: not a plain constant, so no constValue.
      { name: "g_in_again", type: { kind: "global", valueType: "i64", mutable: false } },
      { name: "g_imported", type: { kind: "global", valueType: "i64", mutable: false } },
    ]);
    expect(shape.definedMemories).toEqual([{ min: 2, max: 8, shared: false }]);
  });

  it("gives the value of immutable constant globals (how NAME_module carries the API version)", async () => {
    const shape = readModuleShape(
      await wat(`(module
        (global (export "test_module") i32 (i32.const 0x20))
        (global (export "neg") i32 (i32.const -1))
        (global (export "min") i32 (i32.const -2147483648))
        (global (export "big") i64 (i64.const -9007199254740993))
        (global (export "f32") f32 (f32.const 0.25))
        (global (export "f64") f64 (f64.const -1.5))
        (global (export "mutable") (mut i32) (i32.const 7)))`),
    );
    expect(shape.exports).toEqual([
      { name: "test_module", type: { kind: "global", valueType: "i32", mutable: false }, constValue: 0x20 },
      { name: "neg", type: { kind: "global", valueType: "i32", mutable: false }, constValue: -1 },
      { name: "min", type: { kind: "global", valueType: "i32", mutable: false }, constValue: -2147483648 },
      // i64 values stay exact as bigint (this one is not a safe integer).
      { name: "big", type: { kind: "global", valueType: "i64", mutable: false }, constValue: -9007199254740993n },
      { name: "f32", type: { kind: "global", valueType: "f32", mutable: false }, constValue: 0.25 },
      { name: "f64", type: { kind: "global", valueType: "f64", mutable: false }, constValue: -1.5 },
      // A mutable global's initial value is not a constant the host may rely on.
      { name: "mutable", type: { kind: "global", valueType: "i32", mutable: true } },
    ]);
    expect("constValue" in (exportOf(shape, "mutable") ?? {})).toBe(false);
  });

  it("reads the NAME_module value of a real AssemblyScript module", () => {
    const shape = readModuleShape(readFileSync(libexec("mod_test.wasm")));
    expect(exportOf(shape, "test_module")).toEqual({
      name: "test_module",
      type: { kind: "global", valueType: "i32", mutable: false },
      constValue: 0x20,
    });
  });
});

describe("readModuleShape: start, data and custom sections", () => {
  it("reports a start section", async () => {
    expect(readModuleShape(await wat(`(module (func $s) (start $s))`)).hasStartFunction).toBe(true);
    expect(readModuleShape(await wat(`(module (func $s))`)).hasStartFunction).toBe(false);
  });

  it("counts the bytes of active and passive data segments", async () => {
    const shape = readModuleShape(
      await wat(
        `(module (memory 1) (data (i32.const 0) "abc") (data "de") (data (i32.const 16) "") (data (i32.const 8) "\\00\\01\\02\\03"))`,
      ),
    );
    expect(shape.dataBytes).toBe(3 + 2 + 0 + 4);
    expect(shape.definedMemories).toEqual([{ min: 1, shared: false }]);
  });

  it("lists where active segments with a constant offset land, and only those, as static data", async () => {
    const shape = readModuleShape(
      await wat(`(module
        (import "env" "base" (global $base i32))
        (memory 1)
        (data (i32.const 1024) "abc")
        (data "passive")
        (data (global.get $base) "placed at run time")
        (data (i32.const -16) "\\00\\01"))`),
    );
    expect(shape.staticData).toEqual([
      { start: 1024, end: 1027 },
      { start: 0xfffffff0, end: 0xfffffff2 },
    ]);
  });

  it("reads data segments with an explicit memory index (flags 2)", () => {
    const bytes = binary(
      section(5, [0x01, 0x00, 0x01]), // one memory, min 1
      section(11, [0x01, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x03, 0x61, 0x62, 0x63]),
    );
    expect(readModuleShape(bytes).dataBytes).toBe(3);
    expect(readModuleShape(bytes).staticData).toEqual([{ start: 0, end: 3 }]);
  });

  it("lists custom sections by name, in file order, wherever they appear", async () => {
    const base = [...(await wat(`(module (func (export "f")))`))].slice(8);
    const bytes = binary(
      section(0, [...str("first"), 0xde, 0xad]),
      base,
      section(0, str("producers")),
      section(0, [...str("ünïcode"), 1, 2, 3]),
    );
    const shape = readModuleShape(bytes);
    expect(shape.customSections).toEqual(["first", "producers", "ünïcode"]);
    expect(shape.exports).toEqual([{ name: "f", type: { kind: "func", type: { params: [], results: [] } } }]);
  });

  it("reads an empty module", () => {
    expect(readModuleShape(binary())).toEqual({
      imports: [],
      exports: [],
      definedMemories: [],
      definedTables: [],
      hasStartFunction: false,
      dataBytes: 0,
      staticData: [],
      customSections: [],
      footprint: {
        binarySize: 8,
        functions: 0,
        globals: 0,
        tables: 0,
        tableElements: 0,
        elementSegments: 0,
        dataBytes: 0,
      },
    });
  });

  it("accepts the tag section between memory and global, and data count before code", () => {
    const bytes = binary(
      section(1, [0x01, 0x60, 0x01, 0x7f, 0x00]), // type 0: (i32) -> nil
      section(5, [0x01, 0x00, 0x01]),
      section(13, [0x01, 0x00, 0x00]), // one tag of type 0
      section(6, [0x01, 0x7f, 0x00, 0x41, 0x05, 0x0b]),
      section(7, [0x01, ...str("e"), 0x04, 0x00]),
      section(12, [0x00]), // data count 0
      section(10, [0x00]), // no code
    );
    expect(readModuleShape(bytes).exports).toEqual([
      { name: "e", type: { kind: "tag", type: { params: ["i32"], results: [] } } },
    ]);
  });

  it("parses a module with 100,000 imports", () => {
    const count = 100_000;
    const imports: number[] = [...leb(count)];
    for (let i = 0; i < count; i++) imports.push(...str("env"), ...str(`f${i}`), 0x00, 0x00);
    const bytes = binary(section(1, [0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f]), section(2, imports));
    const shape = readModuleShape(bytes);
    expect(shape.imports.length).toBe(count);
    expect(shape.imports[0]).toEqual({
      module: "env",
      name: "f0",
      type: { kind: "func", type: { params: ["i32"], results: ["i32"] } },
    });
    expect(shape.imports[count - 1]?.name).toBe("f99999");
  });
});

describe("looksLikeWasm", () => {
  it("checks the magic number only", () => {
    expect(looksLikeWasm(new Uint8Array(HEADER))).toBe(true);
    expect(looksLikeWasm(new Uint8Array([0x00, 0x61, 0x73, 0x6d]))).toBe(true);
    expect(looksLikeWasm(new Uint8Array([0x00, 0x61, 0x73]))).toBe(false);
    expect(looksLikeWasm(new TextEncoder().encode("\x7fELF"))).toBe(false);
  });
});

describe("readModuleShape: malformed binaries are DSO_ERR_BAD_WASM with the offending byte", () => {
  it("bad magic number", () => {
    for (const bytes of [
      new Uint8Array(),
      new TextEncoder().encode("\x7fELF\x02\x01\x01\x00"),
      new Uint8Array([0x00, 0x61, 0x73]),
    ]) {
      const error = failure(bytes);
      expect([error.code, error.message, error.errno]).toEqual([
        ErrorCodes.BAD_WASM,
        "not a WebAssembly binary (bad magic number)",
        undefined,
      ]);
    }
  });

  it("bad version", () => {
    expectMalformed(
      new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00]),
      "unsupported binary version 2 at byte 4",
    );
    // The component-model layer (version 0x0d, layer 1) is not a core module.
    expectMalformed(
      new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]),
      "unsupported binary version 65549 at byte 4",
    );
  });

  it("truncated in the version", () => {
    // The version cannot be read at all; the reader reports it as version -1.
    expectMalformed(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00]), "unsupported binary version -1 at byte 4");
  });

  it("truncated after a section id", () => {
    expectMalformed(binary([0x01]), "unexpected end at byte 9");
  });

  it("truncated: a section size past the end of the file", () => {
    expectMalformed(binary([0x01, 0x05, 0x01]), "length 5 runs past the end at byte 10");
  });

  it("truncated inside a type entry", () => {
    // count 1, form 0x60, 1 param, then the section ends before the param type.
    expectMalformed(binary(section(1, [0x01, 0x60, 0x01])), "unexpected end at byte 13");
  });

  it("truncated inside an import name", () => {
    expectMalformed(binary(section(2, [0x01, 0x03, 0x65, 0x6e])), "length 3 runs past the end at byte 12");
  });

  it("truncated inside an f32 constant at the end of the file", () => {
    // global section: 1 global, f32, immutable, f32.const with 1 of its 4 bytes.
    // A RangeError from a DataView must not escape: the reader's contract is DsoError only.
    expectMalformed(binary(section(6, [0x01, 0x7d, 0x00, 0x43, 0x00])), "length 4 runs past the end at byte 14");
  });

  it("truncated inside an f64 constant", () => {
    expectMalformed(binary(section(6, [0x01, 0x7c, 0x00, 0x44, 0x00, 0x00])), "length 8 runs past the end at byte 14");
  });

  // LEB128 errors name the byte after the longest allowed encoding.
  it("u32 LEB128 longer than 5 bytes", () => {
    expectMalformed(
      binary(section(1, [0x80, 0x80, 0x80, 0x80, 0x80, 0x00])),
      "u32 LEB128 longer than 5 bytes at byte 15",
    );
    // The section size itself.
    expectMalformed(binary([0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), "u32 LEB128 longer than 5 bytes at byte 14");
  });

  it("u32 LEB128 whose value does not fit 32 bits", () => {
    expectMalformed(binary(section(1, [0xff, 0xff, 0xff, 0xff, 0x1f])), "u32 out of range at byte 14");
  });

  it("s32 and s64 LEB128 too long in a constant expression", () => {
    expectMalformed(
      binary(section(6, [0x01, 0x7f, 0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b])),
      "s32 LEB128 too long at byte 19",
    );
    expectMalformed(
      binary(section(6, [0x01, 0x7e, 0x00, 0x42, ...new Array<number>(10).fill(0x80), 0x00, 0x0b])),
      "s64 LEB128 too long at byte 24",
    );
  });

  it("section out of order or repeated", () => {
    expectMalformed(binary(section(2, [0x00]), section(1, [0x00])), "section 1 out of order or repeated at byte 11");
    expectMalformed(binary(section(1, [0x00]), section(1, [0x00])), "section 1 out of order or repeated at byte 11");
    // The tag section (13) belongs before the global section (6).
    expectMalformed(binary(section(6, [0x00]), section(13, [0x00])), "section 13 out of order or repeated at byte 11");
    // The data count section (12) belongs before the code section (10).
    expectMalformed(binary(section(10, [0x00]), section(12, [0x00])), "section 12 out of order or repeated at byte 11");
  });

  it("unknown section id", () => {
    expectMalformed(binary(section(14, [])), "unknown section id 14 at byte 8");
  });

  it("bad value type", () => {
    expectMalformed(binary(section(1, [0x01, 0x60, 0x01, 0x40, 0x00])), "unknown value type at byte 13");
    // In a global's type.
    expectMalformed(binary(section(6, [0x01, 0x01, 0x00, 0x41, 0x00, 0x0b])), "unknown value type at byte 11");
  });

  it("bad type form", () => {
    expectMalformed(binary(section(1, [0x01, 0x5f, 0x00, 0x00])), "unsupported type form 0x5f at byte 11");
  });

  it("export of a missing item", () => {
    expectMalformed(
      binary(section(7, [0x01, ...str("f"), 0x00, 0x00])),
      "export 'f' refers to a missing item 0 at byte 13",
    );
    expectMalformed(
      binary(section(7, [0x01, ...str("g"), 0x03, 0x04])),
      "export 'g' refers to a missing item 4 at byte 13",
    );
    expectMalformed(
      binary(section(7, [0x01, ...str("m"), 0x02, 0x00])),
      "export 'm' refers to a missing item 0 at byte 13",
    );
    expectMalformed(
      binary(section(7, [0x01, ...str("t"), 0x01, 0x00])),
      "export 't' refers to a missing item 0 at byte 13",
    );
    expectMalformed(
      binary(section(7, [0x01, ...str("e"), 0x04, 0x00])),
      "export 'e' refers to a missing item 0 at byte 13",
    );
  });

  it("unknown import and export kinds", () => {
    expectMalformed(
      binary(section(2, [0x01, ...str("env"), ...str("x"), 0x05, 0x00])),
      "unknown import kind 0x5 at byte 17",
    );
    expectMalformed(binary(section(7, [0x01, ...str("x"), 0x07, 0x00])), "unknown export kind 0x7 at byte 13");
  });

  it("type index out of range in an import", () => {
    // The offset of the import's kind byte.
    expectMalformed(
      binary(section(2, [0x01, ...str("env"), ...str("f"), 0x00, 0x03])),
      "type index 3 out of range at byte 17",
    );
  });

  it("type index out of range in the function section", () => {
    // In the function section: the offset of the bad index itself (byte 14), not of the byte after it.
    expectMalformed(binary(section(1, [0x00]), section(3, [0x01, 0x05])), "type index 5 out of range at byte 14");
  });

  it("section with trailing bytes", () => {
    expectMalformed(binary(section(1, [0x00, 0x00])), "section 1 has trailing bytes at byte 11");
    expectMalformed(binary(section(8, [0x00, 0x00])), "section 8 has trailing bytes at byte 11");
  });

  it("bad global mutability flag", () => {
    expectMalformed(binary(section(6, [0x01, 0x7f, 0x02, 0x41, 0x00, 0x0b])), "bad global mutability flag at byte 12");
  });

  it("bad limits", () => {
    // Tables cannot be shared.
    expectMalformed(binary(section(4, [0x01, 0x70, 0x03, 0x01, 0x02])), "unsupported limits flags 0x3 at byte 12");
    // memory64 (flag 0x04) is not supported.
    expectMalformed(binary(section(5, [0x01, 0x04, 0x01])), "unsupported limits flags 0x4 at byte 11");
    expectMalformed(binary(section(5, [0x01, 0x01, 0x03, 0x02])), "limits maximum below minimum at byte 11");
  });

  it("a name that is not UTF-8", () => {
    expectMalformed(binary(section(7, [0x01, 0x02, 0xc3, 0x28, 0x00, 0x00])), "name is not valid UTF-8 at byte 12");
  });

  it("unknown data segment flags", () => {
    expectMalformed(binary(section(11, [0x01, 0x03, 0x00])), "unknown data segment flags 3 at byte 11");
  });

  it("an opcode that is not allowed in a constant expression", () => {
    expectMalformed(
      binary(section(6, [0x01, 0x7f, 0x00, 0x01, 0x0b])),
      "unsupported opcode 0x1 in a constant expression at byte 13",
    );
  });

  it("a v128.const global reads, and a SIMD opcode that is not a constant is refused", () => {
    // (global (mut v128) (v128.const i64x2 0 0)): 0xfd, sub-opcode 12, 16 bytes.
    const v128 = [0x01, 0x7b, 0x01, 0xfd, 0x0c, ...new Array<number>(16).fill(0), 0x0b];
    expect(readModuleShape(binary(section(6, v128))).footprint.globals).toBe(1);
    expectMalformed(
      binary(section(6, [0x01, 0x7b, 0x01, 0xfd, 0x0d, 0x0b])),
      "unsupported SIMD opcode in a constant expression at byte 13",
    );
  });

  it("never throws anything but a DsoError on any truncation of a real module", () => {
    // Cutting a valid binary at every length exercises every read path's bounds check.
    const full = readFileSync(libexec("mod_calc.wasm"));
    const cuts: number[] = [];
    for (let length = 0; length < full.length; length++) {
      try {
        readModuleShape(full.subarray(0, length));
        cuts.push(length);
      } catch (error) {
        if (!(error instanceof DsoError) || error.code !== ErrorCodes.BAD_WASM) throw error;
      }
    }
    // A cut exactly between two sections is a valid (shorter) module.
    expect(cuts.length).toBeGreaterThan(0);
    expect(cuts.every((n) => n >= 8)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Load limits: what a binary declares, and refusals before the rest is read
// ---------------------------------------------------------------------------

/** The DsoError readModuleShape throws under `limits`. */
function limitFailure(bytes: Uint8Array, limits: Partial<LoadLimits>): DsoError {
  try {
    readModuleShape(bytes, { ...DEFAULT_LOAD_LIMITS, ...limits });
  } catch (error) {
    if (error instanceof DsoError) return error;
    throw new Error(`expected a DsoError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected readModuleShape to throw");
}

function expectOverLimit(bytes: Uint8Array, limits: Partial<LoadLimits>, message: string): void {
  const error = limitFailure(bytes, limits);
  expect({ code: error.code, message: error.message }).toEqual({ code: ErrorCodes.LOAD_LIMIT, message });
}

describe("readModuleShape: footprint", () => {
  it("counts imported and defined functions, globals and tables, the largest table, element segments and data", async () => {
    const bytes = await wat(`(module
      (import "env" "f" (func))
      (import "env" "g" (global i32))
      (import "libm" "t" (table 3 40 funcref))
      (memory 1)
      (table $a 2 5 funcref)
      (table $b 100 externref)
      (global i32 (i32.const 1))
      (global (mut i64) (i64.const 2))
      (func $x) (func $y) (func $z)
      (elem (table $a) (i32.const 0) func $x $y)
      (elem func $z)
      (data (i32.const 0) "abcd")
      (data "ef"))`);
    const shape = readModuleShape(bytes);
    expect(shape.footprint).toEqual({
      binarySize: bytes.length,
      functions: 4,
      globals: 3,
      tables: 3,
      tableElements: 100,
      elementSegments: 2,
      dataBytes: 6,
    });
    expect(shape.definedTables).toEqual([
      { element: "funcref", limits: { min: 2, max: 5, shared: false } },
      { element: "externref", limits: { min: 100, shared: false } },
    ]);
  });

  it("measures the real guests well inside the defaults", () => {
    for (const file of ["mod_calc.wasm", "mod_upload_filter.wasm", "mod_xfer_stats.wasm"]) {
      const { footprint } = readModuleShape(readFileSync(libexec(file)), DEFAULT_LOAD_LIMITS);
      expect(footprint.functions * 100).toBeLessThan(DEFAULT_LOAD_LIMITS.functions);
      expect(footprint.binarySize * 100).toBeLessThan(DEFAULT_LOAD_LIMITS.binarySize);
      expect(footprint.dataBytes * 100).toBeLessThan(DEFAULT_LOAD_LIMITS.dataBytes);
    }
  });
});

describe("readModuleShape: load limits refuse a binary with DSO_ERR_LOAD_LIMIT, naming the limit and the value", () => {
  it("a binary over its size, before any section is read", () => {
    // A truncated section after the header: the size refusal comes first.
    const bytes = new Uint8Array([...HEADER, 0x01, 0x7f]);
    expectOverLimit(
      bytes,
      { binarySize: 9 },
      "a binary of 10 bytes, over its limit of 9 (ModuleLoadLimits BinarySize)",
    );
    expect(() => readModuleShape(bytes, { ...DEFAULT_LOAD_LIMITS, binarySize: 10 })).toThrow(
      /section size|runs past the end/,
    );
  });

  it("a million-function bomb, from the function section's count alone", () => {
    // The count says 1,000,000 but no entry follows: refused before a single one is read.
    const bytes = binary(section(1, [0x01, 0x60, 0x00, 0x00]), section(3, leb(1_000_000)));
    expectOverLimit(bytes, {}, "1000000 functions, over its limit of 100000 (ModuleLoadLimits Functions)");
  });

  it("functions counted across imports and definitions", async () => {
    const bytes = await wat(`(module (import "env" "a" (func)) (import "env" "b" (func)) (func) (func))`);
    expectOverLimit(bytes, { functions: 3 }, "4 functions, over its limit of 3 (ModuleLoadLimits Functions)");
    expect(readModuleShape(bytes, { ...DEFAULT_LOAD_LIMITS, functions: 4 }).footprint.functions).toBe(4);
    expectOverLimit(bytes, { functions: 1 }, "2 functions, over its limit of 1 (ModuleLoadLimits Functions)");
  });

  it("globals, imported and defined", async () => {
    const bytes = await wat(
      `(module (import "env" "g" (global i32)) (global i32 (i32.const 0)) (global i32 (i32.const 1)))`,
    );
    expectOverLimit(bytes, { globals: 2 }, "3 globals, over its limit of 2 (ModuleLoadLimits Globals)");
  });

  it("tables, and a 10 M-element table from its 46-byte declaration", async () => {
    expectOverLimit(
      await wat(`(module (import "env" "t" (table 1 1 funcref)) (table 1 1 funcref))`),
      { tables: 1 },
      "2 tables, over its limit of 1 (ModuleLoadLimits Tables)",
    );
    const bomb = await wat(
      `(module (table (export "t") 10000000 funcref) (global (export "tablebomb_module") i32 (i32.const 32)))`,
    );
    expect(bomb.length).toBeLessThan(64);
    expectOverLimit(
      bomb,
      {},
      "a table of 10000000 elements, over its limit of 100000 (ModuleLoadLimits TableElements)",
    );
  });

  it("a table's declared maximum counts, imported or defined", async () => {
    expectOverLimit(
      await wat(`(module (table 1 200000 funcref))`),
      {},
      "a table of 200000 elements, over its limit of 100000 (ModuleLoadLimits TableElements)",
    );
    expectOverLimit(
      await wat(`(module (import "libm" "t" (table 0 5000 externref)))`),
      { tableElements: 4999 },
      "a table of 5000 elements, over its limit of 4999 (ModuleLoadLimits TableElements)",
    );
  });

  it("element segments, from the element section's count", () => {
    const bytes = binary(section(9, leb(50_000)));
    expectOverLimit(bytes, {}, "50000 element segments, over its limit of 10000 (ModuleLoadLimits ElementSegments)");
  });

  it("data segment bytes, active and passive together", async () => {
    const bytes = await wat(`(module (memory 1) (data (i32.const 0) "abcdef") (data "ghij"))`);
    expectOverLimit(
      bytes,
      { dataBytes: 9 },
      "10 bytes of data segments, over its limit of 9 (ModuleLoadLimits DataBytes)",
    );
    expect(readModuleShape(bytes, { ...DEFAULT_LOAD_LIMITS, dataBytes: 10 }).dataBytes).toBe(10);
  });

  it("without limits, reads whatever the binary declares", () => {
    const shape = readModuleShape(binary(section(9, leb(50_000))));
    expect(shape.footprint.elementSegments).toBe(50_000);
  });
});
