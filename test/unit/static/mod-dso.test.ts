/**
 * mod_dso's LoadFile, as the config reader runs it: the file is named once,
 * in proftpd's frame (dso_load_file's NOTICE and the directive's error), with
 * the binary's own problem after it.
 */
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DsoError } from "../../../host/errors.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import type { LogPriority } from "../../../host/modules/types.js";
import { insmod } from "../../../host/static/mod-dso/controls.js";
import { createDsoModule } from "../../../host/static/mod-dso/index.js";
import { testCommand } from "../../helpers/session.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

afterAll(removeModuleDirs);

function loadFile(file: string): { error: string | undefined; logs: string[] } {
  const logs: string[] = [];
  const host = new ModuleHost({ modulePath: path.dirname(file) });
  const { module } = createDsoModule({
    host: () => host,
    accounts: { uidOf: () => undefined, gidOf: () => undefined },
    log: (priority: LogPriority, message: string) => logs.push(`${priority}: ${message}`),
  });
  const directive = module.directives.find((d) => d.name === "LoadFile");
  try {
    directive?.run(testCommand(["LoadFile", file]), { file: "/etc/dsod.conf", line: 3, first: false });
    return { error: undefined, logs };
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    return { error: error.message, logs };
  } finally {
    host.close();
  }
}

describe("LoadFile", () => {
  it("names a file that is not WebAssembly once, then says what is wrong with it", () => {
    const dir = writeModuleDir({ "libjunk.wasm": new TextEncoder().encode("#!/bin/sh\n") });
    const file = path.join(dir, "libjunk.wasm");
    expect(loadFile(file)).toEqual({
      error: `error loading '${file}': not a WebAssembly binary (bad magic number)`,
      logs: [`notice: mod_dso/0.5: unable to open '${file}': not a WebAssembly binary (bad magic number)`],
    });
  });

  it("loads a library into the global scope", async () => {
    const dir = writeModuleDir({ "libok.wasm": await wat(`(module (func (export "ok") (result i32) i32.const 1))`) });
    expect(loadFile(path.join(dir, "libok.wasm"))).toEqual({ error: undefined, logs: [] });
  });
});

describe("a module whose exports look like handlers but break the naming rule", () => {
  it("loads, and insmod and the log warn about each such export with the name the host would take", async () => {
    const dir = writeModuleDir({
      "mod_typo.wasm": await wat(`(module
        (global (export "typo_module") i32 (i32.const 32))
        (func (export "cmd_test") (result i32) i32.const 1)
        (func (export "cmd_OK") (result i32) i32.const 1))`),
    });
    const logs: string[] = [];
    const host = new ModuleHost({ modulePath: dir, log: (priority, message) => logs.push(`${priority}: ${message}`) });
    try {
      const warning =
        "warning: export 'cmd_test' looks like a handler but is not one (the host runs cmd_X, X in capitals): " +
        "it enters the global scope; did you mean 'cmd_TEST'?";
      expect(await insmod(host, ["mod_typo.c"])).toEqual({ status: 0, lines: ["'mod_typo.c' loaded", `  ${warning}`] });
      expect(logs).toEqual([`notice: mod_dso/0.5: mod_typo.c: ${warning}`]);
      expect(host.lookup("cmd_test")?.symbol).toBe("cmd_test");
    } finally {
      host.close();
    }
  });
});
