/**
 * Binaries for the link benchmark, written with the hand-made encoder
 * (wasm-encoder.ts) rather than wabt: a library with 100,000 exports is about
 * 1.5 MB of text for wabt to parse, while encoding it directly takes a few
 * milliseconds and keeps the setup out of the one-minute budget.
 */
import { ByteWriter, ExternKind, FUNC_TYPE, I32, Op, SectionId as Section } from "./wasm-encoder.js";

/** Type section with the single type `func () -> i32` (index 0). */
function typeSectionReturningI32(out: ByteWriter): void {
  out.section(Section.type, new ByteWriter().u32(1).byte(FUNC_TYPE).u32(0).u32(1).byte(I32));
}

/**
 * A library whose one function `() -> i32` is exported under every name in
 * `names`: valid wasm (an export section may name one function many times),
 * and the cheapest way to make a provider of N distinct global symbols.
 */
export function libraryExporting(names: readonly string[]): Uint8Array<ArrayBuffer> {
  const out = ByteWriter.module();
  typeSectionReturningI32(out);
  out.section(Section.function, new ByteWriter().u32(1).u32(0));
  const exports = new ByteWriter().u32(names.length);
  for (const name of names) exports.name(name).byte(ExternKind.func).u32(0);
  out.section(Section.export, exports);
  const body = new ByteWriter().u32(0).byte(Op.i32Const).s32(42).byte(Op.end);
  out.section(Section.code, new ByteWriter().u32(1).u32(body.length).bytes(body.toBytes()));
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
  const out = ByteWriter.module();
  typeSectionReturningI32(out);
  const importSection = new ByteWriter().u32(imports.length + 1);
  // One page, no growth: the host still creates a Memory per load, as it would for a real module.
  importSection.name("env").name("memory").byte(ExternKind.memory).byte(0x01).u32(1).u32(1);
  for (const name of imports) importSection.name("env").name(name).byte(ExternKind.func).u32(0);
  out.section(Section.import, importSection);
  const globals = new ByteWriter().u32(1).byte(I32).byte(0x00).byte(Op.i32Const).s32(apiVersion).byte(Op.end);
  out.section(Section.global, globals);
  out.section(Section.export, new ByteWriter().u32(1).name(moduleSymbol).byte(ExternKind.global).u32(0));
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
