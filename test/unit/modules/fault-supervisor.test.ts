/**
 * The command host symbols see (FaultSupervisor.activeCommand) through nested
 * guest calls, faults included: each call's own while it runs, its caller's
 * again once it returns or throws. The fault count (countFault), and a
 * supervisor that escalates a module's faults (session workers): it reports
 * each one and never takes the module out on its own.
 */
import { describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { FaultSupervisor, countFault } from "../../../host/modules/fault-supervisor.js";
import type { ModuleFault } from "../../../host/modules/fault-supervisor.js";
import type { LoaderEvent } from "../../../host/modules/loader-events.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import type { FaultPolicy } from "../../../host/modules/policy.js";
import { LINKED } from "../../../host/modules/unit.js";
import type { LoadedUnit } from "../../../host/modules/unit.js";
import { silentCommand } from "../../helpers/session.js";

function command(name: string): ActiveCommand {
  return silentCommand([name], "/");
}

/** A unit whose "exports" are JS functions: the supervisor calls them as it calls guest code. */
function unitWith(
  exports: Record<string, () => number>,
  fault: FaultPolicy = { ...DEFAULT_POLICY.fault, action: "reload" },
  kind: LoadedUnit["kind"] = "module",
): LoadedUnit {
  const unit = {
    kind,
    name: "mod_fake.c",
    state: LINKED,
    instance: { exports },
    policy: { ...DEFAULT_POLICY, fault },
    faults: [],
    dependents: new Set(),
  };
  return unit as unknown as LoadedUnit;
}

describe("FaultSupervisor: the active command", () => {
  it("is each call's own while it runs and its caller's once it returns, faulted or not", () => {
    const events: LoaderEvent[] = [];
    const report = (event: LoaderEvent): number => events.push(event);
    const supervisor = new FaultSupervisor({
      now: () => 0,
      reinstantiate: () => {},
      templateRan: () => {},
      detach: () => {},
      report,
    });
    const [outer, inner, failing] = [command("OUTER"), command("INNER"), command("FAILING")];
    const seen: Array<string | undefined> = [];
    const look = (): number => {
      seen.push(supervisor.activeCommand()?.name);
      return 1;
    };
    const innerUnit = unitWith({ cmd_INNER: look, sess_init: look });
    const failingUnit = unitWith({
      cmd_FAILING: () => {
        look();
        throw new WebAssembly.RuntimeError("unreachable");
      },
    });
    const outerUnit = unitWith({
      cmd_OUTER: () => {
        look();
        supervisor.invoke(innerUnit, "cmd_INNER", inner);
        look();
        const fails = (): number => supervisor.invoke(failingUnit, "cmd_FAILING", failing);
        expect(fails).toThrow("mod_fake.c: fault in cmd_FAILING: unreachable");
        look();
        // A hook runs with no command of its own: its caller's stays visible.
        supervisor.invoke(innerUnit, "sess_init", undefined);
        return look();
      },
    });
    expect(supervisor.activeCommand()).toBeUndefined();
    expect(supervisor.invoke(outerUnit, "cmd_OUTER", outer)).toBe(1);
    expect(seen).toEqual(["OUTER", "INNER", "OUTER", "FAILING", "OUTER", "OUTER", "OUTER"]);
    expect(supervisor.activeCommand()).toBeUndefined();
    expect(events).toEqual([{ kind: "fault", unit: "mod_fake.c", entryPoint: "cmd_FAILING", reason: "unreachable" }]);
  });
});

describe("countFault", () => {
  const policy: FaultPolicy = { action: "reload", maxFaults: 3, windowMs: 60_000 };

  it("keeps the faults within the window, this one last, and says crash loop at the limit", () => {
    expect(countFault([], 1_000, policy)).toEqual({ faults: [1_000], crashLoop: false, unload: false });
    expect(countFault([0, 1_000], 60_000, policy)).toEqual({
      faults: [1_000, 60_000],
      crashLoop: false,
      unload: false,
    });
    expect(countFault([1_000, 2_000], 3_000, policy)).toEqual({
      faults: [1_000, 2_000, 3_000],
      crashLoop: true,
      unload: true,
    });
  });

  it("unloads at the first fault with ModuleFaultPolicy unload", () => {
    expect(countFault([], 5, { ...policy, action: "unload" })).toEqual({ faults: [5], crashLoop: false, unload: true });
  });
});

describe("FaultSupervisor: escalated faults (session workers)", () => {
  const trap = (): number => {
    throw new WebAssembly.RuntimeError("unreachable");
  };

  function supervised(now: () => number) {
    const events: LoaderEvent[] = [];
    const detached: string[] = [];
    const supervisor = new FaultSupervisor({
      now,
      reinstantiate: () => {},
      templateRan: () => {},
      detach: (unit) => detached.push(unit.name),
      report: (event) => events.push(event),
    });
    return { supervisor, events, detached };
  }

  it("in one process, ModuleFaultPolicy unload takes the module out at its first fault", () => {
    const { supervisor, events, detached } = supervised(() => 10);
    const unit = unitWith({ cmd_X: trap }, { action: "unload", maxFaults: 5, windowMs: 60_000 });
    expect(() => supervisor.invoke(unit, "cmd_X", undefined)).toThrow("mod_fake.c: fault in cmd_X: unreachable");
    expect(events.map((event) => event.kind)).toEqual(["fault", "fault-unloaded"]);
    expect(detached).toEqual(["mod_fake.c"]);
  });

  it("reports each fault of a module and only disables it: the primary decides the unload", () => {
    const { supervisor, events, detached } = supervised(() => 10);
    const reported: ModuleFault[] = [];
    supervisor.escalateTo((fault) => reported.push(fault));
    const policy: FaultPolicy = { action: "unload", maxFaults: 5, windowMs: 60_000 };
    const unit = unitWith({ cmd_X: trap }, policy);
    expect(() => supervisor.invoke(unit, "cmd_X", undefined)).toThrow("mod_fake.c: fault in cmd_X: unreachable");
    expect(events.map((event) => event.kind)).toEqual(["fault"]);
    expect(detached).toEqual([]);
    expect(reported).toEqual([{ unit: "mod_fake.c", kind: "template", at: 10, policy }]);
    // Until the primary's unload arrives, a call fails as after a fault.
    expect(() => supervisor.invoke(unit, "cmd_X", undefined)).toThrow(
      "mod_fake.c: disabled after a fault (cmd_X not called)",
    );
    expect(reported).toHaveLength(1);
  });

  it("keeps the backoff of a reloading module, and reports its faults too", () => {
    let now = 0;
    const { supervisor } = supervised(() => now);
    const reported: ModuleFault[] = [];
    supervisor.escalateTo((fault) => reported.push(fault));
    let calls = 0;
    const unit = unitWith({ cmd_X: () => (++calls === 1 ? trap() : calls) });
    expect(() => supervisor.invoke(unit, "cmd_X", undefined)).toThrow("fault in cmd_X");
    expect(() => supervisor.invoke(unit, "cmd_X", undefined)).toThrow("retried in 100 ms");
    now = 100;
    expect(supervisor.invoke(unit, "cmd_X", undefined)).toBe(2);
    expect(reported.map((fault) => fault.at)).toEqual([0]);
  });

  it("reports no fault of a library: only modules are unloaded", () => {
    const { supervisor } = supervised(() => 0);
    const reported: ModuleFault[] = [];
    supervisor.escalateTo((fault) => reported.push(fault));
    const library = unitWith({ fn: trap }, DEFAULT_POLICY.fault, "library");
    expect(() => supervisor.invoke(library, "fn", undefined)).toThrow("fault in fn");
    expect(reported).toEqual([]);
  });
});
