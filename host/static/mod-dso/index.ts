/**
 * mod_dso.c, compiled in: the directives LoadFile, LoadModule, ModulePath,
 * ModuleOrder and ModuleControlsACLs (modules/mod_dso.c's conftab). Its control
 * actions insmod/lsmod/rmmod are beside them, in controls.ts.
 */
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { EMPTY_ACL_TABLE, applyActionAcl, parseActionAcl } from "../../controls/acl.js";
import { DSO_ACTIONS } from "./controls.js";
import type { AclTable } from "../../controls/acl.js";
import type { IdResolver } from "../../system/accounts.js";
import { DsoError, ErrorCodes, isDsoError } from "../../errors.js";
import { checkArgs, directiveError } from "../../config/directives.js";
import { ConfigError } from "../../config/lexer.js";
import { moduleSymbolHint, nameHint } from "../../modules/name-hint.js";
import type { EngineModule } from "../../modules/module-api.js";
import { BinaryError } from "../../modules/module-compiler.js";
import { MOD_DSO_VERSION } from "../../modules/module-host.js";
import type { LogPriority, ModuleHost, SessionInstancesMode } from "../../modules/module-host.js";
import { Capabilities } from "../../abi/host-symbols.js";
import type { Capability } from "../../abi/host-symbols.js";
import { PolicyTable } from "../../modules/policy.js";
import { DEFAULT_SESSION_CPU_SHARE_MS } from "../../ftp/scheduler.js";
import { BYTE_LIMITS, LOAD_LIMIT_KEYWORDS, V8_LOAD_LIMITS, loadLimitNamed } from "../../wasm/limits.js";
import type { LoadLimitName } from "../../wasm/limits.js";

export interface DsoSettings {
  /** ModuleControlsACLs, per action; no entry means everyone is denied, root included. */
  acls: AclTable;
  /** The sandbox directives' settings, per module or library. */
  readonly policies: PolicyTable;
  /** SessionCPUShare: CPU ms per second a session may use before its commands wait (host/ftp/scheduler.ts); 0 for off. */
  sessionCpuShareMs: number;
  /** SessionWorkers: processes that serve the sessions; undefined (off) serves them in the daemon itself. */
  sessionWorkers: number | undefined;
}

/** A wasm page: the unit of linear memory. */
const PAGE_BYTES = 65536;
/** 1 GiB, proxy-wasm-cpp-host's cap on a VM's memory: no module of ours needs more. */
const MAX_MEMORY_PAGES = 16384;

/** `16M`, `512K`, `1G` or plain bytes, rounded up to whole pages. */
export function parseMemorySize(text: string): number {
  const match = /^(\d+)([KMG]?)$/i.exec(text);
  if (match === null)
    throw directiveError(`invalid size '${text}' (a number of bytes with an optional K, M or G suffix)`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(match[2] ?? "").toUpperCase() as "" | "K" | "M" | "G"];
  const pages = Math.ceil((Number(match[1]) * unit) / PAGE_BYTES);
  if (pages < 1 || pages > MAX_MEMORY_PAGES) throw directiveError(`size '${text}' is out of range (64K to 1G)`);
  return pages;
}

/** ModuleMemoryTotal's default: room for about 3,000 sessions of the example configuration's modules. */
export const DEFAULT_MEMORY_TOTAL = 2 * 1024 ** 3;

