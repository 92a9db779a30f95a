/**
 * Sessions served by worker processes (issue 15, "How it is checked"), through
 * the built dsod with `SessionWorkers 2` and real FTP clients: the primary
 * accepts and hands each connection to the worker with the fewest sessions,
 * `lsmod -v` ends with one block per worker (pid, sessions, generation,
 * state), insmod takes effect in every worker or in none, and a worker killed
 * with SIGKILL ends only its own sessions, with proftpd's 421, while a
 * replacement serves new ones.
 *
 * Which worker serves a session is read from `lsmod -v`: the worker whose
 * session count went up by one when the session was opened (nothing else
 * opens or closes sessions meanwhile).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import type { FtpControl } from "./helpers/ftp-client.js";
import { FIXTURES, dsoctl } from "./helpers/dsod.js";
import type { RunningDsod } from "./helpers/dsod.js";

const fixture = daemonFixture();
const WORKERS = ["SessionWorkers 2"];
const SERVICE_NOT_AVAILABLE = "421 Service not available, closing control connection";
/** test/fixtures/guests/mod_init_once.ts: its init hook fails the 2nd time it runs in any process. */
const ONCE = "mod_init_once.c";
/** test/fixtures/guests/mod_ctrls_test.ts: `dsoctl greet <text>` sets what `SITE GREETING` answers. */
const CTRLS = "mod_ctrls_test.c";
const NOT_UNDERSTOOD = (command: string): string[] => [`500 '${command}' not understood`];
/** Each test starts a primary and two worker processes and runs dsoctl a dozen times: slow on a busy machine. */
const TIMEOUT_MS = 60_000;

/** One worker's block in `lsmod -v`'s `Session Workers:` section. */
interface WorkerBlock {
  readonly index: number;
  readonly pid: number;
  readonly sessions: number;
  readonly generation: number;
  readonly state: string;
  readonly replaced?: string;
}

/** dsod with `lines` and two workers, once both serve (each logs `worker N (pid P) started` when ready). */
async function start(lines: readonly string[] = []): Promise<RunningDsod> {
  const { daemon } = await fixture.start([...WORKERS, ...lines]);
  for (const index of [1, 2]) await daemon.waitForLog(new RegExp(`worker ${index} \\(pid \\d+\\) started`));
  return daemon;
}

function ctl(daemon: RunningDsod, ...args: string[]): ReturnType<typeof dsoctl> {
  return dsoctl(["-s", daemon.socket, ...args]);
}

/** The `Session Workers:` section of `lsmod -v`: the last one, every detail of each worker read. */
async function workers(daemon: RunningDsod): Promise<WorkerBlock[]> {
  const result = await ctl(daemon, "lsmod", "-v");
  expect(result.status).toBe(0);
  const body = result.stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.replace(/^dsoctl: /, ""));
  const at = body.indexOf("Session Workers:");
  expect(at, `no Session Workers section in:\n${result.stdout}`).toBeGreaterThan(0);
  const blocks: WorkerBlock[] = [];
  let facts: Record<string, string> = {};
  const flush = (): void => {
    if (facts.index === undefined) return;
    blocks.push({
      index: Number(facts.index),
      pid: Number(facts.pid),
      sessions: Number(facts.sessions),
      generation: Number(facts.generation),
      state: facts.state ?? "",
      ...(facts.replaced !== undefined && { replaced: facts.replaced }),
    });
  };
  for (const line of body.slice(at + 1)) {
    const worker = /^ {2}worker (\d+)$/.exec(line);
    const fact = /^ {4}(\w+): (.*)$/.exec(line);
    if (worker !== null) {
      flush();
      facts = { index: worker[1] ?? "" };
    } else if (fact !== null) {
      facts[fact[1] ?? ""] = fact[2] ?? "";
    } else {
      throw new Error(`unexpected line in the Session Workers section: '${line}'`);
    }
  }
  flush();
  return blocks;
}

function serving(blocks: readonly WorkerBlock[]): WorkerBlock[] {
  return blocks.filter((block) => block.state === "serving");
}

