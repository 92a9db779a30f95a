/**
 * Binaries for the link benchmark, written by a small hand-made encoder rather
 * than wabt: a library with 100,000 exports is about 1.5 MB of text for wabt to
 * parse, while encoding it directly takes a few milliseconds and keeps the
 * setup out of the one-minute budget.
 *
 * Only what the fixtures need is encoded: func types without locals, function
 * and global imports/exports, an imported memory and i32 constant globals.
 */

const MAGIC_AND_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00] as const;

const Section = {
  type: 1,
  import: 2,
  function: 3,
  global: 6,
  export: 7,
  code: 10,
} as const;

const ExternKind = { func: 0x00, memory: 0x02, global: 0x03 } as const;

const I32 = 0x7f;
const FUNC_TYPE = 0x60;
const Op = { i32Const: 0x41, end: 0x0b } as const;

/** A growable byte buffer; doubling keeps 100k-entry sections linear. */
export class ByteWriter {
  #bytes = new Uint8Array(256);
  #length = 0;

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
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`u32 out of range: ${value}`);
    let rest = value;
    do {
      let b = rest & 0x7f;
      rest = Math.floor(rest / 128);
      if (rest !== 0) b |= 0x80;
      this.byte(b);
    } while (rest !== 0);
    return this;
  }

  /** Signed LEB128 of an i32. */
  s32(value: number): this {
    let rest = value | 0;
    for (;;) {
      const b = rest & 0x7f;
      rest >>= 7;
      const done = (rest === 0 && (b & 0x40) === 0) || (rest === -1 && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }

  /** A name: byte length, then UTF-8. */
  name(value: string): this {
    const encoded = new TextEncoder().encode(value);
    return this.u32(encoded.length).bytes(encoded);
  }

  toBytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, this.#length);
  }
}

export function section(out: ByteWriter, id: number, body: ByteWriter): void {
  out.byte(id).u32(body.length).bytes(body.toBytes());
}

export function header(): ByteWriter {
  return new ByteWriter().bytes(MAGIC_AND_VERSION);
}

/** Type section with the single type `func () -> i32` (index 0). */
function typeSectionReturningI32(out: ByteWriter): void {
  section(out, Section.type, new ByteWriter().u32(1).byte(FUNC_TYPE).u32(0).u32(1).byte(I32));
}

/**
 * A library whose one function `() -> i32` is exported under every name in
 * `names`: valid wasm (an export section may name one function many times),
 * and the cheapest way to make a provider of N distinct global symbols.
 */
export function libraryExporting(names: readonly string[]): Uint8Array<ArrayBuffer> {
  const out = header();
  typeSectionReturningI32(out);
  section(out, Section.function, new ByteWriter().u32(1).u32(0));
  const exports = new ByteWriter().u32(names.length);
  for (const name of names) exports.name(name).byte(ExternKind.func).u32(0);
  section(out, Section.export, exports);
  const body = new ByteWriter().u32(0).byte(Op.i32Const).s32(42).byte(Op.end);
  section(out, Section.code, new ByteWriter().u32(1).u32(body.length).bytes(body.toBytes()));
  return out.toBytes();
}

/**
 * A DSO module that imports `env.memory` and every name in `imports` from
 * `env` as `func () -> i32`, and exports `moduleSymbol` as an immutable i32
 * global holding `apiVersion` (what mod_dso's `NAME_module` check reads).
 * It has no code: the benchmark measures linking, not running.
 */
export function moduleImporting(
  imports: readonly string[],
  moduleSymbol: string,
  apiVersion: number,
): Uint8Array<ArrayBuffer> {
  const out = header();
  typeSectionReturningI32(out);
  const importSection = new ByteWriter().u32(imports.length + 1);
  // One page, no growth: the host still creates a Memory per load, as it would for a real module.
  importSection.name("env").name("memory").byte(ExternKind.memory).byte(0x01).u32(1).u32(1);
  for (const name of imports) importSection.name("env").name(name).byte(ExternKind.func).u32(0);
  section(out, Section.import, importSection);
  const globals = new ByteWriter().u32(1).byte(I32).byte(0x00).byte(Op.i32Const).s32(apiVersion).byte(Op.end);
  section(out, Section.global, globals);
  section(out, Section.export, new ByteWriter().u32(1).name(moduleSymbol).byte(ExternKind.global).u32(0));
  return out.toBytes();
}

/** The names the link module imports: `sym_0` … `sym_{count-1}`. */
export function importedNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `sym_${i}`);
}

/**
 * The export names of a library defining `total` symbols, `imported` of which
 * are the module's imports. Those are spread evenly through the export order
 * (the others are `pad_k` fillers), so every scope size stores them in the same
 * proportion of its table and the module binary stays byte-identical across
 * sizes; putting them first would keep them in one cache-warm corner of a big
 * scope's hash table and flatter the large sizes.
 */
export function libraryNames(total: number, imported: number): string[] {
  if (total % imported !== 0) throw new RangeError(`${total} is not a multiple of ${imported}`);
  const stride = total / imported;
  return Array.from({ length: total }, (_, k) => (k % stride === 0 ? `sym_${k / stride}` : `pad_${k}`));
}
