/**
 * The two-phase module protocol between the primary (ClusterModules) and its
 * session workers (WorkerModules), in one process: a real reference
 * generation and two real worker generations built from the same config file
 * with the example modules, joined by links that call the workers' handlers
 * with the bodies and errors copied as the IPC channel copies them.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fromRemoteFailure, toRemoteFailure } from "../../../host/cluster/ipc.js";
import { ClusterModules } from "../../../host/cluster/module-sync.js";
import type { WorkerLink } from "../../../host/cluster/module-sync.js";
import type { WorkerInit } from "../../../host/cluster/journal.js";
import { WorkerModules } from "../../../host/cluster/worker-modules.js";
import { toWireState } from "../../../host/cluster/wire-state.js";
import { buildGeneration, compiledInModuleNames } from "../../../host/daemon/generation.js";
import type { Generation } from "../../../host/daemon/generation.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import type { ModuleFault, ModuleHost, ModuleSet } from "../../../host/modules/module-host.js";
import { moduleControlsActions } from "../../../host/controls/module-controls.js";
import { insmod, lsmod, rmmod } from "../../../host/static/mod-dso/controls.js";
import { daemonRuntime, workerRuntime } from "../../helpers/daemon-runtime.js";
import { FIXTURES_DIR, libexec } from "../../helpers/paths.js";
import { silentCommand, testSession } from "../../helpers/session.js";

const MODULE_FILES = ["mod_test.wasm", "mod_site_hello.wasm", "mod_sql.wasm", "mod_sql_mysql.wasm", "mod_ban.wasm"];

/** Runs before a worker's handler sees a request: a test's way to change the world between two workers. */
type Before = (type: string) => void;

interface Cluster {
  readonly dir: string;
  readonly configFile: string;
  reference: Generation;
  readonly workers: WorkerModules[];
  readonly modules: ClusterModules;
  /** `<index> <type>` per request, in the order the links were asked. */
  readonly requests: string[];
  readonly replaced: string[];
  /** The changes every host made, as ClusterModules tells them (`changed`). */
  readonly changed: string[];
  readonly logs: string[];
  /** Each worker's log lines. */
  readonly workerLogs: string[][];
  /** Per worker index: what runs before its handler. */
  readonly before: Map<number, Before>;
}

const clusters: Cluster[] = [];
/** Workers a test started beside a cluster's two. */
const lateWorkers: WorkerModules[] = [];

/** The example modules' config, after a ModulePath of their copies; debug level 5 logs mod_test's unload hook. */
function cluster(config = "LoadModule mod_test.c\n", debugLevel = 0): Cluster {
  const dir = mkdtempSync(path.join(os.tmpdir(), "module-sync-"));
  for (const file of MODULE_FILES) copyFileSync(libexec(file), path.join(dir, file));
  const configFile = path.join(dir, "dsod.conf");
  writeFileSync(configFile, `ModulePath ${dir}\n${config}`);
  const runtime = daemonRuntime();
  const logs: string[] = [];
  const log = (priority: string, message: string): void => void logs.push(`${priority}: ${message}`);
  const init = { configFile, debugLevel, journal: [], removedCompiledIn: [], generation: 1, states: [] };
  const workerLogs: string[][] = [[], []];
  const workers = workerLogs.map((lines) =>
    WorkerModules.start(
      init,
      workerRuntime(runtime),
      (priority, message) => void lines.push(`${priority}: ${message}`),
      () => 0,
    ),
  );
  const requests: string[] = [];
  const replaced: string[] = [];
  const changed: string[] = [];
  const before = new Map<number, Before>();
  const links: WorkerLink[] = workers.map((worker, i) => {
    const index = i + 1;
    return {
      index,
      pid: 1000 + index,
      async request(type, body) {
        requests.push(`${index} ${type}`);
        before.get(index)?.(type);
        const handler = worker.handlers()[type];
        if (handler === undefined) throw new Error(`no handler for ${type}`);
        try {
          // Through JSON both ways, and errors as RemoteFailures, as the IPC channel carries them.
          const value: unknown = await handler(JSON.parse(JSON.stringify(body)));
          return JSON.parse(JSON.stringify(value ?? null)) as unknown;
        } catch (error) {
          throw fromRemoteFailure(toRemoteFailure(error));
        }
      },
    };
  });
  const built: Cluster = {
    dir,
    configFile,
    reference: buildGeneration(configFile, log, debugLevel, [], runtime),
    workers,
    requests,
    replaced,
    changed,
    logs,
    workerLogs,
    before,
    modules: new ClusterModules({
      reference: () => built.reference.host,
      workers: () => links,
      replace: (link, note) => replaced.push(`${link.index}: ${note}`),
      statuses: () => Promise.resolve([]),
      log,
      timeoutMs: 5000,
      changed: (op) => changed.push(`${op.kind} ${op.name}`),
      store: runtime.sharedStore,
    }),
  };
  clusters.push(built);
  return built;
}

