/**
 * The module protocol of a WebAssembly DSO module: how its exports map onto
 * proftpd's module struct. Like proftpd's cmdtab and conftab, it is static, read
 * from the export section before anything runs:
 *
 *   NAME_module                     i32 global: the module API version
 *   module_init / module_unload     () -> i32 hooks (init < 0 refuses the load)
 *   sess_init                       () -> i32, when a session starts
 *   cmd_X, pre_cmd_X, post_cmd_X,
 *   post_cmd_err_X, log_cmd_X,
 *   log_cmd_err_X                   () -> i32 handlers of FTP command X per phase
 *   site_X                          () -> i32 handler of `SITE X`
 *   conf_X                          () -> i32 handler of directive X
 *   ctrl_x                          () -> i32 control action x (`dsoctl x`;
 *                                   host/controls/module-controls.ts)
 *
 * A module with site_X exports gets a SITE handler of its own in the chain,
 * as each proftpd module registers its own C_SITE handlers (mod_site_misc.c's
 * site_misc_mkdir...): module order decides who answers, and removing
 * mod_site.c leaves them working.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import type { ActiveCommand, ImporterState } from "../abi/host-symbols.js";
import { newModuleControls, registerModuleControls } from "../controls/module-controls.js";
import { formatExternType } from "../wasm/types.js";
import type { ExportEntry, ExternType } from "../wasm/types.js";
import { HandlerResults, LOGIN_REQUIRED_TEXT, Phases } from "./module-api.js";
import type { SessionInstances } from "./session-instances.js";
import type { CommandHandler, DirectiveHandler, EngineModule, HandlerResult, HelpEntry, Phase } from "./module-api.js";

const PHASE_PREFIXES: ReadonlyArray<readonly [string, Phase]> = [
  ["post_cmd_err_", Phases.POST_CMD_ERR],
  ["log_cmd_err_", Phases.LOG_CMD_ERR],
  ["post_cmd_", Phases.POST_CMD],
  ["log_cmd_", Phases.LOG_CMD],
  ["pre_cmd_", Phases.PRE_CMD],
  ["cmd_", Phases.CMD],
];

const HOOKS = ["module_init", "module_unload", "sess_init"] as const;
const COMMAND_NAME = /^[A-Z][A-Z0-9_]*$/;
/** A control action as ftpdctl users type it: lower case, as proftpd's modules name theirs (`ban`, `lsmod`). */
const ACTION_NAME = /^[a-z][a-z0-9_]*$/;

type Entry =
  | { readonly role: "hook"; readonly exportName: string }
  | { readonly role: "command"; readonly exportName: string; readonly command: string; readonly phase: Phase }
  | { readonly role: "site"; readonly exportName: string; readonly command: string }
  | { readonly role: "directive"; readonly exportName: string; readonly directive: string }
  | { readonly role: "control"; readonly exportName: string; readonly action: string };

function classify(name: string): Entry | undefined {
  if ((HOOKS as readonly string[]).includes(name)) return { role: "hook", exportName: name };
  for (const [prefix, phase] of PHASE_PREFIXES) {
    if (name.startsWith(prefix) && COMMAND_NAME.test(name.slice(prefix.length))) {
      return { role: "command", exportName: name, command: name.slice(prefix.length), phase };
    }
  }
  if (name.startsWith("site_") && COMMAND_NAME.test(name.slice(5))) {
    return { role: "site", exportName: name, command: name.slice(5) };
  }
  if (name.startsWith("conf_") && name.length > 5)
    return { role: "directive", exportName: name, directive: name.slice(5) };
  if (name.startsWith("ctrl_") && ACTION_NAME.test(name.slice(5))) {
    return { role: "control", exportName: name, action: name.slice(5) };
  }
  return undefined;
}

const entriesByExports = new WeakMap<
  readonly ExportEntry[],
  ReadonlyArray<{ readonly entry: ExportEntry; readonly role: Entry }>
