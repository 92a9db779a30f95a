/**
 * The IPC peer (host/cluster/ipc.ts) over a pair of in-memory endpoints that
 * copy each message through JSON, as Node's "json" serialization does: replies
 * matched to requests, remote DsoErrors raised again with their code, errno and
 * lines, a peer that goes away, timeouts on an injected clock, events with a
 * socket, and what is not ours left alone.
 */
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import net from "node:net";
import { describe, expect, expectTypeOf, it } from "vitest";
import { IpcPeer, fromRemoteFailure, parentEndpoint, toRemoteFailure } from "../../../host/cluster/ipc.js";
import type { IpcEndpoint } from "../../../host/cluster/ipc.js";
import { DsoError, Errno, ErrorCodes } from "../../../host/errors.js";
import type { Clock } from "../../../host/system/clock.js";

class FakeEndpoint extends EventEmitter implements IpcEndpoint {
  peer: FakeEndpoint | undefined;
  connected = true;
  readonly sent: unknown[] = [];

  send(
    message: unknown,
    handle?: net.Socket,
    _options?: { keepOpen?: boolean },
    callback?: (error: Error | null) => void,
  ): boolean {
    if (!this.connected) {
      process.nextTick(() => callback?.(new Error("Channel closed")));
      return false;
    }
    this.sent.push(message);
    const copy: unknown = JSON.parse(JSON.stringify(message));
    setImmediate(() => this.peer?.emit("message", copy, handle));
    process.nextTick(() => callback?.(null));
    return true;
  }

  /** The channel closes: both sides see `disconnect`, as a dead child and its parent do. */
  disconnect(): void {
    for (const side of [this, this.peer]) {
      if (side === undefined) continue;
      side.connected = false;
      side.emit("disconnect");
    }
  }
}

function pair(): [FakeEndpoint, FakeEndpoint] {
  const a = new FakeEndpoint();
  const b = new FakeEndpoint();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Timers fired by hand; `live` counts those neither fired nor cancelled. */
class ManualClock implements Clock {
  readonly #timers = new Set<{ ms: number; run: () => void }>();

  now(): number {
    return 0;
  }

  schedule(ms: number, run: () => void): () => void {
    const timer = { ms, run };
    this.#timers.add(timer);
    return () => this.#timers.delete(timer);
  }

  get live(): number[] {
    return [...this.#timers].map((t) => t.ms);
  }

  fireAll(): void {
    const timers = [...this.#timers];
    this.#timers.clear();
    for (const timer of timers) timer.run();
  }
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
  }
  throw new Error("no rejection");
}

function described(error: Error): object {
  return error instanceof DsoError
    ? { dso: true, code: error.code, message: error.message, errno: error.errno, lines: error.lines }
    : { dso: false, code: (error as { code?: unknown }).code, message: error.message };
}

describe("requests", () => {
  it("resolves with the handler's value, sync or async, each reply matched to its request", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    worker.onRequest("double", (body: { n: number }) => body.n * 2);
    worker.onRequest("later", async (body: string) => `${body}!`);
    const answers = await Promise.all([
      primary.request("double", { n: 21 }),
      primary.request("later", "ready"),
      primary.request("double", { n: 1 }),
    ]);
    expect(answers).toEqual([42, "ready!", 2]);
    expect(a.sent).toEqual([
      { kind: "request", seq: 1, type: "double", body: { n: 21 } },
      { kind: "request", seq: 2, type: "later", body: "ready" },
      { kind: "request", seq: 3, type: "double", body: { n: 1 } },
    ]);
    expect(b.sent).toContainEqual({ kind: "reply", seq: 2, ok: true, body: "ready!" });
  });

  it("works both ways on one channel", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    primary.onRequest("scoreboard", () => ["worker asks"]);
    worker.onRequest("status", () => ({ sessions: 3 }));
    expect(await Promise.all([worker.request("scoreboard", {}), primary.request("status", {})])).toEqual([
      ["worker asks"],
      { sessions: 3 },
    ]);
  });

  it("raises a remote DsoError again with its code, errno and lines", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    worker.onRequest("init", () => {
      throw new DsoError(ErrorCodes.WORKER_START, "unable to become user 'nobody': Operation not permitted");
    });
    worker.onRequest("link", () => {
      throw new DsoError(ErrorCodes.LINK, "2 problems", { details: ["mod_x.c: undefined a", "mod_x.c: undefined b"] });
    });
    worker.onRequest("init-hook", async () => {
      throw new DsoError(ErrorCodes.INIT_FAILED, "mod_x.c: init returned -1");
    });
    worker.onRequest("denied", () => {
      throw new DsoError(ErrorCodes.FILE, "cannot read mod_x.wasm", { errno: Errno.EACCES });
    });
    expect(described(await failure(primary.request("init", {})))).toEqual({
      dso: true,
      code: "DSO_ERR_WORKER_START",
      message: "unable to become user 'nobody': Operation not permitted",
      errno: undefined,
      lines: ["unable to become user 'nobody': Operation not permitted"],
    });
    expect(described(await failure(primary.request("link", {})))).toEqual({
      dso: true,
      code: "DSO_ERR_LINK",
      message: "2 problems",
      errno: undefined,
      lines: ["mod_x.c: undefined a", "mod_x.c: undefined b"],
    });
    const initFailed = await failure(primary.request("init-hook", {}));
    expect(described(initFailed)).toEqual({
      dso: true,
      code: "DSO_ERR_INIT_FAILED",
      message: "mod_x.c: init returned -1",
      errno: "Operation not permitted",
      lines: ["mod_x.c: init returned -1"],
    });
    expect((initFailed as DsoError).reason).toBe("Operation not permitted");
    expect(described(await failure(primary.request("denied", {})))).toMatchObject({ errno: "Permission denied" });
  });

  it("answers another throw with its message, and a type without a handler with a refusal", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    worker.onRequest("bug", () => {
      throw new TypeError("x is not a function");
    });
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a handler may reject with any value
    worker.onRequest("odd", () => Promise.reject("a string"));
    expect(described(await failure(primary.request("bug", {})))).toEqual({
      dso: false,
      code: undefined,
      message: "x is not a function",
    });
    expect(described(await failure(primary.request("odd", {})))).toMatchObject({ message: "a string" });
    expect(described(await failure(primary.request("nothing", {})))).toMatchObject({
      dso: false,
      message: 'no handler for the request "nothing"',
    });
  });

  it("fails a request or a reply that JSON cannot carry, instead of leaving it unanswered", async () => {
    const [a, b] = pair();
    const clock = new ManualClock();
    const primary = new IpcPeer(a, { clock });
    const worker = new IpcPeer(b);
    worker.onRequest("count", () => 1n);
    expect(described(await failure(primary.request("count", {})))).toEqual({
      dso: false,
      code: undefined,
      message: "Do not know how to serialize a BigInt",
    });
    expect(described(await failure(primary.request("count", { n: 1n }, { timeoutMs: 10 })))).toMatchObject({
      message: "Do not know how to serialize a BigInt",
    });
    expect(clock.live).toEqual([]);
  });
});

