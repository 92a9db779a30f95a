/**
 * PidFile: written once dsod listens (pr_pidfile_write, mode 0644, `PID\n`),
 * removed when it exits. A dsod that gave up root (User) can no longer unlink
 * a file in a root-owned directory, so before it does, it leaves the removal
 * to a watcher that keeps root: a shell holding the read end of a pipe whose
 * write end only dsod has. When dsod exits, however it exits, the pipe closes
 * and the watcher removes the file if it still names dsod's PID.
 */
import { spawn } from "node:child_process";
import { closeSync, fchmodSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import type { Socket } from "node:net";
import { DsoError, ErrorCodes } from "../errors.js";

/** Removes $1 when it still holds $2, once stdin reaches end of file. */
const WATCHER_SCRIPT = 'read -r _ || true; [ "$(cat -- "$1" 2>/dev/null)" = "$2" ] && rm -f -- "$1"';

export class PidFile {
  readonly path: string;
  readonly #pid: number;
  #watched = false;

  private constructor(path: string, pid: number) {
    this.path = path;
    this.#pid = pid;
  }

  /** Writes `pid` to `path`; a failure is fatal, as in proftpd's main.c. */
  static write(path: string, pid: number = process.pid): PidFile {
    let fd: number;
    try {
      fd = openSync(path, "w", 0o644);
    } catch (cause) {
      throw new DsoError(ErrorCodes.FILE, `error writing PidFile '${path}': ${(cause as Error).message}`, { cause });
    }
    try {
      // The mode regardless of umask.
      fchmodSync(fd, 0o644);
      writeSync(fd, `${pid}\n`);
    } finally {
      closeSync(fd);
    }
    return new PidFile(path, pid);
  }

  /**
   * Hands the removal to a watcher that keeps the current (root) identity;
   * call it before giving root up. `failed` hears of a watcher that could not
   * start (the file then stays after dsod exits).
   */
  watchForExit(failed: (error: Error) => void): void {
    const watcher = spawn("/bin/sh", ["-c", WATCHER_SCRIPT, "dsod-pidfile", this.path, String(this.#pid)], {
      // Its own session: a terminal's ^C to dsod's process group must not take the watcher with it.
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
    });
    watcher.on("error", failed);
    watcher.unref();
    (watcher.stdin as Socket | null)?.unref();
    this.#watched = true;
  }

  /** Removes the file if it still names this process; a watcher, if there is one, does it once dsod is gone. */
  remove(): void {
    if (this.#watched) return;
    try {
      if (readFileSync(this.path, "utf8") === `${this.#pid}\n`) unlinkSync(this.path);
    } catch {
      // Gone already, or replaced: nothing of ours to remove.
    }
  }
}
