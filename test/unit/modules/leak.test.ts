import { describe, expect, it } from "vitest";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";

// One long-lived daemon sees many insmod/rmmod cycles. Each cycle creates a
// WebAssembly.Instance, a host memory, bound host functions and an engine
// module; all of them must become garbage once the module is unloaded.
//
// Measured (2 shared cores), against the footprint after a 200-cycle warm-up
// and a full GC, with V8's default heap (this process is not tuned as dsod is):
//   - heapUsed is within -0.6..+0.6 MB on Node 20, 22, 24 and 26;
//   - Node 20.20: RSS +24..+31 MB, a plateau, not growth (20,000 to 50,000
//     cycles stay at +31..+32 MB): V8 11 grows the young generation to 32 MB
//     under churn and no GC of that version gives it back;
//   - Node 22.23: RSS +2.0..+2.4 MB, Node 24.22: +5..+9 MB, Node 26.12:
//     +6..+10 MB. Ordinary full GCs leave +45..+77 MB on 22 and 24: V8 12 and
//     13 grow the young generation to 32 and 64 MB and keep the pages they
//     free in a pool (trace-gc's "pooled: 20 MB"), which only a
//     memory-reducing GC returns; the last pass below is one (V8 11 takes the
//     option but does an ordinary full GC).
// So the margins are heapUsed +8 MB and RSS +40 MB against the warm-up, plus a
// second-half check: from cycle 5,000 to 10,000 RSS may grow by 10 MB at most.
// A leak of one instance per cycle costs far more: the Unit, its closures and
// bindings on the heap, and at least one touched 64 KiB page per instance.

const WARM_UP_CYCLES = 200;
const CYCLES = 10_000;
const MB = 1024 * 1024;

function collect(): NodeJS.MemoryUsage {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error("run with --expose-gc (vitest.config.ts passes it to the forks)");
  // Several passes: instances reachable only from finalizers need more than one.
  for (let i = 0; i < 4; i++) gc();
  // What V8 keeps only as a cache of free pages and young-generation room, it returns here.
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return process.memoryUsage();
}

function cycle(host: ModuleHost, times: number): void {
  for (let i = 0; i < times; i++) {
    host.loadModule("mod_test.c");
    host.unloadModule("mod_test.c");
  }
}

describe("ModuleHost memory", () => {
  it("runs with gc exposed", () => {
    expect(typeof globalThis.gc).toBe("function");
  });

  it(`returns to its warm-up footprint after ${CYCLES} load/unload cycles of mod_test`, { timeout: 60_000 }, () => {
    const host = new ModuleHost({ modulePath: LIBEXEC_DIR });
    cycle(host, WARM_UP_CYCLES);
    const warm = collect();

    cycle(host, CYCLES / 2);
    const half = collect();
    cycle(host, CYCLES / 2);
    expect(host.listModules()).toEqual([]);
    expect(host.describe()).toEqual([]);
    expect(host.lookup("cmd_TEST")).toBeUndefined();
    const end = collect();

    const growth = (from: NodeJS.MemoryUsage, key: "heapUsed" | "rss"): number => (end[key] - from[key]) / MB;
    expect(growth(warm, "heapUsed"), `heapUsed grew by ${growth(warm, "heapUsed").toFixed(1)} MB`).toBeLessThan(8);
    expect(growth(warm, "rss"), `rss grew by ${growth(warm, "rss").toFixed(1)} MB`).toBeLessThan(40);
    expect(growth(half, "rss"), `rss grew by ${growth(half, "rss").toFixed(1)} MB in the second half`).toBeLessThan(10);
  });
});