describe("a peer that goes away", () => {
  it("rejects what is pending with DSO_ERR_WORKER_GONE, and every later request at once", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a, { name: "worker 2 (pid 4242)" });
    const worker = new IpcPeer(b);
    const started: string[] = [];
    worker.onRequest("slow", () => {
      started.push("slow");
      a.disconnect();
      return new Promise(() => {});
    });
    const pending = primary.request("slow", {});
    expect(described(await failure(pending))).toEqual({
      dso: true,
      code: ErrorCodes.WORKER_GONE,
      message: 'worker 2 (pid 4242) is gone: no answer to "slow"',
      errno: undefined,
      lines: ['worker 2 (pid 4242) is gone: no answer to "slow"'],
    });
    expect(started).toEqual(["slow"]);
    expect(described(await failure(primary.request("status", {})))).toMatchObject({
      code: ErrorCodes.WORKER_GONE,
      message: 'worker 2 (pid 4242) is gone: no answer to "status"',
    });
  });

  it("rejects a request the channel refuses to send with DSO_ERR_WORKER_GONE", async () => {
    const [a] = pair();
    a.connected = false;
    const primary = new IpcPeer(a);
    expect(described(await failure(primary.request("status", {})))).toMatchObject({
      code: ErrorCodes.WORKER_GONE,
      message: 'the other process is gone: no answer to "status"',
    });
  });

  it("close() rejects what is pending, and then neither answers nor handles anything", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    const handled: unknown[] = [];
    worker.onRequest("work", (body: number) => handled.push(body));
    worker.onEvent("note", (body: string) => handled.push(body));
    primary.onRequest("never", () => handled.push("primary"));
    const pending = primary.request("never-answered", {});
    primary.close();
    expect(await failure(pending)).toMatchObject({ code: ErrorCodes.WORKER_GONE });
    worker.close();
    a.send({ kind: "request", seq: 1, type: "work", body: 1 });
    a.send({ kind: "event", type: "note", body: "n" });
    b.send({ kind: "request", seq: 1, type: "never", body: 2 });
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(handled).toEqual([]);
    expect(b.sent).toHaveLength(1);
  });
});

