/**
 * Fuel instrumentation: a pure binary rewriter that makes a guest's CPU use
 * interruptible without leaving wasm on the fast path.
 *
 * Guests run synchronously on the daemon's main thread; a guest stuck in a
 * loop would hang the daemon. The measured alternatives (baselines.md §5) are
 * a vm timeout (~50 µs per call), a worker (ms-scale round trips) or per-block
 * JS calls (9–41x). Here the module counts down a global of its own and calls
 * the host only when it runs out.
 *
 * What the rewrite adds:
 *  - an imported function `dso_sandbox.refuel : [] -> []`, after the existing
 *    function imports (so every defined function's index moves up by one, and
 *    every function reference is renumbered);
 *  - a defined mutable i32 global, initially 0, exported as `__dso_fuel`;
 *  - a defined function (the last one) holding the slow path;
 *  - at the entry of every defined function that contains a call of any kind:
 *
 *        fuel -= 1; if (fuel < 0) call $slow
 *
 *  - right after every `loop` block type, a countdown in a new i32 local that
 *    charges the global only every LOOP_CHUNK iterations (see loopCheck):
 *
 *        if (--c < 0) { c = LOOP_CHUNK - 1; fuel -= LOOP_CHUNK; if (fuel < 0) call $slow }
 *
 *    Every backward branch targets a loop header and every call (direct,
 *    indirect, tail) enters a function, so no path runs unbounded without
 *    passing a check. A function without calls skips the entry check: its
 *    straight-line code is bounded by its size and its loops meter themselves.
 *
 * The slow path:
 *
 *        if (fuel < -16 * LOOP_CHUNK) unreachable  ;; refuel keeps failing to refill (its throws are being caught)
 *        call $refuel                    ;; host: throw if the budget is spent, else refill
 *        if (fuel < 0) unreachable       ;; refuel returned without refilling
 *
 * Host protocol: `refuel` either sets `__dso_fuel` to a positive refill (a
 * unit is one call or one loop iteration, over-charged by up to a chunk per
 * function invocation; 1e5–1e6 units is ~0.1–10 ms of guest work) or stops the guest, by throwing (the JS exception unwinds the
 * wasm stack and reaches the caller as is) or by returning without refilling
 * (an immediate trap). The traps matter for guests using exception handling:
 * V8 lets wasm `catch_all` catch a JS exception thrown by an import, so a guest
 * could catch refuel's throw and loop on; traps (and wasm stack overflows) are
 * not catchable by wasm (checked on Node 20), and since every check
 * charges before calling, a guest that keeps catching reaches the floor and
 * traps (after at most 16 * LOOP_CHUNK further refuel calls). The host then sees a WebAssembly.RuntimeError ("unreachable") and
 * should report its own budget error (it knows its deadline passed).
 *
 * Safety of the rewrite against hostile input: guest code may not name the
 * new global, the new import or the slow-path function (indices at or past the
 * input's counts are refused), may not already export `__dso_fuel` or import
 * from `dso_sandbox`; any opcode the decoder does not know is refused.
 *
 * Pure: bytes in, bytes out. Any malformed input raises DsoError(BAD_WASM);
 * nothing else escapes, and every loop consumes input, so it cannot hang.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { WasmReader, WasmWriter, lebU32, malformed } from "./binary.js";
import { rewriteExpression, skipValueType } from "./opcodes.js";
import type { ExpressionEnv } from "./opcodes.js";

/** The export through which the host reads and refills a module's fuel. */
export const fuelExportName = "__dso_fuel";
/** The import the slow path calls when fuel runs out. */
export const refuelImport = { module: "dso_sandbox", name: "refuel" } as const;
/** How many times refuel may be entered without refilling before the guest traps (see the file comment). */
export const REFUEL_RETRY_LIMIT = 16;
/** Loop iterations counted in a local between charges to the global (see loopCheck). */
export const LOOP_CHUNK = 1024;
/** V8's limit on a function's locals (params included): kV8MaxWasmFunctionLocals. */
const MAX_LOCALS = 50_000;

export interface InstrumentedModule {
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Export name of the fuel counter: a mutable i32 `WebAssembly.Global`. */
  readonly fuelGlobal: string;
  /** The `() -> ()` function import the module calls when the counter drops below zero. */
  readonly refuelImport: { readonly module: string; readonly name: string };
}

