import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { DsoError, Errno, ErrorCodes } from "../../../host/errors.js";
import type { ErrnoText, ErrorCode } from "../../../host/errors.js";
import { HandlerResults } from "../../../host/modules/module-api.js";
import type { DirectiveContext, EngineModule, HandlerResult, SessionState } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import type { LogPriority, ModuleHostOptions } from "../../../host/modules/module-host.js";
import { FIXTURES_DIR, LIBEXEC_DIR, libexec } from "../../helpers/paths.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";
import { settled, testSession } from "../../helpers/session.js";

// ---------------------------------------------------------------------------
// Harness: a real ModuleHost with a tracer and a log that record every line,
// and a fake command (what the FTP session would pass) that records replies.
// ---------------------------------------------------------------------------

interface Harness {
  readonly host: ModuleHost;
  /** `<dso:5>: loading module '...'`, as proftpd's TraceLog shows them (without date and pid). */
  readonly trace: string[];
  /** `error: mod_dso/0.5: ...` */
  readonly logs: string[];
}

function harness(options: Partial<ModuleHostOptions> = {}, traceLevel = 20): Harness {
  const trace: string[] = [];
  const logs: string[] = [];
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    log: (priority: LogPriority, message: string) => logs.push(`${priority}: ${message}`),
    tracer: {
      level: (channel) => (channel === "dso" ? traceLevel : 0),
      write: (channel, level, message) => trace.push(`<${channel}:${level}>: ${message}`),
    },
    ...options,
  });
  return { host, trace, logs };
}

interface FakeCommand extends ActiveCommand {
  readonly replies: string[];
}

function fakeCommand(argv: readonly string[], user?: string): FakeCommand {
  const replies: string[] = [];
  return {
    name: argv[0] ?? "",
    arg: argv.slice(1).join(" "),
    argv,
    user,
    cwd: undefined,
    path: undefined,
    transfer: undefined,
    replies,
    addResponse: (code, message) => replies.push(`${code} ${message}`),
    addError: (code, message) => replies.push(`error ${code} ${message}`),
  };
}

/** Where a directive stands in the configuration; a guest's directive handler does not look. */
const CONTEXT: DirectiveContext = { file: "/etc/dsod.conf", line: 3, first: false };

function session(modules: readonly EngineModule[]): SessionState {
  return testSession(modules, undefined);
}

function engineModule(host: ModuleHost, name: string): EngineModule {
  const found = host.engineModules().find((m) => m.name === name);
  if (found === undefined) throw new Error(`${name} is not in the engine`);
  return found;
}

/** Runs `argv` (an FTP command, or `SITE X ...`) through `module`'s CMD handler, as the session would. */
function run(host: ModuleHost, module: string, argv: readonly string[]): { result: HandlerResult; replies: string[] } {
  const m = engineModule(host, module);
  const isSite = argv[0] === "SITE";
  const wanted = (isSite ? argv[1] : argv[0]) ?? "";
  const handler = (isSite ? m.siteCommands : m.commands).find((h) => h.command === wanted && h.phase === "CMD");
  if (handler === undefined) throw new Error(`${module} has no handler for ${argv.join(" ")}`);
  const command = fakeCommand(argv);
  const result = settled(handler.run(command, session(host.engineModules())));
  return { result, replies: command.replies };
}

interface Failure {
  readonly code: ErrorCode;
  readonly errno: ErrnoText | undefined;
  readonly lines: readonly string[];
}

