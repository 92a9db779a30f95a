/**
 * The built dsod under abuse (issue #11), each test proving its figure:
 * a reply flood, a connection flood against MaxInstances under a low
 * descriptor limit, TimeoutLogin, failed-login log lines and
 * MaxLoginAttempts, equal timing of failed logins for known and unknown
 * users (mod_delay.c), and User/Group/PidFile.
 */
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { crypt } from "../../host/auth/crypt.js";
import { daemonFixture } from "./helpers/fixture.js";
import {
  LIBEXEC,
  ROOT,
  RunningDsod,
  baseConfig,
  dsoctl,
  logMessages,
  runDsod,
  tempDir,
  writeConfig,
} from "./helpers/dsod.js";

const fixture = daemonFixture();
const isRoot = process.getuid?.() === 0;

/** A field of /proc/PID/status (`VmRSS`, `Uid`...), as written after its colon. */
function status(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? "").slice(field.length + 1).trim();
}

function rssMb(pid: number): number {
  return Number(status(pid, "VmRSS").replace(/ kB$/, "")) / 1024;
}

function pidOf(daemon: RunningDsod): number {
  const pid = daemon.child.pid;
  if (pid === undefined) throw new Error("dsod has no pid");
  return pid;
}

/**
 * Resolves once `check` holds, looking again every 20 ms: for what only /proc
 * shows (the daemon's descriptors). No deadline of its own: a busy machine
 * only makes it take longer, and the test's timeout bounds it.
 */
async function eventually(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** The processes whose parent is `pid`: a dsod's session workers. */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((child) => {
      try {
        return status(child, "PPid") === String(pid);
      } catch {
        // Gone since the listing.
        return false;
      }
    });
}

/** A session and dsoctl served by a dsod that switched to User, its PidFile written as root; then a clean stop. */
async function servesAsUser(daemon: RunningDsod, dir: string, pid: number): Promise<void> {
  const client = await fixture.connect(daemon);
  expect(await client.send("PWD")).toEqual(['257 "/tmp" is the current directory']);
  const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
  expect(lsmod.status).toBe(0);
  // Written as root before the switch.
  expect(readFileSync(`${dir}/dsod.pid`, "utf8")).toBe(`${pid}\n`);
  client.close();
  expect(await daemon.stop()).toBe(0);
}

/**
 * `count` connections to `port` at once, kept in `sockets`; resolves once
 * each is greeted (a session) or closed by dsod (refused), with how many
 * were greeted.
 */
