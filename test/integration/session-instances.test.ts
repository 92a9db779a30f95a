/**
 * Each FTP session its own instances of the guest modules, as each proftpd
 * session is a forked process with its own copy of a module's globals
 * (docs/directives.md, ModuleInstances: a session's instance starts from the
 * daemon's instance as it was when the session started). Through the built
 * dsod and raw clients, with the fixture test/fixtures/guests/mod_session_state.ts:
 * a counter in a global, the USER argument kept until PASS, a trap, a control
 * that changes the daemon's copy. Also the fault policy across sessions,
 * rmmod and SIGHUP, `ModuleInstances shared` (the behaviour before
 * per-session instances) and `ModuleMemoryTotal`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import {
  FIXTURES,
  PASSWD,
  RunningDsod,
  baseConfig,
  dsoctl,
  logMessages,
  tempDir,
  writeConfig,
} from "./helpers/dsod.js";

const MODULE = "mod_session_state.c";
const LOAD = [`ModulePath ${FIXTURES}`, `LoadModule ${MODULE}`];
/** dispatch.ts's HANDLER_FAULT_REPLY: what a client gets when a guest handler traps. */
const FAULT = "451 Requested action aborted: local error in processing.";

const fixture = daemonFixture();
const connect = fixture.connect;

/** demo's entry (password `demo`) under other names too, so that two sessions log in as different users. */
function usersFile(names: readonly string[]): string {
  const [entry = ""] = readFileSync(PASSWD, "utf8").split("\n");
  const rest = entry.slice(entry.indexOf(":"));
  const file = path.join(tempDir(), "passwd");
  writeFileSync(file, names.map((name) => `${name}${rest}\n`).join(""));
  return file;
}

/** `dsoctl -s <socket> ...args` against `daemon`. */
function ctl(daemon: RunningDsod, ...args: string[]): ReturnType<typeof dsoctl> {
  return dsoctl(["-s", daemon.socket, ...args]);
}

/** The module names `dsoctl lsmod` lists. */
async function loaded(daemon: RunningDsod): Promise<string[]> {
  const { stdout } = await ctl(daemon, "lsmod");
  return stdout
    .split("\n")
    .slice(1)
    .filter((line) => line.length > 0)
    .map((line) => line.replace(/^dsoctl: +/, ""));
}

/** `lsmod -v`'s `memory:`, `sessions:` and `instances:` of the fixture. */
async function moduleFigures(
  daemon: RunningDsod,
): Promise<{ memory: number; sessions: number; instances: string | undefined }> {
  const { stdout } = await ctl(daemon, "lsmod", "-v");
  const at = stdout.indexOf(`dsoctl:   ${MODULE}\n`);
  if (at < 0) throw new Error(`no ${MODULE} in lsmod -v:\n${stdout}`);
  const block = stdout.slice(at);
  const memory = /memory: (\d+) bytes/.exec(block);
  const sessions = /sessions: (\d+)/.exec(block);
  if (memory === null || sessions === null) throw new Error(`no memory or sessions in lsmod -v:\n${block}`);
  const instances = /instances: (.*)/.exec(block)?.[1];
  return { memory: Number(memory[1]), sessions: Number(sessions[1]), instances };
}

/**
 * How many instances of each module the daemon itself holds: its own and,
 * with session workers, each serving worker's (`lsmod -v`'s Session Workers).
 */
async function daemonCopies(daemon: RunningDsod): Promise<number> {
  const { stdout } = await ctl(daemon, "lsmod", "-v");
  return 1 + stdout.split("\n").filter((line) => /^dsoctl: +state: serving$/.test(line)).length;
}

/**
 * Waits until lsmod counts `count` sessions of the fixture: a session's end is
 * the daemon's to see, after the client has seen the connection close.
 */
async function untilSessions(daemon: RunningDsod, count: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await moduleFigures(daemon)).sessions === count) return;
  }
  throw new Error(`lsmod never counted ${count} sessions of ${MODULE}`);
}

/**
 * Sends `command` until its reply is no longer the fault reply: a faulted
 * instance is refused until its backoff (100 ms after a first fault) has
 * passed. Each round trip waits on the daemon's answer; the bound only keeps a
 * broken daemon from looping the test forever.
 */
