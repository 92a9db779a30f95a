/**
 * The command host symbols see (FaultSupervisor.activeCommand) through nested
 * guest calls, faults included: each call's own while it runs, its caller's
 * again once it returns or throws.
 */
import { describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { FaultSupervisor } from "../../../host/modules/fault-supervisor.js";
import type { LoaderEvent } from "../../../host/modules/loader-events.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import { LINKED } from "../../../host/modules/unit.js";
import type { LoadedUnit } from "../../../host/modules/unit.js";

function command(name: string): ActiveCommand {
  return {
    name,
    arg: "",
    argv: [name],
    user: undefined,
    cwd: "/",
    path: undefined,
    transfer: undefined,
    addResponse: () => {},
    addError: () => {},
  };
}

/** A unit whose "exports" are JS functions: the supervisor calls them as it calls guest code. */
function unitWith(exports: Record<string, () => number>): LoadedUnit {
  const unit = {
    kind: "module",
    name: "mod_fake.c",
    state: LINKED,
    instance: { exports },
    policy: { ...DEFAULT_POLICY, fault: { ...DEFAULT_POLICY.fault, action: "reload" } },
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
