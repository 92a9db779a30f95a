/**
 * One FTP session: what proftpd's forked session process does in cmd_loop
 * (src/main.c). It reads command lines off the control connection, runs them
 * one at a time through the session's modules, and writes the replies.
 *
 * One command at a time: a command whose handler returned a Promise (a
 * transfer) is waited for before the next line is dispatched. Meanwhile only
 * ABOR acts at once (RFC 959 4.1.3: the transfer in progress is aborted); it is
 * then dispatched in turn, after the transfer's own reply.
 *
 * Memory per session is bounded whatever the client does: lines are cut at
 * proftpd's CommandBufferSize, at most MAX_QUEUED_LINES wait, and a client that
 * does not read its replies stops being read until they drain.
 *
 * Time is bounded too, with proftpd's timers and texts: TimeoutLogin and
 * TimeoutSession (mod_auth.c) and TimeoutIdle (mod_core.c) here, TimeoutNoTransfer
 * and TimeoutStalled in mod_xfer.c; and a connection being closed is destroyed
 * after TimeoutLinger even when its client never reads the last reply.
 */
import type net from "node:net";
import tls from "node:tls";
import type { TLSSocketOptions } from "node:tls";
import { messageOf } from "../errors.js";
import { TlsCarrier } from "../tls/carrier.js";
import type { ControlChannel, SessionState } from "../modules/module-api.js";
import { InactivityTimer } from "../system/clock.js";
import type { Clock } from "../system/clock.js";
import { ControlLineReader, LineQueue, parseCommandLine } from "./command-line.js";
import type { LineSink } from "./command-line.js";
import { dispatchCommand, replyText } from "./dispatch.js";
import type { DispatchOptions, DispatchResult } from "./dispatch.js";
import type { FairScheduler } from "./scheduler.js";

/** cmd_loop's reply to a line that makes no command (empty, or leading white space). */
const INVALID_COMMAND = "500 Invalid command: try being more creative";

/** Lines read ahead of the command in progress; past this the socket is not read until they are handled. */
export const MAX_QUEUED_LINES = 64;

/** Reply bytes waiting for the client; past this no further command runs, and nothing is read, until they drain. */
export const MAX_PENDING_REPLY_BYTES = 64 * 1024;

/**
 * Replies of pipelined commands held to be written together: past this many
 * bytes they go out at once, whatever is still queued.
 */
export const REPLY_BATCH_BYTES = 16 * 1024;

/** PR_TUNABLE_TIMEOUTLINGER: how long a closing connection may take to deliver its last reply. */
export const LINGER_MS = 10_000;

/** A session's timers, in seconds; 0 turns one off. Read once, when the session starts, as a forked session reads its config. */
export interface SessionTimeouts {
  /** TimeoutIdle: no command for this long ends the session (not while a command, such as a transfer, runs). */
  readonly idle: number;
  /** TimeoutLogin: from the connection to a successful login. */
  readonly login: number;
  /** TimeoutSession: from the login to the end of the session, whatever it does. */
  readonly session: number;
}

export interface SessionHooks {
  readonly dispatch: DispatchOptions;
  readonly timeouts: SessionTimeouts;
  readonly clock: Clock;
  readonly log: (message: string) => void;
  /** Runs once the connection has closed, for any reason. */
  readonly closed: () => void;
  /**
   * Decides when this session's next command may run, so that one session
   * cannot hold the daemon (SessionCPUShare, docs/security.md); without it
   * queued commands run as soon as the previous one is done.
   */
  readonly scheduler?: FairScheduler<number>;
}

/**
 * The label of a session's log lines: its number, and the client as
 * proftpd's session lines name it, `(remote_name[remote_ip])`; dsod does no
 * reverse DNS lookups, so the name is the address.
 */
export function sessionLabel(session: Pick<SessionState, "id" | "remoteAddress">): string {
  return `session ${session.id} (${session.remoteAddress}[${session.remoteAddress}])`;
}

/** `N seconds`, or `1 second`, as auth_login_timeout_cb words it. */
function seconds(count: number): string {
  return `${count} ${count !== 1 ? "seconds" : "second"}`;
}

function crlf(lines: readonly string[]): string {
  let text = "";
  for (const line of lines) text += `${line}\r\n`;
  return text;
}

