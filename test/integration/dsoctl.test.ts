/**
 * The real dsoctl against the real dsod: insmod/lsmod/rmmod/help with
 * proftpd's lines and our exit codes, ModuleControlsACLs and ControlsSocketACL
 * judged on the kernel's word about the caller (SO_PEERCRED), ControlsLog,
 * garbage on the socket, and the socket file itself.
 *
 * The identity tests spawn dsoctl as other users, which needs root; they are
 * skipped (and say so in their names) when the suite runs unprivileged.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, lstatSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { watch } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { IS_ROOT, otherUsersDsoctl } from "../helpers/other-users.js";
import type { OtherUsersDsoctl } from "../helpers/other-users.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { DSOCTL, FIXTURES, LIBEXEC, PASSWD, RunningDsod, tempDir, writeConfig } from "./helpers/dsod.js";
import type { RunResult } from "./helpers/dsod.js";
import { RawControls, rawExchange, rawRequest, request } from "./helpers/raw-controls.js";

const SETPRIV = "/usr/bin/setpriv";

/** Users of Debian's base system. */
const NOBODY = { uid: 65534, gid: 65534 } as const; // nobody / nogroup
const DAEMON = { uid: 1, gid: 1 } as const; // daemon / daemon
const NOBODY_IN_DAEMON = { uid: 65534, gid: 1 } as const;

const COMPILED_IN = [
  "mod_core.c",
  "mod_xfer.c",
  "mod_auth_file.c",
  "mod_auth.c",
  "mod_ls.c",
  "mod_site.c",
  "mod_delay.c",
  "mod_facts.c",
  "mod_dso.c",
  "mod_ctrls.c",
  "mod_tls.c",
];

// Other users run dsoctl from a world-readable copy: the checkout may be in a folder they cannot enter.
const others = IS_ROOT ? otherUsersDsoctl() : undefined;
afterAll(() => others?.remove());

function forOthers(): OtherUsersDsoctl {
  if (others === undefined) throw new Error("running dsoctl as another user needs root");
  return others;
}

const running: RunningDsod[] = [];
const clients: FtpControl[] = [];
const raws: RawControls[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const raw of raws.splice(0)) raw.destroy();
  for (const daemon of running.splice(0)) await daemon.stop();
});

interface Started {
  readonly daemon: RunningDsod;
  readonly dir: string;
  readonly socket: string;
}

/**
 * Starts dsod on the loopback with a socket in a fresh temp dir, made 0755 so
 * that dsoctl running as nobody can reach the socket (mkdtemp makes 0700).
 * Only the lines given set ACLs: nothing is allowed by default.
 */
async function startDsod(lines: readonly string[]): Promise<Started> {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const socket = `${dir}/dsod.sock`;
  const config = writeConfig(
    dir,
    [`DefaultAddress 127.0.0.1`, `Port 0`, `AuthUserFile ${PASSWD}`, `ControlsSocket ${socket}`, ...lines].join("\n"),
  );
  const daemon = await RunningDsod.start(config, socket);
  running.push(daemon);
  return { daemon, dir, socket };
}

const OPEN_ACLS = ["ControlsSocketACL allow user *", "ModuleControlsACLs all allow user *"];

/** Runs the real dsoctl (`-s socket` first unless `socket` is undefined), as another user or with another environment. */
function ctl(
  socket: string | undefined,
  args: readonly string[],
  options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const other = options.uid === undefined ? undefined : forOthers();
  const script = other?.dsoctl ?? DSOCTL;
  const argv = socket === undefined ? [script, ...args] : [script, "-s", socket, ...args];
  return run(other?.node ?? process.execPath, argv, options);
}

