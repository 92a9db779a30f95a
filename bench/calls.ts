/**
 * Call benchmark: ns per call of the four paths a DSO module's code takes, all
 * bound by ModuleHost itself, each as a ratio to an intra-module call.
 *
 * The loop runs inside wasm so the JS→wasm entry is paid once per sample, not
 * per call. Every loop has the same shape; the empty loop is reported too, so a
 * reader can subtract the loop's own cost. A no-op JS import bound outside
 * ModuleHost is the reference for "wasm→JS" alone: the host-symbol rows add
 * the binding's closure and the symbol's work (Date.now, the string read).
 * The string is read twice over: as a literal (in the module's data segment,
 * which the host reads once per instance) and as a copy made at run time
 * (read by the host's own decoder on every call).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import wabtInit from "wabt";
import { ModuleHost } from "../host/modules/module-host.js";
import { elapsedNs, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

type Loop = (n: number) => number;

/** Each sample runs about this long: long enough to dwarf hrtime and the JS→wasm entry, short enough to interleave many. */
const TARGET_SAMPLE_NS = 40e6;
const MIN_N = 100_000;
const MAX_N = 50_000_000;
const SAMPLES = 11;

const LOG_MESSAGE = "bench: pr_log_debug";
/** Where the string's 20-byte AssemblyScript object header starts; the pointer is 20 bytes on, 16-aligned like asc's. */
const HEADER_AT = 12;
const STRING_PTR = HEADER_AT + 20;
/** Where `_initialize` copies the string object: outside every data segment, as a string built at run time is. */
const RUNTIME_STRING_PTR = 4096 + 20;
const STRING_RT_ID = 2;

/** WAT escapes for little-endian bytes. */
function hexBytes(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => `\\${b.toString(16).padStart(2, "0")}`).join("");
}

function u32le(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}

/**
 * The AssemblyScript string object as asc lays it out: mmInfo, gcInfo,
 * gcInfo2 (unused here), rtId = 2 (String) at ptr-8, byte length at ptr-4,
 * then UTF-16LE at ptr. @assemblyscript/loader's __getString checks rtId.
 */
function stringObject(text: string): string {
  const utf16 = Buffer.from(text, "utf16le");
  const header = [...u32le(0), ...u32le(0), ...u32le(0), ...u32le(STRING_RT_ID), ...u32le(utf16.length)];
  return hexBytes([...header, ...utf16]);
}

/** A loop of `n` iterations whose body is `body`; `$i` counts, `$acc` keeps results live. */
function loop(name: string, body: string): string {
  return `
  (func (export "${name}") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ${body}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))`;
}

const LIBRARY_WAT = `
(module
  (func (export "bench_callee") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 1))))`;

/** The same callee as the library's, so intra and cross differ only in where the callee lives. */
const MODULE_WAT = `
(module
  (import "env" "memory" (memory 1 1))
  (import "env" "bench_callee" (func $cross (param i32) (result i32)))
  (import "env" "pr_time_now" (func $now (result f64)))
  (import "env" "pr_log_debug" (func $log (param i32 i32)))
  ;; Exported so @assemblyscript/loader, which reads strings for pr_log_debug, finds the memory.
  (export "memory" (memory 0))
  (global (export "bench_calls_module") i32 (i32.const 0x20))
  (data (i32.const ${HEADER_AT}) "${stringObject(LOG_MESSAGE)}")
  (func (export "_initialize")
    (memory.copy (i32.const ${RUNTIME_STRING_PTR - 20}) (i32.const ${HEADER_AT}) (i32.const ${20 + LOG_MESSAGE.length * 2})))
  (func $local (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 1)))
  ${loop("bench_empty", "(local.set $acc (i32.add (local.get $acc) (local.get $i)))")}
  ${loop("bench_intra", "(local.set $acc (i32.add (local.get $acc) (call $local (local.get $i))))")}
  ${loop("bench_cross", "(local.set $acc (i32.add (local.get $acc) (call $cross (local.get $i))))")}
  ${loop("bench_host_num", "(drop (call $now))")}
  ${loop("bench_host_str", `(call $log (i32.const 0) (i32.const ${STRING_PTR}))`)}
  ${loop("bench_host_str_runtime", `(call $log (i32.const 0) (i32.const ${RUNTIME_STRING_PTR}))`)}
)`;