function connectAll(port: number, count: number, sockets: net.Socket[]): Promise<number> {
  let settled = 0;
  let greeted = 0;
  return new Promise((resolve) => {
    for (let i = 0; i < count; i++) {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => {});
      socket.once("data", () => greeted++);
      let counted = false;
      const settle = (): void => {
        if (!counted && ++settled === count) resolve(greeted);
        counted = true;
      };
      socket.once("data", settle);
      socket.once("close", settle);
      sockets.push(socket);
    }
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

describe("dsod under a reply flood", () => {
  it("a client pipelining HELP without reading the replies grows dsod's RSS by < 50 MB; another session keeps its answers", async () => {
    const { daemon } = await fixture.start([]);
    const pid = pidOf(daemon);
    const other = await fixture.connect(daemon);
    const before = rssMb(pid);

    const flood = net.connect(daemon.port, "127.0.0.1");
    flood.on("error", () => {});
    await new Promise((resolve) => flood.once("connect", resolve));
    flood.pause();
    const chunk = Buffer.from("HELP\r\n".repeat(2000));
    let written = 0;
    let flooding = true;
    let stop = (): void => {};
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    let backedUp = (): void => {};
    const blocked = new Promise<void>((resolve) => (backedUp = resolve));
    const pump = (async () => {
      while (flooding) {
        // A dsod that kept reading, its replies piling up in its memory, would never push back.
        if (written > 200e6) throw new Error("dsod read 200 MB of HELP whose replies nobody read");
        written += chunk.length;
        if (flood.write(chunk)) {
          await new Promise((resolve) => setImmediate(resolve));
        } else {
          // dsod stopped reading (its replies to the flood are never read): wait until it reads again, or the end.
          backedUp();
          await Promise.race([new Promise((resolve) => flood.once("drain", resolve)), stopped]);
        }
      }
    })();
    // A pump that failed must fail the test, not leave it waiting for the flood to back up.
    void pump.catch(() => backedUp());

    // The flood has filled every buffer between it and dsod; the other session is served all along.
    await blocked;
    let peak = before;
    for (let answers = 0; answers < 50; answers++) {
      expect(await other.send("NOOP")).toEqual(["200 NOOP command successful"]);
      peak = Math.max(peak, rssMb(pid));
    }
    flooding = false;
    stop();
    await pump;
    const after = rssMb(pid);
    flood.destroy();
    console.log(
      `reply flood: ${(written / 1e6).toFixed(1)} MB of HELP offered, RSS ${before.toFixed(1)} -> peak ${peak.toFixed(1)} -> ${after.toFixed(1)} MB`,
    );
    expect(peak - before).toBeLessThan(50);
  });
});

describe("dsod under a connection flood", () => {
  it("holds 2,000 idle connections to MaxInstances under a 512-descriptor limit, and dsoctl lsmod keeps answering", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, baseConfig(dir));
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], ["prlimit", "--nofile=512:512"]);
    fixture.adopt(daemon);
    const pid = pidOf(daemon);
    expect(logMessages(daemon.stderr)).toContain(
      "MaxInstances 89: 512 descriptors, 64 kept for the daemon, 5 per session",
    );

    const sockets: net.Socket[] = [];
    let greeted = 0;
    try {
      // In waves of 250, not 2,000 at once: a burst beyond the listen backlog (511) has the kernel drop
      // handshakes while the queue is full, and a connection whose handshake the server's kernel gives up on
      // stays open on the client's side with nothing ever coming; that is the likeliest reading of this test's
      // rare hangs on a loaded machine (no line of dsod's showed those connections). The sessions stay open:
      // later waves find MaxInstances reached and are refused.
      for (let opened = 0; opened < 2_000; opened += 250) greeted += await connectAll(daemon.port, 250, sockets);
      for (let i = 0; i < 3; i++) {
        const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
        expect(lsmod.status).toBe(0);
        expect(lsmod.stdout).toContain("Loaded Modules:");
      }
      const descriptors = readdirSync(`/proc/${pid}/fd`).length;
      const refused = logMessages(daemon.stderr).filter(
        (l) => l === "MaxInstances (89) reached, new connection denied",
      ).length;
      console.log(`connection flood: ${greeted} sessions, ${refused} refused, ${descriptors} descriptors open of 512`);
      expect(greeted).toBe(89);
      expect(refused).toBe(2_000 - 89);
      expect(descriptors).toBeLessThan(512 - 5 * 10);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    await eventually(() => readdirSync(`/proc/${pid}/fd`).length < 100);
    const client = await fixture.connect(daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  }, 60_000);
});

describe("dsod out of descriptors", () => {
  it("with MaxInstances none, running out of descriptors costs connections, never the daemon or its controls socket", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, [baseConfig(dir), "MaxInstances none"].join("\n"));
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], ["prlimit", "--nofile=128:128"]);
    fixture.adopt(daemon);
    const pid = pidOf(daemon);
    expect(logMessages(daemon.stderr)).toContain(
      "MaxInstances none exceeds the 12 sessions the descriptor limit (128) leaves room for: sessions may run out of descriptors",
    );
    const sockets: net.Socket[] = [];
    await connectAll(daemon.port, 400, sockets);
    // Every descriptor is taken: what a full table costs is connections, refused by the kernel's accept.
    expect(readdirSync(`/proc/${pid}/fd`).length).toBeGreaterThan(120);
    for (const socket of sockets) socket.destroy();
    await eventually(() => readdirSync(`/proc/${pid}/fd`).length < 60);
    expect(daemon.child.exitCode).toBeNull();
    const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
    expect(lsmod.status).toBe(0);
    const client = await fixture.connect(daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  }, 60_000);
});

