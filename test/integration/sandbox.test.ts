/**
 * The sandbox against the real daemon: limits that bind, faults contained,
 * capabilities checked per importer, unsafe files refused, and after each
 * failure the daemon still serves FTP and controls.
 */
import { createHash } from "node:crypto";
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import type { RunningDsod } from "./helpers/dsod.js";
import { FIXTURES, LIBEXEC, dsoctl, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const fixture = daemonFixture();
const startDsod = fixture.start;
const connect = fixture.connect;

/** After any fault: FTP and controls still answer. */
async function expectServing(daemon: RunningDsod): Promise<void> {
  const client = await connect(daemon);
  expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
  expect(lsmod.status).toBe(0);
  expect(lsmod.stdout.split("\n")[0]).toBe("dsoctl: Loaded Modules:");
}

/** A module directory of our own with the given files copied from the built guests. */
function moduleDir(files: Record<string, string>): string {
  const dir = path.join(tempDir(), "mods");
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  for (const [name, source] of Object.entries(files)) copyFileSync(source, path.join(dir, name));
  return dir;
}

function check(lines: readonly string[]): { status: number | null; messages: string[]; file: string } {
  const dir = tempDir();
  const file = writeConfig(dir, lines.join("\n"));
  const result = runDsod(["-t", "-c", file]);
  return { status: result.status, messages: logMessages(result.stderr), file };
}

describe("memory limits", () => {
  it("a guest growing its memory without end traps at its cap; the session and the daemon go on", async () => {
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleMemoryLimit mod_hog.c 4M",
      "LoadModule mod_hog.c",
    ]);
    const client = await connect(daemon);
    expect(await client.send("SITE HOG")).toEqual(["451 Requested action aborted: local error in processing."]);
    expect(logMessages(daemon.stderr).join("\n")).toMatch(/mod_hog\.c: fault in site_HOG: unreachable/);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    await expectServing(daemon);
  });

  it("lsmod -v shows the memory in use, within the cap", async () => {
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleMemoryLimit mod_hog.c 4M",
      "LoadModule mod_hog.c",
    ]);
    const client = await connect(daemon);
    expect(await client.send("SITE SIZE")).toEqual(["200 SITE SIZE: 1 pages"]);
    await client.send("SITE HOG");
    const verbose = await dsoctl(["-s", daemon.socket, "lsmod", "-v"]);
    const memory = /mod_hog\.c[\s\S]*?memory: (\d+) bytes/.exec(verbose.stdout);
    expect(Number(memory?.[1])).toBeLessThanOrEqual(4 * 1024 * 1024);
  });

  it("refuses a module whose own memory has no maximum, or one over its cap", () => {
    const mods = path.join(tempDir(), "mods");
    mkdirSync(mods);
    chmodSync(mods, 0o755);
    const bytes = Buffer.concat([
      Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
      Buffer.from([0x05, 0x03, 0x01, 0x00, 0x01]), // memory section: one memory, min 1, no max
      Buffer.from([0x06, 0x06, 0x01, 0x7f, 0x00, 0x41, 0x20, 0x0b]), // global i32 const 0x20
      Buffer.from([0x07, 0x11, 0x01, 0x0d, ...Buffer.from("ownmem_module"), 0x03, 0x00]), // export it
    ]);
    writeFileSync(path.join(mods, "mod_ownmem.wasm"), bytes);
    const result = check([`ModulePath ${mods}`, "LoadModule mod_ownmem.c"]);
    expect(result.status).toBe(1);
    expect(result.messages).toEqual([
      "mod_dso/0.5: mod_ownmem.c defines its own memory with no maximum; import env.memory or declare a maximum within its cap of 256 pages",
      `Fatal: LoadModule: error loading module 'mod_ownmem.c': mod_ownmem.c defines its own memory with no maximum; import env.memory or declare a maximum within its cap of 256 pages on line 2 of '${result.file}'`,
    ]);
  });

  it("checks ModuleMemoryLimit's argument", () => {
    expect(check(["ModuleMemoryLimit mod_test.c lots"]).messages[0]).toMatch(
      /^Fatal: ModuleMemoryLimit: invalid size 'lots' \(a number of bytes with an optional K, M or G suffix\) on line 1 of /,
    );
    expect(check(["ModuleMemoryLimit mod_test.c 2G"]).messages[0]).toMatch(
      /^Fatal: ModuleMemoryLimit: size '2G' is out of range \(64K to 1G\) on line 1 of /,
    );
  });
});

