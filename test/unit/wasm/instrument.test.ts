import { readFileSync, readdirSync } from "node:fs";
import wabtInit from "wabt";
import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { LOOP_CHUNK, fuelExportName, instrumentFuel, isInstrumented, refuelImport } from "../../../host/wasm/instrument.js";
import { FIXTURES_DIR, LIBEXEC_DIR, fixture, libexec } from "../../helpers/paths.js";
import { wat } from "../../helpers/wat.js";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

class BudgetSpent extends Error {}

interface Fueled {
  readonly exports: WebAssembly.Exports;
  readonly fuel: WebAssembly.Global;
  /** How many times refuel was called. */
  refills(): number;
}

/**
 * Instantiates an instrumented module with a refuel that refills `refill`
 * units up to `maxRefills` times, then throws `error` (a host's budget check
 * reduced to a count, so the tests are deterministic).
 */
async function instantiateFueled(
  bytes: Uint8Array<ArrayBuffer>,
  imports: WebAssembly.Imports = {},
  options: { refill?: number; maxRefills?: number; error?: Error } = {},
): Promise<Fueled> {
  const refill = options.refill ?? 100_000;
  const maxRefills = options.maxRefills ?? Infinity;
  const error = options.error ?? new BudgetSpent("budget spent");
  let calls = 0;
  let fuel: WebAssembly.Global | undefined;
  let pendingFuel = 0;
  const { instance } = await WebAssembly.instantiate(instrumentFuel(bytes).bytes, {
    ...imports,
    [refuelImport.module]: {
      [refuelImport.name]: () => {
        calls++;
        if (calls > maxRefills) throw error;
        // A start function runs before instantiate returns the instance; it gets fuel through the module object below.
        if (fuel !== undefined) fuel.value = refill;
        else pendingFuel = refill;
      },
    },
  });
  fuel = instance.exports[fuelExportName] as WebAssembly.Global;
  if (pendingFuel > 0) fuel.value = pendingFuel;
  return { exports: instance.exports, fuel, refills: () => calls };
}

function expectBadWasm(fn: () => unknown, message?: RegExp): DsoError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DsoError);
    const e = error as DsoError;
    expect(e.code).toBe(ErrorCodes.BAD_WASM);
    if (message !== undefined) expect(e.message).toMatch(message);
    return e;
  }
  throw new Error("expected a DsoError");
}

