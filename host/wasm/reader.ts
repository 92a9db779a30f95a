/**
 * A bounds-checked reader of the WebAssembly binary format: the type, import,
 * function, table, memory, global, export, start and data sections, enough to
 * type-check every import and export before anything is compiled or run.
 * Code sections are skipped by their declared size, element sections after
 * their segment count.
 *
 * Given load limits (limits.ts), it refuses a binary as soon as what it has
 * read declares more than they allow, before the rest is read: a vector's
 * length is checked before its entries are, so a million-function bomb costs
 * one LEB128.
 *
 * Pure: bytes in, a ModuleShape out. Any malformed input raises a DsoError with
 * code DSO_ERR_BAD_WASM naming the byte offset, a binary over a limit one with
 * DSO_ERR_LOAD_LIMIT naming the limit and the value; nothing else escapes.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { overLimitText } from "./limits.js";
import type { LoadLimitName, LoadLimits } from "./limits.js";
import type {
  ByteRange,
  ExportEntry,
  ExternType,
  FuncType,
  ImportEntry,
  Limits,
  ModuleShape,
  TableType,
  ValueType,
} from "./types.js";
import { SectionId } from "./section-id.js";
import { ByteCursor, malformed } from "./byte-cursor.js";

const MAGIC = [0x00, 0x61, 0x73, 0x6d] as const;
const VERSION = 1;

const VALUE_TYPES: ReadonlyMap<number, ValueType> = new Map([
  [0x7f, "i32"],
  [0x7e, "i64"],
  [0x7d, "f32"],
  [0x7c, "f64"],
  [0x7b, "v128"],
  [0x70, "funcref"],
  [0x6f, "externref"],
]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

class ByteReader extends ByteCursor {
  name(): string {
    const length = this.u32();
    const start = this.offset;
    this.skip(length);
    try {
      return utf8.decode(this.bytes.subarray(start, start + length));
    } catch {
      throw malformed(start, "name is not valid UTF-8");
    }
  }

  valueType(): ValueType {
    const at = this.offset;
    const type = VALUE_TYPES.get(this.byte());
    if (type === undefined) throw malformed(at, "unknown value type");
    return type;
  }

  limits(allowShared: boolean): Limits {
    const at = this.offset;
    const flags = this.byte();
    if (flags > (allowShared ? 0x03 : 0x01)) throw malformed(at, `unsupported limits flags 0x${flags.toString(16)}`);
    const min = this.u32();
    const max = flags & 0x01 ? this.u32() : undefined;
    if (max !== undefined && max < min) throw malformed(at, "limits maximum below minimum");
    const shared = (flags & 0x02) !== 0;
    return max === undefined ? { min, shared } : { min, max, shared };
  }
}

interface SectionState {
  types: FuncType[];
  funcTypes: FuncType[];
  tables: Array<Extract<ExternType, { kind: "table" }>>;
  memories: Array<Extract<ExternType, { kind: "memory" }>>;
  globals: Array<{ type: Extract<ExternType, { kind: "global" }>; constValue: number | bigint | undefined }>;
  tags: Array<Extract<ExternType, { kind: "tag" }>>;
  imports: ImportEntry[];
  exports: ExportEntry[];
  definedMemories: Limits[];
  definedTables: TableType[];
  hasStartFunction: boolean;
  staticData: ByteRange[];
  customSections: string[];
  footprint: { -readonly [K in LoadLimitName]: number };
  limits: LoadLimits | undefined;
}

/** Refuses the binary if the footprint so far is over the limit `name`. */
function enforce(state: SectionState, name: LoadLimitName): void {
  const limit = state.limits?.[name];
  const value = state.footprint[name];
  if (limit !== undefined && value > limit)
    throw new DsoError(ErrorCodes.LOAD_LIMIT, overLimitText(name, value, limit));
}

/** Counts `count` more functions, globals, tables or element segments, refusing the binary past its limit. */
function tally(state: SectionState, name: "functions" | "globals" | "tables" | "elementSegments", count: number): void {
  state.footprint[name] += count;
  enforce(state, name);
}

/** Counts a table (imported or defined) and its size, refusing the binary past either limit. */
function tallyTable(state: SectionState, table: TableType): void {
  tally(state, "tables", 1);
  state.footprint.tableElements = Math.max(state.footprint.tableElements, table.limits.max ?? table.limits.min);
  enforce(state, "tableElements");
}

function funcTypeAt(state: SectionState, index: number, at: number): FuncType {
  const type = state.types[index];
  if (type === undefined) throw malformed(at, `type index ${index} out of range`);
  return type;
}

