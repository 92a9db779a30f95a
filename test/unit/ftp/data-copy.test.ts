import { once } from "node:events";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Duplex, PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FromCrlf, ToCrlf } from "../../../host/ftp/ascii.js";
import { CHUNK_MAX_BYTES, FileSource, chunkSize, receiveChunks, sendChunks } from "../../../host/ftp/data-copy.js";
import { readAll } from "./data-helpers.js";

const cleanups: (() => unknown)[] = [];
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "dsod-copy-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Bytes that differ from chunk to chunk, so a buffer read into too early shows. */
function pattern(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + Math.floor(i / 4093)) & 0xff;
  return bytes;
}

async function fileWith(name: string, bytes: Buffer): Promise<FileHandle> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return open(file, "r");
}

/** A connected pair on loopback: the server's end (the data connection) and the client's. */
async function pair(): Promise<{ server: net.Socket; client: net.Socket }> {
  const listener = net.createServer();
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const accepted = once(listener, "connection") as Promise<[net.Socket]>;
  const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
  const [server] = await accepted;
  await once(client, "connect");
  listener.close();
  cleanups.push(() => {
    server.destroy();
    client.destroy();
  });
  return { server, client };
}

function copyOptions(signal = new AbortController().signal): {
  moved: (n: number) => void;
  signal: AbortSignal;
  total: () => number;
} {
  let total = 0;
  return { moved: (n) => (total += n), signal, total: () => total };
}

/** A FileHandle stand-in whose writev waits until the test lets each call finish. */
class SlowFile {
  readonly calls: Buffer[][] = [];
  readonly written: Buffer[] = [];
  #release: (() => void)[] = [];
  /** How many bytes a call reports written at most (a short write). */
  limit = Infinity;

  writev(buffers: Buffer[]): Promise<{ bytesWritten: number }> {
    this.calls.push(buffers);
    const whole = Buffer.concat(buffers);
    const bytesWritten = Math.min(whole.length, this.limit);
    return new Promise((resolve) =>
      this.#release.push(() => {
        this.written.push(whole.subarray(0, bytesWritten));
        resolve({ bytesWritten });
      }),
    );
  }

  get pending(): number {
    return this.#release.length;
  }

  finishOne(): void {
    this.#release.shift()?.();
  }

  get contents(): string {
    return Buffer.concat(this.written).toString("latin1");
  }
}

/** A connection whose writes complete a few turns of the event loop late, keeping a copy of each chunk as it was then. */
class SlowSocket extends Duplex {
  readonly received: Buffer[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    setImmediate(() =>
      setImmediate(() => {
        this.received.push(Buffer.from(chunk));
        done();
      }),
    );
  }

  override _read(): void {}
}

