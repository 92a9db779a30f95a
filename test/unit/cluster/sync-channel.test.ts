/**
 * The synchronous channel (host/cluster/sync-channel.ts) without a process:
 * frames cut anywhere, the worker's blocking call over scripted reads and
 * writes (short reads, a non-blocking fd's EAGAIN, the primary's end closing),
 * and the primary's side over an in-memory duplex. The real socketpair is
 * exercised by test/integration/cluster-transport.test.ts.
 */
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { FrameDecoder, SyncChannel, encodeFrame, serveSyncChannel } from "../../../host/cluster/sync-channel.js";
import type { SyncIo } from "../../../host/cluster/sync-channel.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";

function errno(code: string): Error {
  return Object.assign(new Error(`${code}: failed`), { code });
}

/** Reads answered from `script` in order (a Buffer may be split by short reads); writes and waits recorded. */
class ScriptedIo implements SyncIo {
  readonly written: Buffer[] = [];
  readonly waits: number[] = [];
  readonly #script: (Buffer | Error | "eof")[];
  readonly #writeSizes: (number | Error)[];

  /** `writeSizes`: how much each write takes (all when absent), or what it throws. */
  constructor(script: (Buffer | Error | "eof")[], writeSizes: (number | Error)[] = []) {
    this.#script = script;
    this.#writeSizes = writeSizes;
  }

  readSync(_fd: number, buffer: Uint8Array, offset: number, length: number): number {
    const next = this.#script.shift();
    if (next === undefined) throw new Error("the test's script has no more reads");
    if (next === "eof") return 0;
    if (next instanceof Error) throw next;
    const n = Math.min(length, next.length);
    buffer.set(next.subarray(0, n), offset);
    if (n < next.length) this.#script.unshift(next.subarray(n));
    return n;
  }

  writeSync(_fd: number, buffer: Uint8Array, offset: number, length: number): number {
    const size = this.#writeSizes.shift();
    if (size instanceof Error) throw size;
    const n = Math.min(length, size ?? length);
    this.written.push(Buffer.from(buffer.subarray(offset, offset + n)));
    return n;
  }

  wait(ms: number): void {
    this.waits.push(ms);
  }

  get request(): unknown {
    const frames = new FrameDecoder().push(Buffer.concat(this.written));
    return frames.map((frame) => JSON.parse(frame.toString("utf8")) as unknown);
  }
}

function bytes(text: string): Buffer {
  return Buffer.from(text, "utf8");
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error instanceof DsoError
      ? { code: error.code, message: error.message, lines: error.lines }
      : { message: (error as Error).message };
  }
  throw new Error("nothing thrown");
}

describe("frames", () => {
  it("are a little-endian length and the UTF-8 JSON", () => {
    expect(encodeFrame({ k: "é" })).toEqual(Buffer.concat([Buffer.from([10, 0, 0, 0]), bytes('{"k":"é"}')]));
    expect(encodeFrame("a".repeat(300)).subarray(0, 4)).toEqual(Buffer.from([46, 1, 0, 0]));
  });

  it("come out of the decoder whole, however the bytes are cut", () => {
    const stream = Buffer.concat([encodeFrame({ a: 1 }), encodeFrame("two"), encodeFrame(null)]);
    const byByte: string[] = [];
    const decoder = new FrameDecoder();
    for (let i = 0; i < stream.length; i++) {
      byByte.push(...decoder.push(stream.subarray(i, i + 1)).map((payload) => payload.toString("utf8")));
      if (i === 2) expect(decoder.partial).toBe(true);
    }
    expect(byByte).toEqual(['{"a":1}', '"two"', "null"]);
    expect(decoder.partial).toBe(false);
    expect(new FrameDecoder().push(stream).map((payload) => payload.toString("utf8"))).toEqual(byByte);
  });

  it("carry a value of several MB read 64 KiB at a time", () => {
    const value = "x€".repeat(1_500_000);
    const frame = encodeFrame({ value });
    const decoder = new FrameDecoder();
    const payloads: Buffer[] = [];
    for (let at = 0; at < frame.length; at += 65_536) payloads.push(...decoder.push(frame.subarray(at, at + 65_536)));
    expect(payloads.map((payload) => (JSON.parse(payload.toString("utf8")) as { value: string }).value)).toEqual([
      value,
    ]);
  });
});

