/**
 * The running dsod: one configuration generation, the FTP server and the
 * controls socket, and the signals. SIGTERM (and SIGINT) stop it: no new
 * connections, sessions told and ended, modules unloaded newest first, the
 * socket and the PidFile removed, exit 0. SIGHUP re-reads the config as
 * proftpd does (the loaded modules go, the new config's come) into a new
 * generation; a config that fails leaves the old one serving, with the error
 * logged.
 *
 * Start order, as proftpd's: bind the FTP listener and the controls socket,
 * write the PidFile, open the logs (TransferLog, SystemLog), then become
 * User/Group for good (host/system/privileges.ts), and only then say `listening`.
 *
 * With SessionWorkers, the daemon is proftpd's master (host/daemon/cluster-hooks.ts):
 * it hands every connection to a worker process, which opens its own logs and
 * becomes User/Group for good with the functions exported here; the daemon
 * itself runs as User/Group with root kept to take back (relinquishPrivileges).
 */
import { mkdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { SharedStore } from "../abi/shared-store.js";
import { RecordingStore } from "../abi/store-replay.js";
import { verifyCrypt } from "../auth/crypt.js";
import { passwordChecker } from "../auth/password-check.js";
import { ConfigError } from "../config/lexer.js";
import { currentHost, dsoControlsActions } from "../static/mod-dso/controls.js";
import { moduleControlsActions } from "../controls/module-controls.js";
import { ControlsServer } from "../controls/server.js";
import { DsoError, ErrorCodes, isDsoError, messageOf } from "../errors.js";
import { Scoreboard } from "../ftp/scoreboard.js";
import type { FairScheduler } from "../ftp/scheduler.js";
import type { FtpServer } from "../ftp/server.js";
import { SessionMemoryAccount } from "../modules/module-host.js";
import { MOD_DSO_VERSION } from "../modules/types.js";
import { watchdogNotice } from "../sandbox/watchdog.js";
import { SystemAccounts } from "../system/accounts.js";
import {
  DESCRIPTORS_PER_SESSION,
  RESERVED_DESCRIPTORS,
  defaultMaxInstances,
  readOpenFilesLimit,
} from "../system/limits.js";
import { loadNativeAddon } from "../system/package.js";
import { PidFile } from "../system/pid-file.js";
import {
  dropPrivileges,
  relinquishPrivileges,
  resolveIdentity,
  withRootPrivileges,
  writableBy,
} from "../system/privileges.js";
import type { EffectiveIds, Identity } from "../system/privileges.js";
import type { Cluster, ClusterFactory, PrimaryRuntime } from "./cluster-hooks.js";
import { buildGeneration } from "./generation.js";
import { createSessionScheduler, createSessionServer } from "./session-server.js";
import { DaemonLogSink } from "./system-log.js";
import type { DaemonLog, DaemonRuntime, Generation } from "./generation.js";
import { XferlogWriter } from "../xfer/xferlog.js";
import { DSOD_VERSION } from "./version.js";

/**
 * The native addons (binding.gyp's targets), loaded on first use by their
 * modules. Before User, dsod loads them itself, as root, as proftpd loads its
 * modules before it gives root up: Node keeps a loaded addon by its path, so
 * the later loads find it even where the User may not read the package (a
 * checkout in root's mode-700 home). Loaded later, there, every controls caller
 * was denied (`cannot check client credentials: unable to load ...`).
 */
const NATIVE_ADDONS = ["peercred", "watchdog", "crypt"] as const;

/** The process's own ids, as privileges.ts acts on them. */
const PROCESS_IDS: EffectiveIds = {
  getuid: () => process.getuid?.() ?? 0,
  geteuid: () => process.geteuid?.() ?? 0,
  getegid: () => process.getegid?.() ?? 0,
  setgroups: (groups) => process.setgroups?.(groups),
  setgid: (id) => process.setgid?.(id),
  setuid: (id) => process.setuid?.(id),
  setegid: (id) => process.setegid?.(id),
  seteuid: (id) => process.seteuid?.(id),
};

/**
 * mod_delay.c's first DelayTable value: one wrong password timed against a
 * real hash of the user file, so that the first failed logins after a start
 * are already answered as late as a known user's.
 */
function seedDelayTable(generation: Generation): void {
  const hash = generation.compiledIn.authFile.sampleHash();
  if (hash === undefined) return;
  const start = performance.now();
  verifyCrypt("\u0000", hash);
  generation.compiledIn.delay.seed(performance.now() - start);
}

/** AuthUserFile's users, read as the daemon (or a session worker) starts and at each SIGHUP. */
export function loadUsers(generation: Generation, log: DaemonLog): void {
  const file = generation.compiledIn.authFile.path;
  if (file === undefined) return;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new DsoError(ErrorCodes.FILE, `AuthUserFile: unable to read '${file}': ${(cause as Error).message}`, {
      cause,
    });
  }
  for (const warning of generation.compiledIn.authFile.load(text)) log("notice", `mod_auth_file/1.0: ${warning}`);
  seedDelayTable(generation);
}