/** Runs `command`; as another user (`uid`, or `cwd` for a command that becomes one), in the world-readable folder. */
function run(
  command: string,
  argv: readonly string[],
  options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      ...(options.uid !== undefined && { uid: options.uid, cwd: forOthers().dir }),
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      ...(options.gid !== undefined && { gid: options.gid }),
      env: options.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** dsoctl's stdout as lines. */
function out(...lines: string[]): string {
  return lines.map((line) => `dsoctl: ${line}\n`).join("");
}

function lsmodOutput(modules: readonly string[]): string {
  return out("Loaded Modules:", ...modules.map((name) => `  ${name}`));
}

const ACCESS_DENIED = out("access denied");

async function expectDenied(result: Promise<RunResult>): Promise<void> {
  expect(await result).toEqual({ status: 2, stdout: ACCESS_DENIED, stderr: "" });
}

async function ftp(daemon: RunningDsod): Promise<FtpControl> {
  const { client } = await FtpControl.connect(daemon.port);
  clients.push(client);
  await client.login();
  return client;
}

/** Resolves once `file` contains `text`, looking again each time its folder changes (no polling, no deadline). */
async function waitForText(file: string, text: string): Promise<void> {
  const has = (): boolean => existsSync(file) && readFileSync(file, "utf8").includes(text);
  // Watching before the first look: a write between the two is not missed.
  const changes = new AbortController();
  const watcher = watch(path.dirname(file), { signal: changes.signal });
  try {
    if (has()) return;
    for await (const _ of watcher) if (has()) return;
  } finally {
    changes.abort();
  }
}

describe("dsoctl lsmod", () => {
  it("lists compiled-in modules in `dsod -l` order, then loaded ones oldest first; a new one last", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c", "LoadModule mod_override.c"]);
    expect(await ctl(socket, ["lsmod"])).toEqual({
      status: 0,
      stdout: lsmodOutput([...COMPILED_IN, "mod_test.c", "mod_override.c"]),
      stderr: "",
    });
    expect((await ctl(socket, ["insmod", "mod_site_hello.c"])).stdout).toBe(out("'mod_site_hello.c' loaded"));
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN, "mod_test.c", "mod_override.c", "mod_site_hello.c"]),
    );
    // Re-inserting an older module moves it to the end.
    expect((await ctl(socket, ["rmmod", "mod_test.c"])).status).toBe(0);
    expect((await ctl(socket, ["insmod", "mod_test.c"])).status).toBe(0);
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN, "mod_override.c", "mod_site_hello.c", "mod_test.c"]),
    );
  });

  it("takes no argument but -v", async () => {
    const { socket } = await startDsod(OPEN_ACLS);
    expect(await ctl(socket, ["lsmod", "extra"])).toEqual({
      status: 3,
      stdout: out("wrong number of parameters"),
      stderr: "",
    });
    expect(await ctl(socket, ["lsmod", "-v", "-v"])).toEqual({
      status: 3,
      stdout: out("wrong number of parameters"),
      stderr: "",
    });
  });

  it("lsmod -v details each module's file, sha256, size and bindings, and lists libraries apart", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_counter.c"]);
    const result = await ctl(socket, ["lsmod", "-v"]);
    expect(result.status).toBe(0);
    expect(result.stderr).toBe("");
    const lines = result.stdout.split("\n").filter((line) => line !== "");
    expect(lines.every((line) => line.startsWith("dsoctl: "))).toBe(true);
    const body = lines.map((line) => line.slice("dsoctl: ".length));
    expect(body[0]).toBe("Loaded Modules:");
    // Module names at two spaces, in lsmod's order; details at four.
    const librariesAt = body.indexOf("Loaded Libraries:");
    expect(librariesAt).toBeGreaterThan(0);
    const moduleNames = body
      .slice(1, librariesAt)
      .filter((line) => /^ {2}\S/.test(line))
      .map((line) => line.trim());
    expect(moduleNames).toEqual([...COMPILED_IN, "mod_counter.c"]);
    const section = (name: string, from: number): string[] => {
      const start = body.indexOf(`  ${name}`, from);
      expect(start, `no section for ${name}`).toBeGreaterThan(0);
      const end = body.findIndex((line, i) => i > start && !line.startsWith("    "));
      return body.slice(start + 1, end === -1 ? undefined : end);
    };
    const fileFacts = (file: string): string[] => {
      const bytes = readFileSync(file);
      return [
        `    file: ${file}`,
        `    sha256: ${createHash("sha256").update(bytes).digest("hex")}`,
        `    size: ${bytes.length} bytes`,
      ];
    };
    const counter = section("mod_counter.c", 1);
    expect(counter).toContain("    kind: dso");
    for (const fact of fileFacts(path.join(LIBEXEC, "mod_counter.wasm"))) expect(counter).toContain(fact);
    expect(counter).toContain("    import: libcounter.counter_next -> libcounter");
    expect(counter).toContain("    sessions: 0");
    const library = section("libcounter", librariesAt);
    expect(library).toContain("    kind: library");
    expect(library).toContain("    loaded as a dependency");
    for (const fact of fileFacts(path.join(LIBEXEC, "libcounter.wasm"))) expect(library).toContain(fact);
    expect(library).toContain("    export: counter_next");
    expect(library).toContain("    needed by: mod_counter.c");
    // A compiled-in module has no file.
    expect(section("mod_core.c", 1)).toEqual(["    kind: static", "    sessions: 0"]);
  });

  it("counts the sessions holding a module in lsmod -v", async () => {
    const { daemon, socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    await ftp(daemon);
    await ftp(daemon);
    const body = (await ctl(socket, ["lsmod", "-v"])).stdout.split("\n");
    const at = body.indexOf("dsoctl:   mod_test.c");
    const sessions = body.slice(at).find((line) => line.startsWith("dsoctl:     sessions: "));
    expect(sessions).toBe("dsoctl:     sessions: 2");
  });

  it("--json prints the status and lines as one object, for any action", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    const listed = await ctl(socket, ["--json", "lsmod"]);
    expect(listed).toEqual({
      status: 0,
      stdout: `${JSON.stringify({ status: 0, lines: ["Loaded Modules:", ...[...COMPILED_IN, "mod_test.c"].map((name) => `  ${name}`)] })}\n`,
      stderr: "",
    });
    expect(await ctl(socket, ["--json", "insmod", "mod_test.c"])).toEqual({
      status: 3,
      stdout: `{"status":-1,"lines":["error loading 'mod_test.c': Already loaded"]}\n`,
      stderr: "",
    });
    expect(await ctl(socket, ["--json", "frob"])).toEqual({
      status: 4,
      stdout: `{"status":-7,"lines":["unsupported action requested"]}\n`,
      stderr: "",
    });
  });
});

