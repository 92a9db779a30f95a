/**
 * mod_dso's controls over a host that answers later (session workers): every
 * line is the one a host answering at once gives, byte for byte, and `lsmod -v`
 * ends with the workers.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { insmod, lsmod, rmmod } from "../../../host/static/mod-dso/controls.js";
import type { DsoControlsHost, WorkerStatus } from "../../../host/static/mod-dso/controls.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";

const hosts: ModuleHost[] = [];

afterEach(() => {
  for (const host of hosts.splice(0)) host.close();
});

function newHost(): ModuleHost {
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    compiledIn: [
      { name: "mod_core.c", kind: "static", commands: [], siteCommands: [], directives: [], features: [], help: [] },
    ],
    protectedModules: ["mod_core.c"],
  });
  hosts.push(host);
  return host;
}

/** A turn of the event loop: the host answers after other work could have run. */
async function later<T>(value: () => T): Promise<T> {
  await new Promise((resolve) => setImmediate(resolve));
  return value();
}

/** The same host, answering every change and description a turn later, as ClusterModules does. */
function answeringLater(host: ModuleHost, workers?: () => readonly WorkerStatus[]): DsoControlsHost {
  return {
    loadModule: (name) => later(() => host.loadModule(name)),
    unloadModule: (name) => later(() => host.unloadModule(name)),
    listModules: () => host.listModules(),
    describe: () => later(() => host.describe()),
    ...(workers !== undefined && { workers: () => later(workers) }),
  };
}

/** Requests covering every line insmod, rmmod and lsmod answer with. */
const REQUESTS: ReadonlyArray<readonly [typeof insmod, readonly string[]]> = [
  [insmod, []],
  [insmod, ["mod_test.c", "mod_counter.c"]],
  [insmod, ["mod_test.c", "mod_nonexistent.c", "mod_sql_mysql.c"]],
  [insmod, ["mod_Bad.c", "mod_helo.c"]],
  [rmmod, ["mod_sql.c"]],
  [rmmod, ["mod_core.c", "mod_nonexistent.c", "mod_test.c"]],
  [lsmod, []],
  [lsmod, ["-v", "x"]],
  [lsmod, ["-v"]],
];

/** Load times are the only thing two hosts never share. */
function withoutLoadTimes(lines: readonly string[]): string[] {
  return lines.filter((line) => !line.startsWith("    loaded: "));
}

