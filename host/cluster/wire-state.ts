/**
 * Guest instance states (host/modules/instance-states.ts) as they cross from
 * the primary to a starting session worker in its `init` request: memory as
 * base64, globals as JSON-safe numbers, i64 globals as decimal text. Pure.
 */
import type { UnitInstanceState } from "../modules/instance-states.js";
import { fromWireNumber, isWireNumber, toWireNumber } from "./wire-number.js";
import type { WireNumber } from "./wire-number.js";

/** A mutable global's value: an i32, f32 or f64 as a WireNumber; an i64 as its decimal digits. */
type WireGlobal = WireNumber | { readonly i64: string };

interface WireChunk {
  readonly offset: number;
  readonly base64: string;
}

export interface WireInstanceState {
  readonly name: string;
  readonly hash: string;
  readonly pages: number;
  readonly chunks: readonly WireChunk[];
  readonly globals: readonly WireGlobal[];
}

export function toWireState(state: UnitInstanceState): WireInstanceState {
  const { pages, chunks, globals } = state.snapshot;
  return {
    name: state.name,
    hash: state.hash,
    pages,
    chunks: chunks.map(({ offset, bytes }) => ({
      offset,
      base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
    })),
    globals: globals.map((value) => (typeof value === "bigint" ? { i64: value.toString() } : toWireNumber(value))),
  };
}

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DECIMAL = /^-?\d+$/;

function isWireGlobal(value: unknown): value is WireGlobal {
  return isWireNumber(value) || (isRecord(value) && typeof value.i64 === "string" && DECIMAL.test(value.i64));
}

function isWireChunk(value: unknown): value is WireChunk {
  return isRecord(value) && isCount(value.offset) && typeof value.base64 === "string" && BASE64.test(value.base64);
}

function isWireState(value: unknown): value is WireInstanceState {
  return (
    isRecord(value) &&
    typeof value.name === "string" &&
    typeof value.hash === "string" &&
    isCount(value.pages) &&
    Array.isArray(value.chunks) &&
    value.chunks.every(isWireChunk) &&
    Array.isArray(value.globals) &&
    value.globals.every(isWireGlobal)
  );
}

/** The states of an `init` request as sent; throws on what our own primary could not have sent. */
export function asWireStates(value: unknown): WireInstanceState[] {
  if (!Array.isArray(value) || !value.every(isWireState)) {
    throw new Error("malformed instance states on the session worker channel");
  }
  return value;
}

export function fromWireState(wire: WireInstanceState): UnitInstanceState {
  const chunks = wire.chunks.map(({ offset, base64 }) => {
    const bytes = Buffer.from(base64, "base64");
    return { offset, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  });
  const globals = wire.globals.map((value) => (isWireNumber(value) ? fromWireNumber(value) : BigInt(value.i64)));
  return { name: wire.name, hash: wire.hash, snapshot: { pages: wire.pages, chunks, globals } };
}
