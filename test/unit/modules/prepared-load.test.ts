/**
 * ModuleHost's two-phase load (prepareLoad, then commitLoad or abortLoad) and
 * rmmod's check (checkUnload): what session workers use to change together.
 * A prepared load changes nothing anyone sees, its commit is loadModule's
 * result, its abort leaves the host as it was with the instances finalized.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import type { ErrorCode } from "../../../host/errors.js";
import { MemoryPool } from "../../../host/modules/memory-pool.js";
import type { EngineModule } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import type { LoadedUnitInfo, LogPriority, ModuleHostOptions } from "../../../host/modules/module-host.js";
import { FIXTURES_DIR, LIBEXEC_DIR, libexec } from "../../helpers/paths.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

interface Harness {
  readonly host: ModuleHost;
  readonly trace: string[];
  readonly logs: string[];
  /** What guest code logged (pr_log_debug), as `importer: message`. */
  readonly guest: string[];
}

function harness(options: Partial<ModuleHostOptions> = {}): Harness {
  const trace: string[] = [];
  const logs: string[] = [];
  const guest: string[] = [];
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    compiledIn: [staticModule("mod_core.c")],
    protectedModules: ["mod_core.c"],
    log: (priority: LogPriority, message: string) => logs.push(`${priority}: ${message}`),
    guestLog: (importer, _level, message) => guest.push(`${importer}: ${message}`),
    tracer: {
      level: (channel) => (channel === "dso" ? 20 : 0),
      write: (channel, level, message) => trace.push(`<${channel}:${level}>: ${message}`),
    },
    ...options,
  });
  hosts.push(host);
  return { host, trace, logs, guest };
}

const hosts: ModuleHost[] = [];

afterEach(() => {
  vi.restoreAllMocks();
  for (const host of hosts.splice(0)) host.close();
});

function staticModule(name: string, onInit?: () => void): EngineModule {
  return {
    name,
    kind: "static",
    commands: [],
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
    ...(onInit && { init: onInit }),
  };
}

/** The code and lines of what `action` throws. */
function failure(action: () => unknown): { code: ErrorCode; lines: readonly string[] } {
  try {
    action();
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    return { code: error.code, lines: error.lines };
  }
  throw new Error("expected a DsoError");
}

/** Load times are the only thing two loads of the same file never share. */
function described(host: ModuleHost): Array<Omit<LoadedUnitInfo, "loadedAt">> {
  return host.describe().map(({ loadedAt: _, ...rest }) => rest);
}

const SYMBOLS = ["math_add", "counter_next", "sql_register_backend", "hello_value", "pr_log_debug", "bye_value"];

/** Everything a session, lsmod or a lookup sees of the host. */
function visible(host: ModuleHost) {
  const set = host.acquireModules();
  const seen = {
    modules: host.listModules(),
    engine: host.engineModules(),
    sessionModules: set.modules,
    describe: host.describe(),
    scopeSize: host.scopeSize,
    lookups: SYMBOLS.map((s) => host.lookup(s)),
    dlsym: SYMBOLS.map((s) => host.dlsym(s) !== undefined),
    guestMemory: host.guestMemoryBytes(),
  };
  set.release();
  return seen;
}

/** A host with a library, two modules and a needed library loaded. */
function populated(options: Partial<ModuleHostOptions> = {}): Harness {
  const h = harness(options);
  h.host.loadFile(libexec("libmath.wasm"));
  h.host.loadModule("mod_test.c");
  h.host.loadModule("mod_counter.c");
  h.trace.length = 0;
  h.logs.length = 0;
  h.guest.length = 0;
  return h;
}

const API = "(i32.const 0x20)";
let watDir: string;