describe("the worker's call", () => {
  it("writes one request frame and returns the value of the reply, read in pieces", () => {
    const reply = encodeFrame({ ok: true, value: { version: 3 } });
    const io = new ScriptedIo([reply.subarray(0, 2), reply.subarray(2, 5), reply.subarray(5)]);
    expect(new SyncChannel(4, io).call("store", { op: "get", key: "k" })).toEqual({ version: 3 });
    expect(io.request).toEqual([{ type: "store", body: { op: "get", key: "k" } }]);
    expect(io.waits).toEqual([]);
  });

  it("returns undefined for a reply without a value", () => {
    expect(new SyncChannel(4, new ScriptedIo([encodeFrame({ ok: true })])).call("store", {})).toBeUndefined();
  });

  it("waits and reads again while a non-blocking fd has nothing, longer each time up to 1 ms", () => {
    const again = Array.from({ length: 7 }, () => errno("EAGAIN"));
    const io = new ScriptedIo([...again, errno("EINTR"), encodeFrame({ ok: true, value: 1 })]);
    expect(new SyncChannel(4, io).call("store", {})).toBe(1);
    expect(io.waits).toEqual([0.05, 0.1, 0.2, 0.4, 0.8, 1, 1, 1]);
  });

  it("writes the rest of a frame the fd took only part of, and waits while it takes none", () => {
    const io = new ScriptedIo([encodeFrame({ ok: true, value: "done" })], [3, errno("EAGAIN"), 5]);
    expect(new SyncChannel(4, io).call("scoreboard", { worker: 1 })).toBe("done");
    expect(io.written.map((chunk) => chunk.length).slice(0, 2)).toEqual([3, 5]);
    expect(io.request).toEqual([{ type: "scoreboard", body: { worker: 1 } }]);
    expect(io.waits).toEqual([0.05]);
  });

  it("throws the primary's error as it was: a DsoError keeps its code and lines", () => {
    const failure = { code: ErrorCodes.LINK, message: "2 problems", lines: ["one", "two"] };
    const channel = new SyncChannel(4, new ScriptedIo([encodeFrame({ ok: false, failure })]));
    expect(thrown(() => channel.call("store", {}))).toEqual({
      code: "DSO_ERR_LINK",
      message: "2 problems",
      lines: ["one", "two"],
    });
  });

  it("throws DSO_ERR_WORKER_GONE when the primary's end closes, and at once on every later call", () => {
    const half = encodeFrame({ ok: true, value: 1 }).subarray(0, 6);
    const io = new ScriptedIo([half, "eof"]);
    const channel = new SyncChannel(4, io);
    const gone = {
      code: ErrorCodes.WORKER_GONE,
      message: "the primary is gone: the primary closed the channel",
      lines: ["the primary is gone: the primary closed the channel"],
    };
    expect(thrown(() => channel.call("store", {}))).toEqual(gone);
    expect(thrown(() => channel.call("store", {}))).toEqual(gone);
    expect(io.written).toHaveLength(1);
  });

  it("throws DSO_ERR_WORKER_GONE for a read or write error, and for a reply that breaks the protocol", () => {
    const cases: [ScriptedIo, string][] = [
      [new ScriptedIo([errno("ECONNRESET")]), "ECONNRESET: failed"],
      [new ScriptedIo([], [errno("EPIPE")]), "EPIPE: failed"],
      [new ScriptedIo([Buffer.concat([Buffer.from([3, 0, 0, 0]), bytes("{{{")])]), "a reply is not JSON"],
      [new ScriptedIo([encodeFrame([1])]), "a reply has no `ok`"],
      [new ScriptedIo([Buffer.concat([encodeFrame({ ok: true }), encodeFrame({ ok: true })])]), "more than one"],
    ];
    for (const [io, why] of cases) {
      const channel = new SyncChannel(4, io);
      expect(thrown(() => channel.call("store", {}))).toMatchObject({
        code: ErrorCodes.WORKER_GONE,
        message: expect.stringContaining(`the primary is gone: ${why}`) as unknown,
      });
    }
  });
});

/** The primary's end over memory: frames pushed in as the worker's writes, replies collected as written. */
function primaryEnd(count: number): { duplex: Duplex; replies: Promise<unknown[]> } {
  const written: Buffer[] = [];
  let done: (replies: unknown[]) => void = () => {};
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      const frames = new FrameDecoder().push(Buffer.concat(written));
      if (frames.length === count) done(frames.map((frame) => JSON.parse(frame.toString("utf8")) as unknown));
      callback();
    },
  });
  return { duplex, replies: new Promise((resolve) => (done = resolve)) };
}

describe("the primary's side", () => {
  it("answers each request with its handler's value, in order, frames cut anywhere", async () => {
    const { duplex, replies } = primaryEnd(2);
    const seen: unknown[] = [];
    serveSyncChannel(duplex, {
      store: (body: { key: string }) => {
        seen.push(body);
        return { value: body.key.toUpperCase(), version: 1 };
      },
      nothing: () => undefined,
    });
    const input = Buffer.concat([
      encodeFrame({ type: "store", body: { key: "a" } }),
      encodeFrame({ type: "nothing", body: null }),
    ]);
    duplex.push(input.subarray(0, 7));
    duplex.push(input.subarray(7));
    expect(await replies).toEqual([{ ok: true, value: { value: "A", version: 1 } }, { ok: true }]);
    expect(seen).toEqual([{ key: "a" }]);
  });

  it("answers a throw, an unknown type and a value JSON cannot carry with a failure, never with silence", async () => {
    const { duplex, replies } = primaryEnd(5);
    serveSyncChannel(duplex, {
      refuse: () => {
        throw new DsoError(ErrorCodes.CONFIG, "bad", { details: ["line 1", "line 2"] });
      },
      bug: () => {
        throw new TypeError("oops");
      },
      big: () => 1n,
    });
    const types = ["refuse", "bug", "missing", "toString", "big"];
    duplex.push(Buffer.concat(types.map((type) => encodeFrame({ type, body: {} }))));
    expect(await replies).toEqual([
      { ok: false, failure: { code: "DSO_ERR_CONFIG", message: "bad", lines: ["line 1", "line 2"] } },
      { ok: false, failure: { message: "oops" } },
      { ok: false, failure: { message: 'no handler for the sync call "missing"' } },
      { ok: false, failure: { message: 'no handler for the sync call "toString"' } },
      { ok: false, failure: { message: "Do not know how to serialize a BigInt" } },
    ]);
  });
});
