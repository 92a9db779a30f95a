// A guest's control actions (host/controls/module-controls.ts) through a real
// ModuleHost and mod_ctrls's registry: the fixture mod_ctrls_test.c exports
// ctrl_echo and ctrl_boom and configures their ACLs with its own
// CtrlsTestControlsACLs directive.
import { afterEach, describe, expect, it } from "vitest";
import { HOST_SYMBOLS } from "../../../host/abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../../../host/abi/host-symbols.js";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl } from "../../../host/controls/acl.js";
import { ControlsRegistry, CTRLS_ACTIONS, ctrlsControlsActions } from "../../../host/controls/ctrls-actions.js";
import {
  applyModuleAcls,
  ControlRequest,
  describeControl,
  moduleControlsActions,
  newModuleControls,
  registerModuleControls,
} from "../../../host/controls/module-controls.js";
import { dispatchRequest } from "../../../host/controls/exchange.js";
import type { ControlsCaller } from "../../../host/controls/exchange.js";
import { ControlsStatus } from "../../../host/controls/wire.js";
import { isDsoError } from "../../../host/errors.js";
import { DirectiveCall } from "../../../host/modules/directive-call.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { FIXTURES_DIR } from "../../helpers/paths.js";

const MODULE = "mod_ctrls_test.c";
const root: ControlsCaller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
const nobody: ControlsCaller = { uid: 65534, gid: 65534, pid: 2, user: "nobody", group: "nogroup" };
const ids = { uidOf: (name: string) => ({ root: 0, nobody: 65534 })[name], gidOf: () => undefined };
const everyone = applyActionAcl(EMPTY_ACL_TABLE, parseActionAcl(["all", "allow", "user", "*"], CTRLS_ACTIONS, ids));

/** The fault supervisor's clock: a test moves it past a fault's backoff. */
let now = 0;
const hosts: ModuleHost[] = [];
afterEach(() => {
  for (const host of hosts.splice(0)) for (const name of host.listModules().reverse()) host.unloadModule(name);
});

/** A host with the fixture loaded and its ACL directive applied as `acl` (words after the name), plus a registry over it. */
function setup(...acls: string[][]) {
  const host = new ModuleHost({ modulePath: FIXTURES_DIR, clock: () => now });
  hosts.push(host);
  host.loadModule(MODULE);
  for (const words of acls) configure(host, words);
  const registry = new ControlsRegistry();
  registry.add(
    ctrlsControlsActions(
      registry,
      () => everyone,
      () => {},
    ),
  );
  registry.addSource(() => moduleControlsActions(host.engineModules()));
  const ask = (caller: ControlsCaller, ...argv: string[]) => dispatchRequest(registry.enabled(), argv, caller);
  return { host, ask };
}

/** Runs `CtrlsTestControlsACLs <words>` on the loaded module, as the config does. */
function configure(host: ModuleHost, words: readonly string[]): DirectiveCall {
  const handler = host
    .engineModules()
    .flatMap((m) => m.directives)
    .find((d) => d.name === "CtrlsTestControlsACLs");
  if (handler === undefined) throw new Error("the fixture has no ACL directive");
  const call = new DirectiveCall(["CtrlsTestControlsACLs", ...words]);
  handler.run(call, { file: "test.conf", line: 1, first: false });
  return call;
}

