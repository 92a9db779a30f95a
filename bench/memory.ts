/**
 * Memory benchmark, run in child processes of its own (`node --expose-gc`),
 * so that what the other sections left in the heap, the code space and
 * malloc's arenas does not count here:
 *
 * - loaded: one ModuleHost loads 1,000 distinct modules (copies of
 *   mod_test.wasm, renamed mod_m0000.c ... mod_m0999.c with their module
 *   symbol renamed to match and a unique custom section, so each is compiled
 *   and cached on its own as a distinct third-party module would be). RSS,
 *   JS heap and V8 `external` memory are read after a full GC before the
 *   first load and after every 100; each step's delta / 100 is one sample of
 *   the cost of one loaded module;
 * - churn: 10,000 insmod+rmmod cycles of mod_test on one host; RSS after a
 *   full GC before (after a warm-up of 100 cycles, so the host's own code
 *   and its compile-cache entry are already paid for) and after. Run in
 *   CHURN_RUNS separate processes for a spread.
 *
 * The children run with the V8 heap settings dsod runs with
 * (host/system/heap.ts); the churn runs once more with V8's defaults, for
 * comparison.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { ModuleHost } from "../host/modules/module-host.js";
import { MODULE_HOST_V8_FLAGS, tuneHeapForModuleChurn } from "../host/system/heap.js";
import { isMain, LIBEXEC_DIR, printRows, withTarget, withUniqueSection } from "./load.js";
import { rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const LOADED = 1_000;
const STEP = 100;
const CYCLES = 10_000;
const CHURN_WARMUP = 100;
const CHURN_RUNS = 3;
const GROWTH_TARGET_MB = 10;

const MB = 1024 * 1024;

interface Reading {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  /**
   * V8's young generation as committed. It grows (to 32 MB on Node 20 x64)
   * under a high allocation rate and on Node 20 no GC shrinks it, so it is
   * RSS that stays without being retained by anything; Node 22 and 24 give
   * it back to the memory-reducing GC of settle().
   */
  readonly newSpace: number;
}

interface LoadedResult {
  readonly kind: "loaded";
  readonly readings: Reading[];
}

interface ChurnResult {
  readonly kind: "churn";
  readonly before: Reading;
  readonly after: Reading;
  readonly peakRss: number;
  readonly midRss: number;
  readonly usPerCycle: number;
}

// ---------------------------------------------------------------------------
// Renaming the module symbol: mod_m0042.c must export m0042_module.

function readU32(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let i = at; ; i++) {
    const b = bytes[i];
    if (b === undefined) throw new Error("bench: truncated LEB128");
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, i + 1];
  }
}

function u32(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let b = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest !== 0) b |= 0x80;
    out.push(b);
  } while (rest !== 0);
  return out;
}

/** `bytes` with the export named `from` renamed `to`; only the export section is re-encoded. */
export function renameExport(bytes: Uint8Array, from: string, to: string): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let at = 8;
  let renamed = false;
  while (at < bytes.length) {
    const id = bytes[at] as number;
    const [size, bodyAt] = readU32(bytes, at + 1);
    const end = bodyAt + size;
    if (id !== 7) {
      parts.push(bytes.subarray(at, end));
      at = end;
      continue;
    }
    const body: number[] = [];
    let [count, p] = readU32(bytes, bodyAt);
    body.push(...u32(count));
    for (; count > 0; count--) {
      const [length, nameAt] = readU32(bytes, p);
      let name = Buffer.from(bytes.subarray(nameAt, nameAt + length)).toString("utf8");
      if (name === from) {
        name = to;
        renamed = true;
      }
      const encoded = Buffer.from(name, "utf8");
      body.push(...u32(encoded.length), ...encoded, bytes[nameAt + length] as number);
      const [, next] = readU32(bytes, nameAt + length + 1);
      body.push(...bytes.subarray(nameAt + length + 1, next));
      p = next;
    }
    parts.push(Uint8Array.from([7, ...u32(body.length), ...body]));
    at = end;
  }
  if (!renamed) throw new Error(`bench: no export '${from}' to rename`);
  return new Uint8Array(Buffer.concat(parts));
}

