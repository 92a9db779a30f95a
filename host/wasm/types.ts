/**
 * The types of what a WebAssembly module imports and exports, as read from its
 * binary. Node 20's `WebAssembly.Module.imports()` gives names and kinds only, so
 * the linker works from these instead.
 */
import type { LoadFootprint } from "./limits.js";

export type ValueType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";

export interface FuncType {
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
}

export interface Limits {
  readonly min: number;
  readonly max?: number;
  readonly shared: boolean;
}

export type ExternType =
  | { readonly kind: "func"; readonly type: FuncType }
  | { readonly kind: "table"; readonly element: ValueType; readonly limits: Limits }
  | { readonly kind: "memory"; readonly limits: Limits }
  | { readonly kind: "global"; readonly valueType: ValueType; readonly mutable: boolean }
  | { readonly kind: "tag"; readonly type: FuncType };

export type ExternKind = ExternType["kind"];

export interface ImportEntry {
  readonly module: string;
  readonly name: string;
  readonly type: ExternType;
}

export interface ExportEntry {
  readonly name: string;
  readonly type: ExternType;
  /** For an immutable global initialised by a constant: its value (how `NAME_module` carries the API version). */
  readonly constValue?: number | bigint;
}

/** What the linker needs to know about a binary, read without compiling it. */
/** Bytes [start, end) of linear memory. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** A table as its section declares it. */
export interface TableType {
  readonly element: ValueType;
  readonly limits: Limits;
}

export interface ModuleShape {
  readonly imports: readonly ImportEntry[];
  readonly exports: readonly ExportEntry[];
  /** The memories the module defines itself (not imported). */
  readonly definedMemories: readonly Limits[];
  /** The tables the module defines itself (not imported). */
  readonly definedTables: readonly TableType[];
  /** True when the binary has a start section: guest code then runs during instantiation. */
  readonly hasStartFunction: boolean;
  /** Bytes of active and passive data segments together. */
  readonly dataBytes: number;
  /**
   * Where the active data segments with a constant offset land in memory 0:
   * the module's static data, AssemblyScript's string literals among it.
   */
  readonly staticData: readonly ByteRange[];
  readonly customSections: readonly string[];
  /** What it declares, in the units of its load limits (wasm/limits.ts). */
  readonly footprint: LoadFootprint;
}

function formatValueList(types: readonly ValueType[]): string {
  return types.join(", ");
}

/** `func (i32, i32) -> i32`, `func () -> nil`: the notation of our link errors. */
export function formatFuncType(type: FuncType): string {
  const results =
    type.results.length === 0
      ? "nil"
      : type.results.length === 1
        ? formatValueList(type.results)
        : `(${formatValueList(type.results)})`;
  return `func (${formatValueList(type.params)}) -> ${results}`;
}

export function formatLimits(limits: Limits): string {
  const range = `${limits.min}..${limits.max ?? ""}`;
  return limits.shared ? `${range} shared` : range;
}

export function formatExternType(type: ExternType): string {
  switch (type.kind) {
    case "func":
      return formatFuncType(type.type);
    case "tag":
      return `tag ${formatFuncType(type.type).slice("func ".length)}`;
    case "global":
      return `global ${type.mutable ? "mut " : ""}${type.valueType}`;
    case "memory":
      return `memory ${formatLimits(type.limits)}`;
    case "table":
      return `table ${type.element} ${formatLimits(type.limits)}`;
  }
}

function sameValueTypes(a: readonly ValueType[], b: readonly ValueType[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

export function sameFuncType(a: FuncType, b: FuncType): boolean {
  return sameValueTypes(a.params, b.params) && sameValueTypes(a.results, b.results);
}

/**
 * The wasm spec's import matching for limits: what is provided must be at least
 * as large as the import asks and must stay within the import's maximum.
 */
export function limitsSatisfy(provided: Limits, required: Limits): boolean {
  if (provided.shared !== required.shared) return false;
  if (provided.min < required.min) return false;
  if (required.max === undefined) return true;
  return provided.max !== undefined && provided.max <= required.max;
}

/** True when a definition of type `provided` can satisfy an import of type `required`. */
export function externTypeMatches(provided: ExternType, required: ExternType): boolean {
  switch (required.kind) {
    case "func":
    case "tag":
      return provided.kind === required.kind && sameFuncType(provided.type, required.type);
    case "global":
      return (
        provided.kind === "global" && provided.valueType === required.valueType && provided.mutable === required.mutable
      );
    case "memory":
      return provided.kind === "memory" && limitsSatisfy(provided.limits, required.limits);
    case "table":
      return (
        provided.kind === "table" &&
        provided.element === required.element &&
        limitsSatisfy(provided.limits, required.limits)
      );
  }
}
