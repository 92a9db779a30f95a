/**
 * A module's faults counted for the whole daemon (host/cluster/fault-sync.ts):
 * the primary's count over every worker's reports, the unload it asks for and
 * the lines it logs once, and the worker's side of the channel.
 */
import { describe, expect, it } from "vitest";
import {
  FaultCounts,
  FaultSync,
  asChangePosition,
  asModuleFault,
  reportFaults,
} from "../../../host/cluster/fault-sync.js";
import type { ChangePosition } from "../../../host/cluster/fault-sync.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import type { ModuleFault } from "../../../host/modules/fault-supervisor.js";
import type { LoadedUnitInfo, ModuleHost } from "../../../host/modules/module-host.js";
import type { FaultPolicy } from "../../../host/modules/policy.js";

const RELOAD_3_IN_60: FaultPolicy = { action: "reload", maxFaults: 3, windowMs: 60_000 };
const UNLOAD: FaultPolicy = { action: "unload", maxFaults: 5, windowMs: 60_000 };

function fault(at: number, policy: FaultPolicy = RELOAD_3_IN_60, unit = "mod_x.c"): ModuleFault {
  return { unit, kind: "session", at, policy };
}

describe("FaultCounts", () => {
  it("counts the faults of every worker together: the third within the window is a crash loop", () => {
    const counts = new FaultCounts();
    // Worker 1, worker 2, worker 1: no worker saw three.
    expect(counts.record(fault(1_000))).toBeUndefined();
    expect(counts.record(fault(2_000))).toBeUndefined();
    expect(counts.record(fault(3_000))).toEqual({
      kind: "fault-unloaded",
      unit: "mod_x.c",
      crashLoop: true,
      faults: 3,
      windowMs: 60_000,
    });
  });

  it("forgets faults older than the window, as the fault supervisor does", () => {
    const counts = new FaultCounts();
    counts.record(fault(0));
    counts.record(fault(1_000));
    // 60 s after the first: it is out of the window, two remain.
    expect(counts.record(fault(60_000))).toBeUndefined();
    expect(counts.record(fault(60_500))?.faults).toBe(3);
  });

  it("counts each module on its own, and a module taken out starts again from none", () => {
    const counts = new FaultCounts();
    counts.record(fault(1, RELOAD_3_IN_60, "mod_a.c"));
    counts.record(fault(2, RELOAD_3_IN_60, "mod_a.c"));
    expect(counts.record(fault(3, RELOAD_3_IN_60, "mod_b.c"))).toBeUndefined();
    expect(counts.record(fault(4, RELOAD_3_IN_60, "mod_a.c"))?.unit).toBe("mod_a.c");
    expect(counts.record(fault(5, RELOAD_3_IN_60, "mod_a.c"))).toBeUndefined();
    expect(counts.record(fault(6, RELOAD_3_IN_60, "mod_a.c"))).toBeUndefined();
  });

  it("unloads on the first fault with ModuleFaultPolicy unload, not as a crash loop", () => {
    expect(new FaultCounts().record(fault(7, UNLOAD))).toEqual({
      kind: "fault-unloaded",
      unit: "mod_x.c",
      crashLoop: false,
      faults: 1,
      windowMs: 60_000,
    });
  });

  it("starts from none after a new configuration generation", () => {
    const counts = new FaultCounts();
    counts.record(fault(1));
    counts.record(fault(2));
    counts.clear();
    expect(counts.record(fault(3))).toBeUndefined();
  });
});

describe("asModuleFault", () => {
  it("takes a worker's report and nothing else", () => {
    const report = { ...fault(5, UNLOAD), extra: 1 };
    expect(asModuleFault(JSON.parse(JSON.stringify(report)))).toEqual(fault(5, UNLOAD));
    for (const body of [null, { ...fault(5), kind: "other" }, { ...fault(5), at: -1 }, { ...fault(5), policy: {} }]) {
      expect(() => asModuleFault(body)).toThrow("malformed fault on the session worker channel");
    }
  });
});

describe("reportFaults (worker side)", () => {
  it("calls `fault` on the synchronous channel with where the worker stood; a primary that is gone is no one to count for", () => {
    const calls: [string, unknown][] = [];
    const at: ChangePosition = { generation: 2, applied: 3 };
    reportFaults({ call: (type, body) => calls.push([type, body]) }, () => at)(fault(9));
    expect(calls).toEqual([["fault", { ...fault(9), position: at }]]);
    expect(asModuleFault(calls[0]?.[1])).toEqual(fault(9));
    expect(asChangePosition(calls[0]?.[1])).toEqual(at);
    expect(() => asChangePosition(fault(9))).toThrow("malformed fault position on the session worker channel");
    const gone = reportFaults(
      {
        call: () => {
          throw new DsoError(ErrorCodes.WORKER_GONE, "the primary is gone");
        },
      },
      () => at,
    );
    expect(() => gone(fault(9))).not.toThrow();
    const broken = reportFaults(
      {
        call: () => {
          throw new Error("malformed reply");
        },
      },
      () => at,
    );
    expect(() => broken(fault(9))).toThrow("malformed reply");
  });
});

