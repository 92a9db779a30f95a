/**
 * The loader's caches never serve stale code: an unchanged file is not read
 * again, but any write to it (new content, same name) is seen at the next load.
 */
import { copyFileSync, mkdtempSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { libexec } from "../../helpers/paths.js";

describe("the loader's file and compile caches", () => {
  it("sees a module file replaced in place at the next load", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "dso-cache-"));
    const file = path.join(dir, "mod_test.wasm");
    copyFileSync(libexec("mod_test.wasm"), file);
    const host = new ModuleHost({ modulePath: dir });
    host.loadModule("mod_test.c");
    const first = host.describe()[0]?.sha256;
    host.unloadModule("mod_test.c");
    host.loadModule("mod_test.c");
    expect(host.describe()[0]?.sha256).toBe(first);
    host.unloadModule("mod_test.c");
    // Different content under the same name, with the old timestamps put back: ctime still changes.
    copyFileSync(libexec("mod_calc.wasm"), file);
    utimesSync(file, new Date(0), new Date(0));
    expect(() => host.loadModule("mod_test.c")).toThrow(expect.objectContaining({ code: "DSO_ERR_NO_MODULE_SYMBOL" }));
    copyFileSync(libexec("mod_test.wasm"), file);
    host.loadModule("mod_test.c");
    expect(host.describe()[0]?.sha256).toBe(first);
    host.close();
  });
});
