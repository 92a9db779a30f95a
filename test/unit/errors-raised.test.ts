/**
 * The codes no other test file raises through the API that raises them, each
 * asserted here through that API: a pinned module whose file differs, grants
 * refused at link time (alone and next to other link problems), a guest
 * passing a pointer that is no string, a User dsod cannot become, and a
 * port it cannot listen on.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Daemon } from "../../host/daemon/daemon.js";
import { DsoError, Errno, ErrorCodes } from "../../host/errors.js";
import type { ErrorCode } from "../../host/errors.js";
import { ModuleHost } from "../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../host/modules/policy.js";
import type { UnitPolicy } from "../../host/modules/policy.js";
import { dropPrivileges, resolveIdentity } from "../../host/system/privileges.js";
import type { IdentityLookup, ProcessIds } from "../../host/system/privileges.js";
import { testCommand, testSession } from "../helpers/session.js";
import { removeModuleDirs, wat, writeModuleDir } from "../helpers/wat.js";

const API = "(i32.const 0x20)";
let dir: string;

beforeAll(async () => {
  dir = writeModuleDir({
    "mod_plain.wasm": await wat(`(module (global (export "plain_module") i32 ${API}))`),
    "mod_user.wasm": await wat(`(module
      (import "env" "memory" (memory 1 1))
      (import "env" "pr_session_user" (func (result i32)))
      (func (export "__new") (param i32 i32) (result i32) (i32.const 0))
      (global (export "user_module") i32 ${API}))`),
    "mod_userundef.wasm": await wat(`(module
      (import "env" "memory" (memory 1 1))
      (import "env" "pr_session_user" (func (result i32)))
      (import "env" "no_such_symbol" (func))
      (func (export "__new") (param i32 i32) (result i32) (i32.const 0))
      (global (export "userundef_module") i32 ${API}))`),
    "mod_badptr.wasm": await wat(`(module
      (import "env" "memory" (memory 1 1))
      (import "env" "pr_log_debug" (func $log (param i32 i32)))
      (global (export "badptr_module") i32 ${API})
      (func (export "cmd_BAD") (result i32) (call $log (i32.const 0) (i32.const 65532)) (i32.const 1)))`),
  });
});

afterAll(removeModuleDirs);

function hostWith(policy: (unit: string) => UnitPolicy = () => DEFAULT_POLICY): ModuleHost {
  return new ModuleHost({ modulePath: dir, policy });
}

function caught(run: () => unknown): { code: ErrorCode; errno: string | undefined; lines: readonly string[] } {
  try {
    run();
  } catch (error) {
    if (error instanceof DsoError) return { code: error.code, errno: error.errno, lines: error.lines };
    throw error;
  }
  throw new Error("no error");
}

describe("ModuleIntegrity: DSO_ERR_INTEGRITY", () => {
  it("refuses a pinned module whose file has another SHA-256, with EACCES", () => {
    const actual = createHash("sha256")
      .update(readFileSync(path.join(dir, "mod_plain.wasm")))
      .digest("hex");
    const pinned = "0".repeat(64);
    const host = hostWith(() => ({ ...DEFAULT_POLICY, sha256: pinned }));
    expect(caught(() => host.loadModule("mod_plain.c"))).toEqual({
      code: ErrorCodes.INTEGRITY,
      errno: Errno.EACCES,
      lines: [`'${dir}/mod_plain.wasm' has SHA-256 ${actual}, but mod_plain.c is pinned to ${pinned}`],
    });
    expect(host.listModules()).toEqual([]);
    hostWith(() => ({ ...DEFAULT_POLICY, sha256: actual })).loadModule("mod_plain.c");
  });
});

describe("ModuleCapabilities: DSO_ERR_CAPABILITY", () => {
  it("refuses a module that imports a host symbol of a capability it was not granted", () => {
    expect(caught(() => hostWith().loadModule("mod_user.c"))).toEqual({
      code: ErrorCodes.CAPABILITY,
      errno: undefined,
      lines: ["mod_user.c: symbol 'pr_session_user' needs capability 'session', which mod_user.c is not granted"],
    });
    const granted = new Set([...DEFAULT_POLICY.capabilities, "session" as const]);
    const host = hostWith(() => ({ ...DEFAULT_POLICY, capabilities: granted }));
    host.loadModule("mod_user.c");
    expect(host.listModules()).toEqual(["mod_user.c"]);
  });

  it("is DSO_ERR_LINK when the same load also has an undefined symbol, every problem on its line", () => {
    expect(caught(() => hostWith().loadModule("mod_userundef.c"))).toEqual({
      code: ErrorCodes.LINK,
      errno: undefined,
      lines: [
        "mod_userundef.c: undefined symbol 'no_such_symbol' (func () -> nil)",
        "mod_userundef.c: symbol 'pr_session_user' needs capability 'session', which mod_userundef.c is not granted",
      ],
    });
  });
});

describe("host symbols: DSO_ERR_GUEST_STRING", () => {
  it("fails a handler that passes a pointer which is no string in its memory", () => {
    const host = hostWith();
    host.loadModule("mod_badptr.c");
    const handler = host.engineModules()[0]?.commands.find((h) => h.command === "BAD");
    const command = testCommand(["BAD"]);
    expect(caught(() => handler?.run(command, testSession([], undefined)))).toEqual({
      code: ErrorCodes.GUEST_STRING,
      errno: undefined,
      lines: ["mod_badptr.c: fault in cmd_BAD: invalid string passed to 'pr_log_debug' (pointer 65532)"],
    });
  });
});

describe("User and Group: DSO_ERR_PRIVILEGES", () => {
  const accounts: IdentityLookup = {
    uidOf: (name) => (name === "ftp" ? 1000 : undefined),
    gidOf: (name) => (name === "ftp" ? 1000 : undefined),
    primaryGidOf: (name) => (name === "ftp" ? 1000 : undefined),
    userName: () => "ftp",
    groupName: () => "ftp",
  };
  const notRoot: ProcessIds = {
    geteuid: () => 500,
    getegid: () => 500,
    setgroups: () => {},
    setgid: () => {},
    setuid: () => {},
  };

  it("is raised for an unknown User, and for a switch without root", () => {
    expect(caught(() => resolveIdentity("nobody-here", undefined, accounts, notRoot))).toEqual({
      code: ErrorCodes.PRIVILEGES,
      errno: undefined,
      lines: ["User: Unknown user 'nobody-here'"],
    });
    const identity = resolveIdentity("ftp", undefined, accounts, notRoot);
    expect(identity).toEqual({ user: "ftp", uid: 1000, group: "ftp", gid: 1000 });
    expect(caught(() => dropPrivileges(identity as NonNullable<typeof identity>, notRoot))).toEqual({
      code: ErrorCodes.PRIVILEGES,
      errno: undefined,
      lines: ["unable to set UID to ftp, current UID: 500"],
    });
  });
});

describe("Port: DSO_ERR_LISTEN", () => {
  it("refuses to start on a port another server has", async () => {
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const { port } = other.address() as AddressInfo;
    const home = mkdtempSync(path.join(tmpdir(), "dsod-"));
    const config = path.join(home, "dsod.conf");
    writeFileSync(config, `DefaultAddress 127.0.0.1\nPort ${port}\nControlsEngine off\n`);
    // Daemon.start takes the signals before it listens; the test gives back what it took.
    const signals = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
    const before = signals.map((signal) => process.listeners(signal));
    try {
      const refused: unknown = await Daemon.start(config, () => {}, 0).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(DsoError);
      expect((refused as DsoError).code).toBe(ErrorCodes.LISTEN);
      expect((refused as DsoError).message).toMatch(`unable to bind to 127.0.0.1 port ${port}: `);
    } finally {
      signals.forEach((signal, i) => {
        for (const listener of process.listeners(signal))
          if (!before[i]?.includes(listener)) process.off(signal, listener);
      });
      other.close();
    }
  });
});
