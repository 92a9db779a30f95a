/**
 * A session worker process (SessionWorkers N), forked by worker-pool.ts. Its
 * `init` request makes it what dsod is with SessionWorkers off, minus the
 * listener: it builds its module set from the config file and the journal of
 * module changes since (worker-modules.ts), opens TransferLog and SystemLog,
 * loads the native addons and the password checks as root, then becomes
 * User/Group for good with the daemon's own functions. Then it serves the
 * connections the primary hands it, as proftpd's session processes serve what
 * their master accepted, and says when each has closed.
 *
 * The primary holds the shared store and the other workers' scoreboard
 * entries: this process reaches them over its fd 4 (sync-channel.ts).
 *
 * A failure before it is ready is its answer to `init`, with the DsoError's
 * code and lines (the primary logs it, or fails its own start with it), and
 * the worker exits 1 once the primary closes the channel. A bug of ours
 * afterwards is one log line and exit 70; the primary forks a replacement.
 */
import type net from "node:net";
import { ReplayingStore } from "../abi/store-replay.js";
import { becomeSessionUser, configuredUser, logDegradedBudgets, openTransferLog } from "../daemon/daemon.js";
import { stderrLog } from "../daemon/generation.js";
import type { DaemonLog } from "../daemon/generation.js";
import { createSessionScheduler, createSessionServer } from "../daemon/session-server.js";
import { DaemonLogSink } from "../daemon/system-log.js";
import { messageOf } from "../errors.js";
import type { FtpServer } from "../ftp/server.js";
import { tuneHeapForModuleChurn } from "../system/heap.js";
import { exitQuietlyOnClosedOutput } from "../system/stdio.js";
import { XferlogWriter } from "../xfer/xferlog.js";
import { WorkerScoreboard } from "./cluster-scoreboard.js";
import { IpcPeer, parentEndpoint } from "./ipc.js";
import { asJournal } from "./journal.js";
import { asWireStates } from "./wire-state.js";
import { RemoteSessionMemory } from "./remote-memory.js";
import { reportFaults } from "./fault-sync.js";
import { RemoteSharedStore } from "./remote-store.js";
import { SyncChannel } from "./sync-channel.js";
import { WorkerModules } from "./worker-modules.js";
import type { WorkerRuntime } from "./worker-modules.js";
import type { WorkerStart } from "./worker-pool.js";

/** The worker's end of the synchronous channel: stdio index 4, as worker-pool.ts forks it. */
const SYNC_FD = 4;

/** dsod's exit code for a bug of ours (EX_SOFTWARE). */
const EXIT_INTERNAL_ERROR = 70;

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** The `init` body the pool sent (cluster.ts builds it). */
function asWorkerStart(body: unknown): WorkerStart {
  const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const { index, configFile, debugLevel, serverPort, generation, removedCompiledIn } = record;
  if (
    !isCount(index) ||
    typeof configFile !== "string" ||
    !isCount(debugLevel) ||
    !isCount(serverPort) ||
    !isCount(generation) ||
    !Array.isArray(removedCompiledIn) ||
    !removedCompiledIn.every((name) => typeof name === "string")
  ) {
    throw new Error("malformed init on the session worker channel");
  }
  return {
    index,
    configFile,
    debugLevel,
    serverPort,
    generation,
    removedCompiledIn,
    journal: asJournal(record.journal),
    states: asWireStates(record.states),
  };
}

class SessionWorker {
  readonly #peer: IpcPeer;
  /** stderr until `init` says the debug level; then the sink, which SystemLog may take over. */
  #log: DaemonLog = stderrLog(0);
  #modules: WorkerModules | undefined;
  #ftp: FtpServer | undefined;
  /** The sessions adopted and not closed yet. */
  readonly #open = new Set<number>();
  #drained: (() => void) | undefined;
  #stopping: Promise<void> | undefined;

