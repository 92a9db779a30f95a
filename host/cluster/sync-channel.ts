/**
 * The synchronous channel from a session worker to the primary, for what a
 * guest's host call must have before it returns (the shared store, the
 * scoreboard at a login check): a socketpair the primary opens as the worker's
 * stdio index 4. The worker writes a request frame with `writeSync` and blocks
 * in `readSync` until the reply frame is in; the primary answers from its event
 * loop. One request is in flight at a time per worker, so frames need no ids.
 *
 * Spike 15 §3 measured this way at 9 µs a call idle and 37–40 µs p99, up to
 * ~75 µs when the cores are busy, and as long as the primary is busy on top:
 * the primary's handlers must stay short. The worker's end of a stdio 'pipe'
 * is a blocking AF_UNIX socket (/proc/self/fdinfo/4 showed no O_NONBLOCK).
 *
 * A frame is a 4-byte little-endian length, then that many bytes of UTF-8
 * JSON. A request is `{ type, body }`; a reply `{ ok: true, value }` or
 * `{ ok: false, failure }` (a RemoteFailure, raised again as in ipc.ts).
 */
import fs from "node:fs";
import type net from "node:net";
import type stream from "node:stream";
import { DsoError, ErrorCodes, messageOf } from "../errors.js";
import { fromRemoteFailure, toRemoteFailure } from "./ipc.js";
import type { BodyHandler, RemoteFailure } from "./ipc.js";

const HEADER_BYTES = 4;
/** What one readSync asks for: a store reply of a few bytes comes in one call, a big value in several. */
const READ_CHUNK_BYTES = 64 * 1024;
/** Waits between reads of a non-blocking fd that has nothing yet: short at first, never a busy loop. */
const FIRST_WAIT_MS = 0.05;
const LONGEST_WAIT_MS = 1;

/** The synchronous file calls the worker's side makes; `fs` in the daemon, a fake in unit tests. */
export interface SyncIo {
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: null): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  /** Blocks the thread for `ms` (a non-blocking fd had no data yet). */
  wait(ms: number): void;
}

const nodeIo: SyncIo = {
  readSync: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  writeSync: (fd, buffer, offset, length) => fs.writeSync(fd, buffer, offset, length),
  wait: (ms) => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms),
};

/** A frame holding `message` as JSON. */
export function encodeFrame(message: unknown): Buffer {
  const json = JSON.stringify(message);
  const length = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32LE(length, 0);
  frame.write(json, HEADER_BYTES, "utf8");
  return frame;
}

/**
 * Cuts a byte stream into frame payloads. Chunks are only joined when a frame
 * is taken, so a value of several MB read 64 KiB at a time is copied once.
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The payload length of the frame being read; undefined until its header is in. */
  #need: number | undefined;

  /** The payloads `chunk` completes, in order (the decoder keeps references to the chunks it is given). */
  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const payloads: Buffer[] = [];
    for (;;) {
      if (this.#need === undefined) {
        if (this.#buffered < HEADER_BYTES) break;
        this.#need = this.#take(HEADER_BYTES).readUInt32LE(0);
      }
      if (this.#buffered < this.#need) break;
      payloads.push(this.#take(this.#need));
      this.#need = undefined;
    }
    return payloads;
  }

  /** True while part of a frame is in. */
  get partial(): boolean {
    return this.#buffered > 0 || this.#need !== undefined;
  }

  #take(bytes: number): Buffer {
    const [only] = this.#chunks;
    const all = this.#chunks.length === 1 && only !== undefined ? only : Buffer.concat(this.#chunks, this.#buffered);
    const rest = all.subarray(bytes);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered -= bytes;
    return all.subarray(0, bytes);
  }
}

type Reply = { readonly ok: true; readonly value?: unknown } | { readonly ok: false; readonly failure: RemoteFailure };

/** The worker's side: one blocking call at a time over its end of the socketpair. */
export class SyncChannel {
  readonly #fd: number;
  readonly #io: SyncIo;
  readonly #scratch = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  /** Why the channel is unusable (the primary went away, or a frame broke); every call then throws it. */
  #broken: string | undefined;

  constructor(fd: number, io: SyncIo = nodeIo) {
    this.#fd = fd;
    this.#io = io;
  }

