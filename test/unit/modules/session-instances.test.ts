/**
 * Per-session instances (issue 14) through the library API: a ModuleHost,
 * sessions from acquireModules, and the engine modules' handlers called with
 * the session's `instances`, as the FTP server calls them. The guests are
 * inline WAT that report their state through pr_log_debug's level argument,
 * so every figure below is a global or a memory word read back exactly.
 * Backoffs run on an injected clock.
 */
import diagnostics from "node:diagnostics_channel";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { moduleControlsActions } from "../../../host/controls/module-controls.js";
import { ErrorCodes } from "../../../host/errors.js";
import { dsoFailure } from "../../helpers/failure.js";
import { LOADER_CHANNEL } from "../../../host/modules/loader-events.js";
import type { LoaderEvent, LoaderMessage } from "../../../host/modules/loader-events.js";
import { HandlerResults } from "../../../host/modules/module-api.js";
import type { EngineModule, SessionState } from "../../../host/modules/module-api.js";
import { ModuleHost, SessionMemoryAccount } from "../../../host/modules/module-host.js";
import type { ModuleHostOptions, ModuleSet } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";

const PAGE = 65_536;
const API = "(i32.const 0x20)";
/** pr_log_debug, and the memory the host reads its strings in (from its pool). */
const LOG = `(import "env" "pr_log_debug" (func $log (param i32 i32))) (import "env" "memory" (memory 1 4))`;

/** An AssemblyScript string literal (ASCII) at `at` (its header in the 8 bytes before), as a data segment. */
function literal(at: number, text: string): string {
  const hex = (n: number): string => `\\${n.toString(16).padStart(2, "0")}`;
  const u32 = (n: number): string => [0, 8, 16, 24].map((shift) => hex((n >>> shift) & 0xff)).join("");
  const utf16 = Array.from({ length: text.length }, (_, i) => hex(text.charCodeAt(i)) + hex(0)).join("");
  return `(data (i32.const ${at - 8}) "${u32(2)}${u32(text.length * 2)}${utf16}")`;
}

/** `(global.set $n (global.get $n) + by)` and the same on the memory word at 2048: the two states a fork copies. */
function add(by: number): string {
  return `(global.set $n (i32.add (global.get $n) (i32.const ${by})))
    (i32.store (i32.const 2048) (i32.add (i32.load (i32.const 2048)) (i32.const ${by})))`;
}

/**
 * A module counting commands in a global and in a memory word: module_init
 * adds 10 (and registers a FEAT line and a HELP entry), its directive 1000,
 * sess_init 5, ctrl_bump 100, COUNT 1 (and logs both, `g` and `m`); TRAP
 * scribbles on both and traps, as ctrl_crash does; GROW grows the memory a page.
 */
function countModule(name: string, extra = ""): string {
  return `(module
    (import "env" "pr_feat_add" (func $feat (param i32)))
    (import "env" "pr_help_add" (func $help (param i32 i32)))
    ${LOG}
    ${literal(64, "g")} ${literal(96, "m")} ${literal(128, "i")} ${literal(160, "XCOUNT")} ${literal(192, "COUNT")}
    (global $n (mut i32) (i32.const 0))
    (global (export "${name}_module") i32 ${API})
    ${extra}
    (func (export "module_init") (result i32)
      (call $log (i32.const 0) (i32.const 128))
      (call $feat (i32.const 160))
      (call $help (i32.const 192) (i32.const 192))
      ${add(10)} (i32.const 0))
    (func (export "conf_CountFrom") (result i32) ${add(1000)} (i32.const 1))
    (func (export "sess_init") (result i32) ${add(5)} (i32.const 0))
    (func (export "ctrl_bump") (result i32) ${add(100)} (i32.const 0))
    (func (export "ctrl_crash") (result i32) unreachable)
    (func (export "cmd_GROW") (result i32) (drop (memory.grow (i32.const 1))) (i32.const 1))
    (func (export "cmd_COUNT") (result i32)
      ${add(1)}
      (call $log (global.get $n) (i32.const 64))
      (call $log (i32.load (i32.const 2048)) (i32.const 96))
      (i32.const 1))
    (func (export "cmd_TRAP") (result i32)
      (global.set $n (i32.const 999)) (i32.store (i32.const 2048) (i32.const 999)) unreachable))`;
}

