/**
 * Issue #12 against the real daemon, with hostile guests: a table-grow bomb
 * stays inside its module's memory cap, load-time bombs are refused before
 * compiling with a message naming the limit, and CPU budgets count CPU time,
 * so stopping the daemon again and again never faults a light guest while a
 * spinning one is still interrupted. After each, dsod still serves.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dataBomb, functionBomb } from "../../bench/wasm-encoder.js";
import { wat } from "../helpers/wat.js";
import { daemonFixture } from "./helpers/fixture.js";
import type { RunningDsod } from "./helpers/dsod.js";
import { FIXTURES, dsoctl, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const API = "(i32.const 32)";
const ABORTED = "451 Requested action aborted: local error in processing.";

const fixture = daemonFixture();

/** dsod's resident set in bytes, from /proc. */
function rss(daemon: RunningDsod): number {
  const status = readFileSync(`/proc/${daemon.child.pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error("no VmRSS in /proc status");
  return Number(kb) * 1024;
}

let mods: string;

beforeAll(async () => {
  mods = path.join(tempDir(), "mods");
  mkdirSync(mods);
  chmodSync(mods, 0o755);
  const files: Record<string, Uint8Array> = {
    // Grows its table by 10 M elements 16 times in one command; traps when a grow fails. Its maximum,
    // 30,000 elements (840,000 bytes), fits a 1 MiB cap beside its one page of memory.
    "mod_tablegrow.wasm": await wat(`(module
      (import "env" "memory" (memory 1))
      (table $t 1 30000 funcref)
      (global (export "tablegrow_module") i32 ${API})
      (func (export "site_GROW") (result i32) (local $i i32)
        (loop $again
          (if (i32.eq (table.grow $t (ref.null func) (i32.const 10000000)) (i32.const -1)) (then unreachable))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 16))))
        (i32.const 1)))`),
    // The same bomb without a maximum, or with one of 10 M elements: refused at load.
    "mod_tablenomax.wasm": await wat(`(module (table $t 1 funcref) (global (export "tablenomax_module") i32 ${API}))`),
    "mod_tablebig.wasm": await wat(
      `(module (table $t 1 10000000 funcref) (global (export "tablebig_module") i32 ${API}))`,
    ),
    // 46 bytes that would cost V8 280 MB: a 10 M-element table.
    "mod_tablebomb.wasm": await wat(
      `(module (table 10000000 10000000 funcref) (global (export "tablebomb_module") i32 ${API}))`,
    ),
    "mod_fnbomb.wasm": functionBomb("mod_fnbomb", 1_000_000),
    "mod_databomb.wasm": dataBomb("mod_databomb", 24 * 1024 * 1024, "passive"),
  };
  for (const [file, bytes] of Object.entries(files)) writeFileSync(path.join(mods, file), bytes);
});

async function expectServing(daemon: RunningDsod): Promise<void> {
  const client = await fixture.connect(daemon);
  expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
  expect(lsmod.stdout.split("\n")[0]).toBe("dsoctl: Loaded Modules:");
}

describe("tables inside the memory cap", () => {
  it("a table-grow bomb fails inside the guest: 451, dsod's RSS grows by less than 64 MB, and it goes on", async () => {
    const { daemon } = await fixture.start([
      `ModulePath ${mods}`,
      "ModuleMemoryLimit mod_tablegrow.c 1M",
      "LoadModule mod_tablegrow.c",
    ]);
    const client = await fixture.connect(daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    const before = rss(daemon);
    expect(await client.send("SITE GROW")).toEqual([ABORTED]);
    expect(rss(daemon) - before).toBeLessThan(64 * 1024 * 1024);
    await daemon.waitForLog(/mod_tablegrow\.c: fault in site_GROW: unreachable/);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    await expectServing(daemon);
  });

  it("a table without a maximum is refused at load, naming the module and its cap", async () => {
    const { daemon } = await fixture.start([`ModulePath ${mods}`, "ModuleMemoryLimit mod_tablenomax.c 1M"]);
    const result = await dsoctl(["-s", daemon.socket, "insmod", "mod_tablenomax.c"]);
    expect(result.stdout).toBe(
      "dsoctl: error loading 'mod_tablenomax.c': mod_tablenomax.c defines a table with no maximum; declare one within its memory cap of 1048576 bytes (28 bytes per funcref element, 8 per externref)\n",
    );
    expect(result.status).toBe(3);
    await expectServing(daemon);
  });

  it("a table whose maximum does not fit the cap is refused at load, even with its load limit raised", async () => {
    const { daemon } = await fixture.start([
      `ModulePath ${mods}`,
      "ModuleMemoryLimit mod_tablebig.c 1M",
      "ModuleLoadLimits mod_tablebig.c TableElements 10000000",
    ]);
    const result = await dsoctl(["-s", daemon.socket, "insmod", "mod_tablebig.c"]);
    expect(result.stdout).toBe(
      "dsoctl: error loading 'mod_tablebig.c': mod_tablebig.c's tables may grow to 280000000 bytes (28 bytes per funcref element, 8 per externref), over its memory cap of 1048576 bytes\n",
    );
    await expectServing(daemon);
  });
});

describe("load-time bombs are refused before compiling, naming the limit", () => {
  it.each([
    [
      "mod_tablebomb.c",
      "mod_tablebomb.c: a table of 10000000 elements, over its limit of 100000 (ModuleLoadLimits TableElements)",
    ],
    ["mod_fnbomb.c", "mod_fnbomb.c: 1000000 functions, over its limit of 100000 (ModuleLoadLimits Functions)"],
    [
      "mod_databomb.c",
      "mod_databomb.c: 25165824 bytes of data segments, over its limit of 16777216 (ModuleLoadLimits DataBytes)",
    ],
  ])("%s", async (module, reason) => {
    const { daemon } = await fixture.start([`ModulePath ${mods}`]);
    const result = await dsoctl(["-s", daemon.socket, "insmod", module]);
    expect(result.stdout).toBe(`dsoctl: error loading '${module}': ${reason}\n`);
    expect(result.status).toBe(3);
    await daemon.waitForLog(new RegExp(`mod_dso/0\\.5: ${reason.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    await expectServing(daemon);
  });

  it("ModuleLoadLimits raises a limit for one module, checked at startup like every directive", () => {
    const dir = tempDir();
    const refused = writeConfig(
      dir,
      [`ModulePath ${mods}`, "ModuleLoadLimits * Functions 500000", "LoadModule mod_fnbomb.c"].join("\n"),
    );
    const result = runDsod(["-t", "-c", refused]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr).at(-1)).toBe(
      `Fatal: LoadModule: error loading module 'mod_fnbomb.c': mod_fnbomb.c: 1000000 functions, over its limit of 500000 (ModuleLoadLimits Functions) on line 3 of '${refused}'`,
    );
    const raised = writeConfig(
      dir,
      [
        `ModulePath ${mods}`,
        "ModuleLoadLimits mod_databomb.c DataBytes 32M BinarySize 48M",
        "LoadModule mod_databomb.c",
      ].join("\n"),
      "raised.conf",
    );
    expect(runDsod(["-t", "-c", raised]).status).toBe(0);
  });
});