describe("dsoctl insmod", () => {
  it("loads a module once; a second time, or a compiled-in one, is Already loaded", async () => {
    const { socket } = await startDsod(OPEN_ACLS);
    expect(await ctl(socket, ["insmod", "mod_test.c"])).toEqual({
      status: 0,
      stdout: out("'mod_test.c' loaded"),
      stderr: "",
    });
    expect(await ctl(socket, ["insmod", "mod_test.c"])).toEqual({
      status: 3,
      stdout: out("error loading 'mod_test.c': Already loaded"),
      stderr: "",
    });
    expect(await ctl(socket, ["insmod", "mod_core.c"])).toEqual({
      status: 3,
      stdout: out("error loading 'mod_core.c': Already loaded"),
      stderr: "",
    });
  });

  it("answers No such file or directory and Bad module name as proftpd", async () => {
    const { socket } = await startDsod(OPEN_ACLS);
    expect(await ctl(socket, ["insmod", "mod_nonexistent.c"])).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_nonexistent.c': No such file or directory",
        `  '${LIBEXEC}/mod_nonexistent.wasm' does not exist`,
      ),
      stderr: "",
    });
    // Under proftpd's line, the name meant, when there is one.
    const meant: ReadonlyArray<readonly [string, string[]]> = [
      ["foo", ["  did you mean 'mod_foo.c'?"]],
      ["mod_x", ["  did you mean 'mod_x.c'?"]],
      ["/abs/mod_x.c", ["  did you mean 'mod_x.c'?"]],
      ["../mod_x.c", ["  did you mean 'mod_x.c'?"]],
      ["mod_/../mod_x.c", ["  did you mean 'mod_x.c'?"]],
      ["mod_x.c/", []],
    ];
    for (const [name, hint] of meant) {
      expect(await ctl(socket, ["insmod", name]), name).toEqual({
        status: 3,
        stdout: out(`error loading '${name}': Bad module name`, ...hint),
        stderr: "",
      });
    }
    expect(await ctl(socket, ["insmod"])).toEqual({
      status: 3,
      stdout: out("missing required parameters"),
      stderr: "",
    });
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput(COMPILED_IN));
  });

  it("processes every name of one request, one line each, and exits 3 if any failed", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    expect(await ctl(socket, ["insmod", "mod_override.c", "mod_test.c", "mod_nope.c", "mod_site_hello.c"])).toEqual({
      status: 3,
      stdout: out(
        "'mod_override.c' loaded",
        "error loading 'mod_test.c': Already loaded",
        "error loading 'mod_nope.c': No such file or directory",
        `  '${LIBEXEC}/mod_nope.wasm' does not exist`,
        "'mod_site_hello.c' loaded",
      ),
      stderr: "",
    });
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN, "mod_test.c", "mod_override.c", "mod_site_hello.c"]),
    );
    expect(await ctl(socket, ["rmmod", "mod_override.c", "mod_site_hello.c"])).toEqual({
      status: 0,
      stdout: out("'mod_override.c' unloaded", "'mod_site_hello.c' unloaded"),
      stderr: "",
    });
  });

  it("reports a link failure one line per problem, a wrong API as EACCES and a failing init as EPERM", async () => {
    const { daemon, socket } = await startDsod([...OPEN_ACLS, `ModulePath ${FIXTURES}`]);
    expect(await ctl(socket, ["insmod", "mod_undef.c"])).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_undef.c': mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32)",
        "error loading 'mod_undef.c': mod_undef.c: undefined symbol 'another_missing' (func () -> nil)",
      ),
      stderr: "",
    });
    expect(await ctl(socket, ["insmod", "mod_badapi.c"])).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_badapi.c': Permission denied",
        "  module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
      ),
      stderr: "",
    });
    expect(await ctl(socket, ["insmod", "mod_initfail.c"])).toEqual({
      status: 3,
      stdout: out(
        "error loading 'mod_initfail.c': Operation not permitted",
        "  module 'mod_initfail.c' failed to initialize",
      ),
      stderr: "",
    });
    await daemon.waitForLog(/module 'mod_initfail\.c' failed to initialize/);
    expect(daemon.stderr).toMatch(/mod_dso\/0\.5: module 'mod_badapi\.c' has wrong API version \(0x10\), must be 0x20/);
    // Nothing half-loaded is left behind.
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput(COMPILED_IN));
  });
});

