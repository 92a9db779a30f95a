/**
 * dsod's configuration language and mod_dso's directives, through the real
 * `dsod -t` (which loads every module as a real start would): exit codes and
 * the exact lines an operator sees.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, LIBEXEC, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

function check(lines: readonly string[]): { status: number | null; stdout: string; messages: string[]; file: string } {
  const dir = tempDir();
  const file = writeConfig(dir, lines.join("\n"));
  const result = runDsod(["-t", "-c", file]);
  return { status: result.status, stdout: result.stdout, messages: logMessages(result.stderr), file };
}

describe("dsod -t", () => {
  it("prints proftpd's lines and exits 0 for a good config", () => {
    const result = check(["LoadModule mod_test.c"]);
    expect(result.stdout).toBe("Checking syntax of configuration file\nSyntax check complete.\n");
    expect(result.messages).toEqual([]);
    expect(result.status).toBe(0);
  });

  it("names the directive, reason, line and file of a fatal error, and exits 1", () => {
    const result = check(["# comment", "", "LoadModule foo.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      `Fatal: LoadModule: error loading module 'foo.c': Invalid argument on line 3 of '${result.file}'`,
      "Fatal: did you mean 'mod_foo.c'?",
    ]);
  });
});

describe("dsod with a config it cannot read", () => {
  it("says why in strerror's words, and exits 1", () => {
    const dir = tempDir();
    for (const [file, reason] of [
      [`${dir}/missing.conf`, "No such file or directory"],
      [dir, "Is a directory"],
    ] as const) {
      const result = runDsod(["-t", "-c", file]);
      expect(result.status).toBe(1);
      expect(logMessages(result.stderr)).toEqual([`Fatal: unable to read configuration file '${file}': ${reason}`]);
    }
  });
});

describe("dsod -l", () => {
  it("lists the compiled-in modules as proftpd -l does", () => {
    const result = runDsod(["-l"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(
      "Compiled-in modules:\n  mod_core.c\n  mod_xfer.c\n  mod_auth_file.c\n  mod_auth.c\n  mod_ls.c\n  mod_site.c\n  mod_delay.c\n  mod_facts.c\n  mod_dso.c\n  mod_ctrls.c\n  mod_tls.c\n",
    );
  });
});

describe("LoadModule", () => {
  it("refuses a module loaded twice, as the manual's FAQ shows", () => {
    const result = check(["ServerName x", "LoadModule mod_test.c", "LoadModule mod_test.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      "mod_dso/0.5: module 'mod_test.c' already loaded",
      `Fatal: LoadModule: error loading module 'mod_test.c': Operation not permitted on line 3 of '${result.file}'`,
    ]);
  });

  it("refuses a compiled-in module: the static module always wins", () => {
    const result = check(["LoadModule mod_core.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      `mod_dso/0.5: unable to load 'mod_core.c'; check to see if '${LIBEXEC}/mod_core.wasm' exists`,
      "mod_dso/0.5: module 'mod_core.c' already loaded",
      `Fatal: LoadModule: error loading module 'mod_core.c': Operation not permitted on line 1 of '${result.file}'`,
    ]);
  });

  it("accepts the FAQ's <IfModule !mod_x.c> guard used twice", () => {
    const guard = ["<IfModule !mod_test.c>", "  LoadModule mod_test.c", "</IfModule>"];
    expect(check([...guard, ...guard]).status).toBe(0);
  });

  it("loads the .cpp form under the module's own name, mod_x.c", () => {
    const result = check([
      "LoadModule mod_test.cpp",
      "<IfModule mod_test.c>",
      "  TestGreeting registered",
      "</IfModule>",
      "LoadModule mod_test.c",
    ]);
    expect(result.messages).toEqual([
      "mod_dso/0.5: module 'mod_test.c' already loaded",
      `Fatal: LoadModule: error loading module 'mod_test.c': Operation not permitted on line 5 of '${result.file}'`,
    ]);
  });

  it("reports a missing module with proftpd's notice and ENOENT", () => {
    const result = check(["LoadModule mod_nonexistent.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      `mod_dso/0.5: unable to load 'mod_nonexistent.c'; check to see if '${LIBEXEC}/mod_nonexistent.wasm' exists`,
      `Fatal: LoadModule: error loading module 'mod_nonexistent.c': No such file or directory on line 1 of '${result.file}'`,
    ]);
  });

  it.each([
    ["mod_foo", "mod_foo.c"],
    ["Mod_test.c", "mod_test.c"],
    ["mod_test.so", "mod_test.c"],
    ["mod_../x.c", "mod_x.c"],
  ])("refuses the bad name %s, saying it meant %s", (name, meant) => {
    const result = check([`LoadModule ${name}`]);
    expect(result.messages).toEqual([
      `Fatal: LoadModule: error loading module '${name}': Invalid argument on line 1 of '${result.file}'`,
      `Fatal: did you mean '${meant}'?`,
    ]);
  });

  it("refuses a wrong API version and a failing init with proftpd's errnos", () => {
    const badApi = check([`ModulePath ${FIXTURES}`, "LoadModule mod_badapi.c"]);
    expect(badApi.messages).toEqual([
      "mod_dso/0.5: module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
      `Fatal: LoadModule: error loading module 'mod_badapi.c': Permission denied on line 2 of '${badApi.file}'`,
    ]);
    const initFail = check([`ModulePath ${FIXTURES}`, "LoadModule mod_initfail.c"]);
    expect(initFail.messages).toEqual([
      "mod_dso/0.5: module 'mod_initfail.c' failed to initialize",
      `Fatal: LoadModule: error loading module 'mod_initfail.c': Operation not permitted on line 2 of '${initFail.file}'`,
    ]);
  });

  it("reports every link failure of a module, one line each", () => {
    const result = check([`ModulePath ${FIXTURES}`, "LoadModule mod_undef.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      "mod_dso/0.5: mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32)",
      "mod_dso/0.5: mod_undef.c: undefined symbol 'another_missing' (func () -> nil)",
      `Fatal: LoadModule: error loading module 'mod_undef.c': mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32); mod_undef.c: undefined symbol 'another_missing' (func () -> nil) on line 2 of '${result.file}'`,
    ]);
  });

  it("reports a signature mismatch against a LoadFile library", () => {
    const result = check([`LoadFile ${LIBEXEC}/libmath.wasm`, `ModulePath ${FIXTURES}`, "LoadModule mod_badsig.c"]);
    expect(result.messages[0]).toBe(
      "mod_dso/0.5: mod_badsig.c: symbol 'math_add' has type func (i32, i32) -> i32 in libmath, but mod_badsig.c imports func (i32) -> nil",
    );
    expect(result.status).toBe(1);
  });

  it("makes a module's directives known only after it is loaded", () => {
    const before = check(['TestGreeting "hi"', "LoadModule mod_test.c"]);
    expect(before.messages).toEqual([
      `Fatal: unknown configuration directive 'TestGreeting' on line 1 of '${before.file}'`,
    ]);
    expect(check(["LoadModule mod_test.c", 'TestGreeting "hi"']).status).toBe(0);
  });

  it("reports a guest directive handler's own refusal", () => {
    const result = check(["LoadModule mod_test.c", "TestGreeting a b"]);
    expect(result.messages).toEqual([`Fatal: TestGreeting: wrong number of parameters on line 2 of '${result.file}'`]);
  });
});

describe("ModulePath", () => {
  it("refuses a world-writable directory with the FAQ's message", () => {
    const dir = tempDir();
    const mods = path.join(dir, "mods");
    mkdirSync(mods);
    chmodSync(mods, 0o777);
    const file = writeConfig(dir, ["# 1", "# 2", "# 3", "# 4", "# 5", "# 6", `ModulePath ${mods}`].join("\n"));
    const result = runDsod(["-t", "-c", file]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toEqual([`Fatal: ModulePath: ${mods} is world-writable on line 7 of '${file}'`]);
  });

  it("checks absolute, existing, directory", () => {
    expect(check(["ModulePath mods/"]).messages[0]).toMatch(
      /^Fatal: ModulePath: must be an absolute path on line 1 of /,
    );
    expect(check(["ModulePath /nonexistent/mods"]).messages[0]).toMatch(
      /^Fatal: ModulePath: error checking '\/nonexistent\/mods': No such file or directory on line 1 of /,
    );
    expect(check([`ModulePath ${LIBEXEC}/mod_test.wasm`]).messages[0]).toMatch(
      new RegExp(`^Fatal: ModulePath: ${LIBEXEC}/mod_test.wasm is not a directory on line 1 of `),
    );
    expect(check(["ModulePath"]).messages[0]).toMatch(/^Fatal: ModulePath: missing parameters on line 1 of /);
  });

  it("affects only the loads after it", () => {
    const result = check(["LoadModule mod_test.c", `ModulePath ${FIXTURES}`, "LoadModule mod_calc.c"]);
    expect(result.messages.at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_calc.c': No such file or directory on line 3 of '${result.file}'`,
    );
  });
});

describe("LoadFile", () => {
  it("needs an absolute path, an existing file and a wasm binary", () => {
    expect(check(["LoadFile libmath.wasm"]).messages).toEqual([
      expect.stringMatching(/^Fatal: LoadFile: must be an absolute path on line 1 of /),
    ]);
    expect(check(["LoadFile /nonexistent/libx.wasm"]).messages.at(-1)).toMatch(
      /^Fatal: LoadFile: error loading '\/nonexistent\/libx.wasm': No such file or directory on line 1 of /,
    );
    const dir = tempDir();
    writeFileSync(path.join(dir, "libjunk.wasm"), "not wasm at all");
    const junk = writeConfig(dir, `LoadFile ${dir}/libjunk.wasm`);
    expect(logMessages(runDsod(["-t", "-c", junk]).stderr).at(-1)).toBe(
      `Fatal: LoadFile: error loading '${dir}/libjunk.wasm': not a WebAssembly binary (bad magic number) on line 1 of '${junk}'`,
    );
  });

  it("accepts the same file twice and serves its symbols to later modules", () => {
    expect(
      check([`LoadFile ${LIBEXEC}/libmath.wasm`, `LoadFile ${LIBEXEC}/libmath.wasm`, "LoadModule mod_calc.c"]).status,
    ).toBe(0);
  });
});

describe("ModuleOrder", () => {
  it("must be the very first directive", () => {
    const result = check(["ServerName x", "ModuleOrder mod_core.c"]);
    expect(result.messages).toEqual([
      `Fatal: ModuleOrder: must be the very first directive of the configuration on line 2 of '${result.file}'`,
    ]);
  });

  it("checks its arguments with proftpd's messages", () => {
    expect(check(["ModuleOrder mod_core.c mod_foo.c"]).messages[0]).toMatch(
      /^Fatal: ModuleOrder: no such module 'mod_foo.c' loaded on line 1 of /,
    );
    expect(check(["ModuleOrder mod_core.c mod_site.c mod_core.c"]).messages[0]).toMatch(
      /^Fatal: ModuleOrder: duplicate module name 'mod_core.c' as parameters 1 and 3 on line 1 of /,
    );
    expect(check(["ModuleOrder"]).messages[0]).toMatch(/^Fatal: ModuleOrder: wrong number of parameters on line 1 of /);
  });

  it("sets the order with a continued line; modules left out leave the engine", () => {
    const result = check([
      "ModuleOrder \\",
      "  mod_core.c \\",
      "  mod_dso.c \\",
      "  mod_ctrls.c",
      "LoadModule mod_test.c",
      "<IfModule mod_site.c>",
      "  Bogus",
      "</IfModule>",
    ]);
    expect(result.status).toBe(0);
    expect(result.messages).toEqual([
      "ModuleOrder: module order is now:",
      " mod_core.c",
      " mod_dso.c",
      " mod_ctrls.c",
      "ModuleOrder: 'mod_xfer.c' removed from the engine",
      "ModuleOrder: 'mod_auth_file.c' removed from the engine",
      "ModuleOrder: 'mod_auth.c' removed from the engine",
      "ModuleOrder: 'mod_ls.c' removed from the engine",
      "ModuleOrder: 'mod_site.c' removed from the engine",
      "ModuleOrder: 'mod_delay.c' removed from the engine",
      "ModuleOrder: 'mod_facts.c' removed from the engine",
      "ModuleOrder: 'mod_tls.c' removed from the engine",
    ]);
  });
});

describe("ModuleControlsACLs", () => {
  it("reports proftpd's exact errors", () => {
    expect(check(["ModuleControlsACLs foo allow user root"]).messages[0]).toMatch(
      /^Fatal: ModuleControlsACLs: : unknown action: 'foo' on line 1 of /,
    );
    expect(check(["ModuleControlsACLs insmod Allow user root"]).messages[0]).toMatch(
      /^Fatal: ModuleControlsACLs: second parameter must be 'allow' or 'deny' on line 1 of /,
    );
    expect(check(["ModuleControlsACLs insmod allow users root"]).messages[0]).toMatch(
      /^Fatal: ModuleControlsACLs: third parameter must be 'user' or 'group' on line 1 of /,
    );
    expect(check(["ModuleControlsACLs insmod allow user"]).messages[0]).toMatch(
      /^Fatal: ModuleControlsACLs: missing parameters on line 1 of /,
    );
  });
});

describe("the config language", () => {
  it("suggests the directive meant", () => {
    const result = check(["LoadModul mod_test.c"]);
    expect(result.messages).toEqual([
      `Fatal: unknown configuration directive 'LoadModul' on line 1 of '${result.file}'`,
      "Fatal: Did you mean: LoadModule",
    ]);
  });

  it("counts lines in the file that holds them, inside an Include too", () => {
    const dir = tempDir();
    writeConfig(dir, ["# modules", "LoadModule mod_test.c", "LoadModule mod_nope_x.c"].join("\n"), "modules.conf");
    const main = writeConfig(dir, ["ServerName x", "Include modules.conf"].join("\n"));
    const result = runDsod(["-t", "-c", main]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr).at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_nope_x.c': No such file or directory on line 3 of '${dir}/modules.conf'`,
    );
  });

  it("includes a glob in order, and the FAQ's duplicate-through-Include case is fatal", () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, "conf.d"));
    writeConfig(dir, "LoadModule mod_test.c", "conf.d/10-test.conf");
    writeConfig(dir, "TestGreeting hi", "conf.d/20-greeting.conf");
    expect(runDsod(["-t", "-c", writeConfig(dir, `Include ${dir}/conf.d/*.conf`)]).status).toBe(0);
    const twice = writeConfig(
      dir,
      [`Include ${dir}/conf.d/10-test.conf`, `Include ${dir}/conf.d/10-test.conf`].join("\n"),
      "twice.conf",
    );
    const result = runDsod(["-t", "-c", twice]);
    expect(logMessages(result.stderr).at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_test.c': Operation not permitted on line 1 of '${dir}/conf.d/10-test.conf'`,
    );
  });

  it("evaluates nested and negated <IfModule> where the parser reaches it", () => {
    expect(
      check([
        "<IfModule mod_test.c>",
        "  Bogus",
        "</IfModule>",
        "LoadModule mod_test.c",
        "<IfModule mod_test.c>",
        "  <IfModule !mod_calc.c>",
        "    TestGreeting nested",
        "    <IfModule mod_calc.c>",
        "      Bogus",
        "    </IfModule>",
        "  </IfModule>",
        "</IfModule>",
      ]).status,
    ).toBe(0);
    const unclosed = check(["<IfModule mod_nope.c>", "LoadModule mod_test.c"]);
    expect(unclosed.messages).toEqual([
      `Fatal: <IfModule>: unclosed <IfModule> context on line 2 of '${unclosed.file}'`,
    ]);
  });

  it("refuses mod_dso's directives inside <VirtualHost>", () => {
    const result = check(["<VirtualHost 127.0.0.2>", "LoadModule mod_test.c", "</VirtualHost>"]);
    expect(result.messages).toEqual([
      `Fatal: LoadModule: directive not allowed in <VirtualHost> context on line 2 of '${result.file}'`,
    ]);
  });

  it("expands %{env:NAME}", () => {
    const dir = tempDir();
    const file = writeConfig(dir, "ModulePath %{env:DSOD_TEST_MODULES}\nLoadModule mod_badapi.c");
    const result = runDsod(["-t", "-c", file], { DSOD_TEST_MODULES: FIXTURES });
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)[0]).toBe(
      "mod_dso/0.5: module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
    );
  });
});

describe("trace logging", () => {
  it("writes proftpd's dso lines for the directives after TraceLog and Trace", () => {
    const dir = tempDir();
    const trace = path.join(dir, "trace.log");
    const file = writeConfig(
      dir,
      [
        "LoadModule mod_site_hello.c",
        `TraceLog ${trace}`,
        "Trace dso:20",
        "LoadModule mod_test.c",
        "LoadModule mod_test.c",
      ].join("\n"),
    );
    expect(runDsod(["-t", "-c", file]).status).toBe(1);
    const lines = readFileSync(trace, "utf8")
      .trim()
      .split("\n")
      .map((line) => line.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] /, ""));
    expect(lines).toEqual([
      `<dso:5>: loading module '${LIBEXEC}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
      `<dso:8>: module '${LIBEXEC}/mod_test' successfully loaded`,
      `<dso:5>: loading module '${LIBEXEC}/mod_test'`,
      "<dso:7>: looking for symbol 'test_module' in loaded module",
      "<dso:1>: module 'mod_test.c' already loaded",
    ]);
  });
});