beforeAll(async () => {
  watDir = writeModuleDir({
    // Its own memory from the host's pool; its unload hook logs "bye" (an AssemblyScript string at 64).
    "mod_bye.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (import "env" "pr_log_debug" (func $log (param i32 i32)))
      (global (export "bye_module") i32 ${API})
      (data (i32.const 56) "\\02\\00\\00\\00\\06\\00\\00\\00\\62\\00\\79\\00\\65\\00")
      (func (export "bye_value") (result i32) (i32.const 7))
      (func (export "module_unload") (result i32) (call $log (i32.const 0) (i32.const 64)) (i32.const 0)))`),
    // Its unload hook traps.
    "mod_trapbye.wasm": await wat(`(module
      (global (export "trapbye_module") i32 ${API})
      (func (export "trapbye_value") (result i32) (i32.const 9))
      (func (export "module_unload") (result i32) unreachable))`),
    "libextra.wasm": await wat(`(module (func (export "extra_value") (result i32) i32.const 3))`),
    "mod_undef.wasm": await wat(`(module
      (import "env" "no_such_symbol" (func))
      (global (export "undef_module") i32 ${API}))`),
    "mod_initfail.wasm": await wat(`(module
      (global (export "initfail_module") i32 ${API})
      (func (export "module_init") (result i32) i32.const -1))`),
  });
});

afterAll(() => removeModuleDirs());

describe("prepareLoad", () => {
  it("changes nothing a session, lsmod or a lookup sees, a needed module included", () => {
    const { host, trace, guest } = populated();
    const before = visible(host);
    const prepared = host.prepareLoad("mod_sql_mysql.c");
    expect(prepared.module).toBe("mod_sql_mysql.c");
    expect(visible(host)).toEqual(before);
    expect(host.engineModules()).toBe(before.engine);
    expect(host.isLoaded("mod_sql.c")).toBe(false);
    // Its init ran in prepare: what can fail failed or not there.
    expect(guest).toEqual(["mod_sql_mysql.c: mod_sql_mysql: registered as backend #1"]);
    expect(trace.at(-1)).toBe("<dso:9>: binding 'sql_register_backend' of mod_sql_mysql.c to mod_sql.c");
    host.abortLoad(prepared);
  });

  it("refuses with the error, log and trace lines loadModule refuses with, and changes nothing", () => {
    for (const [dir, name] of [
      [watDir, "mod_undef.c"],
      [watDir, "mod_initfail.c"],
      [watDir, "mod_missing.c"],
      [FIXTURES_DIR, "mod_badsig.c"],
      [LIBEXEC_DIR, "mod_test.c"],
      [LIBEXEC_DIR, "mod_core.c"],
      [LIBEXEC_DIR, "foo.c"],
    ] as const) {
      const loading = populated();
      const preparing = populated();
      const before = visible(preparing.host);
      loading.host.setModulePath(dir);
      preparing.host.setModulePath(dir);
      const refused = failure(() => loading.host.loadModule(name));
      expect(
        failure(() => preparing.host.prepareLoad(name)),
        name,
      ).toEqual(refused);
      expect(preparing.trace, name).toEqual(loading.trace);
      expect(preparing.logs, name).toEqual(loading.logs);
      expect(visible(preparing.host), name).toEqual(before);
    }
  });
});

describe("commitLoad", () => {
  it("gives loadModule's result, lines and events, the needed module committed with it", () => {
    const loading = populated();
    const twoPhase = populated();
    loading.host.loadModule("mod_sql_mysql.c");
    twoPhase.host.commitLoad(twoPhase.host.prepareLoad("mod_sql_mysql.c"));
    expect(twoPhase.host.listModules()).toEqual([
      "mod_core.c",
      "mod_test.c",
      "mod_counter.c",
      "mod_sql.c",
      "mod_sql_mysql.c",
    ]);
    expect(twoPhase.host.listModules()).toEqual(loading.host.listModules());
    expect(described(twoPhase.host)).toEqual(described(loading.host));
    expect(SYMBOLS.map((s) => twoPhase.host.lookup(s))).toEqual(SYMBOLS.map((s) => loading.host.lookup(s)));
    expect(twoPhase.trace).toEqual(loading.trace);
    expect(twoPhase.trace.at(-1)).toBe(`<dso:8>: module '${LIBEXEC_DIR}/mod_sql_mysql' successfully loaded`);
    expect(twoPhase.logs).toEqual(loading.logs);
    expect(twoPhase.guest).toEqual(loading.guest);
  });

  it("writes the success line only at commit", () => {
    const { host, trace } = harness();
    const prepared = host.prepareLoad("mod_test.c");
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
    ]);
    host.commitLoad(prepared);
    expect(trace.slice(2)).toEqual([`<dso:8>: module '${LIBEXEC_DIR}/mod_test' successfully loaded`]);
  });

  it("puts an rmmod'ed compiled-in module back, its init run in prepare", () => {
    let inits = 0;
    const { host, trace } = harness({
      compiledIn: [staticModule("mod_core.c"), staticModule("mod_ls.c", () => inits++)],
    });
    host.loadModule("mod_test.c");
    host.unloadModule("mod_ls.c");
    trace.length = 0;
    const before = visible(host);
    const prepared = host.prepareLoad("mod_ls.c");
    expect(inits).toBe(2);
    expect(visible(host)).toEqual(before);
    expect(host.isLoaded("mod_ls.c")).toBe(false);
    host.commitLoad(prepared);
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c", "mod_ls.c"]);
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_ls'`,
      "<dso:7>: looking for symbol 'ls_module' in loaded module",
      `<dso:8>: module '${LIBEXEC_DIR}/mod_ls' successfully loaded`,
    ]);
    host.unloadModule("mod_ls.c");
    host.abortLoad(host.prepareLoad("mod_ls.c"));
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c"]);
  });
});