/** User/Group as the configuration names them, and whether becoming them gives root up. */
export interface ConfiguredUser {
  readonly identity: Identity | undefined;
  readonly switching: boolean;
}

export function configuredUser(generation: Generation): ConfiguredUser {
  const core = generation.compiledIn.core;
  const identity = resolveIdentity(core.user, core.group, new SystemAccounts(), PROCESS_IDS);
  return { identity, switching: identity !== undefined && PROCESS_IDS.geteuid() === 0 && identity.uid !== 0 };
}

/** TransferLog is opened while dsod is still root, as proftpd opens its logs. */
export async function openTransferLog(generation: Generation, runtime: DaemonRuntime): Promise<void> {
  const transferLog = generation.compiledIn.data.transferLog;
  if (transferLog !== undefined) await runtime.xferlog.prepare(transferLog);
}

/** SystemLog: the lines after this one go there (said where they went so far). */
export function openSystemLog(generation: Generation, sink: DaemonLogSink): void {
  const systemLog = generation.systemLog;
  if (systemLog?.kind === "file") sink.log("notice", `logging to SystemLog '${systemLog.path}'`);
  sink.apply(systemLog);
}

function loadNativeAddons(): void {
  for (const name of NATIVE_ADDONS) loadNativeAddon(name);
}

/**
 * Refuses a User that could rewrite the module path: it could then replace
 * what root loads with insmod. With session workers the daemon checks it
 * before it forks any.
 */
export function checkModulePath(generation: Generation, identity: Identity): void {
  const modulePath = generation.host.modulePath;
  let stat;
  try {
    stat = statSync(realpathSync(modulePath));
  } catch {
    // A module path that does not exist holds nothing to replace; LoadModule says so when it is used.
    stat = undefined;
  }
  if (stat !== undefined && identity.uid !== 0 && writableBy(stat, identity)) {
    throw new DsoError(
      ErrorCodes.PRIVILEGES,
      `ModulePath '${modulePath}' could be written by ${identity.user} (User), who could then replace modules; chown root it and remove its group write permission`,
    );
  }
}

/** User/Group for good, once checkModulePath allows it. */
function becomeUser(generation: Generation, identity: Identity, log: DaemonLog): void {
  checkModulePath(generation, identity);
  dropPrivileges(identity, PROCESS_IDS);
  log(
    "info",
    `running as User ${identity.user} (uid ${identity.uid}), Group ${identity.group} (gid ${identity.gid}), no supplementary groups`,
  );
}

/**
 * Said once by each process that runs guest code when its CPU budgets run
 * degraded (no watchdog addon): the daemon, and with session workers each
 * worker too, since each loads its own addon.
 */
export function logDegradedBudgets(log: DaemonLog): void {
  const degraded = watchdogNotice();
  if (degraded !== undefined) log("notice", `${MOD_DSO_VERSION}: ${degraded}`);
}

/** What a process serving sessions does as root before it gives root up for good, then User/Group. */
export async function becomeSessionUser(generation: Generation, user: ConfiguredUser, log: DaemonLog): Promise<void> {
  if (user.switching) loadNativeAddons();
  // The check's worker threads read their script before User, as the addons are loaded.
  const checker = passwordChecker();
  await checker.ready();
  // Said by each process that checks passwords: with session workers, each worker has threads of its own.
  const slowChecks = checker.notice();
  if (slowChecks !== undefined) log("notice", `mod_auth_file/1.0: ${slowChecks}`);
  if (user.identity !== undefined) becomeUser(generation, user.identity, log);
}