function failure(action: () => unknown): Failure {
  try {
    action();
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    return { code: error.code, errno: error.errno, lines: error.lines };
  }
  throw new Error("expected a DsoError");
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

const STATIC_CORE: EngineModule = {
  name: "mod_core.c",
  kind: "static",
  commands: [],
  siteCommands: [],
  directives: [],
  features: [],
  help: [],
};

function staticModule(name: string, onInit?: () => void): EngineModule {
  return { ...STATIC_CORE, name, ...(onInit && { init: onInit }) };
}

// ---------------------------------------------------------------------------
// WAT fixtures: each states exactly the imports and exports a case needs.
// ---------------------------------------------------------------------------

const API = "(i32.const 0x20)";
let watDir: string;

beforeAll(async () => {
  const files: Record<string, Uint8Array> = {
    // Defines a host symbol: the host's definition must stay first.
    "mod_hostname.wasm": await wat(`(module
      (global (export "hostname_module") i32 ${API})
      (func (export "pr_log_debug") (param i32 i32))
      (func (export "only_here") (result i32) i32.const 7))`),
    // Two modules defining `dup`; mod_caller's cmd_DUP returns whichever it bound to.
    "mod_first.wasm": await wat(
      `(module (global (export "first_module") i32 ${API}) (func (export "dup") (result i32) i32.const 1))`,
    ),
    "mod_second.wasm": await wat(
      `(module (global (export "second_module") i32 ${API}) (func (export "dup") (result i32) i32.const -1))`,
    ),
    "mod_caller.wasm": await wat(`(module
      (import "env" "dup" (func $dup (result i32)))
      (global (export "caller_module") i32 ${API})
      (func (export "cmd_DUP") (result i32) call $dup))`),
    // Protocol exports with the wrong types.
    "mod_badproto.wasm": await wat(`(module
      (global (export "badproto_module") i32 ${API})
      (func (export "cmd_FOO") (param i32) (result i32) i32.const 1)
      (func (export "site_BAR"))
      (global (export "module_init") i32 (i32.const 0)))`),
    // A start function that traps while the engine instantiates.
    "mod_starttrap.wasm": await wat(
      `(module (global (export "starttrap_module") i32 ${API}) (func $s unreachable) (start $s))`,
    ),
    // No start function, but an active data segment past the end of memory: the engine refuses it.
    "mod_dataoob.wasm": await wat(
      `(module (global (export "dataoob_module") i32 ${API}) (memory 1 1) (data (i32.const 65534) "abcd"))`,
    ),
    // Passes our reader (which skips code) but not the engine's validation.
    "mod_badcode.wasm": await wat(
      `(module (global (export "badcode_module") i32 ${API}) (func (export "f") (result i32)))`,
      {},
      { validate: false },
    ),
    // A needed library whose initialization traps, and a module needing it.
    "libinitfail.wasm": await wat(
      `(module (func (export "_initialize") unreachable) (func (export "f") (result i32) i32.const 1))`,
    ),
    "mod_usesfail.wasm": await wat(
      `(module (import "libinitfail" "f" (func (result i32))) (global (export "usesfail_module") i32 ${API}))`,
    ),
    // A needed library that initializes fine, and a module whose own init then fails.
    "libok.wasm": await wat(`(module (func (export "ok_value") (result i32) i32.const 5))`),
    "mod_okthenfail.wasm": await wat(`(module
      (import "libok" "ok_value" (func (result i32)))
      (global (export "okthenfail_module") i32 ${API})
      (func (export "module_init") (result i32) i32.const -1))`),
    // A needed library that also defines math_add; its user imports env.math_add.
    "libdup.wasm": await wat(`(module
      (func (export "marker") (result i32) i32.const 0)
      (func (export "math_add") (param i32 i32) (result i32) i32.const 2000 local.get 0 i32.add local.get 1 i32.add))`),
    "mod_dupuser.wasm": await wat(`(module
      (import "libdup" "marker" (func (result i32)))
      (import "env" "math_add" (func (param i32 i32) (result i32)))
      (global (export "dupuser_module") i32 ${API}))`),
    // Binds to libcounter directly and through the global scope.
    "libcounter.wasm": readFileSync(libexec("libcounter.wasm")),
    "mod_bothcounter.wasm": await wat(`(module
      (import "libcounter" "counter_next" (func (result i32)))
      (import "env" "counter_next" (func (result i32)))
      (global (export "bothcounter_module") i32 ${API}))`),
    // Calls a command-only host symbol from its init hook.
    "mod_outside.wasm": await wat(`(module
      (import "env" "pr_cmd_argc" (func $argc (result i32)))
      (global (export "outside_module") i32 ${API})
      (func (export "module_init") (result i32) call $argc))`),
    // Host memories: within and over the 256-page default cap.
    "mod_mem.wasm": await wat(
      `(module (import "env" "memory" (memory 3 10)) (global (export "mem_module") i32 ${API}))`,
    ),
    "mod_bigmem.wasm": await wat(
      `(module (import "env" "memory" (memory 300)) (global (export "bigmem_module") i32 ${API}))`,
    ),
    // Not WebAssembly at all.
    "mod_garbage.wasm": new TextEncoder().encode("#!/bin/sh\necho not wasm\n"),
    // A different file under libmath's name.
    "libmath.wasm": await wat(`(module (func (export "math_add") (param i32 i32) (result i32) i32.const 0))`),
    // Bad guests, each failing at one step of a load.
    "mod_undef.wasm": await wat(`(module
      (import "env" "no_such_symbol" (func (param i32) (result i32)))
      (import "env" "another_missing" (func))
      (global (export "undef_module") i32 ${API}))`),
    "mod_badapi.wasm": await wat(`(module (global (export "badapi_module") i32 (i32.const 0x10)))`),
    "mod_initfail.wasm": await wat(`(module
      (global (export "initfail_module") i32 ${API})
      (func (export "module_init") (result i32) i32.const -1))`),
    "mod_inittrap.wasm": await wat(`(module
      (global (export "inittrap_module") i32 ${API})
      (func (export "module_init") (result i32) unreachable))`),
    "mod_nosym.wasm": await wat(`(module (func (export "cmd_NOSYM") (result i32) i32.const 1))`),
    "mod_needs_missing.wasm": await wat(`(module
      (import "libnowhere" "nowhere" (func (result i32)))
      (global (export "needs_missing_module") i32 ${API}))`),
    "mod_cycle_a.wasm": await wat(`(module
      (import "mod_cycle_b" "cycle_b" (func $b (result i32)))
      (global (export "cycle_a_module") i32 ${API})
      (func (export "cycle_a") (result i32) call $b))`),
    "mod_cycle_b.wasm": await wat(`(module
      (import "mod_cycle_a" "cycle_a" (func $a (result i32)))
      (global (export "cycle_b_module") i32 ${API})
      (func (export "cycle_b") (result i32) call $a))`),
  };
  watDir = writeModuleDir(files);
  mkdirSync(path.join(watDir, "mod_dir.wasm"));
});

afterAll(() => removeModuleDirs());

// ---------------------------------------------------------------------------

describe("ModuleHost: loading the example modules", () => {
  it("loads mod_test, registers its help and FEAT line, and runs its handlers", () => {
    const { host, logs } = harness();
    host.loadModule("mod_test.c");
    expect(host.listModules()).toEqual(["mod_test.c"]);
    expect(host.isLoaded("mod_test.c")).toBe(true);
    const m = engineModule(host, "mod_test.c");
    expect(m.kind).toBe("dso");
    expect(m.commands.map((c) => `${c.command}:${c.phase}`)).toEqual(["TEST:CMD"]);
    expect(m.directives.map((d) => d.name)).toEqual(["TestGreeting"]);
    expect(m.features).toEqual(["TEST"]);
    expect(m.help).toEqual([{ command: "TEST", text: "[<sp> text]" }]);
    // pr_log_debug from module_init goes to the log at debug priority, prefixed with the module.
    expect(logs).toEqual(["debug: mod_test.c: mod_test: initialized"]);

    expect(run(host, "mod_test.c", ["TEST"])).toEqual({
      result: HandlerResults.HANDLED,
      replies: ["200 Hello from mod_test"],
    });

    const directive = fakeCommand(["TestGreeting", "Howdy"]);
    m.directives[0]?.run(directive, CONTEXT);
    expect(run(host, "mod_test.c", ["TEST", "a", "b"]).replies).toEqual(["200 Howdy: a b"]);

    // A refused directive: the guest adds an error line and returns ERROR.
    const wrong = fakeCommand(["TestGreeting", "a", "b"]);
    const refused = failure(() => m.directives[0]?.run(wrong, CONTEXT));
    expect(refused).toEqual({ code: ErrorCodes.CONFIG, errno: undefined, lines: ["rejected by mod_test.c"] });
    expect(wrong.replies).toEqual(["error  wrong number of parameters"]);

    host.unloadModule("mod_test.c");
    expect(logs.at(-1)).toBe("debug: mod_test.c: mod_test: unloaded");
  });

  it("runs SITE handlers with the arguments the session passes", () => {
    const { host } = harness();
    host.loadModule("mod_site_hello.c");
    expect(run(host, "mod_site_hello.c", ["SITE", "HELLO", "bob"]).replies).toEqual(["200 SITE HELLO: hello, bob"]);
    expect(run(host, "mod_site_hello.c", ["SITE", "HELLO"]).replies).toEqual(["200 SITE HELLO: hello, world"]);
  });

  it("passes DECLINED back so the command goes on to the next module", () => {
    const { host } = harness();
    host.loadModule("mod_override.c");
    expect(run(host, "mod_override.c", ["SYST"])).toEqual({
      result: HandlerResults.HANDLED,
      replies: ["215 UNIX Type: L8 (answered by mod_override.c)"],
    });
    expect(run(host, "mod_override.c", ["SYST", "CORE"])).toEqual({ result: HandlerResults.DECLINED, replies: [] });
  });

  it("binds mod_calc to libmath through the global scope after LoadFile", () => {
    const { host } = harness();
    host.loadFile(libexec("libmath.wasm"));
    host.loadModule("mod_calc.c");
    expect(run(host, "mod_calc.c", ["SITE", "CALC", "3", "4"]).replies).toEqual([
      "200 SITE CALC: 3 + 4 = 7, 3 * 4 = 12",
    ]);
    expect(run(host, "mod_calc.c", ["SITE", "CALC", "3"]).replies).toEqual([
      "error 501 SITE CALC: usage: SITE CALC <a> <b>",
    ]);
    const calc = host.describe().find((u) => u.name === "mod_calc.c");
    expect(calc?.bindings.filter((b) => b.provider === "libmath")).toEqual([
      { namespace: "env", symbol: "math_mul", provider: "libmath", type: "func (i32, i32) -> i32" },
      { namespace: "env", symbol: "math_add", provider: "libmath", type: "func (i32, i32) -> i32" },
    ]);
    // libmath's exports are in scope; its runtime exports are not.
    expect(host.describe().find((u) => u.name === "libmath")?.exports).toEqual(["math_add", "math_mul", "math_fib"]);
    expect(host.lookup("__new")).toBeUndefined();
  });

  it("describes a loaded module: file, sha256, size, memory, bindings", () => {
    const { host } = harness();
    host.loadModule("mod_test.c");
    const [info] = host.describe();
    const file = libexec("mod_test.wasm");
    expect(info).toMatchObject({
      name: "mod_test.c",
      kind: "dso",
      file,
      sha256: sha256(file),
      size: statSync(file).size,
      explicit: true,
      exports: [],
      dependents: [],
      sessions: 0,
    });
    expect(info?.bindings.map((b) => `${b.namespace}.${b.symbol} -> ${b.provider}`)).toEqual([
      "env.abort -> host",
      "env.pr_response_add_err -> host",
      "env.pr_response_add -> host",
      "env.pr_log_debug -> host",
      "env.pr_help_add -> host",
      "env.pr_feat_add -> host",
      "env.pr_cmd_argv -> host",
      "env.pr_cmd_argc -> host",
      "env.pr_cmd_arg -> host",
      "env.memory -> host",
    ]);
    // Two hosts loading the same file report the same digest.
    const other = harness().host;
    other.loadModule("mod_test.c");
    expect(other.describe()[0]?.sha256).toBe(info?.sha256);
  });

  it("gives env.memory the pages the guest asks for, within the cap", () => {
    const { host } = harness({ modulePath: "" });
    host.setModulePath(watDir);
    expect(host.modulePath).toBe(watDir);
    host.loadModule("mod_mem.c");
    expect(host.describe()[0]?.memoryBytes).toBe(3 * 65536);
    // The memory cap has one code, whether the memory is imported or defined (sandbox-limits.test.ts).
    expect(failure(() => host.loadModule("mod_bigmem.c"))).toEqual({
      code: ErrorCodes.MEMORY_LIMIT,
      errno: undefined,
      lines: ["mod_bigmem.c: memory needs 300 pages, over its cap of 256 pages"],
    });
    const capped = harness({ modulePath: watDir, policy: () => ({ ...DEFAULT_POLICY, memoryCapPages: 2 }) }).host;
    expect(failure(() => capped.loadModule("mod_mem.c")).lines).toEqual([
      "mod_mem.c: memory needs 3 pages, over its cap of 2 pages",
    ]);
  });
});

describe("ModuleHost: the ld.so scope", () => {
  it("keeps the host's symbols first: a module's pr_log_debug does not replace the host's", () => {
    const { host, trace } = harness({ modulePath: watDir });
    host.loadModule("mod_hostname.c");
    expect(host.lookup("pr_log_debug")).toEqual({
      symbol: "pr_log_debug",
      provider: "host",
      providerKind: "host",
      type: "func (i32, i32) -> nil",
      shadowed: [{ provider: "mod_hostname.c", type: "func (i32, i32) -> nil" }],
    });
    expect(host.lookup("only_here")).toEqual({
      symbol: "only_here",
      provider: "mod_hostname.c",
      providerKind: "module",
      type: "func () -> i32",
      shadowed: [],
    });
    expect(trace).toEqual([
      `<dso:5>: loading module '${watDir}/mod_hostname'`,
      "<dso:7>: looking for symbol 'hostname_module' in loaded module",
      "<dso:7>: symbol 'pr_log_debug' of mod_hostname.c is shadowed by host (first definition wins)",
      `<dso:8>: module '${watDir}/mod_hostname' successfully loaded`,
    ]);
    // mod_test, loaded after, still logs through the host.
    const logs: string[] = [];
    const other = new ModuleHost({
      modulePath: watDir,
      guestLog: (importer, level, message) => logs.push(`${importer}/${level}: ${message}`),
    });
    other.loadModule("mod_hostname.c");
    other.setModulePath(LIBEXEC_DIR);
    other.loadModule("mod_test.c");
    expect(logs).toEqual(["mod_test.c/5: mod_test: initialized"]);
  });

  it("puts a LoadFile library before modules loaded earlier", () => {
    const { host, trace } = harness({ modulePath: FIXTURES_DIR });
    host.loadModule("mod_shadow.c");
    expect(host.lookup("math_add")?.provider).toBe("mod_shadow.c");
    trace.length = 0;
    host.loadFile(libexec("libmath.wasm"));
    expect(host.lookup("math_add")).toEqual({
      symbol: "math_add",
      provider: "libmath",
      providerKind: "library",
      type: "func (i32, i32) -> i32",
      shadowed: [{ provider: "mod_shadow.c", type: "func (i32, i32) -> i32" }],
    });
    expect(trace).toEqual([
      `<dso:5>: loading file '${libexec("libmath.wasm")}'`,
      "<dso:7>: symbol 'math_add' of mod_shadow.c is shadowed by libmath (first definition wins)",
      `<dso:8>: file '${libexec("libmath.wasm")}' successfully loaded`,
    ]);
    // mod_shadow_user now binds to libmath's math_add and mod_shadow's shadow_value.
    host.loadModule("mod_shadow_user.c");
    expect(run(host, "mod_shadow_user.c", ["SITE", "SHADOW"]).replies).toEqual(["200 shadow_value=42 math_add(1,2)=3"]);
    expect(
      host
        .describe()
        .find((u) => u.name === "mod_shadow_user.c")
        ?.bindings.filter((b) => b.provider !== "host"),
    ).toEqual([
      { namespace: "env", symbol: "shadow_value", provider: "mod_shadow.c", type: "func () -> i32" },
      { namespace: "env", symbol: "math_add", provider: "libmath", type: "func (i32, i32) -> i32" },
    ]);
  });

  it("binds to the module's definition when no library defines the symbol", () => {
    const { host } = harness({ modulePath: FIXTURES_DIR });
    host.loadModule("mod_shadow.c");
    host.loadModule("mod_shadow_user.c");
    expect(run(host, "mod_shadow_user.c", ["SITE", "SHADOW"]).replies).toEqual([
      "200 shadow_value=42 math_add(1,2)=1003",
    ]);
    // A dependent holds its provider in place.
    expect(failure(() => host.unloadModule("mod_shadow.c"))).toEqual({
      code: ErrorCodes.HAS_DEPENDENTS,
      errno: Errno.EBUSY,
      lines: ["module 'mod_shadow.c' is needed by mod_shadow_user.c"],
    });
  });

  it("lets the first module defining a name win, and the next one win once it is gone", () => {
    const { host } = harness({ modulePath: watDir });
    host.loadModule("mod_first.c");
    host.loadModule("mod_second.c");
    expect(host.lookup("dup")).toEqual({
      symbol: "dup",
      provider: "mod_first.c",
      providerKind: "module",
      type: "func () -> i32",
      shadowed: [{ provider: "mod_second.c", type: "func () -> i32" }],
    });
    host.loadModule("mod_caller.c");
    expect(run(host, "mod_caller.c", ["DUP"]).result).toBe(HandlerResults.HANDLED);
    host.unloadModule("mod_caller.c");
    host.unloadModule("mod_first.c");
    expect(host.lookup("dup")).toEqual({
      symbol: "dup",
      provider: "mod_second.c",
      providerKind: "module",
      type: "func () -> i32",
      shadowed: [],
    });
    host.loadModule("mod_caller.c");
    expect(run(host, "mod_caller.c", ["DUP"]).result).toBe(HandlerResults.ERROR);
    // mod_first.c, loaded again, comes after mod_second.c.
    host.loadModule("mod_first.c");
    expect(host.lookup("dup")?.shadowed).toEqual([{ provider: "mod_first.c", type: "func () -> i32" }]);
  });

  it("binds a module to the definition lookup() reports, with its needed library in scope", () => {
    // libdup is loaded as mod_dupuser's needed library and defines math_add, as mod_shadow.c does.
    const { host } = harness({ modulePath: FIXTURES_DIR });
    host.loadModule("mod_shadow.c");
    host.setModulePath(watDir);
    host.loadModule("mod_dupuser.c");
    const bound = host
      .describe()
      .find((u) => u.name === "mod_dupuser.c")
      ?.bindings.find((b) => b.symbol === "math_add");
    expect(bound?.provider).toBe(host.lookup("math_add")?.provider);
  });

  it("keeps a needed library local: its exports never enter the global scope", () => {
    // mod_dso.c dlopens with RTLD_GLOBAL, but a library loaded only because an import names it
    // is local to its dependents here, so a dependency cannot change what other modules bind to.
    const { host } = harness({ modulePath: watDir });
    expect(() => host.loadModule("mod_bothcounter.c")).toThrow(
      expect.objectContaining({
        code: ErrorCodes.LINK,
        lines: ["mod_bothcounter.c: undefined symbol 'counter_next' (func () -> i32)"],
      }),
    );
    expect(host.describe()).toEqual([]);
    host.setModulePath(LIBEXEC_DIR);
    host.loadModule("mod_counter.c");
    expect(host.describe().map((u) => u.name)).toEqual(["mod_counter.c", "libcounter"]);
    expect(host.lookup("counter_next")).toBeUndefined();
  });
});

describe("ModuleHost: needed dependencies", () => {
  it("loads a directly bound library with its module and unloads it with the module", () => {
    const { host, trace } = harness();
    host.loadModule("mod_counter.c");
    expect(host.listModules()).toEqual(["mod_counter.c"]);
    expect(host.describe().map((u) => [u.name, u.kind, u.explicit, u.dependents])).toEqual([
      ["mod_counter.c", "dso", true, []],
      ["libcounter", "library", false, ["mod_counter.c"]],
    ]);
    expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 1"]);
    expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 2"]);
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_counter'`,
      "<dso:7>: looking for symbol 'counter_module' in loaded module",
      `<dso:5>: loading library '${LIBEXEC_DIR}/libcounter.wasm' needed by mod_counter.c`,
      "<dso:9>: binding 'counter_next' of mod_counter.c to libcounter",
      `<dso:8>: module '${LIBEXEC_DIR}/mod_counter' successfully loaded`,
    ]);
    trace.length = 0;
    host.unloadModule("mod_counter.c");
    expect(host.describe()).toEqual([]);
    expect(host.lookup("counter_next")).toBeUndefined();
    expect(trace).toEqual([
      "<dso:5>: unloading module 'mod_counter.c'",
      "<dso:5>: unloading library 'libcounter', no longer needed",
      "<dso:8>: module 'mod_counter.c' successfully unloaded",
    ]);
    // Loading again starts a fresh libcounter instance.
    host.loadModule("mod_counter.c");
    expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 1"]);
  });

  it("keeps a LoadFile'd library when the module using it goes", () => {
    const { host } = harness();
    host.loadFile(libexec("libcounter.wasm"));
    host.loadModule("mod_counter.c");
    expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 1"]);
    host.unloadModule("mod_counter.c");
    expect(host.describe().map((u) => [u.name, u.kind, u.explicit, u.dependents])).toEqual([
      ["libcounter", "library", true, []],
    ]);
    // The same instance: its state survived.
    host.loadModule("mod_counter.c");
    expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 2"]);
  });

  it("loads a module needed by a module first, and refuses to unload it while needed", () => {
    const { host, trace, logs } = harness();
    host.loadModule("mod_sql_mysql.c");
    expect(host.listModules()).toEqual(["mod_sql.c", "mod_sql_mysql.c"]);
    expect(logs).toEqual(["debug: mod_sql_mysql.c: mod_sql_mysql: registered as backend #1"]);
    expect(run(host, "mod_sql.c", ["SITE", "SQL"]).replies).toEqual(["200 SITE SQL: 1 backend(s) registered"]);
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_sql_mysql'`,
      "<dso:7>: looking for symbol 'sql_mysql_module' in loaded module",
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_sql' needed by mod_sql_mysql.c`,
      "<dso:7>: looking for symbol 'sql_module' in loaded module",
      "<dso:9>: binding 'sql_unregister_backend' of mod_sql_mysql.c to mod_sql.c",
      "<dso:9>: binding 'sql_register_backend' of mod_sql_mysql.c to mod_sql.c",
      `<dso:8>: module '${LIBEXEC_DIR}/mod_sql_mysql' successfully loaded`,
    ]);
    trace.length = 0;
    expect(failure(() => host.unloadModule("mod_sql.c"))).toEqual({
      code: ErrorCodes.HAS_DEPENDENTS,
      errno: Errno.EBUSY,
      lines: ["module 'mod_sql.c' is needed by mod_sql_mysql.c"],
    });
    expect(trace).toEqual([]);
    expect(failure(() => host.loadModule("mod_sql.c")).code).toBe(ErrorCodes.ALREADY_LOADED);
    host.unloadModule("mod_sql_mysql.c");
    expect(host.listModules()).toEqual([]);
  });

  it("keeps an explicitly loaded needed module, and runs the dependent's unload hook", () => {
    const { host } = harness();
    host.loadModule("mod_sql.c");
    host.loadModule("mod_sql_mysql.c");
    expect(host.describe().map((u) => [u.name, u.explicit, u.dependents])).toEqual([
      ["mod_sql.c", true, ["mod_sql_mysql.c"]],
      ["mod_sql_mysql.c", true, []],
    ]);
    host.unloadModule("mod_sql_mysql.c");
    expect(host.listModules()).toEqual(["mod_sql.c"]);
    expect(run(host, "mod_sql.c", ["SITE", "SQL"]).replies).toEqual(["200 SITE SQL: 0 backend(s) registered"]);
  });

  it("refuses a dependency cycle", () => {
    const { host } = harness({ modulePath: watDir });
    expect(failure(() => host.loadModule("mod_cycle_a.c"))).toEqual({
      code: ErrorCodes.DEPENDENCY_CYCLE,
      errno: undefined,
      lines: ["dependency cycle: mod_cycle_a.c -> mod_cycle_b.c -> mod_cycle_a.c"],
    });
    expect(host.listModules()).toEqual([]);
    expect(host.describe()).toEqual([]);
  });
});

