/**
 * The one place that reads and writes AssemblyScript strings in a guest's
 * linear memory. Strings are written with @assemblyscript/loader's
 * `__newString`; keeping that here means swapping the loader for generated
 * bindings touches one file.
 *
 * Strings are read by our own decoder (MemoryViews), on every host symbol
 * that takes one: the loader's `__getString` spreads the characters into
 * String.fromCharCode, about 1 µs for a 20-character string. The decoder gives
 * the loader's result exactly, code unit for code unit, lone surrogates
 * included (test/unit/abi/guest-string.test.ts checks it against the loader).
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
/** The runtime id of `String` in every AssemblyScript binary. */
const STRING_ID = 2;
/**
 * Up to this many code units, String.fromCharCode over a loop is faster than
 * Buffer's native UTF-16 decode, which costs about 70 ns however short the
 * string (measured on Node 20); longer, the loop's concatenations lose.
 */
const SHORT_STRING = 4;

/** Views of a memory's current buffer; a grow detaches the old buffer, emptying its views, and they are made again. */
export class MemoryViews {
  readonly #memory: WebAssembly.Memory;
  #bytes: Buffer;
  #words: Uint32Array;
  #units: Uint16Array;

  constructor(memory: WebAssembly.Memory) {
    this.#memory = memory;
    this.#bytes = Buffer.from(memory.buffer);
    this.#words = new Uint32Array(memory.buffer);
    this.#units = new Uint16Array(memory.buffer);
  }

  /**
   * The AssemblyScript string at `ptr`, as the loader's `__getString` reads
   * it: the code units at ptr, as many as half the byte length at ptr-4, once
   * the id at ptr-8 says String. Throws where the loader throws (a null, odd
   * or out-of-range pointer, an object that is no string) or returns null.
   */
  read(ptr: number): string {
    if (this.#bytes.length === 0) this.#refresh();
    // The loader's word indexing, unsigned: a pointer below 8 wraps past the end and is refused like any other.
    const id = this.#words[(ptr - STRING_HEADER_READ) >>> 2];
    if (ptr <= 0 || (ptr & 1) !== 0 || id !== STRING_ID) throw new Error(`not a string: ${ptr}`);
    const length = (this.#words[(ptr - 4) >>> 2] as number) >>> 1;
    const end = ptr + length * 2;
    if (end > this.#bytes.length) throw new RangeError(`string at ${ptr} runs past the end of memory`);
    if (length > SHORT_STRING) return this.#bytes.toString("utf16le", ptr, end);
    const units = this.#units;
    let text = "";
    for (let i = ptr >>> 1; i < end >>> 1; i++) text += String.fromCharCode(units[i] as number);
    return text;
  }

  #refresh(): void {
    const { buffer } = this.#memory;
    this.#bytes = Buffer.from(buffer);
    this.#words = new Uint32Array(buffer);
    this.#units = new Uint16Array(buffer);
  }
}

/** Where the first range starts and the last ends; an empty span (Infinity, -Infinity) for none. */
function span(ranges: readonly ByteRange[]): readonly [number, number] {
  let start = Infinity;
  let end = -Infinity;
  for (const range of ranges) {
    start = Math.min(start, range.start);
    end = Math.max(end, range.end);
  }
  return [start, end];
}

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
   * Literals by address: a module passes the same literals over and over
   * (reply codes, log lines, help texts), and a look-up costs less than even
   * our decoder's native call. AssemblyScript never writes its static data;
   * a module that does anyway only changes what the host shows of its own
   * strings.
   */
  const literals = new Map<number, string>();
  // asc emits a data segment per static object: a string outside their span, as one built at run time is, checks none.
  const [staticStart, staticEnd] = span(staticData);
  const isLiteral = (ptr: number, byteLength: number): boolean => {
    for (const range of staticData) {
      if (ptr - STRING_HEADER_READ >= range.start && ptr + byteLength <= range.end) return true;
    }
    return false;
  };
  // Built on first use: a module that never passes a string costs nothing here.
  let views: MemoryViews | undefined;
  let memoryHelpers: MemoryHelpers | undefined;
  const ready = (): MemoryHelpers => {
    if (memory === undefined) throw new DsoError(ErrorCodes.GUEST_STRING, "the instance has no memory");
    memoryHelpers ??= helpersOf(memory);
    return memoryHelpers;
  };
  return {
    read(ptr) {
      const mayBeLiteral = ptr - STRING_HEADER_READ >= staticStart && ptr <= staticEnd;
      const literal = mayBeLiteral ? literals.get(ptr) : undefined;
      if (literal !== undefined) return literal;
      try {
        if (memory === undefined) throw new Error("the instance has no memory");
        views ??= new MemoryViews(memory);
        const value = views.read(ptr);
        if (mayBeLiteral && isLiteral(ptr, value.length * 2)) literals.set(ptr, value);
        return value;
      } catch (cause) {
        throw new DsoError(ErrorCodes.GUEST_STRING, `pointer ${ptr} is not a string in guest memory`, { cause });
      }
    },
    create(value) {
      if (typeof owner.__new !== "function") {
        throw new DsoError(
          ErrorCodes.GUEST_STRING,
          "the module does not export its runtime (__new); build it with --exportRuntime",
        );
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
