/**
 * Fidelity to proftpd 1.3.8, round two (issue #16), through the built dsod
 * and dsoctl: mod_dso's debug lines under `-d N` and its trace lines for every
 * failure and for the unloads on SIGHUP and shutdown; ModuleOrder's report
 * and its protected modules; `-t` and `-vv`; mod_ctrls's own controls with
 * ControlsACLs; SITE dispatched module by module; and errors that keep
 * proftpd's first line and then say what to do. Every text is exact; the
 * proftpd ones were checked against the real proftpd 1.3.8 and ftpdctl.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DSOD_VERSION } from "../../host/daemon/version.js";
import { FtpControl } from "./helpers/ftp-client.js";
import {
  DSOD,
  FIXTURES,
  LIBEXEC,
  PASSWD,
  ROOT,
  RunningDsod,
  dsoctl,
  logMessages,
  runDsod,
  tempDir,
  writeConfig,
} from "./helpers/dsod.js";
import type { RunResult } from "./helpers/dsod.js";

const running: RunningDsod[] = [];
const clients: FtpControl[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const daemon of running.splice(0)) await daemon.stop();
});

/** `dsod -t` (and any other options) on a config of `lines`. */
function check(
  lines: readonly string[],
  options: readonly string[] = [],
): { status: number | null; stdout: string; messages: string[]; file: string } {
  const file = writeConfig(tempDir(), lines.join("\n"));
  const result = runDsod([...options, "-t", "-c", file]);
  return { status: result.status, stdout: result.stdout, messages: logMessages(result.stderr), file };
}

const OPEN = ["ControlsSocketACL allow user *", "ModuleControlsACLs all allow user *"];

/** The built dsod on the loopback, with its socket in `dir`. */
async function start(
  lines: readonly string[],
  dir = tempDir(),
  options: readonly string[] = [],
): Promise<{ daemon: RunningDsod; dir: string }> {
  const socket = `${dir}/dsod.sock`;
  const config = writeConfig(
    dir,
    ["DefaultAddress 127.0.0.1", "Port 0", `AuthUserFile ${PASSWD}`, `ControlsSocket ${socket}`, ...lines].join("\n"),
  );
  const daemon = await RunningDsod.start(config, socket, options);
  running.push(daemon);
  return { daemon, dir };
}

function ctl(daemon: RunningDsod, ...args: string[]): Promise<RunResult> {
  return dsoctl(["-s", daemon.socket, ...args]);
}

/** dsoctl's stdout for these lines. */
function out(...lines: string[]): string {
  return lines.map((line) => `dsoctl: ${line}\n`).join("");
}

async function ftp(daemon: RunningDsod): Promise<FtpControl> {
  const { client } = await FtpControl.connect(daemon.port);
  clients.push(client);
  await client.login();
  return client;
}

/** The trace file's lines without their date and pid. */
function traceLines(file: string): string[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => line.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] /, ""));
}