describe("ModuleHost: duplicates, compiled-in and protected modules, names", () => {
  it("refuses a module that is already loaded, with proftpd's log and trace lines", () => {
    const { host, trace, logs } = harness();
    host.loadModule("mod_test.c");
    trace.length = 0;
    logs.length = 0;
    expect(failure(() => host.loadModule("mod_test.c"))).toEqual({
      code: ErrorCodes.ALREADY_LOADED,
      errno: Errno.EEXIST,
      lines: ["module 'mod_test.c' already loaded"],
    });
    expect(logs).toEqual(["info: mod_dso/0.5: module 'mod_test.c' already loaded"]);
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
      "<dso:1>: module 'mod_test.c' already loaded",
    ]);
    expect(host.listModules()).toEqual(["mod_test.c"]);
  });

  it("refuses a compiled-in module as already loaded", () => {
    const { host, trace } = harness({ compiledIn: [STATIC_CORE] });
    expect(host.listModules()).toEqual(["mod_core.c"]);
    expect(failure(() => host.loadModule("mod_core.c"))).toEqual({
      code: ErrorCodes.ALREADY_LOADED,
      errno: Errno.EEXIST,
      lines: ["module 'mod_core.c' already loaded"],
    });
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_core'`,
      "<dso:7>: looking for symbol 'core_module' in loaded module",
      "<dso:1>: module 'mod_core.c' already loaded",
    ]);
    expect(host.describe()).toEqual([
      { name: "mod_core.c", kind: "static", explicit: true, exports: [], bindings: [], dependents: [], sessions: 0 },
    ]);
  });

  it("removes a compiled-in module from the engine and puts it back at the end", () => {
    let inits = 0;
    const { host, trace } = harness({ compiledIn: [STATIC_CORE, staticModule("mod_xfer.c", () => inits++)] });
    expect(inits).toBe(1);
    host.loadModule("mod_test.c");
    trace.length = 0;
    host.unloadModule("mod_xfer.c");
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c"]);
    expect(host.isLoaded("mod_xfer.c")).toBe(false);
    host.loadModule("mod_xfer.c");
    expect(host.listModules()).toEqual(["mod_core.c", "mod_test.c", "mod_xfer.c"]);
    // pr_module_load runs init again on the re-insert.
    expect(inits).toBe(2);
    expect(trace).toEqual([
      "<dso:5>: unloading module 'mod_xfer.c'",
      "<dso:8>: module 'mod_xfer.c' successfully unloaded",
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_xfer'`,
      "<dso:7>: looking for symbol 'xfer_module' in loaded module",
      `<dso:8>: module '${LIBEXEC_DIR}/mod_xfer' successfully loaded`,
    ]);
  });

  it("refuses to unload a protected module, without trace lines", () => {
    const { host, trace } = harness({
      compiledIn: [STATIC_CORE, staticModule("mod_dso.c")],
      protectedModules: ["mod_dso.c"],
    });
    expect(failure(() => host.unloadModule("mod_dso.c"))).toEqual({
      code: ErrorCodes.PROTECTED,
      errno: Errno.EPERM,
      lines: ["module 'mod_dso.c' cannot be unloaded"],
    });
    expect(host.listModules()).toEqual(["mod_core.c", "mod_dso.c"]);
    expect(trace).toEqual([]);
  });

  it("refuses to unload a module that is not loaded, without trace lines", () => {
    const { host, trace } = harness();
    expect(failure(() => host.unloadModule("mod_nope.c"))).toEqual({
      code: ErrorCodes.NOT_LOADED,
      errno: Errno.ENOENT,
      lines: ["module 'mod_nope.c' is not loaded"],
    });
    expect(trace).toEqual([]);
  });

  it("refuses bad names before touching the filesystem or the trace", () => {
    const { host, trace } = harness();
    for (const name of ["mod_../x.c", "foo.c", "mod_x"]) {
      expect(failure(() => host.loadModule(name))).toEqual({
        code: ErrorCodes.BAD_MODULE_NAME,
        errno: Errno.EINVAL,
        lines: [`bad module name '${name}'`],
      });
    }
    expect(failure(() => host.unloadModule("mod_x.cpp")).code).toBe(ErrorCodes.BAD_MODULE_NAME);
    expect(trace).toEqual([]);
  });

  it("LoadFile: absolute paths only, the same file twice is fine, another file under a taken name is not", () => {
    const { host } = harness();
    expect(failure(() => host.loadFile("libmath.wasm"))).toEqual({
      code: ErrorCodes.NOT_ABSOLUTE,
      errno: Errno.EINVAL,
      lines: ["must be an absolute path"],
    });
    host.loadFile(libexec("libmath.wasm"));
    host.loadFile(libexec("libmath.wasm"));
    expect(host.describe().map((u) => u.name)).toEqual(["libmath"]);
    expect(failure(() => host.loadFile(path.join(watDir, "libmath.wasm")))).toEqual({
      code: ErrorCodes.ALREADY_LOADED,
      errno: Errno.EEXIST,
      lines: [`a library named 'libmath' is already loaded from '${libexec("libmath.wasm")}'`],
    });
  });
});