describe("timeouts", () => {
  it("rejects with DSO_ERR_WORKER_TIMEOUT when the clock passes timeoutMs, and ignores the late reply", async () => {
    const [a, b] = pair();
    const clock = new ManualClock();
    const primary = new IpcPeer(a, { clock, name: "worker 1 (pid 7)" });
    const worker = new IpcPeer(b);
    let answer: (value: string) => void = () => {};
    worker.onRequest("prepare", () => new Promise<string>((resolve) => (answer = resolve)));
    const pending = primary.request("prepare", {}, { timeoutMs: 5000 });
    expect(clock.live).toEqual([5000]);
    clock.fireAll();
    expect(described(await failure(pending))).toEqual({
      dso: true,
      code: ErrorCodes.WORKER_TIMEOUT,
      message: 'worker 1 (pid 7) did not answer "prepare" within 5000 ms',
      errno: undefined,
      lines: ['worker 1 (pid 7) did not answer "prepare" within 5000 ms'],
    });
    answer("too late");
    worker.onRequest("status", () => "fine");
    expect(await primary.request("status", {})).toBe("fine");
  });

  it("cancels the timer of a request answered in time; no timer without timeoutMs", async () => {
    const [a, b] = pair();
    const clock = new ManualClock();
    const primary = new IpcPeer(a, { clock });
    new IpcPeer(b).onRequest("status", () => "ok");
    const timed = primary.request("status", {}, { timeoutMs: 100 });
    const untimed = primary.request("status", {});
    expect(clock.live).toEqual([100]);
    expect(await Promise.all([timed, untimed])).toEqual(["ok", "ok"]);
    expect(clock.live).toEqual([]);
  });
});

describe("events", () => {
  it("delivers the body and the socket sent with it; no socket, no handle", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    const socket = new net.Socket();
    const seen: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      worker.onEvent("session", (body: { id: number }, handle) => {
        seen.push([body, handle === socket]);
        if (seen.length === 3) resolve();
      });
    });
    primary.event("session", { id: 7 }, socket, { keepOpen: true });
    primary.event("session", { id: 8 });
    b.emit("message", { kind: "event", type: "session", body: { id: 9 } }, { fd: 3 });
    await done;
    // The message emitted by hand arrives first: the others cross the (fake) channel on setImmediate.
    expect(seen).toEqual([
      [{ id: 9 }, false],
      [{ id: 7 }, true],
      [{ id: 8 }, false],
    ]);
    socket.destroy();
  });

  it("ignores what is not ours: other messages, unknown replies, events nobody handles", async () => {
    const [a, b] = pair();
    const primary = new IpcPeer(a);
    const worker = new IpcPeer(b);
    worker.onRequest("status", () => "ok");
    for (const message of [
      "text",
      null,
      { cmd: "NODE_CLUSTER", act: "online" },
      { kind: "reply", seq: 99, ok: true, body: 1 },
      { kind: "reply", seq: 1, ok: false, failure: { code: 5 } },
      { kind: "request", seq: "1", type: "status" },
      { kind: "event", type: "unheard", body: {} },
    ]) {
      b.send(message);
    }
    expect(await primary.request("status", {})).toBe("ok");
  });
});

describe("remote failures", () => {
  it("keeps a DsoError whose detail lines are its message, and drops an unknown code or errno", () => {
    expect(toRemoteFailure(new DsoError(ErrorCodes.CONFIG, "bad", { details: ["bad"] }))).toEqual({
      code: "DSO_ERR_CONFIG",
      message: "bad",
      lines: ["bad"],
    });
    expect(toRemoteFailure(42)).toEqual({ message: "42" });
    const unknown = fromRemoteFailure({ code: "DSO_ERR_FROM_THE_FUTURE", message: "new", lines: ["new"] });
    expect([unknown instanceof DsoError, unknown.message]).toEqual([false, "new"]);
    const errno = fromRemoteFailure({ code: "DSO_ERR_CONFIG", message: "m", errno: "Not a real errno" });
    expect([errno instanceof DsoError && errno.errno, errno instanceof DsoError && errno.lines]).toEqual([
      undefined,
      ["m"],
    ]);
  });
});

describe("endpoints", () => {
  it("takes a forked child as it is, and a worker's process only when it has an IPC channel", () => {
    expectTypeOf<ChildProcess>().toExtend<IpcEndpoint>();
    const withChannel = Object.assign(new EventEmitter(), { send: () => true }) as unknown as NodeJS.Process;
    expect(parentEndpoint(withChannel)).toBe(withChannel);
    const without = new EventEmitter() as unknown as NodeJS.Process;
    expect(() => parentEndpoint(without)).toThrow(
      expect.objectContaining({
        code: ErrorCodes.WORKER_START,
        message: "a session worker must be started by dsod (it has no IPC channel)",
      }),
    );
  });
});
