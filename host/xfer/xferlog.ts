/**
 * TransferLog: one xferlog(5) line per transfer, as proftpd's src/xferlog.c
 * xferlog_write formats it and mod_xfer.c's _log_transfer calls it (`c` for
 * a completed transfer, `i` for an incomplete one). The formatter is pure; the
 * writer opens each log once, for appending, creating it 0644
 * (PR_TUNABLE_XFER_LOG_MODE), never through a symlink and never in a
 * world-writable directory (pr_log_openfile).
 */
import { constants } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { messageOf } from "../errors.js";

export interface XferlogEntry {
  /** When the line is written. */
  readonly at: Date;
  /** Whole seconds the transfer took (`xfertime`). */
  readonly seconds: number;
  /** The client's address (proftpd logs the name only with UseReverseDNS, which dsod does not do). */
  readonly remoteHost: string;
  /** Bytes moved (session.xfer.total_bytes). */
  readonly bytes: number;
  readonly filename: string;
  /** `a` ASCII, `b` binary. */
  readonly type: "a" | "b";
  /** `o` outgoing (RETR), `i` incoming (STOR, APPE, STOU). */
  readonly direction: "o" | "i";
  readonly user: string;
  /** `ftp`, or `ftps` on a TLS-secured control connection (pr_session_get_protocol). */
  readonly service: string;
  /** `c` complete, `i` incomplete. */
  readonly status: "c" | "i";
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/** pr_strtime3(t, FALSE): local time as `Sun Jan 05 09:03:07 2025` (the day is zero-padded, unlike ctime). */
export function xferlogTime(at: Date): string {
  return `${DAYS[at.getDay()]} ${MONTHS[at.getMonth()]} ${two(at.getDate())} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())} ${at.getFullYear()}`;
}

/**
 * The line xferlog_write writes, with its newline: current-time
 * transfer-time remote-host file-size filename transfer-type
 * special-action-flag (`_`) direction access-mode (`r`, a real user)
 * username service-name authentication-method (`0`, no RFC 1413 ident)
 * authenticated-user-id (`*`) completion-status. White space and control
 * characters in the file name become `_` so the line keeps its fields.
 */
export function formatXferlog(entry: XferlogEntry): string {
  // PR_ISSPACE || PR_ISCNTRL in the C locale: the space, and the control bytes (tab and CR/LF among them).
  // eslint-disable-next-line no-control-regex -- the control bytes are what is replaced
  const filename = entry.filename.replace(/[ \x00-\x1f\x7f]/g, "_");
  return (
    [
      xferlogTime(entry.at),
      String(Math.max(0, Math.floor(entry.seconds))),
      entry.remoteHost,
      String(entry.bytes),
      filename,
      entry.type,
      "_",
      entry.direction,
      "r",
      entry.user,
      entry.service,
      "0",
      "*",
      entry.status,
    ].join(" ") + "\n"
  );
}

/** A TransferLog that could not be opened: proftpd logs it and carries on without the log. */
export type XferlogProblem = (message: string) => void;

/**
 * The open TransferLogs, one handle per path for the whole daemon: each line
 * is one append(2)-mode write, so lines of concurrent sessions never mix.
 */
export class XferlogWriter {
  readonly #handles = new Map<string, Promise<FileHandle | undefined>>();
  readonly #problem: XferlogProblem;

  constructor(problem: XferlogProblem = () => {}) {
    this.#problem = problem;
  }

  /**
   * Opens the log at `file` now, as proftpd opens its logs while it is still
   * root: dsod calls this before it becomes User, so a log in a root-only
   * directory keeps working afterwards.
   */
  prepare(file: string): Promise<FileHandle | undefined> {
    let handle = this.#handles.get(file);
    if (handle === undefined) {
      handle = this.#open(file);
      this.#handles.set(file, handle);
    }
    return handle;
  }

  /** Appends `entry` to the log at `file`; a log that cannot be opened is reported once and skipped. */
  async write(file: string, entry: XferlogEntry): Promise<void> {
    const opened = await this.prepare(file);
    if (opened === undefined) return;
    try {
      await opened.write(formatXferlog(entry));
    } catch (error) {
      this.#problem(`error writing TransferLog '${file}': ${messageOf(error)}`);
    }
  }

  /** pr_log_openfile's checks, then O_APPEND|O_CREAT|O_WRONLY|O_NOFOLLOW with mode 0644. */
  async #open(file: string): Promise<FileHandle | undefined> {
    try {
      const dir = await stat(path.dirname(file));
      if (!dir.isDirectory()) {
        this.#problem(`unable to open TransferLog '${file}': ${path.dirname(file)} is not a directory`);
        return undefined;
      }
      if ((dir.mode & 0o002) !== 0) {
        this.#problem(`unable to open TransferLog '${file}': ${path.dirname(file)} is a world-writable directory`);
        return undefined;
      }
      return await open(
        file,
        constants.O_APPEND | constants.O_CREAT | constants.O_WRONLY | constants.O_NOFOLLOW,
        0o644,
      );
    } catch (error) {
      this.#problem(`unable to open TransferLog '${file}': ${messageOf(error)}`);
      return undefined;
    }
  }

  /** Closes every open log (daemon shutdown). */
  async close(): Promise<void> {
    const handles = [...this.#handles.values()];
    this.#handles.clear();
    for (const handle of handles) await (await handle)?.close();
  }
}
