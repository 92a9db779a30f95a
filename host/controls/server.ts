/**
 * The controls server: mod_ctrls's half of `ftpdctl`, on an AF_UNIX socket
 * (src/ctrls.c pr_ctrls_accept / pr_ctrls_recv_request, modules/mod_ctrls.c).
 *
 * Each connection carries one request and gets one response:
 *   1. identify the peer by SO_PEERCRED (the kernel's word, not the client's),
 *      or, without the peercred addon, by a file the client creates
 *      (file-identity.ts), the request then read before the ACL is checked;
 *   2. check ControlsSocketACL, at accept time as proftpd does, so a denied
 *      client gets `access denied` whatever it asks, `help` included, and is
 *      closed without ever taking one of the ControlsMaxClients slots;
 *   3. take a slot, or answer `too many controls clients` when none is free;
 *   4. decode one request within REQUEST_LIMITS before `requestTimeoutMs`;
 *   5. dispatch: an enabled action (its ACL before its arguments), or
 *      `unsupported action requested`; mod_ctrls's own `help`, `lsctrl`,
 *      `insctrl` and `rmctrl` (host/controls/ctrls-actions.ts) are always
 *      registered beside the daemon's, and the loaded modules' own
 *      (module-controls.ts) for as long as they are loaded;
 *   6. send the response and close.
 *
 * What a client can make the daemon hold is bounded whatever it does: one
 * request (REQUEST_LIMITS) and one response (RESPONSE_LIMITS) per served
 * connection, at most ControlsMaxClients of them, each for at most
 * `requestTimeoutMs`; and at most MAX_REFUSED_OPEN refused connections, each
 * answered with one short line. Bytes sent after the request are read and
 * dropped, never buffered.
 *
 * Unlike proftpd, requests are handled as soon as they are complete, not on
 * the next tick of mod_ctrls.c's alarm-driven ControlsInterval timer (about
 * 1.2 s per ftpdctl call with ControlsInterval 1 on proftpd 1.3.8). As
 * proftpd's master handles one request at a time (pr_ctrls_run_ctrls), they
 * are handled one at a time in arrival order: a handler that answers later (a
 * module change every session worker applies) finishes before the next
 * request starts, which keeps an insmod atomic.
 *
 * `dispatchRequest` and the ControlsLog formatters are pure; the class is
 * the shell around them.
 */
