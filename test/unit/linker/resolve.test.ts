import { beforeAll, describe, expect, it } from "vitest";
import { GLOBAL_NAMESPACE, resolveImports } from "../../../host/linker/resolve.js";
import type { ResolveEnvironment, ResolveResult } from "../../../host/linker/resolve.js";
import { problemLine } from "../../../host/linker/problems.js";
import { SymbolScope } from "../../../host/linker/scope.js";
import type { Definition, Provider } from "../../../host/linker/scope.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import type { ImportEntry, ModuleShape } from "../../../host/wasm/types.js";
import { wat } from "../../helpers/wat.js";

// The providers' shapes come from real binaries (WAT compiled by wabt, read by
// the reader), so the types under test are exactly what a guest would carry.

const libfoo: Provider = { kind: "library", name: "libfoo", seq: 1 };
const modLib: Provider = { kind: "module", name: "mod_lib.c", seq: 2 };

/** The result with each problem as the line an operator reads. */
function withLines(result: ResolveResult): { bindings: ResolveResult["bindings"]; problems: string[] } {
  return { bindings: result.bindings, problems: result.problems.map(problemLine) };
}

let libfooShape: ModuleShape;
let modLibShape: ModuleShape;

beforeAll(async () => {
  libfooShape = readModuleShape(
    await wat(`(module
      (func (export "bar") (param i32 i32) (result i32) local.get 0)
      (func (export "baz") (result i64) i64.const 0)
      (global (export "counter") (mut i32) (i32.const 0))
      (global (export "limit") i64 (i64.const 10))
      (memory (export "heap") 2 10)
      (table (export "handlers") 4 16 funcref))`),
  );
  modLibShape = readModuleShape(
    await wat(`(module
      (global (export "lib_module") i32 (i32.const 0x20))
      (func (export "helper") (param f64) (result f64) local.get 0))`),
  );
});

function definitionsOf(shape: ModuleShape, provider: Provider): Definition[] {
  return shape.exports.map((e) => ({ name: e.name, type: e.type, provider }));
}

/** A global scope holding libfoo, plus direct namespaces `libfoo` and `mod_lib`. */
function environment(memoryCapPages = 256): ResolveEnvironment {
  const scope = new SymbolScope();
  scope.add(definitionsOf(libfooShape, libfoo));
  const direct = new Map<string, Definition[]>([
    ["libfoo", definitionsOf(libfooShape, libfoo)],
    ["mod_lib", definitionsOf(modLibShape, modLib)],
  ]);
  return {
    memoryCapPages,
    lookupGlobal: (name) => scope.first(name),
    lookupDirect: (namespace, name) => direct.get(namespace)?.find((d) => d.name === name),
  };
}

async function importsOf(text: string, features: Record<string, boolean> = {}): Promise<readonly ImportEntry[]> {
  return readModuleShape(await wat(`(module ${text})`, features)).imports;
}

