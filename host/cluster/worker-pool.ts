/**
 * The session workers, primary side (SessionWorkers N): N forked processes
 * that serve the sessions the primary accepts, as proftpd's master forks a
 * session process per connection. The primary hands each connection to the
 * worker with the fewest sessions and keeps its own copy of the socket,
 * paused, until the worker says the session closed; when a worker dies
 * instead, the primary tells each of its clients `421` on that copy and
 * ends it, then forks a replacement.
 *
 * A socket sent before a worker's ES module top level has run is lost without
 * a word (Node's `online` comes too early), so nothing is handed to a worker
 * before it has answered `init`.
 */
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import type net from "node:net";
import { fileURLToPath } from "node:url";
import type { DaemonLog } from "../daemon/generation.js";
import { DsoError, ErrorCodes, isDsoError, messageOf } from "../errors.js";
import { DEFAULT_SHUTDOWN_MESSAGE } from "../ftp/server.js";
import { LINGER_MS } from "../ftp/session.js";
import type { WorkerStatus } from "../static/mod-dso/controls.js";
import { systemClock } from "../system/clock.js";
import type { Clock } from "../system/clock.js";
import { withRootPrivileges } from "../system/privileges.js";
import { IpcPeer } from "./ipc.js";
import type { WorkerInit } from "./journal.js";

/** What the pick knows of a worker. */
export interface WorkerLoad {
  readonly sessions: number;
  /** Ready for sessions (not starting, not dead). */
  readonly serving: boolean;
}

/** The position of the serving worker with the fewest sessions (ties: the first), or undefined when none serves. */
export function leastLoaded(loads: readonly WorkerLoad[]): number | undefined {
  let best: number | undefined;
  for (const [position, load] of loads.entries()) {
    if (!load.serving) continue;
    if (best === undefined || load.sessions < (loads[best] as WorkerLoad).sessions) best = position;
  }
  return best;
}

/** Deaths within this window count toward the restart limit. */
export const DEATH_WINDOW_MS = 10_000;
/** From this many deaths in the window on, one index starts at most once per RESTART_SPACING_MS. */
export const DEATHS_BEFORE_LIMIT = 3;
export const RESTART_SPACING_MS = 1_000;

/**
 * Paces the replacements of a worker that keeps dying: after 3 deaths in
 * 10 s, no more than one start per second per index, so a worker that
 * crashes at once does not make the primary fork in a loop.
 */
export class RestartLimiter {
  readonly #now: () => number;
  readonly #deaths = new Map<number, number[]>();
  readonly #lastStart = new Map<number, number>();

  constructor(now: () => number) {
    this.#now = now;
  }

  /** A worker of `index` was forked. */
  started(index: number): void {
    this.#lastStart.set(index, this.#now());
  }

