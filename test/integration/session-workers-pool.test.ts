/**
 * The session worker pool (host/cluster/worker-pool.ts) through the built
 * dsod with `SessionWorkers 2` and real FTP clients: workers are dsod's own
 * child processes, each new session goes to the worker with the fewest, a
 * worker killed with SIGKILL ends its own sessions with proftpd's 421 while
 * the other's go on and a replacement takes new ones, and SIGTERM stops them
 * all with dsod's exit 0.
 *
 * Which worker serves a session is read from its login line: a worker logs
 * with its own pid, as proftpd's session processes do, and the primary
 * numbers the connections 1, 2, ... in the order they come.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { IS_ROOT } from "../helpers/other-users.js";
import { daemonFixture } from "./helpers/fixture.js";
import type { FtpControl } from "./helpers/ftp-client.js";
import { baseConfig, dsoctl, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";
import type { RunningDsod } from "./helpers/dsod.js";

const fixture = daemonFixture();
const SERVICE_NOT_AVAILABLE = "421 Service not available, closing control connection";
const SHUTTING_DOWN = "421 FTP server shutting down - Server shutting down";

/** The processes whose parent is `pid` (the 4th field of /proc/N/stat). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      // The process ended between the listing and the read.
      continue;
    }
    const [, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(parent) === pid) children.push(Number(entry));
  }
  return children.sort((a, b) => a - b);
}

/** Waits for worker `index`'s `started` line, of a pid other than `not`; resolves with its pid. */
async function started(daemon: RunningDsod, index: number, not?: number): Promise<number> {
  const pattern = new RegExp(`worker ${index} \\(pid (?!${not ?? 0}\\))(\\d+)\\) started`);
  await daemon.waitForLog(pattern);
  return Number(pattern.exec(daemon.stderr)?.[1]);
}

/** The sessions `lsmod -v` counts in the workers: the connections the primary handed off and holds. */
async function handedOff(daemon: RunningDsod): Promise<number> {
  const { stdout } = await dsoctl(["-s", daemon.socket, "lsmod", "-v"]);
  const workers = stdout.slice(stdout.indexOf("dsoctl: Session Workers:"));
  return [...workers.matchAll(/^dsoctl: {5}sessions: (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
}

interface Session {
  readonly client: FtpControl;
  /** The pid of the worker serving it. */
  readonly pid: number;
}

/** Opens sessions one after another, logged in, each with the pid of the worker that logged it in. */
function opener(daemon: RunningDsod): () => Promise<Session> {
  let id = 0;
  return async () => {
    const client = await fixture.connect(daemon);
    id += 1;
    const login = new RegExp(
      `dsod\\[(\\d+)\\]: session ${id} \\(127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]\\): USER demo: Login successful\\.`,
    );
    await daemon.waitForLog(login);
    return { client, pid: Number(login.exec(daemon.stderr)?.[1]) };
  };
}

describe("the session worker pool (SessionWorkers 2)", () => {
  it("hands each session to the least loaded worker and replaces one killed with SIGKILL", async () => {
    const { daemon } = await fixture.start(["SessionWorkers 2"]);
    const dsod = daemon.child.pid as number;
    const first = await started(daemon, 1);
    const second = await started(daemon, 2);
    expect(childrenOf(dsod)).toEqual([first, second].sort((a, b) => a - b));

    const open = opener(daemon);
    const sessions: Session[] = [];
    for (let n = 0; n < 4; n++) sessions.push(await open());
    // Fewest sessions first, the lower index of equals.
    expect(sessions.map((session) => session.pid)).toEqual([first, second, first, second]);

    process.kill(first, "SIGKILL");
    const victims = sessions.filter((session) => session.pid === first);
    for (const { client } of victims) {
      expect(await client.reply()).toEqual([SERVICE_NOT_AVAILABLE]);
      await client.closed();
      await expect(client.reply()).rejects.toThrow('connection closed with partial reply ""');
    }
    for (const { client } of sessions.filter((session) => session.pid === second)) {
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    }
    await daemon.waitForLog(
      new RegExp(`worker 1 \\(pid ${first}\\) died \\(signal SIGKILL\\): its 2 sessions were ended`),
    );
    const replacement = await started(daemon, 1, first);
    expect(childrenOf(dsod)).toEqual([second, replacement].sort((a, b) => a - b));

    // The replacement has no session, the other worker two: the next one is the replacement's.
    const next = await open();
    expect(next.pid).toBe(replacement);
    expect(await next.client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });

  it("lets a session's place go once it has ended: with MaxInstances 1, sessions one after another", async () => {
    const { daemon } = await fixture.start(["SessionWorkers 2", "MaxInstances 1"]);
    for (let n = 0; n < 3; n++) {
      const client = await fixture.connect(daemon);
      expect(await handedOff(daemon)).toBe(1);
      expect(await client.send("QUIT")).toEqual(["221 Goodbye."]);
      await client.closed();
      // The worker reports the end after the client has seen it: wait until the primary has let its copy go.
      while ((await handedOff(daemon)) > 0);
    }
  });

  it("ends every worker's sessions on SIGTERM, the workers exit, and dsod exits 0", async () => {
    const { daemon } = await fixture.start(["SessionWorkers 2"]);
    const pids = [await started(daemon, 1), await started(daemon, 2)];
    const open = opener(daemon);
    const sessions = [await open(), await open()];
    expect(sessions.map((session) => session.pid)).toEqual(pids);

    expect(await daemon.stop()).toBe(0);
    for (const { client } of sessions) {
      expect(await client.reply()).toEqual([SHUTTING_DOWN]);
      await client.closed();
    }
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
  });

  // What only a worker can fail at: its own switch to User (the primary checks the module path before it forks).
  it.skipIf(!IS_ROOT)("fails dsod's start with the first worker's reason when the workers cannot start", () => {
    const dir = tempDir();
    // Preloaded in every node dsod runs; only the workers (DSOD_WORKER_INDEX) are denied the switch.
    const deny = path.join(dir, "deny-setgroups.cjs");
    writeFileSync(
      deny,
      'if (process.env.DSOD_WORKER_INDEX) process.setgroups = () => { throw new Error("Operation not permitted"); };\n',
    );
    const config = writeConfig(dir, [baseConfig(dir), "SessionWorkers 2", "User nobody", "Group nogroup"].join("\n"));
    const result = runDsod(["-n", "-c", config], { NODE_OPTIONS: `--require ${deny}` });
    expect(result.status).toBe(1);
    const fatal = logMessages(result.stderr).filter((line) => line.startsWith("Fatal:"));
    expect(fatal.map((line) => line.replace(/\(pid \d+\)/, "(pid N)"))).toEqual([
      "Fatal: worker 1 (pid N) could not start: unable to switch to User nobody and Group nogroup: Operation not permitted",
    ]);
    expect(logMessages(result.stderr)).not.toContainEqual(expect.stringMatching(/listening on/));
  });
});
