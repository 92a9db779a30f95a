import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { MEMORY_POOL_LIMITS, MemoryPool } from "../../../host/modules/memory-pool.js";
import { HandlerResults } from "../../../host/modules/module-api.js";
import type { EngineModule, SessionState } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";

const PAGE = 65_536;
const API = "(i32.const 0x20)";
const SECRET = 0x5ec2e7;
const MINE = 0x1234;

function bytesOf(memory: WebAssembly.Memory): Uint8Array {
  return new Uint8Array(memory.buffer);
}

describe("MemoryPool", () => {
  it("hands back a released memory of the same limits, zeroed", () => {
    const pool = new MemoryPool();
    const memory = pool.acquire({ initial: 1, maximum: 4 });
    bytesOf(memory).fill(0xab, 0, PAGE);
    pool.release(memory, { initial: 1, maximum: 4 });
    expect(pool.size).toBe(1);
    const again = pool.acquire({ initial: 1, maximum: 4 });
    expect(again).toBe(memory);
    expect(bytesOf(again).every((b) => b === 0)).toBe(true);
    expect(pool.size).toBe(0);
  });

  it("never hands a memory to a request with other limits", () => {
    const pool = new MemoryPool();
    const memory = pool.acquire({ initial: 1, maximum: 4 });
    pool.release(memory, { initial: 1, maximum: 4 });
    const other = pool.acquire({ initial: 1, maximum: 8 });
    expect(other).not.toBe(memory);
    expect(other.buffer.byteLength).toBe(PAGE);
    expect(() => other.grow(7)).not.toThrow();
    expect(() => other.grow(1)).toThrow(RangeError);
    expect(pool.size).toBe(1);
  });

  it("leaves a memory that grew to the garbage collector", () => {
    const pool = new MemoryPool();
    const memory = pool.acquire({ initial: 1, maximum: 4 });
    memory.grow(1);
    pool.release(memory, { initial: 1, maximum: 4 });
    expect(pool.size).toBe(0);
    expect(pool.acquire({ initial: 1, maximum: 4 })).not.toBe(memory);
  });

  it(`keeps at most ${MEMORY_POOL_LIMITS.memories} memories`, () => {
    const pool = new MemoryPool();
    const limits = { initial: 1, maximum: 1 };
    const memories = Array.from({ length: MEMORY_POOL_LIMITS.memories + 5 }, () => pool.acquire(limits));
    for (const memory of memories) pool.release(memory, limits);
    expect(pool.size).toBe(MEMORY_POOL_LIMITS.memories);
  });

  it(`keeps at most ${MEMORY_POOL_LIMITS.bytes / 1024 / 1024} MiB`, () => {
    const pool = new MemoryPool();
    const limits = { initial: 40, maximum: 40 };
    const memories = Array.from({ length: 5 }, () => pool.acquire(limits));
    for (const memory of memories) pool.release(memory, limits);
    expect(pool.size).toBe(Math.floor(MEMORY_POOL_LIMITS.bytes / (40 * PAGE)));
  });
});

// ---------------------------------------------------------------------------
// Through ModuleHost: a memory is recycled only when nothing can run its
// instance again, and the next module never sees what the last one wrote.
// ---------------------------------------------------------------------------

let dir: string;