interface Opened {
  readonly client: FtpControl;
  /** The worker that took it. */
  readonly worker: WorkerBlock;
  /** The serving workers once it was open. */
  readonly now: WorkerBlock[];
}

/** Opens a logged-in session and says which serving worker took it; `before` is lsmod -v's serving workers now. */
async function openOnWorker(daemon: RunningDsod, before?: readonly WorkerBlock[]): Promise<Opened> {
  const was = before ?? serving(await workers(daemon));
  const client = await fixture.connect(daemon);
  const now = serving(await workers(daemon));
  const grown = now.filter((block) => block.sessions === (was.find((old) => old.pid === block.pid)?.sessions ?? 0) + 1);
  expect(grown, `one worker should have one session more: ${JSON.stringify({ was, now })}`).toHaveLength(1);
  return { client, worker: grown[0] as WorkerBlock, now };
}

/** Opens sessions until every serving worker has `each` of them; the sessions by worker pid. */
async function sessionsOnEveryWorker(daemon: RunningDsod, each = 1): Promise<Map<number, FtpControl[]>> {
  let now = serving(await workers(daemon));
  expect(now).toHaveLength(2);
  const byPid = new Map<number, FtpControl[]>(now.map((block) => [block.pid, []]));
  // The pool gives each new session to the least loaded worker: 2 × each sessions should do.
  for (let opened = 0; [...byPid.values()].some((list) => list.length < each); opened++) {
    expect(opened, "sessions keep going to the same worker").toBeLessThan(4 * each);
    const next = await openOnWorker(daemon, now);
    byPid.get(next.worker.pid)?.push(next.client);
    now = next.now;
  }
  return byPid;
}

function clientsOf(byPid: ReadonlyMap<number, FtpControl[]>, pid: number): FtpControl[] {
  return byPid.get(pid) ?? [];
}

