/**
 * The bytes of a transfer, moved between a file and the data connection as
 * proftpd's xfer_retr/xfer_stor loops move them: read a buffer, write it,
 * repeat, with nothing kept but the buffers in flight. Large buffers reused
 * from transfer to transfer (no allocation, hence no garbage, per chunk), one
 * socket write in flight while the next chunk is read, and uploads gathered
 * into one writev per batch of socket reads: on loopback the cost of a
 * transfer is then the kernel's copying, as it is for proftpd.
 *
 * The copies settle only once nothing is in flight any more, so the caller
 * may close the file as soon as they do. ABOR, TimeoutStalled and the like
 * stop a copy through its AbortSignal: the socket is destroyed and the copy
 * rejects with the signal's reason.
 */
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Duplex } from "node:stream";
import { finished } from "node:stream/promises";

/**
 * Download reads: every read is a trip to libuv's thread pool and every
 * chunk a socket write, so fewer, larger chunks are what brings a loopback
 * RETR near proftpd's sendfile. Measured on the bench machine (medians of 10
 * interleaved 1 GB RETRs): 512 KiB 0.86x proftpd's MB/s, 1 MiB 0.89x, 4 MiB
 * 1.1x. Each download holds two buffers; the first downloads share
 * READ_BUDGET_BYTES, and once it is taken a download reads 1 MiB at a time
 * (50 parallel downloads: four at 4 MiB, the rest at 1 MiB, 124 MiB in all,
 * inside the 200 MB the issue allows for dsod's RSS then).
 */
export const CHUNK_MAX_BYTES = 4 * 1024 * 1024;
const CHUNK_MIN_BYTES = 1024 * 1024;
const READ_BUDGET_BYTES = 32 * 1024 * 1024;

/** An upload stops reading the socket while this much waits behind the write in flight. */
const RECEIVE_PAUSE_BYTES = 1024 * 1024;

/** Bytes of read buffers downloads hold now. */
let readBytesInUse = 0;

/** The chunk size for a download starting now: the largest whose two buffers fit what the budget has left, 1 MiB at least. */
export function chunkSize(): number {
  let size = CHUNK_MAX_BYTES;
  while (size > CHUNK_MIN_BYTES && readBytesInUse + 2 * size > READ_BUDGET_BYTES) size /= 2;
  return size;
}

/** Read buffers kept for the next downloads, by size, up to 8 MiB: a download at a time then allocates nothing. */
const IDLE_BYTES_MAX = 2 * CHUNK_MAX_BYTES;
const idleBuffers = new Map<number, Buffer[]>();
let idleBytes = 0;

function takeBuffer(size: number): Buffer {
  readBytesInUse += size;
  const idle = idleBuffers.get(size)?.pop();
  if (idle === undefined) return Buffer.allocUnsafeSlow(size);
  idleBytes -= size;
  return idle;
}

function returnBuffer(buffer: Buffer): void {
  readBytesInUse -= buffer.length;
  if (idleBytes + buffer.length > IDLE_BYTES_MAX) return;
  idleBytes += buffer.length;
  const idle = idleBuffers.get(buffer.length);
  if (idle === undefined) idleBuffers.set(buffer.length, [buffer]);
  else idle.push(buffer);
}

/**
 * A file's bytes from `start` on. As a Readable it serves any consumer;
 * sendOverData instead reads it with `readInto`, into buffers of its own.
 * Either way the handle is closed when the source is destroyed (which a
 * Readable does by itself once read to the end).
 */
export class FileSource extends Readable {
  readonly #handle: FileHandle;
  #position: number;

  constructor(handle: FileHandle, start: number) {
    super({ highWaterMark: CHUNK_MIN_BYTES });
    this.#handle = handle;
    this.#position = start;
  }

  /** Reads the next chunk into `buffer`: a view of the bytes read, or undefined at the end of the file. */
  async readInto(buffer: Buffer): Promise<Buffer | undefined> {
    const { bytesRead } = await this.#handle.read(buffer, 0, buffer.length, this.#position);
    if (bytesRead === 0) return undefined;
    this.#position += bytesRead;
    return buffer.subarray(0, bytesRead);
  }