  /** A worker of `index` died: how long to wait before forking its replacement (0: now). */
  died(index: number): number {
    const now = this.#now();
    const recent = (this.#deaths.get(index) ?? []).filter((at) => now - at < DEATH_WINDOW_MS);
    recent.push(now);
    this.#deaths.set(index, recent);
    const last = this.#lastStart.get(index);
    if (recent.length < DEATHS_BEFORE_LIMIT || last === undefined) return 0;
    return Math.max(0, last + RESTART_SPACING_MS - now);
  }
}

/** The worker's entry script, beside this file in dist/. */
const WORKER_SCRIPT = fileURLToPath(new URL("./worker-main.js", import.meta.url));

/** How long a worker may take to build its module set, drop privileges and answer `init`. */
export const START_TIMEOUT_MS = 60_000;
/** How long a worker told to stop may take to end its sessions (each may linger LINGER_MS). */
const STOP_TIMEOUT_MS = LINGER_MS + 5_000;
/** How long `lsmod -v` waits for a worker to say which generation it serves. */
const STATUS_TIMEOUT_MS = 5_000;

/** How many replaced workers `lsmod -v` lists at most, the latest. */
const MAX_REPLACED_ROWS = 32;

/** RFC 959's reply for a server that cannot serve a connection now: what a dead worker's clients are told. */
const SERVICE_NOT_AVAILABLE = "421 Service not available, closing control connection";

/** The `init` request's body: who the worker is, and what it builds its module set from. */
export interface WorkerStart extends WorkerInit {
  /** 1..SessionWorkers, as `lsmod -v` and the log lines number it. */
  readonly index: number;
  /** The port the primary listens on, for the failed-login lines sessions log. */
  readonly serverPort: number;
}

export interface WorkerPoolOptions {
  /** SessionWorkers: how many workers serve at once. */
  readonly count: number;
  /**
   * Sends worker `index` its `init` request with `send(body)`, the body
   * holding the config file and the module state to build (ClusterModules'
   * startWorker runs it so that no module change is made while it starts).
   */
  readonly init: (index: number, send: (body: WorkerStart) => Promise<unknown>) => Promise<unknown>;
  /** Serves a new worker's synchronous channel (its fd 4): the shared store and the scoreboard. */
  readonly serveSync: (stream: net.Socket, index: number) => void;
  /** A worker's scoreboard event (`score`: a login). */
  readonly score: (index: number, body: unknown) => void;
  /** Session `id` from `remoteAddress` is handed to worker `index`: the scoreboard's entry, made here. */
  readonly started?: (index: number, id: number, remoteAddress: string) => void;
  /** Worker `index` says session `id` has closed: its scoreboard entry goes. */
  readonly closed?: (index: number, id: number) => void;
  /** A worker has exited: what it put on the scoreboard goes with it. */
  readonly gone: (index: number) => void;
  readonly log: DaemonLog;
  /** Times the replacements and the stop; the system clock unless given. */
  readonly clock?: Clock;
}

/** A connection handed to a worker: the primary's copy, paused, and how to tell the listener it ended. */
interface HeldSession {
  readonly socket: net.Socket;
  readonly id: number;
  readonly ended: () => void;
}

function linesOf(error: unknown): readonly string[] {
  return isDsoError(error) ? error.lines : [messageOf(error)];
}

/** The generation a worker's `init` or `status` answer names. */
function generationOf(reply: unknown): number | undefined {
  if (typeof reply !== "object" || reply === null) return undefined;
  const { generation } = reply as { generation?: unknown };
  return typeof generation === "number" ? generation : undefined;
}

/**
 * Tells a client on the primary's copy of its socket that no one serves it
 * any more, and ends the connection. What the client sent meanwhile is read
 * and dropped, so that the close is a FIN after the reply, never a reset;
 * a client that does not close is cut off after LINGER_MS.
 */
function endHeld(held: HeldSession, line: string, clock: Clock): void {
  const { socket } = held;
  if (socket.destroyed) {
    held.ended();
    return;
  }
  const cancel = clock.schedule(LINGER_MS, () => socket.destroy());
  socket.once("close", () => {
    cancel();
    held.ended();
  });
  socket.resume();
  socket.end(`${line}\r\n`);
}

/** One forked worker process, from fork to exit. */
class PoolWorker {
  readonly index: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly peer: IpcPeer;
  /** Resolves once the process has exited, with how: `signal SIGKILL`, `exit code 70`. */
  readonly exited: Promise<string>;
  state: "starting" | "serving" | "gone" = "starting";
  /** The primary's copies of the sockets handed to this worker, by session id. */
  readonly sessions = new Map<number, HeldSession>();
  /** The generation it serves, as it last said. */
  generation = 0;
  /** Set by replace(): its exit is then no death, and this is why it went. */
  replacedBecause: string | undefined;

  constructor(index: number, child: ChildProcess) {
    this.index = index;
    this.child = child;
    this.pid = child.pid ?? 0;
    this.peer = new IpcPeer(child, { name: this.name });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve(signal === null ? `exit code ${code}` : `signal ${signal}`));
      // A process that could not be spawned at all never exits.
      child.once("error", (error) => {
        if (child.pid === undefined) resolve(error.message);
      });
    });
  }

  get name(): string {
    return `worker ${this.index} (pid ${this.pid})`;
  }

  /** ClusterModules' WorkerLink. */
  request(type: string, body: unknown, options?: { timeoutMs?: number }): Promise<unknown> {
    return this.peer.request(type, body, options);
  }
}