/** ModuleMemoryTotal's size: bytes with an optional K, M, G or T suffix, at least a page. */
function parseMemoryTotal(text: string): number {
  const match = /^(\d+)([KMGT]?)$/i.exec(text);
  if (match === null)
    throw directiveError(`invalid size '${text}' (a number of bytes with an optional K, M, G or T suffix, or none)`);
  const suffix = (match[2] ?? "").toUpperCase() as "" | "K" | "M" | "G" | "T";
  const bytes = Number(match[1]) * { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[suffix];
  if (bytes < PAGE_BYTES || !Number.isSafeInteger(bytes))
    throw directiveError(`size '${text}' is out of range (64K or more)`);
  return bytes;
}

/** SessionWorkers when the config says nothing. */
export const DEFAULT_SESSION_WORKERS = "auto";

/** SessionWorkers' bound: more processes than this serve no machine dsod runs on better. */
export const MAX_SESSION_WORKERS = 256;

/** SessionWorkers' value: off (undefined), auto (the CPUs this process may use) or 1 to MAX_SESSION_WORKERS. */
export function parseSessionWorkers(
  text: string,
  parallelism: () => number = availableParallelism,
): number | undefined {
  const value = text.toLowerCase();
  if (value === "off") return undefined;
  if (value === "auto") return Math.min(parallelism(), MAX_SESSION_WORKERS);
  const count = /^[1-9]\d*$/.test(value) ? Number(value) : NaN;
  if (!(count <= MAX_SESSION_WORKERS))
    throw directiveError(`invalid worker count '${text}' (1 to ${MAX_SESSION_WORKERS}, auto or off)`);
  return count;
}

function isSessionInstancesMode(value: string): value is SessionInstancesMode {
  return value === "snapshot" || value === "replay" || value === "shared";
}

/** A ModuleLoadLimits value: a count, or for a byte limit a size with an optional K, M or G suffix; at most V8's own limit. */
function parseLoadLimit(keyword: string, text: string): { name: LoadLimitName; value: number } {
  const name = loadLimitNamed(keyword);
  if (name === undefined) {
    throw directiveError(`unknown load limit '${keyword}' (known: ${Object.values(LOAD_LIMIT_KEYWORDS).join(", ")})`);
  }
  const bytes = BYTE_LIMITS.has(name);
  const match = (bytes ? /^(\d+)([KMG]?)$/i : /^(\d+)()$/).exec(text);
  if (match === null) {
    throw directiveError(
      `invalid ${LOAD_LIMIT_KEYWORDS[name]} '${text}' (${bytes ? "a number of bytes with an optional K, M or G suffix" : "a number"})`,
    );
  }
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(match[2] ?? "").toUpperCase() as "" | "K" | "M" | "G"];
  const value = Number(match[1]) * unit;
  if (value > V8_LOAD_LIMITS[name]) {
    throw directiveError(`${LOAD_LIMIT_KEYWORDS[name]} '${text}' is over V8's own limit of ${V8_LOAD_LIMITS[name]}`);
  }
  return { name, value };
}

/** Who a sandbox directive applies to: `*`, a module name (`mod_x.c`) or a library name (`libfoo`). */
function unitName(text: string): string {
  if (text === "*" || /^mod_[A-Za-z0-9_]+\.c$/.test(text) || /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(text)) return text;
  throw directiveError(`'${text}' names no module or library (use mod_x.c, a library name such as libfoo, or *)`);
}

export interface DsoModuleOptions {
  /** The host this module manages (bound late: the host is built with this module in it). */
  readonly host: () => ModuleHost;
  readonly accounts: IdResolver;
  readonly log: (priority: LogPriority, message: string) => void;
}

/** proftpd's frame for a failed load: the errno text where proftpd has one, our message otherwise. */
function loadReason(error: unknown): string {
  if (!isDsoError(error)) return String(error);
  // The manual's FAQ: a module loaded twice (or compiled in) is fatal with EPERM.
  if (error.code === ErrorCodes.ALREADY_LOADED) return "Operation not permitted";
  return error.reason;
}

/**
 * What LoadModule's fatal line leaves unsaid, as `Fatal:` lines after it: the
 * name meant (a bad name is refused before anything is logged), or the export
 * a module file lacks (proftpd's ENOENT reads as a missing file). The other
 * failures' reasons are in mod_dso's log lines before the fatal one.
 */
function loadModuleHints(name: string, error: unknown): string[] {
  if (!isDsoError(error)) return [];
  if (error.code === ErrorCodes.BAD_MODULE_NAME) return nameHint(name);
  if (error.code === ErrorCodes.NO_MODULE_SYMBOL) return [moduleSymbolHint(name)];
  return [];
}

