import { describe, expect, it } from "vitest";
import { strtime3 } from "../../../host/modules/dso-debug.js";
import { moduleSymbolHint, nameHint, suggestModuleName } from "../../../host/modules/name-hint.js";

describe("suggestModuleName", () => {
  it.each([
    ["mod_hello", "mod_hello.c"],
    ["hello", "mod_hello.c"],
    ["hello.c", "mod_hello.c"],
    ["mod_hello.so", "mod_hello.c"],
    ["mod_hello.wasm", "mod_hello.c"],
    ["mod_hello.cpp", "mod_hello.c"],
    ["Mod_hello.c", "mod_hello.c"],
    ["/usr/lib/proftpd/mod_ban.c", "mod_ban.c"],
    ["..\\mod_x.c", "mod_x.c"],
  ])("%s means %s", (text, meant) => {
    expect(suggestModuleName(text)).toBe(meant);
  });

  it.each([["mod_x.c/"], ["mod_"], ["mod_.c"], ["."], [""], ["mod_x.c"]])("has nothing better for %j", (text) => {
    expect(suggestModuleName(text)).toBeUndefined();
  });

  it("phrases the hint lines", () => {
    expect(nameHint("mod_hello")).toEqual(["did you mean 'mod_hello.c'?"]);
    expect(nameHint("mod_x.c/")).toEqual([]);
    expect(moduleSymbolHint("mod_nosym.cpp")).toBe(
      "the file was found, but it does not export 'nosym_module' (the module's API version)",
    );
  });
});

describe("strtime3", () => {
  it("prints proftpd's pr_strtime3 form, the day zero-padded, in local time", () => {
    expect(strtime3(new Date(2026, 4, 1, 20, 2, 15))).toBe("Fri May 01 20:02:15 2026");
    expect(strtime3(new Date(2025, 11, 24, 9, 5, 7))).toBe("Wed Dec 24 09:05:07 2025");
  });
});