/** A worker started now through startWorker, its init copied through JSON as the IPC channel copies it. */
async function lateWorker(c: Cluster): Promise<WorkerModules> {
  return c.modules.startWorker(async (state) => {
    const worker = WorkerModules.start(
      JSON.parse(JSON.stringify({ configFile: c.configFile, debugLevel: 0, ...state })) as WorkerInit,
      workerRuntime(daemonRuntime()),
      () => {},
      () => 0,
    );
    lateWorkers.push(worker);
    return worker;
  });
}

/** The requests of module changes (insmod's answer also asks every worker for "status", for its warnings). */
function changes(c: Cluster): string[] {
  return c.requests.filter((request) => !request.endsWith(" status"));
}

/** Every host's engine: the reference's first, then each worker's. */
function engines(c: Cluster): string[][] {
  return [c.reference.host, ...c.workers.map((w) => w.current().host)].map((host) => host.listModules());
}

const COMPILED_IN = new Set(compiledInModuleNames());

/** Every host's loaded modules, the compiled-in ones left out. */
function lastModules(c: Cluster): string[] {
  return engines(c).map((names) => names.filter((name) => !COMPILED_IN.has(name)).join(" "));
}

afterEach(() => {
  for (const worker of lateWorkers.splice(0)) worker.current().host.close();
  for (const c of clusters.splice(0)) {
    c.reference.host.close();
    for (const worker of c.workers) worker.current().host.close();
    rmSync(c.dir, { recursive: true, force: true });
  }
});

