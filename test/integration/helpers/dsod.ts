/**
 * Runs the real, built dsod (dist/host/cli/dsod.js) as a child process on a
 * config written to a fresh temp directory, the way an operator runs it.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { OtherUsersDsoctl } from "../../helpers/other-users.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const DSOD = path.join(ROOT, "dist/host/cli/dsod.js");
export const DSOCTL = path.join(ROOT, "dist/host/cli/dsoctl.js");
export const LIBEXEC = path.join(ROOT, "dist/libexec");
export const FIXTURES = path.join(ROOT, "dist/test-fixtures");
export const PASSWD = path.join(ROOT, "examples/dsod.passwd");

/** A short temp dir (unix socket paths must stay under 108 bytes). */
export function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), "dsod-"));
}

/** The lines every test config starts with: loopback, a free port, a socket in `dir`. */
export function baseConfig(dir: string): string {
  return [
    `DefaultAddress 127.0.0.1`,
    `Port 0`,
    `AuthUserFile ${PASSWD}`,
    `ControlsSocket ${dir}/dsod.sock`,
    `ControlsSocketACL allow user *`,
    `ModuleControlsACLs all allow user *`,
  ].join("\n");
}

export function writeConfig(dir: string, text: string, name = "dsod.conf"): string {
  const file = path.join(dir, name);
  writeFileSync(file, text.endsWith("\n") ? text : `${text}\n`);
  return file;
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs dsod to completion (`-t`, `-l`, a config that fails). */
export function runDsod(args: readonly string[], env: Readonly<Record<string, string>> = {}): RunResult {
  const result = spawnSync(process.execPath, [DSOD, ...args], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** stderr without proftpd's `date time host dsod[pid]: ` prefix. */
export function logMessages(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ dsod\[\d+\]: /, ""));
}

export class RunningDsod {
  readonly child: ChildProcessWithoutNullStreams;
  readonly port: number;
  readonly socket: string;
  #stderr: string;

  private constructor(child: ChildProcessWithoutNullStreams, port: number, socket: string, stderr: string) {
    this.child = child;
    this.port = port;
    this.socket = socket;
    this.#stderr = stderr;
    child.stderr.on("data", (chunk: Buffer) => (this.#stderr += chunk.toString()));
  }

  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Starts dsod on `config` and waits for its `listening on ... port N` line.
   * `launcher` runs it through a program that execs it, keeping its PID
   * (`["prlimit", "--nofile=512:512"]`).
   */
  static start(
    config: string,
    socket: string,
    extraArgs: readonly string[] = [],
    launcher: readonly string[] = [],
  ): Promise<RunningDsod> {
    const [command = process.execPath, ...args] = [
      ...launcher,
      process.execPath,
      DSOD,
      "-n",
      "-c",
      config,
      ...extraArgs,
    ];
    const child = spawn(command, args);
    let stderr = "";
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        stderr += chunk.toString();
        const match = /listening on \S+ port (\d+)/.exec(stderr);
        if (match !== null) {
          child.stderr.off("data", onData);
          resolve(new RunningDsod(child, Number(match[1]), socket, stderr));
        }
      };
      child.stderr.on("data", onData);
      child.once("exit", (code) => reject(new Error(`dsod exited with ${code} before listening:\n${stderr}`)));
    });
  }

  /**
   * Waits until stderr has a line matching `pattern`, looking again at each
   * chunk dsod writes; fails when dsod exits without it, or after `timeoutMs`
   * (under the test's own timeout, so that the failure shows what was logged).
   */
  waitForLog(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    if (pattern.test(this.#stderr)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (error?: Error): void => {
        clearTimeout(timer);
        this.child.stderr.off("data", onData);
        this.child.off("exit", onExit);
        if (error === undefined) resolve();
        else reject(error);
      };
      // Runs after the constructor's listener has appended the chunk.
      const onData = (): void => {
        if (pattern.test(this.#stderr)) done();
      };
      const onExit = (code: number | null): void =>
        done(new Error(`dsod exited with ${code}, no log line ${pattern} in:\n${this.#stderr}`));
      const timer = setTimeout(() => done(new Error(`no log line ${pattern} in:\n${this.#stderr}`)), timeoutMs);
      this.child.stderr.on("data", onData);
      this.child.once("exit", onExit);
    });
  }

  /** Sends a signal; for SIGTERM, resolves with the exit code. */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => {
      this.child.once("exit", (code) => resolve(code));
      this.child.kill("SIGTERM");
    });
  }
}

/**
 * Runs the real dsoctl; `as` runs it as another user (needs root), from the
 * world-readable copy `as.from` (otherUsersDsoctl()): the checkout may be in a
 * folder other users cannot enter.
 */
export function dsoctl(
  args: readonly string[],
  as?: { uid: number; gid: number; from: OtherUsersDsoctl },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child =
      as === undefined
        ? spawn(process.execPath, [DSOCTL, ...args])
        : spawn(as.from.node, [as.from.dsoctl, ...args], { uid: as.uid, gid: as.gid, cwd: as.from.dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}
