/**
 * One configuration generation: a ModuleHost with the compiled-in modules, and
 * the settings its directives left behind, made by running a config file. A
 * SIGHUP builds a new generation and swaps it in only if it succeeds, so a
 * broken config keeps the old one serving (proftpd re-parses in place and dies
 * on a bad config; we keep serving, as the issue asks).
 */
import { hostname } from "node:os";
import type { SharedStoreApi } from "../abi/shared-store.js";
import path from "node:path";
import { expandInclude, readConfigFile } from "../config/config-file.js";
import { ConfigRunner } from "../config/config-runner.js";
import type { ConfigSource } from "../config/config-runner.js";
import { DEFAULT_CONTROLS_SOCKET } from "../controls/default-socket.js";
import { Scoreboard } from "../ftp/scoreboard.js";
import type { DirectiveHandler, SessionState } from "../modules/module-api.js";
import type { XferlogWriter } from "../xfer/xferlog.js";
import { ModuleHost } from "../modules/module-host.js";
import type { LogPriority, SessionMemoryApi } from "../modules/module-host.js";
import { createCompiledInModules } from "../static/index.js";
import type { CompiledInModules } from "../static/index.js";
import { createCtrlsModule } from "../static/mod-ctrls.js";
import type { CtrlsSettings } from "../static/mod-ctrls.js";
import { DEFAULT_MEMORY_TOTAL, createDsoModule } from "../static/mod-dso/index.js";
import type { DsoSettings } from "../static/mod-dso/index.js";
import { SystemAccounts } from "../system/accounts.js";
import { PACKAGE_ROOT } from "../system/package-root.js";
import { formatLogLine } from "../log/log-format.js";
import type { HeldLines } from "./held-lines.js";
import { systemLogDirective } from "./system-log.js";
import type { SystemLogTarget } from "./system-log.js";
import { TraceLog } from "./trace-log.js";

/** The default ModulePath: where the build writes the guest modules, our $prefix/libexec. */
export const DEFAULT_MODULE_PATH = path.join(PACKAGE_ROOT, "dist", "libexec");

export interface DaemonLog {
  (priority: LogPriority, message: string): void;
}

/** Writes proftpd-shaped log lines to stderr; `debug` lines only at `-d` levels above 0. */
export function stderrLog(debugLevel: number): DaemonLog {
  const host = hostname();
  return (priority, message) => {
    if (priority === "debug" && debugLevel === 0) return;
    process.stderr.write(`${formatLogLine(new Date(), host, process.pid, message)}\n`);
  };
}

/** What the compiled-in modules need of the running daemon; `dsod -t` and `-l` run without one. */
export interface DaemonRuntime {
  /** The sessions now open (MaxClients and its siblings count them). */
  readonly scoreboard: Scoreboard;
  /** The port the FTP listener is bound to, for failed-login lines. */
  readonly serverPort: () => number;
  /** Ends a session after sending `lines` (mod_xfer.c's TimeoutNoTransfer). */
  readonly endSession: (session: SessionState, lines: readonly string[]) => void;
  /** TransferLog files, one handle per file for the daemon's life (a SIGHUP does not reopen them). */
  readonly xferlog: XferlogWriter;
  /** The modules' shared data, for the daemon's life: every generation's host uses it. */
  readonly sharedStore: SharedStoreApi;
  /** What open sessions of every generation reserved of ModuleMemoryTotal (a worker's counts every worker's). */
  readonly sessionMemory: SessionMemoryApi;
  /** A session worker's: its generations' trace lines are held while it repeats the primary's module changes. */
  readonly heldLines?: HeldLines;
}

export interface Generation {
  readonly host: ModuleHost;
  readonly compiledIn: CompiledInModules;
  readonly dso: DsoSettings;
  readonly ctrls: CtrlsSettings;
  readonly traceLog: TraceLog;
  /** SystemLog: the file the daemon's log goes to, `none`, or undefined for stderr. */
  readonly systemLog: SystemLogTarget | undefined;
  readonly configFile: string;
}

/** Config files from disk: regular files only, at most MAX_CONFIG_FILE_BYTES each (host/config/config-file.ts). */
function fileSource(): ConfigSource {
  return { read: readConfigFile, expand: expandInclude };
}

