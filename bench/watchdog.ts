/**
 * Benchmark of the CPU limit, the native watchdog (host/sandbox/watchdog.ts).
 * It replaced fuel instrumentation (a wasm rewriter counting loop iterations
 * and calls), which measured 1.29-1.35x on these same guests:
 *
 * 1. Per-call cost: a trivial export called directly (the anchor) against the
 *    same call through callGuarded, with a closure made once and with a fresh
 *    closure per call (what a loader passing arguments would do), and against
 *    node:vm's `timeout`, the built-in way (a watchdog thread per call).
 * 2. Guest cost: three CPU-bound guests (an FNV hash, a sieve, recursive fib)
 *    run directly and through callGuarded, on the same instance, interleaved
 *    sample by sample after a tier-up warm-up, with the geometric mean of the
 *    paired ratios. V8's interrupt checks are in the code either way, so the
 *    expected ratio is 1.0 plus one guarded call per sample.
 *
 * `node dist/bench/watchdog.js` runs it alone and prints the rows.
 */
import { pathToFileURL } from "node:url";
import vm from "node:vm";
import wabtInit from "wabt";
import { callGuarded, watchdogStats } from "../host/sandbox/watchdog.js";
import { elapsedNs, formatNumber, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const SAMPLES = 15;
const WARMUP_MS = 300;
/** Calls per per-call sample: ~1–5 ms of guarded calls, long against timer resolution. */
const CALLS = 20_000;
/** vm timeout calls cost ~50 µs each: fewer of them per sample. */
const VM_CALLS = 200;
/** Budget of the guest runs: far above their ~5–20 ms, so the benchmark measures the guard, not interruption. */
const GUEST_BUDGET_MS = 10_000;

/* The CPU-bound guests, plus `add`, the trivial export for the per-call rows. */
const GUESTS_WAT = `(module
  (memory (export "memory") 16)
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
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

interface GuestExports {
  add(a: number, b: number): number;
  fill(n: number): void;
  fnv(n: number, reps: number): number;
  sieve(n: number, reps: number): number;
  fib(n: number): number;
}

interface Guest {
  readonly name: string;
  readonly run: (exports: GuestExports) => number;
}

const FNV_BYTES = 1 << 20;
const SIEVE_BYTES = 512 * 1024;
const GUESTS: readonly Guest[] = [
  { name: "fnv-1a, 1 MiB x 8", run: (e) => e.fnv(FNV_BYTES, 8) },
  { name: "sieve, 512 KiB x 10", run: (e) => e.sieve(SIEVE_BYTES, 10) },
  { name: "fib(30), recursive", run: (e) => e.fib(30) },
];

async function instantiateGuests(): Promise<GuestExports> {
  const wabt = await wabtInit();
  const module = wabt.parseWat("watchdog.wat", GUESTS_WAT, {});
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    module.resolveNames();
    module.validate();
    bytes = new Uint8Array(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const exports = instance.exports as unknown as GuestExports;
  exports.fill(FNV_BYTES);
  return exports;
}

function timeMs(fn: () => number): { ms: number; result: number } {
  const start = process.hrtime.bigint();
  const result = fn();
  return { ms: elapsedNs(start) / 1e6, result };
}

function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

/** One per-call variant: runs `calls` calls and returns a checksum (so the loop is not dead code). */
interface CallVariant {
  readonly name: string;
  readonly calls: number;
  readonly loop: (calls: number) => number;
}

function callVariants(exports: GuestExports): CallVariant[] {
  const add = exports.add;
  const once = (): number => add(1, 2);
  const context = vm.createContext({ add });
  const script = new vm.Script("add(1, 2)");
  return [
    {
      name: "trivial export: direct",
      calls: CALLS,
      loop: (calls) => {
        let sum = 0;
        for (let i = 0; i < calls; i++) sum += add(1, i);
        return sum;
      },
    },
    {
      name: "trivial export: callGuarded",
      calls: CALLS,
      loop: (calls) => {
        let sum = 0;
        for (let i = 0; i < calls; i++) sum += callGuarded(once, 250);
        return sum;
      },
    },
    {
      name: "trivial export: callGuarded, closure per call",
      calls: CALLS,
      loop: (calls) => {
        let sum = 0;
        for (let i = 0; i < calls; i++) sum += callGuarded(() => add(1, i), 250);
        return sum;
      },
    },
    {
      name: "trivial export: vm runInContext, timeout",
      calls: VM_CALLS,
      loop: (calls) => {
        let sum = 0;
        for (let i = 0; i < calls; i++) sum += script.runInContext(context, { timeout: 250 }) as number;
        return sum;
      },
    },
  ];
}

/**
 * Rows: per-call ns of each variant (the direct call is the anchor); per guest
 * the direct run (anchor) and the guarded one; then the geometric mean.
 */
export async function runWatchdogBench(log: (line: string) => void = () => {}): Promise<Row[]> {
  const exports = await instantiateGuests();
  const rows: Row[] = [];
  const interruptsBefore = watchdogStats().interrupts;

  // --- Per-call cost -------------------------------------------------------
  log("bench: watchdog per-call cost");
  const variants = callVariants(exports);
  const until = performance.now() + WARMUP_MS;
  while (performance.now() < until) for (const v of variants) v.loop(Math.min(v.calls, 1000));
  const nsByVariant: number[][] = variants.map(() => []);
  for (let s = 0; s < SAMPLES; s++) {
    globalThis.gc?.();
    // Rotate the order so no variant always runs first after the GC.
    for (let k = 0; k < variants.length; k++) {
      const index = (s + k) % variants.length;
      const v = variants[index] as CallVariant;
      const start = process.hrtime.bigint();
      v.loop(v.calls);
      nsByVariant[index]?.push(elapsedNs(start) / v.calls);
    }
  }
  const callAnchor = rowOf({ group: "watchdog", name: variants[0]?.name ?? "direct", unit: "ns/call" }, nsByVariant[0] ?? []);
  rows.push(callAnchor);
  variants.slice(1).forEach((v, i) => {
    const samples = nsByVariant[i + 1] ?? [];
    rows.push(rowOf({ group: "watchdog", name: v.name, unit: "ns/call" }, samples, { name: callAnchor.name, figure: callAnchor.figure }));
  });
  // The overhead itself, paired sample by sample.
  const guardedIndex = 1;
  const overhead = (nsByVariant[guardedIndex] ?? []).map((ns, s) => ns - (nsByVariant[0]?.[s] ?? 0));
  rows.push(
    rowOf(
      { group: "watchdog", name: "callGuarded overhead per call", unit: "ns", note: "target ~1000 ns or less (vm timeout: ~50 µs)" },
      overhead,
    ),
  );

  // --- CPU-bound guests ----------------------------------------------------
  const ratiosBySample: number[][] = Array.from({ length: SAMPLES }, () => []);
  for (const guest of GUESTS) {
    log(`bench: watchdog ${guest.name}`);
    const guarded = (): number => callGuarded(() => guest.run(exports), GUEST_BUDGET_MS);
    const direct = (): number => guest.run(exports);
    const warmUntil = performance.now() + WARMUP_MS;
    while (performance.now() < warmUntil) {
      const a = direct();
      const b = guarded();
      if (a !== b) throw new Error(`watchdog bench: ${guest.name} differs guarded (${b}) vs direct (${a})`);
    }
    const directMs: number[] = [];
    const guardedMs: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      globalThis.gc?.();
      // Alternate the order so neither variant always runs on a freshly GC'd, cooled cache.
      const first = s % 2 === 0;
      const x = timeMs(first ? direct : guarded);
      const y = timeMs(first ? guarded : direct);
      const d = first ? x : y;
      const g = first ? y : x;
      directMs.push(d.ms);
      guardedMs.push(g.ms);
      ratiosBySample[s]?.push(g.ms / d.ms);
    }
    const anchor = rowOf({ group: "watchdog", name: `${guest.name}: direct`, unit: "ms" }, directMs);
    rows.push(anchor);
    rows.push(
      rowOf({ group: "watchdog", name: `${guest.name}: callGuarded`, unit: "ms" }, guardedMs, {
        name: anchor.name,
        figure: anchor.figure,
      }),
    );
  }
  const geo = ratiosBySample.map((ratios) => geometricMean(ratios));
  rows.push(
    rowOf(
      {
        group: "watchdog",
        name: "watchdog overhead, geometric mean of paired ratios",
        unit: "x",
        note: `target < 1.10; ${GUESTS.length} guests, budget ${GUEST_BUDGET_MS} ms`,
      },
      geo,
    ),
  );

  // A spurious interrupt would have thrown above; this catches one cancelled as late, which should not happen either.
  const interrupts = watchdogStats().interrupts - interruptsBefore;
  if (interrupts !== 0) throw new Error(`watchdog bench: ${interrupts} interrupt(s) requested during calls far within budget`);
  return rows;
}

// `node dist/bench/watchdog.js`: run alone.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await runWatchdogBench((line) => process.stderr.write(`${line}\n`));
  for (const r of rows) {
    const ratio = r.anchor === r.name ? "" : `  ${r.ratio.toFixed(3)}x`;
    process.stdout.write(
      `${r.name.padEnd(52)} ${formatNumber(r.figure).padStart(7)} ${r.unit}  ${r.spreadKind} ${formatNumber(r.spread[0])}–${formatNumber(r.spread[1])}${ratio}\n`,
    );
  }
}
