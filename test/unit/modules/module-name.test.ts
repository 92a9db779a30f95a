import { describe, expect, it } from "vitest";
import { DsoError, Errno, ErrorCodes } from "../../../host/errors.js";
import {
  isLibraryNamespace,
  moduleNameOfNamespace,
  parseModuleName,
  parseUnloadName,
} from "../../../host/modules/module-name.js";

function refusal(run: () => unknown): { code: string; message: string; errno: string | undefined } {
  try {
    run();
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    return { code: error.code, message: error.message, errno: error.errno };
  }
  throw new Error("expected a DsoError");
}

function badName(name: string) {
  return { code: ErrorCodes.BAD_MODULE_NAME, message: `bad module name '${name}'`, errno: Errno.EINVAL };
}

describe("parseModuleName (LoadModule, insmod)", () => {
  it("splits a name into file stem and module symbol", () => {
    expect(parseModuleName("mod_test.c")).toEqual({ name: "mod_test.c", stem: "mod_test", symbol: "test_module" });
    expect(parseModuleName("mod_sql_mysql.c")).toEqual({
      name: "mod_sql_mysql.c",
      stem: "mod_sql_mysql",
      symbol: "sql_mysql_module",
    });
    // proftpd accepts the .cpp form for loading, and registers the module as mod_x.c.
    expect(parseModuleName("mod_x.cpp")).toEqual({ name: "mod_x.c", stem: "mod_x", symbol: "x_module" });
    // The name is cut at the last dot, as mod_dso.c does.
    expect(parseModuleName("mod_a.b.c")).toEqual({ name: "mod_a.b.c", stem: "mod_a.b", symbol: "a.b_module" });
  });

  it("refuses names without the mod_ prefix or the .c/.cpp ending (EINVAL)", () => {
    for (const name of ["foo.c", "mod_x", "mod_x.so", "mod_x.wasm", "Mod_x.c", "mod.c", "", "mod_", "x_mod_y.c"]) {
      expect(refusal(() => parseModuleName(name))).toEqual(badName(name));
    }
  });

  it("refuses names shorter than 5 characters", () => {
    // "mod_" + ".c" cannot fit in 4 characters; proftpd checks the length first.
    expect(refusal(() => parseModuleName("mod_"))).toEqual(badName("mod_"));
  });

  it("refuses path parts, which proftpd would pass on to the filesystem", () => {
    for (const name of ["mod_../x.c", "mod_a/b.c", "mod_a\\b.c", "mod_..c", "mod_x\0.c", "mod_/etc/passwd.c"]) {
      expect(refusal(() => parseModuleName(name))).toEqual(badName(name));
    }
  });
});

describe("parseUnloadName (rmmod)", () => {
  it("accepts only the .c form", () => {
    expect(parseUnloadName("mod_test.c")).toBe("mod_test.c");
    expect(refusal(() => parseUnloadName("mod_test.cpp"))).toEqual(badName("mod_test.cpp"));
    expect(refusal(() => parseUnloadName("mod_test"))).toEqual(badName("mod_test"));
    expect(refusal(() => parseUnloadName("test.c"))).toEqual(badName("test.c"));
    expect(refusal(() => parseUnloadName("mod_../x.c"))).toEqual(badName("mod_../x.c"));
  });
});

describe("import namespaces", () => {
  it("maps mod_ namespaces to module names", () => {
    expect(moduleNameOfNamespace("mod_sql")).toBe("mod_sql.c");
    expect(moduleNameOfNamespace("mod_sql.c")).toBe("mod_sql.c");
    expect(moduleNameOfNamespace("libcounter")).toBeUndefined();
    expect(moduleNameOfNamespace("env")).toBeUndefined();
    expect(moduleNameOfNamespace("mod_../x")).toBeUndefined();
  });

  it("accepts file-stem library namespaces only", () => {
    for (const ok of ["libcounter", "libm", "lib-foo.1", "a_b"]) expect(isLibraryNamespace(ok)).toBe(true);
    for (const bad of ["mod_sql", "../libx", "lib/x", "", ".hidden", "lib x", "lib..x"])
      expect(isLibraryNamespace(bad)).toBe(false);
  });
});