async function afterBackoff(client: FtpControl, command: string): Promise<string[]> {
  for (let attempt = 0; attempt < 5_000; attempt++) {
    const reply = await client.send(command);
    if (reply[0] !== FAULT) return reply;
  }
  throw new Error(`'${command}' still answered '${FAULT}' after 5,000 tries`);
}

describe("per-session instances (ModuleInstances snapshot, the default)", () => {
  let daemon: RunningDsod;
  beforeAll(async () => {
    const dir = tempDir();
    const users = usersFile(["demo", "alice", "bob"]);
    const config = writeConfig(dir, [baseConfig(dir), `AuthUserFile ${users}`, ...LOAD].join("\n"));
    daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
  });
  afterAll(async () => {
    await daemon.stop();
  });

  it("gives two interleaved sessions their own counter: 1, 2 and 1, 2, never 3, 4", async () => {
    const a = await connect(daemon);
    const b = await connect(daemon);
    expect(await a.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 2"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 2"]);
    // The daemon's own instance is untouched: a new session starts from it.
    const c = await connect(daemon);
    const { memory, instances } = await moduleFigures(daemon);
    // c logged in (the module's pre_cmd_USER made its instance): lsmod -v counts three, and their memories.
    expect(instances).toBe(`3 (${3 * memory} bytes of memory)`);
    expect(await c.send("TICK")).toEqual(["200 TICK 1"]);
  });

  it("reads back at PASS what USER set in the same session, never what another session set", async () => {
    const a = await connect(daemon, false);
    const b = await connect(daemon, false);
    expect(await a.send("USER alice")).toEqual(["331 Password required for alice"]);
    expect(await b.send("USER bob")).toEqual(["331 Password required for bob"]);
    expect(await a.send("PASS demo")).toEqual(["230 User alice logged in"]);
    expect(await a.send("WHO")).toEqual(["200 USER alice PASS alice"]);
    expect(await b.send("PASS demo")).toEqual(["230 User bob logged in"]);
    expect(await b.send("WHO")).toEqual(["200 USER bob PASS bob"]);
    const c = await connect(daemon);
    expect(await c.send("WHO")).toEqual(["200 USER demo PASS demo"]);
    // Two logins later, a's globals are still its own.
    expect(await a.send("WHO")).toEqual(["200 USER alice PASS alice"]);
  });
});

