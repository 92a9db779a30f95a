/**
 * The primary and each session worker talk over Node's IPC channel (the one
 * `child_process.fork` opens): requests that get a reply, events that do not,
 * and sockets handed over with an event (SCM_RIGHTS under Node's `send`).
 *
 * Messages are plain JSON objects, told apart by `kind`:
 *   { kind: "request", seq, type, body }
 *   { kind: "reply", seq, ok: true, body } | { kind: "reply", seq, ok: false, failure }
 *   { kind: "event", type, body }
 * Anything else on the channel is not ours and is ignored (Node keeps its own
 * cluster messages off the `message` event already).
 *
 * A handler's DsoError crosses as a RemoteFailure and is raised again on the
 * asking side as a DsoError with the same code, errno and lines, so a worker's
 * refusal reads exactly as the same refusal made in the primary.
 */
import net from "node:net";
import { DsoError, Errno, ErrorCodes, isDsoError, messageOf } from "../errors.js";
import type { ErrnoText, ErrorCode } from "../errors.js";
import { systemClock } from "../system/clock.js";
import type { Clock } from "../system/clock.js";

/** One side of the parent/child IPC channel: a ChildProcess (primary side) or `process` (worker side). */
export interface IpcEndpoint {
  send(
    message: unknown,
    handle?: net.Socket,
    options?: { keepOpen?: boolean },
    callback?: (error: Error | null) => void,
  ): boolean;
  on(event: "message", listener: (message: unknown, handle?: unknown) => void): unknown;
  on(event: "disconnect", listener: () => void): unknown;
}

/** An error as it crosses the channel: a DsoError's code, errno and lines, or another error's message. */
export interface RemoteFailure {
  code?: string;
  message: string;
  lines?: string[];
  errno?: string;
}

/**
 * A handler's body is whatever the other side sent: a handler states the type
 * it expects, and `never` here lets any such handler be registered without `any`.
 */
export type BodyHandler<R> = (body: never) => R;

export interface IpcPeerOptions {
  /** Times the requests that have a `timeoutMs` (tests inject one). */
  readonly clock?: Clock;
  /** Names the other side in DSO_ERR_WORKER_GONE/TIMEOUT messages: `worker 2 (pid 4242)`. */
  readonly name?: string;
}

type Message =
  | { readonly kind: "request"; readonly seq: number; readonly type: string; readonly body: unknown }
  | { readonly kind: "reply"; readonly seq: number; readonly ok: true; readonly body: unknown }
  | { readonly kind: "reply"; readonly seq: number; readonly ok: false; readonly failure: RemoteFailure }
  | { readonly kind: "event"; readonly type: string; readonly body: unknown };

interface Pending {
  readonly type: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly cancelTimer: () => void;
}

export class IpcPeer {
  readonly #endpoint: IpcEndpoint;
  readonly #clock: Clock;
  readonly #name: string;
  readonly #pending = new Map<number, Pending>();
  readonly #requestHandlers = new Map<string, BodyHandler<unknown>>();
  readonly #eventHandlers = new Map<string, (body: never, handle: net.Socket | undefined) => void>();
  #nextSeq = 1;
  #closed = false;

