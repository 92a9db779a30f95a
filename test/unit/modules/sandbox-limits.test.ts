/**
 * Issue #12's limits in the module host: tables count against the memory cap
 * (memory-cap.ts, pure, then through ModuleHost), and load limits refuse a
 * binary before it is compiled, naming the module, the value and the limit.
 */
import { statSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ErrorCodes } from "../../../host/errors.js";
import { dsoFailure } from "../../helpers/failure.js";
import { shareMemoryCap } from "../../../host/modules/memory-cap.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY, PolicyTable } from "../../../host/modules/policy.js";
import type { UnitPolicy } from "../../../host/modules/policy.js";
import { DEFAULT_LOAD_LIMITS, TABLE_ELEMENT_BYTES, tableBytes } from "../../../host/wasm/limits.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

const API = "(i32.const 0x20)";
const PAGE = 65_536;

async function shapeOf(text: string): Promise<ReturnType<typeof readModuleShape>> {
  return readModuleShape(await wat(text));
}

describe("the bytes V8 keeps per table element", () => {
  it("counts 28 per funcref element and 8 per externref element", () => {
    expect(TABLE_ELEMENT_BYTES).toEqual({ funcref: 28, externref: 8 });
    expect(tableBytes("funcref", 1000)).toBe(28_000);
    expect(tableBytes("externref", 1000)).toBe(8_000);
  });
});

describe("shareMemoryCap", () => {
  it("gives the memory the whole cap when there are no tables", async () => {
    expect(shareMemoryCap("mod_x.c", await shapeOf(`(module (import "env" "memory" (memory 1)))`), 256)).toEqual({
      tableBytes: 0,
      memoryPages: 256,
    });
  });

  it("takes the tables' maxima off the cap, imported and defined, and leaves whole pages to the memory", async () => {
    const shape = await shapeOf(`(module
      (import "libm" "t" (table 1 100 funcref))
      (table 0 2000 externref)
      (table 1 1 funcref))`);
    const bytes = 100 * 28 + 2000 * 8 + 28;
    expect(shareMemoryCap("mod_x.c", shape, 4)).toEqual({
      tableBytes: bytes,
      memoryPages: Math.floor((4 * PAGE - bytes) / PAGE),
    });
    expect(shareMemoryCap("mod_x.c", shape, 4).memoryPages).toBe(3);
  });

  it("refuses a defined table with no maximum", async () => {
    const shape = await shapeOf(`(module (table 10 funcref))`);
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", shape, 16))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_x.c defines a table with no maximum; declare one within its memory cap of 1048576 bytes (28 bytes per funcref element, 8 per externref)",
    });
  });

  it("refuses an imported table with no maximum", async () => {
    const shape = await shapeOf(`(module (import "libm" "handlers" (table 1 funcref)))`);
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", shape, 16))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_x.c imports table 'libm.handlers' with no maximum; declare one within its memory cap of 1048576 bytes (28 bytes per funcref element, 8 per externref)",
    });
  });

  it("refuses tables whose maxima do not fit the cap", async () => {
    // 37,449 funcref elements fit 1 MiB (1,048,572 bytes); 37,450 do not.
    expect(shareMemoryCap("mod_x.c", await shapeOf(`(module (table 1 37449 funcref))`), 16)).toEqual({
      tableBytes: 1_048_572,
      memoryPages: 0,
    });
    const shape = await shapeOf(`(module (table 1 37450 funcref))`);
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", shape, 16))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_x.c's tables may grow to 1048600 bytes (28 bytes per funcref element, 8 per externref), over its memory cap of 1048576 bytes",
    });
  });

  it("refuses a memory of its own that does not fit beside its tables, in the same words as without them", async () => {
    const alone = await shapeOf(`(module (memory 1 4))`);
    expect(shareMemoryCap("mod_x.c", alone, 4)).toEqual({ tableBytes: 0, memoryPages: 4 });
    const withTable = await shapeOf(`(module (memory 1 4) (table 1 1 funcref))`);
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", withTable, 4))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_x.c defines its own memory with a maximum of 4 pages; import env.memory or declare a maximum within the 3 pages its cap of 4 pages leaves beside its tables (28 bytes)",
    });
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", alone, 3))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_x.c defines its own memory with a maximum of 4 pages; import env.memory or declare a maximum within its cap of 3 pages",
    });
  });

  it("refuses an env.memory import asking for more than its tables leave", async () => {
    const shape = await shapeOf(`(module (import "env" "memory" (memory 4)) (table 1 1 externref))`);
    expect(dsoFailure(() => shareMemoryCap("mod_x.c", shape, 4))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message: "mod_x.c: memory needs 4 pages, over the 3 pages its cap of 4 pages leaves beside its tables (8 bytes)",
    });
  });
});

