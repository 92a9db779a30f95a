/**
 * The loader's caches never serve stale code: an unchanged file is not read
 * again, but any write to it (new content, same name) is seen at the next load.
 */
import { utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { ModuleCompiler } from "../../../host/modules/module-compiler.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

afterAll(removeModuleDirs);

/** A module with nothing but its module symbol `symbol`: all the loader needs of a file. */
function moduleExporting(symbol: string): Promise<Uint8Array> {
  return wat(`(module (global (export "${symbol}") i32 (i32.const 32)))`);
}

describe("the loader's file and compile caches", () => {
  it("sees a module file replaced in place at the next load", async () => {
    const [test, other] = await Promise.all([moduleExporting("test_module"), moduleExporting("calc_module")]);
    const dir = writeModuleDir({ "mod_test.wasm": test });
    const file = path.join(dir, "mod_test.wasm");
    const host = new ModuleHost({ modulePath: dir });
    host.loadModule("mod_test.c");
    const first = host.describe()[0]?.sha256;
    host.unloadModule("mod_test.c");
    host.loadModule("mod_test.c");
    expect(host.describe()[0]?.sha256).toBe(first);
    host.unloadModule("mod_test.c");
    // Different content under the same name, with the old timestamps put back: ctime still changes.
    writeFileSync(file, other);
    utimesSync(file, new Date(0), new Date(0));
    expect(() => host.loadModule("mod_test.c")).toThrow(expect.objectContaining({ code: "DSO_ERR_NO_MODULE_SYMBOL" }));
    writeFileSync(file, test);
    host.loadModule("mod_test.c");
    expect(host.describe()[0]?.sha256).toBe(first);
    host.close();
  });

  it("compiles a file once, and again only when its content changes", async () => {
    const [test, other] = await Promise.all([moduleExporting("test_module"), moduleExporting("calc_module")]);
    const dir = writeModuleDir({ "mod_test.wasm": test });
    const file = path.join(dir, "mod_test.wasm");
    const compile = vi.spyOn(WebAssembly, "Module");
    try {
      const compiler = new ModuleCompiler();
      const request = { kind: "module", name: "mod_test.c", file, explicit: true } as const;
      const first = compiler.open(request, DEFAULT_POLICY, dir);
      expect(compiler.open(request, DEFAULT_POLICY, dir)).toBe(first);
      expect(compile).toHaveBeenCalledTimes(1);
      writeFileSync(file, other);
      expect(compiler.open(request, DEFAULT_POLICY, dir).hash).not.toBe(first.hash);
      expect(compile).toHaveBeenCalledTimes(2);
      // The first content again: compiled already, under its hash.
      writeFileSync(file, test);
      expect(compiler.open(request, DEFAULT_POLICY, dir)).toBe(first);
      expect(compile).toHaveBeenCalledTimes(2);
    } finally {
      compile.mockRestore();
    }
  });
});
