/**
 * mod_dso.c's log lines for the loader's events (modules/mod_dso.c
 * dso_load_module's pr_log_pri and pr_log_debug calls): the loader reports
 * what happened as data (loader-events.ts); this is the one place that words
 * it as proftpd does. Pure: an event and the debug level in, lines out.
 */
import { ErrorCodes, isDsoError } from "../errors.js";
import { dsoDebug } from "./dso-debug.js";
import type { DebugLine } from "./dso-debug.js";
import { handlerNameWarning } from "./handler-names.js";
import { InitError } from "./instantiate.js";
import type { LoaderEvent } from "./loader-events.js";
import { wrongApiVersionText } from "./planner.js";
import { MOD_DSO_VERSION } from "./types.js";
import type { LogPriority } from "./types.js";

export interface LogLine {
  readonly priority: LogPriority;
  readonly message: string;
}

function dso(priority: LogPriority, text: string): LogLine {
  return { priority, message: `${MOD_DSO_VERSION}: ${text}` };
}

function debug(line: DebugLine, debugLevel: number): LogLine[] {
  return line.level <= debugLevel ? [dso("debug", line.text)] : [];
}

/**
 * Every refused load leaves its reason in the log, whether LoadModule, insmod
 * or a SIGHUP's re-read asked for it, as dso_load_module logs its own
 * failures. A wrong API version and a module's failed init were logged where
 * they were found, in proftpd's words; only their other lines (the trap that
 * failed the init) are added here.
 */
function refusalLines(module: string, error: unknown): LogLine[] {
  if (!isDsoError(error)) return [dso("notice", `unable to load '${module}': ${String(error)}`)];
  const loggedAtSource =
    error.code === ErrorCodes.API_VERSION || (error instanceof InitError && error.unitKind === "module");
  return error.lines.filter((line) => !(loggedAtSource && line === error.message)).map((line) => dso("notice", line));
}

/** The lines of one event, at `debugLevel` (`dsod -d N`). */
export function dsoLogLines(event: LoaderEvent, debugLevel: number): LogLine[] {
  switch (event.kind) {
    case "debug":
      return debug(event.line, debugLevel);
    case "no-file":
      // libltdl's failure, dso_load_module's NOTICE, and the fall back to the executable ('self').
      return [
        ...debug(dsoDebug.noFile(event.requested), debugLevel),
        dso("notice", `unable to load '${event.requested}'; check to see if '${event.stemPath}.wasm' exists`),
        ...debug(dsoDebug.self, debugLevel),
      ];
    case "no-symbol":
      return debug(dsoDebug.noSymbol(event.symbol), debugLevel);
    case "load-refused":
      return refusalLines(event.module, event.error);
    case "already-loaded":
      return [dso("info", `module '${event.module}' already loaded`)];
    case "wrong-api-version":
      return [dso("error", wrongApiVersionText(event.module, event.found, event.expected))];
    case "init-failed":
      return [dso("error", `module '${event.module}' failed to initialize`)];
    case "fault":
      return [{ priority: "error", message: `${event.unit}: fault in ${event.entryPoint}: ${event.reason}` }];
    case "reinstantiating":
      return [{ priority: "notice", message: `${event.unit}: re-instantiating after a fault` }];
    case "fault-unloaded": {
      const why = event.crashLoop
        ? `${event.faults} faults within ${event.windowMs / 1000} s`
        : "a fault (ModuleFaultPolicy unload)";
      return [{ priority: "error", message: `${event.unit}: unloaded after ${why}` }];
    }
    case "fault-disabled":
      return [
        {
          priority: "error",
          message: `${event.unit}: disabled: other modules are bound to it (${event.dependents.join(", ")})`,
        },
      ];
    case "unload-hook-failed":
      return [{ priority: "error", message: `${event.unit}: unload hook failed: ${event.reason}` }];
    case "handler-names":
      return event.problems.map((problem) => dso("notice", `${event.module}: ${handlerNameWarning(problem)}`));
  }
}
