/**
 * CPU benchmark of fuel instrumentation (host/wasm/instrument.ts): the cost of
 * the counter and check at every function entry and loop header, on guests
 * whose time is all in wasm.
 *
 * Each guest is timed uninstrumented (the anchor) and instrumented with a
 * refuel that never expires, interleaved sample by sample (alternating which
 * goes first) after a warm-up that lets V8 tier up from Liftoff to TurboFan.
 * The guests are the shapes that bracket the overhead in baselines.md §5: an
 * ALU-bound loop (FNV-1a), a store-bound inner loop (sieve), and calls that do
 * almost nothing else (recursive fib), where the per-entry check is the work.
 *
 * `node dist/bench/cpu.js` runs it alone and prints the rows.
 */
import { pathToFileURL } from "node:url";
import wabtInit from "wabt";
import { fuelExportName, instrumentFuel } from "../host/wasm/instrument.js";
import { elapsedNs, formatNumber, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const SAMPLES = 15;
const WARMUP_MS = 300;
/** Checks per refill: JS is entered once per this many function entries / loop iterations. */
const REFILL = 1_000_000;

const GUESTS_WAT = `(module
  (memory (export "memory") 16)
  ;; Fills [0, n) with xorshift bytes so the hash has real input.
  (func (export "fill") (param $n i32) (local $i i32) (local $x i32)
    (local.set $x (i32.const 0x9e3779b9))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
        (i32.store8 (local.get $i) (local.get $x))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  ;; FNV-1a over [0, n), reps times.
  (func (export "fnv") (param $n i32) (param $reps i32) (result i32) (local $h i32) (local $i i32)
    (local.set $h (i32.const 0x811c9dc5))
    (loop $rep
      (local.set $i (i32.const 0))
      (loop $byte
        (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $i))) (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $i) (local.get $n))))
      (local.set $reps (i32.sub (local.get $reps) (i32.const 1)))
      (br_if $rep (i32.gt_s (local.get $reps) (i32.const 0))))
    (local.get $h))
  ;; Sieve of Eratosthenes over n bytes at 0, reps times; returns the prime count.
  (func (export "sieve") (param $n i32) (param $reps i32) (result i32) (local $i i32) (local $j i32) (local $count i32)
    (loop $rep
      (memory.fill (i32.const 0) (i32.const 0) (local.get $n))
      (local.set $count (i32.const 0))
      (local.set $i (i32.const 2))
      (block $outer_done
        (loop $outer
          (br_if $outer_done (i32.ge_u (local.get $i) (local.get $n)))
          (if (i32.eqz (i32.load8_u (local.get $i)))
            (then
              (local.set $count (i32.add (local.get $count) (i32.const 1)))
              (local.set $j (i32.mul (local.get $i) (local.get $i)))
              (if (i32.lt_u (local.get $i) (i32.const 65536))
                (then
                  (block $inner_done
                    (loop $inner
                      (br_if $inner_done (i32.ge_u (local.get $j) (local.get $n)))
                      (i32.store8 (local.get $j) (i32.const 1))
                      (local.set $j (i32.add (local.get $j) (local.get $i)))
                      (br $inner)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $outer)))
      (local.set $reps (i32.sub (local.get $reps) (i32.const 1)))
      (br_if $rep (i32.gt_s (local.get $reps) (i32.const 0))))
    (local.get $count))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))
`;

interface Guest {
  readonly name: string;
  readonly run: (exports: Record<string, unknown>) => number;
}

/** Sizes chosen for ~5–20 ms a sample on the 2-core VM: long against timer noise, short enough to interleave. */
const FNV_BYTES = 1 << 20;
const SIEVE_BYTES = 512 * 1024;
const GUESTS: readonly Guest[] = [
  { name: "fnv-1a, 1 MiB x 8", run: (e) => (e.fnv as (n: number, r: number) => number)(FNV_BYTES, 8) },
  { name: "sieve, 512 KiB x 10", run: (e) => (e.sieve as (n: number, r: number) => number)(SIEVE_BYTES, 10) },
  { name: "fib(30), recursive", run: (e) => (e.fib as (n: number) => number)(30) },
];

async function compileGuests(): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await wabtInit();
  const module = wabt.parseWat("cpu.wat", GUESTS_WAT, {});
  try {
    module.resolveNames();
    module.validate();
    return new Uint8Array(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

async function instantiate(bytes: Uint8Array<ArrayBuffer>, fuel: boolean): Promise<Record<string, unknown>> {
  let global: WebAssembly.Global | undefined;
  const imports: WebAssembly.Imports = fuel
    ? {
        dso_sandbox: {
          // Never expires: the benchmark measures the checks, not interruption.
          refuel: () => {
            if (global !== undefined) global.value = REFILL;
          },
        },
      }
    : {};
  const { instance } = await WebAssembly.instantiate(bytes, imports);
  if (fuel) {
    global = instance.exports[fuelExportName] as WebAssembly.Global;
    global.value = REFILL;
  }
  (instance.exports.fill as (n: number) => void)(FNV_BYTES);
  return instance.exports;
}

function timeMs(fn: () => number): { ms: number; result: number } {
  const start = process.hrtime.bigint();
  const result = fn();
  return { ms: elapsedNs(start) / 1e6, result };
}

function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

/** Rows: per guest, the plain run (anchor) and the instrumented one (ratio); then the geometric mean of the ratios. */
export async function runCpuBench(log: (line: string) => void = () => {}): Promise<Row[]> {
  const plainBytes = await compileGuests();
  const instrumented = instrumentFuel(plainBytes);
  const plain = await instantiate(plainBytes, false);
  const fueled = await instantiate(instrumented.bytes, true);

  const rows: Row[] = [];
  const ratiosBySample: number[][] = Array.from({ length: SAMPLES }, () => []);
  for (const guest of GUESTS) {
    log(`bench: cpu ${guest.name}`);
    // Warm-up: both variants, until V8 has had time to tier up.
    const until = performance.now() + WARMUP_MS;
    while (performance.now() < until) {
      const a = guest.run(plain);
      const b = guest.run(fueled);
      if (a !== b) throw new Error(`cpu bench: ${guest.name} differs instrumented (${b}) vs plain (${a})`);
    }
    const plainMs: number[] = [];
    const fueledMs: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      globalThis.gc?.();
      // Alternate the order so neither variant always runs on a freshly GC'd, cooled cache.
      const first = s % 2 === 0;
      const x = timeMs(() => guest.run(first ? plain : fueled));
      const y = timeMs(() => guest.run(first ? fueled : plain));
      const p = first ? x : y;
      const f = first ? y : x;
      plainMs.push(p.ms);
      fueledMs.push(f.ms);
      ratiosBySample[s]?.push(f.ms / p.ms);
    }
    const anchor = rowOf({ group: "cpu", name: `${guest.name}: plain`, unit: "ms" }, plainMs);
    rows.push(anchor);
    rows.push(
      rowOf({ group: "cpu", name: `${guest.name}: fuel-instrumented`, unit: "ms" }, fueledMs, {
        name: anchor.name,
        figure: anchor.figure,
      }),
    );
  }
  // One geometric mean per sample index (over the guests' paired ratios), so the row has a spread too.
  const geo = ratiosBySample.map((ratios) => geometricMean(ratios));
  rows.push(
    rowOf(
      {
        group: "cpu",
        name: "fuel overhead, geometric mean of paired ratios",
        unit: "x",
        note: `target < 1.10; ${GUESTS.length} guests, refill every ${REFILL} checks`,
      },
      geo,
    ),
  );
  return rows;
}

// `node dist/bench/cpu.js`: run alone.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await runCpuBench((line) => process.stderr.write(`${line}\n`));
  for (const r of rows) {
    const ratio = r.anchor === r.name ? "" : `  ${r.ratio.toFixed(3)}x`;
    process.stdout.write(
      `${r.name.padEnd(48)} ${formatNumber(r.figure).padStart(7)} ${r.unit}  ${r.spreadKind} ${formatNumber(r.spread[0])}–${formatNumber(r.spread[1])}${ratio}\n`,
    );
  }
}