beforeAll(async () => {
  dir = writeModuleDir({
    // Writes a secret into its memory at init; secret_peek reads it back.
    "mod_secret.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (global (export "secret_module") i32 ${API})
      (func (export "module_init") (result i32) (i32.store (i32.const 1000) (i32.const ${SECRET})) (i32.const 0))
      (func (export "cmd_SECRET") (result i32) (i32.const 1))
      (func (export "secret_peek") (result i32) (i32.load (i32.const 1000))))`),
    // Refuses to load unless its memory starts zeroed, then writes its own value where the secret was.
    "mod_fresh.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (global (export "fresh_module") i32 ${API})
      (func (export "module_init") (result i32)
        (if (i32.ne (i32.load (i32.const 1000)) (i32.const 0)) (then (return (i32.const -1))))
        (i32.store (i32.const 1000) (i32.const ${MINE}))
        (i32.const 0)))`),
    // A needed library with the same memory limits, holding a value its user checks.
    "libkeep.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (func (export "_initialize") (i32.store (i32.const 1000) (i32.const ${SECRET})))
      (func (export "keep_get") (result i32) (i32.load (i32.const 1000))))`),
    "mod_keeper.wasm": await wat(`(module
      (import "libkeep" "keep_get" (func $get (result i32)))
      (global (export "keeper_module") i32 ${API})
      (func (export "cmd_KEEP") (result i32)
        (if (result i32) (i32.eq (call $get) (i32.const ${SECRET})) (then (i32.const 1)) (else (i32.const -1)))))`),
    // Echoes its argument: the host allocates it with the module's __new (a bump allocator laid out as
    // AssemblyScript's: id at ptr-8, byte size at ptr-4) and reads the reply back; "200" is static data.
    "mod_echo.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (import "env" "pr_cmd_arg" (func $arg (result i32)))
      (import "env" "pr_response_add" (func $reply (param i32 i32)))
      (global $next (mut i32) (i32.const 1024))
      (global (export "echo_module") i32 ${API})
      (data (i32.const 56) "\\02\\00\\00\\00\\06\\00\\00\\00\\32\\00\\30\\00\\30\\00")
      (func (export "__new") (param $size i32) (param $id i32) (result i32) (local $ptr i32)
        (local.set $ptr (i32.add (global.get $next) (i32.const 8)))
        (i32.store (i32.sub (local.get $ptr) (i32.const 8)) (local.get $id))
        (i32.store (i32.sub (local.get $ptr) (i32.const 4)) (local.get $size))
        (global.set $next (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 15)) (i32.const -16)))
        (local.get $ptr))
      (func (export "cmd_ECHO") (result i32) (local $text i32)
        (local.set $text (call $arg))
        ;; Refuses (-1) unless the host allocated the argument with this instance's own __new.
        (if (i32.eq (global.get $next) (i32.const 1024)) (then (return (i32.const -1))))
        (call $reply (i32.const 64) (local.get $text))
        (i32.const 1)))`),
    // Logs a literal (in its data segment) and a copy of it made at run time, and can overwrite both.
    "mod_literal.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (import "env" "pr_log_debug" (func $log (param i32 i32)))
      (global (export "literal_module") i32 ${API})
      (data (i32.const 56) "\\02\\00\\00\\00\\06\\00\\00\\00\\6c\\00\\69\\00\\74\\00")
      (func (export "_initialize") (memory.copy (i32.const 4088) (i32.const 56) (i32.const 14)))
      (func (export "cmd_LOG") (result i32) (call $log (i32.const 0) (i32.const 64)) (call $log (i32.const 0) (i32.const 4096)) (i32.const 1))
      (func (export "cmd_OVERWRITE") (result i32) (i32.store16 (i32.const 64) (i32.const 0x58)) (i32.store16 (i32.const 4096) (i32.const 0x58)) (i32.const 1)))`),
    // Asks the host for a string but does not export the AssemblyScript runtime to allocate it in.
    "mod_noruntime.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (import "env" "pr_cmd_arg" (func $arg (result i32)))
      (global (export "noruntime_module") i32 ${API})
      (func (export "cmd_ARG") (result i32) (drop (call $arg)) (i32.const 1)))`),
  });
});

afterAll(() => removeModuleDirs());

function command(argv: readonly string[]): ActiveCommand {
  return testCommand(argv);
}

function session(modules: readonly EngineModule[]): SessionState {
  return testSession(modules, undefined);
}

function handlerOf(
  modules: readonly EngineModule[],
  module: string,
  name: string,
): (argv: readonly string[]) => number {
  const found = modules.find((m) => m.name === module)?.commands.find((h) => h.command === name && h.phase === "CMD");
  if (found === undefined) throw new Error(`${module} has no CMD handler for ${name}`);
  return (argv) => settled(found.run(command(argv), session(modules)));
}

function failure(action: () => unknown): DsoError {
  try {
    action();
  } catch (error) {
    if (error instanceof DsoError) return error;
    throw error;
  }
  throw new Error("expected a DsoError");
}