const Section = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

/** Position of each known section in the order the spec requires (tag and data count sit out of numeric order). */
function rank(id: number): number {
  return id === Section.dataCount ? 9.5 : id === Section.tag ? 5.5 : id;
}

const Op = {
  unreachable: 0x00,
  if: 0x04,
  end: 0x0b,
  call: 0x10,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  i32Const: 0x41,
  i32LtS: 0x48,
  i32Sub: 0x6b,
  emptyBlock: 0x40,
} as const;

const I32 = 0x7f;
const FUNC_TYPE = 0x60;
const ExternKind = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

interface RawSection {
  readonly id: number;
  /** Offset of the section id byte (for error messages). */
  readonly at: number;
  readonly start: number;
  readonly end: number;
}

/** What the earlier sections tell the later ones, filled in section order. */
interface State {
  readonly bytes: Uint8Array;
  /** Parameter count of each type (a loop counter local is numbered after params and locals). */
  readonly typeParams: number[];
  /** Type index of each defined function. */
  readonly funcTypes: number[];
  /** Index of the `() -> ()` type used by the import and the slow path. */
  voidType: number;
  funcImports: number;
  globalImports: number;
  definedFuncs: number;
  definedGlobals: number;
  /** Index of the new global, and of the new import / slow path after renumbering. */
  fuelGlobal: number;
  refuelFunc: number;
  slowFunc: number;
}

function splitSections(bytes: Uint8Array): RawSection[] {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new DsoError(ErrorCodes.BAD_WASM, "not a WebAssembly binary (bad magic number)");
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw malformed(4, "unsupported binary version");
  const top = new WasmReader(bytes, 8, bytes.length);
  const sections: RawSection[] = [];
  let lastRank = 0;
  while (!top.atEnd) {
    const at = top.offset;
    const id = top.byte();
    const size = top.u32();
    const start = top.offset;
    top.skip(size);
    if (id !== Section.custom) {
      if (id > Section.tag) throw malformed(at, `unknown section id ${id}`);
      if (rank(id) <= lastRank) throw malformed(at, `section ${id} out of order or repeated`);
      lastRank = rank(id);
    }
    sections.push({ id, at, start, end: start + size });
  }
  return sections;
}

function expectEnd(r: WasmReader, id: number): void {
  if (r.offset !== r.end) throw malformed(r.offset, `section ${id} has trailing bytes`);
}

function skipLimits(r: WasmReader): void {
  const at = r.offset;
  const flags = r.byte();
  if (flags > 0x07) throw malformed(at, `unsupported limits flags 0x${flags.toString(16)}`);
  const width = flags & 0x04 ? 10 : 5; // memory64 / table64 limits are u64
  r.skipLeb(width);
  if (flags & 0x01) r.skipLeb(width);
}

function env(state: State, where: string, globalLimit: number, loopCheck?: Uint8Array): ExpressionEnv {
  return {
    funcCount: state.funcImports + state.definedFuncs,
    firstShiftedFunc: state.funcImports,
    globalLimit,
    loopCheck,
    where,
    stats: { loops: 0, calls: 0 },
  };
}

function renumberFunc(state: State, index: number, at: number): number {
  if (index >= state.funcImports + state.definedFuncs) throw malformed(at, `function index ${index} out of range`);
  return index >= state.funcImports ? index + 1 : index;
}

// --- sections -----------------------------------------------------------------

function rewriteTypes(r: WasmReader, state: State): WasmWriter {
  const w = new WasmWriter(r.end - r.offset + 8);
  const count = r.u32();
  const entriesStart = r.offset;
  let voidType = -1;
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    const form = r.byte();
    if (form !== FUNC_TYPE) throw malformed(at, `unsupported type form 0x${form.toString(16)}`);
    const params = r.u32();
    for (let p = params; p > 0; p--) skipValueType(r);
    const results = r.u32();
    for (let q = results; q > 0; q--) skipValueType(r);
    if (params === 0 && results === 0 && voidType < 0) voidType = i;
    state.typeParams.push(params);
  }
  expectEnd(r, Section.type);
  const entries = r.bytes.subarray(entriesStart, r.end);
  if (voidType >= 0) {
    state.voidType = voidType;
    return w.u32(count).bytes(entries);
  }
  state.voidType = count;
  return w.u32(count + 1).bytes(entries).bytes([FUNC_TYPE, 0, 0]);
}

