/**
 * A number as JSON carries it between the primary and its session workers:
 * NaN, the infinities and -0 (which JSON writes as 0) are written as text, so
 * a value crosses exactly as the other side had it (a store operation's
 * `cas`, `delta` or `bound`, a guest's f64 global).
 */
export type WireNumber = number | string;

export function toWireNumber(value: number): WireNumber {
  if (Object.is(value, -0)) return "-0";
  return Number.isFinite(value) ? value : String(value);
}

export function fromWireNumber(value: WireNumber): number {
  return typeof value === "number" ? value : Number(value);
}

/** What toWireNumber writes: a number, or one of the texts it writes for what JSON cannot hold. */
export function isWireNumber(value: unknown): value is WireNumber {
  return (
    typeof value === "number" || value === "-0" || value === "NaN" || value === "Infinity" || value === "-Infinity"
  );
}
