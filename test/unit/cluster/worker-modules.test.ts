/**
 * A session worker's module set (host/cluster/worker-modules.ts) on its own:
 * built from the config file and the journal, the primary's requests answered
 * in order or refused when out of order, its counts for `lsmod -v`, and guest
 * controls run in its own template instances.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { WorkerInit } from "../../../host/cluster/journal.js";
import { WorkerModules } from "../../../host/cluster/worker-modules.js";
import { ErrorCodes } from "../../../host/errors.js";
import { daemonRuntime, workerRuntime } from "../../helpers/daemon-runtime.js";
import { libexec } from "../../helpers/paths.js";

const MODULE_FILES = ["mod_test.wasm", "mod_site_hello.wasm", "mod_ban.wasm"];

const dirs: string[] = [];
const started: WorkerModules[] = [];

function setup(config: string): WorkerInit {
  const dir = mkdtempSync(path.join(os.tmpdir(), "worker-modules-"));
  dirs.push(dir);
  for (const file of MODULE_FILES) copyFileSync(libexec(file), path.join(dir, file));
  const configFile = path.join(dir, "dsod.conf");
  writeFileSync(configFile, `ModulePath ${dir}\n${config}`);
  return { configFile, debugLevel: 0, journal: [], removedCompiledIn: [], generation: 1, states: [] };
}

function start(init: WorkerInit, sessions: () => number = () => 0, logs: string[] = []): WorkerModules {
  const log = (priority: string, message: string): void => void logs.push(`${priority}: ${message}`);
  const worker = WorkerModules.start(init, workerRuntime(daemonRuntime()), log, sessions);
  started.push(worker);
  return worker;
}

function engine(worker: WorkerModules): string[] {
  return [...worker.current().host.listModules()];
}

afterEach(() => {
  for (const worker of started.splice(0)) worker.current().host.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("WorkerModules.start", () => {
  it("builds the config's generation, then replays the journal in order", () => {
    const init = setup("LoadModule mod_test.c\n");
    const worker = start({
      ...init,
      journal: [
        { kind: "insmod", name: "mod_site_hello.c" },
        { kind: "rmmod", name: "mod_test.c" },
        { kind: "rmmod", name: "mod_delay.c" },
      ],
    });
    expect(engine(worker)).toContain("mod_site_hello.c");
    expect(engine(worker)).not.toContain("mod_test.c");
    expect(engine(worker)).not.toContain("mod_delay.c");
  });

  it("leaves out the compiled-in modules an earlier generation's rmmod took out", () => {
    const worker = start({ ...setup(""), removedCompiledIn: ["mod_delay.c"] });
    expect(engine(worker)).not.toContain("mod_delay.c");
    expect(engine(worker)).toContain("mod_facts.c");
  });

  it("fails to start, with the reason, when a change of the journal cannot be made", () => {
    const init = setup("LoadModule mod_test.c\n");
    expect(() => start({ ...init, journal: [{ kind: "insmod", name: "mod_test.c" }] })).toThrow(
      expect.objectContaining({
        code: ErrorCodes.WORKER_START,
        message: "unable to replay insmod mod_test.c: module 'mod_test.c' already loaded",
      }),
    );
  });

  it("fails to start with proftpd's text when the config does not run", () => {
    const init = setup("NoSuchDirective on\n");
    expect(() => start(init)).toThrow(
      expect.objectContaining({
        code: ErrorCodes.WORKER_START,
        message: `unknown configuration directive 'NoSuchDirective' on line 2 of '${init.configFile}'`,
      }),
    );
  });
});

describe("WorkerModules.handlers", () => {
  it("commits only the change it prepared, and drops a prepare the primary never ended", async () => {
    // At debug level 5, mod_test's unload hook logs: a prepared load that is dropped runs it.
    const logs: string[] = [];
    const worker = start({ ...setup(""), debugLevel: 5 }, undefined, logs);
    const h = worker.handlers();
    await h["module-prepare"]?.({ seq: 1, op: { kind: "insmod", name: "mod_test.c" } });
    expect(engine(worker)).not.toContain("mod_test.c");
    // seq 1 was never committed or aborted: the next prepare drops it. That one fails, so its lines are written.
    const missing = { seq: 2, op: { kind: "insmod", name: "mod_nothere.c" } };
    await expect(async () => h["module-prepare"]?.(missing)).rejects.toThrow("mod_nothere.wasm' does not exist");
    expect(logs.filter((line) => line.includes("mod_test: unloaded"))).toEqual([
      "info: mod_test.c: mod_test: unloaded",
    ]);
    await expect(async () => h["module-commit"]?.({ seq: 1 })).rejects.toThrow("no change 1 is prepared");
    await h["module-prepare"]?.({ seq: 3, op: { kind: "insmod", name: "mod_site_hello.c" } });
    await h["module-commit"]?.({ seq: 3 });
    expect(engine(worker).slice(-1)).toEqual(["mod_site_hello.c"]);
    // The dropped prepare left nothing behind: mod_test.c loads as if it never happened.
    await h["module-prepare"]?.({ seq: 4, op: { kind: "insmod", name: "mod_test.c" } });
    await h["module-abort"]?.({ seq: 4 });
    await h["module-abort"]?.({ seq: 4 });
    worker.current().host.loadModule("mod_test.c");
    expect(engine(worker).slice(-2)).toEqual(["mod_site_hello.c", "mod_test.c"]);
  });

  it("refuses an rmmod at prepare as unloadModule would, and unloads only at commit", async () => {
    const worker = start(setup("LoadModule mod_test.c\n"));
    const h = worker.handlers();
    const protectedOne = { seq: 1, op: { kind: "rmmod", name: "mod_dso.c" } };
    await expect(async () => h["module-prepare"]?.(protectedOne)).rejects.toMatchObject({ code: ErrorCodes.PROTECTED });
    await h["module-prepare"]?.({ seq: 2, op: { kind: "rmmod", name: "mod_test.c" } });
    expect(engine(worker)).toContain("mod_test.c");
    await h["module-commit"]?.({ seq: 2 });
    expect(engine(worker)).not.toContain("mod_test.c");
  });

  it("builds the next generation at prepare and swaps it in at commit, telling its listeners", async () => {
    const init = setup("LoadModule mod_test.c\n");
    const worker = start(init, () => 7);
    const h = worker.handlers();
    const first = worker.current();
    const swaps: boolean[] = [];
    worker.onSwap((next, previous) => swaps.push(previous === first && next === worker.current()));
    writeFileSync(init.configFile, `ModulePath ${path.dirname(init.configFile)}\nLoadModule mod_site_hello.c\n`);
    await h["generation-prepare"]?.({ seq: 1, generation: 2 });
    expect(worker.current()).toBe(first);
    await h["generation-commit"]?.({ seq: 1 });
    expect(worker.current()).not.toBe(first);
    expect(swaps).toEqual([true]);
    expect(engine(worker)).toContain("mod_site_hello.c");
    expect(engine(worker)).not.toContain("mod_test.c");
    expect(first.host.listModules()).not.toContain("mod_test.c");
    expect(await h.status?.({})).toMatchObject({ sessions: 7, generation: 2 });
  });

  it("answers status with its sessions, its generation and each unit's sessions", async () => {
    const worker = start(setup("LoadModule mod_test.c\n"), () => 1);
    const set = worker.current().host.acquireModules();
    const status = (await worker.handlers().status?.({})) as { units: { name: string; sessions: number }[] };
    expect(status).toMatchObject({ sessions: 1, generation: 1 });
    expect(status.units.find((unit) => unit.name === "mod_test.c")).toMatchObject({ sessions: 1 });
    set.release();
  });

  it("runs a guest control in its own instances, writing nothing the primary's run did not, and answers an unknown one as the controls server does", async () => {
    const logs: string[] = [];
    const worker = start(
      setup("ModuleCapabilities mod_ban.c session\nLoadModule mod_ban.c\nBanEngine on\n"),
      () => 0,
      logs,
    );
    const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
    const control = worker.handlers().control;
    // No record: the primary's run made no store operation, so this run's ban list write is refused.
    expect(await control?.({ argv: ["ban", "user", "alice"], caller, store: [] })).toEqual({
      status: 0,
      lines: ["user alice banned"],
    });
    expect(logs).toEqual([
      "info: mod_ban.c: mod_ban/0.7: error updating the ban list",
      "notice: control 'ban': this worker's run did not make the primary's shared-store operations; 1 write(s) of its own refused",
    ]);
    // The store is as it was: reads that were not in the record are answered by the store itself.
    expect(await control?.({ argv: ["ban", "info"], caller, store: [] })).toEqual({ status: 0, lines: ["No bans"] });
    expect(logs.at(-1)).toBe(
      "notice: control 'ban': this worker's run did not make the primary's shared-store operations",
    );
    expect(await control?.({ argv: ["nosuch"], caller, store: [] })).toEqual({
      status: -7,
      lines: ["unsupported action requested"],
    });
  });
});

describe("WorkerModules' log and trace lines", () => {
  it("has none for the changes the primary's reference host logs and traces, all of one only it fails", async () => {
    const init = setup("LoadModule mod_test.c\n");
    const trace = path.join(path.dirname(init.configFile), "trace.log");
    writeFileSync(init.configFile, `TraceLog ${trace}\nTrace dso:20\n${readFileSync(init.configFile, "utf8")}`);
    // At debug level 7 every load and unload has mod_dso's lines, and mod_test's hooks log.
    const logs: string[] = [];
    const worker = start({ ...init, debugLevel: 7 }, undefined, logs);
    const h = worker.handlers();
    await h["module-prepare"]?.({ seq: 1, op: { kind: "insmod", name: "mod_site_hello.c" } });
    await h["module-commit"]?.({ seq: 1 });
    await h["module-prepare"]?.({ seq: 2, op: { kind: "rmmod", name: "mod_site_hello.c" } });
    await h["module-commit"]?.({ seq: 2 });
    await h["generation-prepare"]?.({ seq: 3, generation: 2 });
    await h["generation-commit"]?.({ seq: 3 });
    expect(logs).toEqual([]);
    expect(existsSync(trace)).toBe(false);

    const missing = { seq: 4, op: { kind: "insmod", name: "mod_nothere.c" } };
    await expect(async () => h["module-prepare"]?.(missing)).rejects.toThrow("mod_nothere.wasm' does not exist");
    const stem = path.join(path.dirname(init.configFile), "mod_nothere");
    expect(logs).toEqual([
      "debug: mod_dso/0.5: loading 'mod_nothere.c'",
      "debug: mod_dso/0.5: unable to dlopen 'mod_nothere.c': file not found (No such file or directory)",
      `notice: mod_dso/0.5: unable to load 'mod_nothere.c'; check to see if '${stem}.wasm' exists`,
      "debug: mod_dso/0.5: defaulting to 'self' for symbol resolution",
      "debug: mod_dso/0.5: unable to find module symbol 'nothere_module' in 'self'",
    ]);
    // The trace file's lines after their timestamp and pid.
    const traced = readFileSync(trace, "utf8")
      .trimEnd()
      .split("\n")
      .map((line) => line.replace(/^.*?\] /, ""));
    expect(traced).toEqual([
      `<dso:5>: loading module '${stem}'`,
      "<dso:7>: looking for symbol 'nothere_module' in loaded module",
      "<dso:1>: unable to find module symbol 'nothere_module' in 'self'",
    ]);
    logs.length = 0;
    worker.unloadAll();
    expect(logs).toEqual([]);
  });
});