  /**
   * The primary's answer to `type` with `body`. Blocks until it is in; throws
   * the primary's error (a DsoError keeps its code and lines), or DsoError
   * DSO_ERR_WORKER_GONE when the primary is gone.
   */
  call(type: string, body: unknown): unknown {
    if (this.#broken !== undefined) throw this.#gone();
    this.#write(encodeFrame({ type, body }));
    const reply = this.#parse(this.#read());
    if (!reply.ok) throw fromRemoteFailure(reply.failure);
    return reply.value;
  }

  #write(frame: Buffer): void {
    let written = 0;
    let waitMs = FIRST_WAIT_MS;
    while (written < frame.length) {
      try {
        written += this.#io.writeSync(this.#fd, frame, written, frame.length - written);
        waitMs = FIRST_WAIT_MS;
      } catch (error) {
        waitMs = this.#retryOrBreak(error, waitMs);
      }
    }
  }

  #read(): Buffer {
    const decoder = new FrameDecoder();
    let waitMs = FIRST_WAIT_MS;
    for (;;) {
      let got: number;
      try {
        got = this.#io.readSync(this.#fd, this.#scratch, 0, this.#scratch.length, null);
      } catch (error) {
        waitMs = this.#retryOrBreak(error, waitMs);
        continue;
      }
      if (got === 0) {
        this.#broken = "the primary closed the channel";
        throw this.#gone();
      }
      waitMs = FIRST_WAIT_MS;
      // The scratch buffer is read into again: the decoder keeps a copy.
      const payloads = decoder.push(Buffer.from(this.#scratch.subarray(0, got)));
      const [payload] = payloads;
      if (payload !== undefined) {
        if (payloads.length > 1 || decoder.partial) this.#breakOn("more than one reply came in");
        return payload;
      }
    }
  }

  /** A non-blocking fd with nothing to give waits and tries again; any other error means the primary is gone. */
  #retryOrBreak(error: unknown, waitMs: number): number {
    const code = (error as { code?: unknown } | undefined)?.code;
    if (code === "EAGAIN" || code === "EWOULDBLOCK" || code === "EINTR") {
      this.#io.wait(waitMs);
      return Math.min(waitMs * 2, LONGEST_WAIT_MS);
    }
    this.#broken = messageOf(error);
    throw this.#gone();
  }

  #parse(payload: Buffer): Reply {
    let reply: unknown;
    try {
      reply = JSON.parse(payload.toString("utf8"));
    } catch {
      return this.#breakOn("a reply is not JSON");
    }
    if (typeof reply !== "object" || reply === null || !("ok" in reply)) return this.#breakOn("a reply has no `ok`");
    return reply as Reply;
  }

  #breakOn(why: string): never {
    this.#broken = why;
    throw this.#gone();
  }

  #gone(): DsoError {
    return new DsoError(ErrorCodes.WORKER_GONE, `the primary is gone: ${this.#broken ?? "no reply"}`);
  }
}

/**
 * The primary's side: answers each request frame on `stream` (its end of a
 * worker's socketpair) with `handlers[type](body)`. A handler's throw, or a
 * type without a handler, is the reply: the worker is blocked until one comes.
 */
export function serveSyncChannel(
  stream: net.Socket | stream.Duplex,
  handlers: Readonly<Record<string, BodyHandler<unknown>>>,
): void {
  const decoder = new FrameDecoder();
  stream.on("data", (chunk: Buffer) => {
    for (const payload of decoder.push(chunk)) stream.write(replyFrame(payload, handlers));
  });
  // The worker's death shows as its exit, which the pool handles; a reset here is the same event.
  stream.on("error", () => {});
}

function replyFrame(payload: Buffer, handlers: Readonly<Record<string, BodyHandler<unknown>>>): Buffer {
  try {
    const request = JSON.parse(payload.toString("utf8")) as { type?: unknown; body?: unknown } | null;
    const type = typeof request?.type === "string" ? request.type : "";
    const handler = Object.hasOwn(handlers, type) ? handlers[type] : undefined;
    if (handler === undefined) throw new Error(`no handler for the sync call "${type}"`);
    return encodeFrame({ ok: true, value: handler(request?.body as never) });
  } catch (error) {
    return encodeFrame({ ok: false, failure: toRemoteFailure(error) });
  }
}
