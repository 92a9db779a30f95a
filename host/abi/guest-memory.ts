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
 * forwards `__new`/`__pin`/`__unpin` through a table to the AssemblyScript
 * runtime of whichever instance uses the memory. A memory the host recycles
 * (memory-pool.ts) keeps its helpers for the next module.
 */
import { instantiateSync } from "@assemblyscript/loader";
import { DsoError, ErrorCodes } from "../errors.js";

/** String access into one guest instance's memory. */
export interface GuestStrings {
  /** Reads the AssemblyScript string at `ptr`; a bad pointer raises DSO_ERR_GUEST_STRING. */
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

/** The AssemblyScript runtime exports the helpers call, in the adapter's table order. */
const RUNTIME_EXPORTS = ["__new", "__pin", "__unpin"] as const;

/**
 * The adapter, in the binary format (no assembler at run time):
 *
 *   (module
 *     (type $new (func (param i32 i32) (result i32)))
 *     (type $pin (func (param i32) (result i32)))
 *     (type $unpin (func (param i32)))
 *     (import "env" "memory" (memory 0))
 *     (table (export "runtime") 3 funcref)
 *     (func (export "__new") (type $new) (call_indirect (type $new) (local.get 0) (local.get 1) (i32.const 0)))
 *     (func (export "__pin") (type $pin) (call_indirect (type $pin) (local.get 0) (i32.const 1)))
 *     (func (export "__unpin") (type $unpin) (call_indirect (type $unpin) (local.get 0) (i32.const 2)))
 *     (export "memory" (memory 0)))
 *
 * An empty slot traps ("null function") instead of calling a stale instance.
 */
function adapterBinary(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const name = (text: string): number[] => [text.length, ...Buffer.from(text, "latin1")];
  const vector = (items: number[][]): number[] => [items.length, ...items.flat()];
  const section = (id: number, content: number[]): number[] => [id, content.length, ...content];
  const body = (code: number[]): number[] => [code.length + 2, 0x00 /* no locals */, ...code, 0x0b /* end */];
  const [localGet, i32Const, callIndirect] = [0x20, 0x41, 0x11];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([[0x60, 2, I32, I32, 1, I32], [0x60, 1, I32, 1, I32], [0x60, 1, I32, 0]])),
    ...section(2, vector([[...name("env"), ...name("memory"), 0x02, 0x00, 0]])),
    ...section(3, vector([[0], [1], [2]])),
    ...section(4, vector([[0x70, 0x00, RUNTIME_EXPORTS.length]])),
    ...section(
      7,
      vector([
        [...name("runtime"), 0x01, 0],
        ...RUNTIME_EXPORTS.map((exported, index) => [...name(exported), 0x00, index]),
        [...name("memory"), 0x02, 0],
      ]),
    ),
    ...section(
      10,
      vector([
        body([localGet, 0, localGet, 1, i32Const, 0, callIndirect, 0, 0]),
        body([localGet, 0, i32Const, 1, callIndirect, 1, 0]),
        body([localGet, 0, i32Const, 2, callIndirect, 2, 0]),
      ]),
    ),
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
    this.helpers = exports as unknown as LoaderHelpers;
    this.#runtime = exports.runtime as unknown as WebAssembly.Table;
  }

  /** Points the table at `owner`'s runtime; a no-op while it already does. */
  use(owner: WebAssembly.Exports): void {
    if (this.#owner === owner) return;
    RUNTIME_EXPORTS.forEach((exported, slot) => {
      const fn = owner[exported];
      this.#runtime.set(slot, typeof fn === "function" ? fn : null);
    });
    this.#owner = owner;
  }

  /** Empties the table if it points at `owner`, so a recycled memory keeps no dead instance alive. */
  forget(owner: WebAssembly.Exports): void {
    if (this.#owner !== owner) return;
    RUNTIME_EXPORTS.forEach((_, slot) => this.#runtime.set(slot, null));
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

/** String access for `instance`, whose memory is the one it exports or, failing that, `imported`. */
export function guestStrings(instance: WebAssembly.Instance, imported: WebAssembly.Memory | undefined): GuestStrings {
  const exported = instance.exports.memory;
  const memory = exported instanceof WebAssembly.Memory ? exported : imported;
  const owner = instance.exports;
  // Built on first use: a module that never passes a string costs nothing here.
  let memoryHelpers: MemoryHelpers | undefined;
  const ready = (): MemoryHelpers => {
    if (memory === undefined) throw new DsoError(ErrorCodes.GUEST_STRING, "the instance has no memory");
    memoryHelpers ??= helpersOf(memory);
    return memoryHelpers;
  };
  return {
    read(ptr) {
      try {
        const value = ready().helpers.__getString(ptr);
        if (value === null) throw new Error("null pointer");
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