// ---------------------------------------------------------------------------
// Through the module host
// ---------------------------------------------------------------------------

let dir: string;

beforeAll(async () => {
  dir = writeModuleDir({
    // A table of up to 2,340 funcref elements (65,520 bytes) and env.memory: with a 2-page cap the memory gets 1 page.
    "mod_tbl.wasm": await wat(`(module
      (import "env" "memory" (memory 1))
      (table $t 1 2340 funcref)
      (global (export "tbl_module") i32 ${API})
      (func (export "tbl_grow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
      (func (export "tbl_size") (result i32) (table.size $t))
      (func (export "tbl_mem_grow") (param i32) (result i32) (memory.grow (local.get 0))))`),
    "mod_nomax.wasm": await wat(`(module (table 1 funcref) (global (export "nomax_module") i32 ${API}))`),
    "mod_tablebomb.wasm": await wat(
      `(module (table 10000000 10000000 funcref) (global (export "tablebomb_module") i32 ${API}))`,
    ),
    "mod_manyglobals.wasm": await wat(
      `(module (global (export "manyglobals_module") i32 ${API}) ${"(global i32 (i32.const 0)) ".repeat(20)})`,
    ),
  });
});

afterAll(() => removeModuleDirs());

afterEach(() => {
  vi.restoreAllMocks();
});

function hostWith(policy: (unit: string) => UnitPolicy): { host: ModuleHost; logs: string[] } {
  const logs: string[] = [];
  return { host: new ModuleHost({ modulePath: dir, policy, log: (_p, m) => logs.push(m) }), logs };
}

describe("ModuleHost: tables inside the memory cap", () => {
  it("gives env.memory what the tables leave of the cap; table.grow past the declared maximum returns -1", () => {
    const { host } = hostWith(() => ({ ...DEFAULT_POLICY, memoryCapPages: 2 }));
    host.loadModule("mod_tbl.c");
    const grow = host.dlsym("tbl_grow") as (n: number) => number;
    const size = host.dlsym("tbl_size") as () => number;
    const memGrow = host.dlsym("tbl_mem_grow") as (n: number) => number;
    expect(grow(10_000_000)).toBe(-1);
    expect(grow(2339)).toBe(1);
    expect(size()).toBe(2340);
    expect(grow(1)).toBe(-1);
    // 2 pages less 65,520 bytes of table: one page, which the memory already has.
    expect(memGrow(1)).toBe(-1);
    host.close();
    const roomy = hostWith(() => ({ ...DEFAULT_POLICY, memoryCapPages: 3 })).host;
    roomy.loadModule("mod_tbl.c");
    expect((roomy.dlsym("tbl_mem_grow") as (n: number) => number)(1)).toBe(1);
    expect((roomy.dlsym("tbl_mem_grow") as (n: number) => number)(1)).toBe(-1);
    roomy.close();
  });

  it("refuses a table with no maximum at load, and logs why", () => {
    const { host, logs } = hostWith(() => DEFAULT_POLICY);
    expect(dsoFailure(() => host.loadModule("mod_nomax.c"))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_nomax.c defines a table with no maximum; declare one within its memory cap of 16777216 bytes (28 bytes per funcref element, 8 per externref)",
    });
    expect(logs).toContain(
      "mod_dso/0.5: mod_nomax.c defines a table with no maximum; declare one within its memory cap of 16777216 bytes (28 bytes per funcref element, 8 per externref)",
    );
    expect(host.listModules()).toEqual([]);
  });

  it("refuses a table that does not fit the cap once its load limit is raised past it", () => {
    const policies = new PolicyTable();
    policies.setLoadLimit("mod_tablebomb.c", "tableElements", 10_000_000);
    const { host } = hostWith((unit) => policies.resolve(unit));
    expect(dsoFailure(() => host.loadModule("mod_tablebomb.c"))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      message:
        "mod_tablebomb.c's tables may grow to 280000000 bytes (28 bytes per funcref element, 8 per externref), over its memory cap of 16777216 bytes",
    });
  });
});

