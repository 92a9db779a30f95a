/**
 * A small WebAssembly binary encoder for benchmarks and tests, for the
 * binaries wabt cannot or should not write: malformed ones whose byte offsets
 * a test counts, load-time bombs of millions of entries (wabt would parse
 * megabytes of text first) and libraries with 100,000 exports. Tests import
 * it from here (test/ already imports bench/; bench/ never imports test/).
 *
 * Two styles: byte arrays (`section(id, body)`, `binary(...)`) for small
 * hand-counted binaries, and ByteWriter, a growable buffer, for large ones.
 */
import { SectionId } from "../host/wasm/section-id.js";

/** The magic number and version 1 that open every binary. */
export const WASM_HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

export { SectionId };

export const ExternKind = { func: 0x00, table: 0x01, memory: 0x02, global: 0x03, tag: 0x04 } as const;

export const I32 = 0x7f;
export const FUNC_TYPE = 0x60;
export const FUNCREF = 0x70;
export const Op = { i32Const: 0x41, end: 0x0b } as const;

/** The module API version a module symbol carries (host/modules/module-api.ts MODULE_API_VERSION). */
const API_VERSION = 0x20;

/** Unsigned LEB128 of a u32. */
export function leb(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`u32 out of range: ${value}`);
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 of an i32. */
export function sleb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** A name: its UTF-8 byte length, then the bytes. */
export function name(text: string): number[] {
  const bytes = new TextEncoder().encode(text);
  return [...leb(bytes.length), ...bytes];
}

/** The parts one after the other; copies, so megabyte parts never go through a spread. */
export function concat(parts: ReadonlyArray<ArrayLike<number>>): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A section: its id, its body's length, its body. */
export function section(id: number, body: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  return concat([[id, ...leb(body.length)], body]);
}

/** A binary: the header, then `parts` (sections, or raw bytes a malformed case needs). */
export function binary(...parts: ReadonlyArray<ArrayLike<number>>): Uint8Array<ArrayBuffer> {
  return concat([WASM_HEADER, ...parts]);
}

/** The global and export sections of a module symbol: global 0, an immutable i32 `version`, exported as `symbol`. */
function moduleSymbolSections(symbol: string, version = API_VERSION): Uint8Array<ArrayBuffer> {
  return concat([
    section(SectionId.global, [0x01, I32, 0x00, Op.i32Const, ...sleb(version), Op.end]),
    section(SectionId.export, [0x01, ...name(symbol), ExternKind.global, 0x00]),
  ]);
}

/**
 * A module file `mod_NAME.wasm` the host accepts as a module: the sections
 * `before` (ids below 6: types, imports, functions, tables), its module symbol
 * `NAME_module` (global 0 and the only export), then the sections `after`
 * (code, data). `stem` is `mod_NAME`.
 */
export function moduleBinary(
  stem: string,
  before: ReadonlyArray<ArrayLike<number>>,
  after: ReadonlyArray<ArrayLike<number>> = [],
): Uint8Array<ArrayBuffer> {
  return binary(...before, moduleSymbolSections(`${stem.slice("mod_".length)}_module`), ...after);
}

/** A module of `count` functions `() -> nil` with empty bodies: 4 MB for a million. */
export function functionBomb(stem: string, count: number): Uint8Array<ArrayBuffer> {
  const bodies = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) bodies.set([0x02, 0x00, Op.end], i * 3);
  return moduleBinary(
    stem,
    [
      section(SectionId.type, [0x01, FUNC_TYPE, 0x00, 0x00]),
      section(SectionId.function, concat([leb(count), new Uint8Array(count)])),
    ],
    [section(SectionId.code, concat([leb(count), bodies]))],
  );
}

/** A module with `count` function imports `env.sym_N: () -> nil`. */
export function importBomb(stem: string, count: number): Uint8Array<ArrayBuffer> {
  const imports: number[] = [...leb(count)];
  for (let i = 0; i < count; i++) imports.push(...name("env"), ...name(`sym_${i}`), ExternKind.func, 0x00);
  const type = section(SectionId.type, [0x01, FUNC_TYPE, 0x00, 0x00]);
  return moduleBinary(stem, [type, section(SectionId.import, imports)]);
}

/**
 * A module importing `env.memory` (at least `pages` pages) with one data
 * segment of `size` bytes of 'A': passive, or active at offset 0.
 */
export function dataBomb(stem: string, size: number, mode: "passive" | "active", pages = 1): Uint8Array<ArrayBuffer> {
  const header = mode === "passive" ? [0x01, 0x01] : [0x01, 0x00, Op.i32Const, 0x00, Op.end];
  const data = section(SectionId.data, concat([header, leb(size), new Uint8Array(size).fill(0x41)]));
  const memory = section(SectionId.import, [
    0x01,
    ...name("env"),
    ...name("memory"),
    ExternKind.memory,
    0x00,
    ...leb(pages),
  ]);
  return moduleBinary(stem, [memory], [data]);
}

/** A growable byte buffer; doubling keeps 100k-entry sections linear. */
export class ByteWriter {
  #bytes = new Uint8Array(256);
  #length = 0;

  /** A writer that starts with the header: the binary's sections follow. */
  static module(): ByteWriter {
    return new ByteWriter().bytes(WASM_HEADER);
  }

  get length(): number {
    return this.#length;
  }

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.#length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  byte(value: number): this {
    this.#reserve(1);
    this.#bytes[this.#length++] = value & 0xff;
    return this;
  }

  bytes(values: ArrayLike<number>): this {
    this.#reserve(values.length);
    this.#bytes.set(values, this.#length);
    this.#length += values.length;
    return this;
  }

  /** Unsigned LEB128. */
  u32(value: number): this {
    return this.bytes(leb(value));
  }

  /** Signed LEB128 of an i32. */
  s32(value: number): this {
    return this.bytes(sleb(value));
  }

  /** A name: byte length, then UTF-8. */
  name(value: string): this {
    return this.bytes(name(value));
  }

  /** A section: `id`, `body`'s length, `body`. */
  section(id: number, body: ByteWriter): this {
    return this.byte(id).u32(body.length).bytes(body.toBytes());
  }

  toBytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, this.#length);
  }
}
