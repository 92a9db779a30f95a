/**
 * The cluster transport between real processes: the primary's side runs here,
 * and test/fixtures/cluster/worker.mjs (the built code in dist/) is forked with
 * the IPC channel and the sync channel's socketpair at fd 4, as the worker pool
 * forks a session worker. Checked: the fd the worker blocks on, the shared
 * store giving the local store's results through the socketpair (a value of
 * several MB included), failures crossing both channels, the scoreboard across
 * two workers, a connection handed off with keepOpen (served by the worker,
 * still the primary's to answer 421 when the worker is killed: spike 15 §4),
 * and a worker's death seen by its pending requests.
 */
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SharedStore } from "../../host/abi/shared-store.js";
import { SCORE_EVENT, ScoreboardService } from "../../host/cluster/cluster-scoreboard.js";
import { IpcPeer } from "../../host/cluster/ipc.js";
import { storeHandlers } from "../../host/cluster/remote-store.js";
import { serveSyncChannel } from "../../host/cluster/sync-channel.js";
import { DsoError, ErrorCodes } from "../../host/errors.js";
import { STORE_SEQUENCE, applyOp } from "../fixtures/cluster/store-sequence.js";
import { REPO_ROOT } from "../helpers/paths.js";

const WORKER = path.join(REPO_ROOT, "test", "fixtures", "cluster", "worker.mjs");

interface Worker {
  readonly child: ChildProcess;
  readonly peer: IpcPeer;
  readonly store: SharedStore;
  readonly exited: Promise<string>;
}

const started: Worker[] = [];

/** A worker forked as the pool forks one, served by its own store and by `scoreboard`; resolves once it is ready. */
async function startWorker(index: number, scoreboard = new ScoreboardService()): Promise<Worker> {
  const child = fork(WORKER, [], {
    stdio: ["inherit", "inherit", "inherit", "ipc", "pipe"],
    env: { ...process.env, DSOD_WORKER_INDEX: String(index) },
    execArgv: [],
  });
  const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? `${code}`)));
  const peer = new IpcPeer(child, { name: `worker ${index}` });
  const store = new SharedStore();
  peer.onEvent(SCORE_EVENT, (body: unknown) => scoreboard.onEvent(index, body));
  serveSyncChannel(child.stdio[4] as Duplex, {
    ...storeHandlers(store),
    ...scoreboard.handlers(),
    refuse: () => {
      throw new DsoError(ErrorCodes.INIT_FAILED, "mod_x.c: init returned -1");
    },
  });
  await new Promise<void>((resolve) => peer.onEvent("ready", () => resolve()));
  const worker = { child, peer, store, exited };
  started.push(worker);
  return worker;
}

afterAll(async () => {
  for (const { child } of started) child.kill("SIGKILL");
  await Promise.all(started.map((worker) => worker.exited));
});

/** NaN, the infinities and -0 cross the IPC channel as { number: text } (the fixture's codec). */
function encode(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value ?? null, (_key, v: unknown) =>
      typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0))
        ? { number: Object.is(v, -0) ? "-0" : String(v) }
        : v,
    ),
  );
}

function decode(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) =>
    v !== null && typeof v === "object" && typeof (v as { number?: unknown }).number === "string"
      ? Number((v as { number: string }).number)
      : v,
  );
}

describe("one worker", () => {
  let worker: Worker;
  beforeAll(async () => {
    worker = await startWorker(1);
  });

  it("has a blocking fd 4 (spike 15 §3: readSync waits, no EAGAIN)", async () => {
    expect(await worker.peer.request("fd4", {})).toEqual({ nonBlocking: false });
  });

  it("gets the local store's result for every operation, the primary's store holding the state", async () => {
    const local = new SharedStore();
    const here: unknown[] = [];
    const there: unknown[] = [];
    for (const op of STORE_SEQUENCE) {
      const step = op.slice(0, 3).join(" ");
      there.push([step, (decode(await worker.peer.request("store", encode(op))) as { result: unknown }).result]);
      here.push([step, applyOp(local, op)]);
    }
    expect(there).toEqual(here);
    expect(worker.store.bytes("mod_a.c")).toBe(local.bytes("mod_a.c"));
    expect(worker.store.get("mod_a.c", "big")).toEqual(local.get("mod_a.c", "big"));
  });

  it("raises the primary's failures in the worker: a DsoError with its code and lines, or the message", async () => {
    expect(await worker.peer.request("call", { type: "refuse", body: {} })).toEqual({
      thrown: {
        dso: true,
        code: "DSO_ERR_INIT_FAILED",
        message: "mod_x.c: init returned -1",
        lines: ["mod_x.c: init returned -1"],
      },
    });
    expect(await worker.peer.request("call", { type: "nothing", body: {} })).toEqual({
      thrown: { dso: false, message: 'no handler for the sync call "nothing"' },
    });
    expect(await worker.peer.request("call", { type: "store", body: { op: "get", scope: "s", key: "k" } })).toEqual({});
  });

  it("raises the worker's failures in the primary", async () => {
    const error = await worker.peer.request("refuse", {}).catch((e: unknown) => e);
    expect(error instanceof DsoError && [error.code, error.message, error.lines]).toEqual([
      ErrorCodes.LINK,
      "2 problems",
      ["mod_x.c: undefined a", "mod_x.c: undefined b"],
    ]);
  });
});