function rewriteImports(r: WasmReader | undefined, state: State): WasmWriter {
  const w = new WasmWriter(r === undefined ? 32 : r.end - r.offset + 32);
  let count = 0;
  let entriesStart = 0;
  if (r !== undefined) {
    count = r.u32();
    entriesStart = r.offset;
    for (let i = 0; i < count; i++) {
      const at = r.offset;
      const module = r.name();
      if (module === refuelImport.module) throw malformed(at, `import module name '${module}' is reserved for the sandbox`);
      r.skipName();
      const kindAt = r.offset;
      const kind = r.byte();
      switch (kind) {
        case ExternKind.func:
          r.u32();
          state.funcImports++;
          break;
        case ExternKind.table:
          skipValueType(r);
          skipLimits(r);
          break;
        case ExternKind.memory:
          skipLimits(r);
          break;
        case ExternKind.global:
          skipValueType(r);
          r.byte();
          state.globalImports++;
          break;
        case ExternKind.tag:
          r.byte();
          r.u32();
          break;
        default:
          throw malformed(kindAt, `unknown import kind 0x${kind.toString(16)}`);
      }
    }
    expectEnd(r, Section.import);
  }
  // Appended last, its index is the function import count: after every existing function import.
  w.u32(count + 1);
  if (r !== undefined) w.bytes(r.bytes.subarray(entriesStart, r.end));
  w.name(refuelImport.module).name(refuelImport.name).byte(ExternKind.func).u32(state.voidType);
  return w;
}

function rewriteFunctions(r: WasmReader | undefined, state: State): WasmWriter {
  const w = new WasmWriter(r === undefined ? 8 : r.end - r.offset + 8);
  let count = 0;
  let entriesStart = 0;
  if (r !== undefined) {
    count = r.u32();
    entriesStart = r.offset;
    for (let i = 0; i < count; i++) {
      const at = r.offset;
      const type = r.u32();
      if (type >= state.typeParams.length) throw malformed(at, `type index ${type} out of range`);
      state.funcTypes.push(type);
    }
    expectEnd(r, Section.function);
  }
  state.definedFuncs = count;
  w.u32(count + 1);
  if (r !== undefined) w.bytes(r.bytes.subarray(entriesStart, r.end));
  return w.u32(state.voidType);
}

function rewriteTables(r: WasmReader, state: State): WasmWriter {
  const w = new WasmWriter(r.end - r.offset + 8);
  const count = r.u32();
  w.u32(count);
  let copyFrom = r.offset;
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    if (r.bytes[r.offset] === 0x40) {
      // Typed function references: 0x40 0x00 reftype limits init-expression (may hold ref.func).
      r.byte();
      if (r.byte() !== 0x00) throw malformed(at, "bad table initializer prefix");
      skipValueType(r);
      skipLimits(r);
      w.bytes(r.bytes.subarray(copyFrom, r.offset));
      rewriteExpression(r, w, env(state, `table ${i} initializer`, state.globalImports));
      copyFrom = r.offset;
    } else {
      skipValueType(r);
      skipLimits(r);
    }
  }
  expectEnd(r, Section.table);
  return w.bytes(r.bytes.subarray(copyFrom, r.end));
}

function rewriteGlobals(r: WasmReader | undefined, state: State): WasmWriter {
  const w = new WasmWriter(r === undefined ? 16 : r.end - r.offset + 16);
  const count = r === undefined ? 0 : r.u32();
  w.u32(count + 1);
  if (r !== undefined) {
    for (let i = 0; i < count; i++) {
      const typeStart = r.offset;
      skipValueType(r);
      const mutAt = r.offset;
      if (r.byte() > 1) throw malformed(mutAt, "bad global mutability flag");
      w.bytes(r.bytes.subarray(typeStart, r.offset));
      // An initializer may read only the globals before it.
      const index = state.globalImports + i;
      rewriteExpression(r, w, env(state, `global ${index} initializer`, index));
    }
    expectEnd(r, Section.global);
  }
  state.definedGlobals = count;
  // The fuel counter: mutable i32, starting empty so an unprepared call refuels at once.
  return w.bytes([I32, 0x01, Op.i32Const, 0x00, Op.end]);
}