describe("FaultSync (primary side)", () => {
  function sync(
    unload: (name: string) => Promise<void>,
    units: readonly Partial<LoadedUnitInfo>[] = [],
    disable: (name: string) => Promise<void> = () => Promise.resolve(),
  ) {
    const lines: [string, string][] = [];
    const asked: [string, unknown][] = [];
    const disabled: string[] = [];
    const position = { generation: 1, applied: 0 };
    const faults = new FaultSync({
      position: () => ({ ...position }),
      reference: () => ({ describe: () => units }) as unknown as ModuleHost,
      unload: (name, options) => {
        asked.push([name, options]);
        return unload(name);
      },
      disable: (name) => {
        disabled.push(name);
        return disable(name);
      },
      log: (priority, message) => lines.push([priority, message]),
      debugLevel: 0,
    });
    return { faults, lines, asked, disabled, position };
  }

  it("unloads the module everywhere when the count says so, then logs one process's line once", async () => {
    const { faults, lines, asked } = sync(() => Promise.resolve());
    await faults.record(fault(1));
    await faults.record(fault(2));
    expect(asked).toEqual([]);
    const handler = faults.handlers().fault;
    expect(handler?.({ ...fault(3), position: { generation: 1, applied: 0 } })).toBeNull();
    await faults.record(fault(4, UNLOAD));
    expect(asked).toEqual([
      ["mod_x.c", { fault: true }],
      ["mod_x.c", { fault: true }],
    ]);
    expect(lines).toEqual([
      ["error", "mod_x.c: unloaded after 3 faults within 60 s"],
      ["error", "mod_x.c: unloaded after a fault (ModuleFaultPolicy unload)"],
    ]);
  });

  it("logs nothing for a module already out; disables everywhere one it cannot unload, and logs its dependents", async () => {
    const gone = sync(() => Promise.reject(new DsoError(ErrorCodes.NOT_LOADED, "module 'mod_x.c' is not loaded")));
    await gone.faults.record(fault(1, UNLOAD));
    expect(gone.lines).toEqual([]);
    expect(gone.disabled).toEqual([]);
    const hasDependents = (): Promise<void> =>
      Promise.reject(new DsoError(ErrorCodes.HAS_DEPENDENTS, "module 'mod_x.c' is needed by mod_y.c"));
    const needed = sync(hasDependents, [{ name: "mod_x.c", dependents: ["mod_y.c"] }]);
    await needed.faults.record(fault(1, UNLOAD));
    expect(needed.disabled).toEqual(["mod_x.c"]);
    expect(needed.lines).toEqual([["error", "mod_x.c: disabled: other modules are bound to it (mod_y.c)"]]);
    const stuck = sync(hasDependents, [], () => Promise.reject(new Error("the reference host is gone")));
    await stuck.faults.record(fault(1, UNLOAD));
    expect(stuck.lines).toEqual([["error", "mod_x.c: not disabled after its faults: the reference host is gone"]]);
    const refused = sync(() => Promise.reject(new Error("worker 2 did not answer")));
    await refused.faults.record(fault(1, UNLOAD));
    expect(refused.lines).toEqual([["error", "mod_x.c: not unloaded after its faults: worker 2 did not answer"]]);
  });

  it("counts afresh after a SIGHUP every worker committed, and for a module loaded or unloaded since", async () => {
    const { faults, asked } = sync(() => Promise.resolve());
    await faults.record(fault(1));
    await faults.record(fault(2));
    faults.reloaded();
    await faults.record(fault(3));
    await faults.record(fault(4));
    faults.changed("mod_other.c");
    faults.changed("mod_x.c");
    await faults.record(fault(5));
    expect(asked).toEqual([]);
    await faults.record(fault(6));
    await faults.record(fault(7));
    expect(asked).toEqual([["mod_x.c", { fault: true }]]);
  });
  it("counts a worker's fault only if no change of the module, and no SIGHUP, came since it stood there", async () => {
    const { faults, asked, position } = sync(() => Promise.resolve());
    const at = (generation: number, applied: number): ChangePosition => ({ generation, applied });
    // rmmod mod_x.c, then insmod mod_x.c: the journal holds 2 changes, the last of mod_x.c.
    position.applied = 1;
    faults.changed("mod_x.c");
    position.applied = 2;
    faults.changed("mod_x.c");
    // Reported by a worker that had applied neither, or only the rmmod: the old copy's faults.
    await faults.record(fault(1, UNLOAD), at(1, 0));
    await faults.record(fault(2, UNLOAD), at(1, 1));
    expect(asked).toEqual([]);
    // Another module's fault from before counts: it did not change.
    await faults.record(fault(3, UNLOAD, "mod_y.c"), at(1, 0));
    expect(asked).toEqual([["mod_y.c", { fault: true }]]);
    // The new copy's fault counts.
    await faults.record(fault(4, UNLOAD), at(1, 2));
    expect(asked.map(([name]) => name)).toEqual(["mod_y.c", "mod_x.c"]);
    // A SIGHUP: faults from the old generation's copies no longer count, the new one's do.
    position.generation = 2;
    position.applied = 0;
    faults.reloaded();
    await faults.record(fault(5, UNLOAD, "mod_z.c"), at(1, 2));
    expect(asked).toHaveLength(2);
    await faults.record(fault(6, UNLOAD, "mod_z.c"), at(2, 0));
    expect(asked.map(([name]) => name)).toEqual(["mod_y.c", "mod_x.c", "mod_z.c"]);
  });
});
