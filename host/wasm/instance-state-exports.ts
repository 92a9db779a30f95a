/**
 * Rewrites a WebAssembly binary so the host can snapshot an instance's state
 * and restore it into a fresh instance from JavaScript, as Wizer does at build
 * time: the fork semantics of per-session instances (issue 14).
 *
 * Every defined mutable global of a numeric type is exported as
 * `__dso_global_<index>`, the defined memory as `__dso_memory`, and the start
 * function as `__dso_start`, with the start section removed, so instantiating
 * runs no guest code and the host calls the start function only in the
 * template instance. Only the export section's content changes (entries
 * appended, count and size re-encoded); every other byte is copied as is, in
 * one pass into one preallocated buffer.
 *
 * Pure: bytes in, bytes out. The binary has passed readModuleShape (reader.ts)
 * already; still, nothing is read out of bounds, and a malformed or truncated
 * binary, or one that already exports a name this would add, raises a DsoError
 * with code DSO_ERR_BAD_WASM.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { SectionId } from "./section-id.js";
import { ByteCursor, malformed } from "./byte-cursor.js";

/** The prefix of every export name this rewrite adds. */
export const INSTANCE_STATE_PREFIX = "__dso_";

/** `TArrayBuffer` is the input's buffer type: a binary on an ArrayBuffer comes back on one, for WebAssembly.Module. */
export interface InstanceStateExports<TArrayBuffer extends ArrayBufferLike = ArrayBufferLike> {
  /** The rewritten binary (the input itself, unchanged, when nothing needed rewriting). */
  readonly bytes: Uint8Array<TArrayBuffer | ArrayBuffer>;
  /** Export names of every DEFINED mutable global of a numeric type (i32, i64, f32, f64), in global index order. */
  readonly globals: readonly string[];
  /**
   * Export name of the defined memory (index 0 of the memory index space, when defined by the module and not
   * imported), else undefined. Always added, even if the module already exports it under another name.
   */
  readonly memory: string | undefined;
  /** Export name of the function the start section named; the start section is removed. Undefined when none. */
  readonly start: string | undefined;
  /**
   * Why an instance of it cannot be restored from a snapshot (a defined mutable global of type
   * v128/funcref/externref, which JS cannot copy between instances), else undefined. The bytes are still
   * rewritten for the rest.
   */
  readonly unsnapshotable: string | undefined;
}

const MEMORY_EXPORT = `${INSTANCE_STATE_PREFIX}memory`;
const START_EXPORT = `${INSTANCE_STATE_PREFIX}start`;
const GLOBAL_EXPORT = `${INSTANCE_STATE_PREFIX}global_`;

const PREFIX_BYTES = new TextEncoder().encode(INSTANCE_STATE_PREFIX);
/** Byte for byte: only an ASCII name can equal one this adds, so a name need not be valid UTF-8 to compare. */
const latin1 = new TextDecoder("latin1");

const ExternKind = { func: 0x00, table: 0x01, memory: 0x02, global: 0x03, tag: 0x04 } as const;

/** The value types a global may have; only the numeric ones can be read and set from JavaScript. */
const NUMERIC_TYPES: ReadonlySet<number> = new Set([0x7f, 0x7e, 0x7d, 0x7c]);
const OTHER_TYPES: ReadonlyMap<number, string> = new Map([
  [0x7b, "v128"],
  [0x70, "funcref"],
  [0x6f, "externref"],
]);

/** reader.ts's cursor, with the skipping the rewrite needs. */
class Cursor extends ByteCursor {
  /** Reads a value type's byte: numeric, or one of the others JavaScript cannot copy. */
  valueType(): number {
    const at = this.offset;
    const type = this.byte();
    if (!NUMERIC_TYPES.has(type) && !OTHER_TYPES.has(type)) throw malformed(at, "unknown value type");
    return type;
  }

  /** Skips a table's or memory's limits (memory64's 64-bit bounds included). */
  limits(): void {
    const at = this.offset;
    const flags = this.byte();
    if (flags > 0x07) throw malformed(at, `unsupported limits flags 0x${flags.toString(16)}`);
    this.skipLeb(10);
    if (flags & 0x01) this.skipLeb(10);
  }

  /** Refuses a section whose content does not end where its size says. */
  finish(id: number): void {
    if (this.offset !== this.end) throw malformed(this.offset, `section ${id} has trailing bytes`);
  }
}