/** How ctime(3) shows a time, the day zero-padded (proftpd's pr_strtime3), from Intl rather than from dsod's code. */
function strtime(date: Date): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    weekday: "short",
    month: "short",
    day: "2-digit",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(date);
  const part = (type: string): string => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("weekday")} ${part("month")} ${part("day")} ${part("hour")}:${part("minute")}:${part("second")} ${part("year")}`;
}

describe("dsod -d N: mod_dso's debug lines at proftpd's levels", () => {
  const lines = ["LoadModule mod_test.c", "LoadModule mod_core.c"];

  it("at -d 7: loading, the file loaded with its date, and the chain for a compiled-in module", () => {
    const result = check(lines, ["-d", "7"]);
    const modified = strtime(statSync(`${LIBEXEC}/mod_test.wasm`).mtime);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      "mod_dso/0.5: loading 'mod_test.c'",
      `mod_dso/0.5: loaded module 'mod_test' (from '${LIBEXEC}/mod_test.wasm', last modified on ${modified})`,
      "mod_test.c: mod_test: initialized",
      "mod_dso/0.5: loading 'mod_core.c'",
      "mod_dso/0.5: unable to dlopen 'mod_core.c': file not found (No such file or directory)",
      `mod_dso/0.5: unable to load 'mod_core.c'; check to see if '${LIBEXEC}/mod_core.wasm' exists`,
      "mod_dso/0.5: defaulting to 'self' for symbol resolution",
      "mod_dso/0.5: module 'mod_core.c' already loaded",
      "mod_test.c: mod_test: unloaded",
      `Fatal: LoadModule: error loading module 'mod_core.c': Operation not permitted on line 2 of '${result.file}'`,
    ]);
  });

  it("at -d 3 only the level-3 lines of the chain, and none without -d", () => {
    const three = check(lines, ["-d", "3"]);
    expect(three.messages).toEqual([
      "mod_dso/0.5: unable to dlopen 'mod_core.c': file not found (No such file or directory)",
      `mod_dso/0.5: unable to load 'mod_core.c'; check to see if '${LIBEXEC}/mod_core.wasm' exists`,
      "mod_dso/0.5: defaulting to 'self' for symbol resolution",
      "mod_dso/0.5: module 'mod_core.c' already loaded",
      `Fatal: LoadModule: error loading module 'mod_core.c': Operation not permitted on line 2 of '${three.file}'`,
    ]);
    const none = check(lines);
    expect(none.messages).toEqual([
      `mod_dso/0.5: unable to load 'mod_core.c'; check to see if '${LIBEXEC}/mod_core.wasm' exists`,
      "mod_dso/0.5: module 'mod_core.c' already loaded",
      `Fatal: LoadModule: error loading module 'mod_core.c': Operation not permitted on line 2 of '${none.file}'`,
    ]);
  });

  it("at -d 1 a missing module ends with the symbol not found in 'self', as proftpd's", () => {
    const result = check(["LoadModule mod_nonexistent.c"], ["-d", "1"]);
    expect(result.messages).toEqual([
      `mod_dso/0.5: unable to load 'mod_nonexistent.c'; check to see if '${LIBEXEC}/mod_nonexistent.wasm' exists`,
      "mod_dso/0.5: unable to find module symbol 'nonexistent_module' in 'self'",
      `Fatal: LoadModule: error loading module 'mod_nonexistent.c': No such file or directory on line 1 of '${result.file}'`,
    ]);
  });
});

describe("the trace log: every failure, and the unloads on SIGHUP and shutdown", () => {
  it("traces a failed load's level-1 line at config time, for each kind of failure", () => {
    const traced = (name: string): string[] => {
      const dir = tempDir();
      const trace = path.join(dir, "trace.log");
      const file = writeConfig(
        dir,
        [`TraceLog ${trace}`, "Trace dso:20", `ModulePath ${FIXTURES}`, `LoadModule ${name}`].join("\n"),
      );
      expect(runDsod(["-t", "-c", file]).status).toBe(1);
      return traceLines(trace);
    };
    expect(traced("mod_nonexistent.c")).toEqual([
      `<dso:5>: loading module '${FIXTURES}/mod_nonexistent'`,
      "<dso:7>: looking for symbol 'nonexistent_module' in loaded module",
      "<dso:1>: unable to find module symbol 'nonexistent_module' in 'self'",
    ]);
    expect(traced("mod_badapi.c")).toEqual([
      `<dso:5>: loading module '${FIXTURES}/mod_badapi'`,
      "<dso:7>: looking for symbol 'badapi_module' in loaded module",
      "<dso:1>: module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
    ]);
    expect(traced("mod_initfail.c")).toEqual([
      `<dso:5>: loading module '${FIXTURES}/mod_initfail'`,
      "<dso:7>: looking for symbol 'initfail_module' in loaded module",
      "<dso:1>: module 'mod_initfail.c' failed to initialize",
    ]);
  });

  it("traces insmod, a failed insmod, SIGHUP's unloads newest first, and the shutdown's", async () => {
    const dir = tempDir();
    const { daemon } = await start(
      [...OPEN, `TraceLog ${dir}/trace.log`, "Trace dso:20", "LoadModule mod_site_hello.c"],
      dir,
      ["-d", "7"],
    );
    expect((await ctl(daemon, "insmod", "mod_test.c")).stdout).toBe(out("'mod_test.c' loaded"));
    expect((await ctl(daemon, "insmod", "mod_nonexistent.c")).status).toBe(3);
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/received SIGHUP -- master server reparsing configuration file/);
    // Both the set before the reload and the reloaded one list it: with session workers, the reload may still be
    // under way. The stop waits for it, as proftpd's master handles one signal at a time; then the trace below
    // is the primary's alone (the workers' repeats of each change are not traced again).
    expect((await ctl(daemon, "lsmod")).stdout).toContain("  mod_site_hello.c\n");
    expect(await daemon.stop()).toBe(0);
    const load = (name: string, symbol: string): string[] => [
      `<dso:5>: loading module '${LIBEXEC}/${name}'`,
      `<dso:7>: looking for symbol '${symbol}' in loaded module`,
      `<dso:8>: module '${LIBEXEC}/${name}' successfully loaded`,
    ];
    const unload = (name: string): string[] => [
      `<dso:5>: unloading module '${name}'`,
      `<dso:8>: module '${name}' successfully unloaded`,
    ];
    expect(traceLines(`${dir}/trace.log`)).toEqual([
      ...load("mod_site_hello", "site_hello_module"),
      ...load("mod_test", "test_module"),
      `<dso:5>: loading module '${LIBEXEC}/mod_nonexistent'`,
      "<dso:7>: looking for symbol 'nonexistent_module' in loaded module",
      "<dso:1>: unable to find module symbol 'nonexistent_module' in 'self'",
      // SIGHUP: the new configuration is built beside the old one, then the old one's modules go.
      ...load("mod_site_hello", "site_hello_module"),
      ...unload("mod_test.c"),
      ...unload("mod_site_hello.c"),
      // SIGTERM.
      ...unload("mod_site_hello.c"),
    ]);
    // dso_restart_ev's DEBUG7 line for each module unloaded, at SIGHUP and at the end (read to the last line first).
    await daemon.waitForLog(/dsod shutting down\n.*mod_dso\/0\.5: unloading 'mod_site_hello\.c'\n/);
    expect(logMessages(daemon.stderr).filter((line) => line.startsWith("mod_dso/0.5: unloading"))).toEqual([
      "mod_dso/0.5: unloading 'mod_test.c'",
      "mod_dso/0.5: unloading 'mod_site_hello.c'",
      "mod_dso/0.5: unloading 'mod_site_hello.c'",
    ]);
  });

  it("names LoadFile's file in proftpd's words, and traces its failure", () => {
    const dir = tempDir();
    const trace = path.join(dir, "trace.log");
    const good = writeConfig(
      dir,
      [`TraceLog ${trace}`, "Trace dso:20", `LoadFile ${LIBEXEC}/libmath.wasm`].join("\n"),
      "good.conf",
    );
    expect(runDsod(["-t", "-c", good]).status).toBe(0);
    expect(traceLines(trace)).toEqual([
      `<dso:5>: loading file '${LIBEXEC}/libmath.wasm'`,
      `<dso:8>: file '${LIBEXEC}/libmath.wasm' successfully loaded`,
    ]);
    const missing = check(["LoadFile /nonexistent/libx.wasm"]);
    expect(missing.messages).toEqual([
      "mod_dso/0.5: unable to open '/nonexistent/libx.wasm': file not found",
      `Fatal: LoadFile: error loading '/nonexistent/libx.wasm': No such file or directory on line 1 of '${missing.file}'`,
    ]);
  });
});

describe("ModuleOrder", () => {
  it("reports the order as proftpd prints it, without mod_dso's prefix", () => {
    const result = check(["ModuleOrder mod_core.c mod_auth_file.c mod_auth.c mod_site.c mod_dso.c mod_ctrls.c"]);
    expect(result.status).toBe(0);
    expect(result.messages).toEqual([
      "ModuleOrder: module order is now:",
      " mod_core.c",
      " mod_auth_file.c",
      " mod_auth.c",
      " mod_site.c",
      " mod_dso.c",
      " mod_ctrls.c",
      "ModuleOrder: 'mod_xfer.c' removed from the engine",
      "ModuleOrder: 'mod_ls.c' removed from the engine",
      "ModuleOrder: 'mod_delay.c' removed from the engine",
      "ModuleOrder: 'mod_facts.c' removed from the engine",
      "ModuleOrder: 'mod_tls.c' removed from the engine",
    ]);
  });

  it("refuses an order without mod_dso.c or mod_ctrls.c, which rmmod cannot remove either", () => {
    const result = check(["ModuleOrder mod_core.c mod_ctrls.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      `Fatal: ModuleOrder: 'mod_dso.c' is missing: mod_dso.c and mod_ctrls.c must stay in the engine (rmmod refuses to remove them too) on line 1 of '${result.file}'`,
    ]);
    expect(check(["ModuleOrder mod_core.c mod_dso.c"]).messages[0]).toMatch(
      /^Fatal: ModuleOrder: 'mod_ctrls.c' is missing: /,
    );
  });

  it("checks that every name is loaded before it looks for duplicates, as set_moduleorder", () => {
    expect(check(["ModuleOrder mod_foo.c mod_foo.c"]).messages[0]).toMatch(
      /^Fatal: ModuleOrder: no such module 'mod_foo.c' loaded on line 1 of /,
    );
  });
});

describe("dsod -t and -vv", () => {
  it("-t ends with proftpd's `Syntax check complete.`", () => {
    const result = check(["LoadModule mod_test.c"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe("Checking syntax of configuration file\nSyntax check complete.\n");
  });

  it("-vv lists the modules the configuration loads, newest first, as proftpd -vv", () => {
    const file = writeConfig(tempDir(), ["LoadModule mod_test.c", "LoadModule mod_site_hello.c"].join("\n"));
    for (const flags of [["-vv"], ["-v", "-v"], ["--version-status"]]) {
      const result = runDsod([...flags, "-c", file]);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe(
        [
          `dsod Version: ${DSOD_VERSION} (wasm-dso)`,
          `  Node.js: ${process.version}`,
          "",
          "Loaded modules:",
          "  mod_site_hello.c",
          "  mod_test.c",
          "  mod_tls.c",
          "  mod_ctrls.c",
          "  mod_dso.c",
          "  mod_facts.c",
          "  mod_delay.c",
          "  mod_site.c",
          "  mod_ls.c",
          "  mod_auth.c",
          "  mod_auth_file.c",
          "  mod_xfer.c",
          "  mod_core.c",
          "",
        ].join("\n"),
      );
    }
    expect(runDsod(["-v"]).stdout).toBe(`dsod Version ${DSOD_VERSION} (wasm-dso)\n`);
  });

  it("-vv of a configuration that fails prints nothing and exits 1, as proftpd", () => {
    const file = writeConfig(tempDir(), "LoadModule mod_nonexistent.c");
    const result = runDsod(["-vv", "-c", file]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(logMessages(result.stderr).at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_nonexistent.c': No such file or directory on line 1 of '${file}'`,
    );
  });
});

