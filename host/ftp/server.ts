/**
 * The FTP listener: proftpd's standalone daemon accepting connections, each
 * served by a ControlSession as a forked session process would be. Each
 * session keeps the module set it started with until it ends, as a forked
 * child keeps the modules it was forked with.
 *
 * The listener guards the process the sessions share: MaxInstances bounds the
 * sessions (so the descriptors the controls socket and the logs need stay
 * free), MaxConnectionsPerHost the sessions of one client address, and
 * running out of descriptors anyway (EMFILE) makes it refuse connections for
 * a moment instead of failing.
 *
 * With session workers the listener and the sessions are in different
 * processes: the primary's listener makes its checks and hands each connection
 * on (`handOff`), keeping its copy, paused and counted, until the session
 * ends; a worker's FtpServer never listens and serves the connections it is
 * given (`adopt`), as proftpd's master accepts and its forked child serves.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import { messageOf } from "../errors.js";
import type { ModuleSet } from "../modules/module-host.js";
import type { SessionState } from "../modules/module-api.js";
import { systemClock } from "../system/clock.js";
import type { Clock } from "../system/clock.js";
import { commandPath } from "./command-path.js";
import type { CommandLine } from "./command-line.js";
import { DataChannel } from "../data/data-channel.js";
import type { DataChannelSettings } from "../data/data-channel.js";
import type { DispatchOptions } from "./dispatch.js";
import { Scoreboard, connectionsFrom, limitReply } from "./scoreboard.js";
import type { ConnectionLimit, ScoreEntry } from "./scoreboard.js";
import type { FairScheduler } from "./scheduler.js";
import { ControlSession, LINGER_MS, sessionLabel } from "./session.js";
import type { SessionTimeouts } from "./session.js";
import { SessionInitCall } from "./session-init-call.js";

export interface FtpServerOptions {
  /** The module set for a new session (ModuleHost.acquireModules); released when the session ends. */
  readonly acquireModules: () => ModuleSet;
  /** ServerName, shown in the greeting. */
  readonly serverName: string;
  /** The 220 greeting for a connection to `localAddress` (dsod's ServerIdent); greeting() with serverName unless given. */
  readonly greeting?: (localAddress: string) => string;
  /** TimeoutIdle in seconds; 0 turns it off. */
  readonly idleTimeoutSeconds: number;
  /** TimeoutLogin in seconds; 0 turns it off. proftpd's default, 300, unless given. */
  readonly loginTimeoutSeconds?: number;
  /** TimeoutSession in seconds; off unless given. */
  readonly sessionTimeoutSeconds?: number;
  /** MaxInstances: sessions at once; 0 or absent, no limit. */
  readonly maxInstances?: number;
  /** MaxConnectionsPerHost: sessions from one client address, logged in or not. */
  readonly maxConnectionsPerHost?: ConnectionLimit | undefined;
  /** The sessions now open, for MaxConnectionsPerHost and mod_auth.c's MaxClients checks. */
  readonly scoreboard?: Scoreboard;
  /** Time for the session timers; the system clock unless given (tests move time by hand). */
  readonly clock?: Clock;
  /** Commands allowed before login; dispatch's PRE_LOGIN_COMMANDS unless given. */
  readonly preLoginCommands?: ReadonlySet<string>;
  /** <Limit> checks and command paths, passed on to dispatch. */
  readonly authorize?: DispatchOptions["authorize"];
  /** PassivePorts, MasqueradeAddress, AllowForeignAddress..., read when a data connection is made. */
  readonly dataSettings?: () => DataChannelSettings;
  /** Log lines: handler faults, over-long commands, failed session starts, socket errors. */
  readonly log?: (message: string) => void;
  /** Fair queueing of sessions' commands (SessionCPUShare); commands run as they come without it. */
  readonly scheduler?: FairScheduler<number>;
  /**
   * Serves each accepted connection elsewhere (a session worker) once it has
   * passed MaxInstances and MaxConnectionsPerHost; the listener keeps it on
   * its scoreboard and counted, and its socket open and paused, until
   * `ended()`, which destroys the socket (once written, if the caller ended
   * it with last lines).
   */
  readonly handOff?: (socket: net.Socket, id: number, ended: () => void) => void;
  /** A connection served here has closed (a worker tells the primary, which ends its copy). */
  readonly sessionClosed?: (id: number) => void;
}