function readTypeSection(r: ByteReader, state: SectionState): void {
  for (let n = r.u32(); n > 0; n--) {
    const at = r.offset;
    const form = r.byte();
    if (form !== 0x60) throw malformed(at, `unsupported type form 0x${form.toString(16)}`);
    const params: ValueType[] = [];
    for (let p = r.u32(); p > 0; p--) params.push(r.valueType());
    const results: ValueType[] = [];
    for (let q = r.u32(); q > 0; q--) results.push(r.valueType());
    state.types.push({ params, results });
  }
}

function readImportSection(r: ByteReader, state: SectionState): void {
  for (let n = r.u32(); n > 0; n--) {
    const module = r.name();
    const name = r.name();
    const at = r.offset;
    const kind = r.byte();
    let type: ExternType;
    switch (kind) {
      case 0x00: {
        const fn: ExternType = { kind: "func", type: funcTypeAt(state, r.u32(), at) };
        tally(state, "functions", 1);
        state.funcTypes.push(fn.type);
        type = fn;
        break;
      }
      case 0x01: {
        const table = { kind: "table", element: r.valueType(), limits: r.limits(false) } as const;
        tallyTable(state, table);
        state.tables.push(table);
        type = table;
        break;
      }
      case 0x02: {
        const memory = { kind: "memory", limits: r.limits(true) } as const;
        state.memories.push(memory);
        type = memory;
        break;
      }
      case 0x03: {
        const valueType = r.valueType();
        const mutable = readMutability(r);
        const global = { kind: "global", valueType, mutable } as const;
        tally(state, "globals", 1);
        state.globals.push({ type: global, constValue: undefined });
        type = global;
        break;
      }
      case 0x04: {
        r.byte();
        const tag = { kind: "tag", type: funcTypeAt(state, r.u32(), at) } as const;
        state.tags.push(tag);
        type = tag;
        break;
      }
      default:
        throw malformed(at, `unknown import kind 0x${kind.toString(16)}`);
    }
    state.imports.push({ module, name, type });
  }
}

function readMutability(r: ByteReader): boolean {
  const at = r.offset;
  const flag = r.byte();
  if (flag > 1) throw malformed(at, "bad global mutability flag");
  return flag === 1;
}

function readExportSection(r: ByteReader, state: SectionState): void {
  for (let n = r.u32(); n > 0; n--) {
    const name = r.name();
    const at = r.offset;
    const kind = r.byte();
    const index = r.u32();
    const missing = (): DsoError => malformed(at, `export '${name}' refers to a missing item ${index}`);
    switch (kind) {
      case 0x00: {
        const type = state.funcTypes[index];
        if (type === undefined) throw missing();
        state.exports.push({ name, type: { kind: "func", type } });
        break;
      }
      case 0x01: {
        const table = state.tables[index];
        if (table === undefined) throw missing();
        state.exports.push({ name, type: table });
        break;
      }
      case 0x02: {
        const memory = state.memories[index];
        if (memory === undefined) throw missing();
        state.exports.push({ name, type: memory });
        break;
      }
      case 0x03: {
        const global = state.globals[index];
        if (global === undefined) throw missing();
        state.exports.push(
          global.constValue === undefined || global.type.mutable
            ? { name, type: global.type }
            : { name, type: global.type, constValue: global.constValue },
        );
        break;
      }
      case 0x04: {
        const tag = state.tags[index];
        if (tag === undefined) throw missing();
        state.exports.push({ name, type: tag });
        break;
      }
      default:
        throw malformed(at, `unknown export kind 0x${kind.toString(16)}`);
    }
  }
}

function readDataSection(r: ByteReader, state: SectionState): void {
  for (let n = r.u32(); n > 0; n--) {
    const at = r.offset;
    const flags = r.u32();
    const memoryIndex = flags === 2 ? r.u32() : 0;
    let offset: number | bigint | undefined;
    if (flags === 0 || flags === 2) offset = r.constExpr();
    else if (flags !== 1) throw malformed(at, `unknown data segment flags ${flags}`);
    const size = r.u32();
    r.skip(size);
    state.footprint.dataBytes += size;
    // An i32.const offset is the segment's address (wasm reads it unsigned); a global's value is not known here.
    if (memoryIndex === 0 && typeof offset === "number")
      state.staticData.push({ start: offset >>> 0, end: (offset >>> 0) + size });
  }
  enforce(state, "dataBytes");
}