describe("a trap in one session", () => {
  it("leaves another session's instance and state untouched, and new sessions are served", async () => {
    const { daemon } = await fixture.start(LOAD);
    const a = await connect(daemon);
    const b = await connect(daemon);
    expect(await a.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 2"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("BOOM")).toEqual([FAULT]);
    await daemon.waitForLog(/mod_session_state\.c: fault in cmd_BOOM: unreachable/);
    expect(await a.send("TICK")).toEqual(["200 TICK 3"]);
    const c = await connect(daemon);
    expect(await c.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 4"]);
    // b's instance is rebuilt from b's own start: its count before the trap is gone, as a crashed child's would be.
    expect(await afterBackoff(b, "TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 2"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 5"]);
  });
});

describe("fork semantics: a session starts from the daemon's instance as it is when the session starts", () => {
  for (const mode of ["snapshot", "replay"] as const) {
    it(`after the directives (ModuleInstances ${mode}): with SessionStateStart 10 each first TICK is 11`, async () => {
      const { daemon } = await fixture.start([`ModuleInstances ${mode}`, ...LOAD, "SessionStateStart 10"]);
      const a = await connect(daemon);
      const b = await connect(daemon);
      expect(await a.send("TICK")).toEqual(["200 TICK 11"]);
      expect(await b.send("TICK")).toEqual(["200 TICK 11"]);
      expect(await a.send("TICK")).toEqual(["200 TICK 12"]);
      expect(await b.send("TICK")).toEqual(["200 TICK 12"]);
    });
  }

  it("after the controls that ran before it, and not those after it, even when rebuilt after a trap", async () => {
    const { daemon } = await fixture.start([
      ...LOAD,
      "SessionStateStart 10",
      "SessionStateControlsACLs sessionstate allow user *",
    ]);
    const early = await connect(daemon);
    expect(await ctl(daemon, "sessionstate", "100")).toMatchObject({
      status: 0,
      stdout: "dsoctl: counter set to 100\n",
    });
    const late = await connect(daemon);
    // early never called the module before the control: its instance, made now, still has the state at its start.
    expect(await early.send("TICK")).toEqual(["200 TICK 11"]);
    expect(await late.send("TICK")).toEqual(["200 TICK 101"]);
    expect(await ctl(daemon, "sessionstate", "500")).toMatchObject({ status: 0 });
    expect(await late.send("BOOM")).toEqual([FAULT]);
    // Rebuilt from late's own start: neither the daemon's present state (500) nor a replay of the config (10).
    expect(await afterBackoff(late, "TICK")).toEqual(["200 TICK 101"]);
    expect(await early.send("TICK")).toEqual(["200 TICK 12"]);
    const latest = await connect(daemon);
    expect(await latest.send("TICK")).toEqual(["200 TICK 501"]);
  });

  it("rmmod affects new sessions only: a session started before it still gets its instance", async () => {
    const { daemon } = await fixture.start(LOAD);
    const ticked = await connect(daemon);
    const idle = await connect(daemon);
    expect(await ticked.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await ctl(daemon, "rmmod", MODULE)).toMatchObject({ status: 0, stdout: `dsoctl: '${MODULE}' unloaded\n` });
    const after = await connect(daemon);
    expect(await after.send("TICK")).toEqual(["500 'TICK' not understood"]);
    expect(await ticked.send("TICK")).toEqual(["200 TICK 2"]);
    // idle's first call into the module comes after the daemon's instance is gone.
    expect(await idle.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await ctl(daemon, "insmod", MODULE)).toMatchObject({ status: 0, stdout: `dsoctl: '${MODULE}' loaded\n` });
    const reloaded = await connect(daemon);
    expect(await reloaded.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await ticked.send("TICK")).toEqual(["200 TICK 3"]);
  });
});

describe("a SIGHUP", () => {
  it("forks new sessions from the re-read configuration's instance; older sessions keep theirs", async () => {
    const { daemon, dir } = await fixture.start([...LOAD, "SessionStateStart 10"]);
    const old = await connect(daemon);
    expect(await old.send("TICK")).toEqual(["200 TICK 11"]);
    const idle = await connect(daemon);
    writeConfig(dir, [baseConfig(dir), ...LOAD, "SessionStateStart 20"].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/received SIGHUP -- master server reparsing configuration file/);
    // A connection after that line is served by the reloaded configuration: with session workers it waits
    // until every worker has it (docs/directives.md, Reloading).
    const fresh = await connect(daemon);
    expect(await fresh.send("TICK")).toEqual(["200 TICK 21"]);
    expect(await old.send("TICK")).toEqual(["200 TICK 12"]);
    // idle's first call comes after the reload: its fork is still the old configuration's.
    expect(await idle.send("TICK")).toEqual(["200 TICK 11"]);
  });
});

describe("ModuleFaultPolicy across sessions", () => {
  // With two workers the sessions alternate between them (fewest sessions first, ties to the lowest index):
  // the three faults fall in worker 1, 2, 1, and only the primary's count for the whole daemon reaches three.
  describe.each(["2", "off"])("SessionWorkers %s", (workers) => {
    it("counts a module's faults in all sessions: three sessions trapping once each unload it for all", async () => {
      const { daemon } = await fixture.start([
        `SessionWorkers ${workers}`,
        `ModuleFaultPolicy ${MODULE} reload 3 60`,
        ...LOAD,
      ]);
      const before = await loaded(daemon);
      expect(before).toContain(MODULE);
      const bystander = await connect(daemon);
      expect(await bystander.send("TICK")).toEqual(["200 TICK 1"]);
      const idle = await connect(daemon);
      for (let n = 1; n <= 3; n++) {
        const session = await connect(daemon);
        // The faults before are other sessions': this one's instance is whole.
        expect(await session.send("TICK")).toEqual(["200 TICK 1"]);
        expect(await session.send("BOOM")).toEqual([FAULT]);
      }
      await daemon.waitForLog(/mod_session_state\.c: unloaded after 3 faults within 60 s/);
      expect(await loaded(daemon)).toEqual(before.filter((name) => name !== MODULE));
      const unloaded = "mod_session_state.c: unloaded after 3 faults within 60 s";
      expect(logMessages(daemon.stderr).filter((line) => line === unloaded)).toHaveLength(1);
      const fresh = await connect(daemon);
      expect(await fresh.send("TICK")).toEqual(["500 'TICK' not understood"]);
      // Sessions from before keep the module in their set, disabled, whether they had made an instance of it or not.
      expect(await bystander.send("TICK")).toEqual([FAULT]);
      expect(await idle.send("TICK")).toEqual([FAULT]);
      expect(logMessages(daemon.stderr)).toContain(
        "session 1: CMD handler of mod_session_state.c for TICK failed: " +
          "mod_session_state.c: disabled after a fault (cmd_TICK not called)",
      );
    });
  });
});

describe("ModuleInstances shared", () => {
  it("keeps one instance for every session, the behaviour before per-session instances", async () => {
    const users = usersFile(["demo", "alice", "bob"]);
    // One instance for every session is one process's: a process cannot share a wasm instance with another.
    const config = [`AuthUserFile ${users}`, "SessionWorkers off", "ModuleInstances shared", ...LOAD];
    const { daemon } = await fixture.start(config);
    const a = await connect(daemon, false);
    const b = await connect(daemon, false);
    expect(await a.send("USER alice")).toEqual(["331 Password required for alice"]);
    expect(await b.send("USER bob")).toEqual(["331 Password required for bob"]);
    expect(await a.send("PASS demo")).toEqual(["230 User alice logged in"]);
    expect(await a.send("WHO")).toEqual(["200 USER bob PASS bob"]);
    expect(await b.send("PASS demo")).toEqual(["230 User bob logged in"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 2"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 3"]);
  });

  it("keeps one instance per worker with session workers, shared by that worker's sessions", async () => {
    const { daemon } = await fixture.start(["SessionWorkers 2", "ModuleInstances shared", ...LOAD]);
    // The fewest sessions first, ties to the lowest index: a and c go to worker 1, b to worker 2.
    const a = await connect(daemon);
    const b = await connect(daemon);
    const c = await connect(daemon);
    expect(await a.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await c.send("TICK")).toEqual(["200 TICK 2"]);
    expect(await a.send("TICK")).toEqual(["200 TICK 3"]);
  });
});

describe("ModuleMemoryTotal", () => {
  it("refuses a session past the bound with a 421 and a log line, and serves again once one has ended", async () => {
    // What one instance of the fixture holds; the daemon's own and each session's snapshot hold as much.
    const probe = await fixture.start(LOAD);
    const { memory } = await moduleFigures(probe.daemon);
    // Room for the daemon's instances and two sessions', not three; with session workers the daemon's
    // instances are its own and each worker's, and the sessions of every worker count together.
    const probeCopies = await daemonCopies(probe.daemon);
    await probe.daemon.stop();
    const daemonHolds = (probeCopies + 2) * memory;
    const total = daemonHolds + memory / 2;
    const { daemon } = await fixture.start([`ModuleMemoryTotal ${total}`, ...LOAD]);
    expect(await daemonCopies(daemon)).toBe(probeCopies);
    const a = await connect(daemon);
    const b = await connect(daemon);
    expect(await a.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 1"]);
    const { client: refused, greeting } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(refused);
    expect(greeting).toEqual(["421 Service not available, closing control connection"]);
    await refused.closed();
    await daemon.waitForLog(/session 3 \S+: Connection refused: ModuleMemoryTotal/);
    expect(logMessages(daemon.stderr)).toContain(
      `session 3 (127.0.0.1[127.0.0.1]): Connection refused: ModuleMemoryTotal (${total} bytes) reached: ` +
        `guest memory is ${daemonHolds} bytes, a session needs ${memory} more`,
    );
    expect(await a.send("QUIT")).toEqual(["221 Goodbye."]);
    await a.closed();
    await untilSessions(daemon, 1);
    const c = await connect(daemon);
    expect(await c.send("TICK")).toEqual(["200 TICK 1"]);
    expect(await b.send("TICK")).toEqual(["200 TICK 2"]);
  });
});