function rewriteExports(r: WasmReader | undefined, state: State): WasmWriter {
  const w = new WasmWriter(r === undefined ? 32 : r.end - r.offset + 32);
  const count = r === undefined ? 0 : r.u32();
  w.u32(count + 1);
  if (r !== undefined) {
    const globalCount = state.globalImports + state.definedGlobals;
    for (let i = 0; i < count; i++) {
      const nameStart = r.offset;
      const name = r.name();
      if (name === fuelExportName) throw malformed(nameStart, `export name '${name}' is reserved for the sandbox (already instrumented?)`);
      const kindAt = r.offset;
      const kind = r.byte();
      w.bytes(r.bytes.subarray(nameStart, r.offset));
      const indexAt = r.offset;
      const index = r.u32();
      if (kind === ExternKind.func) {
        w.u32(renumberFunc(state, index, indexAt));
      } else {
        if (kind === ExternKind.global && index >= globalCount) throw malformed(indexAt, `global index ${index} out of range`);
        if (kind > ExternKind.tag) throw malformed(kindAt, `unknown export kind 0x${kind.toString(16)}`);
        w.u32(index);
      }
    }
    expectEnd(r, Section.export);
  }
  return w.name(fuelExportName).byte(ExternKind.global).u32(state.fuelGlobal);
}

function rewriteStart(r: WasmReader, state: State): WasmWriter {
  const at = r.offset;
  const index = r.u32();
  expectEnd(r, Section.start);
  return new WasmWriter(8).u32(renumberFunc(state, index, at));
}

function rewriteElements(r: WasmReader, state: State): WasmWriter {
  const w = new WasmWriter(r.end - r.offset + 16);
  const count = r.u32();
  w.u32(count);
  const globalCount = state.globalImports + state.definedGlobals;
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    const flags = r.u32();
    if (flags > 7) throw malformed(at, `unknown element segment flags ${flags}`);
    w.u32(flags);
    const where = env(state, `element segment ${i}`, globalCount);
    // Bit 0: passive or declarative (no offset); bit 1: explicit table index (active) or declarative; bit 2: expressions.
    const active = (flags & 0x01) === 0;
    const copy = (from: number): void => {
      w.bytes(r.bytes.subarray(from, r.offset));
    };
    if (active && flags & 0x02) {
      const from = r.offset;
      r.u32(); // table index
      copy(from);
    }
    if (active) rewriteExpression(r, w, where); // offset
    if (flags & 0x04) {
      if (flags !== 4) {
        const from = r.offset;
        skipValueType(r); // reftype
        copy(from);
      }
      const items = r.u32();
      w.u32(items);
      for (let n = 0; n < items; n++) rewriteExpression(r, w, where);
    } else {
      if (flags !== 0) {
        const kindAt = r.offset;
        if (r.byte() !== 0x00) throw malformed(kindAt, "unknown element kind");
        w.byte(0x00);
      }
      const items = r.u32();
      w.u32(items);
      for (let n = 0; n < items; n++) {
        const indexAt = r.offset;
        w.u32(renumberFunc(state, r.u32(), indexAt));
      }
    }
  }
  expectEnd(r, Section.element);
  return w;
}

function rewriteData(r: WasmReader, state: State): WasmWriter {
  const w = new WasmWriter(r.end - r.offset + 16);
  const count = r.u32();
  w.u32(count);
  const globalCount = state.globalImports + state.definedGlobals;
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    const flags = r.u32();
    w.u32(flags);
    if (flags > 2) throw malformed(at, `unknown data segment flags ${flags}`);
    if (flags === 2) w.u32(r.u32()); // memory index
    if (flags !== 1) rewriteExpression(r, w, env(state, `data segment ${i}`, globalCount));
    const sizeAt = r.offset;
    const size = r.u32();
    const from = r.offset;
    if (size > r.end - from) throw malformed(sizeAt, `data segment ${i} runs past the section`);
    r.skip(size);
    w.u32(size).bytes(r.bytes.subarray(from, r.offset));
  }
  expectEnd(r, Section.data);
  return w;
}

