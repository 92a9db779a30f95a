/**
 * `npm run bench`: runs the benchmark sections listed in SECTIONS, prints one
 * table and writes it as JSON to bench/results/<timestamp>.json and
 * bench/results/latest.json.
 *
 * BENCH_ONLY=load,dispatch runs only the named sections (development runs;
 * the JSON records which ran).
 *
 * Ratios are computed within this one run (each row against its anchor, run
 * interleaved with it), because absolute times on a shared 2-core VM drift
 * between runs far more than ratios do (one wasm call loop measured 1.69 to
 * 1.90 ns a call from one process to the next).
 *
 * The benchmarks run with the V8 heap settings dsod runs with
 * (host/system/heap.ts), since they measure what the daemon does; the memory
 * section also shows the churn with V8's defaults.
 *
 * BENCH_LINK_SPLIT=1 fills the link benchmark's scope from 1,000-export
 * libraries, skipping the 35–50 s LoadFile of one 100,000-export library
 * (quadratic in ModuleHost); its loadModule rows are not comparable with the
 * default's (see LinkOptions in link.ts), so the JSON records the mode.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCalls } from "./calls.js";
import { runControls } from "./controls.js";
import { runDispatch } from "./dispatch.js";
import { runLatency } from "./latency.js";
import { runLink } from "./link.js";
import { runLoad } from "./load.js";
import { runLogin } from "./login.js";
import { runMemory } from "./memory.js";
import { runSessions } from "./sessions.js";
import { runTransfer } from "./transfer.js";
import { runWatchdogBench } from "./watchdog.js";
import { runWorkers } from "./workers.js";
import { MODULE_HOST_V8_FLAGS, tuneHeapForModuleChurn } from "../host/system/heap.js";
import { formatNumber } from "./stats.js";
import type { Row } from "./stats.js";

/** The source tree's bench/results, whether this runs as dist/bench/run.js or from elsewhere in the tree. */
const RESULTS_DIR = fileURLToPath(new URL("../../bench/results/", import.meta.url));

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function table(rows: readonly Row[]): string {
  const header = ["benchmark", "median", "spread", "unit", "ratio", "vs", "note"];
  const lines = rows.map((r) => [
    r.name,
    formatNumber(r.figure),
    `${formatNumber(r.spread[0])}–${formatNumber(r.spread[1])} (${r.spreadKind}, ${r.samples})`,
    r.unit,
    r.anchor === r.name ? "anchor" : `${r.ratio.toFixed(2)}x`,
    r.anchor === r.name ? "" : anchorLabel(r, rows),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const format = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 1 || i === 4 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [format(header), format(widths.map((w) => "-".repeat(w))), ...lines.map(format)].join("\n");
}

/** A short name for the anchor: its position in the table, so long names are not repeated. */
function anchorLabel(row: Row, rows: readonly Row[]): string {
  return `#${rows.findIndex((r) => r.name === row.anchor) + 1}`;
}

interface SectionContext {
  readonly splitLibraries: boolean;
  readonly log: (line: string) => void;
}

/**
 * The sections, in the order they run and print (the numbering).
 * This is the one list to extend: a section is a name and a function that
 * returns its rows.
 */
const SECTIONS: ReadonlyArray<{
  readonly name: string;
  readonly run: (context: SectionContext) => Row[] | Promise<Row[]>;
}> = [
  // 1. insmod+rmmod cycles against native dlopen/dlclose.
  { name: "load", run: ({ log }) => runLoad(log) },
  // 2. Symbol resolution against the size of the global scope.
  { name: "link", run: ({ splitLibraries, log }) => runLink({ splitLibraries, log }) },
  // 3. ns per call of the paths a module's code takes.
  { name: "calls", run: ({ log }) => runCalls(log) },
  // 4. FTP commands/s through a guest handler against a compiled-in one.
  { name: "dispatch", run: ({ log }) => runDispatch(log) },
  // 5. Sandbox cost: the CPU limit (native watchdog) on CPU-bound guests, limited against unlimited.
  { name: "sandbox", run: ({ log }) => runWatchdogBench(log) },
  // 6. Memory per loaded module and RSS after insmod/rmmod churn (child processes).
  { name: "memory", run: ({ log }) => runMemory(log) },
  // 7. dsoctl lsmod end to end and the request alone.
  { name: "controls", run: ({ log }) => runControls(log) },
  // 8. Files over loopback (RETR, STOR, 50 parallel, LIST, RSS) against the machine's proftpd.
  { name: "transfer", run: ({ log }) => runTransfer(log) },
  // 9. Password checks off the event loop, CPU per login against proftpd, sessions' throughput during logins.
  { name: "login", run: ({ log }) => runLogin(log) },
  // 10. One session's NOOP round trip (p50/p99/p999) against the machine's proftpd, and heap bytes per NOOP.
  { name: "latency", run: ({ log }) => runLatency(log) },
  // 11. Per-session module instances: CPU per session start, RSS per session and 1,000 sessions held, per mode.
  { name: "sessions", run: ({ log }) => runSessions(log) },
  // 12. Sessions served by worker processes: 50-session throughput with 1 worker and all cores, logins, stalls.
  { name: "workers", run: ({ log }) => runWorkers(log) },
];

async function main(): Promise<void> {
  tuneHeapForModuleChurn();
  const started = new Date();
  const startNs = process.hrtime.bigint();
  if (globalThis.gc === undefined) log("bench: run with --expose-gc (npm run bench does) so GC happens between phases");
  const splitLibraries = process.env.BENCH_LINK_SPLIT === "1";
  const only = process.env.BENCH_ONLY?.split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  const unknown = only?.filter((name) => !SECTIONS.some((section) => section.name === name)) ?? [];
  if (unknown.length > 0)
    throw new Error(
      `BENCH_ONLY names no section: ${unknown.join(", ")} (known: ${SECTIONS.map((s) => s.name).join(", ")})`,
    );
  const sections = SECTIONS.filter((section) => only === undefined || only.includes(section.name));

  const rows: Row[] = [];
  for (const section of sections) {
    const sectionStart = process.hrtime.bigint();
    rows.push(...(await section.run({ splitLibraries, log })));
    log(`bench: ${section.name} took ${(Number(process.hrtime.bigint() - sectionStart) / 1e9).toFixed(1)} s`);
    // Each section starts from a collected heap; what one leaves behind is not the next one's GC work.
    globalThis.gc?.();
  }

  const durationS = Number(process.hrtime.bigint() - startNs) / 1e9;
  const numbered = table(rows)
    .split("\n")
    .map((line, i) => (i < 2 ? `    ${line}` : `${String(i - 1).padStart(2)}  ${line}`))
    .join("\n");
  process.stdout.write(
    `${numbered}\n\ntotal ${durationS.toFixed(1)} s, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}\n`,
  );

  const result = {
    date: started.toISOString(),
    durationS,
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    loadAverage: os.loadavg(),
    options: { splitLibraries, sections: sections.map((section) => section.name), v8Flags: MODULE_HOST_V8_FLAGS },
    rows,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  // Colons are not allowed in Windows file names; the rest is the ISO timestamp.
  const file = path.join(RESULTS_DIR, `${started.toISOString().replaceAll(":", "-")}.json`);
  writeFileSync(file, json);
  writeFileSync(path.join(RESULTS_DIR, "latest.json"), json);
  log(`bench: wrote ${path.relative(process.cwd(), file)} and latest.json`);
}

await main();