describe("insmod in every worker", () => {
  it("prepares on the reference and every worker, then commits everywhere and journals the change", async () => {
    const c = cluster();
    const result = await insmod(c.modules, ["mod_site_hello.c"]);
    expect(result.lines).toEqual(["'mod_site_hello.c' loaded"]);
    expect(lastModules(c)).toEqual(Array(3).fill("mod_test.c mod_site_hello.c"));
    expect(changes(c)).toEqual(["1 module-prepare", "2 module-prepare", "1 module-commit", "2 module-commit"]);
    expect(c.modules.journal).toEqual([{ kind: "insmod", name: "mod_site_hello.c" }]);
    expect(c.changed).toEqual(["insmod mod_site_hello.c"]);
    expect(c.replaced).toEqual([]);
  });

  it("asks no worker when the reference refuses, and answers with exactly the single-process lines", async () => {
    const c = cluster();
    const result = await insmod(c.modules, ["mod_test.c", "mod_nothere.c"]);
    expect(result.lines).toEqual([
      "error loading 'mod_test.c': Already loaded",
      "error loading 'mod_nothere.c': No such file or directory",
      `  '${path.join(c.dir, "mod_nothere.wasm")}' does not exist`,
    ]);
    expect(changes(c)).toEqual([]);
    expect(c.modules.journal).toEqual([]);
  });

  it("leaves every host on the old set when a worker cannot load the module, naming that worker", async () => {
    const c = cluster("LoadModule mod_site_hello.c\n", 5);
    // The file goes between the reference's prepare and worker 2's.
    c.before.set(2, (type) => {
      if (type === "module-prepare") unlinkSync(path.join(c.dir, "mod_test.wasm"));
    });
    const result = await insmod(c.modules, ["mod_test.c"]);
    expect(result.lines).toEqual([
      "error loading 'mod_test.c': No such file or directory",
      `  '${path.join(c.dir, "mod_test.wasm")}' does not exist`,
      "  in worker 2 (pid 1002); no worker changed",
    ]);
    expect(lastModules(c)).toEqual(Array(3).fill("mod_site_hello.c"));
    expect(changes(c)).toEqual(["1 module-prepare", "2 module-prepare", "1 module-abort"]);
    expect(c.modules.journal).toEqual([]);
    // The reference finalized what it prepared (mod_test's unload hook ran once) and logged it; worker 1 repeated
    // that silently; worker 2, which alone failed, logged its own refusal.
    expect(c.logs.filter((line) => line.includes("mod_test: unloaded"))).toEqual([
      "info: mod_test.c: mod_test: unloaded",
    ]);
    expect(c.workerLogs).toEqual([
      [],
      [
        "debug: mod_dso/0.5: unable to dlopen 'mod_test.c': file not found (No such file or directory)",
        `notice: mod_dso/0.5: unable to load 'mod_test.c'; check to see if '${c.dir}/mod_test.wasm' exists`,
        "debug: mod_dso/0.5: defaulting to 'self' for symbol resolution",
        "debug: mod_dso/0.5: unable to find module symbol 'test_module' in 'self'",
      ],
    ]);
    // Nothing was left half made: with the file back, the same insmod succeeds everywhere.
    c.before.clear();
    copyFileSync(libexec("mod_test.wasm"), path.join(c.dir, "mod_test.wasm"));
    expect((await insmod(c.modules, ["mod_test.c"])).lines).toEqual(["'mod_test.c' loaded"]);
    expect(lastModules(c)).toEqual(Array(3).fill("mod_site_hello.c mod_test.c"));
  });

  it("keeps the code and lines of a worker that did not answer, naming it", async () => {
    const c = cluster();
    c.before.set(1, (type) => {
      if (type === "module-prepare") throw new DsoError(ErrorCodes.WORKER_TIMEOUT, "worker 1 did not answer");
    });
    await expect(c.modules.loadModule("mod_site_hello.c")).rejects.toMatchObject({
      code: ErrorCodes.WORKER_TIMEOUT,
      lines: ["worker 1 did not answer"],
      where: "in worker 1 (pid 1001); no worker changed",
    });
    expect(changes(c)).toEqual(["1 module-prepare", "2 module-prepare", "2 module-abort"]);
    expect(lastModules(c)).toEqual(Array(3).fill("mod_test.c"));
    // Stuck, it serves nobody well: it is replaced, and the others go on with the old set.
    expect(c.replaced).toEqual(["1: did not prepare insmod mod_site_hello.c in time"]);
  });

  it("replaces a worker that fails to commit, and keeps the change everywhere else", async () => {
    const c = cluster();
    c.before.set(1, (type) => {
      if (type === "module-commit") throw new DsoError(ErrorCodes.WORKER_TIMEOUT, "worker 1 did not answer");
    });
    expect((await insmod(c.modules, ["mod_site_hello.c"])).lines).toEqual(["'mod_site_hello.c' loaded"]);
    expect(c.replaced).toEqual(["1: could not apply insmod mod_site_hello.c"]);
    expect(c.logs).toContain(
      "error: worker 1 (pid 1001) could not apply insmod mod_site_hello.c: worker 1 did not answer",
    );
    expect(c.modules.journal).toEqual([{ kind: "insmod", name: "mod_site_hello.c" }]);
    expect(lastModules(c)).toEqual(["mod_test.c mod_site_hello.c", "mod_test.c", "mod_test.c mod_site_hello.c"]);
  });

  it("runs two insmods asked at once one after the other", async () => {
    const c = cluster();
    const both = await Promise.all([insmod(c.modules, ["mod_site_hello.c"]), insmod(c.modules, ["mod_sql.c"])]);
    expect(both.map((r) => r.lines)).toEqual([["'mod_site_hello.c' loaded"], ["'mod_sql.c' loaded"]]);
    expect(changes(c)).toEqual([
      "1 module-prepare",
      "2 module-prepare",
      "1 module-commit",
      "2 module-commit",
      "1 module-prepare",
      "2 module-prepare",
      "1 module-commit",
      "2 module-commit",
    ]);
    expect(lastModules(c)).toEqual(Array(3).fill("mod_test.c mod_site_hello.c mod_sql.c"));
  });
});