>();

/**
 * The protocol exports of a binary, classified once per compiled module (its
 * export list is shared by every load of it): reloading a module with
 * thousands of exports does not run the name rules on each again.
 */
function protocolEntries(
  exports: readonly ExportEntry[],
): ReadonlyArray<{ readonly entry: ExportEntry; readonly role: Entry }> {
  let entries = entriesByExports.get(exports);
  if (entries === undefined) {
    entries = exports.flatMap((entry) => {
      const role = classify(entry.name);
      return role === undefined ? [] : [{ entry, role }];
    });
    entriesByExports.set(exports, entries);
  }
  return entries;
}

/** True for exports that belong to the module protocol or the AssemblyScript runtime, not to the global scope. */
export function isProtocolExport(name: string, moduleSymbol: string | undefined): boolean {
  return name === moduleSymbol || classify(name) !== undefined || isRuntimeExport(name);
}

/** Exports every AssemblyScript binary has; they never enter the global scope. */
export function isRuntimeExport(name: string): boolean {
  return name.startsWith("__") || name === "memory" || name === "table" || name === "_initialize" || name === "_start";
}

function isHandlerType(type: ExternType): boolean {
  return (
    type.kind === "func" &&
    type.type.params.length === 0 &&
    type.type.results.length === 1 &&
    type.type.results[0] === "i32"
  );
}

/** Every protocol export with the wrong type, as one problem line each. */
export function protocolProblems(module: string, exports: readonly ExportEntry[]): string[] {
  const problems: string[] = [];
  for (const { entry } of protocolEntries(exports)) {
    if (!isHandlerType(entry.type)) {
      problems.push(`${module}: '${entry.name}' has type ${formatExternType(entry.type)}, must be func () -> i32`);
    }
  }
  return problems;
}

/**
 * Runs the guest export `entryPoint`, in the session's own instance when
 * `instances` is given, else in the daemon's; the host wraps it to contain
 * traps and enforce limits.
 */
export type GuestInvoker = (
  entryPoint: string,
  command: ActiveCommand | undefined,
  instances: SessionInstances | undefined,
) => number;

function toResult(value: number): HandlerResult {
  if (value === HandlerResults.HANDLED || value === HandlerResults.ERROR) return value;
  return HandlerResults.DECLINED;
}

/**
 * A module's own handler of SITE for its `subcommands`, as proftpd's
 * modules check `cmd->argv[1]` in their C_SITE handlers (mod_site_misc.c):
 *
 *   SITE X ...     its X handler runs (after login); another word is DECLINED
 *   SITE HELP      adds `X <syntax>` for each X (the syntax given to
 *                  pr_help_add / addHelp), and declines: mod_site.c's HELP,
 *                  if loaded, adds its own and the header and footer
 *   SITE HELP X    `214 Syntax: SITE X <syntax>` for its own X; beyond
 *                  proftpd, whose modules leave that to mod_site.c, which
 *                  knows only its own (`502 Unknown command`)
 *
 * `help` is read at each call: a guest registers its entries in module_init.
 */
export function siteHandler(subcommands: readonly CommandHandler[], help: readonly HelpEntry[]): CommandHandler {
  const syntaxOf = (name: string): string | undefined => help.find((entry) => entry.command === name)?.text;
  const withSyntax = (name: string): string => {
    const syntax = syntaxOf(name);
    return syntax === undefined ? name : `${name} ${syntax}`;
  };
  return {
    command: "SITE",
    phase: Phases.CMD,
    run: (cmd, session) => {
      const name = cmd.argv[1]?.toUpperCase();
      if (name === undefined) return HandlerResults.DECLINED;
      const own = subcommands.find((handler) => handler.command === name);
      if (own !== undefined) {
        // mod_site.c lets HELP alone run before login; its other subcommands and other modules' need one.
        if (session.user === undefined && name !== "HELP") {
          cmd.addError("530", LOGIN_REQUIRED_TEXT);
          return HandlerResults.ERROR;
        }
        return own.run(cmd, session);
      }
      if (name !== "HELP") return HandlerResults.DECLINED;
      const target = cmd.argv[2]?.toUpperCase();
      if (target !== undefined && subcommands.some((handler) => handler.command === target)) {
        cmd.addResponse("214", `Syntax: SITE ${withSyntax(target)}`);
        return HandlerResults.HANDLED;
      }
      for (const handler of subcommands) cmd.addResponse("214", withSyntax(handler.command));
      return HandlerResults.DECLINED;
    },
  };
}