import {
  chmodSync,
  chownSync,
  closeSync,
  linkSync,
  lstatSync,
  openSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { createConnection, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { DsoError, ErrorCodes, messageOf } from "../errors.js";
import { SystemAccounts } from "../system/accounts.js";
import { aclAllows, DEFAULT_SOCKET_ACL, EMPTY_ACL_TABLE } from "./acl.js";
import type { Acl, AclTable } from "./acl.js";
import { ControlsRegistry, ctrlsControlsActions } from "./ctrls-actions.js";
import { formatTimestamp } from "../log/log-format.js";
import { FileIdentity } from "./file-identity.js";
import type { IdentifyOutcome } from "./file-identity.js";
import { peerCredentials, peerCredentialsUnavailable } from "./peer-credentials.js";
import { ControlsStatus, encodeMessage, MessageDecoder, REQUEST_LIMITS } from "./wire.js";
import type { DecodedMessage } from "./wire.js";
import {
  ACCESS_DENIED,
  acceptedMessage,
  closedMessage,
  dispatchRequest,
  exchangeMessages,
  RequestQueue,
  responseFor,
} from "./exchange.js";
import type { ControlsCaller, ControlsResult, ControlsAction } from "./exchange.js";

/**
 * The trace log (the module host's Tracer), written here so that the controls
 * need nothing of the module host: the modules' own controls depend on this folder.
 */
export interface Tracer {
  level(channel: string): number;
  write(channel: string, level: number, message: string): void;
}

/** Names for ids, as pr_auth_uid2name / gid2name (the number itself when unknown). */
export interface AccountNames {
  /** Asynchronous: a uid never seen before runs getent, and every session goes on meanwhile. */
  lookupUserName(uid: number): Promise<string>;
  lookupGroupName(gid: number): Promise<string>;
}

export interface ControlsServerOptions {
  /** ControlsSocket: an absolute path of at most 107 bytes (sun_path). */
  readonly socketPath: string;
  /** ControlsSocketOwner: who the socket file belongs to; unchanged (the daemon's user) when absent. */
  readonly socketOwner?: { readonly uid: number; readonly gid: number } | undefined;
  /** ControlsSocketMode: the socket file's permissions; DEFAULT_SOCKET_MODE (mod_ctrls's 0777) when absent. */
  readonly socketMode?: number | undefined;
  /** The daemon's controls (mod_dso's); mod_ctrls's own are added by the server. */
  readonly actions: readonly ControlsAction[];
  /** The loaded modules' controls, read per request: they come with insmod and go with rmmod. */
  readonly moduleActions?: () => readonly ControlsAction[];
  /** ControlsACLs, for mod_ctrls's own lsctrl, insctrl and rmctrl; read per request. Everyone is denied when absent. */
  readonly ctrlsAcls?: () => AclTable;
  /** ControlsSocketACL, read per connection so that a reloaded config applies at once. */
  readonly socketAcl?: () => Acl;
  /** ControlsMaxClients: connections served at once; more are refused with a reply. */
  readonly maxClients?: number;
  /**
   * How long a client may take to send its whole request, from connect. proftpd
   * has no such limit on the socket, only ControlsAuthFreshness (10 s) on the
   * client's socket file; without one a silent client would hold a slot forever.
   */
  readonly requestTimeoutMs?: number;
  /** ControlsLog: a file that gets proftpd's mod_ctrls lines. */
  readonly controlsLog?: string;
  readonly accounts?: AccountNames;
  /** The `ctrls` trace channel. */
  readonly tracer?: Tracer;
  /** The daemon's log: told at start how callers are identified without the addon, and once why one could not be. */
  readonly log?: (priority: "error" | "notice", message: string) => void;
}

/** mod_ctrls's defaults: ControlsMaxClients 5; ControlsAuthFreshness 10 s. */
export const DEFAULT_MAX_CLIENTS = 5;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** modules/mod_ctrls.c MOD_CTRLS_VERSION, the tag of every ControlsLog line. */
export const MOD_CTRLS_VERSION = "mod_ctrls/0.9.5";

/**
 * mod_ctrls's PR_CTRLS_MODE: identity comes from SO_PEERCRED and every
 * request passes ControlsSocketACL and the action's ACL, so by default the
 * file mode is not the guard; a tighter mode would turn `access denied` into a
 * connect error for exactly the users Debian's `lsmod allow user *` admits.
 * ControlsSocketMode (with ControlsSocketOwner) lets the kernel keep other
 * users from connecting at all.
 */
export const DEFAULT_SOCKET_MODE = 0o777;

/** How long an answered client may keep its connection open before it is closed for it. */
const REPLY_GRACE_MS = 1_000;

/**
 * Refused connections (denied, unidentified, busy) kept open at once, each
 * for at most REPLY_GRACE_MS after its answer so that a client still writing
 * its request reads the answer instead of EPIPE. Past this the oldest is
 * closed at once: however fast denied users connect, they hold a bounded
 * number of the daemon's descriptors and no slot.
 */
export const MAX_REFUSED_OPEN = 32;

const TRACE_CHANNEL = "ctrls";

/** `2026-11-26 18:57:02,393 mod_ctrls/0.9.5[8245]: <message>`, local time like proftpd's log files. */
export function formatControlsLogLine(when: Date, pid: number, message: string): string {
  return `${formatTimestamp(when)} ${MOD_CTRLS_VERSION}[${pid}]: ${message}`;
}

function socketError(message: string, cause?: unknown): DsoError {
  return new DsoError(ErrorCodes.CTRLS_SOCKET, message, cause === undefined ? {} : { cause });
}

/** Resolves with true when a server answers on `path`, false when the file is a dead socket. */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") {
        resolve(false);
      } else {
        reject(socketError(`cannot check the controls socket '${path}': ${error.message}`, error));
      }
    });
  });
}