describe("ModuleHost: every bad guest fails with its own code, errno and lines", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly dir: () => string; readonly expected: () => Failure }> =
    [
      {
        name: "mod_undef.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.LINK,
          errno: undefined,
          lines: [
            "mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32)",
            "mod_undef.c: undefined symbol 'another_missing' (func () -> nil)",
          ],
        }),
      },
      {
        name: "mod_badsig.c",
        dir: () => FIXTURES_DIR,
        expected: () => ({
          code: ErrorCodes.LINK,
          errno: undefined,
          lines: [
            "mod_badsig.c: symbol 'math_add' has type func (i32, i32) -> i32 in libmath, but mod_badsig.c imports func (i32) -> nil",
          ],
        }),
      },
      {
        name: "mod_badapi.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.API_VERSION,
          errno: Errno.EACCES,
          lines: ["module 'mod_badapi.c' has wrong API version (0x10), must be 0x20"],
        }),
      },
      {
        name: "mod_initfail.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.INIT_FAILED,
          errno: Errno.EPERM,
          lines: ["module 'mod_initfail.c' failed to initialize"],
        }),
      },
      {
        name: "mod_inittrap.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.INIT_FAILED,
          errno: Errno.EPERM,
          lines: ["module 'mod_inittrap.c' failed to initialize", "mod_inittrap.c: fault in module_init: unreachable"],
        }),
      },
      {
        name: "mod_nosym.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.NO_MODULE_SYMBOL,
          errno: Errno.ENOENT,
          lines: ["unable to find module symbol 'nosym_module' in 'mod_nosym.c'"],
        }),
      },
      {
        name: "mod_needs_missing.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.LINK,
          errno: undefined,
          lines: [
            `mod_needs_missing.c: needed library 'libnowhere': '${path.join(watDir, "libnowhere.wasm")}' does not exist`,
            "mod_needs_missing.c: undefined symbol 'nowhere' in libnowhere (func () -> i32)",
          ],
        }),
      },
      {
        name: "mod_cycle_a.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.DEPENDENCY_CYCLE,
          errno: undefined,
          lines: ["dependency cycle: mod_cycle_a.c -> mod_cycle_b.c -> mod_cycle_a.c"],
        }),
      },
      {
        name: "mod_missing.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.MODULE_NOT_FOUND,
          errno: Errno.ENOENT,
          lines: [`'${path.join(watDir, "mod_missing.wasm")}' does not exist`],
        }),
      },
      {
        name: "mod_badproto.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.BAD_MODULE,
          errno: undefined,
          lines: [
            "mod_badproto.c: 'cmd_FOO' has type func (i32) -> i32, must be func () -> i32",
            "mod_badproto.c: 'site_BAR' has type func () -> nil, must be func () -> i32",
            "mod_badproto.c: 'module_init' has type global i32, must be func () -> i32",
          ],
        }),
      },
      {
        name: "mod_garbage.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.BAD_WASM,
          errno: undefined,
          lines: [`'${path.join(watDir, "mod_garbage.wasm")}': not a WebAssembly binary (bad magic number)`],
        }),
      },
      {
        name: "mod_dir.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.UNSAFE_FILE,
          errno: Errno.EACCES,
          lines: [`'${path.join(watDir, "mod_dir.wasm")}' is not a regular file`],
        }),
      },
      {
        name: "mod_starttrap.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.GUEST_TRAP,
          errno: undefined,
          lines: ["mod_starttrap.c: start function failed: unreachable"],
        }),
      },
      {
        name: "mod_outside.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.INIT_FAILED,
          errno: Errno.EPERM,
          lines: [
            "module 'mod_outside.c' failed to initialize",
            "mod_outside.c: fault in module_init: 'pr_cmd_argc' called outside a command or directive handler",
          ],
        }),
      },
      {
        name: "mod_usesfail.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.INIT_FAILED,
          errno: Errno.EPERM,
          lines: ["library 'libinitfail' failed to initialize", "libinitfail: fault in _initialize: unreachable"],
        }),
      },
      {
        name: "mod_okthenfail.c",
        dir: () => watDir,
        expected: () => ({
          code: ErrorCodes.INIT_FAILED,
          errno: Errno.EPERM,
          lines: ["module 'mod_okthenfail.c' failed to initialize"],
        }),
      },
    ];

  /** Everything a failed load must leave as it was. */
  function snapshot(host: ModuleHost) {
    return {
      modules: host.listModules(),
      describe: host.describe(),
      scopeSize: host.scopeSize,
      lookups: [
        "math_add",
        "sql_register_backend",
        "counter_next",
        "shadow_value",
        "ok_value",
        "f",
        "pr_log_debug",
      ].map((s) => host.lookup(s)),
    };
  }

  for (const c of cases) {
    it(`${c.name}: its failure, and the host left exactly as it was`, () => {
      const { host } = harness({ compiledIn: [STATIC_CORE] });
      // A populated host: a library, modules, a needed library and a needed module.
      host.loadFile(libexec("libmath.wasm"));
      host.loadModule("mod_test.c");
      host.loadModule("mod_counter.c");
      host.loadModule("mod_sql_mysql.c");
      const before = snapshot(host);
      host.setModulePath(c.dir());
      expect(failure(() => host.loadModule(c.name))).toEqual(c.expected());
      expect(snapshot(host)).toEqual(before);
      // And the host still works.
      host.setModulePath(LIBEXEC_DIR);
      expect(run(host, "mod_counter.c", ["COUNT"]).replies).toEqual(["200 COUNT 1"]);
      host.loadModule("mod_site_hello.c");
      expect(host.listModules()).toEqual([
        "mod_core.c",
        "mod_test.c",
        "mod_counter.c",
        "mod_sql.c",
        "mod_sql_mysql.c",
        "mod_site_hello.c",
      ]);
    });
  }

  it("mod_badsig.c without libmath: the symbol is undefined", () => {
    const { host } = harness({ modulePath: FIXTURES_DIR });
    expect(failure(() => host.loadModule("mod_badsig.c")).lines).toEqual([
      "mod_badsig.c: undefined symbol 'math_add' (func (i32) -> nil)",
    ]);
  });

  it("mod_shadow_user.c without its providers: every undefined symbol together, in import order", () => {
    const { host } = harness({ modulePath: FIXTURES_DIR });
    expect(failure(() => host.loadModule("mod_shadow_user.c"))).toEqual({
      code: ErrorCodes.LINK,
      errno: undefined,
      lines: [
        "mod_shadow_user.c: undefined symbol 'shadow_value' (func () -> i32)",
        "mod_shadow_user.c: undefined symbol 'math_add' (func (i32, i32) -> i32)",
      ],
    });
  });

  it("a module the engine refuses to compile: DSO_ERR_BAD_WASM naming the file", () => {
    const { host } = harness({ modulePath: watDir });
    const error = failure(() => host.loadModule("mod_badcode.c"));
    expect(error.code).toBe(ErrorCodes.BAD_WASM);
    // The rest of the line is V8's own wording.
    expect(error.lines[0]?.startsWith(`'${path.join(watDir, "mod_badcode.wasm")}': WebAssembly.Module(): `)).toBe(true);
    expect(host.listModules()).toEqual([]);
  });

  it("a data segment out of bounds is the engine refusing to instantiate, not a trapping start function", () => {
    const { host } = harness({ modulePath: watDir });
    const error = failure(() => host.loadModule("mod_dataoob.c"));
    expect(error.code).toBe(ErrorCodes.INSTANTIATE);
    expect(error.lines[0]?.startsWith("mod_dataoob.c: cannot be instantiated: ")).toBe(true);
    expect(host.listModules()).toEqual([]);
  });

  it("logs proftpd's error lines for API version and init failures", () => {
    const { host, logs } = harness({ modulePath: FIXTURES_DIR });
    failure(() => host.loadModule("mod_badapi.c"));
    failure(() => host.loadModule("mod_initfail.c"));
    expect(logs).toEqual([
      "error: mod_dso/0.5: module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
      "error: mod_dso/0.5: module 'mod_initfail.c' failed to initialize",
    ]);
  });

  it("traces link failures at level 1, one line each", () => {
    const { host, trace } = harness({ modulePath: FIXTURES_DIR });
    failure(() => host.loadModule("mod_undef.c"));
    expect(trace).toEqual([
      `<dso:5>: loading module '${FIXTURES_DIR}/mod_undef'`,
      "<dso:7>: looking for symbol 'undef_module' in loaded module",
      "<dso:1>: mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32)",
      "<dso:1>: mod_undef.c: undefined symbol 'another_missing' (func () -> nil)",
    ]);
  });
});