describe("a guest's control actions", () => {
  it("answer with the lines the guest adds and the status it returns", async () => {
    const { ask } = setup(["echo", "allow", "user", "root"]);
    expect(await ask(root, "echo", "first", "second word")).toEqual({
      status: ControlsStatus.OK,
      lines: ["first", "second word"],
    });
    expect(await ask(root, "echo")).toEqual({ status: -3, lines: ["missing parameters"] });
  });

  it("are denied to everyone until the module's ACL directive names them, root included", async () => {
    const { ask } = setup();
    expect(await ask(root, "echo", "x")).toEqual({ status: ControlsStatus.ACCESS_DENIED, lines: ["access denied"] });
  });

  it("follow the module's ACL: a later rule for the same action replaces the earlier", async () => {
    const { ask } = setup(["echo", "allow", "user", "root"], ["echo,boom", "deny", "user", "root"]);
    expect((await ask(root, "echo", "x")).lines).toEqual(["access denied"]);
    expect((await ask(nobody, "echo", "x")).lines).toEqual(["x"]);
  });

  it("refuse a directive naming an action the module has not, in proftpd's words", () => {
    const { host } = setup();
    expect(errorsOf(host, ["echo,lsmod", "allow", "user", "root"])).toEqual([": unknown action: 'lsmod'"]);
    expect(errorsOf(host, ["echo", "allow", "user"])).toEqual(["missing parameters"]);
    expect(errorsOf(host, ["echo", "Allow", "user", "root"])).toEqual(["second parameter must be 'allow' or 'deny'"]);
  });

  it("are listed by help with the guest's descriptions and by lsctrl with the module", async () => {
    const { ask } = setup();
    expect((await ask(nobody, "help")).lines).toEqual(
      expect.arrayContaining(["boom: trap", "echo: answer with the arguments, one per line"]),
    );
    expect((await ask(root, "lsctrl")).lines).toEqual(expect.arrayContaining([`boom (${MODULE})`, `echo (${MODULE})`]));
  });

  it("vanish with rmmod and come back enabled with insmod, even after rmctrl", async () => {
    const { host, ask } = setup();
    expect(await ask(root, "rmctrl", "echo")).toEqual({
      status: ControlsStatus.OK,
      lines: ["'echo' control disabled"],
    });
    expect((await ask(root, "echo", "x")).lines).toEqual(["unsupported action requested"]);
    host.unloadModule(MODULE);
    expect(await ask(root, "boom")).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
    expect(
      (await ask(nobody, "help")).lines.filter((line) => line.startsWith("echo") || line.startsWith("boom")),
    ).toEqual([]);
    expect((await ask(root, "lsctrl")).lines.filter((line) => line.includes(MODULE))).toEqual([]);
    host.loadModule(MODULE);
    configure(host, ["echo", "allow", "user", "root"]);
    expect(await ask(root, "echo", "back")).toEqual({ status: ControlsStatus.OK, lines: ["back"] });
  });

  it("contain a trap: the client gets why, and the module answers again once re-instantiated", async () => {
    const { ask } = setup(["all", "allow", "user", "root"]);
    expect(await ask(root, "boom")).toEqual({
      status: ControlsStatus.FAILED,
      lines: [`boom: ${MODULE}: fault in ctrl_boom: unreachable`],
    });
    expect((await ask(root, "echo", "x")).lines).toEqual([
      `echo: ${MODULE}: disabled after a fault (ctrl_echo not called, retried in 100 ms)`,
    ]);
    now += 100;
    // The fresh instance is configured again: its ACL directive and module_init's descriptions hold.
    expect(await ask(root, "echo", "x")).toEqual({ status: ControlsStatus.OK, lines: ["x"] });
    expect((await ask(nobody, "help")).lines).toContain("boom: trap");
  });
});

function errorsOf(host: ModuleHost, words: readonly string[]): string[] {
  const handler = host
    .engineModules()
    .flatMap((m) => m.directives)
    .find((d) => d.name === "CtrlsTestControlsACLs");
  const call = new DirectiveCall(["CtrlsTestControlsACLs", ...words]);
  try {
    handler?.run(call, { file: "test.conf", line: 1, first: false });
  } catch (error) {
    if (!isDsoError(error)) throw error;
  }
  return call.errors;
}