describe("ModuleHost: recycled memories", () => {
  it("gives the next module a memory without a trace of the unloaded one", () => {
    const host = new ModuleHost({ modulePath: dir });
    for (let i = 0; i < 3; i++) {
      host.loadModule("mod_secret.c");
      host.unloadModule("mod_secret.c");
      // module_init refuses the load if the secret is still there.
      host.loadModule("mod_fresh.c");
      host.unloadModule("mod_fresh.c");
    }
    host.close();
  });

  it("refuses a handler kept past rmmod instead of running it on a memory that is no longer its own", () => {
    const host = new ModuleHost({ modulePath: dir });
    host.loadModule("mod_secret.c");
    const stale = handlerOf(host.engineModules(), "mod_secret.c", "SECRET");
    expect(stale(["SECRET"])).toBe(HandlerResults.HANDLED);
    host.unloadModule("mod_secret.c");
    host.loadModule("mod_fresh.c");
    const error = failure(() => stale(["SECRET"]));
    expect(error.code).toBe(ErrorCodes.NOT_LOADED);
    expect(error.message).toBe("mod_secret.c: unloaded (cmd_SECRET not called)");
    host.close();
  });

  it("never recycles the memory of a module whose export dlsym handed out", () => {
    const host = new ModuleHost({ modulePath: dir });
    host.loadModule("mod_secret.c");
    const peek = host.dlsym("secret_peek") as () => number;
    host.unloadModule("mod_secret.c");
    host.loadModule("mod_fresh.c");
    // Still its own memory: had it gone to mod_fresh.c, peek would read 0x1234 (or fail mod_fresh's init).
    expect(peek()).toBe(SECRET);
    host.close();
  });

  it("keeps a needed library and its memory for a session that still holds its rmmod'ed user", () => {
    const host = new ModuleHost({ modulePath: dir });
    host.loadModule("mod_keeper.c");
    const held = host.acquireModules();
    host.unloadModule("mod_keeper.c");
    expect(host.describe().map((u) => u.name)).toEqual([]);
    host.loadModule("mod_fresh.c");
    const keep = handlerOf(held.modules, "mod_keeper.c", "KEEP");
    expect(keep(["KEEP"])).toBe(HandlerResults.HANDLED);
    held.release();
    host.unloadModule("mod_fresh.c");
    // Released now: the library's memory went back zeroed, and mod_fresh.c loads on it.
    host.loadModule("mod_fresh.c");
    host.close();
  });

  it("passes strings both ways through a recycled memory, allocating with the instance that now uses it", () => {
    const host = new ModuleHost({ modulePath: dir });
    for (const text of ["one", "two", "three"]) {
      host.loadModule("mod_echo.c");
      const replies: string[] = [];
      const echo: ActiveCommand = {
        ...command(["ECHO", text]),
        addResponse: (code, message) => replies.push(`${code} ${message}`),
      };
      const handler = host
        .engineModules()
        .find((m) => m.name === "mod_echo.c")
        ?.commands.find((h) => h.command === "ECHO");
      expect(handler?.run(echo, session([]))).toBe(HandlerResults.HANDLED);
      expect(replies).toEqual([`200 ${text}`]);
      host.unloadModule("mod_echo.c");
    }
    host.close();
  });

  it("reads a literal once per instance, and a string built at run time every time", () => {
    const logged: string[] = [];
    const host = new ModuleHost({ modulePath: dir, guestLog: (_importer, _level, message) => logged.push(message) });
    const run = (name: string): void => {
      const handler = host
        .engineModules()
        .find((m) => m.name === "mod_literal.c")
        ?.commands.find((h) => h.command === name);
      const cmd = command([name]);
      void handler?.run(cmd, session([]));
    };
    host.loadModule("mod_literal.c");
    run("LOG");
    run("OVERWRITE");
    run("LOG");
    // The module wrote over its own literal: the host keeps showing the literal, and sees the run-time copy change.
    expect(logged).toEqual(["lit", "lit", "lit", "Xit"]);
    host.unloadModule("mod_literal.c");
    host.loadModule("mod_literal.c");
    logged.length = 0;
    run("LOG");
    expect(logged).toEqual(["lit", "lit"]);
    host.close();
  });

  it("refuses at load a guest that asks for strings without exporting the runtime that allocates them", () => {
    const host = new ModuleHost({ modulePath: dir, log: () => {} });
    const error = failure(() => host.loadModule("mod_noruntime.c"));
    expect(error.code).toBe(ErrorCodes.ABI);
    expect(error.message).toBe(
      `mod_noruntime.c: built without "exportRuntime": true (asc --exportRuntime): it receives strings from host symbols ('pr_cmd_arg'), which the host allocates with the module's own __new; extend the SDK's config: "extends": "wasm-dso/asconfig.json"`,
    );
    expect(host.listModules()).toEqual([]);
    host.close();
  });
});