describe("dsoctl rmmod", () => {
  it("unloads once; again is Module not loaded; names that are not mod_*.c are Bad module name", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    expect(await ctl(socket, ["rmmod", "mod_test.c"])).toEqual({
      status: 0,
      stdout: out("'mod_test.c' unloaded"),
      stderr: "",
    });
    expect(await ctl(socket, ["rmmod", "mod_test.c"])).toEqual({
      status: 3,
      stdout: out("error unloading 'mod_test.c': Module not loaded"),
      stderr: "",
    });
    expect(await ctl(socket, ["rmmod", "mod_x.cpp", "foo.c", "mod_test"])).toEqual({
      status: 3,
      stdout: out(
        "error unloading 'mod_x.cpp': Bad module name",
        "  did you mean 'mod_x.c'?",
        "error unloading 'foo.c': Bad module name",
        "  did you mean 'mod_foo.c'?",
        "error unloading 'mod_test': Bad module name",
        "  did you mean 'mod_test.c'?",
      ),
      stderr: "",
    });
    expect(await ctl(socket, ["rmmod"])).toEqual({ status: 3, stdout: out("missing required parameters"), stderr: "" });
  });

  it("refuses mod_dso.c and mod_ctrls.c, and the controls keep working", async () => {
    const { socket } = await startDsod(OPEN_ACLS);
    expect(await ctl(socket, ["rmmod", "mod_dso.c"])).toEqual({
      status: 3,
      stdout: out("error unloading 'mod_dso.c': Operation not permitted"),
      stderr: "",
    });
    expect(await ctl(socket, ["rmmod", "mod_ctrls.c"])).toEqual({
      status: 3,
      stdout: out("error unloading 'mod_ctrls.c': Operation not permitted"),
      stderr: "",
    });
    expect(await ctl(socket, ["lsmod"])).toEqual({ status: 0, stdout: lsmodOutput(COMPILED_IN), stderr: "" });
    expect(await ctl(socket, ["insmod", "mod_test.c"])).toEqual({
      status: 0,
      stdout: out("'mod_test.c' loaded"),
      stderr: "",
    });
  });

  it("removes a compiled-in module (new sessions lose SITE) and inserts it again, listed last", async () => {
    const { daemon, socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    const before = await ftp(daemon);
    const siteHelp = await before.send("SITE HELP");
    expect(siteHelp[0]).toMatch(/^214/);
    expect(await ctl(socket, ["rmmod", "mod_site.c"])).toEqual({
      status: 0,
      stdout: out("'mod_site.c' unloaded"),
      stderr: "",
    });
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN.filter((name) => name !== "mod_site.c"), "mod_test.c"]),
    );
    const without = await ftp(daemon);
    expect(await without.send("SITE HELP")).toEqual(["500 'SITE' not understood"]);
    expect(await without.send("NOOP")).toEqual(["200 NOOP command successful"]);
    // The session opened before keeps the module set it was forked with.
    expect(await before.send("SITE HELP")).toEqual(siteHelp);
    expect(await ctl(socket, ["insmod", "mod_site.c"])).toEqual({
      status: 0,
      stdout: out("'mod_site.c' loaded"),
      stderr: "",
    });
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN.filter((name) => name !== "mod_site.c"), "mod_test.c", "mod_site.c"]),
    );
    const again = await ftp(daemon);
    expect(await again.send("SITE HELP")).toEqual(siteHelp);
    expect(await without.send("SITE HELP")).toEqual(["500 'SITE' not understood"]);
  });

  it("refuses to unload a module others depend on, naming them", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_sql_mysql.c"]);
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput([...COMPILED_IN, "mod_sql.c", "mod_sql_mysql.c"]));
    const refused = await ctl(socket, ["rmmod", "mod_sql.c"]);
    expect(refused.status).toBe(3);
    expect(refused.stdout).toBe(
      out("error unloading 'mod_sql.c': Device or resource busy (needed by mod_sql_mysql.c)"),
    );
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput([...COMPILED_IN, "mod_sql.c", "mod_sql_mysql.c"]));
    expect(await ctl(socket, ["rmmod", "mod_sql_mysql.c"])).toEqual({
      status: 0,
      stdout: out("'mod_sql_mysql.c' unloaded"),
      stderr: "",
    });
  });
});

