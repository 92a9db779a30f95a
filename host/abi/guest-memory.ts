/**
 * The one place that uses @assemblyscript/loader: reading and writing
 * AssemblyScript strings in a guest's linear memory. Keeping it here means
 * swapping the loader for generated bindings touches one file.
 *
 * The loader builds its helpers when it instantiates a module: about forty
 * closures, plus a wrapper for every export (2,400 for a large module). Built
 * for every guest instance, that was a tenth of an insmod and most of a large
 * module's link time. So the helpers are built once per linear memory instead:
 * the loader instantiates a small adapter module that imports the memory and
 * forwards `__new` through a table to the AssemblyScript runtime of whichever
 * instance uses the memory. A memory the host recycles
 * (memory-pool.ts) keeps its helpers for the next module.
 */
import { instantiateSync } from "@assemblyscript/loader";
import { DsoError, ErrorCodes } from "../errors.js";
import type { ByteRange } from "../wasm/types.js";

/** String access into one guest instance's memory. */
export interface GuestStrings {
  /**
   * Reads the AssemblyScript string at `ptr`; a bad pointer raises
   * DSO_ERR_GUEST_STRING. A string that lies wholly in the module's static
   * data (a literal) is read once per instance and remembered.
   */
  read(ptr: number): string;
  /** Allocates `value` as a string in guest memory; a guest built without its runtime exported raises DSO_ERR_GUEST_STRING. */
  create(value: string): number;
  /** Called once the instance is gone: its memory's helpers no longer refer to it. */
  release(): void;
}

interface LoaderHelpers {
  __getString(ptr: number): string | null;
  __newString(value: string): number;
}

/**
 * The adapter, in the binary format (no assembler at run time). The loader's
 * string helpers need only the memory and the runtime's allocator:
 *
 *   (module
 *     (type $new (func (param i32 i32) (result i32)))
 *     (import "env" "memory" (memory 0))
 *     (table (export "runtime") 1 funcref)
 *     (func (export "__new") (type $new) (call_indirect (type $new) (local.get 0) (local.get 1) (i32.const 0)))
 *     (export "memory" (memory 0)))
 *
 * An empty slot traps ("null function") instead of calling a stale instance.
 */
function adapterBinary(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const name = (text: string): number[] => [text.length, ...Buffer.from(text, "latin1")];
  const section = (id: number, content: number[]): number[] => [id, content.length, ...content];
  const [localGet, i32Const, callIndirect, end] = [0x20, 0x41, 0x11, 0x0b];
  const newBody = [0x00 /* no locals */, localGet, 0, localGet, 1, i32Const, 0, callIndirect, 0, 0, end];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 2, I32, I32, 1, I32]),
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0]),
    ...section(3, [1, 0]),
    ...section(4, [1, 0x70, 0x00, 1]),
    ...section(7, [3, ...name("runtime"), 0x01, 0, ...name("__new"), 0x00, 0, ...name("memory"), 0x02, 0]),
    ...section(10, [1, newBody.length, ...newBody]),
  ]);
}

let adapterModule: WebAssembly.Module | undefined;

/** The loader's helpers over one memory, and the runtime their table forwards to. */
class MemoryHelpers {
  readonly helpers: LoaderHelpers;
  readonly #runtime: WebAssembly.Table;
  #owner: WebAssembly.Exports | undefined;

  constructor(memory: WebAssembly.Memory) {
    adapterModule ??= new WebAssembly.Module(adapterBinary());
    const { exports } = instantiateSync(adapterModule, { env: { memory } });
    this.helpers = exports;
    this.#runtime = exports.runtime as WebAssembly.Table;
  }

  /** Points the table at `owner`'s allocator; a no-op while it already does. */
  use(owner: WebAssembly.Exports): void {
    if (this.#owner === owner) return;
    const allocate = owner.__new;
    this.#runtime.set(0, typeof allocate === "function" ? allocate : null);
    this.#owner = owner;
  }

  /** Empties the table if it points at `owner`, so a recycled memory keeps no dead instance alive. */
  forget(owner: WebAssembly.Exports): void {
    if (this.#owner !== owner) return;
    this.#runtime.set(0, null);
    this.#owner = undefined;
  }
}

const helpersByMemory = new WeakMap<WebAssembly.Memory, MemoryHelpers>();

function helpersOf(memory: WebAssembly.Memory): MemoryHelpers {
  let helpers = helpersByMemory.get(memory);
  if (helpers === undefined) {
    helpers = new MemoryHelpers(memory);
    helpersByMemory.set(memory, helpers);
  }
  return helpers;
}

/** AssemblyScript's header before a string's characters: its runtime id at -8 and byte length at -4 (the loader reads both). */
const STRING_HEADER_READ = 8;

/**
 * String access for `instance`, whose memory is the one it exports or, failing
 * that, `imported`; `staticData` is where its binary's active data segments
 * land (ModuleShape.staticData).
 */
export function guestStrings(
  instance: WebAssembly.Instance,
  imported: WebAssembly.Memory | undefined,
  staticData: readonly ByteRange[],
): GuestStrings {
  const exported = instance.exports.memory;
  const memory = exported instanceof WebAssembly.Memory ? exported : imported;
  const owner = instance.exports;
  /**
   * Literals by address. The loader spreads every string it reads into
   * String.fromCharCode, about 1 µs even for a short one (README, Performance),
   * and a module passes the same literals over and over (reply codes, log
   * lines, help texts). AssemblyScript never writes its static data; a module
   * that does anyway only changes what the host shows of its own strings.
   */
  const literals = new Map<number, string>();
  const isLiteral = (ptr: number, byteLength: number): boolean =>
    staticData.some((range) => ptr - STRING_HEADER_READ >= range.start && ptr + byteLength <= range.end);
  // Built on first use: a module that never passes a string costs nothing here.
  let memoryHelpers: MemoryHelpers | undefined;
  const ready = (): MemoryHelpers => {
    if (memory === undefined) throw new DsoError(ErrorCodes.GUEST_STRING, "the instance has no memory");
    memoryHelpers ??= helpersOf(memory);
    return memoryHelpers;
  };
  return {
    read(ptr) {
      const literal = literals.get(ptr);
      if (literal !== undefined) return literal;
      try {
        const value = ready().helpers.__getString(ptr);
        if (value === null) throw new Error("null pointer");
        if (isLiteral(ptr, value.length * 2)) literals.set(ptr, value);
        return value;
      } catch (cause) {
        throw new DsoError(ErrorCodes.GUEST_STRING, `pointer ${ptr} is not a string in guest memory`, { cause });
      }
    },
    create(value) {
      if (typeof owner.__new !== "function") {
        throw new DsoError(ErrorCodes.GUEST_STRING, "the module does not export its runtime (__new); build it with --exportRuntime");
      }
      const target = ready();
      target.use(owner);
      return target.helpers.__newString(value);
    },
    release() {
      memoryHelpers?.forget(owner);
    },
  };
}