/** Waits (turn by turn of the event loop, no timer) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    if (turns > 100_000) throw new Error("condition never held");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("FileSource", () => {
  it("is a Readable of the file from its start offset that closes the handle at the end", async () => {
    const bytes = pattern(600_000);
    const handle = await fileWith("f", bytes);
    const source = new FileSource(handle, 10);
    const chunks: Buffer[] = [];
    for await (const chunk of source) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes.subarray(10))).toBe(true);
    await until(() => handle.fd === -1);
  });
});

describe("sendChunks", () => {
  it("sends a file from its offset and ends the connection", async () => {
    const bytes = pattern(2 * CHUNK_MAX_BYTES + 12345);
    const source = new FileSource(await fileWith("big", bytes), 100);
    const { server, client } = await pair();
    const received = readAll(client);
    const options = copyOptions();
    await sendChunks(server, source, undefined, options);
    source.destroy();
    expect((await received).equals(bytes.subarray(100))).toBe(true);
    expect(options.total()).toBe(bytes.length - 100);
  });

  it("reads into a buffer again only once its write is done", async () => {
    const bytes = pattern(2 * CHUNK_MAX_BYTES + 7);
    const source = new FileSource(await fileWith("big", bytes), 0);
    const socket = new SlowSocket();
    await sendChunks(socket, source, undefined, copyOptions());
    source.destroy();
    expect(Buffer.concat(socket.received).equals(bytes)).toBe(true);
    expect(socket.received.length).toBe(3);
  });

  it("when aborted, settles only once the file read in flight is done (its buffer goes back to be reused)", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    class GatedSource extends FileSource {
      override async readInto(buffer: Buffer): Promise<Buffer | undefined> {
        if (++reads === 2) await gate;
        return super.readInto(buffer);
      }
    }
    const source = new GatedSource(await fileWith("f", pattern(CHUNK_MAX_BYTES + 1)), 0);
    const { server, client } = await pair();
    client.resume();
    const controller = new AbortController();
    let settled = false;
    const sent = sendChunks(server, source, undefined, copyOptions(controller.signal)).finally(() => (settled = true));
    sent.catch(() => {});
    await until(() => reads === 2);
    controller.abort(new Error("ABOR"));
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    release();
    await expect(sent).rejects.toThrow("ABOR");
    source.destroy();
  });

  it("reads in 4 MiB chunks, and in smaller ones while other downloads hold the read budget", async () => {
    expect(chunkSize()).toBe(CHUNK_MAX_BYTES);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    class HeldSource extends FileSource {
      override async readInto(buffer: Buffer): Promise<Buffer | undefined> {
        await gate;
        return super.readInto(buffer);
      }
    }
    const sends: Promise<void>[] = [];
    const sources: FileSource[] = [];
    for (let i = 0; i < 4; i++) {
      const source = new HeldSource(await fileWith(`held${i}`, Buffer.from("x")), 0);
      sources.push(source);
      const { server, client } = await pair();
      client.resume();
      sends.push(sendChunks(server, source, undefined, copyOptions()));
    }
    expect(chunkSize()).toBe(1024 * 1024);
    release();
    await Promise.all(sends);
    for (const source of sources) source.destroy();
    expect(chunkSize()).toBe(CHUNK_MAX_BYTES);
  });

  it("converts with TYPE A's converter and counts the bytes on the wire, from any Readable", async () => {
    const { server, client } = await pair();
    const received = readAll(client);
    const options = copyOptions();
    await sendChunks(server, Readable.from([Buffer.from("a\nb"), "\n"]), new ToCrlf(), options);
    expect((await received).toString()).toBe("a\r\nb\r\n");
    expect(options.total()).toBe(6);
  });

  it("stops when aborted, with the signal's reason, and destroys the connection", async () => {
    const { server } = await pair();
    const controller = new AbortController();
    const source = new PassThrough();
    const sent = sendChunks(server, source, undefined, copyOptions(controller.signal));
    source.write("some");
    await until(() => server.bytesWritten === 4);
    controller.abort(new Error("ABOR"));
    await expect(sent).rejects.toThrow("ABOR");
    expect(server.destroyed).toBe(true);
  });
});

describe("receiveChunks", () => {
  it("writes everything from the start offset and counts the bytes on the wire before TYPE A's conversion", async () => {
    const file = path.join(dir, "up");
    await writeFile(file, "0123456789");
    const handle = await open(file, "r+");
    cleanups.push(() => handle.close());
    const { server, client } = await pair();
    const options = copyOptions();
    const received = receiveChunks(server, handle, new FromCrlf(), { ...options, start: 2 });
    client.write("ab\r");
    client.end("\ncd\r");
    await received;
    expect(await readFile(file, "latin1")).toBe("01ab\ncd\r89");
    expect(options.total()).toBe(7);
  });

  it("gathers what arrives during a write into the next writev, and pauses the socket while too much waits", async () => {
    const file = new SlowFile();
    const socket = new PassThrough();
    const received = receiveChunks(socket, file as unknown as FileHandle, undefined, copyOptions());
    socket.write("first");
    await until(() => file.pending === 1);
    const big = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 4; i++) socket.write(big);
    await until(() => socket.isPaused());
    file.finishOne();
    await until(() => file.pending === 1 && !socket.isPaused());
    expect(file.calls.map((call) => call.length)).toEqual([1, 4]);
    socket.end("last");
    file.finishOne();
    await until(() => file.pending === 1);
    file.finishOne();
    await received;
    expect(file.contents).toBe(`first${big.toString("latin1").repeat(4)}last`);
  });

  it("continues a short write with what was left", async () => {
    const file = new SlowFile();
    file.limit = 3;
    const socket = new PassThrough();
    const received = receiveChunks(socket, file as unknown as FileHandle, undefined, copyOptions());
    socket.end("abcdefgh");
    for (let i = 0; i < 3; i++) {
      await until(() => file.pending === 1);
      file.finishOne();
    }
    await received;
    expect(file.contents).toBe("abcdefgh");
  });

  it("writes what arrived before the connection broke, then rejects with its error", async () => {
    const file = new SlowFile();
    const socket = new PassThrough();
    const received = receiveChunks(socket, file as unknown as FileHandle, undefined, copyOptions());
    socket.write("one");
    await until(() => file.pending === 1);
    socket.write("two");
    await until(() => socket.readableLength === 0);
    socket.destroy(Object.assign(new Error("reset"), { code: "ECONNRESET" }));
    let settled = false;
    void received.catch(() => (settled = true));
    file.finishOne();
    await until(() => file.pending === 1);
    expect(settled).toBe(false);
    file.finishOne();
    await expect(received).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(file.contents).toBe("onetwo");
  });

  it("rejects when the connection closes without an end", async () => {
    const handle = await open(path.join(dir, "cut"), "w");
    cleanups.push(() => handle.close());
    const socket = new PassThrough();
    const received = receiveChunks(socket, handle, undefined, copyOptions());
    socket.destroy();
    await expect(received).rejects.toThrow("data connection closed before the end of the data");
  });

  it("writes the data that arrives once stopWhen holds, then rejects with stopReason", async () => {
    const file = new SlowFile();
    const socket = new PassThrough();
    let stop = false;
    const received = receiveChunks(socket, file as unknown as FileHandle, undefined, {
      ...copyOptions(),
      stopWhen: () => stop,
      stopReason: new Error("stop"),
    });
    socket.write("before");
    await until(() => file.pending === 1);
    file.finishOne();
    stop = true;
    socket.write("after");
    await until(() => file.pending === 1);
    file.finishOne();
    await expect(received).rejects.toThrow("stop");
    expect(file.contents).toBe("beforeafter");
    expect(socket.destroyed).toBe(true);
  });

  it("rejects with the file's error (a full disk)", async () => {
    const handle = await open("/dev/full", "w");
    cleanups.push(() => handle.close());
    const socket = new PassThrough();
    const received = receiveChunks(socket, handle, undefined, copyOptions());
    socket.end(Buffer.alloc(1000));
    await expect(received).rejects.toMatchObject({ code: "ENOSPC" });
  });

  it("stops when aborted, once the write in flight is done", async () => {
    const file = new SlowFile();
    const socket = new PassThrough();
    const controller = new AbortController();
    const received = receiveChunks(socket, file as unknown as FileHandle, undefined, copyOptions(controller.signal));
    socket.write("data");
    await until(() => file.pending === 1);
    controller.abort(new Error("ABOR"));
    expect(socket.destroyed).toBe(true);
    file.finishOne();
    await expect(received).rejects.toThrow("ABOR");
    expect(file.contents).toBe("data");
  });
});