/** proftpd's PR_TUNABLE_TIMEOUTLOGIN. */
export const DEFAULT_LOGIN_TIMEOUT = 300;

/** RFC 959's reply for a server that cannot serve a connection now. */
const SERVICE_NOT_AVAILABLE = "421 Service not available, closing control connection";

/** How long the listener refuses connections after accept(2) ran out of descriptors. */
export const DESCRIPTOR_BACKOFF_MS = 1000;

/** pr_session_disconnect's text for PR_SESS_DISCONNECT_SERVER_SHUTDOWN (src/session.c). */
export const DEFAULT_SHUTDOWN_MESSAGE = "Server shutting down";

/** proftpd's defaults for what the data connection needs, when the embedder gives none. */
export const DEFAULT_DATA_SETTINGS: DataChannelSettings = {
  passivePorts: undefined,
  masqueradeAddress: undefined,
  allowForeignAddress: false,
  connectTimeoutMs: 300_000,
};

function commandPathOf(session: SessionState, line: CommandLine): string | undefined {
  return commandPath(session, line);
}

/** The greeting with dsod's default ServerIdent: proftpd's shape, dsod's name (src/session.c pr_session_send_banner; host/static/server-ident.ts). */
export function greeting(serverName: string, localAddress: string): string {
  return `220 dsod Server (${serverName}) [${localAddress}]`;
}

export class FtpServer {
  readonly #options: FtpServerOptions;
  readonly #server: net.Server;
  readonly #sessions = new Set<ControlSession>();
  /** Connections handed off and not ended yet, by session id: their scoreboard entries. */
  readonly #handedOff = new Map<number, ScoreEntry>();
  readonly #dispatch: DispatchOptions;
  readonly #scoreboard: Scoreboard;
  readonly #clock: Clock;
  #nextId = 0;
  /** Until when the listener refuses connections after EMFILE; 0 when it accepts. */
  #backoffUntil = 0;