let dir: string;

beforeAll(async () => {
  dir = writeModuleDir({
    "mod_count.wasm": await wat(countModule("count")),
    // A mutable funcref global, which JavaScript cannot copy: sessions initialize their instance again.
    // (A v128 one would do too, but reader.ts refuses v128.const in a global's initializer.)
    "mod_vector.wasm": await wat(countModule("vector", `(global $f (mut funcref) (ref.null func))`)),
    // A library keeping a value in the memory it defines: 5 after _initialize; lib_add adds to it and returns it.
    "libstate.wasm": await wat(`(module
      (memory 1 1)
      (func (export "_initialize") (i32.store (i32.const 16) (i32.const 5)))
      (func (export "lib_add") (param i32) (result i32)
        (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (local.get 0))) (i32.load (i32.const 16))))`),
    // Bound to libstate: USE adds 1 there and logs it (`l`); ctrl_libadd adds 100.
    "mod_user.wasm": await wat(`(module
      (import "libstate" "lib_add" (func $add (param i32) (result i32)))
      ${LOG}
      ${literal(64, "l")}
      (global (export "user_module") i32 ${API})
      (func (export "cmd_USE") (result i32) (call $log (call $add (i32.const 1)) (i32.const 64)) (i32.const 1))
      (func (export "ctrl_libadd") (result i32) (drop (call $add (i32.const 100))) (i32.const 0)))`),
    // A start section that adds 1000 to libstate: run once, in the daemon's instance. STARTED logs libstate (`l`).
    "mod_started.wasm": await wat(`(module
      (import "libstate" "lib_add" (func $add (param i32) (result i32)))
      ${LOG}
      ${literal(64, "l")}
      (global (export "started_module") i32 ${API})
      (func $start (drop (call $add (i32.const 1000))))
      (start $start)
      (func (export "cmd_STARTED") (result i32) (call $log (call $add (i32.const 0)) (i32.const 64)) (i32.const 1)))`),
    // A module others bind to (prov_inc), with handlers of its own: PGET logs its value (`p`), PTRAP traps.
    "mod_prov.wasm": await wat(`(module
      ${LOG}
      ${literal(64, "p")}
      (global $p (mut i32) (i32.const 0))
      (global (export "prov_module") i32 ${API})
      (func (export "prov_inc") (result i32) (global.set $p (i32.add (global.get $p) (i32.const 1))) (global.get $p))
      (func (export "cmd_PGET") (result i32) (call $log (global.get $p) (i32.const 64)) (i32.const 1))
      (func (export "cmd_PTRAP") (result i32) (global.set $p (i32.const 50)) unreachable))`),
    // Bound to mod_prov: DEP counts in its own global (`d`) and calls prov_inc (`q`).
    "mod_dep.wasm": await wat(`(module
      (import "env" "prov_inc" (func $inc (result i32)))
      ${LOG}
      ${literal(64, "d")} ${literal(96, "q")}
      (global $d (mut i32) (i32.const 0))
      (global (export "dep_module") i32 ${API})
      (func (export "cmd_DEP") (result i32)
        (global.set $d (i32.add (global.get $d) (i32.const 1)))
        (call $log (global.get $d) (i32.const 64))
        (call $log (call $inc) (i32.const 96))
        (i32.const 1)))`),
  });
});

afterAll(() => removeModuleDirs());

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

interface Harness {
  readonly host: ModuleHost;
  /** What guests logged since the last `take()`: `g=1011` (the message, then the level it logged). */
  take(): string[];
  /** The loader events the host published since the last `events()`. */
  events(): LoaderEvent[];
  /** The injected clock, in ms. */
  now: number;
}

