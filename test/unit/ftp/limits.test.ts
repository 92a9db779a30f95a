/**
 * The FTP listener's and sessions' bounds, on a real FtpServer with a clock
 * the tests move by hand: TimeoutLogin, TimeoutIdle, TimeoutSession and the
 * linger of a closing connection; MaxInstances and MaxConnectionsPerHost; and
 * the pure parts (descriptor budget, scoreboard counts).
 */
import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Scoreboard, connectionsFrom, countClients, limitReply } from "../../../host/ftp/scoreboard.js";
import { DESCRIPTOR_BACKOFF_MS, FtpServer } from "../../../host/ftp/server.js";
import type { FtpServerOptions } from "../../../host/ftp/server.js";
import { LINGER_MS, sessionLabel } from "../../../host/ftp/session.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, SessionState } from "../../../host/modules/module-api.js";
import { LIMIT_MESSAGES } from "../../../host/static/mod-auth.js";
import { defaultMaxInstances, parseOpenFilesLimit } from "../../../host/system/limits.js";
import { ControlClient } from "../../helpers/control-client.js";
import { FakeClock } from "./data-helpers.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            512                  4096                 files
Max locked memory         8388608              8388608              bytes
`;

describe("the descriptor budget (host/system/limits.ts)", () => {
  it("reads the soft and hard limits off /proc/PID/limits", () => {
    expect(parseOpenFilesLimit(LIMITS)).toEqual({ soft: 512, hard: 4096 });
    expect(parseOpenFilesLimit(LIMITS.replace("512 ", "unlimited "))).toEqual({ soft: Infinity, hard: 4096 });
    expect(parseOpenFilesLimit("Max cpu time unlimited unlimited seconds\n")).toBeUndefined();
    expect(
      parseOpenFilesLimit("Max open files            many                 4096                 files"),
    ).toBeUndefined();
  });

  it("derives MaxInstances from what the daemon's reserve leaves, 5 descriptors a session, at least 1", () => {
    expect(defaultMaxInstances({ soft: 512, hard: 512 })).toBe(89);
    expect(defaultMaxInstances({ soft: 1024, hard: 4096 })).toBe(192);
    expect(defaultMaxInstances({ soft: 60, hard: 60 })).toBe(1);
    expect(defaultMaxInstances({ soft: Infinity, hard: Infinity })).toBe(0);
    expect(defaultMaxInstances(undefined)).toBe(0);
  });
});

describe("the scoreboard's counts (auth_scan_scoreboard, auth_count_scoreboard)", () => {
  const a = { remoteAddress: "10.0.0.1", user: "ann" };
  const b = { remoteAddress: "10.0.0.1", user: undefined };
  const c = { remoteAddress: "10.0.0.2", user: "ann" };
  const d = { remoteAddress: "10.0.0.1", user: "bob" };

  it("counts every connection from an address for MaxConnectionsPerHost", () => {
    expect(connectionsFrom([a, b, c, d], "10.0.0.1")).toBe(3);
    expect(connectionsFrom([a, b, c, d], "10.0.0.9")).toBe(0);
  });

  it("counts logged-in sessions only, the one logging in included", () => {
    const self = { remoteAddress: "10.0.0.1", user: undefined };
    expect(countClients([a, b, c, d, self], self, "ann")).toEqual({ clients: 4, fromHost: 3, forUser: 3 });
    expect(countClients([self], self, "zoe")).toEqual({ clients: 1, fromHost: 1, forUser: 1 });
  });

  it("puts the count in place of %m", () => {
    expect(limitReply({ max: 3, message: LIMIT_MESSAGES.MaxClientsPerHost })).toBe(
      "Sorry, the maximum number of clients (3) from your host are already connected.",
    );
    expect(limitReply({ max: 2, message: "%m max, %m!" })).toBe("2 max, 2!");
  });
});

/** LOGIN logs in at once (a stand-in for USER/PASS); NOOP notes its session; WAIT runs until the test ends it; BIG answers a megabyte. */
function testModule() {
  const waits: Array<(result: HandlerResult) => void> = [];
  const sessions: SessionState[] = [];
  let bigs = 0;
  const handler = (command: string, run: CommandHandler["run"]): CommandHandler => ({
    command,
    phase: Phases.CMD,
    run,
  });
  const module: EngineModule = {
    name: "mod_limits_test.c",
    kind: "static",
    commands: [
      handler("LOGIN", (cmd, session) => {
        session.user = cmd.arg;
        cmd.addResponse("230", `User ${cmd.arg} logged in`);
        return HandlerResults.HANDLED;
      }),
      handler("NOOP", (cmd, session) => {
        if (!sessions.includes(session)) sessions.push(session);
        cmd.addResponse("200", "NOOP command successful");
        return HandlerResults.HANDLED;
      }),
      handler(
        "WAIT",
        (cmd) =>
          new Promise<HandlerResult>((resolve) => {
            cmd.addResponse("200", "waited");
            waits.push(resolve);
          }),
      ),
      handler("BIG", (cmd) => {
        bigs++;
        cmd.addResponse("200", "x".repeat(1 << 20));
        return HandlerResults.HANDLED;
      }),
    ],
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
  return { module, waits, sessions, bigs: () => bigs };
}

/** Resolves once `predicate` holds, checking after each turn of the event loop. */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

describe("FtpServer's timers and limits", () => {
  const servers: FtpServer[] = [];
  const clients: ControlClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.destroy();
    for (const server of servers.splice(0)) await server.close();
  });

  async function start(options: Partial<FtpServerOptions> = {}) {
    const clock = new FakeClock();
    const log: string[] = [];
    const test = testModule();
    const server = new FtpServer({
      acquireModules: () => ({ modules: [test.module], release: () => {} }),
      serverName: "t",
      idleTimeoutSeconds: 0,
      loginTimeoutSeconds: 0,
      preLoginCommands: new Set(["LOGIN", "NOOP", "WAIT", "BIG"]),
      clock,
      log: (message) => log.push(message),
      ...options,
    });
    servers.push(server);
    const { port } = await server.listen(0, "127.0.0.1");
    const connect = async (): Promise<ControlClient> => {
      const client = await ControlClient.connect(port);
      clients.push(client);
      return client;
    };
    return { server, clock, log, connect, port, waits: test.waits, sessions: test.sessions, bigs: test.bigs };
  }

  it("ends a session that has not logged in after TimeoutLogin, with proftpd's 421 and log line", async () => {
    const { clock, log, connect } = await start({ loginTimeoutSeconds: 5 });
    const client = await connect();
    expect(await client.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
    clock.advance(4_999);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    clock.advance(1);
    expect(await client.reply()).toEqual(["421 Login timeout (5 seconds): closing control connection"]);
    await client.closed();
    expect(log).toEqual(["session 1 (127.0.0.1[127.0.0.1]): Login timeout exceeded, disconnected"]);
  });

  it("says `1 second` for a TimeoutLogin of 1, as auth_login_timeout_cb does", async () => {
    const { clock, connect } = await start({ loginTimeoutSeconds: 1 });
    const client = await connect();
    await client.reply();
    clock.advance(1_000);
    expect(await client.reply()).toEqual(["421 Login timeout (1 second): closing control connection"]);
  });

  it("stops the login timer at login and starts TimeoutSession, which ends even a busy session", async () => {
    const { clock, log, connect } = await start({ loginTimeoutSeconds: 5, sessionTimeoutSeconds: 60 });
    const client = await connect();
    await client.reply();
    expect(await client.send("LOGIN ann")).toEqual(["230 User ann logged in"]);
    clock.advance(30_000);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    clock.advance(30_000);
    expect(await client.reply()).toEqual(["421 Session Timeout (60 seconds): closing control connection"]);
    await client.closed();
    expect(log).toEqual(["session 1 (127.0.0.1[127.0.0.1]): FTP session timed out, disconnected"]);
  });

  it("counts TimeoutIdle from the last command, and never while a command (a transfer) runs", async () => {
    const { clock, log, connect, waits } = await start({ idleTimeoutSeconds: 30 });
    const client = await connect();
    await client.reply();
    clock.advance(20_000);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    clock.advance(20_000);
    client.write("WAIT\r\n");
    await until(() => waits.length === 1);
    clock.advance(300_000);
    waits[0]?.(HandlerResults.HANDLED);
    expect(await client.reply()).toEqual(["200 waited"]);
    clock.advance(29_999);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    clock.advance(30_000);
    expect(await client.reply()).toEqual(["421 Idle timeout (30 seconds): closing control connection"]);
    expect(log).toEqual(["session 1 (127.0.0.1[127.0.0.1]): Client session idle timeout, disconnected"]);
  });

  it("destroys a closing connection after TimeoutLinger when its client does not read the last reply", async () => {
    const { server, clock, connect, bigs } = await start({ idleTimeoutSeconds: 10 });
    const client = await connect();
    await client.reply();
    client.socket.pause();
    client.write("BIG\r\n".repeat(64));
    // Until the kernel's buffers are full and a megabyte of replies waits in the server: no more BIG runs.
    let seen = -1;
    let stableTurns = 0;
    await until(() => {
      stableTurns = bigs() === seen ? stableTurns + 1 : 0;
      seen = bigs();
      return seen > 0 && stableTurns >= 200;
    });
    expect(bigs()).toBeLessThan(64);
    clock.advance(10_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(server.sessionCount).toBe(1);
    clock.advance(LINGER_MS);
    await until(() => server.sessionCount === 0);
  });

  it("refuses connections past MaxInstances before any session exists, with proftpd's log line", async () => {
    const { server, log, connect, port } = await start({ maxInstances: 2 });
    const first = await connect();
    const second = await connect();
    expect(await first.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
    expect(await second.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
    const third = net.connect(port, "127.0.0.1");
    let received = "";
    third.on("data", (chunk: Buffer) => (received += chunk.toString()));
    await new Promise((resolve) => third.once("close", resolve));
    expect(received).toBe("");
    expect(log).toEqual(["MaxInstances (2) reached, new connection denied"]);
    first.destroy();
    await until(() => server.sessionCount === 1);
    const fourth = await connect();
    expect(await fourth.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
  });

  it("backs off for a second when accept(2) runs out of descriptors, saying so once, then serves again", async () => {
    const created = vi.spyOn(net, "createServer");
    const { clock, log, connect, port } = await start({ maxInstances: 50 });
    const listener = created.mock.results[0]?.value as net.Server;
    created.mockRestore();
    const emfile = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    listener.emit("error", emfile);
    listener.emit("error", emfile);
    expect(log).toEqual([
      "unable to accept connection: accept EMFILE; refusing connections for 1000 ms (lower MaxInstances or raise the descriptor limit)",
    ]);
    // No session is open: one may start, the next is refused without a MaxInstances line.
    const first = await connect();
    expect(await first.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
    const refused = net.connect(port, "127.0.0.1");
    refused.on("error", () => {});
    await new Promise((resolve) => refused.once("close", resolve));
    expect(log).toHaveLength(1);
    clock.advance(DESCRIPTOR_BACKOFF_MS);
    const after = await connect();
    expect(await after.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
  });

  it("answers a connection past MaxConnectionsPerHost with its 530 instead of the greeting", async () => {
    const limit = { max: 1, message: LIMIT_MESSAGES.MaxConnectionsPerHost };
    const { log, connect } = await start({ maxConnectionsPerHost: limit });
    const first = await connect();
    expect(await first.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
    const second = await connect();
    expect(await second.reply()).toEqual([
      "530 Sorry, the maximum number of connections (1) for your host are already connected.",
    ]);
    await second.closed();
    expect(log).toEqual(["session 2 (127.0.0.1[127.0.0.1]): Connection refused (MaxConnectionsPerHost 1)"]);
    expect(await first.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });

  it("keeps the scoreboard of open sessions, with the user once logged in", async () => {
    const scoreboard = new Scoreboard();
    const { server, connect } = await start({ scoreboard });
    const client = await connect();
    await client.reply();
    expect([...scoreboard.entries()].map((e) => [e.remoteAddress, e.user])).toEqual([["127.0.0.1", undefined]]);
    await client.send("LOGIN ann");
    expect([...scoreboard.entries()].map((e) => e.user)).toEqual(["ann"]);
    client.destroy();
    await until(() => server.sessionCount === 0);
    expect([...scoreboard.entries()]).toEqual([]);
  });

  it("ends a session on request (mod_xfer.c's TimeoutNoTransfer) after the lines given", async () => {
    const { server, connect, sessions } = await start();
    const client = await connect();
    await client.reply();
    await client.send("NOOP");
    server.endSession(sessions[0] as SessionState, ["421 No transfer timeout (5 seconds): closing control connection"]);
    expect(await client.reply()).toEqual(["421 No transfer timeout (5 seconds): closing control connection"]);
    await client.closed();
  });

  it("labels session log lines with the client as proftpd does, (name[address])", () => {
    expect(sessionLabel({ id: 7, remoteAddress: "192.0.2.1" })).toBe("session 7 (192.0.2.1[192.0.2.1])");
  });
});
