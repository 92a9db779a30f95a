/**
 * The FTP listener split for session workers (host/ftp/server.ts): a listener
 * with `handOff` checks each connection and hands it on, keeping it on its
 * scoreboard and counted until `ended()`; `adopt` serves a connection another
 * server accepted, with the id the listener gave it. Both run here in one
 * process, the way the primary and a worker share the work.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Scoreboard } from "../../../host/ftp/scoreboard.js";
import { FtpServer } from "../../../host/ftp/server.js";
import type { FtpServerOptions } from "../../../host/ftp/server.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { EngineModule } from "../../../host/modules/module-api.js";
import { createCompiledInModules } from "../../../host/static/index.js";
import { LIMIT_MESSAGES } from "../../../host/static/mod-auth.js";
import { ControlClient } from "../../helpers/control-client.js";
import { FakeClock } from "./data-helpers.js";

const GREETING = ["220 dsod Server (t) [127.0.0.1]"];

/** The compiled-in modules (NOOP, QUIT), and LOGIN, which logs in at once as its argument. */
const LOGIN: EngineModule = {
  name: "mod_handoff_test.c",
  kind: "static",
  commands: [
    {
      command: "LOGIN",
      phase: Phases.CMD,
      run: (cmd, session) => {
        session.user = cmd.arg;
        cmd.addResponse("230", `User ${cmd.arg} logged in`);
        return HandlerResults.HANDLED;
      },
    },
  ],
  siteCommands: [],
  directives: [],
  features: [],
  help: [],
};
const MODULES = [...createCompiledInModules().modules, LOGIN];

/** Resolves once `predicate` holds, checking after each turn of the event loop. */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

function server(log: string[], options: Partial<FtpServerOptions> = {}): FtpServer {
  return new FtpServer({
    acquireModules: () => ({ modules: MODULES, release: () => {} }),
    serverName: "t",
    idleTimeoutSeconds: 0,
    loginTimeoutSeconds: 0,
    preLoginCommands: new Set(["NOOP", "LOGIN", "QUIT"]),
    clock: new FakeClock(),
    log: (message) => log.push(`${options.handOff === undefined ? "worker" : "primary"}: ${message}`),
    ...options,
  });
}

describe("FtpServer.adopt", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A plain listener, as the primary's is, paused on connect: each accepted socket goes to `take`. */
  async function acceptor(take: (socket: net.Socket) => void): Promise<number> {
    const listener = net.createServer({ pauseOnConnect: true }, take);
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    return (listener.address() as net.AddressInfo).port;
  }

  async function client(port: number): Promise<ControlClient> {
    const connected = await ControlClient.connect(port);
    cleanups.push(() => connected.destroy());
    return connected;
  }

  it("serves a socket another server accepted as session `id`, and reports it closed", async () => {
    const log: string[] = [];
    const closed: number[] = [];
    const worker = server(log, { sessionClosed: (id) => closed.push(id) });
    cleanups.push(() => worker.close());
    const port = await acceptor((socket) => worker.adopt(socket, 42));
    const ftp = await client(port);
    expect(await ftp.reply()).toEqual(GREETING);
    expect(worker.sessionCount).toBe(1);
    expect(await ftp.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await ftp.send("QUIT")).toEqual(["221 Goodbye."]);
    await ftp.closed();
    await until(() => closed.length === 1);
    expect(closed).toEqual([42]);
    expect(worker.sessionCount).toBe(0);
  });

  it("names the session by the given id in its log lines", async () => {
    const log: string[] = [];
    const clock = new FakeClock();
    const worker = server(log, { clock, idleTimeoutSeconds: 30 });
    cleanups.push(() => worker.close());
    const port = await acceptor((socket) => worker.adopt(socket, 7));
    const ftp = await client(port);
    expect(await ftp.reply()).toEqual(GREETING);
    clock.advance(30_000);
    expect(await ftp.reply()).toEqual(["421 Idle timeout (30 seconds): closing control connection"]);
    expect(log).toEqual(["worker: session 7 (127.0.0.1[127.0.0.1]): Client session idle timeout, disconnected"]);
  });

  it("closes, never having listened, once its adopted sessions have been told and have closed", async () => {
    const worker = server([]);
    const port = await acceptor((socket) => worker.adopt(socket, 5));
    const ftp = await client(port);
    expect(await ftp.reply()).toEqual(GREETING);
    // What is open when close() resolves: nothing, though no listener ever counted the connection.
    const open = worker.close().then(() => worker.sessionCount);
    expect(await ftp.reply()).toEqual(["421 FTP server shutting down - Server shutting down"]);
    await ftp.closed();
    expect(await open).toBe(0);
  });

  it("reports a connection it refused before the greeting closed too", async () => {
    const log: string[] = [];
    const closed: number[] = [];
    const worker = server(log, {
      acquireModules: () => {
        throw new Error("ModuleMemoryTotal (64K) reached");
      },
      sessionClosed: (id) => closed.push(id),
    });
    cleanups.push(() => worker.close());
    const port = await acceptor((socket) => worker.adopt(socket, 3));
    const ftp = await client(port);
    expect(await ftp.reply()).toEqual(["421 Service not available, closing control connection"]);
    await ftp.closed();
    await until(() => closed.length === 1);
    expect(closed).toEqual([3]);
    expect(log).toEqual([
      "worker: session 3 (127.0.0.1[127.0.0.1]): Connection refused: ModuleMemoryTotal (64K) reached",
    ]);
  });
});