  constructor(options: FtpServerOptions) {
    this.#options = options;
    this.#scoreboard = options.scoreboard ?? new Scoreboard();
    this.#clock = options.clock ?? systemClock;
    // A connection served elsewhere is never read here: its bytes are the worker's.
    this.#server = net.createServer({ pauseOnConnect: options.handOff !== undefined }, (socket) =>
      this.#accept(socket),
    );
    // proftpd's MaxInstances check closes the new descriptor before any session exists; so does Node's maxConnections.
    this.#server.on("drop", () => {
      this.#applyLimits();
      if (this.#backoffUntil === 0)
        this.#log(`MaxInstances (${this.#server.maxConnections}) reached, new connection denied`);
    });
    this.#server.on("error", (error: NodeJS.ErrnoException) => this.#acceptFailed(error));
    this.#dispatch = {
      onFault: (fault) => {
        const reason = messageOf(fault.error);
        this.#log(
          `session ${fault.session}: ${fault.phase} handler of ${fault.module} for ${fault.command} failed: ${reason}`,
        );
      },
      pathOf: (session, line) => (session.user === undefined ? undefined : commandPathOf(session, line)),
      ...(options.preLoginCommands !== undefined && { preLoginCommands: options.preLoginCommands }),
      ...(options.authorize !== undefined && { authorize: options.authorize }),
    };
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host?: string): Promise<AddressInfo> {
    this.#applyLimits();
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Reads MaxInstances again (after a SIGHUP); a backoff keeps its lower bound until it ends. */
  #applyLimits(): void {
    if (this.#backoffUntil !== 0) {
      if (this.#clock.now() < this.#backoffUntil) return;
      this.#backoffUntil = 0;
    }
    const max = this.#options.maxInstances ?? 0;
    this.#server.maxConnections = max > 0 ? max : Infinity;
  }

  /**
   * accept(2) failed. Out of descriptors (libuv has already closed the pending
   * connections with its spare one), the listener takes no new session for
   * DESCRIPTOR_BACKOFF_MS, so open sessions, the controls socket and the logs
   * get the descriptors being freed; it says so once per backoff.
   */
  #acceptFailed(error: NodeJS.ErrnoException): void {
    if (error.code !== "EMFILE" && error.code !== "ENFILE") {
      this.#log(`unable to accept connection: ${error.message}`);
      return;
    }
    if (this.#backoffUntil !== 0) return;
    this.#backoffUntil = this.#clock.now() + DESCRIPTOR_BACKOFF_MS;
    this.#server.maxConnections = Math.max(1, this.sessionCount);
    this.#log(
      `unable to accept connection: ${error.message}; refusing connections for ${DESCRIPTOR_BACKOFF_MS} ms (lower MaxInstances or raise the descriptor limit)`,
    );
    this.#clock.schedule(DESCRIPTOR_BACKOFF_MS, () => this.#applyLimits());
  }

  /** Ends the session of `state` after sending `lines`, as pr_session_disconnect (mod_xfer.c's TimeoutNoTransfer). */
  endSession(state: SessionState, lines: readonly string[]): void {
    for (const session of this.#sessions) {
      if (session.state === state) session.end(lines);
    }
  }

  /** Sessions now open: served here, or handed off and not ended. */
  get sessionCount(): number {
    return this.#sessions.size + this.#handedOff.size;
  }

  /**
   * Stops accepting, tells every session `421 FTP server shutting down -
   * <message>` (the text of proftpd's shutdown notice, src/main.c) and ends
   * it; resolves once every connection has closed. The connections handed off
   * are left to whoever serves them: this resolves once each has `ended()`.
   */
  async close(message: string = DEFAULT_SHUTDOWN_MESSAGE): Promise<void> {
    const listener = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Adopted connections are not the listener's: their sessions are waited for one by one.
    const sessions = [...this.#sessions].map((session) => new Promise<void>((resolve) => session.onClose(resolve)));
    for (const session of this.#sessions) {
      if (!session.state.closing) session.end([`421 FTP server shutting down - ${message}`]);
    }
    await Promise.all([listener, ...sessions]);
  }

  #log(message: string): void {
    this.#options.log?.(message);
  }

  /** auth_scan_scoreboard's MaxConnectionsPerHost check, before the greeting: the 530, a log line, the end. */
  #overHostLimit(socket: net.Socket, id: number): boolean {
    const limit = this.#options.maxConnectionsPerHost;
    const address = socket.remoteAddress ?? "";
    // This connection is not on the scoreboard yet: proftpd counts its own entry too.
    if (limit === undefined || limit.max === 0 || connectionsFrom(this.#scoreboard.entries(), address) + 1 <= limit.max)
      return false;
    this.#log(
      `${sessionLabel({ id, remoteAddress: address })}: Connection refused (MaxConnectionsPerHost ${limit.max})`,
    );
    socket.on("error", () => {});
    socket.end(`530 ${limitReply(limit)}\r\n`, () => socket.destroy());
    this.#clock.schedule(LINGER_MS, () => socket.destroy());
    return true;
  }

  /**
   * The new session's modules, with its own instances of the guests among
   * them. A session the daemon has no guest memory for (ModuleMemoryTotal) is
   * told `421` and ended before its greeting, as a proftpd that cannot fork
   * serves no one, and the reason is logged.
   */
  #acquireModules(socket: net.Socket, id: number): ModuleSet | undefined {
    try {
      return this.#options.acquireModules();
    } catch (error) {
      const address = socket.remoteAddress ?? "";
      const reason = messageOf(error);
      this.#log(`${sessionLabel({ id, remoteAddress: address })}: Connection refused: ${reason}`);
      socket.on("error", () => {});
      socket.end(`${SERVICE_NOT_AVAILABLE}\r\n`, () => socket.destroy());
      this.#clock.schedule(LINGER_MS, () => socket.destroy());
      return undefined;
    }
  }

  #timeouts(): SessionTimeouts {
    const options = this.#options;
    return {
      idle: options.idleTimeoutSeconds,
      login: options.loginTimeoutSeconds ?? DEFAULT_LOGIN_TIMEOUT,
      session: options.sessionTimeoutSeconds ?? 0,
    };
  }

  #accept(socket: net.Socket): void {
    this.#applyLimits();
    const id = ++this.#nextId;
    if (this.#overHostLimit(socket, id)) return;
    if (this.#options.handOff !== undefined) this.#handOff(this.#options.handOff, socket, id);
    else this.#serve(socket, id);
  }

  /**
   * The listener's part of a connection served elsewhere: on the scoreboard
   * (its user is the worker's to know) and counted against MaxInstances, as
   * Node counts an open socket, until the session has ended. Its copy is
   * then destroyed, or, when the caller has ended it with last lines (a 421),
   * closed once they are written or after TimeoutLinger.
   */
  #handOff(handOff: NonNullable<FtpServerOptions["handOff"]>, socket: net.Socket, id: number): void {
    const entry: ScoreEntry = { remoteAddress: socket.remoteAddress ?? "", user: undefined };
    this.#handedOff.set(id, entry);
    this.#scoreboard.add(entry);
    socket.on("error", () => {});
    const ended = (): void => {
      if (!this.#handedOff.delete(id)) return;
      this.#scoreboard.delete(entry);
      if (!socket.writableEnded || socket.writableFinished) {
        socket.destroy();
        return;
      }
      socket.once("finish", () => socket.destroy());
      this.#clock.schedule(LINGER_MS, () => socket.destroy());
    };
    handOff(socket, id, ended);
  }

  /**
   * Serves a connection accepted elsewhere (by the primary, for a session
   * worker) as one accepted here after its checks, as session `id`: the id
   * the primary gave it, so every process's log lines name it alike.
   */
  adopt(socket: net.Socket, id: number): void {
    this.#serve(socket, id);
    // A socket accepted with pauseOnConnect stays paused until its reader says otherwise.
    socket.resume();
  }

  #serve(socket: net.Socket, id: number): void {
    const sessionClosed = this.#options.sessionClosed;
    const set = this.#acquireModules(socket, id);
    if (set === undefined) {
      if (sessionClosed !== undefined) socket.once("close", () => sessionClosed(id));
      return;
    }
    const dataSettings = this.#options.dataSettings ?? (() => DEFAULT_DATA_SETTINGS);
    const session: ControlSession = new ControlSession(
      socket,
      (control): SessionState => {
        const endpoints = { localAddress: socket.localAddress ?? "", remoteAddress: socket.remoteAddress ?? "" };
        return {
          id,
          ...endpoints,
          modules: set.modules,
          instances: set.instances,
          pendingUser: undefined,
          user: undefined,
          account: undefined,
          fs: undefined,
          cwd: "/",
          home: "/",
          transferType: "A",
          data: new DataChannel(endpoints, dataSettings),
          control,
          closing: false,
        };
      },
      {
        dispatch: this.#dispatch,
        timeouts: this.#timeouts(),
        clock: this.#clock,
        log: (message) => this.#log(message),
        ...(this.#options.scheduler !== undefined && { scheduler: this.#options.scheduler }),
        closed: () => {
          this.#sessions.delete(session);
          this.#scoreboard.delete(session.state);
          set.release();
          sessionClosed?.(id);
        },
      },
    );
    this.#sessions.add(session);
    this.#scoreboard.add(session.state);

    // modules_session_init: newest module first; a failing one ends the session, after what it sent (a BanMessage).
    const init = new SessionInitCall(session.state.remoteAddress);
    try {
      for (let m = set.modules.length - 1; m >= 0 && !init.disconnected; m--)
        set.modules[m]?.sessionInit?.(init, set.instances);
    } catch (error) {
      // A module that disconnected the client (pr_session_disconnect) has said why; proftpd logs nothing more.
      if (!init.disconnected) {
        const reason = messageOf(error);
        this.#log(`${sessionLabel(session.state)}: session init failed: ${reason}`);
      }
      if (init.lines.length > 0) session.end(init.lines);
      else session.destroy();
      return;
    }
    if (init.disconnected) {
      // pr_session_disconnect in a sess_init: what it sent, then the end, never the greeting.
      session.end(init.lines);
      return;
    }
    const localAddress = socket.localAddress ?? "";
    session.open([this.#options.greeting?.(localAddress) ?? greeting(this.#options.serverName, localAddress)]);
  }
}