describe("mod_ctrls's own controls: help, lsctrl, insctrl, rmctrl and ControlsACLs", () => {
  it("help lists every control; lsctrl, insctrl and rmctrl are denied without ControlsACLs", async () => {
    const { daemon } = await start(OPEN);
    expect(await ctl(daemon, "help")).toEqual({
      status: 0,
      stdout: out(
        "help: describe all registered controls",
        "insctrl: enable a disabled control",
        "insmod: load modules",
        "lsctrl: list all registered controls",
        "lsmod: list modules",
        "rmctrl: disable a registered control",
        "rmmod: unload modules",
      ),
      stderr: "",
    });
    for (const action of ["lsctrl", "insctrl", "rmctrl"]) {
      expect(await ctl(daemon, action)).toEqual({ status: 2, stdout: out("access denied"), stderr: "" });
    }
    expect(await ctl(daemon, "help", "x")).toEqual({
      status: 3,
      stdout: out("wrong number of parameters"),
      stderr: "",
    });
  });

  it("lsctrl lists the enabled controls; rmctrl disables one until insctrl", async () => {
    const { daemon } = await start([...OPEN, "ControlsACLs all allow user *"]);
    const all = [
      "help (mod_ctrls.c)",
      "insctrl (mod_ctrls.c)",
      "insmod (mod_dso.c)",
      "lsctrl (mod_ctrls.c)",
      "lsmod (mod_dso.c)",
      "rmctrl (mod_ctrls.c)",
      "rmmod (mod_dso.c)",
    ];
    expect(await ctl(daemon, "lsctrl")).toEqual({ status: 0, stdout: out(...all), stderr: "" });
    expect(await ctl(daemon, "lsctrl", "x")).toEqual({
      status: 3,
      stdout: out("wrong number of parameters"),
      stderr: "",
    });
    expect(await ctl(daemon, "rmctrl", "lsmod")).toEqual({
      status: 0,
      stdout: out("'lsmod' control disabled"),
      stderr: "",
    });
    expect(await ctl(daemon, "lsmod")).toEqual({ status: 4, stdout: out("unsupported action requested"), stderr: "" });
    expect((await ctl(daemon, "lsctrl")).stdout).toBe(out(...all.filter((line) => line !== "lsmod (mod_dso.c)")));
    expect((await ctl(daemon, "help")).stdout).toContain("dsoctl: lsmod: list modules\n");
    expect(await ctl(daemon, "insctrl", "lsmod", "mod_ctrls.c")).toEqual({
      status: 3,
      stdout: out("no such control: 'lsmod'"),
      stderr: "",
    });
    expect(await ctl(daemon, "insctrl", "lsmod", "mod_dso.c")).toEqual({
      status: 0,
      stdout: out("'lsmod' control enabled"),
      stderr: "",
    });
    expect((await ctl(daemon, "lsmod")).status).toBe(0);
    expect(await ctl(daemon, "rmctrl", "lsctrl")).toEqual({
      status: 3,
      stdout: out("'lsctrl' control cannot be removed"),
      stderr: "",
    });
    expect(await ctl(daemon, "rmctrl", "nope")).toEqual({
      status: 3,
      stdout: out("no such control: 'nope'"),
      stderr: "",
    });
    expect(await ctl(daemon, "insctrl")).toEqual({ status: 3, stdout: out("wrong number of parameters"), stderr: "" });
    expect(await ctl(daemon, "insctrl", "a", "b", "c")).toEqual({
      status: 3,
      stdout: out("wrong number of parameters"),
      stderr: "",
    });
  });

  it("rmctrl all disables everything and stops listening", async () => {
    const { daemon } = await start([...OPEN, "ControlsACLs rmctrl allow user *"]);
    expect(await ctl(daemon, "rmctrl", "all")).toEqual({
      status: 0,
      stdout: out("all controls disabled", "restart the daemon to re-enable controls"),
      stderr: "",
    });
    expect(await ctl(daemon, "help")).toEqual({
      status: 69,
      stdout: "",
      stderr: `dsoctl: error contacting server using '${daemon.socket}': Connection refused\n`,
    });
  });

  it("ControlsACLs: proftpd's errors, and mod_dso's actions are not mod_ctrls's", () => {
    const message = (line: string): string | undefined => check([line]).messages[0];
    expect(message("ControlsACLs lsmod allow user root")).toMatch(
      /^Fatal: ControlsACLs: : unknown action: 'lsmod' on line 1 of /,
    );
    expect(message("ControlsACLs foo,lsctrl allow user root")).toMatch(
      /^Fatal: ControlsACLs: : unknown action: 'foo' on line 1 of /,
    );
    expect(message("ControlsACLs lsctrl Allow user root")).toMatch(
      /^Fatal: ControlsACLs: second parameter must be 'allow' or 'deny' on line 1 of /,
    );
    expect(message("ControlsACLs lsctrl allow users root")).toMatch(
      /^Fatal: ControlsACLs: third parameter must be 'user' or 'group' on line 1 of /,
    );
    expect(message("ControlsACLs lsctrl allow user")).toMatch(/^Fatal: ControlsACLs: missing parameters on line 1 of /);
    for (const line of [
      "ControlsACLs help allow user root",
      "ControlsACLs ALL allow user root",
      "ControlsACLs all allow user root extra",
    ]) {
      expect(check([line]).status).toBe(0);
    }
  });
});

