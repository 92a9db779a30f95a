import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { libexec } from "../../helpers/paths.js";
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, report } from "./fuzz-settings.js";

const seedModule = new Uint8Array(readFileSync(libexec("mod_calc.wasm")));

/** Mutations of a real guest: flipped bytes, cuts, insertions. */
const mutated = fc
  .record({
    flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 8 }),
    cut: fc.option(fc.nat()),
    insert: fc.option(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) })),
  })
  .map(({ flips, cut, insert }) => {
    let bytes = Uint8Array.from(seedModule);
    for (const flip of flips) bytes[flip.at % bytes.length] = flip.value;
    if (insert !== null) {
      const at = insert.at % bytes.length;
      bytes = Uint8Array.from([...bytes.subarray(0, at), ...insert.bytes, ...bytes.subarray(at)]);
    }
    if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
    return bytes;
  });

describe("fuzz: the wasm section reader", () => {
  it(
    "returns a shape or throws DSO_ERR_BAD_WASM, for mutated guests and random bytes",
    () => {
      let inputs = 0;
      let crashes = 0;
      const property = fc.property(
        fc.oneof(
          mutated,
          fc.uint8Array({ maxLength: 256 }).map((tail) => Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...tail])),
        ),
        (bytes) => {
          inputs++;
          try {
            readModuleShape(bytes);
          } catch (error) {
            const allowed = error instanceof DsoError && error.code === ErrorCodes.BAD_WASM;
            if (!allowed) crashes++;
            return allowed;
          }
          return true;
        },
      );
      try {
        fc.assert(property, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED });
      } finally {
        report("reader", inputs, crashes);
      }
      expect(crashes).toBe(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
