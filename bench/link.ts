/**
 * Link benchmark: how resolving a module's 1,000 `env` imports scales with the
 * size of the global scope (1k, 10k, 100k symbols). The target is that 100k
 * stays within 1.5x of 1k, as ld.so's hashed lookup does.
 *
 * Two views: (a) the pure step, `resolveImports` over a `SymbolScope`, which
 * isolates the lookup; (b) the whole `ModuleHost.loadModule` + `unloadModule`
 * cycle against a host whose scope was filled by `loadFile`, which adds what a
 * real insmod/rmmod pays (file read, hash, instantiate with 1,000 bindings,
 * scope commit and removal).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { problemLine } from "../host/linker/problems.js";
import { resolveImports } from "../host/linker/resolve.js";
import type { ResolveEnvironment } from "../host/linker/resolve.js";
import { SymbolScope } from "../host/linker/scope.js";
import type { Definition, Provider } from "../host/linker/scope.js";
import { ModuleHost } from "../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../host/modules/policy.js";
import { MODULE_API_VERSION } from "../host/modules/module-api.js";
import { readModuleShape } from "../host/wasm/reader.js";
import type { ImportEntry } from "../host/wasm/types.js";
import { elapsedNs, rowOf } from "./stats.js";
import type { Row } from "./stats.js";
import { importedNames, libraryExporting, libraryNames, moduleImporting } from "./wasm-fixtures.js";

const IMPORTS = 1_000;
const SCOPE_SIZES = [1_000, 10_000, 100_000] as const;
const MODULE_NAME = "mod_bench_link.c";
const MODULE_SYMBOL = "bench_link_module";
const TARGET_RATIO = 1.5;

/** Resolves per sample: one resolve is ~0.1 ms, too short to time alone against hrtime's overhead and jitter. */
const RESOLVES_PER_SAMPLE = 50;
const RESOLVE_SAMPLES = 25;
const CYCLES_PER_SAMPLE = 4;
const CYCLE_SAMPLES = 25;

export interface LinkOptions {
  /**
   * Fill the host's scope from N/1,000 libraries of 1,000 exports instead of
   * one library of N. ModuleHost's LoadFile is quadratic in a library's export
   * count (35–50 s for 100k), so this is the quick mode for development.
   * The scope has the same names either way, but the module's imports then
   * bind to 100 provider instances instead of one, and in a first look that
   * made the cycle slower at 100k (2.8x against 1.3x with one library, on a
   * loaded machine): the cycle rows of the two modes are not comparable.
   */
  readonly splitLibraries: boolean;
  readonly log: (line: string) => void;
}

const FUNC_I32: Definition["type"] = { kind: "func", type: { params: [], results: ["i32"] } };

function scopeOf(size: number): SymbolScope {
  const provider: Provider = { kind: "library", name: `libbench_${size}`, seq: 1 };
  const scope = new SymbolScope();
  scope.add(libraryNames(size, IMPORTS).map((name) => ({ name, type: FUNC_I32, provider })));
  return scope;
}

function environmentOf(scope: SymbolScope): ResolveEnvironment {
  return {
    lookupGlobal: (name) => scope.first(name),
    lookupDirect: () => undefined,
    memoryCapPages: 256,
  };
}

function resolveOnce(imports: readonly ImportEntry[], env: ResolveEnvironment): void {
  const result = resolveImports(MODULE_NAME, imports, env);
  // Checked on every call so a silently failing resolve cannot look fast.
  if (result.problems.length > 0 || result.bindings.length !== imports.length) {
    throw new Error(`bench: resolve failed: ${result.problems.slice(0, 3).map(problemLine).join("; ")}`);
  }
}

function benchResolve(imports: readonly ImportEntry[]): Row[] {
  const envs = SCOPE_SIZES.map((size) => ({ size, env: environmentOf(scopeOf(size)) }));
  for (const { env } of envs) for (let i = 0; i < 200; i++) resolveOnce(imports, env);
  const samples = new Map<number, number[]>(SCOPE_SIZES.map((size) => [size, []]));
  for (let round = 0; round < RESOLVE_SAMPLES; round++) {
    globalThis.gc?.();
    // Rotate the order so no size always runs first (after the gc) or last.
    for (let k = 0; k < envs.length; k++) {
      const { size, env } = envs[(round + k) % envs.length] as (typeof envs)[number];
      const start = process.hrtime.bigint();
      for (let i = 0; i < RESOLVES_PER_SAMPLE; i++) resolveOnce(imports, env);
      samples.get(size)?.push(elapsedNs(start) / RESOLVES_PER_SAMPLE / 1e3);
    }
  }
  return rowsFor("link: resolveImports", "µs/resolve", samples);
}

