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