describe("SessionWorkers 2", { timeout: TIMEOUT_MS }, () => {
  it("spreads 50 sessions over both workers, as lsmod -v shows", async () => {
    const daemon = await start();
    const initial = await workers(daemon);
    expect(initial.map(({ index, sessions, state }) => ({ index, sessions, state }))).toEqual([
      { index: 1, sessions: 0, state: "serving" },
      { index: 2, sessions: 0, state: "serving" },
    ]);
    // Two processes besides dsod itself, never dsod's own pid.
    expect(new Set(initial.map((block) => block.pid)).size).toBe(2);
    expect(initial.map((block) => block.pid)).not.toContain(daemon.child.pid);

    const clients = await Promise.all(Array.from({ length: 50 }, () => fixture.connect(daemon)));
    const spread = serving(await workers(daemon));
    expect(spread).toHaveLength(2);
    for (const block of spread) expect(block.sessions).toBeGreaterThan(0);
    expect(spread.reduce((sum, block) => sum + block.sessions, 0)).toBe(50);
    const replies = await Promise.all(clients.map((client) => client.send("NOOP")));
    for (const reply of replies) expect(reply).toEqual(["200 NOOP command successful"]);
  });

  it("applies an insmod to new sessions on every worker, and old sessions keep their set", async () => {
    const daemon = await start();
    const old = await sessionsOnEveryWorker(daemon);
    expect(await ctl(daemon, "insmod", "mod_site_hello.c")).toMatchObject({
      status: 0,
      stdout: "dsoctl: 'mod_site_hello.c' loaded\n",
    });
    expect((await ctl(daemon, "lsmod")).stdout).toContain("dsoctl:   mod_site_hello.c\n");
    const fresh = await sessionsOnEveryWorker(daemon);
    for (const [pid, clients] of fresh) {
      for (const client of clients) {
        expect(await client.send("SITE HELLO x"), `worker pid ${pid}`).toEqual(["200 SITE HELLO: hello, x"]);
      }
    }
    for (const clients of old.values()) {
      for (const client of clients) expect(await client.send("SITE HELLO x")).toEqual(NOT_UNDERSTOOD("SITE HELLO"));
    }
  });

  // mod_init_once.c's init hook fails the second time it runs anywhere (its count is in the shared store, the
  // primary's): the primary's prepare runs it first, then each worker's, so exactly one worker refuses.
  it("leaves every worker and the primary on the old set when a module cannot be loaded in one worker", async () => {
    const daemon = await start([`ModulePath ${FIXTURES}`]);
    const listed = await ctl(daemon, "lsmod");
    const before = await workers(daemon);

    const refused = await ctl(daemon, "insmod", ONCE);
    expect(refused.status).toBe(3);
    const lines = refused.stdout.split("\n").filter((line) => line !== "");
    expect(lines.slice(0, -1)).toEqual([
      `dsoctl: error loading '${ONCE}': Operation not permitted`,
      `dsoctl:   module '${ONCE}' failed to initialize`,
    ]);
    const where = /^dsoctl: {3}in worker (\d+) \(pid (\d+)\); no worker changed$/.exec(lines.at(-1) ?? "");
    expect(where, refused.stdout).not.toBeNull();
    expect(before.find((block) => block.index === Number(where?.[1]))?.pid).toBe(Number(where?.[2]));

    expect(await ctl(daemon, "lsmod")).toEqual(listed);
    // Nobody was replaced: a refused prepare aborts everywhere (the other worker's prepared load too).
    const after = await workers(daemon);
    expect(after.map(({ index, pid, generation, state }) => ({ index, pid, generation, state }))).toEqual(
      before.map(({ index, pid, generation, state }) => ({ index, pid, generation, state })),
    );
    const fresh = await sessionsOnEveryWorker(daemon);
    for (const clients of fresh.values()) {
      for (const client of clients) expect(await client.send("SITE ONCE")).toEqual(NOT_UNDERSTOOD("SITE ONCE"));
    }

    // Its hook runs a 4th, 5th and 6th time: loaded everywhere, and new sessions on both workers have it.
    expect(await ctl(daemon, "insmod", ONCE)).toMatchObject({ status: 0, stdout: `dsoctl: '${ONCE}' loaded\n` });
    const loaded = await sessionsOnEveryWorker(daemon);
    for (const clients of loaded.values()) {
      for (const client of clients) expect(await client.send("SITE ONCE")).toEqual(["200 SITE ONCE: loaded"]);
    }
  });

  it("ends only a killed worker's sessions, with 421, and a replacement serves new ones", async () => {
    const daemon = await start();
    const byPid = await sessionsOnEveryWorker(daemon, 2);
    const [victim, survivor] = serving(await workers(daemon));
    if (victim === undefined || survivor === undefined) throw new Error("two serving workers expected");
    const victims = clientsOf(byPid, victim.pid);
    const survivors = clientsOf(byPid, survivor.pid);
    process.kill(victim.pid, "SIGKILL");

    for (const client of victims) {
      expect(await client.reply()).toEqual([SERVICE_NOT_AVAILABLE]);
      await client.closed();
      await expect(client.reply()).rejects.toThrow('connection closed with partial reply ""');
    }
    for (const client of survivors) {
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    }
    const named = `worker ${victim.index}`;
    const ended = `its ${victims.length} sessions were ended`;
    await daemon.waitForLog(new RegExp(`${named} \\(pid ${victim.pid}\\) died \\(signal SIGKILL\\): ${ended}`));
    await daemon.waitForLog(new RegExp(`${named} \\(pid (?!${victim.pid}\\))\\d+\\) started`));

    const listed = await workers(daemon);
    // The dead worker stays listed, replaced, until the next SIGHUP.
    expect(listed.filter((block) => block.state === "replaced")).toEqual([
      { ...victim, sessions: 0, state: "replaced", replaced: "died (signal SIGKILL)" },
    ]);
    const now = serving(listed);
    const replacement = now.find((block) => block.index === victim.index);
    expect(replacement?.pid).not.toBe(victim.pid);
    expect(replacement?.sessions).toBe(0);
    expect(now.find((block) => block.index === survivor.index)).toMatchObject({
      pid: survivor.pid,
      sessions: survivors.length,
    });
    // The replacement has no session: the next one is its.
    const { client, worker } = await openOnWorker(daemon);
    expect(worker.pid).toBe(replacement?.pid);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    for (const other of survivors) {
      expect(await other.send("NOOP")).toEqual(["200 NOOP command successful"]);
    }
  });

  // A guest control changes the instances' own state in the reference and in every worker; a replacement
  // builds its set from the config file and the journal, and then takes the reference's state, as a
  // proftpd session process inherits the master's.
  it("gives a replacement worker the modules' state the others have, a guest control's included", async () => {
    const daemon = await start([
      `ModulePath ${FIXTURES}`,
      `LoadModule ${CTRLS}`,
      "CtrlsTestControlsACLs greet allow user *",
    ]);
    expect(await ctl(daemon, "greet", "hello")).toMatchObject({ status: 0, stdout: "dsoctl: greeting set\n" });
    const [victim] = serving(await workers(daemon));
    if (victim === undefined) throw new Error("a serving worker expected");
    process.kill(victim.pid, "SIGKILL");
    const named = `worker ${victim.index}`;
    await daemon.waitForLog(new RegExp(`${named} \\(pid ${victim.pid}\\) died \\(signal SIGKILL\\)`));
    await daemon.waitForLog(new RegExp(`${named} \\(pid (?!${victim.pid}\\))\\d+\\) started`));

    const fresh = await sessionsOnEveryWorker(daemon);
    expect([...fresh.keys()]).not.toContain(victim.pid);
    for (const [pid, clients] of fresh) {
      for (const client of clients) {
        expect(await client.send("SITE GREETING"), `worker pid ${pid}`).toEqual(["200 hello"]);
      }
    }
    // And the replacement follows the controls after it, as the other worker does.
    expect(await ctl(daemon, "greet", "again")).toMatchObject({ status: 0, stdout: "dsoctl: greeting set\n" });
    for (const clients of (await sessionsOnEveryWorker(daemon)).values()) {
      for (const client of clients) expect(await client.send("SITE GREETING")).toEqual(["200 again"]);
    }
  });

  // The state is the binary's: a module file replaced on disk since the primary loaded it is another binary in
  // a new worker, which says so and does not start; the primary tries again, and it starts once the file is back.
  it("does not start a replacement whose module file was replaced since, says why, and starts it once it is back", async () => {
    const modules = mkdtempSync(path.join(os.tmpdir(), "dsod-workers-modules-"));
    try {
      const file = path.join(modules, "mod_ctrls_test.wasm");
      const original = readFileSync(path.join(FIXTURES, "mod_ctrls_test.wasm"));
      writeFileSync(file, original);
      const daemon = await start([`ModulePath ${modules}`, `LoadModule ${CTRLS}`]);
      const [victim, survivor] = serving(await workers(daemon));
      if (victim === undefined || survivor === undefined) throw new Error("two serving workers expected");
      // The same module with a custom section more (id 0, 4 bytes: the name "xyz").
      writeFileSync(file, Buffer.concat([original, Buffer.from([0, 4, 3, 120, 121, 122])]));
      process.kill(victim.pid, "SIGKILL");
      const named = `worker ${victim.index}`;
      await daemon.waitForLog(
        new RegExp(
          `${named} \\(pid \\d+\\) could not start: unable to take the primary's module state: module '${CTRLS}' cannot take ` +
            "the state given: its binary here has SHA-256 [0-9a-f]{64}, the state is of [0-9a-f]{64} " +
            "\\(was its file replaced\\?\\)",
        ),
      );
      // The other worker serves on.
      const client = await fixture.connect(daemon);
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
      expect(serving(await workers(daemon)).map((block) => block.pid)).toEqual([survivor.pid]);

      writeFileSync(file, original);
      await daemon.waitForLog(new RegExp(`${named} \\(pid (?!${victim.pid}\\))\\d+\\) started`));
      expect(serving(await workers(daemon))).toHaveLength(2);
    } finally {
      rmSync(modules, { recursive: true, force: true });
    }
  });
});