describe("SITE: each module's subcommands are its own handlers of SITE", () => {
  const GUESTS = [
    "LoadModule mod_site_hello.c",
    "ModuleCapabilities mod_xfer_stats.c session,transfer",
    "LoadModule mod_xfer_stats.c",
  ];
  const HEADER = "214-The following SITE commands are recognized (* =>'s unimplemented)";
  const FOOTER = "214 Direct comments to root@localhost";

  it("SITE HELP shows each subcommand with the syntax its module registered, newest module first", async () => {
    const { daemon } = await start([...OPEN, ...GUESTS]);
    const client = await ftp(daemon);
    expect(await client.send("SITE HELP")).toEqual([
      HEADER,
      " XFERSTATS (show your bytes up and down)",
      " HELLO [<sp> name]",
      " HELP",
      " CHMOD",
      FOOTER,
    ]);
    expect(await client.send("SITE HELP hello")).toEqual([
      HEADER,
      " XFERSTATS (show your bytes up and down)",
      " Syntax: SITE HELLO [<sp> name]",
      FOOTER,
    ]);
    expect(await client.send("SITE HELP CHMOD")).toEqual([
      HEADER,
      " XFERSTATS (show your bytes up and down)",
      " HELLO [<sp> name]",
      " Syntax: SITE CHMOD <sp> mode <sp> pathname",
      FOOTER,
    ]);
    expect(await client.send("SITE HELP bogus")).toEqual(["502 Unknown command 'SITE HELP bogus'"]);
    expect(await client.send("SITE NOPE")).toEqual(["500 'SITE NOPE' not understood"]);
  });

  it("rmmod mod_site.c leaves the other modules' SITE subcommands working; re-inserted, mod_site.c answers first", async () => {
    const { daemon } = await start([...OPEN, ...GUESTS]);
    expect((await ctl(daemon, "rmmod", "mod_site.c")).stdout).toBe(out("'mod_site.c' unloaded"));
    const without = await ftp(daemon);
    expect(await without.send("SITE HELLO bob")).toEqual(["200 SITE HELLO: hello, bob"]);
    expect(await without.send("SITE HELP")).toEqual(["500 'SITE' not understood"]);
    expect(await without.send("SITE CHMOD 600 x")).toEqual(["500 'SITE' not understood"]);
    expect((await ctl(daemon, "insmod", "mod_site.c")).stdout).toBe(out("'mod_site.c' loaded"));
    const again = await ftp(daemon);
    expect(await again.send("SITE HELLO bob")).toEqual(["500 'SITE HELLO' not understood"]);
    expect(await again.send("SITE HELP")).toEqual([HEADER, " HELP", " CHMOD", FOOTER]);
    // The session opened before keeps the module set it started with.
    expect(await without.send("SITE HELLO ann")).toEqual(["200 SITE HELLO: hello, ann"]);
  });

  it("a module's SITE subcommand needs a login, SITE HELP does not", async () => {
    const { daemon } = await start([...OPEN, ...GUESTS]);
    const { client } = await FtpControl.connect(daemon.port);
    clients.push(client);
    expect(await client.send("SITE HELLO bob")).toEqual(["530 Please login with USER and PASS"]);
    expect((await client.send("SITE HELP"))[1]).toBe(" XFERSTATS (show your bytes up and down)");
  });
});