describe("CPU limits", () => {
  it("interrupts a handler that never returns; the session gets 451 and the daemon goes on", async () => {
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleCPULimit mod_spin.c 100",
      "LoadModule mod_spin.c",
    ]);
    const client = await connect(daemon);
    // A watchdog that never fired would leave SITE SPIN unanswered until the test's timeout.
    expect(await client.send("SITE SPIN")).toEqual(["451 Requested action aborted: local error in processing."]);
    expect(logMessages(daemon.stderr)).toContain(
      "mod_spin.c: fault in site_SPIN: guest call ran past its 100 ms CPU budget and was interrupted",
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await client.send("SITE PING")).toEqual(["200 SITE PING: pong"]);
    await expectServing(daemon);
  });

  it("keeps other sessions served while one is interrupted", async () => {
    const { daemon } = await startDsod([`ModulePath ${FIXTURES}`, "ModuleCPULimit * 200", "LoadModule mod_spin.c"]);
    const spinner = await connect(daemon);
    const other = await connect(daemon);
    const spin = spinner.send("SITE SPIN");
    expect(await other.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await spin).toEqual(["451 Requested action aborted: local error in processing."]);
  });

  it("checks ModuleCPULimit's argument", () => {
    expect(check(["ModuleCPULimit mod_spin.c soon"]).messages[0]).toMatch(
      /^Fatal: ModuleCPULimit: invalid CPU limit 'soon' \(milliseconds, or off\) on line 1 of /,
    );
  });
});

describe("faults", () => {
  it("contains a stack overflow, then reloads the module after its backoff", async () => {
    const { daemon } = await startDsod([`ModulePath ${FIXTURES}`, "LoadModule mod_recurse.c", "LoadModule mod_trap.c"]);
    const client = await connect(daemon);
    expect(await client.send("SITE RECURSE")).toEqual(["451 Requested action aborted: local error in processing."]);
    expect(logMessages(daemon.stderr).join("\n")).toMatch(/mod_recurse\.c: fault in site_RECURSE: stack overflow/);
    expect(await client.send("SITE OK fine")).toEqual(["200 SITE OK: OK fine"]);
    await expectServing(daemon);
  });

  it("re-instantiates a module after a trap, keeping its configured directives", async () => {
    const { daemon } = await startDsod([`ModulePath ${FIXTURES}`, "LoadModule mod_trap.c"]);
    const client = await connect(daemon);
    expect(await client.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await client.send("SITE OK back")).toEqual(["200 SITE OK: OK back"]);
    await daemon.waitForLog(/mod_trap\.c: re-instantiating after a fault/);
  });

  // With two workers the fault is in worker 1; the next two sessions go to worker 2, then worker 1
  // (fewest sessions first, ties to the lowest index): the module is gone from both, and from lsmod.
  describe.each(["2", "off"])("SessionWorkers %s", (workers) => {
    it("unloads a module on its first fault with ModuleFaultPolicy unload", async () => {
      const { daemon } = await startDsod([
        `SessionWorkers ${workers}`,
        `ModulePath ${FIXTURES}`,
        "ModuleFaultPolicy mod_trap.c unload",
        "LoadModule mod_trap.c",
      ]);
      const client = await connect(daemon);
      expect(await client.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
      await daemon.waitForLog(/mod_trap\.c: unloaded after a fault \(ModuleFaultPolicy unload\)/);
      const unloaded = "mod_trap.c: unloaded after a fault (ModuleFaultPolicy unload)";
      expect(logMessages(daemon.stderr).filter((line) => line === unloaded)).toHaveLength(1);
      expect((await dsoctl(["-s", daemon.socket, "lsmod"])).stdout).not.toContain("mod_trap.c");
      for (const fresh of [await connect(daemon), await connect(daemon)]) {
        expect(await fresh.send("SITE OK x")).toEqual(["500 'SITE OK' not understood"]);
      }
    });
  });

  it("unloads a crash-looping module", async () => {
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleFaultPolicy mod_trap.c reload 2 60",
      "LoadModule mod_trap.c",
    ]);
    const client = await connect(daemon);
    expect(await client.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await client.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
    await daemon.waitForLog(/mod_trap\.c: unloaded after 2 faults within 60 s/);
    await expectServing(daemon);
  });
});