describe("rmmod in every worker", () => {
  it("unloads everywhere once every worker agreed", async () => {
    const c = cluster();
    expect((await rmmod(c.modules, ["mod_test.c"])).lines).toEqual(["'mod_test.c' unloaded"]);
    expect(lastModules(c)).toEqual(Array(3).fill(""));
    expect(c.modules.journal).toEqual([{ kind: "rmmod", name: "mod_test.c" }]);
    expect(c.changed).toEqual(["rmmod mod_test.c"]);
  });

  it("refuses a module with dependents on the reference without asking a worker", async () => {
    const c = cluster("LoadModule mod_sql_mysql.c\n");
    const before = lastModules(c);
    expect((await rmmod(c.modules, ["mod_sql.c"])).lines).toEqual([
      "error unloading 'mod_sql.c': Device or resource busy (needed by mod_sql_mysql.c)",
    ]);
    expect(changes(c)).toEqual([]);
    expect(lastModules(c)).toEqual(before);
  });

  it("unloads a module its faults took out the same way: sessions that hold it find it disabled after a fault", async () => {
    const c = cluster();
    const held = c.workers.map((worker) => worker.current().host.acquireModules());
    await c.modules.unloadModule("mod_test.c", { fault: true });
    expect(lastModules(c)).toEqual(Array(3).fill(""));
    expect(c.modules.journal).toEqual([{ kind: "rmmod", name: "mod_test.c" }]);
    for (const set of held) {
      const handler = set.modules.find((m) => m.name === "mod_test.c")?.commands[0];
      expect(() => handler?.run(silentCommand(["TEST"]), testSession(set.modules, undefined))).toThrow(
        "mod_test.c: disabled after a fault",
      );
      set.release();
    }
  });

  it("disables everywhere a module its faults would unload while others are bound to it, and journals it", async () => {
    const c = cluster("LoadModule mod_sql_mysql.c\n");
    const before = lastModules(c);
    await c.modules.disableModule("mod_sql.c");
    expect(changes(c)).toEqual(["1 module-disable", "2 module-disable"]);
    expect(lastModules(c)).toEqual(before);
    expect(c.modules.journal).toEqual([{ kind: "disable", name: "mod_sql.c" }]);
    expect(c.changed).toEqual(["disable mod_sql.c"]);
    expect(c.replaced).toEqual([]);
    // A worker started now replays the journal: it disables the module too.
    const late = await lateWorker(c);
    const hosts = [c.reference.host, ...c.workers.map((worker) => worker.current().host), late.current().host];
    for (const host of hosts) {
      const set = host.acquireModules();
      const handler = set.modules.find((m) => m.name === "mod_sql.c")?.commands[0];
      expect(handler).toBeDefined();
      expect(() => handler?.run(silentCommand(["SITE", "SQL"]), testSession(set.modules, "alice"))).toThrow(
        "mod_sql.c: disabled after a fault",
      );
      set.release();
    }
  });

  it("replaces a worker that does not disable the module, and disables it everywhere else", async () => {
    const c = cluster("LoadModule mod_sql_mysql.c\n");
    c.before.set(2, (type) => {
      if (type === "module-disable") throw new DsoError(ErrorCodes.WORKER_TIMEOUT, "worker 2 did not answer");
    });
    await c.modules.disableModule("mod_sql.c");
    expect(c.replaced).toEqual(["2: could not apply disable mod_sql.c"]);
    expect(c.logs).toContain("error: worker 2 (pid 1002) could not apply disable mod_sql.c: worker 2 did not answer");
  });

  it("leaves every host as it was when one worker refuses", async () => {
    const c = cluster("LoadModule mod_sql.c\n");
    // Worker 2 alone has a dependent of mod_sql.c, so only it refuses.
    c.workers[1]?.current().host.loadModule("mod_sql_mysql.c");
    await expect(c.modules.unloadModule("mod_sql.c")).rejects.toMatchObject({
      code: ErrorCodes.HAS_DEPENDENTS,
      lines: ["module 'mod_sql.c' is needed by mod_sql_mysql.c"],
      where: "in worker 2 (pid 1002); no worker changed",
    });
    expect(changes(c)).toEqual(["1 module-prepare", "2 module-prepare", "1 module-abort"]);
    expect(lastModules(c)).toEqual(["mod_sql.c", "mod_sql.c", "mod_sql.c mod_sql_mysql.c"]);
    expect(c.modules.journal).toEqual([]);
    expect(c.changed).toEqual([]);
  });
});