describe("abortLoad", () => {
  it("leaves the host as it was, runs the unload hooks and gives the instance's memory back", () => {
    const { host, guest } = populated();
    host.setModulePath(watDir);
    const before = visible(host);
    const release = vi.spyOn(MemoryPool.prototype, "release");
    const prepared = host.prepareLoad("mod_bye.c");
    expect(release).not.toHaveBeenCalled();
    host.abortLoad(prepared);
    expect(visible(host)).toEqual(before);
    expect(guest).toEqual(["mod_bye.c: bye"]);
    expect(release).toHaveBeenCalledTimes(1);
    expect(release.mock.calls[0]?.[1]).toEqual({ initial: 1, maximum: 4 });
    expect(failure(() => host.commitLoad(prepared))).toEqual({
      code: ErrorCodes.STALE_LOAD,
      lines: ["cannot commit the load of 'mod_bye.c': it was aborted already"],
    });
    expect(failure(() => host.abortLoad(prepared)).code).toBe(ErrorCodes.STALE_LOAD);
    // The name is free again: a new load of it works.
    host.loadModule("mod_bye.c");
    expect(host.lookup("bye_value")?.provider).toBe("mod_bye.c");
  });

  it("finalizes a needed module with the module, and a later load links afresh", () => {
    const { host, guest } = populated();
    const before = visible(host);
    host.abortLoad(host.prepareLoad("mod_sql_mysql.c"));
    expect(visible(host)).toEqual(before);
    host.loadModule("mod_sql_mysql.c");
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c", "mod_counter.c", "mod_sql.c", "mod_sql_mysql.c"]);
    // A fresh mod_sql: the aborted one's registration is gone with it.
    expect(guest).toEqual([
      "mod_sql_mysql.c: mod_sql_mysql: registered as backend #1",
      "mod_sql_mysql.c: mod_sql_mysql: registered as backend #1",
    ]);
  });
});

