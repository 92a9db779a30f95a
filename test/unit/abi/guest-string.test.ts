/**
 * The host's decoder of guest strings (guest-memory.ts MemoryViews) against
 * @assemblyscript/loader's `__getString`, the reference it replaces on the hot
 * path: equal over the whole UTF-16 range, lone surrogates included, and
 * refusing the pointers the loader refuses.
 */
import { instantiateSync } from "@assemblyscript/loader";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { MemoryViews, guestStrings } from "../../../host/abi/guest-memory.js";
import { ErrorCodes } from "../../../host/errors.js";
import { wat } from "../../helpers/wat.js";

const STRING_ID = 2;
const PAGE = 65536;

let loaderModule: WebAssembly.Module;

beforeAll(async () => {
  // The loader finds a module's memory among its exports: this one exports the memory it is given.
  const binary = await wat(`(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)))`);
  loaderModule = new WebAssembly.Module(binary);
});

interface Pair {
  readonly memory: WebAssembly.Memory;
  readonly loader: (ptr: number) => string | null;
  readonly ours: MemoryViews;
}

function pair(pages = 1): Pair {
  const memory = new WebAssembly.Memory({ initial: pages });
  const { exports } = instantiateSync<{ __getString(ptr: number): string | null }>(loaderModule, { env: { memory } });
  return { memory, loader: (ptr) => exports.__getString(ptr), ours: new MemoryViews(memory) };
}

/** Lays an AssemblyScript string's header (id at -8, byte length at -4) and code units out at `ptr`. */
function place(memory: WebAssembly.Memory, ptr: number, units: readonly number[], id = STRING_ID): void {
  const view = new DataView(memory.buffer);
  view.setUint32(ptr - 8, id, true);
  view.setUint32(ptr - 4, units.length * 2, true);
  units.forEach((unit, i) => view.setUint16(ptr + i * 2, unit, true));
}

/** What a call gives: its string, or that it threw. */
function outcome(read: () => string | null): string | { readonly threw: true } {
  try {
    const value = read();
    return value ?? { threw: true };
  } catch {
    return { threw: true };
  }
}

const codeUnit = fc.integer({ min: 0, max: 0xffff });
const surrogate = fc.integer({ min: 0xd800, max: 0xdfff });
/** Mostly short strings, as handlers pass them; long ones cross the loader's 192-unit switch to TextDecoder. */
const units = fc.oneof(
  fc.array(codeUnit, { maxLength: 8 }),
  fc.array(fc.oneof(codeUnit, surrogate), { maxLength: 300 }),
  fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), surrogate), { minLength: 190, maxLength: 2100 }),
);

describe("guest strings: our decoder against the loader's __getString", () => {
  it("reads every string of code units the loader reads, code unit for code unit", () => {
    const { memory, loader, ours } = pair();
    fc.assert(
      fc.property(units, fc.integer({ min: 2, max: 8000 }), (codeUnits, slot) => {
        const ptr = slot * 4;
        place(memory, ptr, codeUnits);
        const expected = loader(ptr);
        expect(expected).toBe(String.fromCharCode(...codeUnits));
        expect(ours.read(ptr)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees on every single code unit, each surrogate alone included", () => {
    const { memory, loader, ours } = pair();
    for (let unit = 0; unit <= 0xffff; unit++) {
      place(memory, 64, [unit]);
      place(memory, 128, [0x41, unit, 0x42, unit, 0x43]);
      if (ours.read(64) !== loader(64) || ours.read(128) !== loader(128)) {
        throw new Error(`differs at U+${unit.toString(16)}`);
      }
    }
    expect(ours.read(128)).toBe("A\uffffB\uffffC");
  });

  it("keeps lone and reversed surrogates where a TextDecoder would put U+FFFD", () => {
    const { memory, loader, ours } = pair();
    const long = [...Array.from({ length: 250 }, () => 0x61), 0xdc00, 0xd800, 0x62, 0xd83d];
    place(memory, 1024, long);
    expect(ours.read(1024)).toBe(loader(1024));
    expect(ours.read(1024).slice(-4)).toBe("\udc00\ud800b\ud83d");
    place(memory, 4096, []);
    expect(ours.read(4096)).toBe("");
    expect(loader(4096)).toBe("");
  });

  it("refuses what the loader refuses: null, odd, unaligned past the end, and objects that are no string", () => {
    const { memory, loader, ours } = pair();
    place(memory, 256, [0x61, 0x62]);
    place(memory, 512, [0x61], 3);
    const view = new DataView(memory.buffer);
    view.setUint32(1020, STRING_ID, true);
    view.setUint32(1024, 0x7fff_fff0, true);
    for (const ptr of [0, 4, 257, 512, 1028, PAGE, PAGE + 8, -8, 0x7fff_fff8]) {
      expect({ ptr, ours: outcome(() => ours.read(ptr)) }).toEqual({ ptr, ours: outcome(() => loader(ptr)) });
    }
    expect(outcome(() => ours.read(257))).toEqual({ threw: true });
    expect(outcome(() => ours.read(1028))).toEqual({ threw: true });
  });

  it("reads on after the memory grows and its old buffer is detached", () => {
    const { memory, ours } = pair();
    place(memory, 64, [0x78]);
    expect(ours.read(64)).toBe("x");
    memory.grow(1);
    place(memory, PAGE + 64, [0x79, 0x7a, 0x79, 0x7a, 0x79, 0x7a]);
    expect(ours.read(64)).toBe("x");
    expect(ours.read(PAGE + 64)).toBe("yzyzyz");
  });
});

describe("guest strings: literals", () => {
  it("reads a string in static data once, and one built at run time on every call", () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const instance = { exports: {} } as unknown as WebAssembly.Instance;
    const strings = guestStrings(instance, memory, [{ start: 1000, end: 1100 }]);
    place(memory, 1024, [0x61, 0x62]);
    place(memory, 2048, [0x61, 0x62]);
    expect([strings.read(1024), strings.read(2048)]).toEqual(["ab", "ab"]);
    place(memory, 1024, [0x63, 0x64]);
    place(memory, 2048, [0x63, 0x64]);
    expect([strings.read(1024), strings.read(2048)]).toEqual(["ab", "cd"]);
  });

  it("fails a bad pointer with DSO_ERR_GUEST_STRING", () => {
    const instance = { exports: {} } as unknown as WebAssembly.Instance;
    const strings = guestStrings(instance, new WebAssembly.Memory({ initial: 1 }), []);
    expect(() => strings.read(64)).toThrow(expect.objectContaining({ code: ErrorCodes.GUEST_STRING }));
  });
});