describe("lsmod -v", () => {
  it("adds up every worker's sessions of each module", async () => {
    const c = cluster();
    const sets: ModuleSet[] = [
      c.workers[0]?.current().host.acquireModules(),
      c.workers[0]?.current().host.acquireModules(),
      c.workers[1]?.current().host.acquireModules(),
    ].filter((set) => set !== undefined);
    const result = await lsmod(c.modules, ["-v"]);
    const at = result.lines.indexOf("  mod_test.c");
    expect(result.lines.slice(at).find((line) => line.startsWith("    sessions: "))).toBe("    sessions: 3");
    expect(c.requests).toEqual(["1 status", "2 status"]);
    for (const set of sets) set.release();
    const after = await lsmod(c.modules, ["-v"]);
    expect(after.lines.slice(at).find((line) => line.startsWith("    sessions: "))).toBe("    sessions: 0");
  });

  it("counts the workers that answer, and logs one that does not", async () => {
    const c = cluster();
    c.workers[0]?.current().host.acquireModules();
    c.before.set(2, (type) => {
      if (type === "status") throw new DsoError(ErrorCodes.WORKER_GONE, "worker 2 (pid 1002) is gone");
    });
    const units = await c.modules.describe();
    expect(units.find((unit) => unit.name === "mod_test.c")?.sessions).toBe(1);
    expect(c.logs).toEqual(["notice: worker 2 (pid 1002): no status: worker 2 (pid 1002) is gone"]);
  });

  it("lists the reference's modules for plain lsmod, asking no worker", async () => {
    const c = cluster();
    c.workers[1]?.current().host.loadModule("mod_site_hello.c");
    expect((await lsmod(c.modules, [])).lines.at(-1)).toBe("  mod_test.c");
    expect(changes(c)).toEqual([]);
  });
});

describe("SIGHUP in every worker", () => {
  it("swaps every worker's generation once all prepared, and starts a new journal", async () => {
    const c = cluster();
    await insmod(c.modules, ["mod_site_hello.c"]);
    const [first, second] = c.workers.map((w) => w.current());
    const next = buildGeneration(c.configFile, () => {}, 0, [], daemonRuntime());
    expect(await c.modules.reload(next)).toBeUndefined();
    c.reference.host.unloadAll();
    c.reference = next;
    expect(c.workers.map((w) => w.current())).not.toContain(first);
    expect(c.workers.map((w) => w.current())).not.toContain(second);
    expect(first?.host.listModules()).not.toContain("mod_test.c");
    expect(lastModules(c)).toEqual(Array(3).fill("mod_test.c"));
    expect(c.modules.journal).toEqual([]);
    expect(c.modules.generation).toBe(2);
  });

  it("keeps every worker's generation when one cannot read the config, naming it", async () => {
    const c = cluster();
    const [first, second] = c.workers.map((w) => w.current());
    const next = buildGeneration(c.configFile, () => {}, 0, [], daemonRuntime());
    c.before.set(2, (type) => {
      if (type === "generation-prepare") writeFileSync(c.configFile, `ModulePath ${c.dir}\nLoadModule mod_x.c\n`);
    });
    expect(await c.modules.reload(next)).toBe(
      "worker 2 (pid 1002): LoadModule: error loading module 'mod_x.c': No such file or directory" +
        ` on line 2 of '${c.configFile}'`,
    );
    next.host.close();
    expect(c.workers.map((w) => w.current())).toEqual([first, second]);
    expect(changes(c)).toEqual(["1 generation-prepare", "2 generation-prepare", "1 generation-abort"]);
    expect(c.modules.generation).toBe(1);
  });
});