/** The compiled-in modules in load order, what `dsod -l` lists: proftpd's static_modules[], mod_dso and mod_ctrls last. */
function compiledInModules(
  accounts: SystemAccounts,
  traceLog: TraceLog,
  host: () => ModuleHost,
  log: DaemonLog,
  runtime: DaemonRuntime | undefined,
  daemonDirectives: readonly DirectiveHandler[] = [],
) {
  const dso = createDsoModule({ host, accounts, log });
  const ctrls = createCtrlsModule(DEFAULT_CONTROLS_SOCKET, accounts, log);
  const compiledIn = createCompiledInModules({
    extra: [dso.module, ctrls.module],
    coreDirectives: [...traceLog.directives(), ...daemonDirectives],
    accounts,
    log,
    // pr_auth_gid2name, where the system knows the group (SystemAccounts answers the number itself when it does not),
    // asked without blocking: a login must not stop every other session while getent runs.
    groupName: async (gid) => {
      const name = await accounts.lookupGroupName(gid);
      return name === String(gid) ? undefined : name;
    },
    scoreboard: runtime?.scoreboard ?? new Scoreboard(),
    ...(runtime !== undefined && {
      serverPort: runtime.serverPort,
      xfer: { endSession: runtime.endSession, xferlog: runtime.xferlog, log: (message) => log("info", message) },
    }),
  });
  return { dso, ctrls, compiledIn };
}

/** The names `dsod -l` prints. */
export function compiledInModuleNames(): string[] {
  const unused = (): never => {
    throw new Error("no host: only the module list is wanted");
  };
  return compiledInModules(new SystemAccounts(), new TraceLog(), unused, () => {}, undefined).compiledIn.modules.map(
    (m) => m.name,
  );
}

/**
 * Builds a generation from a config file; throws the config's ConfigError,
 * leaving nothing running. `removedCompiledIn` are compiled-in modules a
 * previous generation's rmmod took out of the engine; `runtime` is the running
 * daemon the generation serves (none for `dsod -t`).
 */
export function buildGeneration(
  configFile: string,
  log: DaemonLog,
  debugLevel: number,
  removedCompiledIn: readonly string[] = [],
  runtime?: DaemonRuntime,
): Generation {
  const accounts = new SystemAccounts();
  const traceLog = new TraceLog(runtime?.heldLines);
  let host: ModuleHost | undefined;
  const hostRef = (): ModuleHost => {
    if (host === undefined) throw new Error("mod_dso.c used before the host exists");
    return host;
  };
  let systemLog: SystemLogTarget | undefined;
  const { dso, ctrls, compiledIn } = compiledInModules(accounts, traceLog, hostRef, log, runtime, [
    systemLogDirective((target) => (systemLog = target)),
  ]);
  host = new ModuleHost({
    modulePath: DEFAULT_MODULE_PATH,
    compiledIn: compiledIn.modules,
    protectedModules: ["mod_dso.c", "mod_ctrls.c"],
    policy: (unit) => dso.settings.policies.resolve(unit),
    ...(runtime !== undefined && { sharedStore: runtime.sharedStore, sessionMemory: runtime.sessionMemory }),
    memoryTotal: DEFAULT_MEMORY_TOTAL,
    log,
    tracer: traceLog,
    debugLevel,
    // pr_log_debug(level, msg): shown when dsod's debug level (-d) is at least `level`.
    guestLog: (importer, level, message) => {
      if (level <= debugLevel) log("info", `${importer}: ${message}`);
    },
  });
  // proftpd re-reads its config without running modules_init() again: compiled-in modules
  // removed with rmmod stay removed across a SIGHUP.
  for (const name of removedCompiledIn) host.unloadModule(name);
  const runner = new ConfigRunner({
    source: fileSource(),
    env: { ...process.env, DSOD_CONFIG_DIR: path.dirname(path.resolve(configFile)) },
    modules: () => hostRef().engineModules(),
    isLoaded: (name) => hostRef().isLoaded(name),
    log: (priority, message) => log(priority, message),
  });
  try {
    runner.run(path.resolve(configFile));
    // proftpd's core.postparse event: mod_tls.c checks its certificate and key together.
    compiledIn.tls.postParse();
  } catch (error) {
    host.close();
    throw error;
  }
  return {
    host,
    compiledIn,
    dso: dso.settings,
    ctrls: ctrls.settings,
    traceLog,
    systemLog,
    configFile: path.resolve(configFile),
  };
}
