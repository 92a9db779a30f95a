import { describe, expect, it } from "vitest";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl } from "../../../host/controls/acl.js";
import type { AclTable } from "../../../host/controls/acl.js";
import {
  ControlsRegistry,
  CTRLS_ACTIONS,
  ctrlsControlsActions,
  helpLines,
  lsctrlLines,
} from "../../../host/controls/ctrls-actions.js";
import { dispatchRequest } from "../../../host/controls/exchange.js";
import type { ControlsAction, ControlsCaller } from "../../../host/controls/exchange.js";
import { ControlsStatus } from "../../../host/controls/wire.js";

const root: ControlsCaller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
const nobody: ControlsCaller = { uid: 65534, gid: 65534, pid: 2, user: "nobody", group: "nogroup" };
const ids = { uidOf: (name: string) => (name === "root" ? 0 : undefined), gidOf: () => undefined };

function dso(name: string): ControlsAction {
  return {
    name,
    module: "mod_dso.c",
    description: `${name} things`,
    acl: () => true,
    handler: () => ({ status: 0, lines: [name] }),
  };
}

function setup(
  acls: AclTable = applyActionAcl(
    EMPTY_ACL_TABLE,
    parseActionAcl(["all", "allow", "user", "root"], CTRLS_ACTIONS, ids),
  ),
) {
  const registry = new ControlsRegistry();
  let stopped = 0;
  registry.add([dso("lsmod"), dso("insmod")]);
  registry.add(
    ctrlsControlsActions(
      registry,
      () => acls,
      () => stopped++,
    ),
  );
  const ask = (caller: ControlsCaller, ...argv: string[]) => dispatchRequest(registry.enabled(), argv, caller);
  return { ask, stopped: () => stopped };
}

const ok = (...lines: string[]) => ({ status: ControlsStatus.OK, lines });
const failed = (...lines: string[]) => ({ status: ControlsStatus.FAILED, lines });

describe("mod_ctrls's own controls", () => {
  it("help has no ACL and lists every control, disabled ones too; lsctrl lists the enabled ones", async () => {
    const { ask } = setup();
    const help = ok(
      "help: describe all registered controls",
      "insctrl: enable a disabled control",
      "insmod: insmod things",
      "lsctrl: list all registered controls",
      "lsmod: lsmod things",
      "rmctrl: disable a registered control",
    );
    expect(await ask(nobody, "help")).toEqual(help);
    expect(await ask(nobody, "lsctrl")).toEqual({ status: ControlsStatus.ACCESS_DENIED, lines: ["access denied"] });
    expect(await ask(root, "rmctrl", "lsmod")).toEqual(ok("'lsmod' control disabled"));
    expect(await ask(nobody, "help")).toEqual(help);
    expect(await ask(root, "lsctrl")).toEqual(
      ok(
        "help (mod_ctrls.c)",
        "insctrl (mod_ctrls.c)",
        "insmod (mod_dso.c)",
        "lsctrl (mod_ctrls.c)",
        "rmctrl (mod_ctrls.c)",
      ),
    );
    expect(await ask(root, "lsmod")).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
    expect(await ask(root, "insctrl", "lsmod")).toEqual(ok("'lsmod' control enabled"));
    expect(await ask(root, "lsmod")).toEqual(ok("lsmod"));
  });

  it("answers proftpd's refusals", async () => {
    const { ask } = setup();
    expect(await ask(root, "help", "x")).toEqual(failed("wrong number of parameters"));
    expect(await ask(root, "lsctrl", "x")).toEqual(failed("wrong number of parameters"));
    expect(await ask(root, "insctrl")).toEqual(failed("wrong number of parameters"));
    expect(await ask(root, "rmctrl", "a", "b", "c")).toEqual(failed("wrong number of parameters"));
    for (const name of ["insctrl", "lsctrl", "rmctrl"])
      expect(await ask(root, "rmctrl", name)).toEqual(failed(`'${name}' control cannot be removed`));
    expect(await ask(root, "rmctrl", "nope")).toEqual(failed("no such control: 'nope'"));
    expect(await ask(root, "rmctrl", "lsmod", "mod_ctrls.c")).toEqual(failed("no such control: 'lsmod'"));
    expect(await ask(root, "rmctrl", "lsmod", "mod_dso.c")).toEqual(ok("'lsmod' control disabled"));
    expect(await ask(root, "insctrl", "all")).toEqual(ok("'all' control enabled"));
  });

  it("rmctrl all disables every control and asks to stop listening; one module's all does not", async () => {
    const { ask, stopped } = setup();
    expect(await ask(root, "rmctrl", "all", "mod_dso.c")).toEqual(ok("'all' control disabled"));
    expect(stopped()).toBe(0);
    expect(await ask(root, "lsmod")).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
    expect(await ask(root, "rmctrl", "all")).toEqual(
      ok("all controls disabled", "restart the daemon to re-enable controls"),
    );
    expect(stopped()).toBe(1);
    expect(await ask(root, "help")).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
  });

  it("denies lsctrl, insctrl and rmctrl to everyone without ControlsACLs", async () => {
    const { ask } = setup(EMPTY_ACL_TABLE);
    for (const action of ["lsctrl", "insctrl", "rmctrl"]) {
      expect(await ask(root, action)).toEqual({ status: ControlsStatus.ACCESS_DENIED, lines: ["access denied"] });
    }
    expect((await ask(root, "help")).status).toBe(ControlsStatus.OK);
  });

  it("sorts help and lsctrl as proftpd's respcmp, and names a control without a module (core)", () => {
    const bare: ControlsAction = {
      name: "zap",
      description: "zap things",
      acl: () => true,
      handler: () => ({ status: 0, lines: [] }),
    };
    expect(helpLines([bare, dso("add")])).toEqual(["add: add things", "zap: zap things"]);
    expect(lsctrlLines([bare, dso("add")])).toEqual(["add (mod_dso.c)", "zap (core)"]);
  });
});