describe("worker starts", () => {
  it("start with the journal as it is once the changes asked before them are made", async () => {
    const c = cluster();
    const seen: string[] = [];
    const load = c.modules.loadModule("mod_site_hello.c");
    const start = c.modules.startWorker(async (state) => {
      seen.push(`start with ${JSON.stringify({ ...state, states: state.states.map((unit) => unit.name) })}`);
      return 7;
    });
    const unload = c.modules.unloadModule("mod_test.c");
    await load;
    expect(await start).toBe(7);
    await unload;
    expect(seen).toEqual([
      'start with {"journal":[{"kind":"insmod","name":"mod_site_hello.c"}],"removedCompiledIn":[],"generation":1,' +
        '"states":["mod_test.c","mod_site_hello.c"]}',
    ]);
    expect(c.modules.journal).toEqual([
      { kind: "insmod", name: "mod_site_hello.c" },
      { kind: "rmmod", name: "mod_test.c" },
    ]);
  });

  it("run beside each other, and a change asked meanwhile waits for every start before it", async () => {
    const c = cluster();
    const events: string[] = [];
    const gates: Array<() => void> = [];
    const starting = (name: string) =>
      c.modules.startWorker(async (state) => {
        events.push(`${name} starts with ${state.journal.length} changes`);
        await new Promise<void>((resolve) => gates.push(resolve));
        events.push(`${name} ready`);
      });
    const first = starting("w1");
    const second = starting("w2");
    const load = c.modules.loadModule("mod_site_hello.c").then(() => events.push("insmod done"));
    const third = starting("w3");
    // Both starts are under way before either is ready; the insmod and the start after it wait.
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual(["w1 starts with 0 changes", "w2 starts with 0 changes"]);
    for (const open of gates.splice(0)) open();
    await Promise.all([first, second, load]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(events.slice(2)).toEqual(["w1 ready", "w2 ready", "insmod done", "w3 starts with 1 changes"]);
    gates.splice(0).forEach((open) => open());
    await third;
  });

  it("after a SIGHUP, start with its generation, no journal, and the compiled-in modules still out", async () => {
    const c = cluster();
    await rmmod(c.modules, ["mod_delay.c"]);
    const next = buildGeneration(c.configFile, () => {}, 0, ["mod_delay.c"], daemonRuntime());
    expect(await c.modules.reload(next)).toBeUndefined();
    c.reference.host.unloadAll();
    c.reference = next;
    const state = await c.modules.startWorker(async (started) => started);
    expect({ ...state, states: state.states.map((unit) => unit.name) }).toEqual({
      journal: [],
      removedCompiledIn: ["mod_delay.c"],
      generation: 2,
      states: ["mod_test.c"],
    });
    expect(engines(c).map((names) => names.includes("mod_delay.c"))).toEqual([false, false, false]);
  });
});

describe("a worker started late", () => {
  const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
  const CTRLS = `ModulePath ${FIXTURES_DIR}\nLoadModule mod_ctrls_test.c\n`;

  /** mod_ctrls_test.c's state in `host`, as the words of the snapshot that a session would fork. */
  function stateOf(host: ModuleHost): unknown {
    const state = host.instanceStates().find((unit) => unit.name === "mod_ctrls_test.c");
    return state === undefined ? undefined : toWireState(state);
  }

  it("takes the reference's instances' state, what a guest control changed in them included", async () => {
    const c = cluster(CTRLS);
    const greet = c.modules.moduleActions().find((action) => action.name === "greet");
    expect(await greet?.handler(["hello"], caller)).toEqual({ status: 0, lines: ["greeting set"] });
    const reference = stateOf(c.reference.host);
    // The workers that ran the control hold that state; one built from the config file alone does not.
    for (const worker of c.workers) expect(stateOf(worker.current().host)).toEqual(reference);
    const fresh = buildGeneration(c.configFile, () => {}, 0, [], daemonRuntime());
    expect(stateOf(fresh.host)).not.toEqual(reference);
    fresh.host.close();
    expect(stateOf((await lateWorker(c)).current().host)).toEqual(reference);
  });

  it("does not start when its module's file is not the binary the reference loaded, and says so", async () => {
    const c = cluster(CTRLS);
    // The same module with a custom section more (id 0, 4 bytes: the name "xyz"), in a ModulePath of its own.
    const bytes = readFileSync(path.join(FIXTURES_DIR, "mod_ctrls_test.wasm"));
    writeFileSync(
      path.join(c.dir, "mod_ctrls_test.wasm"),
      Buffer.concat([bytes, Buffer.from([0, 4, 3, 120, 121, 122])]),
    );
    writeFileSync(c.configFile, `ModulePath ${c.dir}\nLoadModule mod_ctrls_test.c\n`);
    const refused = lateWorker(c);
    await expect(refused).rejects.toMatchObject({ code: ErrorCodes.WORKER_START });
    await expect(refused).rejects.toThrow(
      /^unable to take the primary's module state: module 'mod_ctrls_test\.c' cannot take the state given: its binary here has SHA-256 [0-9a-f]{64}, the state is of [0-9a-f]{64} \(was its file replaced\?\)$/,
    );
  });
});

describe("guest controls", () => {
  const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
  const BAN = "ModuleCapabilities mod_ban.c session\nLoadModule mod_ban.c\nBanEngine on\n";

  it("run in every worker, answer with the reference's result and log a worker whose status differs", async () => {
    const c = cluster(BAN);
    const ban = c.modules.moduleActions().find((action) => action.name === "ban");
    // The same object each time: rmctrl disables an action as the object it is.
    expect(c.modules.moduleActions().find((action) => action.name === "ban")).toBe(ban);
    expect(ban?.module).toBe("mod_ban.c");
    expect(await ban?.handler(["info"], caller)).toEqual({ status: 0, lines: ["No bans"] });
    expect(c.requests).toEqual(["1 control", "2 control"]);
    expect(c.logs).toEqual([]);
    // The ban list is in the one shared store: the workers' runs get the reference's answers from it and write nothing.
    expect(await ban?.handler(["user", "alice"], caller)).toEqual({ status: 0, lines: ["user alice banned"] });
    expect(c.logs).toEqual([]);
    expect(c.workerLogs).toEqual([[], []]);
    // A worker without the module answers with another status: that is logged.
    c.workers[1]?.current().host.unloadModule("mod_ban.c");
    expect(await ban?.handler(["user", "bob"], caller)).toEqual({ status: 0, lines: ["user bob banned"] });
    expect(c.logs).toEqual(["notice: worker 2: control 'ban' answered differently: unsupported action requested"]);
  });
});

describe("guest controls' store operations", () => {
  const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };

  it("are made once, by the reference: each worker's run is answered from its record", async () => {
    const c = cluster(`ModulePath ${FIXTURES_DIR}\nLoadModule mod_ctrls_test.c\n`);
    const count = c.modules.moduleActions().find((action) => action.name === "count");
    // Had each copy added its own one, the counter would go 1, 4, 7.
    for (const n of [1, 2, 3]) {
      expect(await count?.handler([], caller)).toEqual({ status: 0, lines: [`count ${n}`] });
    }
    expect(c.requests).toEqual(["1 control", "2 control", "1 control", "2 control", "1 control", "2 control"]);
    // Every worker's run asked for the operations the reference made: none strayed.
    expect(c.logs).toEqual([]);
    expect(c.workerLogs).toEqual([[], []]);
  });
});

