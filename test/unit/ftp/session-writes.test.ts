/**
 * How ControlSession hands replies to its socket: the replies of pipelined
 * commands in one write, a lone command's reply before the session reads
 * again. A fake socket records each write; a manual event loop drives the
 * FairScheduler turn by turn, as in scheduler.test.ts.
 */
import { EventEmitter } from "node:events";
import type net from "node:net";
import { describe, expect, it } from "vitest";
import { FairScheduler } from "../../../host/ftp/scheduler.js";
import { ControlSession } from "../../../host/ftp/session.js";
import type { SessionHooks } from "../../../host/ftp/session.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { EngineModule, HandlerResult, SessionState } from "../../../host/modules/module-api.js";
import type { Clock } from "../../../host/system/clock.js";

const NOOP_REPLY = "200 NOOP command successful\r\n";

/** The socket calls ControlSession makes, each write recorded as it is made. */
class FakeSocket extends EventEmitter {
  readonly writes: string[] = [];
  destroyed = false;
  writableEnded = false;
  writableLength = 0;
  noDelay = false;

  setNoDelay(noDelay: boolean): this {
    this.noDelay = noDelay;
    return this;
  }

  write(text: string | Buffer): boolean {
    this.writes.push(text.toString());
    this.emit("written");
    return true;
  }

  end(text: string): this {
    this.writes.push(text);
    this.writableEnded = true;
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    return this;
  }

  pause(): this {
    return this;
  }

  resume(): this {
    return this;
  }

  /** What the client sends: one chunk, read as the session reads a socket's. */
  receive(text: string): void {
    this.emit("data", Buffer.from(text, "latin1"));
  }
}