export class Daemon {
  #generation: Generation;
  readonly #log: DaemonLog;
  readonly #debugLevel: number;
  readonly #runtime: PrimaryRuntime;
  /** Where #log's lines go: stderr, then the SystemLog file once it is open. */
  readonly #sink: DaemonLogSink;
  readonly #ftp: FtpServer;
  /** One for the daemon: every session's commands take their turns here (SessionCPUShare). */
  readonly #scheduler: FairScheduler<number>;
  /** The session workers (SessionWorkers); the daemon serves the sessions itself without them. */
  readonly #cluster: Cluster | undefined;
  #controls: ControlsServer | undefined;
  #pidFile: PidFile | undefined;
  /** The port the FTP listener is bound to (Port 0 picks one). */
  #port = 0;
  /** MaxInstances when the config sets none: what the descriptor limit leaves room for. */
  readonly #defaultMaxInstances: number;
  #stopping = false;
  /** The SIGHUP being handled: the next signal's work waits for it, as proftpd's master handles one at a time. */
  #reloading: Promise<void> = Promise.resolve();
  #finish: (code: number) => void = () => {};
  /** Resolves with the exit code once the daemon has stopped. */
  readonly finished: Promise<number>;

  private constructor(
    generation: Generation,
    sink: DaemonLogSink,
    debugLevel: number,
    runtime: PrimaryRuntime,
    clusterFactory: ClusterFactory | undefined,
  ) {
    this.#generation = generation;
    this.#sink = sink;
    const log = sink.log;
    this.#log = log;
    this.#debugLevel = debugLevel;
    this.#runtime = runtime;
    this.#defaultMaxInstances = defaultMaxInstances(readOpenFilesLimit());
    this.finished = new Promise((resolve) => (this.#finish = resolve));
    const current = (): Generation => this.#generation;
    this.#scheduler = createSessionScheduler(generation);
    const workers = generation.dso.sessionWorkers;
    this.#cluster =
      workers === undefined || clusterFactory === undefined
        ? undefined
        : clusterFactory({ workers, configFile: generation.configFile, debugLevel, current, runtime, log });
    this.#ftp = createSessionServer(
      current,
      runtime,
      this.#scheduler,
      log,
      this.#cluster === undefined ? {} : { handOff: this.#cluster.handOff },
    );
  }

  /** Starts dsod; `cluster` makes its session workers when the configuration sets SessionWorkers. */
  static async start(
    configFile: string,
    stderr: DaemonLog,
    debugLevel: number,
    cluster?: ClusterFactory,
  ): Promise<Daemon> {
    let daemon: Daemon | undefined;
    // Everything the daemon and its generations log goes through the sink, so SystemLog takes all of it.
    const sink = new DaemonLogSink(stderr, debugLevel);
    const log = sink.log;
    const runtime: PrimaryRuntime = {
      scoreboard: new Scoreboard(),
      serverPort: () => (daemon === undefined ? 0 : daemon.#port),
      endSession: (session, lines) => {
        if (daemon !== undefined) daemon.#ftp.endSession(session, lines);
      },
      xferlog: new XferlogWriter((problem) => log("notice", problem)),
      sharedStore: new RecordingStore(new SharedStore()),
      sessionMemory: new SessionMemoryAccount(),
    };
    const generation = buildGeneration(configFile, log, debugLevel, [], runtime);
    try {
      loadUsers(generation, log);
      daemon = new Daemon(generation, sink, debugLevel, runtime, cluster);
      // Signals are ours before the "listening" line: a SIGHUP right after it must reload, not kill.
      daemon.#installSignals();
      await daemon.#listen();
    } catch (error) {
      if (daemon !== undefined) {
        await Promise.all([daemon.#ftp.close(), daemon.#cluster?.stop()]);
        await daemon.#controls?.close().catch(() => {});
        daemon.#pidFile?.remove();
      }
      generation.host.close();
      sink.close();
      throw error;
    }
    return daemon;
  }

  async #listen(): Promise<void> {
    const core = this.#generation.compiledIn.core;
    const address = core.defaultAddress ?? "127.0.0.1";
    let bound;
    try {
      bound = await this.#ftp.listen(core.port, address);
    } catch (cause) {
      throw new DsoError(
        ErrorCodes.LISTEN,
        `unable to bind to ${address} port ${core.port}: ${(cause as Error).message}`,
        { cause },
      );
    }
    this.#port = bound.port;
    await this.#startControls();
    const cluster = this.#cluster;
    const user = configuredUser(this.#generation);
    if (core.pidFile !== undefined) {
      this.#pidFile = PidFile.write(core.pidFile);
      // Giving root up for good: the PidFile's removal is left to a watcher that keeps root.
      if (cluster === undefined && user.switching) {
        this.#pidFile.watchForExit((error) =>
          this.#log(
            "notice",
            `unable to start the PidFile watcher: ${error.message}; '${core.pidFile}' stays after exit`,
          ),
        );
      }
    }
    if (cluster === undefined) await openTransferLog(this.#generation, this.#runtime);
    openSystemLog(this.#generation, this.#sink);
    if (cluster === undefined) await becomeSessionUser(this.#generation, user, this.#log);
    else await this.#startWorkers(cluster, user);
    this.#logDescriptorBudget();
    this.#log("notice", `dsod Version ${DSOD_VERSION} (wasm-dso) standalone mode STARTUP`);
    logDegradedBudgets(this.#log);
    this.#log("notice", `listening on ${bound.address} port ${bound.port}`);
  }

  /**
   * proftpd's master with session workers: a User that could rewrite the
   * module path is refused before any worker forks; the workers fork as root
   * and each becomes User for good; then the daemon runs as User/Group too,
   * keeping root as its real and saved uid for the forks of replacements and
   * the shutdown (PRIVS_SETUP then PRIVS_RELINQUISH in proftpd's main.c).
   */
  async #startWorkers(cluster: Cluster, user: ConfiguredUser): Promise<void> {
    const identity = user.identity;
    if (identity !== undefined) checkModulePath(this.#generation, identity);
    // An identity a non-root dsod cannot take fails here, in the words of a dsod without workers.
    if (identity !== undefined && !user.switching) dropPrivileges(identity, PROCESS_IDS);
    // The controls socket's peer credentials are checked with an addon: loaded while root may read it.
    if (user.switching) loadNativeAddons();
    await cluster.start();
    if (identity === undefined || !user.switching) return;
    relinquishPrivileges(identity, PROCESS_IDS);
    this.#log(
      "info",
      `master process running with effective User ${identity.user} (uid ${identity.uid}), ` +
        `Group ${identity.group} (gid ${identity.gid}), no supplementary groups; ` +
        `sessions run in workers as User ${identity.user}`,
    );
  }

  /** Says what MaxInstances is and whether it fits the descriptor limit: the budget the controls socket depends on. */
  #logDescriptorBudget(): void {
    const limit = readOpenFilesLimit();
    const configured = this.#generation.compiledIn.core.maxInstances;
    if (limit === undefined || limit.soft === Infinity) return;
    if (configured === undefined) {
      this.#log(
        "info",
        `MaxInstances ${this.#defaultMaxInstances}: ${limit.soft} descriptors, ${RESERVED_DESCRIPTORS} kept for the daemon, ${DESCRIPTORS_PER_SESSION} per session`,
      );
    } else if (configured === 0 || configured > this.#defaultMaxInstances) {
      this.#log(
        "notice",
        `MaxInstances ${configured === 0 ? "none" : configured} exceeds the ${this.#defaultMaxInstances} sessions the descriptor limit (${limit.soft}) leaves room for: sessions may run out of descriptors`,
      );
    }
  }

  async #startControls(): Promise<void> {
    const ctrls = this.#generation.ctrls;
    if (!ctrls.engine) return;
    mkdirSync(path.dirname(ctrls.socketPath), { recursive: true });
    const controls = new ControlsServer({
      socketPath: ctrls.socketPath,
      socketOwner: ctrls.socketOwner,
      socketMode: ctrls.socketMode,
      // Read through the current generation, so a SIGHUP's new ACLs apply to the next request.
      actions: dsoControlsActions(
        this.#cluster?.controlsHost ?? currentHost(() => this.#generation.host),
        () => this.#generation.dso.acls,
      ),
      socketAcl: () => this.#generation.ctrls.socketAcl,
      moduleActions:
        this.#cluster?.moduleActions ?? (() => moduleControlsActions(this.#generation.host.engineModules())),
      ctrlsAcls: () => this.#generation.ctrls.acls,
      maxClients: ctrls.maxClients,
      ...(ctrls.logFile !== undefined && { controlsLog: ctrls.logFile }),
      accounts: new SystemAccounts(),
      tracer: this.#generation.traceLog,
      log: this.#log,
    });
    await controls.start();
    this.#controls = controls;
  }

  #installSignals(): void {
    const stop = (): void => void this.stop();
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.on("SIGHUP", () => void this.reload());
  }