describe("ModuleHost: traps are contained", () => {
  it("reports a trap with module and entry point, stops calling the faulted instance, and keeps working", () => {
    let now = 1_000_000;
    const { host, logs } = harness({ modulePath: FIXTURES_DIR, clock: () => now });
    host.loadModule("mod_trap.c");
    expect(run(host, "mod_trap.c", ["SITE", "OK", "before"]).replies).toEqual(["200 SITE OK: OK before"]);
    expect(failure(() => run(host, "mod_trap.c", ["SITE", "TRAP"]))).toEqual({
      code: ErrorCodes.GUEST_TRAP,
      errno: undefined,
      lines: ["mod_trap.c: fault in site_TRAP: unreachable"],
    });
    expect(logs).toEqual(["error: mod_trap.c: fault in site_TRAP: unreachable"]);
    // Its memory may be inconsistent now: the instance is never entered again. Until the
    // reload backoff (100 ms after a first fault) has passed, calls are refused.
    const refused = failure(() => run(host, "mod_trap.c", ["SITE", "OK"]));
    expect(refused.code).toBe(ErrorCodes.DISABLED);
    expect(refused.lines).toEqual(["mod_trap.c: disabled after a fault (site_OK not called, retried in 100 ms)"]);
    now += 99;
    expect(failure(() => run(host, "mod_trap.c", ["SITE", "OK"])).lines).toEqual([
      "mod_trap.c: disabled after a fault (site_OK not called, retried in 1 ms)",
    ]);
    // Then a fresh instance answers, and the faulted one is gone for good.
    now += 1;
    expect(run(host, "mod_trap.c", ["SITE", "OK", "again"]).replies).toEqual(["200 SITE OK: OK again"]);
    expect(logs.at(-1)).toBe("notice: mod_trap.c: re-instantiating after a fault");
    // The host still loads and runs other modules, and can unload the faulted one.
    host.setModulePath(LIBEXEC_DIR);
    host.loadModule("mod_test.c");
    expect(run(host, "mod_test.c", ["TEST", "still", "here"]).replies).toEqual(["200 Hello from mod_test: still here"]);
    host.unloadModule("mod_trap.c");
    expect(host.listModules()).toEqual(["mod_test.c"]);
  });

  it("doubles the backoff with each fault, and unloads a module in a crash loop", () => {
    let now = 5_000;
    const fault = { action: "reload" as const, maxFaults: 3, windowMs: 10_000 };
    const { host, logs } = harness({
      modulePath: FIXTURES_DIR,
      clock: () => now,
      policy: () => ({ ...DEFAULT_POLICY, fault }),
    });
    host.loadModule("mod_trap.c");
    const trap = (): string => failure(() => run(host, "mod_trap.c", ["SITE", "TRAP"])).lines[0] ?? "";
    const refusal = (): string => failure(() => run(host, "mod_trap.c", ["SITE", "OK"])).lines[0] ?? "";
    trap();
    expect(refusal()).toBe("mod_trap.c: disabled after a fault (site_OK not called, retried in 100 ms)");
    now += 100;
    expect(trap()).toBe("mod_trap.c: fault in site_TRAP: unreachable");
    expect(refusal()).toBe("mod_trap.c: disabled after a fault (site_OK not called, retried in 200 ms)");
    now += 200;
    // The third fault within 10 s is a crash loop: the module leaves the engine and is never retried.
    trap();
    expect(logs.slice(-2)).toEqual([
      "error: mod_trap.c: fault in site_TRAP: unreachable",
      "error: mod_trap.c: unloaded after 3 faults within 10 s",
    ]);
    expect(host.listModules()).toEqual([]);
  });

  it("forgets faults older than the crash-loop window", () => {
    let now = 0;
    const fault = { action: "reload" as const, maxFaults: 2, windowMs: 1_000 };
    const { host } = harness({
      modulePath: FIXTURES_DIR,
      clock: () => now,
      policy: () => ({ ...DEFAULT_POLICY, fault }),
    });
    host.loadModule("mod_trap.c");
    failure(() => run(host, "mod_trap.c", ["SITE", "TRAP"]));
    now += 1_000;
    failure(() => run(host, "mod_trap.c", ["SITE", "TRAP"]));
    expect(host.listModules()).toEqual(["mod_trap.c"]);
    now += 100;
    expect(run(host, "mod_trap.c", ["SITE", "OK", "x"]).replies).toEqual(["200 SITE OK: OK x"]);
  });

  it("a handler sees the command it is given", () => {
    const { host } = harness();
    host.loadModule("mod_test.c");
    const handler = engineModule(host, "mod_test.c").commands[0];
    // The command a handler is run with is the one its host symbols act on.
    const command = fakeCommand(["TEST", "x"]);
    expect(handler?.run(command, session([]))).toBe(HandlerResults.HANDLED);
    expect(command.replies).toEqual(["200 Hello from mod_test: x"]);
  });
});