describe("capabilities", () => {
  it("refuses an import from a capability the module was not granted, and loads it once granted", () => {
    const denied = check([`ModulePath ${FIXTURES}`, "LoadModule mod_whoami.c"]);
    expect(denied.messages).toEqual([
      "mod_dso/0.5: mod_whoami.c: symbol 'pr_session_user' needs capability 'session', which mod_whoami.c is not granted",
      `Fatal: LoadModule: error loading module 'mod_whoami.c': mod_whoami.c: symbol 'pr_session_user' needs capability 'session', which mod_whoami.c is not granted on line 2 of '${denied.file}'`,
    ]);
    expect(
      check([`ModulePath ${FIXTURES}`, "ModuleCapabilities mod_whoami.c session", "LoadModule mod_whoami.c"]).status,
    ).toBe(0);
  });

  it("a library cannot launder a capability: its callers need it too", async () => {
    const laundered = check([
      "ModuleCapabilities libwhoami session",
      `LoadFile ${FIXTURES}/libwhoami.wasm`,
      `ModulePath ${FIXTURES}`,
      "LoadModule mod_launder.c",
    ]);
    expect(laundered.messages.at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_launder.c': mod_launder.c: symbol 'whoami_length' of libwhoami needs capability 'session' (it reaches host symbol 'pr_session_user'), which mod_launder.c is not granted on line 4 of '${laundered.file}'`,
    );
    const { daemon } = await startDsod([
      "ModuleCapabilities libwhoami session",
      "ModuleCapabilities mod_launder.c session",
      `LoadFile ${FIXTURES}/libwhoami.wasm`,
      `ModulePath ${FIXTURES}`,
      "LoadModule mod_launder.c",
    ]);
    const client = await connect(daemon);
    expect(await client.send("SITE LAUNDER")).toEqual(["200 SITE LAUNDER: 4"]);
  });

  it("rejects an unknown capability name", () => {
    expect(check(["ModuleCapabilities mod_x.c root"]).messages[0]).toMatch(
      /^Fatal: ModuleCapabilities: unknown capability 'root' \(known: core, log, command, response, register, session, transfer, filesystem\) on line 1 of /,
    );
  });
});

describe("filesystem (WASI)", () => {
  function tree(): { root: string; outside: string } {
    const base = tempDir();
    const root = path.join(base, "pub");
    const outside = path.join(base, "private");
    mkdirSync(path.join(root, "sub"), { recursive: true });
    mkdirSync(outside);
    writeFileSync(path.join(root, "hello.txt"), "hello from the granted directory\nsecond line\n");
    writeFileSync(path.join(root, "sub", "deep.txt"), "deep file\n");
    writeFileSync(path.join(outside, "secret.txt"), "the secret\n");
    symlinkSync(path.join(outside, "secret.txt"), path.join(root, "escape.txt"));
    symlinkSync("sub/deep.txt", path.join(root, "inside-link.txt"));
    return { root, outside };
  }

  it("needs the filesystem capability", () => {
    const result = check([`ModulePath ${FIXTURES}`, "LoadModule mod_files.c"]);
    expect(result.messages[0]).toBe(
      "mod_dso/0.5: mod_files.c: symbol 'path_open' needs capability 'filesystem', which mod_files.c is not granted",
    );
  });

  it("reads inside the granted directory and refuses every escape with ENOTCAPABLE (76)", async () => {
    const { root } = tree();
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleCapabilities mod_files.c filesystem",
      `ModuleFilesystem mod_files.c ${root} ro /pub`,
      "LoadModule mod_files.c",
    ]);
    const client = await connect(daemon);
    expect(await client.send("SITE CAT hello.txt")).toEqual(["200 SITE CAT: hello from the granted directory"]);
    expect(await client.send("SITE CAT sub/deep.txt")).toEqual(["200 SITE CAT: deep file"]);
    expect(await client.send("SITE CAT inside-link.txt")).toEqual(["200 SITE CAT: deep file"]);
    for (const escape of ["../private/secret.txt", "sub/../../private/secret.txt", "/etc/passwd", "escape.txt"]) {
      expect(await client.send(`SITE CAT ${escape}`)).toEqual(["550 SITE CAT: errno 76"]);
    }
    await expectServing(daemon);
  });

  it("gives a unit without ModuleFilesystem no directory at all", async () => {
    const { daemon } = await startDsod([
      `ModulePath ${FIXTURES}`,
      "ModuleCapabilities mod_files.c filesystem",
      "LoadModule mod_files.c",
    ]);
    const client = await connect(daemon);
    // fd 3 is no preopen: EBADF (8).
    expect(await client.send("SITE CAT hello.txt")).toEqual(["550 SITE CAT: errno 8"]);
  });
});