describe("a prepared load is bound to the host as it was", () => {
  const changes: ReadonlyArray<readonly [string, (host: ModuleHost) => void]> = [
    ["loadModule", (host) => host.loadModule("mod_site_hello.c")],
    ["unloadModule", (host) => host.unloadModule("mod_test.c")],
    ["loadFile", (host) => host.loadFile(`${watDir}/libextra.wasm`)],
    ["setModuleOrder", (host) => host.setModuleOrder(["mod_core.c", "mod_test.c"])],
    ["another commit", (host) => host.commitLoad(host.prepareLoad("mod_site_hello.c"))],
  ];

  for (const [what, change] of changes) {
    it(`${what} makes its commit DSO_ERR_STALE_LOAD; it can still be aborted`, () => {
      const { host } = populated();
      const prepared = host.prepareLoad("mod_calc.c");
      change(host);
      const after = visible(host);
      expect(failure(() => host.commitLoad(prepared))).toEqual({
        code: ErrorCodes.STALE_LOAD,
        lines: ["cannot commit the load of 'mod_calc.c': the host changed since it was prepared"],
      });
      host.abortLoad(prepared);
      expect(visible(host)).toEqual(after);
    });
  }

  /** `SITE <word>` through mod_trap.c's handler, as a session runs it; false when it failed. */
  function site(host: ModuleHost, word: string): boolean {
    const modules = host.engineModules();
    const handler = modules
      .find((m) => m.name === "mod_trap.c")
      ?.siteCommands.find((h) => h.command === word && h.phase === "CMD");
    if (handler === undefined) throw new Error(`mod_trap.c has no SITE ${word}`);
    try {
      settled(handler.run(testCommand(["SITE", word]), testSession(modules, undefined)));
      return true;
    } catch {
      return false;
    }
  }

  it("a fault that unloads a module, or re-instantiates one, makes its commit stale", () => {
    let now = 1_000_000;
    for (const action of ["unload", "reload"] as const) {
      const { host } = harness({
        modulePath: FIXTURES_DIR,
        clock: () => now,
        policy: () => ({ ...DEFAULT_POLICY, fault: { action, maxFaults: 5, windowMs: 1000 } }),
      });
      host.loadModule("mod_trap.c");
      host.setModulePath(LIBEXEC_DIR);
      const faulting = host.prepareLoad("mod_test.c");
      expect(site(host, "TRAP")).toBe(false);
      if (action === "reload") {
        // Faulted, not yet changed: the instance others may be bound to is the same until it is re-made.
        host.commitLoad(faulting);
        const reloading = host.prepareLoad("mod_site_hello.c");
        now += 100;
        expect(site(host, "OK")).toBe(true);
        expect(failure(() => host.commitLoad(reloading)).code).toBe(ErrorCodes.STALE_LOAD);
        host.abortLoad(reloading);
      } else {
        expect(host.isLoaded("mod_trap.c")).toBe(false);
        expect(failure(() => host.commitLoad(faulting)).code).toBe(ErrorCodes.STALE_LOAD);
        host.abortLoad(faulting);
      }
    }
  });

  it("nothing that changes no module makes it stale: sessions, lookups, a refused load, an abort", () => {
    const { host } = populated();
    const prepared = host.prepareLoad("mod_calc.c");
    host.acquireModules().release();
    host.lookup("math_add");
    expect(() => host.loadModule("mod_nope.c")).toThrow();
    expect(() => host.unloadModule("mod_nope.c")).toThrow();
    host.checkUnload("mod_test.c");
    host.abortLoad(host.prepareLoad("mod_site_hello.c"));
    host.commitLoad(prepared);
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c", "mod_counter.c", "mod_calc.c"]);
  });

  it("two prepared loads of one name: the first committed wins, the second is stale", () => {
    const { host } = populated();
    const first = host.prepareLoad("mod_calc.c");
    const second = host.prepareLoad("mod_calc.c");
    host.commitLoad(first);
    expect(failure(() => host.commitLoad(second)).code).toBe(ErrorCodes.STALE_LOAD);
    host.abortLoad(second);
    const single = populated();
    single.host.loadModule("mod_calc.c");
    expect(described(host)).toEqual(described(single.host));
    expect(host.listModules()).toEqual(single.host.listModules());
  });

  it("aborting the stale one of two loads of a name leaves the committed one, its unload hook trapping", () => {
    const { host, logs } = harness({
      modulePath: watDir,
      policy: () => ({ ...DEFAULT_POLICY, fault: { action: "unload", maxFaults: 1, windowMs: 1000 } }),
    });
    const first = host.prepareLoad("mod_trapbye.c");
    const second = host.prepareLoad("mod_trapbye.c");
    host.commitLoad(first);
    const after = visible(host);
    host.abortLoad(second);
    expect(visible(host)).toEqual(after);
    expect(host.lookup("trapbye_value")?.provider).toBe("mod_trapbye.c");
    expect(logs).toEqual([
      "error: mod_trapbye.c: fault in module_unload: unreachable",
      "error: mod_trapbye.c: unload hook failed: mod_trapbye.c: fault in module_unload: unreachable",
    ]);
  });

  it("is refused by another host", () => {
    const one = harness();
    const other = harness();
    const prepared = one.host.prepareLoad("mod_test.c");
    expect(failure(() => other.host.commitLoad(prepared))).toEqual({
      code: ErrorCodes.STALE_LOAD,
      lines: ["cannot commit the load of 'mod_test.c': this host did not prepare it"],
    });
    expect(failure(() => other.host.abortLoad(prepared)).code).toBe(ErrorCodes.STALE_LOAD);
    expect(other.host.listModules()).toEqual(["mod_core.c"]);
    one.host.commitLoad(prepared);
    expect(failure(() => one.host.commitLoad(prepared))).toEqual({
      code: ErrorCodes.STALE_LOAD,
      lines: ["cannot commit the load of 'mod_test.c': it was committed already"],
    });
  });
});

describe("checkUnload", () => {
  it("throws what unloadModule throws, and changes nothing, trace included", () => {
    const { host, trace } = populated({
      compiledIn: [staticModule("mod_core.c"), staticModule("mod_ls.c")],
    });
    host.loadModule("mod_sql_mysql.c");
    trace.length = 0;
    const before = visible(host);
    for (const name of ["mod_core.c", "mod_nope.c", "mod_sql.c", "foo.c", "mod_../x.c"]) {
      const checked = failure(() => host.checkUnload(name));
      expect(visible(host), name).toEqual(before);
      expect(trace, name).toEqual([]);
      expect(checked, name).toEqual(failure(() => host.unloadModule(name)));
    }
    for (const name of ["mod_sql_mysql.c", "mod_ls.c", "mod_test.c"]) host.checkUnload(name);
    expect(visible(host)).toEqual(before);
    expect(trace).toEqual([]);
  });
});