const listeners: Array<(message: unknown) => void> = [];

afterEach(() => {
  for (const listener of listeners.splice(0)) diagnostics.unsubscribe(LOADER_CHANNEL, listener);
});

function harness(options: Partial<ModuleHostOptions> = {}): Harness {
  const logged: string[] = [];
  const published: LoaderEvent[] = [];
  const h: Harness = {
    host: new ModuleHost({
      modulePath: dir,
      guestLog: (_importer, level, message) => logged.push(`${message}=${level}`),
      clock: () => h.now,
      ...options,
    }),
    take: () => logged.splice(0),
    events: () => published.splice(0),
    now: 1_000,
  };
  const listener = (message: unknown): void => {
    const { host, event } = message as LoaderMessage;
    if (host === h.host) published.push(event);
  };
  diagnostics.subscribe(LOADER_CHANNEL, listener);
  listeners.push(listener);
  return h;
}

function engineModule(modules: readonly EngineModule[], name: string): EngineModule {
  const found = modules.find((m) => m.name === name);
  if (found === undefined) throw new Error(`${name} is not in the set`);
  return found;
}

/** Runs `command`'s CMD handler (the first module's that has one) in `state`, as the session would. */
function runIn(modules: readonly EngineModule[], state: SessionState, command: string): number {
  for (const module of modules) {
    const handler = module.commands.find((h) => h.command === command && h.phase === "CMD");
    if (handler !== undefined) return settled(handler.run(testCommand([command]), state));
  }
  throw new Error(`no CMD handler for ${command}`);
}

interface Session {
  readonly set: ModuleSet;
  readonly state: SessionState;
  /** Runs a command's CMD handler in the session and returns what the guests logged. */
  run(command: string): string[];
}

function open(h: Harness): Session {
  const set = h.host.acquireModules();
  const state = testSession(set.modules, "alice", { instances: set.instances });
  return {
    set,
    state,
    run: (command) => {
      expect(runIn(set.modules, state, command)).toBe(HandlerResults.HANDLED);
      return h.take();
    },
  };
}

/** Runs a command in the daemon's instance: a handler called without the session's instances. */
function runInTemplate(h: Harness, command: string): string[] {
  const modules = h.host.engineModules();
  expect(runIn(modules, testSession(modules, "alice"), command)).toBe(HandlerResults.HANDLED);
  return h.take();
}

/** `dsoctl <action>`, as the controls server runs a guest's control: in the daemon's instance. */
function control(h: Harness, action: string): number {
  const found = moduleControlsActions(h.host.engineModules()).find((a) => a.name === action);
  if (found === undefined) throw new Error(`no control '${action}'`);
  const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
  const answer = found.handler([], caller);
  if (answer instanceof Promise) throw new Error("a guest control answers at once");
  return answer.status;
}

function directive(h: Harness, module: string, argv: readonly string[]): void {
  const handler = engineModule(h.host.engineModules(), module).directives.find((d) => d.name === argv[0]);
  handler?.run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
}

/** A host with mod_count.c loaded and configured (`CountFrom`): its daemon instance counts 1010. */
function countHost(options: Partial<ModuleHostOptions> = {}): Harness {
  const h = harness(options);
  h.host.loadModule("mod_count.c");
  directive(h, "mod_count.c", ["CountFrom"]);
  h.take();
  return h;
}

const sessionsOf = (host: ModuleHost, name: string): number | undefined =>
  host.describe().find((u) => u.name === name)?.sessions;

// ---------------------------------------------------------------------------

