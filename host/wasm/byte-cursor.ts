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

  /** A signed LEB128 of up to `bits` bits, as a bigint (exact for i64). */
  signed(bits: 32 | 64): bigint {
    let result = 0n;
    let shift = 0n;
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if (b & 0x40) result -= 1n << shift;
        return BigInt.asIntN(bits, result);
      }
    }
    throw malformed(this.offset, `s${bits} LEB128 too long`);
  }

  /** Skips a LEB128 (signed or not) of at most `maxBytes` bytes. */
  skipLeb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) if ((this.byte() & 0x80) === 0) return;
    throw malformed(this.offset, "LEB128 too long");
  }

  /** Reads a constant expression up to its `end`, returning its value when it is a plain constant. */
  constExpr(): number | bigint | undefined {
    let value: number | bigint | undefined;
    let instructions = 0;
    for (;;) {
      const at = this.offset;
      const op = this.byte();
      instructions++;
      switch (op) {
        case 0x0b:
          return instructions === 2 ? value : undefined;
        case 0x41:
          value = Number(this.signed(32));
          break;
        case 0x42:
          value = this.signed(64);
          break;
        case 0x43:
          this.skip(4);
          value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset - 4, 4).getFloat32(0, true);
          break;
        case 0x44:
          this.skip(8);
          value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset - 8, 8).getFloat64(0, true);
          break;
        case 0x23: // global.get
        case 0xd2: // ref.func
          this.u32();
          value = undefined;
          break;
        case 0xd0: // ref.null: a heap type, a signed LEB128 (a type index with typed function references)
          this.skipLeb(5);
          value = undefined;
          break;
        case 0xfd: // SIMD's prefix: v128.const (sub-opcode 12) is the only constant one
          if (this.u32() !== 12) throw malformed(at, "unsupported SIMD opcode in a constant expression");
          this.skip(16);
          value = undefined;
          break;
        case 0x6a: // extended-const i32.add, i32.sub, i32.mul and their i64 forms
        case 0x6b:
        case 0x6c:
        case 0x7c:
        case 0x7d:
        case 0x7e:
          value = undefined;
          break;
        default:
          throw malformed(at, `unsupported opcode 0x${op.toString(16)} in a constant expression`);
      }
    }
  }
}