function readSection(id: number, r: ByteReader, state: SectionState): void {
  switch (id) {
    case SectionId.custom:
      state.customSections.push(r.name());
      r.offset = r.end;
      return;
    case SectionId.type:
      return readTypeSection(r, state);
    case SectionId.import:
      return readImportSection(r, state);
    case SectionId.function: {
      const count = r.u32();
      tally(state, "functions", count);
      for (let n = count; n > 0; n--) {
        const at = r.offset;
        state.funcTypes.push(funcTypeAt(state, r.u32(), at));
      }
      return;
    }
    case SectionId.table:
      for (let n = r.u32(); n > 0; n--) {
        const table = { kind: "table", element: r.valueType(), limits: r.limits(false) } as const;
        tallyTable(state, table);
        state.tables.push(table);
        state.definedTables.push({ element: table.element, limits: table.limits });
      }
      return;
    case SectionId.memory:
      for (let n = r.u32(); n > 0; n--) {
        const limits = r.limits(true);
        state.memories.push({ kind: "memory", limits });
        state.definedMemories.push(limits);
      }
      return;
    case SectionId.global: {
      const count = r.u32();
      tally(state, "globals", count);
      for (let n = count; n > 0; n--) {
        const valueType = r.valueType();
        const mutable = readMutability(r);
        state.globals.push({ type: { kind: "global", valueType, mutable }, constValue: r.constExpr() });
      }
      return;
    }
    case SectionId.export:
      return readExportSection(r, state);
    case SectionId.start:
      r.u32();
      state.hasStartFunction = true;
      return;
    case SectionId.element:
      // Only the count matters here; the segments themselves are the engine's to validate.
      tally(state, "elementSegments", r.u32());
      r.offset = r.end;
      return;
    case SectionId.data:
      return readDataSection(r, state);
    case SectionId.tag:
      for (let n = r.u32(); n > 0; n--) {
        const at = r.offset;
        r.byte();
        state.tags.push({ kind: "tag", type: funcTypeAt(state, r.u32(), at) });
      }
      return;
    default:
      // Code and data-count sections (and any we do not need) are skipped whole.
      r.offset = r.end;
  }
}

/** True when the bytes start with the WebAssembly magic number. */
export function looksLikeWasm(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Reads a binary's shape. With `limits`, a binary that declares more than
 * they allow is refused (DSO_ERR_LOAD_LIMIT) as soon as that is known.
 */
export function readModuleShape(bytes: Uint8Array, limits?: LoadLimits): ModuleShape {
  if (!looksLikeWasm(bytes)) {
    throw new DsoError(ErrorCodes.BAD_WASM, "not a WebAssembly binary (bad magic number)");
  }
  if (limits !== undefined && bytes.length > limits.binarySize) {
    throw new DsoError(ErrorCodes.LOAD_LIMIT, overLimitText("binarySize", bytes.length, limits.binarySize));
  }
  const top = new ByteReader(bytes, 4, bytes.length);
  const version = top.bytes.length >= 8 ? new DataView(bytes.buffer, bytes.byteOffset + 4, 4).getUint32(0, true) : -1;
  if (version !== VERSION) throw malformed(4, `unsupported binary version ${version}`);
  top.offset = 8;
  const state: SectionState = {
    types: [],
    funcTypes: [],
    tables: [],
    memories: [],
    globals: [],
    tags: [],
    imports: [],
    exports: [],
    definedMemories: [],
    definedTables: [],
    hasStartFunction: false,
    staticData: [],
    customSections: [],
    footprint: {
      binarySize: bytes.length,
      functions: 0,
      globals: 0,
      tables: 0,
      tableElements: 0,
      elementSegments: 0,
      dataBytes: 0,
    },
    limits,
  };
  let lastId = 0;
  while (!top.atEnd) {
    const at = top.offset;
    const id = top.byte();
    const size = top.u32();
    const start = top.offset;
    top.skip(size);
    if (id !== SectionId.custom) {
      if (id > 13) throw malformed(at, `unknown section id ${id}`);
      // The spec fixes the section order; the tag and data-count sections sit out of numeric order.
      const rank = id === 12 ? 9.5 : id === 13 ? 5.5 : id;
      if (rank <= lastId) throw malformed(at, `section ${id} out of order or repeated`);
      lastId = rank;
    }
    const section = new ByteReader(bytes, start, start + size);
    readSection(id, section, state);
    if (section.offset !== section.end) throw malformed(section.offset, `section ${id} has trailing bytes`);
  }
  return {
    imports: state.imports,
    exports: state.exports,
    definedMemories: state.definedMemories,
    definedTables: state.definedTables,
    hasStartFunction: state.hasStartFunction,
    dataBytes: state.footprint.dataBytes,
    staticData: state.staticData,
    customSections: state.customSections,
    footprint: { ...state.footprint },
  };
}
