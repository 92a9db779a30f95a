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
 */
import { mkdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { limitReply } from "../access/limit-reply.js";
import { SharedStore } from "../abi/shared-store.js";
import { verifyCrypt } from "../auth/crypt.js";
import { passwordChecker } from "../auth/password-check.js";
import { ConfigError } from "../config/lexer.js";
import { currentHost, dsoControlsActions } from "../static/mod-dso/controls.js";
import { moduleControlsActions } from "../controls/module-controls.js";
import { ControlsServer } from "../controls/server.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { Scoreboard } from "../ftp/scoreboard.js";
import { FairScheduler } from "../ftp/scheduler.js";
import { FtpServer } from "../ftp/server.js";
import { SessionMemoryAccount } from "../modules/module-host.js";
import type { ModuleSet } from "../modules/module-host.js";
import { MOD_DSO_VERSION } from "../modules/types.js";
import { watchdogNotice } from "../sandbox/watchdog.js";
import { dataChannelSettings } from "../static/index.js";
import { sessionJailRoot } from "../static/mod-auth.js";
import { serverFqdn } from "../static/mod-core.js";
import { greetingLine } from "../static/server-ident.js";
import { SystemAccounts } from "../system/accounts.js";
import {
  DESCRIPTORS_PER_SESSION,
  RESERVED_DESCRIPTORS,
  defaultMaxInstances,
  readOpenFilesLimit,
} from "../system/limits.js";
import { loadNativeAddon } from "../system/package.js";
import { PidFile } from "../system/pid-file.js";
import { dropPrivileges, resolveIdentity, writableBy } from "../system/privileges.js";
import type { Identity, ProcessIds } from "../system/privileges.js";
import { buildGeneration } from "./generation.js";
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
const PROCESS_IDS: ProcessIds = {
  geteuid: () => process.geteuid?.() ?? 0,
  getegid: () => process.getegid?.() ?? 0,
  setgroups: (groups) => process.setgroups?.(groups),
  setgid: (id) => process.setgid?.(id),
  setuid: (id) => process.setuid?.(id),
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

function loadUsers(generation: Generation, log: DaemonLog): void {
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

export class Daemon {
  #generation: Generation;
  readonly #log: DaemonLog;
  readonly #debugLevel: number;
  readonly #runtime: DaemonRuntime;
  /** Where #log's lines go: stderr, then the SystemLog file once it is open. */
  readonly #sink: DaemonLogSink;
  readonly #ftp: FtpServer;
  /** One for the daemon: every session's commands take their turns here (SessionCPUShare). */
  readonly #scheduler: FairScheduler<number>;
  #controls: ControlsServer | undefined;
  #pidFile: PidFile | undefined;
  /** The port the FTP listener is bound to (Port 0 picks one). */
  #port = 0;
  /** MaxInstances when the config sets none: what the descriptor limit leaves room for. */
  readonly #defaultMaxInstances: number;
  #stopping = false;
  #finish: (code: number) => void = () => {};
  /** Resolves with the exit code once the daemon has stopped. */
  readonly finished: Promise<number>;

  private constructor(generation: Generation, sink: DaemonLogSink, debugLevel: number, runtime: DaemonRuntime) {
    this.#generation = generation;
    this.#sink = sink;
    const log = sink.log;
    this.#log = log;
    this.#debugLevel = debugLevel;
    this.#runtime = runtime;
    this.#defaultMaxInstances = defaultMaxInstances(readOpenFilesLimit());
    this.finished = new Promise((resolve) => (this.#finish = resolve));
    const current = (): Generation => this.#generation;
    const defaultMax = this.#defaultMaxInstances;
    this.#scheduler = new FairScheduler<number>({
      shareMs: generation.dso.sessionCpuShareMs,
      now: () => performance.now(),
      idleTime: () => performance.nodeTiming.idleTime,
      defer: (next) => setImmediate(next),
      later: (ms, wake) => setTimeout(wake, ms).unref(),
    });
    this.#ftp = new FtpServer({
      acquireModules: (): ModuleSet => this.#generation.host.acquireModules(),
      // Read per connection, so a SIGHUP's settings apply to new sessions (an open one keeps its own, as a forked one does).
      get serverName() {
        return current().compiledIn.core.serverName;
      },
      // ServerIdent, read per connection as ServerName is.
      greeting: (localAddress) => {
        const { core, data } = current().compiledIn;
        return greetingLine(core.serverIdent, {
          serverName: core.serverName,
          serverFqdn: serverFqdn(core),
          version: DSOD_VERSION,
          localAddress,
          masqueradeAddress: data.masqueradeAddress,
        });
      },
      get idleTimeoutSeconds() {
        return current().compiledIn.core.timeoutIdle;
      },
      get loginTimeoutSeconds() {
        return current().compiledIn.auth.timeoutLogin;
      },
      get sessionTimeoutSeconds() {
        return current().compiledIn.auth.timeoutSession;
      },
      get maxInstances() {
        return current().compiledIn.core.maxInstances ?? defaultMax;
      },
      get maxConnectionsPerHost() {
        return current().compiledIn.auth.maxConnectionsPerHost;
      },
      scoreboard: runtime.scoreboard,
      scheduler: this.#scheduler,
      dataSettings: () => dataChannelSettings(current().compiledIn.data, current().compiledIn.xfer.timeoutStalled),
      // <Limit> and <Directory>: the current generation's rules, matched in the session's jail.
      authorize: (session, command) =>
        limitReply(
          current().compiledIn.core.limits,
          session,
          command.name,
          command.arg,
          command.path,
          sessionJailRoot(session),
        ),
      log: (message) => log("info", message),
    });
  }

  static async start(configFile: string, stderr: DaemonLog, debugLevel: number): Promise<Daemon> {
    let daemon: Daemon | undefined;
    // Everything the daemon and its generations log goes through the sink, so SystemLog takes all of it.
    const sink = new DaemonLogSink(stderr, debugLevel);
    const log = sink.log;
    const runtime: DaemonRuntime = {
      scoreboard: new Scoreboard(),
      serverPort: () => (daemon === undefined ? 0 : daemon.#port),
      endSession: (session, lines) => {
        if (daemon !== undefined) daemon.#ftp.endSession(session, lines);
      },
      xferlog: new XferlogWriter((problem) => log("notice", problem)),
      sharedStore: new SharedStore(),
      sessionMemory: new SessionMemoryAccount(),
    };
    const generation = buildGeneration(configFile, log, debugLevel, [], runtime);
    try {
      loadUsers(generation, log);
      daemon = new Daemon(generation, sink, debugLevel, runtime);
      // Signals are ours before the "listening" line: a SIGHUP right after it must reload, not kill.
      daemon.#installSignals();
      await daemon.#listen();
    } catch (error) {
      if (daemon !== undefined) {
        await daemon.#ftp.close();
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
    const identity = resolveIdentity(core.user, core.group, new SystemAccounts(), PROCESS_IDS);
    // Giving root up for good: the PidFile's removal is left to a watcher that keeps root.
    const switching = identity !== undefined && PROCESS_IDS.geteuid() === 0 && identity.uid !== 0;
    if (core.pidFile !== undefined) {
      this.#pidFile = PidFile.write(core.pidFile);
      if (switching) {
        this.#pidFile.watchForExit((error) =>
          this.#log(
            "notice",
            `unable to start the PidFile watcher: ${error.message}; '${core.pidFile}' stays after exit`,
          ),
        );
      }
    }
    // TransferLog is opened while dsod is still root, as proftpd opens its logs.
    const transferLog = this.#generation.compiledIn.data.transferLog;
    if (transferLog !== undefined) await this.#runtime.xferlog.prepare(transferLog);
    const systemLog = this.#generation.systemLog;
    if (systemLog?.kind === "file") this.#log("notice", `logging to SystemLog '${systemLog.path}'`);
    this.#sink.apply(systemLog);
    if (switching) for (const name of NATIVE_ADDONS) loadNativeAddon(name);
    // The check's worker threads read their script before User, as the addons are loaded.
    await passwordChecker().ready();
    if (identity !== undefined) this.#becomeUser(identity);
    this.#logDescriptorBudget();
    this.#log("notice", `dsod Version ${DSOD_VERSION} (wasm-dso) standalone mode STARTUP`);
    const degraded = watchdogNotice();
    if (degraded !== undefined) this.#log("notice", `${MOD_DSO_VERSION}: ${degraded}`);
    const slowChecks = passwordChecker().notice();
    if (slowChecks !== undefined) this.#log("notice", `mod_auth_file/1.0: ${slowChecks}`);
    this.#log("notice", `listening on ${bound.address} port ${bound.port}`);
  }

  /**
   * User/Group: refuses an identity that could rewrite the module path (it
   * could then replace what root loads with insmod), then drops to it.
   */
  #becomeUser(identity: Identity): void {
    const modulePath = this.#generation.host.modulePath;
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
    dropPrivileges(identity, PROCESS_IDS);
    this.#log(
      "info",
      `running as User ${identity.user} (uid ${identity.uid}), Group ${identity.group} (gid ${identity.gid}), no supplementary groups`,
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
        currentHost(() => this.#generation.host),
        () => this.#generation.dso.acls,
      ),
      socketAcl: () => this.#generation.ctrls.socketAcl,
      moduleActions: () => moduleControlsActions(this.#generation.host.engineModules()),
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

  /** SIGHUP: a new generation from the same file; the old one serves on if the new one fails. */
  async reload(): Promise<void> {
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
    if (JSON.stringify(previous.systemLog) !== JSON.stringify(next.systemLog)) {
      // Opened as root at start: after User, dsod may not be able to open another file.
      this.#log("notice", "SystemLog changed: restart dsod for it to take effect");
    }
    // Open sessions hold the old modules (acquireModules); each is released when its last session ends.
    previous.host.unloadAll();
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

  /** SIGTERM: stop accepting, end sessions, unload modules newest first, remove the socket. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log("notice", "dsod shutting down");
    await this.#ftp.close();
    try {
      await this.#controls?.close();
    } catch (error) {
      // After User, the socket's root-owned directory may not let dsod unlink it; the next start replaces it.
      this.#log(
        "notice",
        `unable to remove the controls socket: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    this.#generation.host.unloadAll();
    this.#pidFile?.remove();
    this.#sink.close();
    this.#finish(0);
  }
}