/** ModulePath's checks, in mod_dso.c set_modulepath's order. */
export function checkModulePath(directory: string): void {
  if (!directory.startsWith("/")) throw directiveError("must be an absolute path");
  let stat;
  try {
    stat = statSync(directory);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const text =
      code === "ENOENT"
        ? "No such file or directory"
        : code === "EACCES"
          ? "Permission denied"
          : (cause as Error).message;
    throw new DsoError(ErrorCodes.CONFIG, `error checking '${directory}': ${text}`, { cause });
  }
  if (!stat.isDirectory()) throw directiveError(`${directory} is not a directory`);
  // Any system user could replace modules in a world-writable directory (the manual's FAQ).
  if (stat.mode & 0o002) throw directiveError(`${directory} is world-writable`);
}

/**
 * ModuleOrder's argument checks, in mod_dso.c set_moduleorder's order: every
 * name loaded, then no name twice. Then, beyond proftpd, `required` (the
 * protected modules, which rmmod refuses to remove) must all be listed:
 * without mod_dso.c, LoadModule would become an unknown directive and insmod
 * could never be allowed again.
 */
export function checkModuleOrder(
  names: readonly string[],
  isLoaded: (name: string) => boolean,
  required: readonly string[] = [],
): void {
  if (names.length === 0) throw directiveError("wrong number of parameters");
  for (const name of names) if (!isLoaded(name)) throw directiveError(`no such module '${name}' loaded`);
  names.forEach((name, i) => {
    const earlier = names.indexOf(name);
    if (earlier < i) throw directiveError(`duplicate module name '${name}' as parameters ${earlier + 1} and ${i + 1}`);
  });
  const missing = required.find((name) => !names.includes(name));
  if (missing !== undefined) {
    throw directiveError(
      `'${missing}' is missing: ${required.join(" and ")} must stay in the engine (rmmod refuses to remove them too)`,
    );
  }
}

