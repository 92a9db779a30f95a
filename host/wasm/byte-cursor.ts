/**
 * A bounds-checked cursor over `bytes[start, end)`: what the binary reader
 * (reader.ts) and the instance-state rewrite (instance-state-exports.ts) both
 * walk sections with. Every read past `end` is a DsoError naming the byte.
 */
import { DsoError, ErrorCodes } from "../errors.js";

export function malformed(offset: number, what: string): DsoError {
  return new DsoError(ErrorCodes.BAD_WASM, `not a valid WebAssembly binary: ${what} at byte ${offset}`);
}

export class ByteCursor {
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
    let b = this.byte();
    // Most LEB128s (name lengths, indices below 128) are one byte: 2,400 exports read 4,800 of them.
    if (b < 0x80) return b;
    let result = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 5; i++) {
      b = this.byte();
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (result > 0xffffffff) throw malformed(this.offset - 1, "u32 out of range");
        return result;
      }
      scale *= 0x80;
    }
    throw malformed(this.offset, "u32 LEB128 longer than 5 bytes");
  }
}
