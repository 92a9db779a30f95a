import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resolveImports } from "../../../host/linker/resolve.js";
import { SymbolScope } from "../../../host/linker/scope.js";
import type { Definition, Provider } from "../../../host/linker/scope.js";
import type { ExternType, ImportEntry, ValueType } from "../../../host/wasm/types.js";
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, report } from "./fuzz-settings.js";

const valueType = fc.constantFrom<ValueType>("i32", "i64", "f32", "f64");
const limits = fc
  .record({ min: fc.nat(300), max: fc.option(fc.nat(400), { nil: undefined }), shared: fc.boolean() })
  .map((l) =>
    l.max === undefined
      ? { min: l.min, shared: l.shared }
      : { min: l.min, max: Math.max(l.min, l.max), shared: l.shared },
  );
const externType: fc.Arbitrary<ExternType> = fc.oneof(
  fc
    .record({ params: fc.array(valueType, { maxLength: 3 }), results: fc.array(valueType, { maxLength: 2 }) })
    .map((type) => ({ kind: "func" as const, type })),
  fc.record({ valueType, mutable: fc.boolean() }).map((g) => ({ kind: "global" as const, ...g })),
  limits.map((l) => ({ kind: "memory" as const, limits: l })),
  limits.map((l) => ({ kind: "table" as const, element: "funcref" as const, limits: l })),
);
const symbolName = fc.constantFrom("memory", "abort", "a", "b", "c", "pr_log_debug", "math_add");
const namespace = fc.constantFrom("env", "libx", "mod_y");
const importEntry: fc.Arbitrary<ImportEntry> = fc.record({ module: namespace, name: symbolName, type: externType });
const providerKind = fc.constantFrom<Provider["kind"]>("host", "library", "module");
const definition: fc.Arbitrary<Definition> = fc.record({
  name: symbolName,
  type: externType,
  provider: fc.record({ kind: providerKind, name: fc.constantFrom("host", "libx", "mod_y.c"), seq: fc.nat(5) }),
});

describe("fuzz: the resolver", () => {
  it(
    "binds or reports every import, and never throws",
    () => {
      let inputs = 0;
      let crashes = 0;
      const property = fc.property(
        fc.array(importEntry, { maxLength: 12 }),
        fc.array(definition, { maxLength: 12 }),
        fc.nat(512),
        (imports, definitions, cap) => {
          inputs++;
          try {
            const scope = new SymbolScope();
            scope.add(definitions);
            const result = resolveImports("mod_fuzz.c", imports, {
              memoryCapPages: cap,
              lookupGlobal: (name) => scope.first(name),
              lookupDirect: (ns, name) => definitions.find((d) => d.provider.name.startsWith(ns) && d.name === name),
            });
            return result.bindings.length + result.problems.length === imports.length;
          } catch {
            crashes++;
            return false;
          }
        },
      );
      try {
        fc.assert(property, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED });
      } finally {
        report("linker", inputs, crashes);
      }
      expect(crashes).toBe(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