export class ControlsServer {
  readonly #path: string;
  readonly #registry = new ControlsRegistry();
  readonly #socketAcl: () => Acl;
  readonly #maxClients: number;
  readonly #timeoutMs: number;
  readonly #logFile: string | undefined;
  readonly #accounts: AccountNames;
  readonly #tracer: Tracer | undefined;
  readonly #daemonLog: (priority: "error" | "notice", message: string) => void;
  /** How callers are identified when the kernel cannot be asked (no peercred addon); set by start(). */
  #fileIdentity: FileIdentity | undefined;
  /** Why callers could not be identified, as last logged: a missing addon is logged once, not per caller. */
  #identityProblem: string | undefined;
  /** Every open connection, refused ones included, so that close() ends them all. */
  readonly #sockets = new Set<Socket>();
  /** The connections being served; ControlsMaxClients caps this set. */
  readonly #serving = new Set<Socket>();
  /** Refused connections still open, oldest first; MAX_REFUSED_OPEN caps this set. */
  readonly #refused = new Set<Socket>();
  #server: Server | undefined;
  readonly #owner: { readonly uid: number; readonly gid: number } | undefined;
  readonly #mode: number;
  /** The socket file this server created, to remove only that one on close. */
  #bound: { dev: number; ino: number } | undefined;
  #logFd: number | undefined;
  /** The request being handled, then the ones waiting, in arrival order. */
  readonly #queue = new RequestQueue();

  /**
   * Runs `run` as one request of the queue: requests that arrive meanwhile
   * wait for it (the daemon's SIGHUP, so they see the reloaded module set).
   */
  exclusive<T>(run: () => Promise<T>): Promise<T> {
    return this.#queue.run(run);
  }