describe("module controls' state", () => {
  it("takes descriptions only for the actions the module exports", () => {
    const controls = newModuleControls(["ban", "permit"]);
    expect(describeControl(controls, "ban", "ban a host")).toBe(true);
    expect(describeControl(controls, "kick", "kick a client")).toBe(false);
    expect([...controls.descriptions]).toEqual([["ban", "ban a host"]]);
  });

  it("makes one action per ctrl_ export, described by the module or by default, and the same objects each time", () => {
    const module = {};
    const controls = newModuleControls(["ban", "permit"]);
    describeControl(controls, "ban", "ban a host");
    registerModuleControls(module, { module: "mod_ban.c", state: controls, call: () => 0 });
    const actions = moduleControlsActions([{}, module]);
    expect(actions.map((a) => [a.name, a.module, a.description])).toEqual([
      ["ban", "mod_ban.c", "ban a host"],
      ["permit", "mod_ban.c", "control of mod_ban.c"],
    ]);
    expect(moduleControlsActions([module])).toEqual(actions);
    expect(moduleControlsActions([module])[0]).toBe(actions[0]);
  });

  it("applies ACL directives with the module's actions as the known ones", () => {
    const controls = newModuleControls(["ban", "permit"]);
    applyModuleAcls(controls, ["ALL", "allow", "user", "nobody"], ids);
    expect([...controls.acls.keys()]).toEqual(["ban", "permit"]);
    expect(() => applyModuleAcls(controls, ["insmod", "allow", "user", "root"], ids)).toThrow(
      ": unknown action: 'insmod'",
    );
  });

  it("gives a control request its words and the client's name, and refuses FTP replies", () => {
    const request = new ControlRequest(["ban", "host", "10.0.0.1"], "root");
    // What host symbols see: an ActiveCommand, by shape (the controls folder does not name the ABI's type).
    const command: ActiveCommand = request;
    expect(command.addControlResponse).toBeDefined();
    expect([request.name, request.arg, request.argv, request.user]).toEqual([
      "ban",
      "host 10.0.0.1",
      ["ban", "host", "10.0.0.1"],
      "root",
    ]);
    request.addControlResponse("host 10.0.0.1 banned");
    expect(request.lines).toEqual(["host 10.0.0.1 banned"]);
    expect(() => request.addResponse()).toThrow("'pr_response_add' called in a control action");
  });
});

describe("the controls host symbols", () => {
  /** A module exporting ctrl_ban, whose strings are the numbers' entries in `text`, with `active` as the command. */
  function bound(symbol: string, active: ActiveCommand | undefined) {
    const text = ["", "ban", "kick", "ban a host", "banned"];
    const importer: ImporterState = {
      name: "mod_ban.c",
      features: [],
      help: [],
      strings: { read: (ptr) => text[ptr] ?? "", create: () => 0, release: () => {} },
      controls: newModuleControls(["ban"]),
    };
    const services: HostServices = { log: () => {}, trace: () => {}, activeCommand: () => active, accounts: ids };
    const definition = HOST_SYMBOLS.get(symbol);
    if (definition === undefined) throw new Error(`no host symbol ${symbol}`);
    return { call: definition.bind(importer, services) as (...args: number[]) => unknown, importer };
  }

  it("pr_ctrls_register describes an exported action and refuses another", () => {
    const { call, importer } = bound("pr_ctrls_register", undefined);
    expect(call(1, 3)).toBe(0);
    expect(call(2, 3)).toBe(-1);
    expect([...(importer.controls?.descriptions ?? [])]).toEqual([["ban", "ban a host"]]);
  });

  it("pr_ctrls_set_module_acls applies the directive, or adds proftpd's reason to it and returns -1", () => {
    const good = new DirectiveCall(["BanControlsACLs", "ban", "allow", "user", "nobody"]);
    const set = bound("pr_ctrls_set_module_acls", good);
    expect(set.call()).toBe(0);
    expect(set.importer.controls?.acls.get("ban")?.user).toEqual({ allow: true, everyone: false, ids: [65534] });
    const bad = new DirectiveCall(["BanControlsACLs", "ban,permit", "allow", "user", "nobody"]);
    expect(bound("pr_ctrls_set_module_acls", bad).call()).toBe(-1);
    expect(bad.errors).toEqual([": unknown action: 'permit'"]);
  });

  it("pr_ctrls_add_response adds a line to a control's answer and traps anywhere else", () => {
    const request = new ControlRequest(["ban"], "root");
    bound("pr_ctrls_add_response", request).call(4);
    expect(request.lines).toEqual(["banned"]);
    expect(() => bound("pr_ctrls_add_response", new DirectiveCall(["X"])).call(4)).toThrow(
      "'pr_ctrls_add_response' called outside a control action",
    );
  });
});
