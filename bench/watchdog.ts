/**
 * Benchmark of the CPU limit, the native watchdog (host/sandbox/watchdog.ts).
 * It replaced fuel instrumentation (a wasm rewriter counting loop iterations
 * and calls), which measured 1.29-1.35x on these same guests:
 *
 * 1. Per-call cost: a trivial export called directly (the anchor) against the
 *    same call through callGuarded, with a closure made once and with a fresh
 *    closure per call (what a loader passing arguments would do), and against
 *    node:vm's `timeout`, the built-in way (a watchdog thread per call), which
 *    is also what callGuarded falls back to when the addon is not built.
 * 2. Guest cost: three CPU-bound guests (an FNV hash, a sieve, recursive fib)
 *    run directly and through callGuarded, on the same instance, interleaved
 *    sample by sample after a tier-up warm-up, with the geometric mean of the
 *    paired ratios. V8's interrupt checks are in the code either way, so the
 *    expected ratio is 1.0 plus one guarded call per sample. The budget is CPU
 *    time: each guarded call reads the thread's CPU clock once.
 * 3. Load-time bombs (issue #12): how long ModuleHost takes to refuse a
 *    46-byte module declaring a 10 M-element table, a 4 MB one of 1 M
 *    functions and a 24 MiB data segment, each under its default load limit
 *    (target < 50 ms each; compiling the function bomb alone took 451 ms).
 * 4. The fair scheduler (host/ftp/scheduler.ts) on the NOOP path: one client,
 *    one command at a time over loopback TCP, against a server that pumps
 *    each connection's lines as ControlSession does, with and without asking
 *    for each command's turn and charging the time it held the thread
 *    (performance.now around its synchronous part); interleaved, paired, in
 *    the server thread's CPU time per command (the client runs in a worker
 *    thread with its own event loop; latency on a shared machine is too
 *    noisy for a microsecond). That server only writes the reply, so what the
 *    scheduler adds per command is set against what a NOOP costs dsod itself:
 *    the CPU time of a real dsod (from /proc) over a stream of NOOPs, per NOOP
 *    (target < 5%).
 *
 * `node dist/bench/watchdog.js` runs it alone and prints the rows.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance as nodePerformance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import vm from "node:vm";
import { Worker } from "node:worker_threads";
import wabtInit from "wabt";
import { FairScheduler } from "../host/ftp/scheduler.js";
import { ModuleHost } from "../host/modules/module-host.js";
import { callGuarded, threadCpuTimeMs, watchdogStats } from "../host/sandbox/watchdog.js";
import { PACKAGE_ROOT } from "../host/system/package-root.js";
import { elapsedNs, formatNumber, rowOf } from "./stats.js";
import { FUNCREF, SectionId, dataBomb, functionBomb, leb, moduleBinary, section } from "./wasm-encoder.js";
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
async function runGuardRows(log: (line: string) => void): Promise<Row[]> {
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
  const callAnchor = rowOf(
    { group: "watchdog", name: variants[0]?.name ?? "direct", unit: "ns/call" },
    nsByVariant[0] ?? [],
  );
  rows.push(callAnchor);
  variants.slice(1).forEach((v, i) => {
    const samples = nsByVariant[i + 1] ?? [];
    rows.push(
      rowOf({ group: "watchdog", name: v.name, unit: "ns/call" }, samples, {
        name: callAnchor.name,
        figure: callAnchor.figure,
      }),
    );
  });
  // The overhead itself, paired sample by sample.
  const guardedIndex = 1;
  const overhead = (nsByVariant[guardedIndex] ?? []).map((ns, s) => ns - (nsByVariant[0]?.[s] ?? 0));
  rows.push(
    rowOf(
      {
        group: "watchdog",
        name: "callGuarded overhead per call",
        unit: "ns",
        note: "target ~1000 ns or less (vm timeout: ~50 µs)",
      },
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
  if (interrupts !== 0)
    throw new Error(`watchdog bench: ${interrupts} interrupt(s) requested during calls far within budget`);
  return rows;
}

// --- Load-time bombs ---------------------------------------------------------

/** The three bombs of issue #12, each a valid module. */
function bombs(): Record<string, Uint8Array> {
  const table = [0x01, FUNCREF, 0x01, ...leb(10_000_000), ...leb(10_000_000)];
  return {
    "mod_tablebomb.c": moduleBinary("mod_tablebomb", [section(SectionId.table, table)]),
    "mod_fnbomb.c": functionBomb("mod_fnbomb", 1_000_000),
    "mod_databomb.c": dataBomb("mod_databomb", 24 * 1024 * 1024, "passive"),
  };
}