export function createDsoModule(options: DsoModuleOptions): { module: EngineModule; settings: DsoSettings } {
  const settings: DsoSettings = {
    acls: EMPTY_ACL_TABLE,
    policies: new PolicyTable(),
    sessionCpuShareMs: DEFAULT_SESSION_CPU_SHARE_MS,
    // One worker per CPU unless told otherwise: a single event loop is one core's worth of sessions (issue 15).
    sessionWorkers: parseSessionWorkers(DEFAULT_SESSION_WORKERS),
  };
  const known = Object.values(Capabilities) as string[];
  const module: EngineModule = {
    name: "mod_dso.c",
    kind: "static",
    commands: [],
    siteCommands: [],
    features: [],
    help: [],
    directives: [
      {
        name: "LoadFile",
        run: (directive) => {
          checkArgs(directive, 1);
          const file = directive.argv[1] as string;
          if (!file.startsWith("/")) throw directiveError("must be an absolute path");
          try {
            options.host().loadFile(file);
          } catch (error) {
            // The file is named once, in proftpd's frame: a binary's own problem is said without its file.
            const problem = error instanceof BinaryError ? error.problem : undefined;
            if (isDsoError(error)) {
              // dso_load_file's NOTICE; libltdl's words for a missing file.
              const lines =
                error.code === ErrorCodes.MODULE_NOT_FOUND
                  ? ["file not found"]
                  : problem !== undefined
                    ? [problem]
                    : error.lines;
              for (const line of lines) options.log("notice", `${MOD_DSO_VERSION}: unable to open '${file}': ${line}`);
            }
            const reason = isDsoError(error) ? (error.errno ?? problem ?? error.message) : String(error);
            throw directiveError(`error loading '${file}': ${reason}`);
          }
        },
      },
      {
        name: "LoadModule",
        run: (directive, context) => {
          checkArgs(directive, 1);
          const name = directive.argv[1] as string;
          try {
            // The host logs why it refused the module, as it does for insmod.
            options.host().loadModule(name);
          } catch (error) {
            const message = `error loading module '${name}': ${loadReason(error)}`;
            const hint = loadModuleHints(name, error);
            if (hint.length === 0) throw directiveError(message);
            throw new ConfigError(`LoadModule: ${message}`, context.file, context.line, {
              directive: "LoadModule",
              details: hint,
              cause: error,
            });
          }
        },
      },
      {
        name: "ModulePath",
        run: (directive) => {
          checkArgs(directive, 1);
          const directory = directive.argv[1] as string;
          checkModulePath(directory);
          options.host().setModulePath(directory);
        },
      },
      {
        name: "ModuleOrder",
        run: (directive, context) => {
          // The manual: "make sure it is the very first directive". proftpd never checks; we do.
          if (!context.first) throw directiveError("must be the very first directive of the configuration");
          const names = directive.argv.slice(1);
          const host = options.host();
          const required = host.listModules().filter((name) => host.isProtected(name));
          checkModuleOrder(names, (name) => host.isLoaded(name), required);
          const removed = host.setModuleOrder(names);
          // set_moduleorder's report, as proftpd prints it: no mod_dso prefix, one ` mod_x.c` line each.
          options.log("notice", "ModuleOrder: module order is now:");
          for (const name of names) options.log("notice", ` ${name}`);
          for (const name of removed) options.log("notice", `ModuleOrder: '${name}' removed from the engine`);
        },
      },
      {
        // Beyond proftpd: the sandbox's limits and grants, per module or library (docs/security.md).
        name: "ModuleMemoryLimit",
        run: (directive) => {
          checkArgs(directive, 2);
          settings.policies.setMemoryCap(
            unitName(directive.argv[1] as string),
            parseMemorySize(directive.argv[2] as string),
          );
        },
      },
      {
        // Beyond proftpd, whose sessions are processes the kernel bounds: all guest memory of the daemon.
        name: "ModuleMemoryTotal",
        run: (directive) => {
          checkArgs(directive, 1);
          const value = directive.argv[1] as string;
          options.host().setMemoryTotal(value.toLowerCase() === "none" ? undefined : parseMemoryTotal(value));
        },
      },
      {
        name: "ModuleInstances",
        run: (directive) => {
          checkArgs(directive, 1);
          const value = (directive.argv[1] as string).toLowerCase();
          if (!isSessionInstancesMode(value))
            throw directiveError(`invalid value '${directive.argv[1]}' (snapshot, replay or shared)`);
          options.host().setSessionInstances(value);
        },
      },
      {
        name: "ModuleCPULimit",
        run: (directive) => {
          checkArgs(directive, 2);
          const value = directive.argv[2] as string;
          const ms = value.toLowerCase() === "off" ? 0 : /^\d+$/.test(value) ? Number(value) : NaN;
          if (!Number.isInteger(ms) || ms > 3_600_000)
            throw directiveError(`invalid CPU limit '${value}' (milliseconds, or off)`);
          settings.policies.setCpuBudget(unitName(directive.argv[1] as string), ms);
        },
      },
      {
        // ModuleLoadLimits NAME KEYWORD VALUE [KEYWORD VALUE ...]: all given limits are checked before any is set.
        name: "ModuleLoadLimits",
        run: (directive) => {
          checkArgs(directive, 3);
          const pairs = directive.argv.slice(2);
          if (pairs.length % 2 !== 0) throw directiveError(`load limit '${pairs.at(-1)}' has no value`);
          const unit = unitName(directive.argv[1] as string);
          const limits = [];
          for (let i = 0; i < pairs.length; i += 2)
            limits.push(parseLoadLimit(pairs[i] as string, pairs[i + 1] as string));
          for (const { name, value } of limits) settings.policies.setLoadLimit(unit, name, value);
        },
      },
      {
        name: "SessionCPUShare",
        run: (directive) => {
          checkArgs(directive, 1);
          const value = directive.argv[1] as string;
          const ms = value.toLowerCase() === "off" ? 0 : /^[1-9]\d*$/.test(value) ? Number(value) : NaN;
          if (!(ms >= 0 && ms <= 1000)) {
            throw directiveError(`invalid CPU share '${value}' (milliseconds per second, 1 to 1000, or off)`);
          }
          settings.sessionCpuShareMs = ms;
        },
      },
      {
        // Beyond proftpd, whose master forks a process per session: a fixed set of processes serves them all.
        name: "SessionWorkers",
        run: (directive) => {
          checkArgs(directive, 1);
          settings.sessionWorkers = parseSessionWorkers(directive.argv[1] as string);
        },
      },
      {
        name: "ModuleFaultPolicy",
        run: (directive) => {
          checkArgs(directive, 2);
          const action = directive.argv[2] as string;
          if (action !== "reload" && action !== "unload")
            throw directiveError(`second parameter must be 'reload' or 'unload', not '${action}'`);
          const [maxText, windowText] = directive.argv.slice(3);
          const maxFaults = maxText === undefined ? 5 : Number(maxText);
          const windowSeconds = windowText === undefined ? 60 : Number(windowText);
          if (!Number.isInteger(maxFaults) || maxFaults < 1 || !Number.isInteger(windowSeconds) || windowSeconds < 1) {
            throw directiveError(
              "crash-loop limit must be a number of faults and a number of seconds, both at least 1",
            );
          }
          settings.policies.setFaultPolicy(unitName(directive.argv[1] as string), {
            action,
            maxFaults,
            windowMs: windowSeconds * 1000,
          });
        },
      },
      {
        name: "ModuleCapabilities",
        run: (directive) => {
          checkArgs(directive, 2);
          const names = directive.argv
            .slice(2)
            .flatMap((word) => word.split(","))
            .filter((n) => n.length > 0);
          const unknown = names.find((n) => !known.includes(n));
          if (unknown !== undefined)
            throw directiveError(`unknown capability '${unknown}' (known: ${known.join(", ")})`);
          settings.policies.grant(unitName(directive.argv[1] as string), names as Capability[]);
        },
      },
      {
        name: "ModuleFilesystem",
        run: (directive) => {
          checkArgs(directive, 2);
          const hostPath = directive.argv[2] as string;
          if (!hostPath.startsWith("/")) throw directiveError("must be an absolute path");
          const mode = directive.argv[3] ?? "ro";
          if (mode !== "ro" && mode !== "rw")
            throw directiveError(`third parameter must be 'ro' or 'rw', not '${mode}'`);
          const guestPath = directive.argv[4] ?? hostPath;
          if (!guestPath.startsWith("/")) throw directiveError(`the guest path '${guestPath}' must be absolute`);
          let stat;
          try {
            stat = statSync(hostPath);
          } catch (cause) {
            throw new DsoError(ErrorCodes.CONFIG, `error checking '${hostPath}': ${(cause as Error).message}`, {
              cause,
            });
          }
          if (!stat.isDirectory()) throw directiveError(`${hostPath} is not a directory`);
          settings.policies.addPreopen(unitName(directive.argv[1] as string), {
            hostPath,
            guestPath,
            writable: mode === "rw",
          });
        },
      },
      {
        name: "ModuleIntegrity",
        run: (directive) => {
          checkArgs(directive, 2);
          const name = directive.argv[1] as string;
          if (name === "*") throw directiveError("a pin names one module or library, not '*'");
          const match = /^sha256:([0-9a-f]{64})$/.exec(directive.argv[2] as string);
          if (match === null)
            throw directiveError(`'${directive.argv[2]}' is not a pin (sha256: followed by 64 lower-case hex digits)`);
          settings.policies.pin(unitName(name), match[1] as string);
        },
      },
      {
        name: "ModuleControlsACLs",
        run: (directive) => {
          settings.acls = applyActionAcl(
            settings.acls,
            parseActionAcl(directive.argv.slice(1), DSO_ACTIONS, options.accounts),
          );
        },
      },
    ],
  };
  return { module, settings };
}