describe("per-session instances: fork semantics", () => {
  it("gives each session its own counter, starting from the daemon's state after module_init and directives", () => {
    const h = countHost();
    const [a, b] = [open(h), open(h)];
    expect(a.set.instances).toBeDefined();
    expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(a.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    expect(b.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(b.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    // Neither reached the daemon's instance; module_init ran there only, at load.
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1011", "m=1011"]);
    a.set.release();
    b.set.release();
    h.host.close();
  });

  it("runs sess_init in the session's instance", () => {
    const h = countHost();
    const [a, b] = [open(h), open(h)];
    engineModule(a.set.modules, "mod_count.c").sessionInit?.(testCommand([]), a.set.instances);
    expect(a.run("COUNT")).toEqual(["g=1016", "m=1016"]);
    expect(b.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1011", "m=1011"]);
    h.host.close();
  });

  it("shows a control's change to the sessions started after it, never to those started before", () => {
    const h = countHost();
    const before = open(h);
    expect(control(h, "bump")).toBe(0);
    const after = open(h);
    expect(before.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(after.run("COUNT")).toEqual(["g=1111", "m=1111"]);
    // A handler called without instances runs in the daemon's instance too: the next session forks that.
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1111", "m=1111"]);
    const last = open(h);
    expect(last.run("COUNT")).toEqual(["g=1112", "m=1112"]);
    expect(after.run("COUNT")).toEqual(["g=1112", "m=1112"]);
    h.host.close();
  });

  it("shows a control's change to a library the module binds to, to the sessions started after it", () => {
    const h = harness();
    h.host.loadModule("mod_user.c");
    const before = open(h);
    expect(control(h, "libadd")).toBe(0);
    const after = open(h);
    expect(before.run("USE")).toEqual(["l=6"]);
    expect(after.run("USE")).toEqual(["l=106"]);
    expect(after.run("USE")).toEqual(["l=107"]);
    expect(before.run("USE")).toEqual(["l=7"]);
    h.host.close();
  });

  it("forks the daemon's instance as it is after code outside the host called an export dlsym handed out", () => {
    const h = harness();
    h.host.loadModule("mod_prov.c");
    const before = open(h);
    const inc = h.host.dlsym("prov_inc") as () => number;
    expect([inc(), inc()]).toEqual([1, 2]);
    expect(open(h).run("PGET")).toEqual(["p=2"]);
    expect(inc()).toBe(3);
    expect(open(h).run("PGET")).toEqual(["p=3"]);
    expect(before.run("PGET")).toEqual(["p=0"]);
    h.host.close();
  });

  it("initializes a session's instance again while the daemon's is faulted (a control trapped)", () => {
    const h = countHost();
    expect(control(h, "bump")).toBe(0);
    const before = open(h);
    expect(() => control(h, "crash")).toThrow("mod_count.c: fault in ctrl_crash: unreachable");
    const after = open(h);
    // _initialize, the directive and module_init again: the bump was the faulted instance's.
    expect(after.run("COUNT")).toEqual(["i=0", "g=1011", "m=1011"]);
    expect(before.run("COUNT")).toEqual(["g=1111", "m=1111"]);
    h.host.close();
  });

  it("lets a session that started before rmmod make and use its instance; later sessions do not see the module", () => {
    const h = countHost();
    const before = open(h);
    h.host.unloadModule("mod_count.c");
    expect(before.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(open(h).set.modules.map((m) => m.name)).toEqual([]);
    expect(before.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    before.set.release();
    expect(h.host.describe()).toEqual([]);
    h.host.close();
  });

  it("makes an instance on the session's first call into a unit, its providers with it", () => {
    const h = countHost();
    h.host.loadModule("mod_user.c");
    const [idle, busy] = [open(h), open(h)];
    expect(busy.set.instances?.size).toBe(0);
    busy.run("COUNT");
    expect(busy.set.instances?.size).toBe(1);
    busy.run("USE");
    // mod_user.c and libstate.
    expect(busy.set.instances?.size).toBe(3);
    busy.run("USE");
    expect(busy.set.instances?.size).toBe(3);
    expect(idle.set.instances?.size).toBe(0);
    idle.set.release();
    busy.set.release();
    expect(busy.set.instances?.size).toBe(0);
    h.host.close();
  });

  it("never runs a start section again in a session's instance", () => {
    const h = harness();
    h.host.loadModule("mod_started.c");
    const [a, b] = [open(h), open(h)];
    // libstate: 5 after its _initialize, 1005 after mod_started's start function, run once at load.
    expect(a.run("STARTED")).toEqual(["l=1005"]);
    expect(b.run("STARTED")).toEqual(["l=1005"]);
    expect(runInTemplate(h, "STARTED")).toEqual(["l=1005"]);
    h.host.close();
  });

  it("initializes a session's instance again when a global cannot be copied (a mutable funcref)", () => {
    const h = harness();
    h.host.loadModule("mod_vector.c");
    directive(h, "mod_vector.c", ["CountFrom"]);
    expect(h.take()).toEqual(["i=0"]);
    expect(control(h, "bump")).toBe(0);
    const a = open(h);
    // module_init and the directive again, in a fresh instance; the daemon's bump is not there to copy.
    expect(a.run("COUNT")).toEqual(["i=0", "g=1011", "m=1011"]);
    expect(a.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1111", "m=1111"]);
    h.host.close();
  });
});

describe("per-session instances: ModuleInstances", () => {
  it("replay: runs _initialize, module_init and the directives again per session, registering nothing twice", () => {
    const h = countHost({ sessionInstances: "replay" });
    const count = engineModule(h.host.engineModules(), "mod_count.c");
    expect(count.features).toEqual(["XCOUNT"]);
    expect(count.help).toEqual([{ command: "COUNT", text: "COUNT" }]);
    expect(control(h, "bump")).toBe(0);
    const [a, b] = [open(h), open(h)];
    expect(a.run("COUNT")).toEqual(["i=0", "g=1011", "m=1011"]);
    expect(a.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    expect(b.run("COUNT")).toEqual(["i=0", "g=1011", "m=1011"]);
    expect(count.features).toEqual(["XCOUNT"]);
    expect(count.help).toEqual([{ command: "COUNT", text: "COUNT" }]);
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1111", "m=1111"]);
    h.host.close();
  });

  it("snapshot (the default): copies the daemon's instance without running module_init again", () => {
    const h = countHost();
    expect(h.host.sessionInstances).toBe("snapshot");
    expect(control(h, "bump")).toBe(0);
    expect(open(h).run("COUNT")).toEqual(["g=1111", "m=1111"]);
    expect(engineModule(h.host.engineModules(), "mod_count.c").features).toEqual(["XCOUNT"]);
    h.host.close();
  });

  it("shared: sessions get no instances of their own and run in the daemon's", () => {
    const h = countHost({ sessionInstances: "shared" });
    const [a, b] = [open(h), open(h)];
    expect(a.set.instances).toBeUndefined();
    expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(b.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    expect(runInTemplate(h, "COUNT")).toEqual(["g=1013", "m=1013"]);
    h.host.close();
  });

  it("applies a change of mode to the sessions started after it", () => {
    const h = countHost();
    const a = open(h);
    h.host.setSessionInstances("shared");
    const b = open(h);
    expect(a.set.instances).toBeDefined();
    expect(b.set.instances).toBeUndefined();
    h.host.close();
  });
});

describe("per-session instances: faults", () => {
  const reloadAfter = (maxFaults: number): Partial<ModuleHostOptions> => ({
    policy: () => ({ ...DEFAULT_POLICY, fault: { action: "reload", maxFaults, windowMs: 60_000 } }),
  });

  it("refuses the faulted session's calls during the backoff, then makes its instance again from its fork", () => {
    const h = countHost(reloadAfter(5));
    const [a, b] = [open(h), open(h)];
    expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(b.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    h.events();
    expect(dsoFailure(() => a.run("TRAP"))).toEqual({
      code: ErrorCodes.GUEST_TRAP,
      message: "mod_count.c: fault in cmd_TRAP: unreachable",
    });
    expect(h.events()).toEqual([{ kind: "fault", unit: "mod_count.c", entryPoint: "cmd_TRAP", reason: "unreachable" }]);
    h.now += 40;
    expect(dsoFailure(() => a.run("COUNT"))).toEqual({
      code: ErrorCodes.DISABLED,
      message: "mod_count.c: disabled after a fault (cmd_COUNT not called, retried in 60 ms)",
    });
    expect(b.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    h.now += 60;
    // Made again from the session's fork (1010), not from the state it had when it trapped.
    expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(h.events()).toEqual([{ kind: "reinstantiating", unit: "mod_count.c" }]);
    expect(a.run("COUNT")).toEqual(["g=1012", "m=1012"]);
    expect(b.run("COUNT")).toEqual(["g=1013", "m=1013"]);
    // The daemon's instance never trapped: new sessions fork it as it was.
    expect(h.host.listModules()).toEqual(["mod_count.c"]);
    expect(open(h).run("COUNT")).toEqual(["g=1011", "m=1011"]);
    h.host.close();
  });

  it("counts faults per module across sessions: the backoff doubles with each session's fault", () => {
    const h = countHost(reloadAfter(5));
    const [a, b] = [open(h), open(h)];
    dsoFailure(() => a.run("TRAP"));
    h.now += 100;
    dsoFailure(() => b.run("TRAP"));
    expect(dsoFailure(() => b.run("COUNT")).message).toBe(
      "mod_count.c: disabled after a fault (cmd_COUNT not called, retried in 200 ms)",
    );
    expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    h.host.close();
  });

  it("unloads the module for every session once faults in several sessions reach the crash-loop limit", () => {
    const h = countHost(reloadAfter(3));
    const [user, idle] = [open(h), open(h)];
    expect(user.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    const faulting = [open(h), open(h), open(h)];
    h.events();
    for (const session of faulting) {
      expect(dsoFailure(() => session.run("TRAP")).code).toBe(ErrorCodes.GUEST_TRAP);
      h.now += 1_000;
    }
    const events = h.events();
    expect(events.filter((e) => e.kind !== "fault")).toEqual([
      { kind: "fault-unloaded", unit: "mod_count.c", crashLoop: true, faults: 3, windowMs: 60_000 },
    ]);
    expect(events.filter((e) => e.kind === "fault")).toHaveLength(3);
    expect(h.host.listModules()).toEqual([]);
    h.now += 120_000;
    const refused = {
      code: ErrorCodes.DISABLED,
      message: "mod_count.c: disabled after a fault (cmd_COUNT not called)",
    };
    for (const session of [user, idle, ...faulting]) expect(dsoFailure(() => session.run("COUNT"))).toEqual(refused);
    expect(h.events()).toEqual([]);
    h.host.close();
  });

  it("makes a faulted provider again from the fork and relinks the session's dependents with their state", () => {
    const h = harness(reloadAfter(5));
    h.host.loadModule("mod_prov.c");
    h.host.loadModule("mod_dep.c");
    const [a, b] = [open(h), open(h)];
    expect(a.run("DEP")).toEqual(["d=1", "q=1"]);
    expect(a.run("DEP")).toEqual(["d=2", "q=2"]);
    expect(b.run("DEP")).toEqual(["d=1", "q=1"]);
    h.events();
    expect(dsoFailure(() => a.run("PTRAP")).message).toBe("mod_prov.c: fault in cmd_PTRAP: unreachable");
    h.now += 100;
    expect(a.run("PGET")).toEqual(["p=0"]);
    expect(h.events()).toEqual([
      { kind: "fault", unit: "mod_prov.c", entryPoint: "cmd_PTRAP", reason: "unreachable" },
      { kind: "reinstantiating", unit: "mod_prov.c" },
    ]);
    // mod_dep.c keeps its own count and now calls the new mod_prov.c instance, back at the fork's value.
    expect(a.run("DEP")).toEqual(["d=3", "q=1"]);
    expect(a.run("PGET")).toEqual(["p=1"]);
    expect(b.run("DEP")).toEqual(["d=2", "q=2"]);
    h.host.close();
  });

  it("never enters a faulted provider through a dependent: its call waits for the provider to be made again", () => {
    const h = harness(reloadAfter(5));
    h.host.loadModule("mod_prov.c");
    h.host.loadModule("mod_dep.c");
    const a = open(h);
    expect(a.run("DEP")).toEqual(["d=1", "q=1"]);
    h.events();
    dsoFailure(() => a.run("PTRAP"));
    h.now += 40;
    expect(dsoFailure(() => a.run("DEP"))).toEqual({
      code: ErrorCodes.DISABLED,
      message: "mod_prov.c: disabled after a fault (cmd_DEP not called, retried in 60 ms)",
    });
    h.now += 60;
    // The dependent's own call makes the provider again from the fork (0) and keeps the dependent's count.
    expect(a.run("DEP")).toEqual(["d=2", "q=1"]);
    expect(h.events()).toEqual([
      { kind: "fault", unit: "mod_prov.c", entryPoint: "cmd_PTRAP", reason: "unreachable" },
      { kind: "reinstantiating", unit: "mod_prov.c" },
    ]);
    h.host.close();
  });
});

describe("per-session instances: ModuleMemoryTotal", () => {
  const totalReached = (limit: number, used: number): string =>
    `ModuleMemoryTotal (${limit} bytes) reached: guest memory is ${used} bytes`;

  it("refuses a session past the bound, holding nothing, until a session's release frees its reservation", () => {
    const h = countHost({ memoryTotal: 3 * PAGE });
    expect(h.host.guestMemoryBytes()).toBe(PAGE);
    const a = open(h);
    expect(h.host.guestMemoryBytes()).toBe(2 * PAGE);
    const b = open(h);
    expect(h.host.guestMemoryBytes()).toBe(3 * PAGE);
    expect(sessionsOf(h.host, "mod_count.c")).toBe(2);
    expect(dsoFailure(() => h.host.acquireModules())).toEqual({
      code: ErrorCodes.MEMORY_TOTAL,
      message: `${totalReached(3 * PAGE, 3 * PAGE)}, a session needs ${PAGE} more`,
    });
    expect(sessionsOf(h.host, "mod_count.c")).toBe(2);
    expect(h.host.guestMemoryBytes()).toBe(3 * PAGE);
    a.set.release();
    a.set.release();
    expect(h.host.guestMemoryBytes()).toBe(2 * PAGE);
    expect(sessionsOf(h.host, "mod_count.c")).toBe(1);
    const c = open(h);
    expect(c.run("COUNT")).toEqual(["g=1011", "m=1011"]);
    expect(h.host.guestMemoryBytes()).toBe(3 * PAGE);
    h.host.setMemoryTotal(undefined);
    const d = open(h);
    expect(h.host.guestMemoryBytes()).toBe(4 * PAGE);
    for (const session of [b, c, d]) session.set.release();
    expect(h.host.guestMemoryBytes()).toBe(PAGE);
    h.host.close();
  });

  it("counts the memories of the daemon's instances, libraries included", () => {
    const h = countHost({ memoryTotal: 3 * PAGE });
    h.host.loadModule("mod_user.c");
    // mod_count.c, mod_user.c and libstate have a page each.
    expect(h.host.guestMemoryBytes()).toBe(3 * PAGE);
    expect(dsoFailure(() => h.host.acquireModules()).message).toBe(
      `${totalReached(3 * PAGE, 3 * PAGE)}, a session needs ${3 * PAGE} more`,
    );
    h.host.setMemoryTotal(6 * PAGE);
    const a = open(h);
    expect(h.host.guestMemoryBytes()).toBe(6 * PAGE);
    a.set.release();
    expect(h.host.guestMemoryBytes()).toBe(3 * PAGE);
    h.host.close();
  });

  it("counts a session at what its instances hold once they grew past what it reserved", () => {
    const h = countHost({ memoryTotal: 4 * PAGE });
    const a = open(h);
    expect(h.host.guestMemoryBytes()).toBe(2 * PAGE);
    // Reserved at the fork, before the session made its instance.
    a.run("COUNT");
    expect(h.host.guestMemoryBytes()).toBe(2 * PAGE);
    a.run("GROW");
    a.run("GROW");
    expect(h.host.guestMemoryBytes()).toBe(4 * PAGE);
    expect(dsoFailure(() => h.host.acquireModules()).message).toBe(
      `${totalReached(4 * PAGE, 4 * PAGE)}, a session needs ${PAGE} more`,
    );
    a.set.release();
    expect(h.host.guestMemoryBytes()).toBe(PAGE);
    h.host.close();
  });

  it("is one account for two hosts given the same sessionMemory", () => {
    const account = new SessionMemoryAccount();
    const first = countHost({ sessionMemory: account });
    const second = countHost({ sessionMemory: account, memoryTotal: 3 * PAGE });
    const a = open(first);
    expect([account.sessions, account.bytes()]).toEqual([1, PAGE]);
    // Its own daemon instance, and what a session of the other host reserved.
    expect(second.host.guestMemoryBytes()).toBe(2 * PAGE);
    const b = open(second);
    expect([account.sessions, account.bytes()]).toEqual([2, 2 * PAGE]);
    expect(dsoFailure(() => second.host.acquireModules()).message).toBe(
      `${totalReached(3 * PAGE, 3 * PAGE)}, a session needs ${PAGE} more`,
    );
    a.set.release();
    expect([account.sessions, account.bytes()]).toEqual([1, PAGE]);
    open(second).set.release();
    b.set.release();
    expect([account.sessions, account.bytes()]).toEqual([0, 0]);
    first.host.close();
    second.host.close();
  });

  it("reserves nothing in shared mode", () => {
    const h = countHost({ sessionInstances: "shared", memoryTotal: PAGE });
    const a = open(h);
    expect(h.host.guestMemoryBytes()).toBe(PAGE);
    a.set.release();
    h.host.close();
  });
});

describe("per-session instances: release", () => {
  /** Counts the WebAssembly.Memory objects made while `action` runs (the pool's misses). */
  function memoriesMade(action: (made: () => number) => void): void {
    const original = WebAssembly.Memory;
    let made = 0;
    const counting = new Proxy(original, {
      construct(target, args: [WebAssembly.MemoryDescriptor]) {
        made++;
        return Reflect.construct(target, args);
      },
    });
    Object.defineProperty(WebAssembly, "Memory", { value: counting, writable: true, configurable: true });
    try {
      action(() => made);
    } finally {
      Object.defineProperty(WebAssembly, "Memory", { value: original, writable: true, configurable: true });
    }
  }

  it("gives a session's memories back to the pool once, however often it is released", () => {
    memoriesMade((made) => {
      const h = harness();
      h.host.loadModule("mod_count.c");
      directive(h, "mod_count.c", ["CountFrom"]);
      h.take();
      expect(made()).toBe(1);
      const a = open(h);
      expect(a.run("COUNT")).toEqual(["g=1011", "m=1011"]);
      expect(made()).toBe(2);
      a.set.release();
      a.set.release();
      // One memory in the pool: the next session takes it, zeroed and restored; the one after needs a new one.
      const [b, c] = [open(h), open(h)];
      expect(b.run("COUNT")).toEqual(["g=1011", "m=1011"]);
      expect(made()).toBe(2);
      expect(c.run("COUNT")).toEqual(["g=1011", "m=1011"]);
      expect(made()).toBe(3);
      expect(b.run("COUNT")).toEqual(["g=1012", "m=1012"]);
      expect(c.run("COUNT")).toEqual(["g=1012", "m=1012"]);
      expect(dsoFailure(() => a.run("COUNT"))).toEqual({
        code: ErrorCodes.NOT_LOADED,
        message: "mod_count.c: the session has ended",
      });
      h.host.close();
    });
  });
});