describe("errors that keep proftpd's first line and say what to do", () => {
  it("insmod and rmmod: the name meant, the missing file, the missing export, the API versions", async () => {
    const { daemon } = await start([...OPEN, `ModulePath ${FIXTURES}`]);
    expect(await ctl(daemon, "insmod", "mod_hello", "hello.c", "mod_nonexistent.c")).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_hello': Bad module name",
        "  did you mean 'mod_hello.c'?",
        "error loading 'hello.c': Bad module name",
        "  did you mean 'mod_hello.c'?",
        "error loading 'mod_nonexistent.c': No such file or directory",
        `  '${FIXTURES}/mod_nonexistent.wasm' does not exist`,
      ),
      stderr: "",
    });
    expect(await ctl(daemon, "insmod", "mod_nosym.c")).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_nosym.c': No such file or directory",
        "  the file was found, but it does not export 'nosym_module' (the module's API version)",
      ),
      stderr: "",
    });
    expect(await ctl(daemon, "insmod", "mod_badapi.c")).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_badapi.c': Permission denied",
        "  module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
      ),
      stderr: "",
    });
    expect(await ctl(daemon, "rmmod", "mod_site.cpp")).toEqual({
      status: 3,
      stdout: out("error unloading 'mod_site.cpp': Bad module name", "  did you mean 'mod_site.c'?"),
      stderr: "",
    });
    // The daemon's log has them too, in proftpd's words.
    await daemon.waitForLog(
      /dsod\[\d+\]: mod_dso\/0\.5: unable to find module symbol 'nosym_module' in 'mod_nosym\.c'\n/,
    );
    await daemon.waitForLog(
      /dsod\[\d+\]: mod_dso\/0\.5: module 'mod_badapi\.c' has wrong API version \(0x10\), must be 0x20\n/,
    );
  });

  it("LoadModule: a hint line after the fatal one", () => {
    const badName = check(["LoadModule mod_hello"]);
    expect(badName.messages).toEqual([
      `Fatal: LoadModule: error loading module 'mod_hello': Invalid argument on line 1 of '${badName.file}'`,
      "Fatal: did you mean 'mod_hello.c'?",
    ]);
    const noSymbol = check([`ModulePath ${FIXTURES}`, "LoadModule mod_nosym.c"]);
    expect(noSymbol.messages).toEqual([
      "mod_dso/0.5: unable to find module symbol 'nosym_module' in 'mod_nosym.c'",
      `Fatal: LoadModule: error loading module 'mod_nosym.c': No such file or directory on line 2 of '${noSymbol.file}'`,
      "Fatal: the file was found, but it does not export 'nosym_module' (the module's API version)",
    ]);
  });
});