describe("two workers", () => {
  it("each sees the other's sessions and logins on the scoreboard", async () => {
    const service = new ScoreboardService();
    const [one, two] = await Promise.all([startWorker(1, service), startWorker(2, service)]);
    if (one === undefined || two === undefined) throw new Error("no workers");
    const score = (worker: Worker, body: object) => worker.peer.request("score", body);
    // The primary puts a session on the board when it hands it off; the worker adds its own entry.
    service.started(1, 1, "10.0.0.1");
    await score(one, { op: "add", name: "a", id: 1, remoteAddress: "10.0.0.1" });
    service.started(2, 2, "10.0.0.2");
    await score(two, { op: "add", name: "b", id: 2, remoteAddress: "10.0.0.2" });
    expect(await two.peer.request("entries", {})).toEqual([
      { id: 2, remoteAddress: "10.0.0.2" },
      { remoteAddress: "10.0.0.1" },
    ]);
    // A login crosses as an event; events and requests share the IPC channel in order: it is in before the reply.
    await score(one, { op: "login", name: "a", user: "ann" });
    expect(await two.peer.request("entries", {})).toEqual([
      { id: 2, remoteAddress: "10.0.0.2" },
      { remoteAddress: "10.0.0.1", user: "ann" },
    ]);
    // The session's end: the worker drops its entry, the primary its own at the worker's `closed`.
    await score(one, { op: "delete", name: "a" });
    service.closed(1, 1);
    expect(await two.peer.request("entries", {})).toEqual([{ id: 2, remoteAddress: "10.0.0.2" }]);
    expect(service.others(1)).toEqual([{ remoteAddress: "10.0.0.2" }]);
  });
});

/** A connection to `port`: its first chunk read, and everything it read once the worker or the primary ends it. */
function client(port: number): { socket: net.Socket; first: Promise<string>; all: Promise<string> } {
  const socket = net.connect(port, "127.0.0.1");
  let text = "";
  const first = new Promise<string>((resolve) => socket.once("data", (data) => resolve(String(data))));
  socket.on("data", (data) => (text += String(data)));
  const all = new Promise<string>((resolve) => socket.on("close", () => resolve(text)));
  return { socket, first, all };
}

describe("a connection handed off with keepOpen", () => {
  it("is served by the worker, ends at its QUIT, and gets the primary's 421 when the worker is killed", async () => {
    const worker = await startWorker(3);
    const copies = new Map<number, net.Socket>();
    let nextId = 1;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      const id = nextId++;
      copies.set(id, socket);
      socket.on("error", () => {});
      worker.peer.event("session", { id }, socket, { keepOpen: true });
    });
    const closed: number[] = [];
    let sessionEnded: () => void = () => {};
    worker.peer.onEvent("closed", (body: { id: number }) => {
      closed.push(body.id);
      copies.get(body.id)?.destroy();
      copies.delete(body.id);
      sessionEnded();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;

    const firstEnded = new Promise<void>((resolve) => (sessionEnded = resolve));
    const quitting = client(port);
    expect(await quitting.first).toBe("220 worker 3 serves session 1\r\n");
    quitting.socket.write("QUIT\r\n");
    // The primary's copy, still open, does not hold the FIN back: end() is shutdown(2).
    expect(await quitting.all).toBe("220 worker 3 serves session 1\r\n221 Goodbye.\r\n");
    // The worker reports the end once its socket has closed, which may come after the client's close.
    await firstEnded;
    expect([closed, [...copies.keys()]]).toEqual([[1], []]);

    const killed = client(port);
    expect(await killed.first).toBe("220 worker 3 serves session 2\r\n");
    worker.child.kill("SIGKILL");
    expect(await worker.exited).toBe("SIGKILL");
    for (const copy of copies.values()) copy.end("421 Service not available, closing control connection\r\n");
    expect(await killed.all).toBe(
      "220 worker 3 serves session 2\r\n421 Service not available, closing control connection\r\n",
    );
    expect(closed).toEqual([1]);
    server.close();
  });
});

describe("a worker that dies", () => {
  it("fails its pending requests with DSO_ERR_WORKER_GONE, and every later one", async () => {
    const worker = await startWorker(4);
    const pending = worker.peer.request("hang", {});
    worker.child.kill("SIGKILL");
    const error = await pending.catch((e: unknown) => e);
    expect(error instanceof DsoError && [error.code, error.message]).toEqual([
      ErrorCodes.WORKER_GONE,
      'worker 4 is gone: no answer to "hang"',
    ]);
    await expect(worker.peer.request("fd4", {})).rejects.toMatchObject({ code: ErrorCodes.WORKER_GONE });
  });

  it("is seen by the worker as DSO_ERR_WORKER_GONE when the primary's end of the socketpair closes", async () => {
    const worker = await startWorker(5);
    (worker.child.stdio[4] as Duplex).destroy();
    expect(await worker.peer.request("call", { type: "store", body: { op: "bytes", scope: "s" } })).toEqual({
      thrown: expect.objectContaining({ dso: true, code: ErrorCodes.WORKER_GONE }) as unknown,
    });
  });
});