/** The reference: the same loop calling a JS import bound by plain WebAssembly, no ModuleHost in between. */
const REFERENCE_WAT = `
(module
  (import "ref" "noop" (func $noop (result f64)))
  ${loop("bench_js_noop", "(drop (call $noop))")}
)`;

interface Case {
  readonly name: string;
  readonly fn: Loop;
  n: number;
  readonly samples: number[];
}

function exported(host: ModuleHost, symbol: string): Loop {
  const fn = host.dlsym(symbol);
  if (typeof fn !== "function") throw new Error(`bench: dlsym('${symbol}') found no function`);
  return fn as Loop;
}

/** Picks n so one sample takes about TARGET_SAMPLE_NS, from a timed probe run. */
function calibrate(fn: Loop): number {
  const probe = 200_000;
  const start = process.hrtime.bigint();
  fn(probe);
  const perCall = Math.max(elapsedNs(start) / probe, 0.1);
  const n = Math.round(TARGET_SAMPLE_NS / perCall / 100_000) * 100_000;
  return Math.min(MAX_N, Math.max(MIN_N, n));
}

export async function runCalls(log: (line: string) => void): Promise<Row[]> {
  const wabt = await wabtInit();
  const compile = (text: string): Uint8Array<ArrayBuffer> => {
    const module = wabt.parseWat("bench.wat", text);
    try {
      module.validate();
      return new Uint8Array(module.toBinary({}).buffer);
    } finally {
      module.destroy();
    }
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-calls-"));
  // guestLog is a no-op so pr_log_debug costs the binding and the string read, not a logger.
  const host = new ModuleHost({ modulePath: dir, guestLog: () => {} });
  try {
    writeFileSync(path.join(dir, "libbench_callee.wasm"), compile(LIBRARY_WAT));
    writeFileSync(path.join(dir, "mod_bench_calls.wasm"), compile(MODULE_WAT));
    host.loadFile(path.join(dir, "libbench_callee.wasm"));
    host.loadModule("mod_bench_calls.c");
    const reference = new WebAssembly.Instance(new WebAssembly.Module(compile(REFERENCE_WAT)), {
      ref: { noop: () => 0 },
    });

    const cases: Case[] = [
      { name: "intra-module call", fn: exported(host, "bench_intra"), n: 0, samples: [] },
      { name: "cross-module call (LoadFile'd library export)", fn: exported(host, "bench_cross"), n: 0, samples: [] },
      { name: "host symbol, numbers (pr_time_now)", fn: exported(host, "bench_host_num"), n: 0, samples: [] },
      { name: "host symbol, string literal (pr_log_debug)", fn: exported(host, "bench_host_str"), n: 0, samples: [] },
      {
        name: "host symbol, string built at run time (pr_log_debug)",
        fn: exported(host, "bench_host_str_runtime"),
        n: 0,
        samples: [],
      },
      { name: "ref: empty loop (loop cost only)", fn: exported(host, "bench_empty"), n: 0, samples: [] },
      {
        name: "ref: wasm->JS no-op import, no ModuleHost",
        fn: reference.exports.bench_js_noop as Loop,
        n: 0,
        samples: [],
      },
    ];

    // Warm-up: V8 compiles lazily into Liftoff and tiers up to TurboFan in the
    // background after enough calls; the new code is used from the next call on
    // (no on-stack replacement), so several short runs come before calibration.
    for (const c of cases) for (let i = 0; i < 20; i++) c.fn(50_000);
    for (const c of cases) c.n = calibrate(c.fn);
    for (const c of cases) c.fn(c.n);
    log(`calls: n per sample ${cases.map((c) => `${c.name.split(" (")[0]}=${c.n}`).join(", ")}`);

    for (let round = 0; round < SAMPLES; round++) {
      globalThis.gc?.();
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(round + k) % cases.length] as Case;
        const start = process.hrtime.bigint();
        c.fn(c.n);
        c.samples.push(elapsedNs(start) / c.n);
      }
    }

    const group = "calls";
    const label = (c: Case): string => `${group}: ${c.name}`;
    const [intra, ...rest] = cases as [Case, ...Case[]];
    const anchor = rowOf({ group, name: label(intra), unit: "ns/call", note: `n=${intra.n}` }, intra.samples);
    return [
      anchor,
      ...rest.map((c) =>
        rowOf({ group, name: label(c), unit: "ns/call", note: `n=${c.n}` }, c.samples, {
          name: anchor.name,
          figure: anchor.figure,
        }),
      ),
    ];
  } finally {
    host.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