  override _read(): void {
    this.readInto(Buffer.allocUnsafe(CHUNK_MIN_BYTES)).then(
      (chunk) => this.push(chunk ?? null),
      (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))),
    );
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#handle.close().then(
      () => done(error),
      (closeError: unknown) =>
        done(error ?? (closeError instanceof Error ? closeError : new Error(String(closeError)))),
    );
  }
}

export interface CopyOptions {
  /** Called with each chunk's size on the wire as it moves: the transfer's count and TimeoutStalled's activity. */
  readonly moved: (bytes: number) => void;
  /** Stops the copy: the socket is destroyed and the copy rejects with the signal's reason. */
  readonly signal: AbortSignal;
}

/** Converts each chunk (TYPE A); `end` gives what a converter still holds when the data ends. */
export interface Converter {
  push(chunk: Buffer): Buffer;
  end?(): Buffer;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Writes `chunk`; resolves once the socket has handed it on (to the kernel, or to TLS). */
function write(socket: Duplex, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(chunk, (error) => (error === undefined || error === null ? resolve() : reject(error)));
  });
}

/** Resolves or rejects like `promise`, and rejects with the signal's reason once it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(asError(signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(asError(signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(asError(error));
      },
    );
  });
}

/** The chunks of any Readable, strings as UTF-8. */
function chunksOf(source: Readable): () => Promise<Buffer | undefined> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  return async () => {
    const next = await iterator.next();
    if (next.done === true) return undefined;
    return typeof next.value === "string" ? Buffer.from(next.value) : next.value;
  };
}

/**
 * Sends `source` over `socket` and ends it (close_notify first under TLS),
 * resolving once everything is handed on. A FileSource is read into two
 * buffers in turn: one being written while the other is read into, each read
 * into again only once its write is done. `convert` (TYPE A) may return a
 * new buffer; `moved` counts what goes on the wire.
 */
export async function sendChunks(
  socket: Duplex,
  source: Readable,
  convert: Converter | undefined,
  options: CopyOptions,
): Promise<void> {
  const { signal } = options;
  const destroy = (): void => void socket.destroy();
  signal.addEventListener("abort", destroy, { once: true });
  const fromFile = source instanceof FileSource;
  const size = chunkSize();
  const buffers = fromFile ? [takeBuffer(size), takeBuffer(size)] : [];
  let turn = 0;
  const next = fromFile ? () => source.readInto(buffers[turn++ % 2] as Buffer) : chunksOf(source);
  let reading: Promise<Buffer | undefined> | undefined;
  let writing: Promise<void> | undefined;
  try {
    for (;;) {
      reading = next();
      const chunk = await abortable(reading, signal);
      if (chunk === undefined) break;
      const out = convert === undefined ? chunk : convert.push(chunk);
      if (out.length === 0) continue;
      // The buffer read into next is the one this write waits on: it is free only once that is done.
      await writing;
      if (signal.aborted) throw asError(signal.reason);
      options.moved(out.length);
      writing = write(socket, out);
      // A failure is rethrown where the write is awaited; until then it must not count as unhandled.
      writing.catch(() => {});
    }
    await writing;
    await finished(socket.end(), { readable: false, signal });
  } catch (error) {
    socket.destroy();
    // No buffer goes back to the pool while a file read into it or a write from it is still in flight
    // (a read from any other Readable may never end: the caller destroys that source).
    await Promise.allSettled((fromFile ? [reading, writing] : [writing]).filter((pending) => pending !== undefined));
    throw signal.aborted ? asError(signal.reason) : error;
  } finally {
    signal.removeEventListener("abort", destroy);
    for (const buffer of buffers) returnBuffer(buffer);
  }
}