describe("module faults in a worker", () => {
  const caller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };

  it("are reported with where the worker stood: its generation, and the changes of it applied", async () => {
    const c = cluster();
    const positions = (): unknown[] => [c.modules.position, ...c.workers.map((worker) => worker.position())];
    expect(positions()).toEqual(Array(3).fill({ generation: 1, applied: 0 }));
    await c.modules.loadModule("mod_site_hello.c");
    await c.modules.unloadModule("mod_site_hello.c");
    expect(positions()).toEqual(Array(3).fill({ generation: 1, applied: 2 }));
    // A worker started now has replayed the journal: it stands where the others do.
    const late = await lateWorker(c);
    expect(late.position()).toEqual({ generation: 1, applied: 2 });
    const next = buildGeneration(c.configFile, () => {}, 0, [], daemonRuntime());
    expect(await c.modules.reload(next)).toBeUndefined();
    c.reference.host.unloadAll();
    c.reference = next;
    expect(positions()).toEqual(Array(3).fill({ generation: 2, applied: 0 }));
  });

  it("are reported for the primary to count, except a guest control's: the reference counts that one", async () => {
    const c = cluster(`ModulePath ${FIXTURES_DIR}\nLoadModule mod_ctrls_test.c\n`);
    const reported: ModuleFault[] = [];
    for (const worker of c.workers) worker.reportFaultsTo((fault) => reported.push(fault));
    const [first, second] = c.workers as [WorkerModules, WorkerModules];
    const trapped = "mod_ctrls_test.c: fault in ctrl_boom: unreachable";
    await expect(first.handlers().control?.({ argv: ["boom"], caller, store: [] })).rejects.toThrow(trapped);
    expect(reported).toEqual([]);
    // The same trap outside a control request: in the template instance, as sessions reach it with
    // ModuleInstances shared.
    const boom = moduleControlsActions(second.current().host.engineModules()).find((a) => a.name === "boom");
    expect(() => boom?.handler([], caller)).toThrow(trapped);
    expect(reported.map((fault) => [fault.unit, fault.kind])).toEqual([["mod_ctrls_test.c", "template"]]);
    // A SIGHUP's generation reports its faults too: the first worker's template was not faulted in it yet.
    const next = buildGeneration(c.configFile, () => {}, 0, [], daemonRuntime());
    expect(await c.modules.reload(next)).toBeUndefined();
    c.reference.host.unloadAll();
    c.reference = next;
    const again = moduleControlsActions(first.current().host.engineModules()).find((a) => a.name === "boom");
    expect(() => again?.handler([], caller)).toThrow(trapped);
    expect(reported).toHaveLength(2);
  });
});