export interface GuestModuleParts {
  readonly name: string;
  readonly shape: readonly ExportEntry[];
  readonly state: ImporterState;
  readonly invoke: GuestInvoker;
  /** Told of every directive applied, so a re-instantiated module can be configured again. */
  readonly onDirective: (argv: readonly string[]) => void;
}

/** Builds the engine's view of a linked guest module from its exports. */
export function guestEngineModule(parts: GuestModuleParts): EngineModule {
  const commands: CommandHandler[] = [];
  const siteCommands: CommandHandler[] = [];
  const directives: DirectiveHandler[] = [];
  const actions: string[] = [];
  const call = (exportName: string, command: ActiveCommand | undefined, instances?: SessionInstances): number =>
    parts.invoke(exportName, command, instances);
  for (const { role } of protocolEntries(parts.shape)) {
    switch (role.role) {
      case "command":
        commands.push({
          command: role.command,
          phase: role.phase,
          run: (cmd, session) => toResult(call(role.exportName, cmd, session.instances)),
        });
        break;
      case "site":
        siteCommands.push({
          command: role.command,
          phase: Phases.CMD,
          run: (cmd, session) => toResult(call(role.exportName, cmd, session.instances)),
        });
        break;
      case "directive":
        directives.push({
          name: role.directive,
          run: (directive) => {
            if (call(role.exportName, directive) === HandlerResults.ERROR) {
              throw new DsoError(ErrorCodes.CONFIG, `rejected by ${parts.name}`);
            }
            parts.onDirective(directive.argv);
          },
        });
        break;
      case "control":
        actions.push(role.action);
        break;
      case "hook":
        break;
    }
  }
  const hook = (name: string): (() => number) | undefined =>
    protocolEntries(parts.shape).some(({ role }) => role.role === "hook" && role.exportName === name)
      ? () => call(name, undefined)
      : undefined;
  const init = hook("module_init");
  // Called with the session, not through hook(): sess_init reads the client's address and may answer it.
  const hasSessInit = hook("sess_init") !== undefined;
  const unload = hook("module_unload");
  if (siteCommands.length > 0) commands.push(siteHandler(siteCommands, parts.state.help));
  // Made once per instance state: a re-instantiated module keeps them, its directives and init filling them again.
  const controls = (parts.state.controls ??= newModuleControls(actions));
  const module: EngineModule = {
    name: parts.name,
    kind: "dso",
    commands,
    siteCommands,
    directives,
    features: parts.state.features,
    help: parts.state.help,
    ...(init && {
      init: () => {
        if (init() < 0) throw new DsoError(ErrorCodes.INIT_FAILED, `module '${parts.name}' failed to initialize`);
      },
    }),
    ...(hasSessInit && {
      sessionInit: (session, instances) => {
        // modules_session_init (src/modules.c): a sess_init below 0 ends the session before the greeting.
        if (call("sess_init", session, instances) < 0) {
          throw new DsoError(ErrorCodes.INIT_FAILED, `${parts.name}: error initializing session`);
        }
      },
    }),
    ...(unload && { unload: () => void unload() }),
  };
  const runControl = (action: string, request: ActiveCommand): number => call(`ctrl_${action}`, request);
  registerModuleControls(module, { module: parts.name, state: controls, call: runControl });
  return module;
}