function rowsFor(group: string, unit: string, samples: ReadonlyMap<number, number[]>): Row[] {
  const anchorSize = SCOPE_SIZES[0];
  const name = (size: number): string => `${group}, 1,000 imports, scope ${size.toLocaleString("en-US")}`;
  const anchor = rowOf({ group, name: name(anchorSize), unit }, samples.get(anchorSize) ?? []);
  const rows = [anchor];
  for (const size of SCOPE_SIZES.slice(1)) {
    const row = rowOf({ group, name: name(size), unit }, samples.get(size) ?? [], anchor);
    const isTarget = size === SCOPE_SIZES[SCOPE_SIZES.length - 1];
    rows.push(
      isTarget ? { ...row, note: `target <= ${TARGET_RATIO}x: ${row.ratio <= TARGET_RATIO ? "met" : "MISSED"}` } : row,
    );
  }
  return rows;
}

interface HostUnderTest {
  readonly size: number;
  readonly host: ModuleHost;
  readonly loadFileMs: number;
}

function hostWithScope(dir: string, size: number, split: boolean): HostUnderTest {
  const names = libraryNames(size, IMPORTS);
  const chunk = split ? IMPORTS : size;
  const files: string[] = [];
  for (let from = 0; from < size; from += chunk) {
    const file = path.join(dir, `libbench_${size}_${from / chunk}.wasm`);
    writeFileSync(file, libraryExporting(names.slice(from, from + chunk)));
    files.push(file);
  }
  // Linking is measured, not sandboxing: instantiating a 100,000-export library takes longer
  // than the default CPU budget allows a start-up to take.
  const host = new ModuleHost({ modulePath: dir, policy: () => ({ ...DEFAULT_POLICY, cpuBudgetMs: 0 }) });
  const start = process.hrtime.bigint();
  for (const file of files) host.loadFile(file);
  const loadFileMs = elapsedNs(start) / 1e6;
  // The host's own symbols are in scope too; only the library's count toward the size.
  if (host.scopeSize < size) throw new Error(`bench: scope has ${host.scopeSize} names, expected ${size}`);
  return { size, host, loadFileMs };
}

function cycle(host: ModuleHost): void {
  host.loadModule(MODULE_NAME);
  host.unloadModule(MODULE_NAME);
}

function benchCycle(dir: string, options: LinkOptions): Row[] {
  const hosts: HostUnderTest[] = [];
  try {
    for (const size of SCOPE_SIZES) {
      hosts.push(hostWithScope(dir, size, options.splitLibraries));
      options.log(`  scope ${size}: loadFile took ${(hosts.at(-1)?.loadFileMs ?? 0).toFixed(0)} ms`);
    }
    for (const { host } of hosts) for (let i = 0; i < 10; i++) cycle(host);
    const samples = new Map<number, number[]>(SCOPE_SIZES.map((size) => [size, []]));
    for (let round = 0; round < CYCLE_SAMPLES; round++) {
      // Every cycle makes a WebAssembly.Memory (a 10 GiB reservation); collect them outside the timed region.
      globalThis.gc?.();
      for (let k = 0; k < hosts.length; k++) {
        const { size, host } = hosts[(round + k) % hosts.length] as HostUnderTest;
        const start = process.hrtime.bigint();
        for (let i = 0; i < CYCLES_PER_SAMPLE; i++) cycle(host);
        samples.get(size)?.push(elapsedNs(start) / CYCLES_PER_SAMPLE / 1e3);
      }
    }
    const rows = rowsFor("link: loadModule+unloadModule", "µs/cycle", samples);
    // LoadFile runs once per size, so it is a single sample: setup cost, shown because it is the slow part.
    const setupGroup = "link: loadFile (setup, 1 sample)";
    const setupName = (size: number): string =>
      options.splitLibraries
        ? `${setupGroup}, ${size / IMPORTS} ${size === IMPORTS ? "library" : "libraries"} of 1,000 exports`
        : `${setupGroup}, 1 library of ${size.toLocaleString("en-US")} exports`;
    const first = hosts[0] as HostUnderTest;
    const setupAnchor = rowOf({ group: setupGroup, name: setupName(first.size), unit: "ms" }, [first.loadFileMs]);
    rows.push(
      setupAnchor,
      ...hosts.slice(1).map((h) =>
        rowOf({ group: setupGroup, name: setupName(h.size), unit: "ms" }, [h.loadFileMs], {
          name: setupAnchor.name,
          figure: setupAnchor.figure,
        }),
      ),
    );
    return rows;
  } finally {
    for (const { host } of hosts) host.close();
  }
}

export function runLink(options: LinkOptions): Row[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-link-"));
  try {
    const moduleBytes = moduleImporting(importedNames(IMPORTS), MODULE_SYMBOL, MODULE_API_VERSION);
    writeFileSync(path.join(dir, "mod_bench_link.wasm"), moduleBytes);
    const { imports } = readModuleShape(moduleBytes);
    options.log("link: resolveImports over SymbolScope");
    const rows = benchResolve(imports);
    globalThis.gc?.();
    options.log(
      `link: loadModule+unloadModule (${options.splitLibraries ? "split libraries" : "one library per size"})`,
    );
    rows.push(...benchCycle(dir, options));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
