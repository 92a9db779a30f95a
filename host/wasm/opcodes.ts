/**
 * The instruction decoder of the fuel rewriter: walks an expression (a
 * function body or a constant expression) instruction by instruction, copying
 * it to a writer while
 *  - renumbering function indices (call, return_call, ref.func), because the
 *    rewriter inserts one imported function ahead of every defined one;
 *  - refusing global indices at or past the original global count, because
 *    the fuel counter is appended there and guest code must not reach it;
 *  - inserting the fuel check right after every `loop` block type.
 *
 * Why a full decoder: inserting or renumbering anything means knowing exactly
 * where every instruction starts, so every immediate of every opcode V8 might
 * accept has to be skipped with its exact length. Any opcode we do not know is
 * refused rather than guessed at: a guess that disagreed with V8 could hide a
 * `loop` from us and leave it unmetered in a module V8 accepts.
 *
 * Covered: MVP, sign extension, non-trapping float-to-int and bulk memory
 * (0xfc 0–17), reference types, multi-value block types, tail calls, typed
 * function references (call_ref, br_on_null...), legacy and exnref exception
 * handling, SIMD and relaxed SIMD (0xfd), threads (0xfe), multi-memory memargs.
 * GC (0xfb) and stringref are refused: V8 11.3 does not enable them by default.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import type { WasmReader, WasmWriter } from "./binary.js";
import { malformed } from "./binary.js";

export interface ExpressionEnv {
  /** Function count of the input module (imports + defined); any reference at or above it is invalid. */
  readonly funcCount: number;
  /** Function indices at or above this (the defined functions) move up by one. */
  readonly firstShiftedFunc: number;
  /** Global indices at or above this are refused (the fuel counter lives at the original global count). */
  readonly globalLimit: number;
  /** The bytes of the fuel check inserted after each loop header; undefined in constant expressions. */
  readonly loopCheck: Uint8Array | undefined;
  /** "function 12" or "global 3 initializer", for error messages. */
  readonly where: string;
  /** Filled in while rewriting: what the instrumenter needs to know about the expression afterwards. */
  readonly stats: ExpressionStats;
}

export interface ExpressionStats {
  /** `loop` instructions seen. */
  loops: number;
  /** Call instructions of any kind (direct, indirect, by reference, tail), to imports too. */
  calls: number;
}

/** Single-byte value types, incl. the GC shorthands: their extent is one byte whatever V8 thinks of them. */
const SINGLE_BYTE_TYPES = new Set([
  0x7f, 0x7e, 0x7d, 0x7c, 0x7b, // i32 i64 f32 f64 v128
  0x70, 0x6f, // funcref externref
  0x6e, 0x6d, 0x6c, 0x6b, 0x6a, 0x71, 0x72, 0x73, 0x69, 0x74, // any eq i31 struct array none noextern nofunc exn noexn
]);
/** (ref null ht) / (ref ht): followed by a heap type. */
const REF_NULL = 0x63;
const REF = 0x64;

function invalid(env: ExpressionEnv, at: number, what: string): DsoError {
  return new DsoError(ErrorCodes.BAD_WASM, `not a valid WebAssembly binary: ${what} in ${env.where} at byte ${at}`);
}

/** Skips a value type (in locals, typed select, tables, globals, element segments). */
export function skipValueType(r: WasmReader): void {
  const at = r.offset;
  const code = r.byte();
  if (code === REF_NULL || code === REF) {
    r.s33();
    return;
  }
  if (!SINGLE_BYTE_TYPES.has(code)) throw malformed(at, `unknown value type 0x${code.toString(16)}`);
}

function skipBlockType(r: WasmReader): void {
  const at = r.offset;
  const { value, length } = r.s33();
  if (value >= 0) return; // a type index (multi-value)
  // A negative s33 is a one-byte type code; V8 rejects longer encodings of it, so do we.
  const code = value + 0x80;
  if (length !== 1) throw malformed(at, "over-long block type");
  if (code === 0x40 || SINGLE_BYTE_TYPES.has(code)) return;
  if (code === REF_NULL || code === REF) {
    r.s33();
    return;
  }
  throw malformed(at, `unknown block type 0x${code.toString(16)}`);
}

function skipMemarg(r: WasmReader): void {
  const align = r.u32();
  // Multi-memory: bit 6 of the alignment flags announces an explicit memory index.
  if (align & 0x40) r.u32();
  r.skipLeb(10); // u32 offset, or u64 under memory64
}

/** SIMD sub-opcodes that do not exist: refused, never guessed (see the file comment). */
const SIMD_GAPS = new Set([0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]);

function skipSimd(r: WasmReader, env: ExpressionEnv, at: number): void {
  const sub = r.u32();
  if (sub <= 0x0b || sub === 0x5c || sub === 0x5d) return skipMemarg(r); // loads, store, load*_zero
  if (sub === 0x0c || sub === 0x0d) return r.skip(16); // v128.const, i8x16.shuffle
  if (sub >= 0x15 && sub <= 0x22) return r.skip(1); // extract/replace_lane
  if (sub >= 0x54 && sub <= 0x5b) {
    skipMemarg(r); // load/store*_lane
    r.skip(1);
    return;
  }
  if (sub <= 0xff && !SIMD_GAPS.has(sub)) return; // the rest of the SIMD proposal: no immediates
  if (sub >= 0x100 && sub <= 0x113) return; // relaxed SIMD: no immediates
  throw invalid(env, at, `unknown SIMD opcode 0xfd ${sub}`);
}