/** NOOP as mod_core answers it, and WAIT, which replies 150 at once and 226 when the test settles it. */
function testModule(onNoop: () => void) {
  const waits: Array<(result: HandlerResult) => void> = [];
  const module: EngineModule = {
    name: "mod_writes.c",
    kind: "static",
    commands: [
      {
        command: "NOOP",
        phase: Phases.CMD,
        run: (cmd) => {
          onNoop();
          cmd.addResponse("200", "NOOP command successful");
          return HandlerResults.HANDLED;
        },
      },
      {
        command: "WAIT",
        phase: Phases.CMD,
        run: (cmd, session) =>
          new Promise<HandlerResult>((resolve) => {
            session.control.send("150", "waiting");
            waits.push((result) => {
              cmd.addResponse("226", "done");
              resolve(result);
            });
          }),
      },
    ],
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
  return { module, waits };
}

/** A loop of deferred calls run turn by turn; idle time grows only when the test says the loop polled. */
class Loop {
  now = 0;
  idle = 0;
  readonly deferred: Array<() => void> = [];

  scheduler(shareMs = 0, sliceMs?: number): FairScheduler<number> {
    return new FairScheduler<number>({
      shareMs,
      ...(sliceMs !== undefined && { sliceMs }),
      now: () => this.now,
      idleTime: () => this.idle,
      defer: (next) => this.deferred.push(next),
      later: () => {},
    });
  }

  /** Runs what was deferred to the next turn; false when nothing was. */
  turn(): boolean {
    const next = this.deferred.shift();
    next?.();
    return next !== undefined;
  }
}

function open(options: { scheduler?: FairScheduler<number>; onNoop?: () => void; login?: number } = {}) {
  const socket = new FakeSocket();
  const { module, waits } = testModule(options.onNoop ?? (() => {}));
  const timers: Array<() => void> = [];
  const clock: Clock = {
    now: () => 0,
    schedule: (_ms, run) => {
      timers.push(run);
      return () => {};
    },
  };
  const hooks: SessionHooks = {
    dispatch: { preLoginCommands: new Set(["NOOP", "WAIT"]) },
    timeouts: { idle: 0, login: options.login ?? 0, session: 0 },
    clock,
    log: () => {},
    closed: () => {},
    ...(options.scheduler !== undefined && { scheduler: options.scheduler }),
  };
  const session = new ControlSession(
    socket as unknown as net.Socket,
    (control) =>
      ({
        id: 1,
        localAddress: "127.0.0.1",
        remoteAddress: "127.0.0.1",
        modules: [module],
        pendingUser: undefined,
        user: undefined,
        account: undefined,
        fs: undefined,
        cwd: "/",
        home: "/",
        transferType: "A",
        control,
        closing: false,
      }) as unknown as SessionState,
    hooks,
  );
  session.open(["220 ready"]);
  socket.writes.length = 0;
  return { socket, waits, timers };
}

describe("ControlSession's writes", () => {
  it("turns Nagle off on the control connection: a reply is not held for the previous one's ACK", () => {
    expect(open().socket.noDelay).toBe(true);
  });

  it("writes a lone command's reply at once, before the session reads again", () => {
    const { socket } = open({ scheduler: new Loop().scheduler() });
    socket.receive("NOOP\r\n");
    expect(socket.writes).toEqual([NOOP_REPLY]);
  });

  it("writes the replies of a pipelined batch in one write, in order", () => {
    const { socket } = open();
    socket.receive("NOOP\r\n".repeat(32));
    expect(socket.writes).toEqual([NOOP_REPLY.repeat(32)]);
  });

  it("holds replies while its commands wait for the scheduler's turn, and writes them when the turn ends", () => {
    const loop = new Loop();
    const { socket } = open({ scheduler: loop.scheduler() });
    loop.idle++;
    socket.receive("NOOP\r\n".repeat(8));
    // The first ran at once; its reply waits for the turn that runs the other seven (the clock does not move here).
    expect(socket.writes).toEqual([]);
    expect(loop.turn()).toBe(true);
    expect(socket.writes).toEqual([NOOP_REPLY.repeat(8)]);
    expect(loop.turn()).toBe(false);
  });

  it("writes once per turn, not once per command, when each turn runs one command", () => {
    const loop = new Loop();
    const { socket } = open({ scheduler: loop.scheduler(0, 0) });
    loop.idle++;
    socket.receive("NOOP\r\n".repeat(4));
    expect(socket.writes).toEqual([]);
    let turns = 0;
    while (loop.turn()) turns++;
    expect(turns).toBe(3);
    // The first turn's write carries the reply held since the read as well.
    expect(socket.writes).toEqual([NOOP_REPLY.repeat(2), NOOP_REPLY, NOOP_REPLY]);
  });

  it("writes what it holds when the next turn waits on the session's allowance, not just the loop", () => {
    const loop = new Loop();
    const scheduler = loop.scheduler(1);
    // The command takes the session far over its allowance of 1 ms per second.
    const { socket } = open({ scheduler, onNoop: () => scheduler.charge(1, 1000) });
    loop.idle++;
    socket.receive("NOOP\r\nNOOP\r\n");
    expect(scheduler.waiting).toBe(1);
    expect(socket.writes).toEqual([NOOP_REPLY]);
  });

  it("writes held replies and a transfer's 150 before it runs, its 226 when it ends, then the rest", async () => {
    const { socket, waits } = open();
    socket.receive("NOOP\r\nWAIT\r\nNOOP\r\n");
    expect(socket.writes).toEqual([`${NOOP_REPLY}150 waiting\r\n`]);
    const written = new Promise((resolve) => {
      socket.on("written", () => socket.writes.length === 3 && resolve(undefined));
    });
    waits[0]?.(HandlerResults.HANDLED);
    await written;
    expect(socket.writes).toEqual([`${NOOP_REPLY}150 waiting\r\n`, "226 done\r\n", NOOP_REPLY]);
  });

  it("answers a Telnet option after the replies it holds, and goes on with the batch", () => {
    const loop = new Loop();
    const { socket } = open({ scheduler: loop.scheduler() });
    loop.idle++;
    socket.receive("NOOP\r\nNOOP\r\n");
    expect(socket.writes).toEqual([]);
    // IAC WILL 1, refused with IAC DONT 1.
    socket.receive("\xff\xfb\x01");
    expect(socket.writes).toEqual([NOOP_REPLY, "255,254,1"]);
    while (loop.turn());
    expect(socket.writes).toEqual([NOOP_REPLY, "255,254,1", NOOP_REPLY]);
  });

  it("disconnects a client that keeps sending one over-long line, and runs nothing it sent", () => {
    const { socket } = open();
    socket.receive(`NOOP${"x".repeat(3 * 4102)}\r\nNOOP\r\n`);
    expect(socket.destroyed).toBe(true);
    expect(socket.writes).toEqual([]);
  });

  it("sends held replies ahead of the last lines when the session ends meanwhile", () => {
    const loop = new Loop();
    const { socket, timers } = open({ scheduler: loop.scheduler(), login: 300 });
    loop.idle++;
    socket.receive("NOOP\r\nNOOP\r\nNOOP\r\n");
    expect(socket.writes).toEqual([]);
    for (const expire of timers) expire();
    expect(socket.writes).toEqual([`${NOOP_REPLY}421 Login timeout (300 seconds): closing control connection\r\n`]);
  });
});