describe("dsod's login limits", () => {
  it("ends a session that does not log in within TimeoutLogin", async () => {
    const { daemon } = await fixture.start(["TimeoutLogin 1"]);
    const client = await fixture.connect(daemon, false);
    expect(await client.reply()).toEqual(["421 Login timeout (1 second): closing control connection"]);
    await client.closed();
    await daemon.waitForLog(/session \d+ \(127\.0\.0\.1\[127\.0\.0\.1\]\): Login timeout exceeded, disconnected/);
  });

  it("logs each failed login in proftpd's words and ends the session at MaxLoginAttempts", async () => {
    const { daemon } = await fixture.start(["MaxLoginAttempts 2"]);
    const client = await fixture.connect(daemon, false);
    await client.send("USER demo");
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    await client.send("USER ghost");
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    await client.closed();
    const label = /^session \d+ \(127\.0\.0\.1\[127\.0\.0\.1\]\): /;
    const lines = logMessages(daemon.stderr)
      .filter((l) => label.test(l))
      .map((l) => l.replace(label, ""));
    expect(lines).toEqual([
      "USER demo (Login failed): Incorrect password",
      `USER ghost: no such user found from 127.0.0.1 [127.0.0.1] to 127.0.0.1:${daemon.port}`,
      "Maximum login attempts (2) exceeded, connection refused",
    ]);
  });

  it("refuses a login past MaxClientsPerUser with proftpd's 530", async () => {
    const { daemon } = await fixture.start(["MaxClientsPerUser 1"]);
    await fixture.connect(daemon);
    const second = await fixture.connect(daemon, false);
    await second.send("USER demo");
    expect(await second.send("PASS demo")).toEqual([
      "530 Sorry, the maximum number of clients (1) for this user are already connected.",
    ]);
    await second.closed();
  });

  it("answers failed logins of unknown and known users after the same time (mod_delay.c), and does not without it", async () => {
    // SHA-512 with 20,000 rounds: a check costs tens of milliseconds, far above the noise of a loaded machine.
    const users = path.join(tempDir(), "slow.passwd");
    writeFileSync(users, `demo:${crypt("demo", "$6$rounds=20000$saltsaltsaltsalt")}:1000:1000::/tmp:/bin/false\n`);
    /** The PASS round trips of `rounds` failed logins for each kind of user, interleaved. */
    async function failedLogins(
      lines: readonly string[],
      rounds: number,
    ): Promise<{ known: number[]; unknown: number[] }> {
      const { daemon } = await fixture.start([`AuthUserFile ${users}`, "MaxLoginAttempts none", ...lines]);
      const client = await fixture.connect(daemon, false);
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < rounds; i++) {
        for (const [user, into] of [
          ["demo", known],
          ["ghost", unknown],
        ] as const) {
          await client.send(`USER ${user}`);
          const start = performance.now();
          expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
          into.push(performance.now() - start);
        }
      }
      return { known, unknown };
    }
    const delayed = await failedLogins([], 10);
    const plain = await failedLogins(["DelayEngine off"], 10);
    const ratio = (times: { known: number[]; unknown: number[] }): number =>
      median(times.unknown) / median(times.known);
    console.log(
      `failed PASS, median ms: with mod_delay known ${median(delayed.known).toFixed(1)} / unknown ${median(delayed.unknown).toFixed(1)}; ` +
        `DelayEngine off known ${median(plain.known).toFixed(1)} / unknown ${median(plain.unknown).toFixed(1)}`,
    );
    // A password check takes milliseconds and an unknown name none: without the delay the times differ many times over.
    expect(ratio(plain)).toBeLessThan(0.2);
    expect(ratio(delayed)).toBeGreaterThan(0.6);
    expect(ratio(delayed)).toBeLessThan(1.7);
  }, 30_000);
});