describe("dsoctl help, unknown actions and usage", () => {
  it("help lists every control, sorted; an unknown action exits 4", async () => {
    const { socket } = await startDsod(OPEN_ACLS);
    expect(await ctl(socket, ["help"])).toEqual({
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
    expect(await ctl(socket, ["frobnicate"])).toEqual({
      status: 4,
      stdout: out("unsupported action requested"),
      stderr: "",
    });
    // Action names are case-sensitive.
    expect(await ctl(socket, ["LSMOD"])).toEqual({
      status: 4,
      stdout: out("unsupported action requested"),
      stderr: "",
    });
  });

  it("no action, a relative -s, or a request over the limits exit 1 without contacting anyone", async () => {
    expect(await ctl(undefined, ["-s", "/nonexistent/dsod.sock"])).toEqual({
      status: 1,
      stdout: out("missing required action"),
      stderr: "",
    });
    expect(await ctl(undefined, ["-s", "run/dsod.sock", "lsmod"])).toEqual({
      status: 1,
      stdout: "",
      stderr: "dsoctl: alternate socket path must be an absolute path\n",
    });
    const names = Array.from({ length: 39 }, (_, i) => `mod_n${i}.c`);
    expect(await ctl(undefined, ["-s", "/nonexistent/dsod.sock", "insmod", ...names])).toEqual({
      status: 1,
      stdout: "",
      stderr: "dsoctl: controls request has 40 arguments, more than the maximum of 32\n",
    });
  });

  it("exits 69 with the reason on stderr when no daemon answers", async () => {
    const dir = tempDir();
    const socket = `${dir}/dsod.sock`;
    expect(await ctl(socket, ["lsmod"])).toEqual({
      status: 69,
      stdout: "",
      stderr: `dsoctl: error contacting server using '${socket}': No such file or directory\n`,
    });
    // A socket file left over from a daemon that is gone.
    const { daemon, socket: left } = await startDsod(OPEN_ACLS);
    daemon.child.kill("SIGKILL");
    await new Promise((resolve) => daemon.child.once("exit", resolve));
    expect(existsSync(left)).toBe(true);
    expect(await ctl(left, ["lsmod"])).toEqual({
      status: 69,
      stdout: "",
      stderr: `dsoctl: error contacting server using '${left}': Connection refused\n`,
    });
  });
});

describe.skipIf(!IS_ROOT)(
  "ACLs on the caller's real identity (needs root to run dsoctl as others; skipped otherwise)",
  () => {
    it("without ModuleControlsACLs every action is denied, root included; help is not guarded", async () => {
      const { socket } = await startDsod(["ControlsSocketACL allow user *"]);
      await expectDenied(ctl(socket, ["lsmod"]));
      await expectDenied(ctl(socket, ["insmod", "mod_test.c"]));
      await expectDenied(ctl(socket, ["rmmod", "mod_site.c"]));
      expect((await ctl(socket, ["help"])).status).toBe(0);
      expect(await ctl(socket, ["--json", "lsmod"])).toEqual({
        status: 2,
        stdout: `{"status":-2,"lines":["access denied"]}\n`,
        stderr: "",
      });
    });

    it("Debian's modules.conf: root loads, everyone lists, nobody cannot load; the ACL comes before the arguments", async () => {
      const { socket } = await startDsod([
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs insmod,rmmod allow user root",
        "ModuleControlsACLs lsmod allow user *",
      ]);
      expect(await ctl(socket, ["insmod", "mod_test.c"])).toEqual({
        status: 0,
        stdout: out("'mod_test.c' loaded"),
        stderr: "",
      });
      expect(await ctl(socket, ["lsmod"], NOBODY)).toEqual({
        status: 0,
        stdout: lsmodOutput([...COMPILED_IN, "mod_test.c"]),
        stderr: "",
      });
      await expectDenied(ctl(socket, ["insmod", "mod_override.c"], NOBODY));
      await expectDenied(ctl(socket, ["rmmod", "mod_test.c"], NOBODY));
      await expectDenied(ctl(socket, ["insmod"], NOBODY));
      expect(await ctl(socket, ["insmod"])).toEqual({
        status: 3,
        stdout: out("missing required parameters"),
        stderr: "",
      });
      expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput([...COMPILED_IN, "mod_test.c"]));
    });

    it("`lsmod deny user nobody` lets everyone else list; insmod has no rule and stays denied", async () => {
      const { socket } = await startDsod([
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs lsmod deny user nobody",
      ]);
      expect((await ctl(socket, ["lsmod"])).status).toBe(0);
      expect(await ctl(socket, ["lsmod"], DAEMON)).toEqual({ status: 0, stdout: lsmodOutput(COMPILED_IN), stderr: "" });
      await expectDenied(ctl(socket, ["lsmod"], NOBODY));
      await expectDenied(ctl(socket, ["insmod", "mod_test.c"]));
    });

    it("`lsmod allow group daemon` looks at the caller's primary gid only", async () => {
      const { socket } = await startDsod([
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs lsmod allow group daemon",
      ]);
      await expectDenied(ctl(socket, ["lsmod"]));
      await expectDenied(ctl(socket, ["lsmod"], NOBODY));
      expect((await ctl(socket, ["lsmod"], DAEMON)).stdout).toBe(lsmodOutput(COMPILED_IN));
      expect(await ctl(socket, ["lsmod"], NOBODY_IN_DAEMON)).toEqual({
        status: 0,
        stdout: lsmodOutput(COMPILED_IN),
        stderr: "",
      });
    });

    it.skipIf(!existsSync(SETPRIV))(
      "a supplementary group does not count (setpriv: nobody with daemon as a supplementary group)",
      async () => {
        const { socket } = await startDsod([
          "ControlsSocketACL allow user *",
          "ModuleControlsACLs lsmod allow group daemon",
        ]);
        const { node, dsoctl, dir } = forOthers();
        const asNobody = ["--reuid=65534", "--regid=65534", "--groups=1", "--", node, dsoctl, "-s", socket];
        expect(await run(SETPRIV, [...asNobody, "lsmod"], { cwd: dir })).toEqual({
          status: 2,
          stdout: ACCESS_DENIED,
          stderr: "",
        });
        const asDaemonGroup = ["--reuid=65534", "--regid=1", "--clear-groups", "--", node, dsoctl, "-s", socket];
        expect(await run(SETPRIV, [...asDaemonGroup, "lsmod"], { cwd: dir })).toEqual({
          status: 0,
          stdout: lsmodOutput(COMPILED_IN),
          stderr: "",
        });
      },
    );

    it("ControlsSocketACL denies by default: no directive, nothing is served, help included", async () => {
      const { socket } = await startDsod(["ModuleControlsACLs all allow user *"]);
      await expectDenied(ctl(socket, ["help"]));
      await expectDenied(ctl(socket, ["lsmod"]));
      await expectDenied(ctl(socket, ["insmod", "mod_test.c"]));
      await expectDenied(ctl(socket, ["frobnicate"]));
      await expectDenied(ctl(socket, ["help"], NOBODY));
      // Denied means nothing happened.
      await expectDenied(ctl(socket, ["lsmod"]));
    });

    it("`ControlsSocketACL allow user root` keeps nobody out of every action, help included", async () => {
      const { socket } = await startDsod(["ControlsSocketACL allow user root", "ModuleControlsACLs all allow user *"]);
      expect((await ctl(socket, ["lsmod"])).stdout).toBe(lsmodOutput(COMPILED_IN));
      expect((await ctl(socket, ["help"])).status).toBe(0);
      await expectDenied(ctl(socket, ["help"], NOBODY));
      await expectDenied(ctl(socket, ["lsmod"], NOBODY));
      await expectDenied(ctl(socket, ["insmod", "mod_test.c"], NOBODY));
      expect((await ctl(socket, ["lsmod"], DAEMON)).status).toBe(2);
    });

    it("judges a client by who it is, not by what it says: nobody posing as root is nobody", async () => {
      const { socket } = await startDsod([
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs insmod,rmmod allow user root",
        "ModuleControlsACLs lsmod allow user *",
      ]);
      const posing = { ...process.env, USER: "root", LOGNAME: "root", HOME: "/root", SUDO_UID: "0", SUDO_USER: "root" };
      await expectDenied(ctl(socket, ["insmod", "mod_test.c"], { ...NOBODY, env: posing }));
      await expectDenied(ctl(socket, ["rmmod", "mod_site.c"], { ...NOBODY, env: posing }));
      // The wire carries no identity: a raw request as nobody is judged the same way.
      const wire = path.join(forOthers().host, "controls", "wire.js");
      const script = [
        `import { createConnection } from "node:net";`,
        `import { encodeMessage, MessageDecoder, RESPONSE_LIMITS } from ${JSON.stringify(wire)};`,
        `const decoder = new MessageDecoder(RESPONSE_LIMITS);`,
        `const s = createConnection(${JSON.stringify(socket)}, () => s.write(encodeMessage(0, ["insmod", "mod_test.c", "uid=0", "root"])));`,
        `s.on("data", (c) => { const r = decoder.push(c); if (r) { console.log(JSON.stringify(r)); s.destroy(); } });`,
      ].join("\n");
      const raw = await run(forOthers().node, ["--input-type=module", "-e", script], NOBODY);
      expect(raw).toEqual({
        status: 0,
        stdout: `${JSON.stringify({ status: -2, args: ["access denied"] })}\n`,
        stderr: "",
      });
      expect((await ctl(socket, ["lsmod"], NOBODY)).stdout).toBe(lsmodOutput(COMPILED_IN));
    });

    it("writes proftpd's ControlsLog lines for an accepted insmod and a denied lsmod", async () => {
      const logDir = tempDir();
      const log = `${logDir}/ctrls.log`;
      const { daemon, socket } = await startDsod([
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs insmod,lsmod allow user root",
        `ControlsLog ${log}`,
      ]);
      expect((await ctl(socket, ["insmod", "mod_test.c"])).stdout).toBe(out("'mod_test.c' loaded"));
      await waitForText(log, "closed connection to root/root client");
      await expectDenied(ctl(socket, ["lsmod"], NOBODY));
      await waitForText(log, "closed connection to nobody/nogroup client");
      const prefix = new RegExp(
        String.raw`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} mod_ctrls/0\.9\.5\[${daemon.child.pid}\]: `,
      );
      const lines = readFileSync(log, "utf8")
        .split("\n")
        .filter((line) => line !== "");
      expect(
        lines.every((line) => prefix.test(line)),
        lines.join("\n"),
      ).toBe(true);
      expect(lines.map((line) => line.replace(prefix, ""))).toEqual([
        "accepted connection from root/root client",
        "recvd from root/root client: 'insmod mod_test.c'",
        "sent to root/root client: return value: 0",
        "sent to root/root client: ''mod_test.c' loaded'",
        "closed connection to root/root client",
        "accepted connection from nobody/nogroup client",
        // proftpd 1.3.8 logs -1 here; dsod's status for access denied is master's -2 (docs/controls.md).
        "sent to nobody/nogroup client: return value: -2",
        "sent to nobody/nogroup client: 'access denied'",
        "closed connection to nobody/nogroup client",
      ]);
    });
  },
);

describe("insmod and rmmod while FTP sessions are busy", () => {
  it("sessions keep the modules they started with, new ones see each change, no reply is lost", async () => {
    const { daemon, socket } = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c", "LoadModule mod_counter.c"]);
    const old = await Promise.all([ftp(daemon), ftp(daemon), ftp(daemon)]);
    const rounds = 25;
    // mod_counter's count lives in libcounter, of which each session has its own instance (a forked child's).
    const counts: number[][] = old.map(() => []);
    const sessionWork = old.map(async (client, n) => {
      for (let i = 1; i <= rounds; i++) {
        expect(await client.send(`TEST s${n}r${i}`)).toEqual([`200 Hello from mod_test: s${n}r${i}`]);
        const [count = ""] = await client.send("COUNT");
        expect(count).toMatch(/^200 COUNT \d+$/);
        counts[n]?.push(Number(count.slice("200 COUNT ".length)));
        expect(await client.send("SYST")).toEqual(["215 UNIX Type: L8"]);
        expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
      }
    });
    const controlWork = (async () => {
      const steps: Array<[string[], string]> = [
        [["rmmod", "mod_test.c"], "'mod_test.c' unloaded"],
        [["insmod", "mod_override.c"], "'mod_override.c' loaded"],
        [["rmmod", "mod_counter.c"], "'mod_counter.c' unloaded"],
        [["insmod", "mod_test.c"], "'mod_test.c' loaded"],
        [["rmmod", "mod_test.c"], "'mod_test.c' unloaded"],
        [["insmod", "mod_site_hello.c"], "'mod_site_hello.c' loaded"],
      ];
      for (const [args, line] of steps) {
        expect(await ctl(socket, args)).toEqual({ status: 0, stdout: out(line), stderr: "" });
      }
    })();
    await Promise.all([...sessionWork, controlWork]);
    // No COUNT was lost, answered twice or seen by another session, whatever was loaded or unloaded meanwhile.
    for (const seen of counts) expect(seen).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    // The old sessions still have mod_test and the counter they started with, and nothing new.
    for (const [n, client] of old.entries()) {
      expect(await client.send(`TEST after${n}`)).toEqual([`200 Hello from mod_test: after${n}`]);
      expect(await client.send("COUNT")).toEqual([`200 COUNT ${rounds + 1}`]);
      expect(await client.send("SYST")).toEqual(["215 UNIX Type: L8"]);
      expect(await client.send("SITE HELLO x")).toEqual(["500 'SITE HELLO' not understood"]);
    }
    const fresh = await ftp(daemon);
    expect(await fresh.send("TEST new")).toEqual(["500 'TEST' not understood"]);
    expect(await fresh.send("COUNT")).toEqual(["500 'COUNT' not understood"]);
    expect(await fresh.send("SYST")).toEqual(["215 UNIX Type: L8 (answered by mod_override.c)"]);
    expect(await fresh.send("SITE HELLO x")).toEqual(["200 SITE HELLO: hello, x"]);
    expect((await ctl(socket, ["lsmod"])).stdout).toBe(
      lsmodOutput([...COMPILED_IN, "mod_override.c", "mod_site_hello.c"]),
    );
    for (const client of old) expect(await client.send("QUIT")).toEqual(["221 Goodbye."]);
  });
});

describe("garbage on the controls socket", () => {
  async function stillServing(started: Started): Promise<void> {
    expect(await ctl(started.socket, ["lsmod"])).toEqual({ status: 0, stdout: lsmodOutput(COMPILED_IN), stderr: "" });
    const client = await ftp(started.daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  }

  it("answers each malformed request with an error and closes, and goes on serving", async () => {
    const started = await startDsod(OPEN_ACLS);
    const { socket } = started;
    const failed = (line: string) => ({ response: { status: -1, args: [line] }, leftover: 0, closedByServer: true });

    // Text where a request should be: "/ HT" read as argc.
    const http = Buffer.from("GET / HTTP/1.0\r\n\r\n");
    const argc = http.readUInt32LE(4);
    expect(await rawExchange(socket, http)).toEqual(
      failed(`controls request has ${argc} arguments, more than the maximum of 32`),
    );

    expect(await rawExchange(socket, request(["insmod", "a".repeat(300)]))).toEqual(
      failed("controls request argument 2 is 300 bytes, more than the maximum of 256"),
    );
    expect(await rawExchange(socket, request(["x".repeat(128)]))).toEqual(
      failed("controls request action is 128 bytes, more than the maximum of 127"),
    );
    const forty = ["insmod", ...Array.from({ length: 39 }, (_, i) => `mod_n${i}.c`)];
    expect(await rawExchange(socket, request(forty))).toEqual(
      failed("controls request has 40 arguments, more than the maximum of 32"),
    );
    expect(await rawExchange(socket, rawRequest(0, []))).toEqual(failed("controls request has no action"));
    expect(await rawExchange(socket, rawRequest(2, [Buffer.from("insmod"), Buffer.from([0xff, 0xfe, 0x41])]))).toEqual(
      failed("controls request argument 2 is not valid UTF-8"),
    );
    // A request cut short, then FIN.
    const whole = request(["insmod", "mod_test.c"]);
    expect(await rawExchange(socket, whole.subarray(0, whole.length - 3), { end: true })).toEqual(
      failed("controls request is truncated"),
    );
    // An empty connection gets nothing and harms nothing.
    expect(await rawExchange(socket, new Uint8Array(0), { end: true })).toEqual({
      response: undefined,
      leftover: 0,
      closedByServer: true,
    });

    // Random bytes: an error reply or a close, never a crash or a hang.
    for (let i = 0; i < 20; i++) {
      const noise = randomBytes(64 + i * 37);
      const outcome = await rawExchange(socket, noise, { end: true });
      expect(outcome.closedByServer).toBe(true);
      expect(outcome.leftover).toBe(0);
      if (outcome.response !== undefined) {
        expect(outcome.response.status).toBe(-1);
        expect(outcome.response.args).toHaveLength(1);
      }
    }

    // At the limits exactly: 32 arguments of which one is 256 bytes is a request.
    const longName = `mod_${"a".repeat(250)}.c`;
    expect(Buffer.byteLength(longName)).toBe(256);
    const names = [longName, ...Array.from({ length: 30 }, (_, i) => `mod_n${i}.c`)];
    const atLimits = await rawExchange(socket, request(["rmmod", ...names]));
    expect(atLimits.response?.status).toBe(-1);
    expect(atLimits.response?.args).toEqual(names.map((name) => `error unloading '${name}': Module not loaded`));

    await stillServing(started);
  });

  it("a request cut at an argument boundary, then FIN, is answered as truncated too", async () => {
    const started = await startDsod(OPEN_ACLS);
    const failed = {
      response: { status: -1, args: ["controls request is truncated"] },
      leftover: 0,
      closedByServer: true,
    };
    // argc says 3, one argument follows, then FIN.
    expect(await rawExchange(started.socket, rawRequest(3, [Buffer.from("lsmod")]), { end: true })).toEqual(failed);
    // Only the status and argc words, then FIN.
    expect(await rawExchange(started.socket, rawRequest(2, []), { end: true })).toEqual(failed);
    await stillServing(started);
  });

  it("a half-sent request does not hold up other clients, and gets closed after the request timeout", async () => {
    const started = await startDsod(OPEN_ACLS);
    const half = await RawControls.connect(started.socket);
    raws.push(half);
    const whole = request(["lsmod"]);
    await half.write(whole.subarray(0, 6));
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) await stillServing(started);
    // Served while the half-sent request is still open: it held nobody up (however long a loaded machine took).
    expect(half.isClosed).toBe(false);
    // dsod's request timeout (10 s from connect) ends it without an answer.
    const outcome = await half.outcome(15_000);
    expect(outcome).toEqual({ response: undefined, leftover: 0, closedByServer: true });
    expect(Date.now() - t0).toBeGreaterThan(8_000);
    await stillServing(started);
  }, 30_000);

  it("ControlsMaxClients silent clients make others exit 75 (busy), not hang; they are served once a slot frees", async () => {
    const started = await startDsod([...OPEN_ACLS, "ControlsMaxClients 2"]);
    const silent = await Promise.all([RawControls.connect(started.socket), RawControls.connect(started.socket)]);
    raws.push(...silent);
    await Promise.all(silent.map((client) => client.write(request(["lsmod"]).subarray(0, 3))));
    expect(await ctl(started.socket, ["lsmod"])).toEqual({
      status: 75,
      stdout: out("too many controls clients (ControlsMaxClients 2), try again later"),
      stderr: "",
    });
    silent[0]?.destroy();
    await silent[0]?.closed();
    // The daemon frees the slot once it has seen the close, which the client's own close does not wait for.
    let freed = await ctl(started.socket, ["lsmod"]);
    while (freed.status === 75) freed = await ctl(started.socket, ["lsmod"]);
    expect(freed).toEqual({ status: 0, stdout: lsmodOutput(COMPILED_IN), stderr: "" });
    await stillServing(started);
  });
});

/** Expects dsod on `config` to refuse to start; one that starts anyway is stopped, not leaked. */
async function expectStartRefused(config: string, socket: string, reason: RegExp): Promise<void> {
  const attempt = RunningDsod.start(config, socket);
  attempt.then((daemon) => running.push(daemon)).catch(() => {});
  await expect(attempt).rejects.toThrow(reason);
}

describe("the controls socket file", () => {
  it("a second dsod on the same ControlsSocket refuses to start while the first answers", async () => {
    const first = await startDsod([...OPEN_ACLS, "LoadModule mod_test.c"]);
    const second = writeConfig(
      first.dir,
      [
        `DefaultAddress 127.0.0.1`,
        `Port 0`,
        `AuthUserFile ${PASSWD}`,
        `ControlsSocket ${first.socket}`,
        ...OPEN_ACLS,
      ].join("\n"),
      "second.conf",
    );
    await expectStartRefused(second, first.socket, /Fatal: another dsod is running on '.*dsod\.sock'/);
    expect((await ctl(first.socket, ["lsmod"])).stdout).toBe(lsmodOutput([...COMPILED_IN, "mod_test.c"]));
    expect(lstatSync(first.socket).isSocket()).toBe(true);
  });

  it.skipIf(!IS_ROOT)("is 0777, owned as ControlsSocketOwner says (chown needs root; skipped otherwise)", async () => {
    const { socket } = await startDsod([...OPEN_ACLS, "ControlsSocketOwner nobody nogroup"]);
    const stat = lstatSync(socket);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o777);
    expect({ uid: stat.uid, gid: stat.gid }).toEqual(NOBODY);
  });

  it("a file put in the socket's place is neither taken over by a new dsod nor deleted by the old one", async () => {
    const first = await startDsod(OPEN_ACLS);
    unlinkSync(first.socket);
    writeFileSync(first.socket, "not a socket\n");
    const second = writeConfig(
      first.dir,
      [
        `DefaultAddress 127.0.0.1`,
        `Port 0`,
        `AuthUserFile ${PASSWD}`,
        `ControlsSocket ${first.socket}`,
        ...OPEN_ACLS,
      ].join("\n"),
      "second.conf",
    );
    await expectStartRefused(second, first.socket, /exists and is not a socket/);
    expect(readFileSync(first.socket, "utf8")).toBe("not a socket\n");
    // The first dsod's controls are unreachable now, but its shutdown must not delete a file it does not own.
    expect(await first.daemon.stop()).toBe(0);
    expect(existsSync(first.socket) && readFileSync(first.socket, "utf8")).toBe("not a socket\n");
  });

  it("when the socket was removed and a new dsod took the path, the old dsod's shutdown leaves the new socket alone", async () => {
    const first = await startDsod(OPEN_ACLS);
    unlinkSync(first.socket);
    const secondConfig = writeConfig(
      first.dir,
      [
        `DefaultAddress 127.0.0.1`,
        `Port 0`,
        `AuthUserFile ${PASSWD}`,
        `ControlsSocket ${first.socket}`,
        ...OPEN_ACLS,
        "LoadModule mod_test.c",
      ].join("\n"),
      "second.conf",
    );
    const second = await RunningDsod.start(secondConfig, first.socket);
    running.push(second);
    const inode = statSync(first.socket).ino;
    expect((await ctl(first.socket, ["lsmod"])).stdout).toBe(lsmodOutput([...COMPILED_IN, "mod_test.c"]));
    expect(await first.daemon.stop()).toBe(0);
    expect(existsSync(first.socket)).toBe(true);
    expect(statSync(first.socket).ino).toBe(inode);
    expect(await ctl(first.socket, ["lsmod"])).toEqual({
      status: 0,
      stdout: lsmodOutput([...COMPILED_IN, "mod_test.c"]),
      stderr: "",
    });
  });
});