describe("FtpServerOptions.handOff", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  interface HandedOff {
    readonly socket: net.Socket;
    readonly id: number;
    readonly ended: () => void;
  }

  /** A primary whose hand-offs are kept in `handed` (for the test to serve or end), listening on a free port. */
  async function primary(options: Partial<FtpServerOptions> = {}) {
    const log: string[] = [];
    const handed: HandedOff[] = [];
    const scoreboard = new Scoreboard();
    const listener = server(log, {
      handOff: (socket, id, ended) => handed.push({ socket, id, ended }),
      ...options,
      scoreboard,
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    // What a worker would do at the end: end what is still handed off, so the listener can close.
    cleanups.push(async () => {
      for (const { ended } of handed) ended();
      await listener.close();
    });
    const connect = async (): Promise<ControlClient> => {
      const connected = await ControlClient.connect(port);
      cleanups.push(() => connected.destroy());
      return connected;
    };
    return { listener, log, handed, scoreboard, port, connect };
  }

  it("hands each connection on with its id, served once, by whoever adopts it", async () => {
    const workerLog: string[] = [];
    const closed: number[] = [];
    const ends = new Map<number, () => void>();
    // As the worker pool does: the worker's report of a closed session ends the listener's copy.
    const worker = server(workerLog, {
      sessionClosed: (id) => {
        closed.push(id);
        ends.get(id)?.();
      },
    });
    cleanups.push(() => worker.close());
    const { listener, log, connect, scoreboard } = await primary({
      handOff: (socket, id, ended) => {
        ends.set(id, ended);
        worker.adopt(socket, id);
      },
    });
    const first = await connect();
    const second = await connect();
    expect(await first.reply()).toEqual(GREETING);
    expect(await second.reply()).toEqual(GREETING);
    expect(await second.send("LOGIN ann")).toEqual(["230 User ann logged in"]);
    expect([...ends.keys()]).toEqual([1, 2]);
    // The listener's entries know the address only: the user is the worker's to know.
    expect([...scoreboard.entries()]).toEqual([
      { remoteAddress: "127.0.0.1", user: undefined },
      { remoteAddress: "127.0.0.1", user: undefined },
    ]);
    expect(listener.sessionCount).toBe(2);
    expect(await first.send("QUIT")).toEqual(["221 Goodbye."]);
    await first.closed();
    await until(() => closed.length === 1);
    expect(closed).toEqual([1]);
    expect(listener.sessionCount).toBe(1);
    expect([...scoreboard.entries()]).toHaveLength(1);
    expect(await second.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(log).toEqual([]);
    expect(workerLog).toEqual([]);
  });

  it("counts handed-off connections against MaxInstances until they have ended", async () => {
    const { listener, log, handed, connect, port } = await primary({ maxInstances: 2 });
    await connect();
    await connect();
    await until(() => handed.length === 2);
    const third = net.connect(port, "127.0.0.1");
    third.on("error", () => {});
    await new Promise((resolve) => third.once("close", resolve));
    expect(log).toEqual(["primary: MaxInstances (2) reached, new connection denied"]);
    expect(handed.map((h) => h.id)).toEqual([1, 2]);
    const { socket, ended } = handed[0] as HandedOff;
    ended();
    expect(listener.sessionCount).toBe(1);
    // Node counts the connection until the listener's copy has closed.
    await new Promise((resolve) => socket.once("close", resolve));
    await connect();
    await until(() => handed.length === 3);
    // A connection dropped by MaxInstances never became a session: it took no id.
    expect(handed.map((h) => h.id)).toEqual([1, 2, 3]);
  });

  it("counts handed-off connections for MaxConnectionsPerHost until they have ended", async () => {
    const maxConnectionsPerHost = { max: 1, message: LIMIT_MESSAGES.MaxConnectionsPerHost };
    const { log, handed, connect } = await primary({ maxConnectionsPerHost });
    await connect();
    await until(() => handed.length === 1);
    const refused = await connect();
    expect(await refused.reply()).toEqual([
      "530 Sorry, the maximum number of connections (1) for your host are already connected.",
    ]);
    await refused.closed();
    expect(log).toEqual(["primary: session 2 (127.0.0.1[127.0.0.1]): Connection refused (MaxConnectionsPerHost 1)"]);
    (handed[0] as HandedOff).ended();
    await connect();
    await until(() => handed.length === 2);
    expect(handed.map((h) => h.id)).toEqual([1, 3]);
  });

  it("closes without a word to the handed-off connections, once each has ended", async () => {
    const { listener, handed, connect } = await primary();
    const ftp = await connect();
    await until(() => handed.length === 1);
    let stopped = false;
    const closing = listener.close().then(() => (stopped = true));
    // The listener is closed to new connections at once; the handed-off one is the worker's to end.
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    handed[0]?.ended();
    await closing;
    await ftp.closed();
    await expect(ftp.reply()).rejects.toThrow('connection closed; pending: ""');
  });

  it("lets the caller end a connection with last lines before it has ended", async () => {
    const { listener, handed, connect } = await primary();
    const ftp = await connect();
    await until(() => handed.length === 1);
    const { socket, ended } = handed[0] as HandedOff;
    socket.end("421 Service not available, closing control connection\r\n");
    ended();
    expect(await ftp.reply()).toEqual(["421 Service not available, closing control connection"]);
    await ftp.closed();
    await until(() => listener.sessionCount === 0);
  });
});