export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #clock: Clock;
  readonly #limiter: RestartLimiter;
  /** The worker of each index, 1..count, in index order; a dead one stays until its replacement is forked. */
  readonly #current = new Map<number, PoolWorker>();
  /** Workers replaced since the last SIGHUP, for `lsmod -v`. */
  #replaced: WorkerStatus[] = [];
  /** Connections accepted while no worker served, or held (hold()): the next worker ready takes them. */
  readonly #waiting: HeldSession[] = [];
  /** The holds not released yet. */
  #holds = 0;
  /** Cancels the replacements waiting for their turn (RestartLimiter). */
  readonly #pendingStarts = new Set<() => void>();
  #started = false;
  #stopping = false;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#limiter = new RestartLimiter(() => this.#clock.now());
  }

  /**
   * Forks every worker and waits until all serve; the first one that cannot
   * start fails it (DSO_ERR_WORKER_START). Connections handed off meanwhile
   * wait for the first worker ready.
   */
  async start(): Promise<void> {
    const count = this.#options.count;
    const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => this.#start(i + 1)));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failed !== undefined) {
      await this.stop();
      throw failed.reason;
    }
    this.#started = true;
  }

  /** The workers serving now, the ones ClusterModules sends module changes (a starting one gets the journal). */
  workers(): PoolWorker[] {
    return [...this.#current.values()].filter((worker) => worker.state === "serving");
  }

  /**
   * Serves an accepted connection in the worker with the fewest sessions;
   * `ended` is called once the connection is over, the primary's copy closed.
   */
  handOff(socket: net.Socket, id: number, ended: () => void): void {
    // The copy is never read: a reset or a write error is the worker's to see.
    socket.on("error", () => {});
    const held = { socket, id, ended };
    if (this.#stopping) {
      endHeld(held, `421 FTP server shutting down - ${DEFAULT_SHUTDOWN_MESSAGE}`, this.#clock);
      return;
    }
    const workers = [...this.#current.values()];
    const pick = leastLoaded(workers.map((w) => ({ sessions: w.sessions.size, serving: w.state === "serving" })));
    const worker = pick === undefined ? undefined : workers[pick];
    if (worker === undefined || this.#holds > 0) {
      this.#waiting.push(held);
      return;
    }
    worker.sessions.set(id, held);
    this.#options.started?.(worker.index, id, socket.remoteAddress ?? "");
    // If the worker dies before it takes the socket, its exit ends this copy with 421 like the others.
    worker.peer.event("session", { id }, socket, { keepOpen: true });
  }

  /**
   * Keeps the connections handed off from now on waiting until the returned
   * function is called (a SIGHUP's reload: each is then served by the
   * configuration the reload leaves running, whichever it is).
   */
  hold(): () => void {
    this.#holds += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds -= 1;
      if (this.#holds === 0) this.#handOffWaiting();
    };
  }

  #handOffWaiting(): void {
    for (const held of this.#waiting.splice(0)) this.handOff(held.socket, held.id, held.ended);
  }

  /** Kills a worker that could not apply a module change, and forks its replacement; lsmod -v says why. */
  replace(link: { readonly index: number; readonly pid: number }, note: string): void {
    const worker = this.#current.get(link.index);
    if (worker === undefined || worker.pid !== link.pid || worker.state === "gone") return;
    worker.replacedBecause = note;
    this.#options.log("error", `${worker.name} replaced: ${note}`);
    worker.child.kill("SIGKILL");
  }

  /** Every worker for `lsmod -v`: the live ones with the generation each says it serves, then the replaced. */
  async statuses(): Promise<WorkerStatus[]> {
    const rows = await Promise.all(
      this.#live().map(async (worker): Promise<WorkerStatus> => {
        if (worker.state === "serving") {
          try {
            const status = await worker.peer.request("status", {}, { timeoutMs: STATUS_TIMEOUT_MS });
            worker.generation = generationOf(status) ?? worker.generation;
          } catch {
            // A worker busy or dying right now is listed with the generation it last reported.
          }
        }
        return {
          index: worker.index,
          pid: worker.pid,
          sessions: worker.sessions.size,
          generation: worker.generation,
          state: worker.state === "serving" ? "serving" : "starting",
        };
      }),
    );
    return [...rows, ...this.#replaced].sort((a, b) => a.index - b.index);
  }

  /** A committed SIGHUP: the replaced workers' rows leave `lsmod -v`. */
  forgetReplaced(): void {
    this.#replaced = [];
  }

  /**
   * SIGTERM: every worker is told to stop (it ends its sessions with
   * proftpd's shutdown 421) and exits; resolves once all have.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const cancel of this.#pendingStarts) cancel();
    this.#pendingStarts.clear();
    for (const held of this.#waiting.splice(0)) {
      endHeld(held, `421 FTP server shutting down - ${DEFAULT_SHUTDOWN_MESSAGE}`, this.#clock);
    }
    await Promise.all(this.#live().map((worker) => this.#stopWorker(worker)));
  }

  #live(): PoolWorker[] {
    return [...this.#current.values()].filter((worker) => worker.state !== "gone");
  }

  async #stopWorker(worker: PoolWorker): Promise<void> {
    const cancel = this.#clock.schedule(STOP_TIMEOUT_MS, () => worker.child.kill("SIGKILL"));
    // The answer comes once its sessions have ended; it exits when the channel closes.
    worker.peer.request("stop", {}).then(
      () => {
        if (worker.child.connected) worker.child.disconnect();
      },
      () => {},
    );
    await worker.exited;
    cancel();
  }

  async #start(index: number): Promise<void> {
    this.#limiter.started(index);
    let child: ChildProcess;
    try {
      // A worker starts as root, as the first ones did, whatever the primary relinquished since (privileges.ts):
      // it reads node and dist/ where only root may, and becomes User itself once ready.
      child = withRootPrivileges(() =>
        fork(WORKER_SCRIPT, [], {
          stdio: ["inherit", "inherit", "inherit", "ipc", "pipe"],
          execArgv: process.execArgv,
          env: { ...process.env, DSOD_WORKER_INDEX: String(index) },
        }),
      );
    } catch (error) {
      // No process (out of processes or memory), so no exit to fork the next one from.
      this.#scheduleStart(index);
      throw new DsoError(ErrorCodes.WORKER_START, `worker ${index} could not be forked: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const worker = new PoolWorker(index, child);
    this.#current.set(index, worker);
    child.on("error", (error) => this.#options.log("error", `${worker.name}: ${error.message}`));
    worker.peer.onEvent("closed", (body: { id?: unknown }) => this.#closed(worker, body.id));
    worker.peer.onEvent("score", (body: unknown) => this.#options.score(index, body));
    this.#options.serveSync(child.stdio[4] as net.Socket, index);
    void worker.exited.then((how) => this.#exited(worker, how));
    await this.#init(worker);
  }

  async #init(worker: PoolWorker): Promise<void> {
    let reply: unknown;
    try {
      reply = await this.#options.init(worker.index, (body) =>
        worker.peer.request("init", body, { timeoutMs: START_TIMEOUT_MS }),
      );
    } catch (error) {
      // A worker that said why exits once its channel closes; one that did not answer is killed.
      if (worker.child.connected) worker.child.disconnect();
      if (isDsoError(error) && error.code === ErrorCodes.WORKER_TIMEOUT) worker.child.kill("SIGKILL");
      const gone = isDsoError(error) && error.code === ErrorCodes.WORKER_GONE;
      const why = gone ? [`exited (${await worker.exited}) before it was ready`] : linesOf(error);
      const [first = "", ...rest] = why;
      throw new DsoError(ErrorCodes.WORKER_START, `${worker.name} could not start: ${first}`, {
        cause: error,
        details: rest.length > 0 ? [`${worker.name} could not start: ${first}`, ...rest] : [],
      });
    }
    worker.generation = generationOf(reply) ?? 0;
    // Dead meanwhile, or told to stop (its stop request is on the way).
    if (worker.state !== "starting" || this.#stopping) return;
    worker.state = "serving";
    this.#options.log("notice", `${worker.name} started`);
    if (this.#holds === 0) this.#handOffWaiting();
  }

  /** The worker says a session has ended: the primary's copy goes, and the listener counts one less. */
  #closed(worker: PoolWorker, id: unknown): void {
    if (typeof id !== "number") return;
    this.#options.closed?.(worker.index, id);
    const held = worker.sessions.get(id);
    if (held === undefined) return;
    worker.sessions.delete(id);
    held.socket.destroy();
    held.ended();
  }

  #exited(worker: PoolWorker, how: string): void {
    const wasServing = worker.state === "serving";
    worker.state = "gone";
    worker.peer.close();
    const held = [...worker.sessions.values()];
    worker.sessions.clear();
    this.#options.gone(worker.index);
    if (this.#stopping) {
      // A stopped worker has ended its sessions itself.
      for (const session of held) {
        session.socket.destroy();
        session.ended();
      }
      return;
    }
    // A worker that fails dsod's own start fails it (start() throws): no replacement.
    if (!wasServing && !this.#started) return;
    if (wasServing) {
      const note = worker.replacedBecause ?? `died (${how})`;
      if (worker.replacedBecause === undefined) {
        this.#options.log("error", `${worker.name} died (${how}): its ${held.length} sessions were ended`);
      }
      for (const session of held) endHeld(session, SERVICE_NOT_AVAILABLE, this.#clock);
      this.#replaced.push({
        index: worker.index,
        pid: worker.pid,
        sessions: 0,
        generation: worker.generation,
        state: "replaced",
        note,
      });
      // A worker that keeps dying must not grow lsmod -v without end: the latest rows say enough.
      this.#replaced.splice(0, this.#replaced.length - MAX_REPLACED_ROWS);
    }
    this.#scheduleStart(worker.index);
  }

  /** Forks a replacement for `index`, now or when RestartLimiter lets it. */
  #scheduleStart(index: number): void {
    const wait = this.#limiter.died(index);
    const cancel = this.#clock.schedule(wait, () => {
      this.#pendingStarts.delete(cancel);
      if (!this.#stopping) this.#replace(index);
    });
    this.#pendingStarts.add(cancel);
  }

  /** Forks the replacement of `index`; one that cannot start is logged, and its exit forks the next. */
  #replace(index: number): void {
    this.#start(index).catch((error: unknown) => {
      // One stopped as it started has failed nothing.
      if (this.#stopping) return;
      for (const line of linesOf(error)) this.#options.log("error", line);
    });
  }
}