function skipMisc(r: WasmReader, env: ExpressionEnv, at: number): void {
  const sub = r.u32();
  switch (sub) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: // iNN.trunc_sat_fMM_s/u
      return;
    case 8: // memory.init dataidx memidx
    case 10: // memory.copy memidx memidx
    case 12: // table.init elemidx tableidx
    case 14: // table.copy tableidx tableidx
      r.u32();
      r.u32();
      return;
    case 9: // data.drop
    case 11: // memory.fill memidx
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32();
      return;
    default:
      throw invalid(env, at, `unknown opcode 0xfc ${sub}`);
  }
}

function skipAtomic(r: WasmReader, env: ExpressionEnv, at: number): void {
  const sub = r.u32();
  if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) return skipMemarg(r); // notify, wait32/64, loads, stores, rmw
  if (sub === 0x03) {
    r.byte(); // atomic.fence's reserved byte
    return;
  }
  throw invalid(env, at, `unknown atomic opcode 0xfe ${sub}`);
}

/**
 * Copies one expression from `r` to `w` up to and including its final `end`,
 * rewriting as described in the file comment. Throws DsoError(BAD_WASM) on
 * anything it cannot decode; reads nothing past `r.end`.
 */
export function rewriteExpression(r: WasmReader, w: WasmWriter, env: ExpressionEnv): void {
  const { bytes } = r;
  let depth = 0;
  // Bytes from here to r.offset are copied unchanged; flushed before each change.
  let copyFrom = r.offset;
  const flush = (upTo: number): void => {
    w.bytes(bytes.subarray(copyFrom, upTo));
    copyFrom = upTo;
  };
  for (;;) {
    const at = r.offset;
    if (at >= r.end) throw invalid(env, at, "expression ends without `end`");
    const op = r.byte();
    switch (op) {
      case 0x0b: // end
        if (depth === 0) {
          flush(r.offset);
          return;
        }
        depth--;
        break;
      case 0x02: // block
      case 0x04: // if
      case 0x06: // try (legacy exceptions)
        skipBlockType(r);
        depth++;
        break;
      case 0x03: // loop: every backward branch lands here, so this is where the check goes
        skipBlockType(r);
        depth++;
        env.stats.loops++;
        if (env.loopCheck !== undefined) {
          flush(r.offset);
          w.bytes(env.loopCheck);
        }
        break;
      case 0x1f: {
        // try_table (exnref exceptions): block type, then vec(catch clause)
        skipBlockType(r);
        for (let n = r.u32(); n > 0; n--) {
          const kindAt = r.offset;
          const kind = r.byte();
          if (kind === 0x00 || kind === 0x01) r.u32(); // catch / catch_ref: tag index
          else if (kind !== 0x02 && kind !== 0x03) throw invalid(env, kindAt, `unknown catch clause kind ${kind}`);
          r.u32(); // label
        }
        depth++;
        break;
      }
      case 0x18: // delegate: closes a `try` block in place of `end`
        r.u32();
        if (depth === 0) throw invalid(env, at, "delegate outside a try block");
        depth--;
        break;
      case 0x00: case 0x01: case 0x05: case 0x0a: case 0x0f: case 0x19: case 0x1a: case 0x1b:
      case 0xd1: case 0xd3: case 0xd4:
        // unreachable nop else throw_ref return catch_all drop select ref.is_null ref.eq ref.as_non_null
        break;
      case 0x07: case 0x08: case 0x09: // catch tag, throw tag, rethrow depth
      case 0x0c: case 0x0d: // br, br_if
      case 0x20: case 0x21: case 0x22: // local.get/set/tee
      case 0x25: case 0x26: // table.get/set
      case 0x3f: case 0x40: // memory.size/grow (memory index)
      case 0xd5: case 0xd6: // br_on_null, br_on_non_null
        r.u32();
        break;
      case 0x14: case 0x15: // call_ref, return_call_ref (type index)
        r.u32();
        env.stats.calls++;
        break;
      case 0x0e: // br_table
        for (let n = r.u32(); n > 0; n--) r.u32();
        r.u32();
        break;
      case 0x10: // call
      case 0x12: // return_call
      case 0xd2: {
        // ref.func
        if (op !== 0xd2) env.stats.calls++;
        flush(r.offset);
        const indexAt = r.offset;
        const index = r.u32();
        if (index >= env.funcCount) throw invalid(env, indexAt, `function index ${index} out of range`);
        w.u32(index >= env.firstShiftedFunc ? index + 1 : index);
        copyFrom = r.offset;
        break;
      }
      case 0x11: // call_indirect type table
      case 0x13: // return_call_indirect
        r.u32();
        r.u32();
        env.stats.calls++;
        break;
      case 0x1c: // select with value types
        for (let n = r.u32(); n > 0; n--) skipValueType(r);
        break;
      case 0x23: // global.get
      case 0x24: {
        // global.set
        const indexAt = r.offset;
        const index = r.u32();
        if (index >= env.globalLimit) throw invalid(env, indexAt, `global index ${index} out of range`);
        break;
      }
      case 0x41: // i32.const
        r.skipLeb(5);
        break;
      case 0x42: // i64.const
        r.skipLeb(10);
        break;
      case 0x43: // f32.const
        r.skip(4);
        break;
      case 0x44: // f64.const
        r.skip(8);
        break;
      case 0xd0: // ref.null heaptype
        r.s33();
        break;
      case 0xfc:
        skipMisc(r, env, at);
        break;
      case 0xfd:
        skipSimd(r, env, at);
        break;
      case 0xfe:
        skipAtomic(r, env, at);
        break;
      default:
        if (op >= 0x28 && op <= 0x3e) {
          skipMemarg(r); // loads and stores
          break;
        }
        if (op >= 0x45 && op <= 0xc4) break; // numeric, conversions, sign extension: no immediates
        throw invalid(env, at, `unknown opcode 0x${op.toString(16)}`);
    }
  }
}