  constructor(endpoint: IpcEndpoint, options: IpcPeerOptions = {}) {
    this.#endpoint = endpoint;
    this.#clock = options.clock ?? systemClock;
    this.#name = options.name ?? "the other process";
    endpoint.on("message", (message, handle) => this.#receive(message, handle));
    endpoint.on("disconnect", () => this.close());
  }

  /**
   * Resolves with the handler's value; rejects with the remote DsoError (same
   * code and lines), with DSO_ERR_WORKER_GONE when the peer disconnects first,
   * or with DSO_ERR_WORKER_TIMEOUT after `timeoutMs` (none when absent).
   */
  request(type: string, body: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#gone(type));
    const seq = this.#nextSeq++;
    return new Promise((resolve, reject) => {
      const { timeoutMs } = options;
      const cancelTimer =
        timeoutMs === undefined
          ? () => {}
          : this.#clock.schedule(timeoutMs, () => {
              this.#pending.delete(seq);
              reject(
                new DsoError(
                  ErrorCodes.WORKER_TIMEOUT,
                  `${this.#name} did not answer "${type}" within ${timeoutMs} ms`,
                ),
              );
            });
      this.#pending.set(seq, { type, resolve, reject, cancelTimer });
      try {
        // A callback, always: without one a send on a closed channel is an 'error' event nobody listens to.
        this.#endpoint.send({ kind: "request", seq, type, body }, undefined, undefined, (error) => {
          if (error !== null) this.#settle(seq)?.reject(this.#gone(type));
        });
      } catch (error) {
        // A body JSON cannot carry (a BigInt, a cycle) throws here, before anything is sent.
        this.#settle(seq);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Sends an event, with a socket when given (`keepOpen`: the sender keeps its copy open). */
  event(type: string, body: unknown, handle?: net.Socket, options?: { keepOpen?: boolean }): void {
    if (this.#closed) return;
    // A peer that is gone misses the event; its disconnect is handled once, by close().
    this.#endpoint.send({ kind: "event", type, body }, handle, options, () => {});
  }

  /** A throw (or rejection) answers the request with it: a DsoError keeps its code and lines. */
  onRequest(type: string, handler: BodyHandler<unknown>): void {
    this.#requestHandlers.set(type, handler);
  }

  onEvent(type: string, handler: (body: never, handle: net.Socket | undefined) => void): void {
    this.#eventHandlers.set(type, handler);
  }

  /** Rejects every pending request with DSO_ERR_WORKER_GONE; later requests reject at once, messages are ignored. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [seq, pending] of [...this.#pending]) {
      this.#settle(seq);
      pending.reject(this.#gone(pending.type));
    }
  }

  #gone(type: string): DsoError {
    return new DsoError(ErrorCodes.WORKER_GONE, `${this.#name} is gone: no answer to "${type}"`);
  }

  #settle(seq: number): Pending | undefined {
    const pending = this.#pending.get(seq);
    this.#pending.delete(seq);
    pending?.cancelTimer();
    return pending;
  }

  #receive(value: unknown, handle: unknown): void {
    const message = asMessage(value);
    if (message === undefined || this.#closed) return;
    switch (message.kind) {
      case "request":
        void this.#answer(message.seq, message.type, message.body);
        return;
      case "reply": {
        const pending = this.#settle(message.seq);
        if (pending === undefined) return;
        if (message.ok) pending.resolve(message.body);
        else pending.reject(fromRemoteFailure(message.failure));
        return;
      }
      case "event": {
        const handler = this.#eventHandlers.get(message.type);
        handler?.(message.body as never, handle instanceof net.Socket ? handle : undefined);
        return;
      }
    }
  }

  async #answer(seq: number, type: string, body: unknown): Promise<void> {
    const handler = this.#requestHandlers.get(type);
    let reply: Message;
    try {
      if (handler === undefined) throw new Error(`no handler for the request "${type}"`);
      reply = { kind: "reply", seq, ok: true, body: await handler(body as never) };
    } catch (error) {
      reply = { kind: "reply", seq, ok: false, failure: toRemoteFailure(error) };
    }
    if (this.#closed) return;
    try {
      this.#endpoint.send(reply, undefined, undefined, () => {});
    } catch (error) {
      // A value JSON cannot carry: the asking side gets why, rather than waiting for a reply that never comes.
      const failure = toRemoteFailure(error);
      this.#endpoint.send({ kind: "reply", seq, ok: false, failure }, undefined, undefined, () => {});
    }
  }
}

/**
 * The worker's side of the channel: its own `process`, whose `send` exists only
 * when it was forked with an IPC channel (DSO_ERR_WORKER_START otherwise).
 */
export function parentEndpoint(proc: NodeJS.Process = process): IpcEndpoint {
  if (proc.send === undefined) {
    throw new DsoError(ErrorCodes.WORKER_START, "a session worker must be started by dsod (it has no IPC channel)");
  }
  return proc as IpcEndpoint;
}

/** What crosses the channel for a thrown value: a DsoError's code, errno and lines; another error's message. */
export function toRemoteFailure(error: unknown): RemoteFailure {
  if (isDsoError(error)) {
    return {
      code: error.code,
      message: error.message,
      lines: [...error.lines],
      ...(error.errno !== undefined && { errno: error.errno }),
    };
  }
  return { message: messageOf(error) };
}

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));
const ERRNO_TEXTS: ReadonlySet<string> = new Set(Object.values(Errno));

/** The error a RemoteFailure stands for: a DsoError with the same code, errno and lines when it was one. */
export function fromRemoteFailure(failure: RemoteFailure): Error {
  const { code, message, lines, errno } = failure;
  if (code === undefined || !CODES.has(code)) return new Error(message);
  // DsoError.lines is [message] when it has no detail lines; anything else was its details.
  const details = lines === undefined || (lines.length === 1 && lines[0] === message) ? [] : lines;
  return new DsoError(code as ErrorCode, message, {
    details,
    ...(errno !== undefined && ERRNO_TEXTS.has(errno) && { errno: errno as ErrnoText }),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isFailure(value: unknown): value is RemoteFailure {
  return (
    isRecord(value) &&
    typeof value.message === "string" &&
    (value.code === undefined || typeof value.code === "string") &&
    (value.errno === undefined || typeof value.errno === "string") &&
    (value.lines === undefined || (Array.isArray(value.lines) && value.lines.every((l) => typeof l === "string")))
  );
}

/** One of our messages, or undefined for anything else the channel carries. */
function asMessage(value: unknown): Message | undefined {
  if (!isRecord(value)) return undefined;
  const { kind, seq, type } = value;
  const numbered = typeof seq === "number" && Number.isSafeInteger(seq);
  if (kind === "request" && numbered && typeof type === "string") {
    return { kind, seq, type, body: value.body };
  }
  if (kind === "event" && typeof type === "string") return { kind, type, body: value.body };
  if (kind === "reply" && numbered) {
    if (value.ok === true) return { kind, seq, ok: true, body: value.body };
    if (value.ok === false && isFailure(value.failure)) return { kind, seq, ok: false, failure: value.failure };
  }
  return undefined;
}