/** Writes all of `chunks` at `position` (undefined: where the file stands, as O_APPEND wants), short writes continued. */
async function writeAll(handle: FileHandle, chunks: readonly Buffer[], position: number | undefined): Promise<number> {
  let total = 0;
  let rest = chunks;
  for (;;) {
    const { bytesWritten } = await handle.writev(
      rest as Buffer[],
      position === undefined ? undefined : position + total,
    );
    total += bytesWritten;
    let skip = bytesWritten;
    let done = 0;
    while (done < rest.length && skip >= (rest[done] as Buffer).length) skip -= (rest[done++] as Buffer).length;
    if (done === rest.length) return total;
    rest = [(rest[done] as Buffer).subarray(skip), ...rest.slice(done + 1)];
  }
}

export interface ReceiveCopyOptions extends CopyOptions {
  /** Where the first byte goes in the file; undefined: where the handle stands (after O_APPEND, the end). */
  readonly start?: number;
  /**
   * Checked as data arrives: when it holds, what arrived is still written and
   * then the copy rejects with `stopReason` (proftpd's poll_ctrl, which
   * notices a closed control connection between one read and the next).
   */
  readonly stopWhen?: () => boolean;
  readonly stopReason?: unknown;
}

/**
 * Receives everything the client sends over `socket` into `handle`,
 * resolving once the client has ended the connection and all is written.
 * Whatever arrives is written as soon as no write is in flight; what arrives
 * meanwhile is gathered into the next writev, and the socket is paused while
 * too much waits. (Holding the first chunk back until the end of the event
 * loop's turn, to write more at once, measured slower.) A connection closed
 * without an end (a reset) rejects, as ABOR does, but what had arrived is
 * written first, as proftpd writes each read before it reads again.
 */
export function receiveChunks(
  socket: Duplex,
  handle: FileHandle,
  convert: Converter | undefined,
  options: ReceiveCopyOptions,
): Promise<void> {
  const { signal } = options;
  return new Promise((resolve, reject) => {
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let writing = false;
    let writeFailed = false;
    let ended = false;
    let stopping = false;
    let failure: { readonly error: unknown } | undefined;
    let settled = false;
    let written = 0;

    const cleanup = (): void => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onClose);
      socket.off("error", onError);
      signal.removeEventListener("abort", onAbort);
    };
    /** Settles once no write is in flight: the caller closes the file next. */
    const settle = (): void => {
      if (settled || writing) return;
      settled = true;
      cleanup();
      if (failure === undefined) resolve();
      else reject(asError(failure.error));
    };
    const fail = (error: unknown): void => {
      failure ??= { error };
      socket.destroy();
      flush();
    };
    const flush = (): void => {
      if (writing) return;
      if (batchBytes === 0 || writeFailed) {
        if (failure !== undefined || ended) settle();
        else if (stopping) fail(options.stopReason);
        return;
      }
      const chunks = batch;
      batch = [];
      batchBytes = 0;
      writing = true;
      writeAll(handle, chunks, options.start === undefined ? undefined : options.start + written).then(
        (bytes) => {
          written += bytes;
          writing = false;
          flush();
          if (failure === undefined && !ended && batchBytes < RECEIVE_PAUSE_BYTES) socket.resume();
        },
        (error: unknown) => {
          writing = false;
          writeFailed = true;
          fail(error);
        },
      );
    };
    const onData = (chunk: Buffer): void => {
      options.moved(chunk.length);
      const out = convert === undefined ? chunk : convert.push(chunk);
      if (out.length > 0) {
        batch.push(out);
        batchBytes += out.length;
      }
      if (options.stopWhen?.() === true) stopping = true;
      if (writing && batchBytes >= RECEIVE_PAUSE_BYTES) socket.pause();
      flush();
    };
    const onEnd = (): void => {
      ended = true;
      const tail = convert?.end?.();
      if (tail !== undefined && tail.length > 0) {
        batch.push(tail);
        batchBytes += tail.length;
      }
      flush();
    };
    // A close without an end: the client reset the connection, or it was destroyed here.
    const onClose = (): void => {
      if (!ended) fail(new Error("data connection closed before the end of the data"));
    };
    const onError = (error: Error): void => fail(error);
    const onAbort = (): void => fail(signal.reason);

    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onClose);
    socket.on("error", onError);
    socket.resume();
  });
}
