/**
 * The running dsod: one configuration generation, the FTP server and the
 * controls socket, and the signals. SIGTERM (and SIGINT) stop it: no new
 * connections, sessions told and ended, modules unloaded newest first, the
 * socket removed, exit 0. SIGHUP re-reads the config as proftpd does (the loaded
 * modules go, the new config's come) into a new generation; a config that fails
 * leaves the old one serving, with the error logged.
 */
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ConfigError } from "../config/lexer.js";
import { currentHost, dsoControlsActions } from "../controls/dso-actions.js";
import { ControlsServer } from "../controls/server.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { FtpServer } from "../ftp/server.js";
import type { ModuleSet } from "../modules/module-host.js";
import { SystemAccounts } from "../system/accounts.js";
import { buildGeneration } from "./generation.js";
import type { DaemonLog, Generation } from "./generation.js";
import { DSOD_VERSION } from "./version.js";

function loadUsers(generation: Generation, log: DaemonLog): void {
  const file = generation.compiledIn.authFile.path;
  if (file === undefined) return;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new DsoError(ErrorCodes.FILE, `AuthUserFile: unable to read '${file}': ${(cause as Error).message}`, { cause });
  }
  for (const warning of generation.compiledIn.authFile.load(text)) log("notice", `mod_auth_file/1.0: ${warning}`);
}

export class Daemon {
  #generation: Generation;
  readonly #log: DaemonLog;
  readonly #debugLevel: number;
  readonly #ftp: FtpServer;
  #controls: ControlsServer | undefined;
  #stopping = false;
  #finish: (code: number) => void = () => {};
  /** Resolves with the exit code once the daemon has stopped. */
  readonly finished: Promise<number>;

  private constructor(generation: Generation, log: DaemonLog, debugLevel: number) {
    this.#generation = generation;
    this.#log = log;
    this.#debugLevel = debugLevel;
    this.finished = new Promise((resolve) => (this.#finish = resolve));
    const daemon = this;
    this.#ftp = new FtpServer({
      acquireModules: (): ModuleSet => this.#generation.host.acquireModules(),
      // Read per connection, so a SIGHUP's ServerName and TimeoutIdle apply to new sessions.
      get serverName() {
        return daemon.#generation.compiledIn.core.serverName;
      },
      get idleTimeoutSeconds() {
        return daemon.#generation.compiledIn.core.timeoutIdle;
      },
      log: (message) => log("info", message),
    });
  }

  static async start(configFile: string, log: DaemonLog, debugLevel: number): Promise<Daemon> {
    const generation = buildGeneration(configFile, log, debugLevel);
    let daemon: Daemon | undefined;
    try {
      loadUsers(generation, log);
      daemon = new Daemon(generation, log, debugLevel);
      // Signals are ours before the "listening" line: a SIGHUP right after it must reload, not kill.
      daemon.#installSignals();
      await daemon.#listen();
    } catch (error) {
      if (daemon !== undefined) {
        await daemon.#ftp.close();
        await daemon.#controls?.close();
      }
      generation.host.close();
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
      throw new DsoError(ErrorCodes.FILE, `unable to bind to ${address} port ${core.port}: ${(cause as Error).message}`, { cause });
    }
    await this.#startControls();
    this.#log("notice", `dsod Version ${DSOD_VERSION} (wasm-dso) standalone mode STARTUP`);
    this.#log("notice", `listening on ${bound.address} port ${bound.port}`);
  }

  async #startControls(): Promise<void> {
    const ctrls = this.#generation.ctrls;
    if (!ctrls.engine) return;
    mkdirSync(path.dirname(ctrls.socketPath), { recursive: true });
    const controls = new ControlsServer({
      socketPath: ctrls.socketPath,
      socketOwner: ctrls.socketOwner,
      // Read through the current generation, so a SIGHUP's new ACLs apply to the next request.
      actions: dsoControlsActions(
        currentHost(() => this.#generation.host),
        () => this.#generation.dso.acls,
      ),
      socketAcl: () => this.#generation.ctrls.socketAcl,
      maxClients: ctrls.maxClients,
      ...(ctrls.logFile !== undefined && { controlsLog: ctrls.logFile }),
      accounts: new SystemAccounts(),
      tracer: this.#generation.traceLog,
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
      next = buildGeneration(this.#generation.configFile, this.#log, this.#debugLevel, removed);
      loadUsers(next, this.#log);
    } catch (error) {
      const text =
        error instanceof ConfigError && error.line > 0 ? error.proftpdText() : isDsoError(error) ? error.message : String(error);
      this.#log("error", `unable to reload the configuration, keeping the running one: ${text}`);
      return;
    }
    const previous = this.#generation;
    this.#generation = next;
    const [before, after] = [previous.compiledIn.core, next.compiledIn.core];
    if (before.port !== after.port || before.defaultAddress !== after.defaultAddress) {
      // The listening socket is bound once: a new address or port needs a restart.
      this.#log("notice", "DefaultAddress/Port changed: restart dsod for them to take effect");
    }
    // Open sessions hold the old modules (acquireModules); each is released when its last session ends.
    previous.host.close();
    if (next.ctrls.socketPath !== previous.ctrls.socketPath || next.ctrls.engine !== previous.ctrls.engine) {
      await this.#controls?.close();
      this.#controls = undefined;
      await this.#startControls();
    }
  }

  /** SIGTERM: stop accepting, end sessions, unload modules newest first, remove the socket. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log("notice", "dsod shutting down");
    await this.#ftp.close();
    await this.#controls?.close();
    this.#generation.host.close();
    this.#finish(0);
  }
}