  /**
   * SIGHUP: a new generation from the same file; the old one serves on if the
   * new one fails. A SIGHUP during another's reload (session workers make it
   * take a while) waits for it.
   */
  reload(): Promise<void> {
    const reload = this.#reloading.then(() => this.#reload());
    this.#reloading = reload.catch(() => {});
    return reload;
  }

  async #reload(): Promise<void> {
    if (this.#stopping) return;
    this.#log("notice", "received SIGHUP -- master server reparsing configuration file");
    let next: Generation;
    const current = this.#generation.host;
    const removed = this.#generation.compiledIn.modules.map((m) => m.name).filter((name) => !current.isLoaded(name));
    try {
      next = buildGeneration(this.#generation.configFile, this.#log, this.#debugLevel, removed, this.#runtime);
      loadUsers(next, this.#log);
    } catch (error) {
      const text =
        error instanceof ConfigError && error.line > 0
          ? error.proftpdText()
          : isDsoError(error)
            ? error.message
            : String(error);
      this.#log("error", `unable to reload the configuration, keeping the running one: ${text}`);
      return;
    }
    const previous = this.#generation;
    if (this.#cluster === undefined) this.#swap(next);
    else {
      // Started in the SIGHUP line's turn, so hand-offs wait for its outcome (cluster.ts), and awaited as one
      // request of the controls queue, so a control request after that line sees the module set it leaves.
      const outcome = this.#reloadWorkers(this.#cluster, next);
      if (!(await this.#withControlsHeld(() => outcome))) return;
    }
    if (next.ctrls.socketPath !== previous.ctrls.socketPath || next.ctrls.engine !== previous.ctrls.engine) {
      try {
        await this.#controls?.close();
        this.#controls = undefined;
        await this.#startControls();
      } catch (error) {
        // Without root (User), a new socket path may be out of reach: the FTP side serves on regardless.
        this.#log("error", `unable to move the controls socket: ${isDsoError(error) ? error.message : String(error)}`);
      }
    }
  }

  /** The new generation takes over: the restart notices, then the old one's modules leave. */
  #swap(next: Generation): void {
    const previous = this.#generation;
    this.#scheduler.setShare(next.dso.sessionCpuShareMs);
    this.#generation = next;
    const [before, after] = [previous.compiledIn.core, next.compiledIn.core];
    if (before.port !== after.port || before.defaultAddress !== after.defaultAddress) {
      // The listening socket is bound once: a new address or port needs a restart.
      this.#log("notice", "DefaultAddress/Port changed: restart dsod for them to take effect");
    }
    if (before.user !== after.user || before.group !== after.group || before.pidFile !== after.pidFile) {
      // The identity is given up once, and the PidFile written once, at start.
      this.#log("notice", "User/Group/PidFile changed: restart dsod for them to take effect");
    }
    if (previous.dso.sessionWorkers !== next.dso.sessionWorkers) {
      // The workers are forked once, at start.
      this.#log("notice", "SessionWorkers changed: restart dsod for it to take effect");
    }
    if (JSON.stringify(previous.systemLog) !== JSON.stringify(next.systemLog)) {
      // Opened as root at start: after User, dsod may not be able to open another file.
      this.#log("notice", "SystemLog changed: restart dsod for it to take effect");
    }
    // Open sessions hold the old modules (acquireModules); each is released when its last session ends.
    previous.host.unloadAll();
  }

  /** Runs `run` as one request of the controls socket's queue (at once when there is no controls socket). */
  #withControlsHeld<T>(run: () => Promise<T>): Promise<T> {
    return this.#controls === undefined ? run() : this.#controls.exclusive(run);
  }

  /** Has every worker take `next` or none, and swaps to it; false (and `next` closed) when one refused it. */
  async #reloadWorkers(cluster: Cluster, next: Generation): Promise<boolean> {
    const refused = await cluster.reload(next).catch((error: unknown) => messageOf(error));
    if (refused === undefined) {
      this.#swap(next);
      return true;
    }
    next.host.close();
    this.#log("error", `unable to reload the configuration, keeping the running one: ${refused}`);
    return false;
  }

  /** SIGTERM: stop accepting, end sessions, unload modules newest first, remove the socket. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    // A SIGHUP under way finishes first (its workers may be committing), then the shutdown unloads what it left.
    await this.#reloading;
    this.#log("notice", "dsod shutting down");
    await Promise.all([this.#ftp.close(), this.#cluster?.stop()]);
    try {
      // A master that relinquished root takes it back to unlink the socket: nothing else is served now.
      await withRootPrivileges(async () => this.#controls?.close());
    } catch (error) {
      // After User, the socket's root-owned directory may not let dsod unlink it; the next start replaces it.
      this.#log("notice", `unable to remove the controls socket: ${messageOf(error)}`);
    }
    this.#generation.host.unloadAll();
    withRootPrivileges(() => this.#pidFile?.remove());
    this.#sink.close();
    this.#finish(0);
  }
}
