/**
 * One configuration generation: a ModuleHost with the compiled-in modules, and
 * the settings its directives left behind, made by running a config file. A
 * SIGHUP builds a new generation and swaps it in only if it succeeds, so a
 * broken config keeps the old one serving (proftpd re-parses in place and dies
 * on a bad config; we keep serving, as the issue asks).
 */
import { readFileSync, readdirSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { ConfigRunner } from "../config/config-runner.js";
import type { ConfigSource } from "../config/config-runner.js";
import { DEFAULT_CONTROLS_SOCKET } from "../controls/default-socket.js";
import { ModuleHost } from "../modules/module-host.js";
import type { LogPriority } from "../modules/module-host.js";
import { createCompiledInModules } from "../static/index.js";
import type { CompiledInModules } from "../static/index.js";
import { createCtrlsModule } from "../static/mod-ctrls.js";
import type { CtrlsSettings } from "../static/mod-ctrls.js";
import { createDsoModule } from "../static/mod-dso.js";
import type { DsoSettings } from "../static/mod-dso.js";
import { SystemAccounts } from "../system/accounts.js";
import { PACKAGE_ROOT } from "../system/package-root.js";
import { formatLogLine } from "./log-format.js";
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

export interface Generation {
  readonly host: ModuleHost;
  readonly compiledIn: CompiledInModules;
  readonly dso: DsoSettings;
  readonly ctrls: CtrlsSettings;
  readonly traceLog: TraceLog;
  readonly configFile: string;
}

function fileSource(): ConfigSource {
  return {
    read: (file) => readFileSync(file, "utf8"),
    expand: (pattern) => {
      const dir = path.dirname(pattern);
      const base = path.basename(pattern);
      if (!/[*?[]/.test(base)) return [pattern];
      // Globs in the last component, as proftpd's Include uses them (`/etc/dsod/conf.d/*.conf`).
      const regex = new RegExp(`^${base.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);
      return readdirSync(dir)
        .filter((name) => regex.test(name))
        .sort()
        .map((name) => path.join(dir, name));
    },
  };
}

/** The compiled-in modules in load order, what `dsod -l` lists: proftpd's static_modules[], mod_dso and mod_ctrls last. */
function compiledInModules(accounts: SystemAccounts, traceLog: TraceLog, host: () => ModuleHost, log: DaemonLog) {
  const dso = createDsoModule({ host, accounts, log });
  const ctrls = createCtrlsModule(DEFAULT_CONTROLS_SOCKET, accounts);
  const compiledIn = createCompiledInModules({ extra: [dso.module, ctrls.module], coreDirectives: traceLog.directives() });
  return { dso, ctrls, compiledIn };
}

/** The names `dsod -l` prints. */
export function compiledInModuleNames(): string[] {
  const unused = (): never => {
    throw new Error("no host: only the module list is wanted");
  };
  return compiledInModules(new SystemAccounts(), new TraceLog(), unused, () => {}).compiledIn.modules.map((m) => m.name);
}

/**
 * Builds a generation from a config file; throws the config's ConfigError,
 * leaving nothing running. `removedCompiledIn` are compiled-in modules a
 * previous generation's rmmod took out of the engine.
 */
export function buildGeneration(
  configFile: string,
  log: DaemonLog,
  debugLevel: number,
  removedCompiledIn: readonly string[] = [],
): Generation {
  const accounts = new SystemAccounts();
  const traceLog = new TraceLog();
  let host: ModuleHost | undefined;
  const hostRef = (): ModuleHost => {
    if (host === undefined) throw new Error("mod_dso.c used before the host exists");
    return host;
  };
  const { dso, ctrls, compiledIn } = compiledInModules(accounts, traceLog, hostRef, log);
  host = new ModuleHost({
    modulePath: DEFAULT_MODULE_PATH,
    compiledIn: compiledIn.modules,
    protectedModules: ["mod_dso.c", "mod_ctrls.c"],
    policy: (unit) => dso.settings.policies.resolve(unit),
    log,
    tracer: traceLog,
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
  } catch (error) {
    host.close();
    throw error;
  }
  return { host, compiledIn, dso: dso.settings, ctrls: ctrls.settings, traceLog, configFile: path.resolve(configFile) };
}
