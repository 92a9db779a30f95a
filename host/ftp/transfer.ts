/**
 * Moving bytes over the data connection for a command, with mod_xfer.c's and
 * src/data.c's replies: `150 Opening <ASCII|BINARY> mode data connection for
 * <what>` sent at once when the connection is made, then `226 Transfer
 * complete` (added to the command's replies), `425 Unable to build data
 * connection: <reason>`, or pr_data_abort's `4xx/5xx Transfer aborted. <why>`.
 *
 * Files move through data-copy.ts in large reused buffers, never whole in
 * memory. ABOR aborts through ControlChannel.onAbort with `426 Transfer
 * aborted. Data connection closed.`, after which the ABOR command answers for
 * itself (RFC 959 4.1.3). TimeoutStalled ends the session as proftpd's stalled
 * timer does.
 *
 * The control connection closing is noticed as proftpd's pr_data_xfer
 * notices it, between one read of the data connection and the next
 * (poll_ctrl): a download stops at once; an upload goes on until more data
 * arrives, which is still written before the upload is aborted (a
 * HiddenStores file is then removed). An upload whose data connection simply
 * ends after the control connection closed is complete, as it is for
 * proftpd: the file is kept (and a HiddenStores file renamed into place).
 */
import type { FileHandle } from "node:fs/promises";
import type { Duplex, Readable } from "node:stream";
import type { ActiveCommand } from "../abi/host-symbols.js";
import { HandlerResults } from "../modules/module-api.js";
import type { HandlerResult, SessionState, TransferInfo } from "../modules/module-api.js";
import { FromCrlf, ToCrlf } from "./ascii.js";
import { InactivityTimer } from "../system/clock.js";
import { FileSource, receiveChunks, sendChunks } from "./data-copy.js";
import type { CopyOptions } from "./data-copy.js";
import { DEFAULT_STALLED_TIMEOUT_MS, DataConnectionError } from "../data/data-channel.js";
import { errnoOf, strerror } from "./strerror.js";

export interface SendOptions {
  /** What the 150 line names: `file list`, or `name (N bytes)`. */
  readonly what: string;
  /** ASCII: LF becomes CRLF on the wire (listings are always ASCII). */
  readonly ascii: boolean;
  /** The file's size for TransferInfo (RETR); the bytes sent when not given (a listing). */
  readonly fileSize?: number;
}

export interface ReceiveOptions {
  /** What the 150 line names (the argument as sent), or for STOU the unique name. */
  readonly what: string;
  /** ASCII: CRLF on the wire becomes LF in the file. */
  readonly ascii: boolean;
  /** STOU: the 150 line is RFC 1123's `150 FILE: <name>`. */
  readonly unique?: boolean;
  /** REST: the file offset the first byte goes to (the handle was opened without truncating). */
  readonly start?: number;
}

/** What an upload did; a failure's reply has already been added to the command. */
export interface ReceiveOutcome {
  readonly complete: boolean;
  /** Bytes read off the data connection. */
  readonly bytes: number;
  readonly durationMs: number;
}

/** pr_inet_lingering_abort's reply for a transfer ABOR stopped (src/netio.c). */
export const ABORTED_REPLY = { code: "426", message: "Transfer aborted. Data connection closed." } as const;

/** PR_TUNABLE_TIMEOUTLINGER: how long a finished connection waits for the client to close its end. */
const LINGER_MS = 10_000;

/**
 * The 150 line's object for a file: `name (N bytes)` (`1 byte`), or just the
 * name when the size is 0, as data_passive_open/data_active_open write it.
 */
export function transferWhat(name: string, size: number): string {
  if (size <= 0) return name;
  return `${name} (${size} ${size === 1 ? "byte" : "bytes"})`;
}

/** The 150 line's text, `Opening ASCII|BINARY mode data connection for <what>` (MODE_STRING, src/data.c). */
export function openingText(ascii: boolean, what: string): string {
  return `Opening ${ascii ? "ASCII" : "BINARY"} mode data connection for ${what}`;
}

