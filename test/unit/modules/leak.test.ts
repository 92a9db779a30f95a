import { describe, expect, it } from "vitest";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";

// One long-lived daemon sees many insmod/rmmod cycles. Each cycle creates a
// WebAssembly.Instance, a host memory, bound host functions and an engine
// module; all of them must become garbage once the module is unloaded.
//
// Measured on the development machine (Node 20.20, 2 cores), after a
// 200-cycle warm-up: 10,000 further cycles take about 3 s and leave heapUsed
// within about +1 MB and RSS within about +10 MB of the warm-up value. The margins below
// (heapUsed +8 MB, RSS +40 MB) are far under what a leak of one instance per
// cycle would cost: each instance owns at least one 64 KiB memory page, so
// 10,000 leaked instances would hold over 600 MB.

const WARM_UP_CYCLES = 200;
const CYCLES = 10_000;
const MB = 1024 * 1024;

function collect(): void {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error("run with --expose-gc (vitest.config.ts passes it to the forks)");
  // Several passes: weak references and finalizers need more than one.
  for (let i = 0; i < 4; i++) gc();
}

function cycle(host: ModuleHost, times: number): void {
  for (let i = 0; i < times; i++) {
    host.loadModule("mod_test.c");
    host.unloadModule("mod_test.c");
  }
}

describe("ModuleHost memory", () => {
  it("exposes gc to the tests", () => {
    expect(typeof globalThis.gc).toBe("function");
  });

  it(`returns to its warm-up footprint after ${CYCLES} load/unload cycles of mod_test`, { timeout: 60_000 }, () => {
    const host = new ModuleHost({ modulePath: LIBEXEC_DIR });
    cycle(host, WARM_UP_CYCLES);
    collect();
    const before = process.memoryUsage();

    cycle(host, CYCLES);
    expect(host.listModules()).toEqual([]);
    expect(host.describe()).toEqual([]);
    collect();
    const after = process.memoryUsage();

    const heapGrowth = (after.heapUsed - before.heapUsed) / MB;console.log("MEASURE", before.heapUsed/MB, after.heapUsed/MB, before.rss/MB, after.rss/MB);
    const rssGrowth = (after.rss - before.rss) / MB;
    expect(heapGrowth, `heapUsed grew by ${heapGrowth.toFixed(1)} MB`).toBeLessThan(8);
    expect(rssGrowth, `rss grew by ${rssGrowth.toFixed(1)} MB`).toBeLessThan(40);
  });
});