  constructor(options: ControlsServerOptions) {
    this.#path = options.socketPath;
    this.#owner = options.socketOwner;
    this.#mode = options.socketMode ?? DEFAULT_SOCKET_MODE;
    this.#registry.add(options.actions);
    // `rmctrl all` stops listening once its answer is on its way, as mod_ctrls closes its socket.
    const stopListening = (): void => queueMicrotask(() => this.#server?.close());
    this.#registry.add(
      ctrlsControlsActions(this.#registry, options.ctrlsAcls ?? (() => EMPTY_ACL_TABLE), stopListening),
    );
    if (options.moduleActions !== undefined) this.#registry.addSource(options.moduleActions);
    this.#socketAcl = options.socketAcl ?? (() => DEFAULT_SOCKET_ACL);
    this.#maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#logFile = options.controlsLog;
    this.#accounts = options.accounts ?? new SystemAccounts();
    this.#tracer = options.tracer;
    this.#daemonLog = options.log ?? (() => {});
  }

  get socketPath(): string {
    return this.#path;
  }

  /**
   * Binds the socket. A socket file nobody answers on is left over from a
   * crash and is replaced; one a server answers on means another daemon owns
   * it, and start fails rather than steal it. Any other file is left alone.
   * Throws DsoError (FILE).
   */
  async start(): Promise<void> {
    if (this.#server !== undefined) {
      throw socketError(`the controls server is already listening on '${this.#path}'`);
    }
    await this.#removeStaleSocket();
    const noPeerCred = peerCredentialsUnavailable();
    if (noPeerCred !== undefined) {
      this.#fileIdentity = FileIdentity.prepare(this.#path);
      this.#daemonLog("notice", `${MOD_CTRLS_VERSION}: ${this.#fileIdentity.notice(noPeerCred)}`);
    }
    if (this.#logFile !== undefined) {
      try {
        this.#logFd = openSync(this.#logFile, "a", 0o640);
      } catch (cause) {
        throw socketError(`unable to open ControlsLog '${this.#logFile}': ${(cause as Error).message}`, cause);
      }
    }
    const server = createServer((socket) => this.#accept(socket));
    try {
      // Bound under a private name and linked into place: link() fails if another dsod took the
      // path meanwhile, so the check for a stale socket and the bind cannot race.
      const temporary = path.join(path.dirname(this.#path), `.dsod-${process.pid}-${Date.now()}.sock`);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ path: temporary }, () => {
          server.off("error", reject);
          resolve();
        });
      });
      try {
        chmodSync(temporary, this.#mode);
        if (this.#owner !== undefined) chownSync(temporary, this.#owner.uid, this.#owner.gid);
        linkSync(temporary, this.#path);
      } finally {
        unlinkSync(temporary);
      }
      const bound = statSync(this.#path);
      this.#bound = { dev: bound.dev, ino: bound.ino };
    } catch (cause) {
      server.close();
      this.#closeLog();
      if ((cause as NodeJS.ErrnoException).code === "EEXIST") {
        throw socketError(`another dsod bound '${this.#path}' while this one was starting`, cause);
      }
      throw socketError(`unable to bind the controls socket '${this.#path}': ${(cause as Error).message}`, cause);
    }
    this.#server = server;
    // A failed accept (out of descriptors) is an 'error' event; unheard, it would end the daemon.
    server.on("error", (error) => this.#trace(1, `unable to accept a controls connection: ${error.message}`));
  }

  /** Drops the clients being served, stops listening and removes the socket file. */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) {
      return;
    }
    this.#server = undefined;
    for (const socket of this.#sockets) {
      socket.destroy();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Only our own socket is removed: a file or another dsod's socket now at the path stays.
    try {
      const now = lstatSync(this.#path);
      if (this.#bound !== undefined && now.dev === this.#bound.dev && now.ino === this.#bound.ino)
        unlinkSync(this.#path);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw cause;
    }
    this.#bound = undefined;
    this.#closeLog();
  }

  async #removeStaleSocket(): Promise<void> {
    let isSocket: boolean;
    try {
      isSocket = lstatSync(this.#path).isSocket();
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
        return;
      }
      throw socketError(`cannot check the controls socket '${this.#path}': ${(cause as Error).message}`, cause);
    }
    if (!isSocket) {
      throw socketError(`'${this.#path}' exists and is not a socket`);
    }
    if (await probe(this.#path)) {
      throw socketError(`another dsod is running on '${this.#path}'`);
    }
    unlinkSync(this.#path);
  }

  #closeLog(): void {
    if (this.#logFd !== undefined) {
      closeSync(this.#logFd);
      this.#logFd = undefined;
    }
  }

  #log(message: string): void {
    if (this.#logFd === undefined) {
      return;
    }
    try {
      writeSync(this.#logFd, `${formatControlsLogLine(new Date(), process.pid, message)}\n`);
    } catch {
      // As proftpd's log writes: a full disk must not stop the controls from answering.
    }
  }

  #trace(level: number, message: string): void {
    if (this.#tracer !== undefined && this.#tracer.level(TRACE_CHANNEL) >= level) {
      this.#tracer.write(TRACE_CHANNEL, level, message);
    }
  }

  #accept(socket: Socket): void {
    // A client that vanishes mid-reply (EPIPE, ECONNRESET) is its own problem, not the daemon's.
    socket.on("error", () => {});
    // One deadline for the whole connection, not an idle timer: a client
    // dripping a byte at a time, or never closing after its answer, still
    // gives its slot back.
    const deadline = setTimeout(() => socket.destroy(), this.#timeoutMs);
    this.#sockets.add(socket);
    socket.once("close", () => {
      clearTimeout(deadline);
      this.#sockets.delete(socket);
      this.#serving.delete(socket);
      this.#refused.delete(socket);
    });
    if (this.#fileIdentity !== undefined) {
      this.#trace(5, `checking client credentials using a file in '${this.#fileIdentity.directory}'`);
      this.#fileIdentity.identify(socket, Date.now, (outcome) => this.#identified(socket, outcome));
      return;
    }
    this.#trace(5, "checking client credentials using SO_PEERCRED");
    let ids;
    try {
      ids = peerCredentials(socket);
    } catch (error) {
      // Logged once: a reason that locks out everyone (the socket's) should not flood the log.
      const reason = (error as Error).message;
      if (reason !== this.#identityProblem) {
        this.#identityProblem = reason;
        this.#daemonLog("error", `${MOD_CTRLS_VERSION}: ${reason}`);
      }
      this.#unidentified(socket, reason);
      return;
    }
    this.#admit(socket, ids, undefined);
  }

  /** After a file identification: a caller with no pid (the kernel was not asked), or a refusal. */
  #identified(socket: Socket, outcome: IdentifyOutcome): void {
    if ("refused" in outcome) {
      this.#unidentified(socket, `cannot check client credentials: ${outcome.refused}`);
      return;
    }
    this.#admit(socket, { uid: outcome.uid, gid: outcome.gid, pid: -1 }, outcome.request);
  }

  /** proftpd's line first; then why, for whoever is locked out. */
  #unidentified(socket: Socket, reason: string): void {
    this.#trace(1, reason);
    this.#refuse(socket, undefined, { status: ControlsStatus.ACCESS_DENIED, lines: ["access denied", `  ${reason}`] });
  }

  /** Names an identified caller without blocking (a new uid's getent runs beside the sessions), then serves it. */
  #admit(socket: Socket, ids: { uid: number; gid: number; pid: number }, request: DecodedMessage | undefined): void {
    const { uid, gid, pid } = ids;
    // The names are for ControlsLog and the actions; the look-up never fails (an unknown id is its number).
    void Promise.all([this.#accounts.lookupUserName(uid), this.#accounts.lookupGroupName(gid)]).then(([user, group]) =>
      this.#serve(socket, { uid, gid, pid, user, group }, request),
    );
  }

  /**
   * Serves a named caller: the socket ACL, a slot, then its request, already
   * read (`request`) when a file identified it, else read here.
   */
  #serve(socket: Socket, caller: ControlsCaller, request: DecodedMessage | undefined): void {
    this.#log(acceptedMessage(caller));
    if (socket.destroyed) {
      // The client left while its names were looked up: its lines are logged all the same.
      this.#log(closedMessage(caller));
      return;
    }
    socket.once("close", () => this.#log(closedMessage(caller)));
    // The socket ACL comes before the slot count (proftpd's ctrls_recv_cl_reqs checks it at accept
    // too): a denied user is answered and closed at once, so no number of them can make root busy.
    if (!aclAllows(this.#socketAcl(), caller.uid, caller.gid)) {
      this.#refuse(socket, caller, ACCESS_DENIED);
      return;
    }
    if (this.#serving.size >= this.#maxClients) {
      this.#refuse(socket, caller, {
        status: ControlsStatus.BUSY,
        lines: [`too many controls clients (ControlsMaxClients ${this.#maxClients}), try again later`],
      });
      return;
    }
    this.#serving.add(socket);
    /** Set once the request is taken (queued) or refused: nothing more is read from the client. */
    let taken = false;
    const refuse = (result: ControlsResult): void => {
      taken = true;
      this.#reply(socket, caller, undefined, result);
    };
    const trace = (level: number, message: string): void => this.#trace(level, message);
    const dispatch = (argv: readonly string[]): void => {
      taken = true;
      const request = async (): Promise<void> =>
        this.#reply(socket, caller, argv, await dispatchRequest(this.#registry.enabled(), argv, caller, trace));
      // dispatchRequest answers a failing handler itself: what is left (a throwing tracer) goes to the daemon's log.
      this.#queue.run(request).catch((error: unknown) => {
        const reason = messageOf(error);
        this.#daemonLog("error", `${MOD_CTRLS_VERSION}: controls request failed: ${reason}`);
      });
    };
    if (request !== undefined) {
      dispatch(request.args);
      return;
    }
    const decoder = new MessageDecoder(REQUEST_LIMITS);
    socket.on("data", (chunk: Buffer) => {
      // Whatever follows the request is read and dropped: it never piles up in the daemon.
      if (taken) {
        return;
      }
      let received: DecodedMessage | undefined;
      try {
        received = decoder.push(chunk);
      } catch (error) {
        refuse({ status: ControlsStatus.FAILED, lines: [(error as Error).message] });
        return;
      }
      if (received !== undefined) dispatch(received.args);
    });
    socket.once("end", () => {
      if (!taken && decoder.inMessage) {
        refuse({ status: ControlsStatus.FAILED, lines: ["controls request is truncated"] });
      }
    });
  }

  /**
   * Answers a connection that will not be served (denied, unidentified or
   * busy) without reading its request, and closes it soon after. It never
   * holds a slot; past MAX_REFUSED_OPEN such connections the oldest is closed.
   */
  #refuse(socket: Socket, caller: ControlsCaller | undefined, result: ControlsResult): void {
    this.#refused.add(socket);
    if (this.#refused.size > MAX_REFUSED_OPEN) {
      const [oldest] = this.#refused;
      this.#refused.delete(oldest as Socket);
      oldest?.destroy();
    }
    if (caller !== undefined) {
      for (const message of exchangeMessages(caller, undefined, result)) this.#log(message);
    }
    socket.resume();
    socket.end(encodeMessage(result.status, result.lines), () =>
      setTimeout(() => socket.destroy(), REPLY_GRACE_MS).unref(),
    );
  }

  #reply(socket: Socket, caller: ControlsCaller, argv: readonly string[] | undefined, result: ControlsResult): void {
    const { sent, bytes } = responseFor(result);
    for (const message of exchangeMessages(caller, argv, sent)) {
      this.#log(message);
    }
    // Half-closed now (a client still writing its request must not get EPIPE before it reads the
    // answer), destroyed a moment later so a client that never closes cannot hold a slot.
    socket.end(bytes, () => setTimeout(() => socket.destroy(), REPLY_GRACE_MS).unref());
  }
}