function rewriteCode(r: WasmReader | undefined, state: State): WasmWriter {
  // Each check is ~15 bytes; reserve a little headroom so most modules never regrow.
  const w = new WasmWriter(r === undefined ? 64 : Math.ceil((r.end - r.offset) * 1.25) + 64);
  const count = r === undefined ? 0 : r.u32();
  if (count !== state.definedFuncs) {
    throw malformed(r?.offset ?? 0, `code section has ${count} bodies for ${state.definedFuncs} declared functions`);
  }
  w.u32(count + 1);
  if (r !== undefined) {
    const globalCount = state.globalImports + state.definedGlobals;
    for (let i = 0; i < count; i++) {
      const funcIndex = state.funcImports + i;
      const sizeAt = r.offset;
      const size = r.u32();
      if (size > r.end - r.offset) throw malformed(sizeAt, `body of function ${funcIndex} runs past the code section`);
      const bodyReader = new WasmReader(r.bytes, r.offset, r.offset + size);
      r.skip(size);
      try {
        const declCount = bodyReader.u32();
        const declsStart = bodyReader.offset;
        let locals = state.typeParams[state.funcTypes[i] as number] ?? 0;
        for (let n = declCount; n > 0; n--) {
          locals += bodyReader.u32();
          skipValueType(bodyReader);
        }
        const decls = bodyReader.bytes.subarray(declsStart, bodyReader.offset);
        // The loop counter is a new i32 local numbered after every existing one,
        // so no existing local.get/set needs renumbering.
        const counter = locals;
        const expression = env(state, `function ${funcIndex}`, globalCount, loopCheck(state, counter));
        const code = new WasmWriter(size + 64);
        rewriteExpression(bodyReader, code, expression);
        if (!bodyReader.atEnd) throw malformed(bodyReader.offset, `function ${funcIndex} has bytes after its final end`);
        const bodyOut = new WasmWriter(code.length + decls.length + 32);
        if (expression.stats.loops > 0) {
          if (counter + 1 > MAX_LOCALS) throw malformed(sizeAt, `function ${funcIndex} has too many locals to add a loop counter`);
          bodyOut.u32(declCount + 1).bytes(decls).bytes([1, I32]);
        } else {
          bodyOut.u32(declCount).bytes(decls);
        }
        // A function that calls nothing runs its straight-line code once per
        // entry and meters its loops itself: its entry check can go. Any call
        // (imports included: they may be other guests' exports, calling back)
        // keeps it, so every cycle and every fan-out through calls is metered.
        if (expression.stats.calls > 0) bodyOut.bytes(entryCheck(state));
        bodyOut.bytes(code.view());
        w.sized(bodyOut);
      } catch (error) {
        // Name the function in every failure, including truncation found by the byte reader.
        if (error instanceof DsoError && !error.message.includes(` in function ${funcIndex} at byte`)) {
          throw new DsoError(ErrorCodes.BAD_WASM, `${error.message} (in function ${funcIndex})`, { cause: error });
        }
        throw error;
      }
    }
    expectEnd(r, Section.code);
  }
  return w.sized(slowPathBody(state));
}

function slowPathBody(state: State): WasmWriter {
  const fuel = lebU32(state.fuelGlobal);
  const fuelBelow = (limit: number): WasmWriter =>
    new WasmWriter(16).byte(Op.globalGet).bytes(fuel).byte(Op.i32Const).s32(limit).byte(Op.i32LtS);
  return new WasmWriter(48)
    .byte(0) // no locals
    .bytes(fuelBelow(-REFUEL_RETRY_LIMIT * LOOP_CHUNK).view())
    .bytes([Op.if, Op.emptyBlock, Op.unreachable, Op.end])
    .byte(Op.call)
    .u32(state.refuelFunc)
    .bytes(fuelBelow(0).view())
    .bytes([Op.if, Op.emptyBlock, Op.unreachable, Op.end, Op.end]);
}

/**
 * The `name` custom section keys function, local and label names by function
 * index; renumber them so stack traces keep naming guest functions. A name
 * section we cannot parse is dropped (engines ignore malformed ones anyway).
 */
