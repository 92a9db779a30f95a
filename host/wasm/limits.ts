/**
 * Load-time limits on what a binary may declare, after wasmtime's module and
 * store limits: V8 accepts up to 1,000,000 functions, 10,000,000 table
 * elements and 1 GiB data segments per module (the JS API's implementation
 * limits), and pays for each at compile or instantiation time, before any
 * memory cap or CPU budget applies. These bounds are checked from the
 * sections (reader.ts) before anything is compiled; each default is sized for
 * real modules with wide headroom (docs/security.md gives the measurements).
 *
 * And what V8 stores per table element, so tables count against a module's
 * memory cap.
 *
 * Pure: values in, values out.
 */
import type { ValueType } from "./types.js";

/** What a binary declares, in the units of its load limits. */
export interface LoadFootprint {
  /** Size of the binary in bytes. */
  readonly binarySize: number;
  /** Imported and defined functions. */
  readonly functions: number;
  /** Imported and defined globals. */
  readonly globals: number;
  /** Imported and defined tables. */
  readonly tables: number;
  /** The largest initial size or declared maximum of any table. */
  readonly tableElements: number;
  /** Element segments. */
  readonly elementSegments: number;
  /** Bytes of active and passive data segments together. */
  readonly dataBytes: number;
}

export type LoadLimitName = keyof LoadFootprint;

/** The most a unit may declare, per footprint field. */
export type LoadLimits = LoadFootprint;

/**
 * The defaults, against the example guests and test fixtures: at most a
 * 20,399-byte binary (mod_upload_filter.c), 47 functions (mod_xfer_stats.c),
 * 18 globals, 10,862 bytes of data, and no table or element segment at all
 * (AssemblyScript emits none); the load benchmark's large module has 2,400
 * functions and 128 KiB of data.
 */
export const DEFAULT_LOAD_LIMITS: LoadLimits = {
  // Hundreds of times the largest guest; a C library as large as SQLite compiles to under 2 MiB.
  binarySize: 32 * 1024 * 1024,
  // A module of trivial functions compiles in about 0.45 µs each: 100,000 cost about 45 ms.
  functions: 100_000,
  globals: 10_000,
  tables: 16,
  // 2.7 MiB as funcref elements (28 bytes each), a sixth of the default memory cap.
  tableElements: 100_000,
  elementSegments: 10_000,
  // The default memory cap: active data larger than the memory cannot even be instantiated.
  dataBytes: 16 * 1024 * 1024,
};

/**
 * The JS API's implementation limits, which V8 enforces itself: raising a
 * load limit past them would change nothing.
 */
export const V8_LOAD_LIMITS: LoadLimits = {
  binarySize: 1024 * 1024 * 1024,
  functions: 1_000_000,
  globals: 1_000_000,
  tables: 100_000,
  tableElements: 10_000_000,
  elementSegments: 10_000_000,
  dataBytes: 1024 * 1024 * 1024,
};

/** The directive's keyword for each limit (`ModuleLoadLimits mod_x.c Functions 200000`). */
export const LOAD_LIMIT_KEYWORDS: Readonly<Record<LoadLimitName, string>> = {
  binarySize: "BinarySize",
  functions: "Functions",
  globals: "Globals",
  tables: "Tables",
  tableElements: "TableElements",
  elementSegments: "ElementSegments",
  dataBytes: "DataBytes",
};

/** Limits given in bytes (a K, M or G suffix is accepted). */
export const BYTE_LIMITS: ReadonlySet<LoadLimitName> = new Set(["binarySize", "dataBytes"]);

/** The limit a directive keyword names, case-insensitively; undefined for an unknown keyword. */
export function loadLimitNamed(keyword: string): LoadLimitName | undefined {
  const lower = keyword.toLowerCase();
  return (Object.keys(LOAD_LIMIT_KEYWORDS) as LoadLimitName[]).find(
    (name) => LOAD_LIMIT_KEYWORDS[name].toLowerCase() === lower,
  );
}

function what(name: LoadLimitName, value: number): string {
  switch (name) {
    case "binarySize":
      return `a binary of ${value} bytes`;
    case "tableElements":
      return `a table of ${value} elements`;
    case "elementSegments":
      return `${value} element segments`;
    case "dataBytes":
      return `${value} bytes of data segments`;
    default:
      return `${value} ${name}`;
  }
}

/** `1000000 functions, over its limit of 100000 (ModuleLoadLimits Functions)`: the refusal, without the unit's name. */
export function overLimitText(name: LoadLimitName, value: number, limit: number): string {
  return `${what(name, value)}, over its limit of ${limit} (ModuleLoadLimits ${LOAD_LIMIT_KEYWORDS[name]})`;
}

/** The first limit the footprint exceeds, in LoadFootprint's field order, as refusal text; undefined when it fits. */
export function loadLimitProblem(footprint: LoadFootprint, limits: LoadLimits): string | undefined {
  for (const name of Object.keys(LOAD_LIMIT_KEYWORDS) as LoadLimitName[]) {
    if (footprint[name] > limits[name]) return overLimitText(name, footprint[name], limits[name]);
  }
  return undefined;
}

/**
 * Bytes V8 (11.3, Node 20, x64, no pointer compression) keeps per table
 * element, measured as RSS per element of a 2,000,000-element table:
 * a funcref table holds each entry (8) plus its dispatch table, the call
 * target (8), the instance reference (8) and the signature id (4): 28.8
 * measured; an externref table holds the entry only: 8.7 measured.
 */
export const TABLE_ELEMENT_BYTES: Readonly<Record<"funcref" | "externref", number>> = { funcref: 28, externref: 8 };

/** Bytes a table of `elements` elements of `element` type costs the host. */
export function tableBytes(element: ValueType, elements: number): number {
  return elements * (element === "externref" ? TABLE_ELEMENT_BYTES.externref : TABLE_ELEMENT_BYTES.funcref);
}