const ABORT_MESSAGES: ReadonlyArray<readonly [string, readonly string[], string | undefined]> = [
  ["426", ["ECONNABORTED", "ECONNRESET", "EPIPE"], "Data connection closed"],
  ["451", ["ENXIO"], "Unexpected streams hangup"],
  ["451", ["EAGAIN", "ENOMEM"], "Insufficient memory or file locked"],
  ["451", ["ETXTBSY", "EBUSY"], undefined],
  ["452", ["ENOSPC"], undefined],
  ["552", ["EDQUOT", "EFBIG"], undefined],
  ["451", ["ECOMM", "EDEADLK", "EXFULL", "ENOSR", "EPROTO", "ETIME", "EIO", "EFAULT", "ESPIPE"], undefined],
  ["450", ["EREMCHG", "ESRMNT", "ESTALE", "ENOLINK", "ENOLCK", "ENETRESET", "ETIMEDOUT"], "Link to file server lost"],
];

/**
 * pr_data_abort's reply for a transfer that failed with `errno` (undefined:
 * the connection just ended, errno 0): the code and reason its switch picks,
 * strerror's words where it has none of its own.
 */
export function abortReply(errno: string | undefined): { readonly code: string; readonly message: string } {
  if (errno === undefined) return { code: "426", message: "Transfer aborted. Data connection closed" };
  for (const [code, errnos, message] of ABORT_MESSAGES) {
    if (errnos.includes(errno)) return { code, message: `Transfer aborted. ${message ?? strerror(errno)}` };
  }
  return { code: "426", message: `Transfer aborted. ${strerror(errno)}` };
}

type Failure =
  /** A reply for the client. */
  | { readonly kind: "reply"; readonly code: string; readonly message: string }
  /** TimeoutStalled: the session ends without a word (pr_session_disconnect). */
  | { readonly kind: "stalled" };

interface Moved {
  readonly ok: boolean;
  readonly bytes: number;
  readonly durationMs: number;
  readonly failure?: Failure;
}

/** Why an AbortController stopped the transfer. */
const STALLED = Symbol("TimeoutStalled");

/**
 * The part both directions share: make the connection (sending the 150),
 * run `move` over it, watch for ABOR, the control connection closing and
 * TimeoutStalled, and close the connection.
 */
async function overData(
  session: SessionState,
  opening: string,
  direction: "out" | "in",
  move: (socket: Duplex, copy: CopyOptions & { readonly controlClosed: () => boolean }) => Promise<void>,
): Promise<Moved> {
  const data = session.data;
  const clock = data.clock;
  const controller = new AbortController();
  let controlClosed = false;
  // ABOR, or the session ending. A control connection that closed is told apart by the onClose
  // that runs right after: an upload then goes on until more data arrives (see the top).
  const offAbort = session.control.onAbort(() => {
    if (direction !== "in" || !session.closing) controller.abort();
    else
      queueMicrotask(() => {
        if (!controlClosed) controller.abort();
      });
  });
  const offClose = session.control.onClose(() => {
    controlClosed = true;
  });
  data.beginTransfer();
  try {
    let socket: Duplex;
    try {
      socket = await data.open({ signal: controller.signal, connected: () => session.control.send("150", opening) });
    } catch (error) {
      if (controller.signal.aborted)
        return { ok: false, bytes: 0, durationMs: 0, failure: { kind: "reply", ...ABORTED_REPLY } };
      const reply =
        error instanceof DataConnectionError && error.reply !== undefined
          ? error.reply
          : { code: "425", message: `Unable to build data connection: ${strerror(errnoOf(error) ?? "EIO")}` };
      return { ok: false, bytes: 0, durationMs: 0, failure: { kind: "reply", ...reply } };
    }
    // Whatever the socket reports from now on is the copy's failure, or comes while it closes.
    socket.on("error", () => {});
    const started = clock.now();
    let bytes = 0;
    const stalledMs = data.settings.stalledTimeoutMs ?? DEFAULT_STALLED_TIMEOUT_MS;
    const stall = new InactivityTimer(clock, stalledMs, () => controller.abort(STALLED));
    const copy = {
      moved: (n: number): void => {
        bytes += n;
        stall.touch();
      },
      signal: controller.signal,
      controlClosed: () => controlClosed,
    };
    try {
      await move(socket, copy);
    } catch (error) {
      socket.destroy();
      const durationMs = clock.now() - started;
      if (controller.signal.reason === STALLED) return { ok: false, bytes, durationMs, failure: { kind: "stalled" } };
      if (controller.signal.aborted || controlClosed)
        return { ok: false, bytes, durationMs, failure: { kind: "reply", ...ABORTED_REPLY } };
      return { ok: false, bytes, durationMs, failure: { kind: "reply", ...abortReply(errnoOf(error)) } };
    } finally {
      stall.stop();
    }
    const durationMs = clock.now() - started;
    await linger(socket, controller.signal, clock.schedule.bind(clock));
    return { ok: true, bytes, durationMs };
  } finally {
    data.endTransfer();
    offAbort();
    offClose();
  }
}