  constructor(peer: IpcPeer) {
    this.#peer = peer;
    peer.onRequest("init", (body: unknown) => this.#start(body));
    peer.onRequest("stop", () => this.stop());
  }

  get log(): DaemonLog {
    return this.#log;
  }

  /** Ready to serve: the module set built, the logs open, User/Group taken; answers with its generation. */
  async #start(body: unknown): Promise<{ generation: number }> {
    const init = asWorkerStart(body);
    const sink = new DaemonLogSink(stderrLog(init.debugLevel), init.debugLevel);
    const log = sink.log;
    this.#log = log;
    const channel = new SyncChannel(SYNC_FD);
    // ModuleMemoryTotal is the daemon's: this worker's sessions and instances count in the primary's total.
    const memory = new RemoteSessionMemory(channel, () => this.#modules?.current().host.templateMemoryBytes() ?? 0);
    const runtime: WorkerRuntime = {
      scoreboard: new WorkerScoreboard(this.#peer, channel, init.index),
      serverPort: () => init.serverPort,
      endSession: (session, lines) => this.#ftp?.endSession(session, lines),
      xferlog: new XferlogWriter((problem) => log("notice", problem)),
      sharedStore: new ReplayingStore(new RemoteSharedStore(channel)),
      sessionMemory: memory,
    };
    const modules = WorkerModules.start(init, runtime, log, () => this.#open.size);
    // The primary counts a module's faults in every worker and unloads it everywhere (fault-sync.ts).
    modules.reportFaultsTo(reportFaults(channel, () => modules.position()));
    this.#modules = modules;
    memory.refresh();
    const generation = modules.current();
    // What the daemon does before it gives root up; the primary has said where SystemLog goes.
    await openTransferLog(generation, runtime);
    sink.apply(generation.systemLog);
    await becomeSessionUser(generation, configuredUser(generation), log);
    logDegradedBudgets(log);
    const scheduler = createSessionScheduler(generation);
    modules.onSwap((next) => scheduler.setShare(next.dso.sessionCpuShareMs));
    this.#ftp = createSessionServer(() => modules.current(), runtime, scheduler, log, {
      sessionClosed: (id) => this.#closed(id),
    });
    for (const [type, handler] of Object.entries(modules.handlers())) {
      // A module request may change what this worker's instances of the modules hold (a load, a SIGHUP, a control).
      this.#peer.onRequest(type, async (request: never) => {
        try {
          return await handler(request);
        } finally {
          memory.refresh();
        }
      });
    }
    this.#peer.onEvent("session", (session: { id?: unknown }, socket: net.Socket | undefined) =>
      this.#adopt(session.id, socket),
    );
    return { generation: init.generation };
  }

  #adopt(id: unknown, socket: net.Socket | undefined): void {
    const ftp = this.#ftp;
    if (!isCount(id) || socket === undefined || ftp === undefined) return;
    this.#open.add(id);
    if (this.#stopping !== undefined) {
      // Handed over as the primary told this worker to stop: not served, and the primary's copy is let go.
      socket.destroy();
      this.#closed(id);
      return;
    }
    ftp.adopt(socket, id);
  }

  #closed(id: number): void {
    this.#open.delete(id);
    this.#peer.event("closed", { id });
    if (this.#open.size === 0) this.#drained?.();
  }

  /** Ends every session (`421 FTP server shutting down`) and unloads the modules; resolves once all are closed. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const ftp = this.#ftp;
    if (ftp === undefined) return;
    // The server's close waits for the sessions it serves; a connection it refused before the greeting
    // (ModuleMemoryTotal) is not one of them, yet the primary holds its copy until this worker says `closed`.
    const drained = this.#open.size === 0 ? undefined : new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.all([ftp.close(), drained]);
    this.#modules?.unloadAll();
  }

  /** The process ends: 0 once it has served, 1 when it never became ready. */
  exit(): void {
    process.exit(this.#ftp === undefined ? 1 : 0);
  }
}

tuneHeapForModuleChurn();
exitQuietlyOnClosedOutput();
const worker = new SessionWorker(new IpcPeer(parentEndpoint(), { name: "the primary" }));
// A bug of ours must not reach the operator as a stack trace: one line, then exit 70, as dsod does.
const internalError = (error: unknown): void => {
  worker.log("error", `Fatal: internal error: ${messageOf(error)}`);
  process.exit(EXIT_INTERNAL_ERROR);
};
process.on("uncaughtException", internalError);
process.on("unhandledRejection", internalError);
// Signals are the primary's to act on: Ctrl-C in a terminal, or a stop sent to the whole process group,
// reaches the workers too, and the primary stops them in order.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});
// The channel closes when the primary is done with this worker (after `stop`, or a failed `init`) or is gone.
process.on("disconnect", () => void worker.stop().then(() => worker.exit()));