describe("CPU budgets count CPU time", () => {
  it("stopping dsod 40 times while a client streams a light guest's commands faults nothing; a spin is still interrupted", async () => {
    const { daemon } = await fixture.start([
      `ModulePath ${FIXTURES}`,
      // Each pause is three budgets long: a wall-clock budget faults the command a pause lands in
      // (with the wall-clock watchdog this stream got 10 faults and about a thousand 451s).
      "ModuleCPULimit * 50",
      "LoadModule mod_light.c",
      "LoadModule mod_spin.c",
    ]);
    const client = await fixture.connect(daemon);
    // A few ms of guest work per command, one command after another: dsod spends most of the stream inside the guest.
    const expected = (await client.send("SITE LIGHT 2000000"))[0] ?? "";
    expect(expected).toMatch(/^200 SITE LIGHT: \d+$/);
    const replies = new Map<string, number>();
    let streaming = true;
    const stream = (async (): Promise<void> => {
      while (streaming) {
        const [reply = ""] = await client.send("SITE LIGHT 2000000");
        const key = reply === expected ? "200" : reply;
        replies.set(key, (replies.get(key) ?? 0) + 1);
      }
    })();
    const pid = daemon.child.pid as number;
    // 40 pauses, and as many more as a busy machine needs for the stream to get more than 10 commands through.
    const answered = (): number => replies.get("200") ?? 0;
    for (let pause = 0; pause < 40 || answered() <= 10; pause++) {
      process.kill(pid, "SIGSTOP");
      // The pause itself is what is tested: dsod is stopped for 150 ms, three times its budget.
      await new Promise((resolve) => setTimeout(resolve, 150));
      process.kill(pid, "SIGCONT");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    streaming = false;
    await stream;
    expect([...replies.keys()]).toEqual(["200"]);
    expect(replies.get("200")).toBeGreaterThan(10);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("fault in"))).toEqual([]);
    expect(await client.send("SITE SPIN")).toEqual([ABORTED]);
    await daemon.waitForLog(
      /mod_spin\.c: fault in site_SPIN: guest call ran past its 50 ms CPU budget and was interrupted/,
    );
    await expectServing(daemon);
  }, 60_000);
});

describe("fairness between sessions", () => {
  it("answers a bystander's NOOP between the commands five clients pipeline, not after all of them", async () => {
    const { daemon } = await fixture.start([
      `ModulePath ${FIXTURES}`,
      "ModuleCPULimit * 2000",
      "LoadModule mod_light.c",
    ]);
    const heavy = await Promise.all(Array.from({ length: 5 }, () => fixture.connect(daemon)));
    const bystander = await fixture.connect(daemon);
    // Each command is tens of ms of guest work, so that half the batch outlasts by far the time this test
    // process takes, on a busy machine, to see the first answer and send its NOOP.
    const perClient = 10;
    let heavyAnswered = 0;
    let firstAnswered: () => void = () => {};
    const firstAnswer = new Promise<void>((resolve) => (firstAnswered = resolve));
    const readers = heavy.map(async (client) => {
      for (let i = 0; i < perClient; i++) {
        const [reply = ""] = await client.reply(60_000);
        expect(reply).toMatch(/^200 SITE LIGHT: \d+$/);
        heavyAnswered++;
        firstAnswered();
      }
    });
    // Each client's commands arrive in one read: without a scheduler, dsod ran a
    // session's whole batch, then the next session's, and the NOOP came last of all.
    for (const client of heavy) client.write("SITE LIGHT 30000000\r\n".repeat(perClient));
    await firstAnswer;
    expect(await bystander.send("NOOP")).toEqual(["200 NOOP command successful"]);
    const beforeNoop = heavyAnswered;
    await Promise.all(readers);
    expect(heavyAnswered).toBe(5 * perClient);
    expect(beforeNoop).toBeLessThan((5 * perClient) / 2);
    await expectServing(daemon);
  }, 120_000);
});