describe("a controls addon that cannot be loaded", () => {
  // A copy of the package without build/: dsod there finds no peercred addon.
  const copy = mkdtempSync(path.join(tmpdir(), "dsod-noaddon-"));
  cpSync(path.join(ROOT, "dist", "host"), path.join(copy, "dist", "host"), {
    recursive: true,
    filter: (source) => !source.endsWith(".map") && !source.endsWith(".ts"),
  });
  copyFileSync(path.join(ROOT, "package.json"), path.join(copy, "package.json"));
  symlinkSync(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
  afterAll(() => rmSync(copy, { recursive: true, force: true }));
  let child: ChildProcessWithoutNullStreams | undefined;
  /** Stops the copy's dsod; resolves once its stderr is closed, so that every line it wrote has been read. */
  const stop = async (): Promise<void> => {
    const started = child;
    if (started === undefined || started.exitCode !== null || started.signalCode !== null) return;
    const closed = new Promise((resolve) => started.once("close", resolve));
    started.kill("SIGTERM");
    await closed;
  };
  afterEach(stop);

  it("says once at start that callers prove their uid with a file instead, and serves them", async () => {
    const dir = tempDir();
    const socket = `${dir}/dsod.sock`;
    const config = writeConfig(
      dir,
      ["DefaultAddress 127.0.0.1", "Port 0", `ControlsSocket ${socket}`, ...OPEN].join("\n"),
    );
    const started = spawn(process.execPath, [path.join(copy, path.relative(ROOT, DSOD)), "-n", "-c", config]);
    child = started;
    let stderr = "";
    await new Promise<void>((resolve, reject) => {
      started.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/listening on /.test(stderr)) resolve();
      });
      started.once("exit", (code) => reject(new Error(`dsod exited with ${code}: ${stderr}`)));
    });
    const reason = `cannot check client credentials: unable to load ${copy}/build/Release/peercred.node (run \`npm rebuild\` (it needs python3, make and g++))`;
    for (const action of ["lsmod", "help"]) {
      const result = await dsoctl(["-s", socket, action]);
      expect([result.status, result.stderr]).toEqual([0, ""]);
    }
    await stop();
    const logged = logMessages(stderr).filter((line) => line.includes("cannot check client credentials"));
    expect(logged).toEqual([
      `mod_ctrls/0.9.5: ${reason}; controls clients prove their uid with a file they create in '${socket}.identify' instead (docs/security.md, "Controls identity without the peercred addon")`,
    ]);
  });
});