describe("loading safely", () => {
  it("refuses a module file writable by others", () => {
    const mods = moduleDir({ "mod_test.wasm": `${LIBEXEC}/mod_test.wasm` });
    chmodSync(path.join(mods, "mod_test.wasm"), 0o666);
    const result = check([`ModulePath ${mods}`, "LoadModule mod_test.c"]);
    expect(result.messages.at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_test.c': Permission denied on line 2 of '${result.file}'`,
    );
    expect(result.messages).toContain(`mod_dso/0.5: '${mods}/mod_test.wasm' is writable by others`);
  });

  it("refuses a symlink that leads out of the module path, and a directory in a module's place", () => {
    const mods = moduleDir({});
    symlinkSync(`${LIBEXEC}/mod_test.wasm`, path.join(mods, "mod_test.wasm"));
    mkdirSync(path.join(mods, "mod_calc.wasm"));
    const link = check([`ModulePath ${mods}`, "LoadModule mod_test.c"]);
    expect(link.messages).toContain(
      `mod_dso/0.5: '${mods}/mod_test.wasm' leads out of the module path (to '${LIBEXEC}/mod_test.wasm')`,
    );
    const dir = check([`ModulePath ${mods}`, "LoadModule mod_calc.c"]);
    expect(dir.messages).toContain(`mod_dso/0.5: '${mods}/mod_calc.wasm' is not a regular file`);
  });

  it.skipIf(process.geteuid?.() !== 0)("refuses, as root, a module file owned by another user", () => {
    const mods = moduleDir({ "mod_test.wasm": `${LIBEXEC}/mod_test.wasm` });
    chownSync(path.join(mods, "mod_test.wasm"), 65534, 65534);
    const result = check([`ModulePath ${mods}`, "LoadModule mod_test.c"]);
    expect(result.messages).toContain(`mod_dso/0.5: '${mods}/mod_test.wasm' is owned by uid 65534, not by root`);
    expect(result.status).toBe(1);
  });

  it("refuses a file whose SHA-256 differs from its pin, showing both", () => {
    const real = createHash("sha256")
      .update(readFileSync(`${LIBEXEC}/mod_test.wasm`))
      .digest("hex");
    const wrong = "0".repeat(64);
    const result = check([`ModuleIntegrity mod_test.c sha256:${wrong}`, "LoadModule mod_test.c"]);
    expect(result.messages).toContain(
      `mod_dso/0.5: '${LIBEXEC}/mod_test.wasm' has SHA-256 ${real}, but mod_test.c is pinned to ${wrong}`,
    );
    expect(check([`ModuleIntegrity mod_test.c sha256:${real}`, "LoadModule mod_test.c"]).status).toBe(0);
    expect(check(["ModuleIntegrity mod_test.c md5:abc"]).messages[0]).toMatch(
      /^Fatal: ModuleIntegrity: 'md5:abc' is not a pin \(sha256: followed by 64 lower-case hex digits\) on line 1 of /,
    );
  });

  it("refuses an unsafe module at insmod and keeps serving", async () => {
    const mods = moduleDir({ "mod_test.wasm": `${LIBEXEC}/mod_test.wasm` });
    chmodSync(path.join(mods, "mod_test.wasm"), 0o646);
    const { daemon } = await startDsod([`ModulePath ${mods}`]);
    const result = await dsoctl(["-s", daemon.socket, "insmod", "mod_test.c"]);
    expect(result.stdout).toBe(
      `dsoctl: error loading 'mod_test.c': Permission denied\ndsoctl:   '${mods}/mod_test.wasm' is writable by others\n`,
    );
    expect(result.status).toBe(3);
    await expectServing(daemon);
  });
});
