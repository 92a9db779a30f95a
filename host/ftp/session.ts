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
 */
import type net from "node:net";
import tls from "node:tls";
import type { SecureContext } from "node:tls";
import type { ControlChannel, SessionState } from "../modules/module-api.js";
import { ControlLineReader, parseCommandLine } from "./command-line.js";
import { dispatchCommand } from "./dispatch.js";
import type { DispatchOptions, DispatchResult } from "./dispatch.js";

/** cmd_loop's reply to a line that makes no command (empty, or leading white space). */
const INVALID_COMMAND = "500 Invalid command: try being more creative";

/** Lines read ahead of the command in progress; past this the socket is not read until they are handled. */
export const MAX_QUEUED_LINES = 64;

/** Reply bytes waiting for the client; past this no further command runs, and nothing is read, until they drain. */
export const MAX_PENDING_REPLY_BYTES = 64 * 1024;

export interface SessionHooks {
  readonly dispatch: DispatchOptions;
  /** TimeoutIdle in seconds (0: off); read when a command ends, so it may change. */
  readonly idleTimeoutSeconds: () => number;
  readonly log: (message: string) => void;
  /** Runs once the connection has closed, for any reason. */
  readonly closed: () => void;
}

function crlf(lines: readonly string[]): string {
  let text = "";
  for (const line of lines) text += `${line}\r\n`;
  return text;
}

export class ControlSession implements ControlChannel {
  readonly state: SessionState;
  readonly #hooks: SessionHooks;
  #socket: net.Socket;
  /** The TCP connection itself: TimeoutIdle watches it, under TLS too. */
  readonly #raw: net.Socket;
  #secure = false;
  readonly #reader = new ControlLineReader();
  readonly #queue: string[] = [];
  #busy = false;
  #tlsContext: SecureContext | undefined;
  #abort: (() => void) | undefined;
  readonly #cleanups = new Set<() => void>();
  #closed = false;
  #ending = false;
  #readPaused = false;

  constructor(socket: net.Socket, makeState: (control: ControlChannel) => SessionState, hooks: SessionHooks) {
    this.#socket = socket;
    this.#raw = socket;
    this.#hooks = hooks;
    this.state = makeState(this);
    socket.once("close", () => this.#onClose());
    socket.on("error", (error) => hooks.log(`session ${this.state.id}: ${error.message}`));
    socket.on("data", this.#onData);
    socket.on("drain", () => this.#pump());
  }

  // ControlChannel

  get secure(): boolean {
    return this.#secure;
  }

  send(code: string, message: string): void {
    this.#write([`${code} ${message}`]);
  }

  startTlsAfterReply(context: SecureContext): void {
    this.#tlsContext = context;
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

  /** Sends the greeting (or whatever opens the session) and starts the idle timer. */
  open(lines: readonly string[]): void {
    this.#write(lines);
    this.#armIdleTimer();
  }

  /** Sends the last lines and closes the connection once they are written. */
  end(lines: readonly string[]): void {
    if (this.#ending) return;
    this.#ending = true;
    this.state.closing = true;
    this.#abort?.();
    const socket = this.#socket;
    socket.end(crlf(lines), () => socket.destroy());
  }

  /** Drops the connection without a word (a client that broke the protocol). */
  destroy(): void {
    this.state.closing = true;
    this.#socket.destroy();
  }

  readonly #onData = (chunk: Buffer): void => {
    for (const event of this.#reader.push(chunk)) {
      if (this.state.closing) return;
      switch (event.kind) {
        case "telnet":
          this.#socket.write(event.reply);
          break;
        case "too-long":
          this.#hooks.log(`session ${this.state.id}: client sent too-long command, ignoring`);
          break;
        case "overflow":
          this.#hooks.log(`session ${this.state.id}: client kept sending a too-long command, disconnecting`);
          this.destroy();
          return;
        case "line":
          if (this.#busy && this.#abort !== undefined && /^\s*ABOR\s*$/i.test(event.text)) this.#abort();
          this.#queue.push(event.text);
          break;
      }
    }
    this.#pump();
  };

  /** Runs queued commands while the client keeps up with their replies; pauses reading when it does not. */
  #pump(): void {
    while (!this.#busy && !this.state.closing && this.#queue.length > 0) {
      if (this.#socket.writableLength > MAX_PENDING_REPLY_BYTES) break;
      this.#run(this.#queue.shift() as string);
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
    // While a transfer runs the control connection is quiet by design: TimeoutIdle waits.
    this.#raw.setTimeout(0);
    result.then(
      (settled) => {
        this.#busy = false;
        this.#abort = undefined;
        if (this.#closed || this.#ending) return;
        this.#finish(settled);
        this.#armIdleTimer();
        this.#pump();
      },
      (error: unknown) => {
        // dispatch turns handler failures into replies; reaching here is a bug, kept from the client.
        this.#busy = false;
        this.#hooks.log(`session ${this.state.id}: internal error in ${line.name}: ${error instanceof Error ? error.message : String(error)}`);
        this.end(["421 Service not available, closing control connection"]);
      },
    );
  }

  #finish(result: DispatchResult): void {
    if (this.state.closing) {
      this.end(result.lines);
      return;
    }
    this.#write(result.lines);
    const context = this.#tlsContext;
    if (context !== undefined) {
      this.#tlsContext = undefined;
      this.#upgrade(context);
    }
  }

  /** AUTH TLS: the rest of the control connection runs over TLS, started by the client's handshake. */
  #upgrade(context: SecureContext): void {
    const plain = this.#socket;
    plain.off("data", this.#onData);
    plain.removeAllListeners("drain");
    const secured = new tls.TLSSocket(plain, { isServer: true, secureContext: context });
    this.#socket = secured;
    this.#busy = true;
    secured.on("error", (error) => {
      this.#hooks.log(`session ${this.state.id}: TLS: ${error.message}`);
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

  #armIdleTimer(): void {
    const idle = this.#hooks.idleTimeoutSeconds();
    this.#raw.setTimeout(idle > 0 ? idle * 1000 : 0);
    if (idle > 0 && this.#raw.listenerCount("timeout") === 0) {
      this.#raw.on("timeout", () => {
        const seconds = this.#hooks.idleTimeoutSeconds();
        this.end([`421 Idle timeout (${seconds} seconds): closing control connection`]);
      });
    }
  }

  #write(lines: readonly string[]): void {
    if (lines.length > 0 && !this.#socket.destroyed) this.#socket.write(crlf(lines));
  }

  #onClose(): void {
    this.#closed = true;
    this.state.closing = true;
    this.#abort?.();
    for (const cleanup of this.#cleanups) {
      try {
        cleanup();
      } catch (error) {
        this.#hooks.log(`session ${this.state.id}: cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.#cleanups.clear();
    this.#hooks.closed();
  }
}
