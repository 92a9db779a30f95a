/**
 * mod_dso.c, compiled in: the directives LoadFile, LoadModule, ModulePath,
 * ModuleOrder and ModuleControlsACLs (modules/mod_dso.c's conftab). The control
 * actions insmod/lsmod/rmmod live in host/controls/dso-actions.ts.
 */
import { statSync } from "node:fs";
import type { ActiveCommand } from "../abi/host-symbols.js";
import { EMPTY_ACL_TABLE, applyActionAcl, parseActionAcl } from "../controls/acl.js";
import type { AclTable, IdResolver } from "../controls/acl.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import type { EngineModule } from "../modules/module-api.js";
import { MOD_DSO_VERSION } from "../modules/module-host.js";
import type { LogPriority, ModuleHost } from "../modules/module-host.js";

/** The actions mod_dso registers (dso_init): their ACLs come from ModuleControlsACLs. */
export const DSO_ACTIONS = ["insmod", "lsmod", "rmmod"] as const;

export interface DsoSettings {
  /** ModuleControlsACLs, per action; no entry means everyone is denied, root included. */
  acls: AclTable;
}

export interface DsoModuleOptions {
  /** The host this module manages (bound late: the host is built with this module in it). */
  readonly host: () => ModuleHost;
  readonly accounts: IdResolver;
  readonly log: (priority: LogPriority, message: string) => void;
}

function refuse(message: string): DsoError {
  return new DsoError(ErrorCodes.CONFIG, message);
}

function requireArgs(directive: ActiveCommand, count: number): void {
  // CHECK_ARGS only checks the minimum; proftpd ignores extra arguments.
  if (directive.argv.length - 1 < count) throw refuse("missing parameters");
}

/** proftpd's frame for a failed load: the errno text where proftpd has one, our message otherwise. */
function loadReason(error: unknown): string {
  if (!isDsoError(error)) return String(error);
  // The manual's FAQ: a module loaded twice (or compiled in) is fatal with EPERM.
  if (error.code === ErrorCodes.ALREADY_LOADED) return "Operation not permitted";
  return error.reason;
}

/** ModulePath's checks, in mod_dso.c set_modulepath's order. */
export function checkModulePath(directory: string): void {
  if (!directory.startsWith("/")) throw refuse("must be an absolute path");
  let stat;
  try {
    stat = statSync(directory);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const text = code === "ENOENT" ? "No such file or directory" : code === "EACCES" ? "Permission denied" : (cause as Error).message;
    throw new DsoError(ErrorCodes.CONFIG, `error checking '${directory}': ${text}`, { cause });
  }
  if (!stat.isDirectory()) throw refuse(`${directory} is not a directory`);
  // Any system user could replace modules in a world-writable directory (the manual's FAQ).
  if (stat.mode & 0o002) throw refuse(`${directory} is world-writable`);
}

/** ModuleOrder's argument checks (mod_dso.c set_moduleorder). */
export function checkModuleOrder(names: readonly string[], isLoaded: (name: string) => boolean): void {
  if (names.length === 0) throw refuse("wrong number of parameters");
  names.forEach((name, i) => {
    const earlier = names.indexOf(name);
    if (earlier < i) throw refuse(`duplicate module name '${name}' as parameters ${earlier + 1} and ${i + 1}`);
    if (!isLoaded(name)) throw refuse(`no such module '${name}' loaded`);
  });
}

export function createDsoModule(options: DsoModuleOptions): { module: EngineModule; settings: DsoSettings } {
  const settings: DsoSettings = { acls: EMPTY_ACL_TABLE };
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
          requireArgs(directive, 1);
          const file = directive.argv[1] as string;
          if (!file.startsWith("/")) throw refuse("must be an absolute path");
          try {
            options.host().loadFile(file);
          } catch (error) {
            if (isDsoError(error)) {
              for (const line of error.lines) options.log("notice", `${MOD_DSO_VERSION}: unable to open '${file}': ${line}`);
            }
            // The file is named once, in proftpd's frame: drop the host's own `'<file>': ` prefix.
            const reason = isDsoError(error) ? (error.errno ?? error.message.replace(`'${file}': `, "")) : String(error);
            throw refuse(`error loading '${file}': ${reason}`);
          }
        },
      },
      {
        name: "LoadModule",
        run: (directive) => {
          requireArgs(directive, 1);
          const name = directive.argv[1] as string;
          try {
            options.host().loadModule(name);
          } catch (error) {
            if (isDsoError(error) && error.errno === undefined) {
              for (const line of error.lines) options.log("notice", `${MOD_DSO_VERSION}: ${line}`);
            }
            throw refuse(`error loading module '${name}': ${loadReason(error)}`);
          }
        },
      },
      {
        name: "ModulePath",
        run: (directive) => {
          requireArgs(directive, 1);
          const directory = directive.argv[1] as string;
          checkModulePath(directory);
          options.host().setModulePath(directory);
        },
      },
      {
        name: "ModuleOrder",
        run: (directive, context) => {
          // The manual: "make sure it is the very first directive". proftpd never checks; we do.
          if (!context.first) throw refuse("must be the very first directive of the configuration");
          const names = directive.argv.slice(1);
          const host = options.host();
          checkModuleOrder(names, (name) => host.isLoaded(name));
          const removed = host.setModuleOrder(names);
          options.log("notice", `${MOD_DSO_VERSION}: ModuleOrder: module order is now:`);
          for (const name of names) options.log("notice", `${MOD_DSO_VERSION}:  ${name}`);
          for (const name of removed) options.log("notice", `${MOD_DSO_VERSION}: ModuleOrder: '${name}' removed from the engine`);
        },
      },
      {
        name: "ModuleControlsACLs",
        run: (directive) => {
          settings.acls = applyActionAcl(settings.acls, parseActionAcl(directive.argv.slice(1), DSO_ACTIONS, options.accounts));
        },
      },
    ],
  };
  return { module, settings };
}
