import { afterEach, describe, expect, it } from "vitest";
import { FtpServer } from "../../../host/ftp/server.js";
import { MAX_QUEUED_LINES } from "../../../host/ftp/session.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, SessionState } from "../../../host/modules/module-api.js";
import { ControlClient } from "../../helpers/control-client.js";

/** A module whose WAIT command answers only when the test says so (or ABOR aborts it), as a transfer does. */
function waitingModule() {
  const waits: Array<{ finish: (result: HandlerResult) => void; session: SessionState }> = [];
  let noops = 0;
  const handlers: CommandHandler[] = [
    {
      command: "WAIT",
      phase: Phases.CMD,
      run: (cmd, session) =>
        new Promise<HandlerResult>((resolve) => {
          const unregister = session.control.onAbort(() => {
            session.control.send("426", "Transfer aborted. Data connection closed.");
            resolve(HandlerResults.ERROR);
          });
          session.control.send("150", "waiting");
          waits.push({
            session,
            finish: (result) => {
              unregister();
              cmd.addResponse("226", "done");
              resolve(result);
            },
          });
        }),
    },
    {
      command: "ABOR",
      phase: Phases.CMD,
      run: (cmd) => {
        cmd.addResponse("226", "Abort successful");
        return HandlerResults.HANDLED;
      },
    },
    {
      command: "NOOP",
      phase: Phases.CMD,
      run: (cmd) => {
        noops++;
        // A long reply (as HELP's), so that a client that never reads fills every buffer quickly.
        cmd.addResponse("200", cmd.arg === "big" ? "x".repeat(1000) : "NOOP command successful");
        return HandlerResults.HANDLED;
      },
    },
  ];
  const module: EngineModule = {
    name: "mod_wait.c",
    kind: "static",
    commands: handlers,
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
  return { module, waits, noops: () => noops };
}

async function start(module: EngineModule) {
  const server = new FtpServer({
    acquireModules: () => ({ modules: [module], release: () => {} }),
    serverName: "t",
    idleTimeoutSeconds: 0,
    preLoginCommands: new Set(["WAIT", "NOOP", "ABOR"]),
  });
  const { port } = await server.listen(0, "127.0.0.1");
  const client = await ControlClient.connect(port);
  expect(await client.reply()).toEqual(["220 dsod Server (t) [127.0.0.1]"]);
  return { server, client };
}

/** Resolves once `predicate` holds, checking after each turn of the event loop. */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

describe("ControlSession", () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it("runs commands one at a time: lines sent during a long command are answered after it, in order", async () => {
    const wait = waitingModule();
    const { server, client } = await start(wait.module);
    stop = () => server.close();
    client.write("WAIT\r\nNOOP\r\nNOOP\r\n");
    expect(await client.reply()).toEqual(["150 waiting"]);
    await until(() => wait.waits.length === 1);
    expect(wait.noops()).toBe(0);
    wait.waits[0]?.finish(HandlerResults.HANDLED);
    expect(await client.reply()).toEqual(["226 done"]);
    expect(await client.reply()).toEqual(["200 NOOP command successful"]);
    expect(await client.reply()).toEqual(["200 NOOP command successful"]);
  });

  it("ABOR aborts the command in progress at once, then is answered itself (RFC 959: 426, then 226)", async () => {
    const wait = waitingModule();
    const { server, client } = await start(wait.module);
    stop = () => server.close();
    expect(await client.send("WAIT")).toEqual(["150 waiting"]);
    client.write("ABOR\r\n");
    expect(await client.reply()).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(await client.reply()).toEqual(["226 Abort successful"]);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });

  it("stops reading a client that does not read its replies, and answers every command once it does", async () => {
    const wait = waitingModule();
    const { server, client } = await start(wait.module);
    stop = () => server.close();
    client.socket.pause();
    const total = 40_000;
    client.write("NOOP big\r\n".repeat(total));
    // 40 MB of replies: once the kernel's buffers hold what they can, the server
    // stops taking commands until the client reads; without backpressure it would
    // run all of them and hold their replies in memory.
    let seen = -1;
    let stableTurns = 0;
    await until(() => {
      stableTurns = wait.noops() === seen ? stableTurns + 1 : 0;
      seen = wait.noops();
      return seen > MAX_QUEUED_LINES && stableTurns >= 200;
    });
    expect(wait.noops()).toBeLessThan(total / 2);
    client.socket.resume();
    await until(() => wait.noops() === total);
    client.destroy();
  });

  it("tells open sessions the server is shutting down, also during a long command", async () => {
    const wait = waitingModule();
    const { server, client } = await start(wait.module);
    expect(await client.send("WAIT")).toEqual(["150 waiting"]);
    const closed = server.close();
    expect(await client.reply()).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(await client.reply()).toEqual(["421 FTP server shutting down - Server shutting down"]);
    await client.closed();
    await closed;
  });
});

describe("ControlSession and ABOR sent as urgent data", () => {
  it("aborts on `ABOR\\r` whose LF never comes (Python's ftplib sends it with MSG_OOB)", async () => {
    const wait = waitingModule();
    const { server, client } = await start(wait.module);
    try {
      expect(await client.send("WAIT")).toEqual(["150 waiting"]);
      client.write("ABOR\r");
      expect(await client.reply()).toEqual(["426 Transfer aborted. Data connection closed."]);
      expect(await client.reply()).toEqual(["226 Abort successful"]);
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    } finally {
      client.destroy();
      await server.close();
    }
  });
});