/** A seeded PRNG (mulberry32): the fuzz loop is reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Fn = (...args: number[]) => unknown;

// ---------------------------------------------------------------------------
// Same behaviour, instrumented or not
// ---------------------------------------------------------------------------

const KITCHEN_SINK = `(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (import "env" "g0" (global $g0 i32))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (type $unop (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table $t 8 funcref)
  (table $t2 (export "table2") 4 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $dbl))
  (data $d "\\01\\02\\03\\04\\05\\06\\07\\08")
  (elem (table $t) (i32.const 0) func $inc $dbl $sq)
  (elem $passive funcref (ref.func $sq) (ref.func $inc) (ref.null func))
  (elem declare func $neg)
  (elem (table $t2) (i32.const 1) funcref (ref.func $neg) (ref.func $inc))
  (start $init)
  (func $init (global.set $started (i32.const 42)))
  (func $inc (type $unop) (i32.add (local.get 0) (i32.const 1)))
  (func $dbl (type $unop) (i32.mul (local.get 0) (i32.const 2)))
  (func $sq (type $unop) (i32.mul (local.get 0) (local.get 0)))
  (func $neg (type $unop) (i32.sub (i32.const 0) (local.get 0)))
  (func (export "started") (result i32) (global.get $started))
  (func (export "imported") (param i32 i32) (result i32)
    (call $twice (call $add (local.get 0) (local.get 1))))
  (func (export "indirect") (param $i i32) (param $x i32) (result i32)
    (call_indirect $t (type $unop) (local.get $x) (local.get $i)))
  (func (export "indirect2") (param $i i32) (param $x i32) (result i32)
    (call_indirect $t2 (type $unop) (local.get $x) (local.get $i)))
  (func (export "passive") (param $x i32) (result i32)
    (table.init $t $passive (i32.const 4) (i32.const 0) (i32.const 2))
    (i32.add (call_indirect $t (type $unop) (local.get $x) (i32.const 4))
             (call_indirect $t (type $unop) (local.get $x) (i32.const 5))))
  (func (export "reffunc") (param $x i32) (result i32)
    (table.set $t (i32.const 6) (ref.func $neg))
    (table.set $t (i32.const 7) (global.get $fref))
    (i32.add (call_indirect $t (type $unop) (local.get $x) (i32.const 6))
             (call_indirect $t (type $unop) (local.get $x) (i32.const 7))))
  (func $fact (export "fact") (param $n i32) (result i32) (local $acc i32)
    (local.set $acc (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.le_s (local.get $n) (i32.const 1)))
        (local.set $acc (i32.mul (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $acc))
  (func (export "switch") (param $x i32) (result i32)
    (block $c (block $b (block $a
      (br_table $a $b $c (local.get $x)))
      (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  (func (export "ifelse") (param $x i32) (result i32)
    (if (result i32) (i32.and (local.get $x) (i32.const 1))
      (then (call $fact (local.get $x)))
      (else (i32.add (global.get $g0) (local.get $x)))))
  (func $pair (param i32) (result i32 i32) (local.get 0) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "multivalue") (param $x i32) (result i32)
    (call $pair (local.get $x))
    (block (param i32 i32) (result i32) (i32.sub))
    (loop (param i32) (result i32) (i32.add (i32.const 1))))
  (func (export "loopparams") (param $n i32) (result i32)
    (i32.const 0)
    (loop $l (param i32) (result i32)
      (i32.add (local.get $n))
      (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l)))
  (func (export "bulk") (result i32)
    (memory.init $d (i32.const 100) (i32.const 0) (i32.const 8))
    (data.drop $d)
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 8))
    (memory.fill (i32.const 204) (i32.const 9) (i32.const 2))
    (i32.add (i32.load (i32.const 200)) (i32.load (i32.const 204))))
  (func (export "simd") (param $x i32) (result i32)
    (v128.store (i32.const 300) (v128.const i32x4 1 2 3 4))
    (i32x4.extract_lane 2
      (i32x4.add
        (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (v128.load (i32.const 300)) (i32x4.splat (local.get $x)))
        (v128.load32_splat (i32.const 304)))))
  (func (export "misc") (param $x f64) (result i32)
    (i32.add (i32.trunc_sat_f64_s (local.get $x)) (i32.extend8_s (i32.const 0xff))))
  (func (export "select") (param $x i32) (result i32)
    (select (result i32) (i32.const 5) (i32.const 6) (local.get $x)))
  (func (export "tablesize") (result i32)
    (i32.add (table.size $t) (table.grow $t2 (ref.null func) (i32.const 2))))
)`;

const SINK_CALLS: ReadonlyArray<[string, number[]]> = [
  ["started", []],
  ["imported", [3, 4]],
  ["indirect", [0, 7]],
  ["indirect", [1, 7]],
  ["indirect", [2, 7]],
  ["indirect2", [1, 7]],
  ["indirect2", [2, 7]],
  ["passive", [5]],
  ["reffunc", [5]],
  ["fact", [10]],
  ["switch", [0]],
  ["switch", [1]],
  ["switch", [2]],
  ["switch", [9]],
  ["ifelse", [5]],
  ["ifelse", [6]],
  ["multivalue", [7]],
  ["loopparams", [100]],
  ["bulk", []],
  ["simd", [10]],
  ["misc", [12.9]],
  ["select", [0]],
  ["select", [1]],
  ["tablesize", []],
];

function sinkImports(): WebAssembly.Imports {
  return {
    env: {
      add: (a: number, b: number) => a + b,
      twice: (a: number) => a * 2,
      g0: new WebAssembly.Global({ value: "i32", mutable: false }, 1000),
    },
  };
}

describe("instrumentFuel: behaviour is unchanged", () => {
  it("validates and gives the same results for calls, tables, element segments, start, blocks, multi-value, bulk memory and SIMD", async () => {
    const bytes = await wat(KITCHEN_SINK);
    const out = instrumentFuel(bytes);
    expect(WebAssembly.validate(out.bytes)).toBe(true);
    expect(out.fuelGlobal).toBe(fuelExportName);
    expect(out.refuelImport).toEqual({ module: "dso_sandbox", name: "refuel" });

    const plain = (await WebAssembly.instantiate(bytes, sinkImports())).instance.exports;
    // Tiny refills so the slow path runs often while the results are compared.
    const fueled = await instantiateFueled(bytes, sinkImports(), { refill: 3 });
    for (const [name, args] of SINK_CALLS) {
      expect([name, (fueled.exports[name] as Fn)(...args)]).toEqual([name, (plain[name] as Fn)(...args)]);
    }
    expect(fueled.refills()).toBeGreaterThan(0);
  });

  it("places the refuel import after the existing function imports and keeps every other import and export", async () => {
    const bytes = await wat(KITCHEN_SINK);
    const before = new WebAssembly.Module(bytes);
    const after = new WebAssembly.Module(instrumentFuel(bytes).bytes);
    expect(WebAssembly.Module.imports(after)).toEqual([
      ...WebAssembly.Module.imports(before),
      { module: "dso_sandbox", name: "refuel", kind: "function" },
    ]);
    expect(WebAssembly.Module.exports(after)).toEqual([
      ...WebAssembly.Module.exports(before),
      { name: fuelExportName, kind: "global" },
    ]);
  });

  it("instruments modules without imports, exports, globals, types or functions", async () => {
    for (const text of ["(module)", "(module (memory 1))", '(module (func (export "f") (result i32) (i32.const 7)))']) {
      const out = instrumentFuel(await wat(text));
      expect(WebAssembly.validate(out.bytes)).toBe(true);
      expect(isInstrumented(out.bytes)).toBe(true);
    }
  });

  it("renumbers the name section so traps still name guest functions", async () => {
    const wabt = await wabtInit();
    const parsed = wabt.parseWat("named.wat", `(module
      (import "env" "f" (func $imported))
      (func $helper (param $x i32) (result i32) (if (local.get $x) (then unreachable)) (i32.const 1))
      (func (export "boom") (result i32) (call $helper (i32.const 1))))`);
    parsed.resolveNames();
    const bytes = new Uint8Array(parsed.toBinary({ write_debug_names: true }).buffer);
    parsed.destroy();
    const fueled = await instantiateFueled(bytes, { env: { f: () => {} } });
    let stack = "";
    try {
      (fueled.exports.boom as Fn)();
    } catch (error) {
      stack = String((error as Error).stack);
    }
    expect(stack).toMatch(/\$?helper/);
  });

  const guests = [
    ...readdirSync(LIBEXEC_DIR).filter((f) => f.endsWith(".wasm")).map(libexec),
    ...readdirSync(FIXTURES_DIR).filter((f) => f.endsWith(".wasm")).map(fixture),
  ];
  it.each(guests)("accepts the AssemblyScript guest %s with the same exports", (file) => {
    const bytes = readFileSync(file);
    const out = instrumentFuel(bytes);
    const before = new WebAssembly.Module(bytes);
    const after = new WebAssembly.Module(out.bytes);
    expect(WebAssembly.Module.exports(after)).toEqual([...WebAssembly.Module.exports(before), { name: fuelExportName, kind: "global" }]);
    expect(WebAssembly.Module.imports(after)).toEqual([
      ...WebAssembly.Module.imports(before),
      { module: "dso_sandbox", name: "refuel", kind: "function" },
    ]);
    expect(isInstrumented(bytes)).toBe(false);
    expect(isInstrumented(out.bytes)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Interruption
// ---------------------------------------------------------------------------

const RUNAWAY = `(module
  (global $counter (export "counter") (mut i32) (i32.const 0))
  (func (export "spin") (loop $l (br $l)))
  (func (export "busy") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (global.set $counter (local.get $i))
      (br_if $l (i32.ne (local.get $i) (i32.const -1)))))
  (func $depth (export "depth") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $depth (i32.sub (local.get $n) (i32.const 1)))))))
  (func $forever (export "forever") (param $n i32) (result i32)
    (i32.add (i32.const 1) (call $forever (i32.add (local.get $n) (i32.const 1)))))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))`;

describe("instrumentFuel: interruption", () => {
  it("stops `loop br 0` with refuel's exact error", async () => {
    const error = new BudgetSpent("spin stopped");
    const fueled = await instantiateFueled(await wat(RUNAWAY), {}, { refill: 1000, maxRefills: 50, error });
    expect(() => (fueled.exports.spin as Fn)()).toThrow(error);
    expect(fueled.refills()).toBe(51);
  });

  it("stops a busy loop, leaving its state as it was", async () => {
    const error = new BudgetSpent("busy stopped");
    const fueled = await instantiateFueled(await wat(RUNAWAY), {}, { refill: LOOP_CHUNK * 10, maxRefills: 5, error });
    expect(() => (fueled.exports.busy as Fn)()).toThrow(error);
    const counter = (fueled.exports.counter as WebAssembly.Global).value as number;
    // Each refill pays for ten chunks of iterations; the first chunk is charged up front.
    expect(counter).toBeGreaterThan(LOOP_CHUNK * 10 * 5);
    expect(counter).toBeLessThanOrEqual(LOOP_CHUNK * 10 * 6);
  });

  it("unwinds deep recursion when the budget runs out in the middle of it", async () => {
    const error = new BudgetSpent("deep stop");
    const fueled = await instantiateFueled(await wat(RUNAWAY), {}, { refill: 100, maxRefills: 20, error });
    expect(() => (fueled.exports.depth as Fn)(5000)).toThrow(error);
    // The instance still works afterwards with fresh fuel.
    fueled.fuel.value = 1_000_000;
    expect((fueled.exports.depth as Fn)(1000)).toBe(1000);
  });

  it("contains infinite recursion: stack overflow or the budget, whichever comes first", async () => {
    const bytes = await wat(RUNAWAY);
    const generous = await instantiateFueled(bytes, {}, { refill: 1_000_000 });
    expect(() => (generous.exports.forever as Fn)(0)).toThrow(RangeError);
    const error = new BudgetSpent("forever stopped");
    const strict = await instantiateFueled(bytes, {}, { refill: 10, maxRefills: 3, error });
    expect(() => (strict.exports.forever as Fn)(0)).toThrow(error);
  });

  it("computes the same results as uninstrumented with a generous refuel", async () => {
    const bytes = await wat(RUNAWAY);
    const plain = (await WebAssembly.instantiate(bytes)).instance.exports;
    const fueled = await instantiateFueled(bytes, {}, { refill: 5000 });
    expect((fueled.exports.fib as Fn)(22)).toBe((plain.fib as Fn)(22));
    expect((fueled.exports.depth as Fn)(3000)).toBe((plain.depth as Fn)(3000));
    expect(fueled.refills()).toBeGreaterThan(1);
  });

  it("stops an unprepared call at once (the counter starts at zero)", async () => {
    const error = new BudgetSpent("no budget");
    const fueled = await instantiateFueled(await wat(RUNAWAY), {}, { maxRefills: 0, error });
    expect(() => (fueled.exports.spin as Fn)()).toThrow(error);
  });

  it("traps a guest that catches refuel's exception with catch_all", async () => {
    const bytes = await wat(
      `(module
        (func (export "stubborn") (result i32) (local $n i32)
          (loop $again
            (try (do (loop $l (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l)))
                 (catch_all))
            (br $again))
          (local.get $n)))`,
      { exceptions: true },
    );
    const fueled = await instantiateFueled(bytes, {}, { refill: 100, maxRefills: 2 });
    expect(() => (fueled.exports.stubborn as Fn)()).toThrow(WebAssembly.RuntimeError);
    // Bounded retries: refuel was not called forever.
    expect(fueled.refills()).toBeLessThan(2 + 16 * LOOP_CHUNK + 10);
  });

  it("traps at once when refuel returns without refilling", async () => {
    const bytes = instrumentFuel(await wat(RUNAWAY)).bytes;
    const { instance } = await WebAssembly.instantiate(bytes, { dso_sandbox: { refuel: () => {} } });
    expect(() => (instance.exports.spin as Fn)()).toThrow(/unreachable/);
  });
});

// ---------------------------------------------------------------------------
// Malformed and hostile input
// ---------------------------------------------------------------------------

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** One `() -> ()` function whose body (after the locals vector) is `code`. */
function moduleWithBody(code: number[], sizeOverride?: number): Uint8Array<ArrayBuffer> {
  const body = [0x00, ...code];
  const size = sizeOverride ?? body.length;
  const codeSection = [0x01, size, ...body];
  return Uint8Array.from([
    ...HEADER,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
    0x03, 0x02, 0x01, 0x00, // function section
    0x0a, codeSection.length, ...codeSection,
  ]);
}

