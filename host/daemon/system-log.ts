/**
 * SystemLog (proftpd's mod_log.c set_systemlog, opened by its
 * log_postparse_ev): where the daemon's own log lines go. Without it they go
 * to stderr, as proftpd's do with -n, which dsod always runs with; under
 * systemd that is the journal. `SystemLog FILE` appends them to FILE in the
 * same proftpd shape, `SystemLog none` discards them (log_discard).
 *
 * proftpd's other target, syslog, is refused: the system logger listens on
 * the /dev/log datagram socket, and Node.js has no Unix datagram sockets
 * (node:dgram speaks UDP only; node:net's stream socket gets EPROTOTYPE).
 *
 * The file is opened once, while dsod is still root (before User), with
 * pr_log_openfile's checks: never through a symlink, never in a
 * world-writable directory, created 0640 (PR_LOG_SYSTEM_MODE).
 */
import { closeSync, constants, openSync, statSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { DsoError, ErrorCodes } from "../errors.js";
import type { DirectiveHandler } from "../modules/module-api.js";
import type { LogPriority } from "../modules/module-host.js";
import { checkArgs, directiveError, param } from "../config/directives.js";
import { formatLogLine } from "../log/log-format.js";

/** What SystemLog set: a file, `none`, or nothing (stderr). */
export type SystemLogTarget = { readonly kind: "file"; readonly path: string } | { readonly kind: "none" };

/** PR_LOG_SYSTEM_MODE. */
const SYSTEM_LOG_MODE = 0o640;

/** The SystemLog directive; `set` records its target for the daemon to open. */
export function systemLogDirective(set: (target: SystemLogTarget) => void): DirectiveHandler {
  return {
    name: "SystemLog",
    run: (d) => {
      checkArgs(d, 1);
      const value = param(d, 1);
      if (value.toLowerCase() === "none") {
        set({ kind: "none" });
      } else if (value.toLowerCase() === "syslog") {
        throw directiveError(
          "syslog is not supported: Node.js cannot write to the system logger's /dev/log datagram socket; leave SystemLog out to log to stderr (the journal under systemd), or name a file",
        );
      } else if (!value.startsWith("/")) {
        throw directiveError("must be an absolute path");
      } else {
        set({ kind: "file", path: path.normalize(value) });
      }
    },
  };
}

/**
 * Opens `file` for appending as pr_log_openfile does; returns the descriptor
 * or throws DSO_ERR_FILE with log_postparse_ev's `unable to open SystemLog` text.
 */
export function openSystemLog(file: string): number {
  const refuse = (reason: string, cause?: unknown): DsoError =>
    new DsoError(
      ErrorCodes.FILE,
      `unable to open SystemLog '${file}': ${reason}`,
      cause === undefined ? {} : { cause },
    );
  const dir = path.dirname(file);
  let mode;
  try {
    mode = statSync(dir).mode;
  } catch (cause) {
    throw refuse((cause as Error).message, cause);
  }
  if ((mode & 0o002) !== 0) throw refuse(`${dir} is a world-writable directory`);
  try {
    return openSync(
      file,
      constants.O_APPEND | constants.O_CREAT | constants.O_WRONLY | constants.O_NOFOLLOW,
      SYSTEM_LOG_MODE,
    );
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw refuse(code === "ELOOP" ? `${file} is a symbolic link` : (cause as Error).message, cause);
  }
}

/**
 * The daemon's log as the rest of dsod sees it: one function, whose lines go
 * to stderr until the SystemLog target is applied, then to the file (or
 * nowhere). `debug` lines are written only at debug levels above 0, as on stderr.
 */
export class DaemonLogSink {
  readonly #stderr: (priority: LogPriority, message: string) => void;
  readonly #debugLevel: number;
  readonly #host = hostname();
  #fd: number | undefined;
  #file: string | undefined;
  #discard = false;

  constructor(stderr: (priority: LogPriority, message: string) => void, debugLevel: number) {
    this.#stderr = stderr;
    this.#debugLevel = debugLevel;
  }

  readonly log = (priority: LogPriority, message: string): void => {
    if (this.#discard) return;
    if (this.#fd === undefined) {
      this.#stderr(priority, message);
      return;
    }
    if (priority === "debug" && this.#debugLevel === 0) return;
    try {
      writeSync(this.#fd, `${formatLogLine(new Date(), this.#host, process.pid, message)}\n`);
    } catch (error) {
      // A full disk must not take the daemon down: its lines go back to stderr, and it says so there.
      const file = this.#file;
      this.close();
      this.#stderr("error", `error writing SystemLog '${file}': ${(error as Error).message}; logging to stderr`);
      this.#stderr(priority, message);
    }
  };

  /** Applies SystemLog: opens its file (call while still root) or starts discarding. */
  apply(target: SystemLogTarget | undefined): void {
    if (target === undefined) return;
    if (target.kind === "none") {
      this.#discard = true;
      return;
    }
    this.#fd = openSystemLog(target.path);
    this.#file = target.path;
  }

  /** Closes the file; later lines go to stderr. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#file = undefined;
  }
}