/**
 * pr_inet_lingering_close: our side has ended the stream; wait (briefly) for
 * the client to close its end before dropping the socket, so nothing it still
 * sends turns the close into a reset that could cost it the data's tail.
 */
function linger(
  socket: Duplex,
  signal: AbortSignal,
  schedule: (ms: number, run: () => void) => () => void,
): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      cancel();
      signal.removeEventListener("abort", done);
      socket.destroy();
      resolve();
    };
    const cancel = schedule(LINGER_MS, done);
    if (socket.destroyed || signal.aborted) {
      done();
      return;
    }
    socket.once("close", done);
    signal.addEventListener("abort", done, { once: true });
    socket.resume();
  });
}

function fail(session: SessionState, cmd: ActiveCommand, failure: Failure | undefined): void {
  if (failure?.kind === "stalled") {
    session.closing = true;
    return;
  }
  if (failure !== undefined) cmd.addError(failure.code, failure.message);
}

/**
 * Sends `source` to the client over the data connection (RETR, LIST, NLST,
 * MLSD); sets `cmd.transfer`; HANDLED after adding `226 Transfer complete`,
 * ERROR with the failure's reply otherwise. `source` is always consumed or
 * destroyed (a FileSource closes its file either way). A FileSource from
 * fileSource() is read straight into reused buffers.
 */
export async function sendOverData(
  session: SessionState,
  cmd: ActiveCommand,
  source: Readable,
  options: SendOptions,
): Promise<HandlerResult> {
  const convert = options.ascii ? new ToCrlf() : undefined;
  const moved = await overData(session, openingText(options.ascii, options.what), "out", (socket, copy) =>
    sendChunks(socket, source, convert, copy),
  );
  if (!source.destroyed) source.destroy();
  const transfer: TransferInfo = {
    direction: "download",
    bytes: moved.bytes,
    fileSize: options.fileSize ?? moved.bytes,
    durationMs: moved.durationMs,
    complete: moved.ok,
  };
  cmd.transfer = transfer;
  if (!moved.ok) {
    fail(session, cmd, moved.failure);
    return HandlerResults.ERROR;
  }
  cmd.addResponse("226", "Transfer complete");
  return HandlerResults.HANDLED;
}

/**
 * Receives the client's upload into `target` (STOR, STOU, APPE), writing from
 * `options.start` when given, else where the handle stands (APPE's handle
 * appends). On failure the reply (425, 426, 452 ...) is added to `cmd`; on
 * success nothing is: the caller closes the file, renames a HiddenStores file
 * and then adds `226 Transfer complete`, as xfer_stor does. The handle stays
 * open either way, with no write to it in flight; `cmd.transfer` is the
 * caller's to set, once it knows the file's size.
 */
export async function receiveOverData(
  session: SessionState,
  cmd: ActiveCommand,
  target: FileHandle,
  options: ReceiveOptions,
): Promise<ReceiveOutcome> {
  const opening = options.unique === true ? `FILE: ${options.what}` : openingText(options.ascii, options.what);
  const convert = options.ascii ? new FromCrlf() : undefined;
  const moved = await overData(session, opening, "in", (socket, copy) =>
    receiveChunks(socket, target, convert, {
      ...copy,
      ...(options.start !== undefined && options.start > 0 && { start: options.start }),
      stopWhen: copy.controlClosed,
      stopReason: new Error("the control connection closed"),
    }),
  );
  if (!moved.ok) fail(session, cmd, moved.failure);
  return { complete: moved.ok, bytes: moved.bytes, durationMs: moved.durationMs };
}

/** A file's bytes from `start` for sendOverData; it closes the handle when done. */
export function fileSource(handle: FileHandle, start: number): Readable {
  return new FileSource(handle, start);
}