describe("ModuleHost: trace lines follow mod_dso.c's dso_load_module/dso_unload_module sequence", () => {
  it("load, already loaded, unload", () => {
    const { host, trace } = harness();
    host.loadModule("mod_test.c");
    failure(() => host.loadModule("mod_test.c"));
    host.unloadModule("mod_test.c");
    expect(trace).toEqual([
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
      `<dso:8>: module '${LIBEXEC_DIR}/mod_test' successfully loaded`,
      `<dso:5>: loading module '${LIBEXEC_DIR}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
      "<dso:1>: module 'mod_test.c' already loaded",
      "<dso:5>: unloading module 'mod_test.c'",
      "<dso:8>: module 'mod_test.c' successfully unloaded",
    ]);
  });

  it("Trace dso:1 shows only the level-1 lines", () => {
    const { host, trace } = harness({}, 1);
    host.loadModule("mod_test.c");
    failure(() => host.loadModule("mod_test.c"));
    host.unloadModule("mod_test.c");
    expect(trace).toEqual(["<dso:1>: module 'mod_test.c' already loaded"]);
  });
});

describe("ModuleHost: sessions and close", () => {
  it("keeps an unloaded module alive for the sessions holding it, then runs its unload hook", () => {
    const { host, logs } = harness();
    host.loadModule("mod_test.c");
    const set = host.acquireModules();
    expect(set.modules.map((m) => m.name)).toEqual(["mod_test.c"]);
    expect(host.describe()[0]?.sessions).toBe(1);
    host.unloadModule("mod_test.c");
    expect(host.listModules()).toEqual([]);
    // Still usable from the session that holds it.
    const handler = set.modules[0]?.commands[0];
    const command = fakeCommand(["TEST"]);
    expect(handler?.run(command, session(set.modules))).toBe(HandlerResults.HANDLED);
    expect(logs.at(-1)).toBe("debug: mod_test.c: mod_test: initialized");
    set.release();
    expect(logs.at(-1)).toBe("debug: mod_test.c: mod_test: unloaded");
    set.release();
    expect(logs.filter((l) => l.endsWith("unloaded"))).toHaveLength(1);
  });

  it("close() unloads every module newest first, then the libraries", () => {
    const { host, logs } = harness();
    host.loadFile(libexec("libmath.wasm"));
    host.loadModule("mod_test.c");
    host.loadModule("mod_sql_mysql.c");
    host.close();
    expect(host.listModules()).toEqual([]);
    expect(host.describe()).toEqual([]);
    expect(host.lookup("math_add")).toBeUndefined();
    expect(logs.at(-1)).toBe("debug: mod_test.c: mod_test: unloaded");
  });
});