describe("mod_dso's controls over a host answering later", () => {
  it("answer every request with the lines and status of a host answering at once", async () => {
    const now = newHost();
    const after = answeringLater(newHost());
    for (const [control, args] of REQUESTS) {
      const expected = await control(now, args);
      const got = await control(after, args);
      expect({ status: got.status, lines: withoutLoadTimes(got.lines) }).toEqual({
        status: expected.status,
        lines: withoutLoadTimes(expected.lines),
      });
    }
    // The requests reached every kind of line: success, refusals, details.
    const lines = (await lsmod(after, ["-v"])).lines;
    expect(lines).toContain("    needed by: mod_sql_mysql.c");
    expect(lines).toContain("Loaded Libraries:");
  });

  it("answer a load the host rejects with a DsoError in the lines of the same error thrown", async () => {
    const error = new DsoError(ErrorCodes.LINK, "mod_x.c: undefined symbol 'gone' (func () -> nil)", {
      where: "in worker 2 (pid 4242); no worker changed",
    });
    const notLoaded = (): DsoError =>
      new DsoError(ErrorCodes.NOT_LOADED, "module 'mod_x.c' is not loaded", {
        where: "in worker 1 (pid 4241); no worker changed",
      });
    const throwing: DsoControlsHost = {
      loadModule: () => {
        throw error;
      },
      unloadModule: () => {
        throw notLoaded();
      },
      listModules: () => [],
      describe: () => [],
    };
    const rejecting: DsoControlsHost = {
      ...throwing,
      loadModule: () => Promise.reject(error),
      unloadModule: () => Promise.reject(notLoaded()),
      describe: () => Promise.resolve([]),
    };
    const expected = {
      status: -1,
      lines: [
        // A failure without an errno gets one proftpd line per problem; where it happened is a detail under them.
        "error loading 'mod_x.c': mod_x.c: undefined symbol 'gone' (func () -> nil)",
        "  in worker 2 (pid 4242); no worker changed",
      ],
    };
    expect(await insmod(throwing, ["mod_x.c"])).toEqual(expected);
    expect(await insmod(rejecting, ["mod_x.c"])).toEqual(expected);
    const unloaded = {
      status: -1,
      lines: ["error unloading 'mod_x.c': Module not loaded", "  in worker 1 (pid 4241); no worker changed"],
    };
    expect(await rmmod(throwing, ["mod_x.c"])).toEqual(unloaded);
    expect(await rmmod(rejecting, ["mod_x.c"])).toEqual(unloaded);
  });

  it("change one name at a time: the next name waits for the host's answer", async () => {
    const events: string[] = [];
    const host: DsoControlsHost = {
      loadModule: async (name) => {
        events.push(`start ${name}`);
        await later(() => undefined);
        events.push(`end ${name}`);
      },
      unloadModule: () => undefined,
      listModules: () => [],
      describe: async () => [],
    };
    expect(await insmod(host, ["mod_a.c", "mod_b.c"])).toEqual({
      status: 0,
      lines: ["'mod_a.c' loaded", "'mod_b.c' loaded"],
    });
    expect(events).toEqual(["start mod_a.c", "end mod_a.c", "start mod_b.c", "end mod_b.c"]);
  });
});

describe("lsmod -v with session workers", () => {
  const workers: readonly WorkerStatus[] = [
    { index: 1, pid: 4242, sessions: 25, generation: 3, state: "serving" },
    { index: 2, pid: 4243, sessions: 0, generation: 2, state: "replaced", note: "commit failed: out of memory" },
    { index: 2, pid: 4250, sessions: 0, generation: 3, state: "starting" },
  ];

  it("ends with each worker: pid, sessions, generation, state, and why a replaced one was", async () => {
    const host = newHost();
    host.loadModule("mod_test.c");
    const plain = (await lsmod(host, ["-v"])).lines;
    expect(plain).not.toContain("Session Workers:");
    const reply = await lsmod(
      answeringLater(host, () => workers),
      ["-v"],
    );
    expect(reply.status).toBe(0);
    expect(reply.lines).toEqual([
      ...plain,
      "Session Workers:",
      "  worker 1",
      "    pid: 4242",
      "    sessions: 25",
      "    generation: 3",
      "    state: serving",
      "  worker 2",
      "    pid: 4243",
      "    sessions: 0",
      "    generation: 2",
      "    state: replaced",
      "    replaced: commit failed: out of memory",
      "  worker 2",
      "    pid: 4250",
      "    sessions: 0",
      "    generation: 3",
      "    state: starting",
    ]);
  });

  it("comes after the libraries, and plain lsmod never shows it", async () => {
    const host = newHost();
    host.loadModule("mod_counter.c");
    const after = answeringLater(host, () => workers.slice(0, 1));
    const lines = (await lsmod(after, ["-v"])).lines;
    expect(lines.indexOf("Loaded Libraries:")).toBeGreaterThan(0);
    expect(lines.slice(lines.indexOf("Session Workers:"))).toEqual([
      "Session Workers:",
      "  worker 1",
      "    pid: 4242",
      "    sessions: 25",
      "    generation: 3",
      "    state: serving",
    ]);
    expect(lines.indexOf("Session Workers:")).toBeGreaterThan(lines.indexOf("Loaded Libraries:"));
    expect(await lsmod(after, [])).toEqual({
      status: 0,
      lines: ["Loaded Modules:", "  mod_core.c", "  mod_counter.c"],
    });
  });
});