describe("instrumentFuel: malformed input", () => {
  it("accepts the hand-made baseline", () => {
    expect(WebAssembly.validate(instrumentFuel(moduleWithBody([0x01, 0x0b])).bytes)).toBe(true);
  });

  it("refuses an unknown opcode, naming the function and byte offset", () => {
    expectBadWasm(() => instrumentFuel(moduleWithBody([0xff, 0x0b])), /unknown opcode 0xff in function 0 at byte \d+/);
    expectBadWasm(() => instrumentFuel(moduleWithBody([0xfd, 0x9a, 0x01, 0x0b])), /unknown SIMD opcode/);
    expectBadWasm(() => instrumentFuel(moduleWithBody([0xfc, 0x12, 0x0b])), /unknown opcode 0xfc 18/);
    expectBadWasm(() => instrumentFuel(moduleWithBody([0xfb, 0x00, 0x0b])), /unknown opcode 0xfb/);
  });

  it("refuses truncated bodies and sections", () => {
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x01])), /function 0/); // no end
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x41])), /function 0/); // i32.const without immediate
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x01, 0x0b], 40)), /runs past/);
    const whole = moduleWithBody([0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b]);
    // Cut anywhere inside the code section (its last 10 bytes: id, size, count, body size, body).
    for (let cut = whole.length - 10; cut < whole.length; cut++) expectBadWasm(() => instrumentFuel(whole.subarray(0, cut)));
    // Cuts at a section boundary leave a valid, shorter module; anywhere else a DsoError.
    for (let cut = 0; cut < whole.length - 10; cut++) {
      try {
        expect(WebAssembly.validate(instrumentFuel(whole.subarray(0, cut)).bytes)).toBe(true);
      } catch (error) {
        expect(error).toBeInstanceOf(DsoError);
      }
    }
  });

  it("refuses bytes after a function's final end", () => {
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x0b, 0x01])), /after its final end/);
  });

  it("refuses references to globals and functions past the input's counts (the fuel counter must stay unreachable)", () => {
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x41, 0x00, 0x24, 0x00, 0x0b])), /global index 0 out of range/);
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x10, 0x01, 0x0b])), /function index 1 out of range/);
  });

  it("refuses the sandbox's reserved names and double instrumentation", async () => {
    expectBadWasm(() => instrumentFuel(instrumentFuel(moduleWithBody([0x0b])).bytes), /reserved|dso_sandbox/);
    expectBadWasm(() => instrumentFuel(moduleWithBody([0x0b]).subarray(0, 0)), /magic/);
    const spoof = await wat(`(module (global (export "${fuelExportName}") (mut i32) (i32.const 9)))`);
    expectBadWasm(() => instrumentFuel(spoof), /reserved/);
    const sneaky = await wat(`(module (import "dso_sandbox" "refuel" (func)))`);
    expectBadWasm(() => instrumentFuel(sneaky), /reserved/);
  });

  it("throws only DsoError on mutated guests, and what it emits V8 accepts or rejects cleanly", () => {
    const originals = [readFileSync(libexec("mod_test.wasm")), readFileSync(libexec("mod_calc.wasm"))];
    const random = prng(0x5eed);
    let produced = 0;
    let refused = 0;
    for (let round = 0; round < 3000; round++) {
      const original = originals[round % originals.length] as Uint8Array;
      const bytes = new Uint8Array(original);
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const at = 8 + Math.floor(random() * (bytes.length - 8));
        const kind = random();
        if (kind < 0.6) bytes[at] = Math.floor(random() * 256);
        else if (kind < 0.8) bytes[at] = (bytes[at] as number) ^ (1 << Math.floor(random() * 8));
        else bytes[at] = [0x00, 0x0b, 0x03, 0x10, 0xfd, 0xfc, 0x80, 0xff][Math.floor(random() * 8)] as number;
      }
      const input = random() < 0.1 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
      let out: Uint8Array<ArrayBuffer>;
      try {
        out = instrumentFuel(input).bytes;
      } catch (error) {
        if (!(error instanceof DsoError)) throw new Error(`round ${round}: ${String(error)}`, { cause: error });
        expect(error.code).toBe(ErrorCodes.BAD_WASM);
        refused++;
        continue;
      }
      produced++;
      try {
        new WebAssembly.Module(out);
      } catch (error) {
        expect(error).toBeInstanceOf(WebAssembly.CompileError);
        // What V8 refuses after instrumenting, it must refuse before too.
        expect(WebAssembly.validate(input)).toBe(false);
      }
    }
    expect(produced).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});