function rewriteNames(r: WasmReader, state: State): WasmWriter | undefined {
  try {
    const w = new WasmWriter(r.end - r.offset + 16);
    w.name("name");
    r.name();
    while (!r.atEnd) {
      const id = r.byte();
      const size = r.u32();
      const sub = new WasmReader(r.bytes, r.offset, r.offset + size);
      r.skip(size);
      if (id !== 1 && id !== 2 && id !== 3) {
        w.byte(id).u32(size).bytes(r.bytes.subarray(sub.offset, sub.end));
        continue;
      }
      const out = new WasmWriter(size + 8);
      const count = sub.u32();
      out.u32(count);
      for (let i = 0; i < count; i++) {
        const at = sub.offset;
        out.u32(renumberFunc(state, sub.u32(), at));
        const from = sub.offset;
        if (id === 1) sub.skipName();
        else {
          for (let n = sub.u32(); n > 0; n--) {
            sub.u32();
            sub.skipName();
          }
        }
        out.bytes(r.bytes.subarray(from, sub.offset));
      }
      if (!sub.atEnd) return undefined;
      w.byte(id).sized(out);
    }
    return w;
  } catch {
    return undefined;
  }
}

/** fuel -= 1; if (fuel < 0) call $slow — at the entry of every function that calls anything. */
function entryCheck(state: State): Uint8Array {
  const fuel = lebU32(state.fuelGlobal);
  return Uint8Array.from([
    Op.globalGet, ...fuel, Op.i32Const, 1, Op.i32Sub, Op.globalSet, ...fuel,
    Op.globalGet, ...fuel, Op.i32Const, 0, Op.i32LtS,
    Op.if, Op.emptyBlock, Op.call, ...lebU32(state.slowFunc), Op.end,
  ]);
}

/**
 * At each loop header: count down a local, and only every LOOP_CHUNK
 * iterations charge the global (by LOOP_CHUNK) and maybe call $slow.
 *
 * Why a local: a global is memory to V8, so decrementing it every iteration
 * adds a load and a store to each iteration of every loop; on a store-bound
 * loop (the sieve in bench/cpu.ts) that nearly doubled the time. The local
 * lives in a register. It starts at 0 (locals are zeroed), so the first
 * iteration of each call charges a whole chunk: fuel is over-charged, never
 * under-charged, and an invocation runs at most LOOP_CHUNK iterations before
 * the global sees them.
 *
 *     if ((c = c - 1) < 0) { c = LOOP_CHUNK - 1; fuel -= LOOP_CHUNK; if (fuel < 0) call $slow }
 */
function loopCheck(state: State, counter: number): Uint8Array {
  const fuel = lebU32(state.fuelGlobal);
  const c = lebU32(counter);
  return new WasmWriter(48)
    .byte(Op.localGet).bytes(c).byte(Op.i32Const).s32(1).byte(Op.i32Sub).byte(Op.localTee).bytes(c)
    .byte(Op.i32Const).s32(0).byte(Op.i32LtS)
    .bytes([Op.if, Op.emptyBlock])
    .byte(Op.i32Const).s32(LOOP_CHUNK - 1).byte(Op.localSet).bytes(c)
    .byte(Op.globalGet).bytes(fuel).byte(Op.i32Const).s32(LOOP_CHUNK).byte(Op.i32Sub).byte(Op.globalSet).bytes(fuel)
    .byte(Op.globalGet).bytes(fuel).byte(Op.i32Const).s32(0).byte(Op.i32LtS)
    .bytes([Op.if, Op.emptyBlock, Op.call, ...lebU32(state.slowFunc), Op.end, Op.end])
    .finish();
}

/**
 * Rewrites a module so that it counts down `__dso_fuel` at every function
 * entry and loop header and calls `dso_sandbox.refuel` when the count drops
 * below zero. See the file comment for the host protocol.
 */
export function instrumentFuel(bytes: Uint8Array): InstrumentedModule {
  try {
    return instrument(bytes);
  } catch (error) {
    if (error instanceof DsoError) throw error;
    // Defence in depth: nothing above should throw anything else (every read
    // is bounds-checked), but a RangeError from an allocation must not escape
    // as something the loader does not expect.
    throw new DsoError(ErrorCodes.BAD_WASM, `cannot instrument module: ${String(error)}`, { cause: error });
  }
}

