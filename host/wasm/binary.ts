/**
 * Byte-level reading and writing for the binary rewriter (instrument.ts and
 * opcodes.ts). reader.ts keeps its own private reader: it parses into a
 * ModuleShape and never writes, while a rewriter needs to copy spans verbatim,
 * skip LEB128s of any width without decoding them and re-encode indices.
 *
 * Every read is bounds-checked against the reader's window and every failure
 * is a DsoError(BAD_WASM) naming the absolute byte offset, so callers never see
 * a RangeError or an undefined byte.
 */
import { DsoError, ErrorCodes } from "../errors.js";

export function malformed(offset: number, what: string): DsoError {
  return new DsoError(ErrorCodes.BAD_WASM, `not a valid WebAssembly binary: ${what} at byte ${offset}`);
}

export class WasmReader {
  readonly bytes: Uint8Array;
  offset: number;
  readonly end: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = bytes;
    this.offset = start;
    this.end = end;
  }

  get atEnd(): boolean {
    return this.offset >= this.end;
  }

  byte(): number {
    if (this.offset >= this.end) throw malformed(this.offset, "unexpected end");
    return this.bytes[this.offset++] as number;
  }

  skip(count: number): void {
    if (count > this.end - this.offset) throw malformed(this.offset, `length ${count} runs past the end`);
    this.offset += count;
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw malformed(this.offset - 1, "u32 out of range");
        return result;
      }
      shift += 7;
    }
    throw malformed(this.offset, "u32 LEB128 longer than 5 bytes");
  }

  /**
   * Skips one LEB128 of at most `maxBytes` bytes without decoding it. The
   * extent is all a rewriter needs for immediates it copies verbatim: the
   * engine reads the same extent or rejects the module, so skipping can never
   * make us disagree with V8 about where the next instruction starts.
   */
  skipLeb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) {
      if ((this.byte() & 0x80) === 0) return;
    }
    throw malformed(this.offset, `LEB128 longer than ${maxBytes} bytes`);
  }

  /** A signed LEB128 of up to 33 bits (block types, heap types), as a number; returns its length too. */
  s33(): { value: number; length: number } {
    const start = this.offset;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) {
        if (b & 0x40) result -= 2 ** shift;
        if (result < -(2 ** 32) || result >= 2 ** 32) throw malformed(start, "s33 out of range");
        return { value: result, length: this.offset - start };
      }
    }
    throw malformed(this.offset, "s33 LEB128 longer than 5 bytes");
  }

  /** Skips a length-prefixed name (its bytes are copied verbatim, so UTF-8 is the engine's to check). */
  skipName(): void {
    this.skip(this.u32());
  }

  /** Reads a name as a string (only for the few names we compare). Invalid UTF-8 decodes lossily, which only matters for comparison. */
  name(): string {
    const length = this.u32();
    const start = this.offset;
    this.skip(length);
    return utf8.decode(this.bytes.subarray(start, start + length));
  }
}

const utf8 = new TextDecoder("utf-8");

/** A growable byte buffer; doubling keeps rewriting linear in the module size. */
export class WasmWriter {
  #bytes: Uint8Array<ArrayBuffer>;
  #length = 0;

  constructor(initialCapacity = 256) {
    this.#bytes = new Uint8Array(Math.max(16, initialCapacity));
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

  /** Unsigned LEB128 (0 ≤ value ≤ 2^32-1), minimal length. */
  u32(value: number): this {
    let rest = value;
    do {
      let b = rest & 0x7f;
      rest = Math.floor(rest / 128);
      if (rest !== 0) b |= 0x80;
      this.byte(b);
    } while (rest !== 0);
    return this;
  }

  /** Signed LEB128 of a 32-bit value, minimal length. */
  s32(value: number): this {
    let rest = value | 0;
    for (;;) {
      const b = rest & 0x7f;
      rest >>= 7;
      if ((rest === 0 && (b & 0x40) === 0) || (rest === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  name(text: string): this {
    const encoded = new TextEncoder().encode(text);
    return this.u32(encoded.length).bytes(encoded);
  }

  /** Appends another writer's contents prefixed by their byte length (a section or a function body). */
  sized(inner: WasmWriter): this {
    return this.u32(inner.length).bytes(inner.view());
  }

  /** The bytes written so far (a view, valid until the next write). */
  view(): Uint8Array<ArrayBuffer> {
    return this.#bytes.subarray(0, this.#length);
  }

  /** A copy of the bytes written, in a buffer of exactly that size. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, this.#length);
  }
}

export function lebU32(value: number): number[] {
  const out: number[] = [];
  new WasmWriter(8).u32(value).view().forEach((b) => out.push(b));
  return out;
}