describe("resolveImports", () => {
  it("binds env imports through the global scope and namespaced ones directly", async () => {
    const imports = await importsOf(`
      (import "env" "bar" (func (param i32 i32) (result i32)))
      (import "mod_lib" "helper" (func (param f64) (result f64)))
      (import "libfoo" "limit" (global i64))`);
    const result = resolveImports("mod_x.c", imports, environment());
    expect(result.problems.map(problemLine)).toEqual([]);
    expect(
      result.bindings.map((b) =>
        "definition" in b ? `${b.import.module}.${b.import.name} -> ${b.definition.provider.name}` : "memory",
      ),
    ).toEqual(["env.bar -> libfoo", "mod_lib.helper -> mod_lib.c", "libfoo.limit -> libfoo"]);
    expect(GLOBAL_NAMESPACE).toBe("env");
  });

  it("reports an undefined env symbol with the type the importer wants", async () => {
    const imports = await importsOf(`(import "env" "nope" (func (param i32) (result i64)))`);
    expect(withLines(resolveImports("mod_x.c", imports, environment()))).toEqual({
      bindings: [],
      problems: ["mod_x.c: undefined symbol 'nope' (func (i32) -> i64)"],
    });
  });

  it("reports a symbol missing from a direct namespace, naming the namespace", async () => {
    // helper exists only in mod_lib, and the global scope cannot stand in for a direct binding.
    const imports = await importsOf(`
      (import "mod_lib" "missing" (func))
      (import "libfoo" "helper" (func (param f64) (result f64)))
      (import "libnowhere" "x" (global (mut i32)))`);
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
      "mod_x.c: undefined symbol 'missing' in mod_lib (func () -> nil)",
      "mod_x.c: undefined symbol 'helper' in libfoo (func (f64) -> f64)",
      "mod_x.c: undefined symbol 'x' in libnowhere (global mut i32)",
    ]);
  });

  it("reports a function signature mismatch in the documented format", async () => {
    const imports = await importsOf(`(import "env" "bar" (func (param i32)))`);
    expect(withLines(resolveImports("mod_x.c", imports, environment()))).toEqual({
      bindings: [],
      problems: [
        "mod_x.c: symbol 'bar' has type func (i32, i32) -> i32 in libfoo, but mod_x.c imports func (i32) -> nil",
      ],
    });
  });

  it("carries each problem as data: importer, symbol, provider, expected and found types", async () => {
    const imports = await importsOf(`
      (import "env" "bar" (func (param i32)))
      (import "mod_lib" "missing" (func))`);
    expect(resolveImports("mod_x.c", imports, environment()).problems).toEqual([
      {
        kind: "type-mismatch",
        importer: "mod_x.c",
        symbol: "bar",
        provider: "libfoo",
        expected: "func (i32) -> nil",
        found: "func (i32, i32) -> i32",
      },
      {
        kind: "undefined-symbol",
        importer: "mod_x.c",
        symbol: "missing",
        namespace: "mod_lib",
        expected: "func () -> nil",
      },
    ]);
  });

  it("treats result types as part of the signature, multi-value included", async () => {
    const imports = await importsOf(`
      (import "env" "bar" (func (param i32 i32) (result i64)))
      (import "env" "baz" (func (result i64 i64)))`);
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
      "mod_x.c: symbol 'bar' has type func (i32, i32) -> i32 in libfoo, but mod_x.c imports func (i32, i32) -> i64",
      "mod_x.c: symbol 'baz' has type func () -> i64 in libfoo, but mod_x.c imports func () -> (i64, i64)",
    ]);
  });

  it("reports global value type and mutability mismatches", async () => {
    const imports = await importsOf(`
      (import "env" "counter" (global i32))
      (import "env" "limit" (global (mut i64)))
      (import "env" "limit" (global i32))`);
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
      "mod_x.c: symbol 'counter' has type global mut i32 in libfoo, but mod_x.c imports global i32",
      "mod_x.c: symbol 'limit' has type global i64 in libfoo, but mod_x.c imports global mut i64",
      "mod_x.c: symbol 'limit' has type global i64 in libfoo, but mod_x.c imports global i32",
    ]);
  });

  it("accepts memory and table limits the definition satisfies", async () => {
    // heap is 2..10: it satisfies an import asking for at least 1 page and at most 16.
    const imports = await importsOf(
      `
      (import "libfoo" "heap" (memory 1 16))
      (import "libfoo" "handlers" (table 2 funcref))`,
      { multi_memory: true },
    );
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([]);
  });

  it("reports memory and table limit mismatches", async () => {
    const imports = await importsOf(
      `
      (import "libfoo" "heap" (memory 3))
      (import "libfoo" "heap" (memory 1 5))
      (import "libfoo" "heap" (memory 1 10 shared))
      (import "libfoo" "handlers" (table 8 funcref))
      (import "libfoo" "handlers" (table 1 8 funcref))
      (import "libfoo" "handlers" (table 1 externref))`,
      { multi_memory: true, threads: true },
    );
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
      "mod_x.c: symbol 'heap' has type memory 2..10 in libfoo, but mod_x.c imports memory 3..",
      "mod_x.c: symbol 'heap' has type memory 2..10 in libfoo, but mod_x.c imports memory 1..5",
      "mod_x.c: symbol 'heap' has type memory 2..10 in libfoo, but mod_x.c imports memory 1..10 shared",
      "mod_x.c: symbol 'handlers' has type table funcref 4..16 in libfoo, but mod_x.c imports table funcref 8..",
      "mod_x.c: symbol 'handlers' has type table funcref 4..16 in libfoo, but mod_x.c imports table funcref 1..8",
      "mod_x.c: symbol 'handlers' has type table funcref 4..16 in libfoo, but mod_x.c imports table externref 1..",
    ]);
  });

  it("reports a kind mismatch", async () => {
    const imports = await importsOf(`
      (import "env" "counter" (func))
      (import "env" "bar" (global i32))
      (import "mod_lib" "lib_module" (func (result i32)))`);
    expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
      "mod_x.c: symbol 'counter' has type global mut i32 in libfoo, but mod_x.c imports func () -> nil",
      "mod_x.c: symbol 'bar' has type func (i32, i32) -> i32 in libfoo, but mod_x.c imports global i32",
      "mod_x.c: symbol 'lib_module' has type global i32 in mod_lib.c, but mod_x.c imports func () -> i32",
    ]);
  });

  it("collects every failure in import order and still binds the rest", async () => {
    const imports = await importsOf(`
      (import "env" "undefined_one" (func))
      (import "env" "bar" (func (param i32 i32) (result i32)))
      (import "env" "bar" (func))
      (import "mod_lib" "gone" (func))
      (import "env" "limit" (global i64))
      (import "env" "undefined_two" (global i32))`);
    const result = resolveImports("mod_x.c", imports, environment());
    expect(result.problems.map(problemLine)).toEqual([
      "mod_x.c: undefined symbol 'undefined_one' (func () -> nil)",
      "mod_x.c: symbol 'bar' has type func (i32, i32) -> i32 in libfoo, but mod_x.c imports func () -> nil",
      "mod_x.c: undefined symbol 'gone' in mod_lib (func () -> nil)",
      "mod_x.c: undefined symbol 'undefined_two' (global i32)",
    ]);
    expect(result.bindings.map((b) => b.import.name)).toEqual(["bar", "limit"]);
  });

  describe("env.memory: a host memory of the importer's own", () => {
    it("is made with the import's minimum and its maximum capped", async () => {
      const [within] = await importsOf(`(import "env" "memory" (memory 4 64))`);
      const [unbounded] = await importsOf(`(import "env" "memory" (memory 1))`);
      const [over] = await importsOf(`(import "env" "memory" (memory 2 1000))`);
      const env = environment(128);
      const binding = (entry: ImportEntry | undefined) => {
        const result = resolveImports("mod_x.c", entry === undefined ? [] : [entry], env);
        expect(result.problems.map(problemLine)).toEqual([]);
        const [first] = result.bindings;
        return first !== undefined && "hostMemory" in first ? first.hostMemory : undefined;
      };
      expect(binding(within)).toEqual({ initial: 4, maximum: 64 });
      // Without a maximum, or with one over the cap, the cap is the maximum.
      expect(binding(unbounded)).toEqual({ initial: 1, maximum: 128 });
      expect(binding(over)).toEqual({ initial: 2, maximum: 128 });
    });

    it("is exactly at the cap, or refused over it", async () => {
      const atCap = await importsOf(`(import "env" "memory" (memory 16))`);
      expect(resolveImports("mod_x.c", atCap, environment(16)).problems.map(problemLine)).toEqual([]);
      const overCap = await importsOf(`(import "env" "memory" (memory 17))`);
      expect(withLines(resolveImports("mod_x.c", overCap, environment(16)))).toEqual({
        bindings: [],
        problems: ["mod_x.c: memory needs 17 pages, over its cap of 16 pages"],
      });
    });

    it("is never shared", async () => {
      const shared = await importsOf(`(import "env" "memory" (memory 1 2 shared))`, { threads: true });
      expect(resolveImports("mod_x.c", shared, environment()).problems.map(problemLine)).toEqual([
        "mod_x.c: imports a shared memory, which the host does not provide",
      ]);
    });

    it("is looked up in the scope like any symbol when it is not a memory", async () => {
      // Only a memory import named env.memory is the host's special memory.
      const imports = await importsOf(`(import "env" "memory" (func))`);
      expect(resolveImports("mod_x.c", imports, environment()).problems.map(problemLine)).toEqual([
        "mod_x.c: undefined symbol 'memory' (func () -> nil)",
      ]);
    });
  });
});