/** What one walk over the sections finds. */
interface Scan {
  importedGlobals: number;
  importedMemories: number;
  definedMemories: number;
  /** Index (in the global index space) of each defined mutable numeric global. */
  mutableGlobals: number[];
  unsnapshotable: string | undefined;
  /** The export section: where it starts (its id byte), where its entries start, where it ends, how many. */
  exports: { start: number; entries: number; end: number; count: number } | undefined;
  /** Existing export names that start with the reserved prefix. */
  prefixed: string[];
  /** Where a new export section goes when there is none: before the first section that must follow it. */
  insertAt: number;
  start: { start: number; end: number; func: number } | undefined;
}

function scanImports(c: Cursor, scan: Scan): void {
  for (let n = c.u32(); n > 0; n--) {
    c.skip(c.u32());
    c.skip(c.u32());
    const at = c.offset;
    const kind = c.byte();
    switch (kind) {
      case ExternKind.func:
        c.u32();
        break;
      case ExternKind.table:
        c.valueType();
        c.limits();
        break;
      case ExternKind.memory:
        c.limits();
        scan.importedMemories++;
        break;
      case ExternKind.global:
        c.valueType();
        c.byte();
        scan.importedGlobals++;
        break;
      case ExternKind.tag:
        c.byte();
        c.u32();
        break;
      default:
        throw malformed(at, `unknown import kind 0x${kind.toString(16)}`);
    }
  }
}

function scanGlobals(c: Cursor, scan: Scan): void {
  const count = c.u32();
  for (let i = 0; i < count; i++) {
    const index = scan.importedGlobals + i;
    const type = c.valueType();
    const at = c.offset;
    const mutability = c.byte();
    if (mutability > 1) throw malformed(at, "bad global mutability flag");
    c.constExpr();
    if (mutability === 0) continue;
    if (NUMERIC_TYPES.has(type)) scan.mutableGlobals.push(index);
    else
      scan.unsnapshotable ??= `mutable global ${index} has type ${OTHER_TYPES.get(type)}, which a snapshot cannot copy between instances`;
  }
}

function startsWithPrefix(bytes: Uint8Array, at: number, length: number): boolean {
  if (length < PREFIX_BYTES.length) return false;
  for (let i = 0; i < PREFIX_BYTES.length; i++) if (bytes[at + i] !== PREFIX_BYTES[i]) return false;
  return true;
}

function scanExports(c: Cursor, scan: Scan, start: number): void {
  const count = c.u32();
  const entries = c.offset;
  const { bytes, end } = c;
  // The first load of a module runs this loop cold (interpreted), where every call and property write costs:
  // the offset lives in a local, and one-byte LEB128s (name lengths, kinds, indices below 128) are read inline,
  // the rest through the cursor.
  let at = c.offset;
  for (let n = count; n > 0; n--) {
    let length = bytes[at] as number;
    if (at < end && length < 0x80) at++;
    else {
      c.offset = at;
      length = c.u32();
      at = c.offset;
    }
    if (length > end - at) throw malformed(at, `length ${length} runs past the end`);
    // Only names that could clash are decoded: a 2,400-export module pays a byte compare per name.
    if (bytes[at] === 0x5f && startsWithPrefix(bytes, at, length))
      scan.prefixed.push(latin1.decode(bytes.subarray(at, at + length)));
    at += length;
    if (at + 1 < end && (bytes[at + 1] as number) < 0x80) at += 2;
    else {
      c.offset = at;
      c.byte();
      c.u32();
      at = c.offset;
    }
  }
  c.offset = at;
  scan.exports = { start, entries, end, count };
}

/** Where a section id sits in the order the spec fixes (the tag and data-count sections are out of numeric order). */
function rank(id: number): number {
  return id === SectionId.dataCount ? 9.5 : id === SectionId.tag ? 5.5 : id;
}

function scanSections(bytes: Uint8Array): Scan {
  if (bytes.length < 4 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d)
    throw new DsoError(ErrorCodes.BAD_WASM, "not a WebAssembly binary (bad magic number)");
  if (bytes.length < 8 || bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0)
    throw malformed(4, "unsupported binary version");
  const scan: Scan = {
    importedGlobals: 0,
    importedMemories: 0,
    definedMemories: 0,
    mutableGlobals: [],
    unsnapshotable: undefined,
    exports: undefined,
    prefixed: [],
    insertAt: bytes.length,
    start: undefined,
  };
  const top = new Cursor(bytes, 8, bytes.length);
  let lastRank = 0;
  while (top.offset < top.end) {
    const at = top.offset;
    const id = top.byte();
    const size = top.u32();
    const content = top.offset;
    top.skip(size);
    if (id > SectionId.tag) throw malformed(at, `unknown section id ${id}`);
    if (id !== SectionId.custom) {
      // The copy in exposeInstanceState relies on the order: export section, then start section.
      const idRank = rank(id);
      if (idRank <= lastRank) throw malformed(at, `section ${id} out of order or repeated`);
      if (lastRank < SectionId.export && idRank > SectionId.export) scan.insertAt = at;
      lastRank = idRank;
    }
    const c = new Cursor(bytes, content, top.offset);
    switch (id) {
      case SectionId.import:
        scanImports(c, scan);
        break;
      case SectionId.memory:
        scan.definedMemories = c.u32();
        c.offset = c.end;
        break;
      case SectionId.global:
        scanGlobals(c, scan);
        break;
      case SectionId.export:
        scanExports(c, scan, at);
        break;
      case SectionId.start:
        scan.start = { start: at, end: c.end, func: c.u32() };
        break;
      default:
        c.offset = c.end;
    }
    c.finish(id);
  }
  return scan;
}

function lebSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest !== 0; rest >>>= 7) size++;
  return size;
}

function writeLeb(out: Uint8Array, at: number, value: number): number {
  let rest = value >>> 0;
  let offset = at;
  while (rest >= 0x80) {
    out[offset++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[offset++] = rest;
  return offset;
}

/** One export entry to append: its name (ASCII), kind and index. */
interface NewExport {
  readonly name: string;
  readonly kind: number;
  readonly index: number;
}

function entrySize(entry: NewExport): number {
  return lebSize(entry.name.length) + entry.name.length + 1 + lebSize(entry.index);
}

function writeEntry(out: Uint8Array, at: number, entry: NewExport): number {
  let offset = writeLeb(out, at, entry.name.length);
  for (let i = 0; i < entry.name.length; i++) out[offset++] = entry.name.charCodeAt(i);
  out[offset++] = entry.kind;
  return writeLeb(out, offset, entry.index);
}

/**
 * Exports what a snapshot of an instance must read and a restore must write
 * (mutable globals, memory), and turns the start function into an export the
 * host calls itself. See InstanceStateExports for what comes back.
 */
export function exposeInstanceState<TArrayBuffer extends ArrayBufferLike>(
  bytes: Uint8Array<TArrayBuffer>,
): InstanceStateExports<TArrayBuffer> {
  const scan = scanSections(bytes);
  const added: NewExport[] = scan.mutableGlobals.map((index) => ({
    name: `${GLOBAL_EXPORT}${index}`,
    kind: ExternKind.global,
    index,
  }));
  const hasMemory = scan.importedMemories === 0 && scan.definedMemories > 0;
  if (hasMemory) added.push({ name: MEMORY_EXPORT, kind: ExternKind.memory, index: 0 });
  if (scan.start !== undefined) added.push({ name: START_EXPORT, kind: ExternKind.func, index: scan.start.func });
  const result = {
    globals: scan.mutableGlobals.map((index) => `${GLOBAL_EXPORT}${index}`),
    memory: hasMemory ? MEMORY_EXPORT : undefined,
    start: scan.start === undefined ? undefined : START_EXPORT,
    unsnapshotable: scan.unsnapshotable,
  };
  if (added.length === 0) return { bytes, ...result };
  for (const name of scan.prefixed) {
    if (added.some((entry) => entry.name === name))
      throw new DsoError(ErrorCodes.BAD_WASM, `the module exports '${name}', a name the host reserves for itself`);
  }

  const old = scan.exports;
  const count = (old?.count ?? 0) + added.length;
  let content = lebSize(count) + (old === undefined ? 0 : old.end - old.entries);
  for (const entry of added) content += entrySize(entry);
  const section = 1 + lebSize(content) + content;
  // The input is copied in three runs around the export section (old or new) and the dropped start section.
  const cutFrom = old?.start ?? scan.insertAt;
  const cutTo = old?.end ?? scan.insertAt;
  const startFrom = scan.start?.start ?? bytes.length;
  const startTo = scan.start?.end ?? bytes.length;
  const out = new Uint8Array(bytes.length - (cutTo - cutFrom) - (startTo - startFrom) + section);
  out.set(bytes.subarray(0, cutFrom), 0);
  let offset = cutFrom;
  out[offset++] = SectionId.export;
  offset = writeLeb(out, offset, content);
  offset = writeLeb(out, offset, count);
  if (old !== undefined) {
    out.set(bytes.subarray(old.entries, old.end), offset);
    offset += old.end - old.entries;
  }
  for (const entry of added) offset = writeEntry(out, offset, entry);
  out.set(bytes.subarray(cutTo, startFrom), offset);
  offset += startFrom - cutTo;
  out.set(bytes.subarray(startTo), offset);
  return { bytes: out, ...result };
}