// ---------------------------------------------------------------------------
// The child side.

async function settle(): Promise<Reading> {
  // Several full GCs with turns of the event loop between them: a Memory's
  // backing store is freed by a finalizer after the GC that found it dead.
  for (let i = 0; i < 4; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Then a memory-reducing one, as V8's memory reducer runs in an idle daemon: V8 12 and later (Node 22+)
  // keep the pages they free in a pool (trace-gc's "pooled: 20 MB" after this churn) and only such a GC
  // returns them. V8 11 (Node 20) takes the option and does an ordinary full GC.
  globalThis.gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
  const usage = process.memoryUsage();
  const newSpace = v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_size ?? 0;
  return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, newSpace };
}

async function childLoaded(): Promise<LoadedResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-memory-"));
  try {
    const original = readFileSync(path.join(LIBEXEC_DIR, "mod_test.wasm"));
    const names: string[] = [];
    for (let i = 0; i < LOADED; i++) {
      const stem = `m${String(i).padStart(4, "0")}`;
      const bytes = withUniqueSection(renameExport(original, "test_module", `${stem}_module`), `memory ${i}`);
      writeFileSync(path.join(dir, `mod_${stem}.wasm`), bytes);
      names.push(`mod_${stem}.c`);
    }
    const host = new ModuleHost({ modulePath: dir, guestLog: () => {} });
    const readings = [await settle()];
    for (let i = 0; i < LOADED; i++) {
      host.loadModule(names[i] as string);
      if ((i + 1) % STEP === 0) readings.push(await settle());
    }
    if (host.listModules().length !== LOADED) throw new Error("bench: not every module loaded");
    host.close();
    return { kind: "loaded", readings };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function childChurn(): Promise<ChurnResult> {
  const host = new ModuleHost({ modulePath: LIBEXEC_DIR, guestLog: () => {} });
  const cycle = (): void => {
    host.loadModule("mod_test.c");
    host.unloadModule("mod_test.c");
  };
  for (let i = 0; i < CHURN_WARMUP; i++) cycle();
  const before = await settle();
  let peakRss = before.rss;
  let midRss = 0;
  const start = process.hrtime.bigint();
  for (let i = 1; i <= CYCLES; i++) {
    cycle();
    if (i % 1_000 === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
    // Halfway, after a GC too: growth that keeps climbing is a leak, growth that stops is a cache filling.
    if (i === CYCLES / 2) midRss = (await settle()).rss;
  }
  const usPerCycle = Number(process.hrtime.bigint() - start) / 1e3 / CYCLES;
  const after = await settle();
  host.close();
  return { kind: "churn", before, after, peakRss, midRss, usPerCycle };
}

// ---------------------------------------------------------------------------
// The parent side.

type Heap = "dsod" | "v8-defaults";

function runChild(mode: "loaded" | "churn", heap: Heap = "dsod"): unknown {
  const script = fileURLToPath(import.meta.url);
  const result = spawnSync(process.execPath, ["--expose-gc", script, "--child", mode, heap], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (result.status !== 0) throw new Error(`bench: memory child (${mode}) failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

export function runMemory(log: (line: string) => void): Row[] {
  const group = "memory";
  const rows: Row[] = [];
  const loaded = runChild("loaded") as LoadedResult;
  const perModule = (field: keyof Reading): number[] =>
    loaded.readings.slice(1).map((r, i) => (r[field] - (loaded.readings[i] as Reading)[field]) / STEP / 1024);
  const first = loaded.readings[0] as Reading;
  const last = loaded.readings.at(-1) as Reading;
  const total = (field: keyof Reading): string => `${((last[field] - first[field]) / MB).toFixed(1)} MB`;
  const where = `${LOADED.toLocaleString("en-US")} distinct mod_test copies loaded at once; per step of ${STEP}`;
  rows.push(
    rowOf(
      { group, name: `${group}: RSS per loaded module`, unit: "KiB/module", note: `${where}; total ${total("rss")}` },
      perModule("rss"),
    ),
    rowOf(
      {
        group,
        name: `${group}: JS heap per loaded module`,
        unit: "KiB/module",
        note: `heapUsed; total ${total("heapUsed")}`,
      },
      perModule("heapUsed"),
    ),
    rowOf(
      {
        group,
        name: `${group}: V8 external per loaded module`,
        unit: "KiB/module",
        note: `ArrayBuffers and wasm memories; total ${total("external")}`,
      },
      perModule("external"),
    ),
  );
  log(`memory: loaded 1,000 modules: RSS ${(first.rss / MB).toFixed(0)} -> ${(last.rss / MB).toFixed(0)} MB`);

  const churnName = `${group}: RSS growth after ${CYCLES.toLocaleString("en-US")} insmod+rmmod cycles (mod_test, after gc)`;
  const churns = Array.from({ length: CHURN_RUNS }, () => runChild("churn") as ChurnResult);
  const growthRow = churnRow(`${churnName}, heap as dsod runs it (${MODULE_HOST_V8_FLAGS.join(" ")})`, churns);
  rows.push(withTarget(growthRow, `< ${GROWTH_TARGET_MB} MB`, growthRow.figure < GROWTH_TARGET_MB));
  // The same churn with V8's default heap: its young generation grows under churn (the peak shows it) and
  // keeps the space on Node 20; Node 22 and 24 give it back to the memory-reducing GC.
  const defaults = Array.from({ length: CHURN_RUNS }, () => runChild("churn", "v8-defaults") as ChurnResult);
  const defaultsRow = churnRow(`${churnName}, V8's default heap`, defaults);
  rows.push({ ...defaultsRow, anchor: growthRow.name, ratio: defaultsRow.figure / growthRow.figure });
  // What is left of that once the young generation's growth is taken out: what the cycles actually retain.
  rows.push(
    rowOf(
      {
        group,
        name: `${churnName}, V8's default heap, minus new-space growth`,
        unit: "MB",
        note: "same processes; no target, for diagnosis",
      },
      defaults.map((c) => (c.after.rss - c.before.rss - (c.after.newSpace - c.before.newSpace)) / MB),
      { name: growthRow.name, figure: growthRow.figure },
    ),
  );
  log(
    `memory: churn ${churns.map((c) => c.usPerCycle.toFixed(0)).join("/")} µs/cycle; ` +
      `with V8's default heap ${defaults.map((c) => c.usPerCycle.toFixed(0)).join("/")} µs/cycle`,
  );
  return rows;
}

function churnRow(name: string, churns: readonly ChurnResult[]): Row {
  const fmt = (values: number[]): string => values.map((v) => (v / MB).toFixed(1)).join("/");
  const delta = (field: keyof Reading): string => fmt(churns.map((c) => c.after[field] - c.before[field]));
  return rowOf(
    {
      group: "memory",
      name,
      unit: "MB",
      note:
        `${churns.length} processes; RSS before ${fmt(churns.map((c) => c.before.rss))}, ` +
        `at ${CYCLES / 2} ${fmt(churns.map((c) => c.midRss))}, after ${fmt(churns.map((c) => c.after.rss))}, ` +
        `peak ${fmt(churns.map((c) => c.peakRss))} MB; growth of V8 new space ${delta("newSpace")}, ` +
        `heap used ${delta("heapUsed")}, external ${delta("external")} MB; ` +
        `${churns.map((c) => c.usPerCycle.toFixed(0)).join("/")} µs/cycle`,
    },
    churns.map((c) => (c.after.rss - c.before.rss) / MB),
  );
}

if (isMain(import.meta.url)) {
  const mode = process.argv[2] === "--child" ? process.argv[3] : undefined;
  if (mode !== undefined && process.argv[4] !== "v8-defaults") tuneHeapForModuleChurn();
  if (mode === "loaded") process.stdout.write(`${JSON.stringify(await childLoaded())}\n`);
  else if (mode === "churn") process.stdout.write(`${JSON.stringify(await childChurn())}\n`);
  // `node dist/bench/memory.js`: run alone.
  else printRows(runMemory((line) => process.stderr.write(`${line}\n`)));
}