function instrument(bytes: Uint8Array): InstrumentedModule {
  const sections = splitSections(bytes);
  const state: State = {
    bytes,
    typeParams: [],
    funcTypes: [],
    voidType: 0,
    funcImports: 0,
    globalImports: 0,
    definedFuncs: 0,
    definedGlobals: 0,
    fuelGlobal: 0,
    refuelFunc: 0,
    slowFunc: 0,
  };
  const find = (id: number): WasmReader | undefined => {
    const s = sections.find((section) => section.id === id);
    return s === undefined ? undefined : new WasmReader(bytes, s.start, s.end);
  };
  const replaced = new Map<number, WasmWriter>();

  // In section order, since each depends on counts from the ones before.
  const types = find(Section.type);
  // Without a type section the new one holds just `() -> ()`, at index 0 (state.voidType's initial value).
  replaced.set(Section.type, types === undefined ? new WasmWriter(8).u32(1).bytes([FUNC_TYPE, 0, 0]) : rewriteTypes(types, state));
  replaced.set(Section.import, rewriteImports(find(Section.import), state));
  replaced.set(Section.function, rewriteFunctions(find(Section.function), state));
  // The new import takes index funcImports; the slow path comes after every (shifted) defined function.
  state.refuelFunc = state.funcImports;
  state.slowFunc = state.funcImports + 1 + state.definedFuncs;
  const tables = find(Section.table);
  if (tables !== undefined) replaced.set(Section.table, rewriteTables(tables, state));
  const globals = rewriteGlobals(find(Section.global), state);
  replaced.set(Section.global, globals);
  state.fuelGlobal = state.globalImports + state.definedGlobals;
  replaced.set(Section.export, rewriteExports(find(Section.export), state));
  const start = find(Section.start);
  if (start !== undefined) replaced.set(Section.start, rewriteStart(start, state));
  const elements = find(Section.element);
  if (elements !== undefined) replaced.set(Section.element, rewriteElements(elements, state));
  replaced.set(Section.code, rewriteCode(find(Section.code), state));
  const data = find(Section.data);
  if (data !== undefined) replaced.set(Section.data, rewriteData(data, state));

  // Emit: existing sections in their order (rewritten where needed), new ones
  // inserted before the first known section that must follow them.
  const out = new WasmWriter(bytes.length + bytes.length / 4 + 256);
  out.bytes(bytes.subarray(0, 8));
  const pending = [...replaced.keys()].filter((id) => !sections.some((s) => s.id === id)).sort((a, b) => rank(a) - rank(b));
  const emit = (id: number, body: ArrayLike<number>): void => {
    out.byte(id).u32(body.length).bytes(body);
  };
  const emitPendingBefore = (limit: number): void => {
    while (pending.length > 0 && rank(pending[0] as number) < limit) {
      const id = pending.shift() as number;
      emit(id, (replaced.get(id) as WasmWriter).view());
    }
  };
  for (const section of sections) {
    if (section.id === Section.custom) {
      const r = new WasmReader(bytes, section.start, section.end);
      const isName = (() => {
        try {
          return r.name() === "name";
        } catch {
          return false; // a custom section with a malformed name: V8's to reject, copied as is
        }
      })();
      if (isName) {
        const names = rewriteNames(new WasmReader(bytes, section.start, section.end), state);
        if (names !== undefined) emit(Section.custom, names.view());
        continue;
      }
      emit(Section.custom, bytes.subarray(section.start, section.end));
      continue;
    }
    emitPendingBefore(rank(section.id));
    const body = replaced.get(section.id);
    emit(section.id, body === undefined ? bytes.subarray(section.start, section.end) : body.view());
  }
  emitPendingBefore(Infinity);
  return { bytes: out.finish(), fuelGlobal: fuelExportName, refuelImport: { ...refuelImport } };
}

/** True when the module already exports `__dso_fuel` (instrumentFuel refuses those). */
export function isInstrumented(bytes: Uint8Array): boolean {
  try {
    const exports = splitSections(bytes).find((s) => s.id === Section.export);
    if (exports === undefined) return false;
    const r = new WasmReader(bytes, exports.start, exports.end);
    for (let n = r.u32(); n > 0; n--) {
      if (r.name() === fuelExportName) return true;
      r.byte();
      r.u32();
    }
    return false;
  } catch {
    return false;
  }
}