describe("dsod's identity and PidFile", () => {
  it("writes the PidFile once it listens and removes it when it stops", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, [baseConfig(dir), `PidFile ${dir}/dsod.pid`].join("\n"));
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
    fixture.adopt(daemon);
    expect(readFileSync(`${dir}/dsod.pid`, "utf8")).toBe(`${pidOf(daemon)}\n`);
    expect(await daemon.stop()).toBe(0);
    expect(existsSync(`${dir}/dsod.pid`)).toBe(false);
  });

  it.skipIf(!isRoot)(
    "runs as User nobody and Group nogroup once bound, the master keeping root as its real uid, and serves sessions",
    async () => {
      const dir = tempDir();
      const config = writeConfig(
        dir,
        [baseConfig(dir), "User nobody", "Group nogroup", `PidFile ${dir}/dsod.pid`, "SessionWorkers 2"].join("\n"),
      );
      const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
      fixture.adopt(daemon);
      const pid = pidOf(daemon);
      // proftpd's master: User/Group as its effective (and file system) ids, root kept as its real and saved ones.
      expect(status(pid, "Uid").split(/\s+/)).toEqual(["0", "65534", "0", "65534"]);
      expect(status(pid, "Gid").split(/\s+/)).toEqual(["0", "65534", "0", "65534"]);
      expect(status(pid, "Groups")).toBe("");
      expect(logMessages(daemon.stderr)).toContain(
        "master process running with effective User nobody (uid 65534), Group nogroup (gid 65534), " +
          "no supplementary groups; sessions run in workers as User nobody",
      );
      // The sessions' processes gave root up for good.
      const workers = childrenOf(pid);
      expect(workers).toHaveLength(2);
      for (const worker of workers) {
        expect(status(worker, "Uid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
        expect(status(worker, "Gid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
        expect(status(worker, "Groups")).toBe("");
      }
      await servesAsUser(daemon, dir, pid);
      // Taken back as root by the master as it stops, which then cannot run as nobody either.
      expect(existsSync(`${dir}/dsod.pid`)).toBe(false);
      expect(existsSync(`${dir}/dsod.sock`)).toBe(false);
    },
  );

  it.skipIf(!isRoot)(
    "forks a replacement worker as root from a checkout only root may read, which then serves as nobody",
    async () => {
      const dir = tempDir();
      // A copy of the package in a mode-700 folder, as a checkout in root's home: nobody may not read it.
      const checkout = path.join(dir, "checkout");
      mkdirSync(checkout, { mode: 0o700 });
      for (const part of ["dist", "build", "package.json"]) execFileSync("cp", ["-r", path.join(ROOT, part), checkout]);
      symlinkSync(path.join(ROOT, "node_modules"), path.join(checkout, "node_modules"));
      const config = writeConfig(dir, [baseConfig(dir), "User nobody", "Group nogroup", "SessionWorkers 2"].join("\n"));
      // The shell execs node on the copy's dsod with the arguments meant for the original, so the PID stays dsod's.
      const copy = path.join(checkout, "dist/host/cli/dsod.js");
      const launcher = ["sh", "-c", 'node="$1"; shift 2; exec "$node" "$0" "$@"', copy];
      const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], launcher);
      fixture.adopt(daemon);
      const worker1 = (): number[] =>
        [...daemon.stderr.matchAll(/worker 1 \(pid (\d+)\) started/g)].map((match) => Number(match[1]));
      const [first] = worker1();
      process.kill(first as number, "SIGKILL");
      await daemon.waitForLog(new RegExp(`worker 1 \\(pid (?!${first}\\))\\d+\\) started`));
      const replacement = worker1().at(-1);
      expect(status(replacement as number, "Uid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
      // The fewest sessions, the lowest index: the first session goes to the replacement.
      const client = await fixture.connect(daemon);
      expect(await client.send("PWD")).toEqual(['257 "/tmp" is the current directory']);
      client.close();
      expect(await daemon.stop()).toBe(0);
    },
  );

  it.skipIf(!isRoot)("runs as User nobody for good with SessionWorkers off, and serves sessions", async () => {
    const dir = tempDir();
    const config = writeConfig(
      dir,
      [baseConfig(dir), "User nobody", "Group nogroup", `PidFile ${dir}/dsod.pid`, "SessionWorkers off"].join("\n"),
    );
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
    fixture.adopt(daemon);
    const pid = pidOf(daemon);
    expect(status(pid, "Uid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
    expect(status(pid, "Gid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
    expect(status(pid, "Groups")).toBe("");
    await servesAsUser(daemon, dir, pid);
    // Removed after the exit by the watcher that kept root.
    await eventually(() => !existsSync(`${dir}/dsod.pid`));
  });

  // With session workers the primary refuses it before any worker forks, in the same words.
  it.skipIf(!isRoot).each(["off", "2"])(
    "refuses to start as a User that could write the module path (SessionWorkers %s)",
    (workers) => {
      const dir = tempDir();
      const modules = path.join(dir, "modules");
      mkdirSync(modules, { mode: 0o755 });
      chownSync(modules, 65534, 65534);
      execFileSync("cp", [path.join(LIBEXEC, "mod_test.wasm"), modules]);
      const config = writeConfig(
        dir,
        [baseConfig(dir), "User nobody", `ModulePath ${modules}`, `SessionWorkers ${workers}`].join("\n"),
      );
      const result = runDsod(["-n", "-c", config]);
      expect(result.status).toBe(1);
      const lines = logMessages(result.stderr);
      expect(lines).toContain(
        `Fatal: ModulePath '${modules}' could be written by nobody (User), who could then replace modules; chown root it and remove its group write permission`,
      );
      expect(lines.filter((line) => /^worker \d+ \(pid \d+\)|^running as User|^listening on/.test(line))).toEqual([]);
    },
  );

  it("says in dsod -t which directives are accepted for compatibility only", () => {
    const dir = tempDir();
    const config = writeConfig(
      dir,
      [baseConfig(dir), `ScoreboardFile ${dir}/sb`, "WtmpLog on", `DelayTable ${dir}/delay`].join("\n"),
    );
    const result = runDsod(["-t", "-c", config]);
    expect(result.status).toBe(0);
    const lines = logMessages(result.stderr);
    expect(lines).toContain(
      `ScoreboardFile on line 7 of '${config}' is accepted for compatibility only: dsod keeps its scoreboard in memory and writes no file`,
    );
    expect(lines).toContain(
      `WtmpLog on line 8 of '${config}' is accepted for compatibility only: dsod writes no wtmp records`,
    );
    expect(lines).toContain(
      `DelayTable on line 9 of '${config}' is accepted for compatibility only: dsod keeps the table in memory, not in '${dir}/delay'`,
    );
  });
});