const BOMB_LABELS: Readonly<Record<string, string>> = {
  "mod_tablebomb.c": "10 M-element table (46 bytes)",
  "mod_fnbomb.c": "1 M functions (4 MB)",
  "mod_databomb.c": "24 MiB data segment",
};

/** Milliseconds for a fresh ModuleHost to refuse each bomb (a fresh host: nothing cached), SAMPLES times. */
function runBombRows(log: (line: string) => void): Row[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dso-bombs-"));
  chmodSync(dir, 0o755);
  try {
    const files = bombs();
    for (const [module, bytes] of Object.entries(files))
      writeFileSync(path.join(dir, `${module.slice(0, -2)}.wasm`), bytes);
    return Object.keys(files).map((module) => {
      log(`bench: refusing ${module}`);
      const ms: number[] = [];
      for (let s = 0; s < SAMPLES; s++) {
        const host = new ModuleHost({ modulePath: dir });
        const start = process.hrtime.bigint();
        try {
          host.loadModule(module);
        } catch {
          ms.push(elapsedNs(start) / 1e6);
          continue;
        }
        throw new Error(`watchdog bench: ${module} was not refused`);
      }
      return rowOf(
        {
          group: "sandbox-limits",
          name: `load-time bomb refused: ${BOMB_LABELS[module]}`,
          unit: "ms",
          note: "target < 50 ms",
        },
        ms,
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- The fair scheduler on a NOOP-like path -----------------------------------

const NOOP_COMMANDS = 5_000;
/** /proc counts CPU time in 10 ms ticks: 10,000 NOOPs of about 20 µs are 20 ticks. */
const DSOD_NOOP_COMMANDS = 10_000;
const DSOD_SAMPLES = 5;

/**
 * A server answering `200 NOOP command successful` per line, pumping its
 * queue of lines as ControlSession.#pump does: synchronously, one after
 * another; with a scheduler, each line first asks for its turn (stopping the
 * pump until it comes) and is charged the time it held the thread.
 */
async function noopServer(
  scheduler: FairScheduler<net.Socket> | undefined,
): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending = "";
    const queue: string[] = [];
    let waiting = false;
    let granted = false;
    const onTurn = (): void => {
      waiting = false;
      granted = true;
      pump();
    };
    const pump = (): void => {
      while (!waiting && queue.length > 0) {
        if (scheduler !== undefined && !granted && !scheduler.request(socket, onTurn)) {
          waiting = true;
          return;
        }
        granted = false;
        queue.shift();
        if (scheduler === undefined) {
          socket.write("200 NOOP command successful\r\n");
          continue;
        }
        const start = performance.now();
        socket.write("200 NOOP command successful\r\n");
        scheduler.charge(socket, performance.now() - start);
      }
    };
    socket.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
        queue.push(pending.slice(0, end));
        pending = pending.slice(end + 1);
      }
      pump();
    });
    socket.on("close", () => scheduler?.forget(socket));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Sends `count` NOOPs one at a time (send, wait for the reply). */
async function noops(client: net.Socket, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const reply = once(client, "data");
    client.write("NOOP\r\n");
    await reply;
  }
}

/**
 * The client of the scheduler rows, in a worker thread: its own event loop,
 * as a remote client would be, so the server's loop waits for each command
 * as dsod's does. It keeps one connection per port and, for each message
 * `{ port, count }`, sends `count` NOOPs there one at a time, then answers.
 */
const NOOP_CLIENT = `
const net = require("node:net");
const { parentPort } = require("node:worker_threads");
const connections = new Map();
function connection(port) {
  let c = connections.get(port);
  if (c === undefined) {
    c = new Promise((resolve) => { const s = net.connect(port, "127.0.0.1", () => resolve(s)); s.setNoDelay(true); });
    connections.set(port, c);
  }
  return c;
}
parentPort.on("message", async ({ port, count }) => {
  const socket = await connection(port);
  for (let i = 0; i < count; i++) await new Promise((resolve) => { socket.once("data", resolve); socket.write("NOOP\\r\\n"); });
  parentPort.postMessage("done");
});`;

/** The server thread's CPU time per command (µs) while the worker sends `count` NOOPs to `port`. */
async function serverCpuPerNoop(client: Worker, port: number, count: number): Promise<number> {
  const start = threadCpuTimeMs();
  const done = once(client, "message");
  client.postMessage({ port, count });
  await done;
  return ((threadCpuTimeMs() - start) * 1000) / count;
}

/** dsod's CPU time per NOOP (µs), user and system from /proc, over `count` NOOPs one at a time, `samples` times. */
async function dsodNoopCpu(count: number, samples: number): Promise<number[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dso-noop-"));
  const config = path.join(dir, "dsod.conf");
  writeFileSync(
    config,
    [
      "DefaultAddress 127.0.0.1",
      "Port 0",
      `AuthUserFile ${path.join(PACKAGE_ROOT, "examples", "dsod.passwd")}`,
      `ControlsSocket ${dir}/dsod.sock`,
      // One process: the CPU read from /proc is dsod's pid's (bench/workers.ts measures workers).
      "SessionWorkers off",
      "",
    ].join("\n"),
  );
  const child = spawn(process.execPath, [
    path.join(PACKAGE_ROOT, "dist", "host", "cli", "dsod.js"),
    "-n",
    "-c",
    config,
  ]);
  try {
    let stderr = "";
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on \S+ port (\d+)/.exec(stderr);
        if (match !== null) resolve(Number(match[1]));
      });
      child.once("exit", () => reject(new Error(`dsod exited before listening:\n${stderr}`)));
    });
    const client = net.connect(port, "127.0.0.1");
    await once(client, "connect");
    client.setNoDelay(true);
    await once(client, "data");
    const cpuMs = (): number => {
      // Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks of 10 ms.
      const fields = (readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    };
    await noops(client, count);
    const us: number[] = [];
    for (let s = 0; s < samples; s++) {
      const before = cpuMs();
      await noops(client, count);
      us.push(((cpuMs() - before) * 1000) / count);
    }
    client.destroy();
    return us;
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runSchedulerRows(log: (line: string) => void): Promise<Row[]> {
  log("bench: fair scheduler on a NOOP-like path");
  const scheduler = new FairScheduler<net.Socket>({
    now: () => performance.now(),
    idleTime: () => nodePerformance.nodeTiming.idleTime,
    defer: (next) => setImmediate(next),
    later: (ms, wake) => setTimeout(wake, ms),
  });
  const plain = await noopServer(undefined);
  const fair = await noopServer(scheduler);
  const client = new Worker(NOOP_CLIENT, { eval: true });
  try {
    await serverCpuPerNoop(client, plain.port, NOOP_COMMANDS);
    await serverCpuPerNoop(client, fair.port, NOOP_COMMANDS);
    const plainUs: number[] = [];
    const fairUs: number[] = [];
    const addedUs: number[] = [];
    for (let s = 0; s < SAMPLES; s++) {
      const first = s % 2 === 0;
      const a = await serverCpuPerNoop(client, first ? plain.port : fair.port, NOOP_COMMANDS);
      const b = await serverCpuPerNoop(client, first ? fair.port : plain.port, NOOP_COMMANDS);
      const p = first ? a : b;
      const f = first ? b : a;
      plainUs.push(p);
      fairUs.push(f);
      addedUs.push(f - p);
    }
    log("bench: dsod's own NOOP");
    const noop = rowOf(
      {
        group: "sandbox-limits",
        name: "dsod NOOP: server CPU time per command",
        unit: "µs",
        note: "from /proc, one command at a time",
      },
      await dsodNoopCpu(DSOD_NOOP_COMMANDS, DSOD_SAMPLES),
    );
    const pump = rowOf(
      { group: "sandbox-limits", name: "NOOP reply, server CPU per command: plain pump", unit: "µs" },
      plainUs,
    );
    return [
      pump,
      rowOf(
        { group: "sandbox-limits", name: "NOOP reply, server CPU per command: with fair scheduler", unit: "µs" },
        fairUs,
        {
          name: pump.name,
          figure: pump.figure,
        },
      ),
      noop,
      rowOf(
        {
          group: "sandbox-limits",
          name: "fair scheduler: added per command, against dsod's NOOP",
          unit: "µs",
          note: "target < 5% of a NOOP",
        },
        addedUs,
        { name: noop.name, figure: noop.figure },
      ),
    ];
  } finally {
    await client.terminate();
    plain.server.close();
    fair.server.close();
  }
}

/** The watchdog's rows, then issue #12's: load-time bomb refusals and the fair scheduler's cost. */
export async function runWatchdogBench(log: (line: string) => void = () => {}): Promise<Row[]> {
  return [...(await runGuardRows(log)), ...runBombRows(log), ...(await runSchedulerRows(log))];
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
