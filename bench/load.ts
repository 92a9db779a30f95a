/**
 * Load benchmark: the server-side cost of an insmod+rmmod cycle
 * (`ModuleHost.loadModule` + `unloadModule`, timed in-process) of a small and
 * a large module, cold and warm, against the native anchor, a
 * dlopen/dlsym/dlclose cycle of a small and a large shared library
 * (bench/native/dlbench.c), which is what proftpd's mod_dso pays.
 *
 * - small: mod_test.wasm, the manual's example guest (~5 KB, built by prebench);
 * - large: generated here, ~450 KB: 2,400 exported functions with small
 *   bodies, a 128 KB data segment, `env.memory`, `large_module` = 0x20 (the
 *   shape of a large AssemblyScript guest, whose exports and data make an
 *   instantiation cost about 2 ms even from a compiled Module);
 * - cold: bytes this process has never loaded (a unique custom section per
 *   sample defeats both ModuleHost's compile cache and V8's native module
 *   cache), written to the module file before the timed cycle;
 * - warm: the same file again, as a reloaded module on a running server.
 *
 * Beside them, V8's own floor for the large module, what no host of it can go
 * below: a bare `new WebAssembly.Instance` of the compiled module with the
 * same import (its memory, made once, as the host's memory pool hands one
 * back), and for cold a bare `new WebAssembly.Module` of bytes V8 has never
 * seen plus that instantiation. The large rows are reported against it too.
 *
 * The native and wasm cases run in rounds, interleaved and rotated, so the
 * ratios compare code measured side by side. Each round gives one p50 and one
 * p99 per case; a row reports the median of those over the rounds, with their
 * spread across rounds, so a p99 row says how stable the p99 itself is.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ModuleHost } from "../host/modules/module-host.js";
import { tuneHeapForModuleChurn } from "../host/system/heap.js";
import { ByteWriter } from "./wasm-encoder.js";
import { MODULE_API_VERSION } from "../host/modules/module-api.js";
import { elapsedNs, formatNumber, percentile, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

/** The built example guests (prebench builds them) and the C source, from dist/bench/load.js. */
export const LIBEXEC_DIR = fileURLToPath(new URL("../libexec/", import.meta.url));
const NATIVE_SOURCE = fileURLToPath(new URL("../../bench/native/dlbench.c", import.meta.url));

const ROUNDS = 10;
const LARGE_FUNCTIONS = 2_400;
const LARGE_DATA_BYTES = 128 * 1024;

/** Cycles per round and case: enough for a p99 per round where a cycle is cheap, fewer where it is not. */
const NATIVE = { warmup: 200, cycles: 400 } as const;
const WASM_COUNTS = {
  "small warm": 200,
  "small cold": 100,
  "large warm": 40,
  "large cold": 30,
} as const;

type WasmCase = keyof typeof WASM_COUNTS;

/** Samples per round of V8's floor for the large module. */
const FLOOR_COUNTS = { warm: 40, cold: 30 } as const;
/** The large module's load against V8's floor (issue 18). */
const FLOOR_TARGET = 2;

const I32 = 0x7f;
const Op = {
  localGet: 0x20,
  i32Load: 0x28,
  i32Const: 0x41,
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  end: 0x0b,
} as const;

/**
 * A function body `(param i32) (result i32)` of about 80 bytes: a few rounds
 * of multiply/xor/shift mixing and a load from the data segment, so the code
 * section has the weight of real code (a large module is large in code, not
 * in export names).
 */
function largeBody(k: number): ByteWriter {
  const code = new ByteWriter()
    .byte(0x00 /* no locals */)
    .byte(Op.localGet)
    .u32(0)
    .byte(Op.i32Const)
    .s32(k)
    .byte(Op.i32Add);
  for (let round = 0; round < 4; round++) {
    code
      .byte(Op.i32Const)
      .s32(0x9e3779b1 + round * k)
      .byte(Op.i32Mul);
    code
      .byte(Op.localGet)
      .u32(0)
      .byte(Op.i32Const)
      .s32(5 + round)
      .byte(Op.i32Shl)
      .byte(Op.i32Xor);
    code.byte(Op.i32Const).s32(13).byte(Op.i32ShrU).byte(Op.localGet).u32(0).byte(Op.i32Xor);
  }
  // + load32(1024 + (k * 52 & 0xfffc)): inside the data segment, which starts at 1024.
  return code
    .byte(Op.i32Const)
    .s32(1024 + ((k * 52) & 0xfffc))
    .byte(Op.i32Load)
    .u32(2)
    .u32(0)
    .byte(Op.i32Add)
    .byte(Op.end);
}

