/**
 * SystemLog against the real dsod: the daemon's lines go to the file from the
 * moment it is opened (before User, as proftpd opens its logs), stderr says
 * where they went, and a file dsod cannot safely open stops the start.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, watch, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FtpControl } from "./helpers/ftp-client.js";
import { DSOD, baseConfig, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const isRoot = process.geteuid?.() === 0;
const running: ChildProcessWithoutNullStreams[] = [];

afterEach(async () => {
  for (const child of running.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    await new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGTERM");
    });
  }
});

/** Resolves with the file's text once it matches `pattern`; the file's folder is watched, not polled. */
function fileMatching(file: string, pattern: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const text = existsSync(file) ? readFileSync(file, "utf8") : "";
      if (!pattern.test(text)) return false;
      watcher.close();
      resolve(text);
      return true;
    };
    const watcher = watch(path.dirname(file), () => void check());
    check();
  });
}

function start(config: string): {
  child: ChildProcessWithoutNullStreams;
  stderr: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [DSOD, "-n", "-c", config]);
  running.push(child);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stderr: () => stderr, exit };
}

const LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ dsod\[(\d+)\]: (.*)$/;

/** How the daemon announces a session worker (SessionWorkers): its pid. */
const WORKER_STARTED = /^worker \d+ \(pid (\d+)\) started$/;

/**
 * The file's lines, checking each line's proftpd shape and pid: the daemon's,
 * or with SessionWorkers one of the workers it announced, whose lines (its
 * sessions') carry their own pid as proftpd's session processes' do.
 */
function logged(text: string, pid: number | undefined): { pid: string; message: string }[] {
  const lines = text
    .trimEnd()
    .split("\n")
    .map((line) => {
      const match = LINE.exec(line);
      expect(match, line).not.toBeNull();
      return { pid: match?.[1] ?? "", message: match?.[2] ?? line };
    });
  const ours = new Set([String(pid)]);
  for (const line of lines) {
    const worker = WORKER_STARTED.exec(line.message);
    if (line.pid === String(pid) && worker?.[1] !== undefined) ours.add(worker[1]);
  }
  for (const line of lines) expect(ours, `${line.pid}: ${line.message}`).toContain(line.pid);
  return lines;
}

function messages(text: string, pid: number | undefined): string[] {
  return logged(text, pid).map((line) => line.message);
}

describe("SystemLog", () => {
  it("takes the daemon's lines from the start on, sessions' included, until it stops", async () => {
    const dir = tempDir();
    const file = path.join(dir, "dsod.log");
    const config = writeConfig(dir, [baseConfig(dir), `SystemLog ${file}`].join("\n"));
    const daemon = start(config);
    const listening = await fileMatching(file, /listening on 127\.0\.0\.1 port (\d+)\n/);
    expect(lstatSync(file).mode & 0o777).toBe(0o640);
    const port = Number(/listening on 127\.0\.0\.1 port (\d+)/.exec(listening)?.[1]);
    const { client } = await FtpControl.connect(port);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    client.close();
    await fileMatching(file, /USER demo \(Login failed\)/);
    daemon.child.kill("SIGTERM");
    expect(await daemon.exit).toBe(0);
    const lines = messages(readFileSync(file, "utf8"), daemon.child.pid);
    const startup = lines.findIndex((line) => /^dsod Version \S+ \(wasm-dso\) standalone mode STARTUP$/.test(line));
    expect(startup).toBeGreaterThanOrEqual(0);
    expect(lines[startup + 1]).toBe(`listening on 127.0.0.1 port ${port}`);
    expect(lines.some((line) => line.includes("USER demo (Login failed)"))).toBe(true);
    expect(lines.indexOf("dsod shutting down")).toBeGreaterThan(startup);
    // stderr says where the log went, and nothing after that.
    expect(logMessages(daemon.stderr())).toEqual([`logging to SystemLog '${file}'`]);
  });

  it.skipIf(!isRoot)(
    "is opened as root before User: a file in a root-only folder keeps its lines after the switch",
    async () => {
      const dir = tempDir();
      const logs = path.join(dir, "logs");
      chmodSync(dir, 0o755);
      const file = path.join(logs, "dsod.log");
      mkdirSync(logs, { mode: 0o700 });
      const config = writeConfig(
        dir,
        [baseConfig(dir), "User nobody", "Group nogroup", `SystemLog ${file}`].join("\n"),
      );
      const daemon = start(config);
      await fileMatching(file, /listening on/);
      // A SIGHUP's lines come from the daemon after its switch, and nobody could not open this file.
      daemon.child.kill("SIGHUP");
      const text = await fileMatching(file, /received SIGHUP -- master server reparsing configuration file\n/);
      // Logged once the process serving the sessions is nobody for good: dsod itself, or each session worker.
      const switched = logged(text, daemon.child.pid).find(
        (line) =>
          line.message === "running as User nobody (uid 65534), Group nogroup (gid 65534), no supplementary groups",
      );
      expect(switched).toBeDefined();
      expect(readFileSync(`/proc/${switched?.pid}/status`, "utf8")).toMatch(/\nUid:\s+65534\s/);
    },
  );

  it("stops the start on a file it cannot safely open, with proftpd's text", () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "real.log"), "");
    symlinkSync(path.join(dir, "real.log"), path.join(dir, "link.log"));
    const config = writeConfig(dir, [baseConfig(dir), `SystemLog ${dir}/link.log`].join("\n"));
    const result = runDsod(["-n", "-c", config]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toEqual([
      `logging to SystemLog '${dir}/link.log'`,
      `Fatal: unable to open SystemLog '${dir}/link.log': ${dir}/link.log is a symbolic link`,
    ]);
  });

  it("refuses syslog in dsod -t, saying why", () => {
    const dir = tempDir();
    const config = writeConfig(dir, [baseConfig(dir), "SystemLog syslog"].join("\n"));
    const result = runDsod(["-t", "-c", config]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toEqual([
      `Fatal: SystemLog: syslog is not supported: Node.js cannot write to the system logger's /dev/log datagram socket; leave SystemLog out to log to stderr (the journal under systemd), or name a file on line 7 of '${config}'`,
    ]);
  });
});