export class ControlSession implements ControlChannel {
  readonly state: SessionState;
  readonly #hooks: SessionHooks;
  readonly #clock: Clock;
  #socket: net.Socket;
  /** The TCP connection itself: what is destroyed when a closing client will not read, under TLS too. */
  readonly #raw: net.Socket;
  #secure = false;
  readonly #reader = new ControlLineReader();
  readonly #queue = new LineQueue();
  #busy = false;
  #tlsOptions: TLSSocketOptions | undefined;
  /** What the control connection's TLS runs over, so that CCC can take it off. */
  #carrier: TlsCarrier | undefined;
  #clearTls = false;
  #abort: (() => void) | undefined;
  readonly #cleanups = new Set<() => void>();
  #closed = false;
  #ending = false;
  #readPaused = false;
  /** The read being handled saw the session closing (or disconnected it): the rest of it is ignored. */
  #readStopped = false;
  /** The scheduler will call #onTurn when this session's next command may run. */
  #awaitingTurn = false;
  /** #onTurn granted a turn that no command has used yet. */
  #hasTurn = false;
  /** A command whose handlers returned a Promise is running (a transfer): the timers wait for it. */
  #running = false;
  #loggedIn = false;
  #idle: InactivityTimer | undefined;
  readonly #cancels: Array<() => void> = [];
  /** #pump is running commands: their replies are held in #held, to go out in one write when it stops. */
  #batching = false;
  /** Replies written by the commands of a batch, not yet given to the socket. */
  #held = "";
  /** The held replies go out when the scheduler's turn ends (#pump waits for a grant). */
  #flushAtTurnEnd = false;
  readonly #flushHeld = (): void => {
    this.#flushAtTurnEnd = false;
    this.#flush();
  };

  constructor(socket: net.Socket, makeState: (control: ControlChannel) => SessionState, hooks: SessionHooks) {
    this.#socket = socket;
    this.#raw = socket;
    this.#hooks = hooks;
    this.#clock = hooks.clock;
    this.state = makeState(this);
    // A reply is one small write answering a request: Nagle's wait for an ACK would only delay it.
    socket.setNoDelay(true);
    socket.once("close", () => this.#onClose());
    socket.on("error", (error) => hooks.log(`${sessionLabel(this.state)}: ${error.message}`));
    socket.on("data", this.#onData);
    socket.on("drain", () => this.#pump());
  }

  // ControlChannel

  get secure(): boolean {
    return this.#secure;
  }

  send(code: string, message: string): void {
    this.#write([`${code} ${replyText(message)}`]);
  }

  startTlsAfterReply(options: TLSSocketOptions): void {
    this.#tlsOptions = options;
  }

  clearTlsAfterReply(): void {
    this.#clearTls = true;
  }

  onAbort(abort: () => void): () => void {
    this.#abort = abort;
    return () => {
      if (this.#abort === abort) this.#abort = undefined;
    };
  }

  onClose(cleanup: () => void): () => void {
    this.#cleanups.add(cleanup);
    return () => this.#cleanups.delete(cleanup);
  }

  // The control loop

  /** Sends the greeting (or whatever opens the session) and starts the idle and login timers. */
  open(lines: readonly string[]): void {
    this.#write(lines);
    this.#armIdle();
    const login = this.#hooks.timeouts.login;
    if (login > 0) {
      this.#cancels.push(
        this.#clock.schedule(login * 1000, () =>
          this.#timedOut(`Login timeout (${seconds(login)})`, "Login timeout exceeded, disconnected"),
        ),
      );
    }
  }

  /**
   * Sends the last lines and closes the connection once they are written, or
   * after TimeoutLinger when the client does not read them.
   */
  end(lines: readonly string[]): void {
    if (this.#ending) return;
    this.#ending = true;
    this.state.closing = true;
    this.#abort?.();
    const socket = this.#socket;
    const held = this.#held;
    this.#held = "";
    socket.end(held + crlf(lines), () => socket.destroy());
    this.#cancels.push(this.#clock.schedule(LINGER_MS, () => this.#raw.destroy()));
  }

  /** Drops the connection without a word (a client that broke the protocol). */
  destroy(): void {
    this.state.closing = true;
    this.#socket.destroy();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#readStopped = false;
    this.#reader.read(chunk, this.#lineEvents);
    if (this.#readStopped) return;
    if (this.#busy && this.#abort !== undefined && this.#reader.takeUnterminatedAbort()) {
      // ABOR sent as urgent data (Python's ftplib): its LF never arrives in the stream.
      this.#abort();
      this.#queue.push("ABOR");
    }
    this.#pump();
  };

  /** What a read holds, event by event; once the session is closing, nothing more of the read counts. */
  readonly #lineEvents: LineSink = {
    line: (text) => {
      if (this.#stopsRead()) return;
      // cmd_loop resets the idle timer for each command read.
      this.#idle?.touch();
      if (this.#busy && this.#abort !== undefined && /^\s*ABOR\s*$/i.test(text)) this.#abort();
      this.#queue.push(text);
    },
    telnet: (reply) => {
      if (this.#stopsRead()) return;
      this.#flush();
      if (!this.#socket.writableEnded) this.#socket.write(reply);
    },
    tooLong: () => {
      if (this.#stopsRead()) return;
      this.#hooks.log(`${sessionLabel(this.state)}: client sent too-long command, ignoring`);
    },
    overflow: () => {
      if (this.#stopsRead()) return;
      this.#hooks.log(`${sessionLabel(this.state)}: client kept sending a too-long command, disconnecting`);
      this.destroy();
      this.#readStopped = true;
    },
  };

  #stopsRead(): boolean {
    if (this.state.closing) this.#readStopped = true;
    return this.#readStopped;
  }

  readonly #onTurn = (): void => {
    this.#awaitingTurn = false;
    this.#hasTurn = true;
    this.#pump();
  };

  /**
   * Runs queued commands while the client keeps up with their replies, each
   * when the scheduler gives this session its turn; pauses reading when the
   * client falls behind.
   *
   * The replies of pipelined commands go out together: one write per batch,
   * not per reply, which was a third of the daemon's CPU at 50 sessions of
   * pipelined NOOP. They are held only while more commands already read wait
   * for a grant, and at most until the scheduler's turn ends; never while the
   * session waits for the client, a transfer, or a turn that waits on its
   * allowance: a lone command's reply is written before the session reads
   * again.
   */
  #pump(): void {
    const scheduler = this.#hooks.scheduler;
    this.#batching = true;
    let waitsForTurnOnly = false;
    // Back-to-back commands share their clock readings: one's end is the next one's start.
    let mark = Number.NaN;
    while (!this.#busy && !this.#awaitingTurn && !this.state.closing && this.#queue.length > 0) {
      if (this.#socket.writableLength > MAX_PENDING_REPLY_BYTES) break;
      if (scheduler !== undefined && !this.#hasTurn && !scheduler.request(this.state.id, this.#onTurn)) {
        this.#awaitingTurn = true;
        waitsForTurnOnly = !scheduler.throttled(this.state.id);
        break;
      }
      this.#hasTurn = false;
      if (scheduler !== undefined && Number.isNaN(mark)) mark = scheduler.now();
      this.#run(this.#queue.shift() as string);
      // What the command cost the loop before it returned (a transfer's later I/O is not CPU the loop owes it).
      if (scheduler !== undefined) {
        const ended = scheduler.now();
        scheduler.charge(this.state.id, ended - mark, ended);
        mark = ended;
      }
    }
    this.#batching = false;
    if (!waitsForTurnOnly) this.#flush();
    else if (this.#held !== "" && !this.#flushAtTurnEnd) {
      this.#flushAtTurnEnd = true;
      scheduler?.atTurnEnd(this.#flushHeld);
    }
    const behind = this.#queue.length >= MAX_QUEUED_LINES || this.#socket.writableLength > MAX_PENDING_REPLY_BYTES;
    if (behind && !this.#readPaused) {
      this.#readPaused = true;
      this.#socket.pause();
    } else if (!behind && this.#readPaused && !this.#busy) {
      this.#readPaused = false;
      this.#socket.resume();
    }
  }

  #run(text: string): void {
    const line = parseCommandLine(text);
    if (line === undefined) {
      this.#write([INVALID_COMMAND]);
      return;
    }
    const result = dispatchCommand(this.state, line, this.#hooks.dispatch);
    if (!(result instanceof Promise)) {
      this.#finish(result);
      return;
    }
    this.#busy = true;
    this.#running = true;
    result.then(
      (settled) => {
        this.#busy = false;
        this.#running = false;
        this.#abort = undefined;
        if (this.#closed || this.#ending) return;
        // The end of a transfer is activity, as src/data.c resets the idle timer on every read and write.
        this.#idle?.touch();
        this.#finish(settled);
        this.#pump();
      },
      (error: unknown) => {
        // dispatch turns handler failures into replies; reaching here is a bug, kept from the client.
        this.#busy = false;
        this.#running = false;
        this.#hooks.log(`${sessionLabel(this.state)}: internal error in ${line.name}: ${messageOf(error)}`);
        this.end(["421 Service not available, closing control connection"]);
      },
    );
  }

  #finish(result: DispatchResult): void {
    if (!this.#loggedIn && this.state.user !== undefined) this.#onLogin();
    if (this.state.closing) {
      this.end(result.lines);
      return;
    }
    this.#write(result.lines);
    const options = this.#tlsOptions;
    if (options !== undefined) {
      this.#tlsOptions = undefined;
      // AUTH's 234 goes out in clear text, before the handshake it announces.
      this.#flush();
      this.#upgrade(options);
    }
    if (this.#clearTls) {
      this.#clearTls = false;
      // CCC's 200 is the last reply under TLS.
      this.#flush();
      this.#downgrade();
    }
  }

  /** AUTH TLS: the rest of the control connection runs over TLS, started by the client's handshake. */
  #upgrade(options: TLSSocketOptions): void {
    const plain = this.#socket;
    plain.off("data", this.#onData);
    plain.removeAllListeners("drain");
    const carrier = new TlsCarrier(plain);
    this.#carrier = carrier;
    const secured = new tls.TLSSocket(carrier, options);
    this.#socket = secured;
    this.#busy = true;
    secured.on("error", (error: Error) => {
      this.#hooks.log(`${sessionLabel(this.state)}: TLS: ${error.message}`);
      secured.destroy();
    });
    secured.once("secure", () => {
      this.#secure = true;
      this.#busy = false;
      this.#pump();
    });
    secured.on("data", this.#onData);
    secured.on("drain", () => this.#pump());
  }

  /** CCC: TLS ends on the control connection; what follows the client's close_notify is clear text. */
  #downgrade(): void {
    const secured = this.#socket;
    const carrier = this.#carrier;
    if (carrier === undefined) return;
    this.#busy = true;
    carrier.clearAfterNextRecord((clearText) => {
      secured.off("data", this.#onData);
      secured.removeAllListeners("drain");
      this.#carrier = undefined;
      this.#secure = false;
      this.#socket = this.#raw;
      this.#raw.on("data", this.#onData);
      this.#raw.on("drain", () => this.#pump());
      this.#busy = false;
      if (clearText.length > 0) this.#onData(clearText);
      else this.#pump();
    });
    secured.end();
  }

  /** core_idle_timeout_cb: while a command (a transfer) runs the control connection is quiet by design, so the timer starts again. */
  #armIdle(): void {
    const idle = this.#hooks.timeouts.idle;
    if (idle <= 0) return;
    this.#idle = new InactivityTimer(this.#clock, idle * 1000, () => {
      if (this.#running) this.#armIdle();
      else this.#timedOut(`Idle timeout (${idle} seconds)`, "Client session idle timeout, disconnected");
    });
  }

  /** setup_env's removal of the login timer, and the session timer auth_post_pass starts. */
  #onLogin(): void {
    this.#loggedIn = true;
    for (const cancel of this.#cancels.splice(0)) cancel();
    const session = this.#hooks.timeouts.session;
    if (session > 0) {
      this.#cancels.push(
        this.#clock.schedule(session * 1000, () =>
          this.#timedOut(`Session Timeout (${session} seconds)`, "FTP session timed out, disconnected"),
        ),
      );
    }
  }

  /** pr_response_send_async(R_421, ...) then pr_session_disconnect: the reply, a log line, the end. */
  #timedOut(reply: string, logLine: string): void {
    if (this.#ending || this.#closed) return;
    this.#hooks.log(`${sessionLabel(this.state)}: ${logLine}`);
    this.end([`421 ${reply}: closing control connection`]);
  }

  #stopTimers(): void {
    this.#idle?.stop();
    for (const cancel of this.#cancels.splice(0)) cancel();
  }

  /**
   * Writes reply lines, or holds them for the batch #pump is running, in
   * order with those held before; once the session is ending (its last lines
   * went out with end()), nothing more.
   */
  #write(lines: readonly string[]): void {
    if (lines.length === 0 || this.#socket.destroyed || this.#socket.writableEnded) return;
    this.#held += crlf(lines);
    if (!this.#batching || this.#held.length >= REPLY_BATCH_BYTES) this.#flush();
  }

  /** Gives the held replies to the socket, in one write. */
  #flush(): void {
    if (this.#held === "") return;
    const text = this.#held;
    this.#held = "";
    if (!this.#socket.destroyed && !this.#socket.writableEnded) this.#socket.write(text);
  }

  #onClose(): void {
    this.#closed = true;
    this.#hooks.scheduler?.forget(this.state.id);
    this.state.closing = true;
    this.#stopTimers();
    this.#abort?.();
    for (const cleanup of this.#cleanups) {
      try {
        cleanup();
      } catch (error) {
        this.#hooks.log(`${sessionLabel(this.state)}: cleanup failed: ${messageOf(error)}`);
      }
    }
    this.#cleanups.clear();
    this.#hooks.closed();
  }
}