/**
 * The large module, `mod_large.c`: imports `env.memory` (4..16 pages: the data needs 3),
 * exports `large_module` (i32 = MODULE_API_VERSION) and `large_fn_NNNN` for
 * each of `functions` functions, and initialises `dataBytes` of memory.
 */
export function largeModuleBytes(functions = LARGE_FUNCTIONS, dataBytes = LARGE_DATA_BYTES): Uint8Array<ArrayBuffer> {
  const out = ByteWriter.module();
  out.section(1, new ByteWriter().u32(1).byte(0x60).u32(1).byte(I32).u32(1).byte(I32));
  out.section(2, new ByteWriter().u32(1).name("env").name("memory").byte(0x02).byte(0x01).u32(4).u32(16));
  const funcs = new ByteWriter().u32(functions);
  for (let i = 0; i < functions; i++) funcs.u32(0);
  out.section(3, funcs);
  out.section(6, new ByteWriter().u32(1).byte(I32).byte(0x00).byte(Op.i32Const).s32(MODULE_API_VERSION).byte(Op.end));
  const exports = new ByteWriter()
    .u32(functions + 1)
    .name("large_module")
    .byte(0x03)
    .u32(0);
  for (let i = 0; i < functions; i++)
    exports
      .name(`large_fn_${String(i).padStart(4, "0")}`)
      .byte(0x00)
      .u32(i);
  out.section(7, exports);
  const code = new ByteWriter().u32(functions);
  for (let i = 0; i < functions; i++) {
    const body = largeBody(i);
    code.u32(body.length).bytes(body.toBytes());
  }
  out.section(10, code);
  // Deterministic xorshift bytes: compressible data would not change load cost, but keep it honest.
  const data = new Uint8Array(dataBytes);
  let x = 0x2545f491;
  for (let i = 0; i < dataBytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  out.section(
    11,
    new ByteWriter().u32(1).byte(0x00).byte(Op.i32Const).s32(1024).byte(Op.end).u32(dataBytes).bytes(data),
  );
  return out.toBytes();
}

/**
 * `bytes` with a custom section `wasm-dso-bench` holding `tag` appended: a
 * valid module that runs exactly as before but hashes (and so caches)
 * differently, in ModuleHost and in V8's native module cache.
 */
export function withUniqueSection(bytes: Uint8Array, tag: string): Uint8Array<ArrayBuffer> {
  const out = new ByteWriter().bytes(bytes);
  out.section(0, new ByteWriter().name("wasm-dso-bench").bytes(Buffer.from(tag, "utf8")));
  return out.toBytes();
}

// ---------------------------------------------------------------------------
// Rows of per-round percentiles, shared with the dispatch and controls benchmarks.

/**
 * Rows for the p50 and p99 of a case measured in rounds: each round's
 * percentile is one sample, the row reports their median and spread. With
 * `anchors` (the same case's p50/p99 rows of the anchor), the ratios are
 * p50/p50 and p99/p99.
 */
export function percentileRows(
  fields: { group: string; name: string; unit: string; note?: string },
  rounds: readonly (readonly number[])[],
  anchors?: readonly [Row, Row],
): [Row, Row] {
  const at = (p: number): number[] => rounds.filter((r) => r.length > 0).map((r) => percentile(r, p));
  const perRound = rounds[0]?.length ?? 0;
  const suffix = `; per-round percentile of ${perRound} samples`;
  const make = (p: 50 | 99, anchor: Row | undefined): Row =>
    rowOf(
      {
        group: fields.group,
        name: `${fields.name}, p${p}`,
        unit: fields.unit,
        note: `${fields.note ?? ""}${suffix}`.replace(/^; /, ""),
      },
      at(p),
      anchor === undefined ? undefined : { name: anchor.name, figure: anchor.figure },
    );
  return [make(50, anchors?.[0]), make(99, anchors?.[1])];
}

/** Marks a row with its target: "target <= 2x: met" (or MISSED), ahead of any note it has. */
export function withTarget(row: Row, text: string, met: boolean): Row {
  const target = `target ${text}: ${met ? "met" : "MISSED"}`;
  return { ...row, note: row.note === undefined ? target : `${target}; ${row.note}` };
}

/** True when `url` (a module's import.meta.url) is the script node was started with: a section run alone. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && url === pathToFileURL(process.argv[1]).href;
}

/** The rows of a section run alone, one line each, for development runs. */
export function printRows(rows: readonly Row[]): void {
  for (const r of rows) {
    const ratio = r.anchor === r.name ? "anchor" : `${r.ratio.toFixed(2)}x`;
    const spread = `${formatNumber(r.spread[0])}–${formatNumber(r.spread[1])}`;
    process.stdout.write(
      `${r.name.padEnd(72)} ${formatNumber(r.figure).padStart(8)} ${spread.padStart(15)} ${r.unit.padEnd(10)} ${ratio.padStart(7)}  ${r.note ?? ""}\n`,
    );
  }
}

// ---------------------------------------------------------------------------
// The native anchor.

interface NativeSetup {
  readonly binary: string;
  readonly small: { file: string; bytes: number };
  readonly large: { file: string; bytes: number };
}

interface NativeRun {
  readonly first_us: number;
  readonly unloaded: boolean;
  readonly samples_us: number[];
}

/** A C source of `functions` functions plus the two symbols dlbench looks up. */
function librarySource(functions: number, dataBytes: number): string {
  const lines = [
    "/* Generated by bench/load.ts. */",
    "int bench_module = 0x20;",
    `const unsigned char bench_data[${Math.max(dataBytes, 1)}] = {${dataBytes > 0 ? "1" : "0"}};`,
  ];
  for (let i = 0; i < functions; i++) {
    // Kept out of line and exported, as a module's functions would be, so each is a real dynsym entry.
    lines.push(
      `__attribute__((noinline)) int fn_${i}(int x) { x += ${i}; x *= 0x9e3779b1u; x ^= x >> 13; x ^= x << 5; return x + bench_data[(x & 0x7fff) % sizeof bench_data]; }`,
    );
  }
  lines.push(`int bench_entry(int x) { return ${functions > 0 ? "fn_0(x)" : "x + 1"}; }`);
  return `${lines.join("\n")}\n`;
}

function compile(args: readonly string[], log: (line: string) => void): boolean {
  const result = spawnSync("cc", args, { encoding: "utf8" });
  if (result.error !== undefined || result.status !== 0) {
    log(`load: cc ${args.join(" ")} failed: ${result.error?.message ?? result.stderr.trim()}`);
    return false;
  }
  return true;
}

/** Builds dlbench and the two libraries into `dir`; undefined (with a log line) where there is no C compiler. */
function buildNative(dir: string, log: (line: string) => void): NativeSetup | undefined {
  const probe = spawnSync("cc", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) return undefined;
  const binary = path.join(dir, "dlbench");
  if (!compile(["-O2", "-o", binary, NATIVE_SOURCE, "-ldl"], log)) return undefined;
  const library = (stem: string, functions: number, dataBytes: number): { file: string; bytes: number } | undefined => {
    const source = path.join(dir, `${stem}.c`);
    const file = path.join(dir, `${stem}.so`);
    writeFileSync(source, librarySource(functions, dataBytes));
    return compile(["-O2", "-shared", "-fPIC", "-o", file, source], log)
      ? { file, bytes: statSync(file).size }
      : undefined;
  };
  const start = process.hrtime.bigint();
  const small = library("libsmall", 2, 0);
  const large = library("liblarge", LARGE_FUNCTIONS, 32 * 1024);
  log(`load: built dlbench and the native libraries in ${(elapsedNs(start) / 1e9).toFixed(1)} s`);
  return small === undefined || large === undefined ? undefined : { binary, small, large };
}

function runNative(setup: NativeSetup, file: string): NativeRun {
  const result = spawnSync(setup.binary, [file, String(NATIVE.warmup), String(NATIVE.cycles)], {
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`bench: dlbench ${file} failed: ${result.stderr}`);
  const run = JSON.parse(result.stdout) as NativeRun;
  if (!run.unloaded)
    throw new Error(`bench: ${file} stayed mapped after dlclose; the native cycle would not be a real unload`);
  return run;
}

// ---------------------------------------------------------------------------
// The wasm cases.

const SMALL_MODULE = "mod_test.c";
const LARGE_MODULE = "mod_large.c";

interface WasmFixture {
  readonly dir: string;
  readonly small: Uint8Array<ArrayBuffer>;
  readonly large: Uint8Array<ArrayBuffer>;
  /** The long-lived host the warm cycles run on (the bytes stay in its compile cache). */
  readonly warmHost: ModuleHost;
  /** The large module compiled once, and its import object, for V8's warm floor. */
  readonly largeCompiled: WebAssembly.Module;
  readonly largeImports: WebAssembly.Imports;
}

function cycle(host: ModuleHost, module: string): number {
  const start = process.hrtime.bigint();
  host.loadModule(module);
  host.unloadModule(module);
  return elapsedNs(start) / 1e3;
}

let coldSerial = 0;

/**
 * One round of a case. Cold rounds use a host of their own, closed after the
 * round: ModuleHost keeps every compiled Module it has seen (keyed by
 * SHA-256) for its whole life, and hundreds of distinct large modules would
 * otherwise pile up in memory and in later rounds' GC pauses.
 */
function wasmRound(fixture: WasmFixture, which: WasmCase): number[] {
  const [size, temperature] = which.split(" ") as ["small" | "large", "warm" | "cold"];
  const module = size === "small" ? SMALL_MODULE : LARGE_MODULE;
  const file = path.join(fixture.dir, size === "small" ? "mod_test.wasm" : "mod_large.wasm");
  const bytes = size === "small" ? fixture.small : fixture.large;
  const count = WASM_COUNTS[which];
  const samples: number[] = [];
  if (temperature === "warm") {
    for (let i = 0; i < count; i++) samples.push(cycle(fixture.warmHost, module));
    return samples;
  }
  const host = new ModuleHost({ modulePath: fixture.dir, guestLog: () => {} });
  try {
    for (let i = 0; i < count; i++) {
      writeFileSync(file, withUniqueSection(bytes, `cold ${process.pid} ${++coldSerial}`));
      samples.push(cycle(host, module));
    }
  } finally {
    host.close();
    // Leave the plain bytes in place for the warm host's next round.
    writeFileSync(file, bytes);
  }
  return samples;
}

/** One round of V8's floor for the large module (see the header); each instance is dropped at once, as rmmod drops the host's. */
function floorRound(fixture: WasmFixture, temperature: "warm" | "cold"): number[] {
  const samples: number[] = [];
  for (let i = 0; i < FLOOR_COUNTS[temperature]; i++) {
    if (temperature === "warm") {
      const start = process.hrtime.bigint();
      new WebAssembly.Instance(fixture.largeCompiled, fixture.largeImports);
      samples.push(elapsedNs(start) / 1e3);
      continue;
    }
    const bytes = withUniqueSection(fixture.large, `floor ${process.pid} ${++coldSerial}`);
    const start = process.hrtime.bigint();
    new WebAssembly.Instance(new WebAssembly.Module(bytes), fixture.largeImports);
    samples.push(elapsedNs(start) / 1e3);
  }
  return samples;
}

export function runLoad(log: (line: string) => void): Row[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-load-"));
  try {
    const native = buildNative(dir, log);
    if (native === undefined) log("load: no working C compiler (cc): the native dlopen anchor is skipped");
    const moduleDir = path.join(dir, "modules");
    mkdirSync(moduleDir);
    const small = readSmallModule();
    const large = largeModuleBytes();
    writeFileSync(path.join(moduleDir, "mod_test.wasm"), small);
    writeFileSync(path.join(moduleDir, "mod_large.wasm"), large);
    const fixture: WasmFixture = {
      dir: moduleDir,
      small,
      large,
      warmHost: new ModuleHost({ modulePath: moduleDir, guestLog: () => {} }),
      largeCompiled: new WebAssembly.Module(large),
      // The host's memory for it: the import's limits (4..16 pages) under the default cap.
      largeImports: { env: { memory: new WebAssembly.Memory({ initial: 4, maximum: 16 }) } },
    };
    log(
      `load: small ${(small.length / 1024).toFixed(1)} KB, large ${(large.length / 1024).toFixed(0)} KB wasm` +
        (native
          ? `; native ${(native.small.bytes / 1024).toFixed(0)} KB and ${(native.large.bytes / 1024).toFixed(0)} KB .so`
          : ""),
    );
    try {
      // Warm-up: the host's own code tiers up, the warm bytes enter its cache.
      for (let i = 0; i < 30; i++) cycle(fixture.warmHost, SMALL_MODULE);
      for (let i = 0; i < 5; i++) cycle(fixture.warmHost, LARGE_MODULE);
      wasmRound(fixture, "small cold");

      const cases = [
        "native small",
        "native large",
        ...(Object.keys(WASM_COUNTS) as WasmCase[]),
        "floor warm",
        "floor cold",
      ] as const;
      const rounds = new Map<string, number[][]>(cases.map((c) => [c, []]));
      const firsts: Record<"small" | "large", number[]> = { small: [], large: [] };
      for (let round = 0; round < ROUNDS; round++) {
        // Every cycle leaves a WebAssembly.Memory (a 10 GiB reservation) to collect: collect it outside the timing.
        globalThis.gc?.();
        for (let k = 0; k < cases.length; k++) {
          const which = cases[(round + k) % cases.length] as (typeof cases)[number];
          if (which === "native small" || which === "native large") {
            if (native === undefined) continue;
            const size = which === "native small" ? "small" : "large";
            const run = runNative(native, native[size].file);
            firsts[size].push(run.first_us);
            rounds.get(which)?.push(run.samples_us);
          } else if (which === "floor warm" || which === "floor cold") {
            rounds.get(which)?.push(floorRound(fixture, which === "floor warm" ? "warm" : "cold"));
            globalThis.gc?.();
          } else {
            rounds.get(which)?.push(wasmRound(fixture, which));
            globalThis.gc?.();
          }
        }
      }
      return rowsOf(rounds, native, firsts, small.length, large.length);
    } finally {
      fixture.warmHost.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readSmallModule(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(path.join(LIBEXEC_DIR, "mod_test.wasm")));
}

const WARM_TARGET = 2;
const COLD_TARGET = 20;

function rowsOf(
  rounds: ReadonlyMap<string, number[][]>,
  native: NativeSetup | undefined,
  firsts: Record<"small" | "large", number[]>,
  smallBytes: number,
  largeBytes: number,
): Row[] {
  const group = "load";
  const unit = "µs/cycle";
  const kb = (n: number): string => `${(n / 1024).toFixed(n < 10_240 ? 1 : 0)} KB`;
  const rows: Row[] = [];
  for (const size of ["small", "large"] as const) {
    let anchors: [Row, Row] | undefined;
    if (native !== undefined) {
      const first = firsts[size].length > 0 ? percentile(firsts[size], 50) : NaN;
      anchors = percentileRows(
        {
          group,
          name: `${group}: native dlopen+dlsym×2+call+dlclose, ${size} .so (${kb(native[size].bytes)})`,
          unit,
          note: `first cycle in process ${first.toFixed(0)} µs`,
        },
        rounds.get(`native ${size}`) ?? [],
      );
      rows.push(...anchors);
    }
    for (const temperature of ["warm", "cold"] as const) {
      const label =
        size === "small" ? `mod_test (${kb(smallBytes)})` : `mod_large (${kb(largeBytes)}, ${LARGE_FUNCTIONS} exports)`;
      const [p50, p99] = percentileRows(
        {
          group,
          name: `${group}: insmod+rmmod ${label}, ${temperature}`,
          unit,
          ...(native === undefined && { note: "no C compiler: native anchor skipped" }),
        },
        rounds.get(`${size} ${temperature}`) ?? [],
        anchors,
      );
      if (anchors === undefined) {
        rows.push(p50, p99);
      } else {
        const target = temperature === "warm" ? WARM_TARGET : COLD_TARGET;
        rows.push(withTarget(p50, `<= ${target}x`, p50.ratio <= target), p99);
      }
      if (size === "large") rows.push(...floorRows(rounds, temperature, label, anchors));
    }
  }
  return rows;
}

/** V8's floor for the large module (p50, p99, against native when there is native), then our p50 against it. */
function floorRows(
  rounds: ReadonlyMap<string, number[][]>,
  temperature: "warm" | "cold",
  label: string,
  anchors: [Row, Row] | undefined,
): Row[] {
  const group = "load";
  const unit = "µs/cycle";
  const what =
    temperature === "warm"
      ? "new WebAssembly.Instance of the compiled module, same imports"
      : "new WebAssembly.Module of unseen bytes, then new WebAssembly.Instance";
  const floor = percentileRows(
    { group, name: `${group}: V8's floor for mod_large, ${temperature}`, unit, note: what },
    rounds.get(`floor ${temperature}`) ?? [],
    anchors,
  );
  const p50s = (rounds.get(`large ${temperature}`) ?? []).filter((r) => r.length > 0).map((r) => percentile(r, 50));
  const against = rowOf(
    {
      group,
      name: `${group}: insmod+rmmod ${label}, ${temperature}, against V8's floor`,
      unit,
      note: "p50s of the rounds",
    },
    p50s,
    { name: floor[0].name, figure: floor[0].figure },
  );
  // The target is for a module the host has compiled before; a cold one also reads, hashes and checks the file.
  return [
    ...floor,
    temperature === "warm" ? withTarget(against, `<= ${FLOOR_TARGET}x`, against.ratio <= FLOOR_TARGET) : against,
  ];
}

// `node --expose-gc dist/bench/load.js`: run alone.
if (isMain(import.meta.url)) {
  // Alone as under run.ts: with dsod's heap settings.
  tuneHeapForModuleChurn();
  printRows(runLoad((line) => process.stderr.write(`${line}\n`)));
}