describe("ModuleHost: load limits", () => {
  it("refuses a 10 M-element table before compiling it, naming the module, the value and the limit", () => {
    const compile = vi.spyOn(WebAssembly, "Module");
    const { host, logs } = hostWith(() => DEFAULT_POLICY);
    expect(dsoFailure(() => host.loadModule("mod_tablebomb.c"))).toEqual({
      code: ErrorCodes.LOAD_LIMIT,
      message:
        "mod_tablebomb.c: a table of 10000000 elements, over its limit of 100000 (ModuleLoadLimits TableElements)",
    });
    expect(compile).not.toHaveBeenCalled();
    expect(logs).toEqual([
      "mod_dso/0.5: mod_tablebomb.c: a table of 10000000 elements, over its limit of 100000 (ModuleLoadLimits TableElements)",
    ]);
    // The spy does see the host compile: a module within its limits is compiled once.
    host.loadModule("mod_manyglobals.c");
    expect(compile).toHaveBeenCalledTimes(1);
  });

  it("applies a unit's own limit over `*`'s, limit by limit, and the defaults for the rest", () => {
    const policies = new PolicyTable();
    policies.setLoadLimit("*", "globals", 5);
    policies.setLoadLimit("*", "functions", 7);
    policies.setLoadLimit("mod_manyglobals.c", "globals", 30);
    expect(policies.resolve("mod_manyglobals.c").loadLimits).toEqual({
      ...DEFAULT_LOAD_LIMITS,
      globals: 30,
      functions: 7,
    });
    expect(policies.resolve("mod_other.c").loadLimits).toEqual({ ...DEFAULT_LOAD_LIMITS, globals: 5, functions: 7 });
    expect(new PolicyTable().resolve("mod_x.c").loadLimits).toBe(DEFAULT_LOAD_LIMITS);
    const { host } = hostWith((unit) => policies.resolve(unit));
    host.loadModule("mod_manyglobals.c");
    expect(host.listModules()).toEqual(["mod_manyglobals.c"]);
  });

  it("refuses a file over its BinarySize from its size, before reading it", () => {
    const policies = new PolicyTable();
    policies.setLoadLimit("mod_manyglobals.c", "binarySize", 100);
    const { host } = hostWith((unit) => policies.resolve(unit));
    const size = statSync(path.join(dir, "mod_manyglobals.wasm")).size;
    expect(size).toBeGreaterThan(100);
    expect(dsoFailure(() => host.loadModule("mod_manyglobals.c"))).toEqual({
      code: ErrorCodes.LOAD_LIMIT,
      message: `mod_manyglobals.c: a binary of ${size} bytes, over its limit of 100 (ModuleLoadLimits BinarySize)`,
    });
  });

  it("checks a binary compiled for an earlier load against the limits of the next", () => {
    const policies = new PolicyTable();
    const { host } = hostWith((unit) => policies.resolve(unit));
    host.loadModule("mod_manyglobals.c");
    host.unloadModule("mod_manyglobals.c");
    policies.setLoadLimit("mod_manyglobals.c", "globals", 20);
    const compile = vi.spyOn(WebAssembly, "Module");
    expect(dsoFailure(() => host.loadModule("mod_manyglobals.c"))).toEqual({
      code: ErrorCodes.LOAD_LIMIT,
      message: "mod_manyglobals.c: 21 globals, over its limit of 20 (ModuleLoadLimits Globals)",
    });
    expect(compile).not.toHaveBeenCalled();
  });
});
