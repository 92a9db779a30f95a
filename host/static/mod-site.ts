/**
 * mod_site.c, compiled in: the SITE command. proftpd's other modules hook
 * SITE subcommands by registering SITE handlers of their own; here each
 * module lists them as `siteCommands`, and this module's SITE handler runs
 * them newest module first, DECLINED passing on, as the stash would.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { siteChmodMode } from "../fs/chmod-mode.js";
import { CONTINUATION, LOGIN_REQUIRED_TEXT, notUnderstood } from "../ftp/dispatch.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, SessionState } from "../modules/module-api.js";
import { literalTarget, refuseFs, sessionFs } from "./core-files.js";
import { serverAdmin } from "./mod-core.js";
import type { CoreSettings } from "./mod-core.js";

/** mod_site.c's `_help` syntaxes for its own subcommands. */
const HELP_SYNTAX: ReadonlyMap<string, string> = new Map([
  ["HELP", "[<sp> site-command]"],
  ["CHMOD", "<sp> mode <sp> pathname"],
]);

/** Every SITE subcommand of the session's modules, newest module first, each once. */
export function siteCommandNames(modules: readonly EngineModule[]): string[] {
  const names = new Set<string>();
  for (const module of [...modules].reverse()) for (const handler of module.siteCommands) names.add(handler.command);
  return [...names];
}

function siteSyntax(modules: readonly EngineModule[], name: string, self: EngineModule): string | undefined {
  for (const module of [...modules].reverse()) {
    if (!module.siteCommands.some((c) => c.command === name)) continue;
    if (module === self) return HELP_SYNTAX.get(name);
    const entry = module.help.find((e) => e.command === name);
    if (entry !== undefined) return entry.text;
  }
  return undefined;
}

/**
 * site_chmod: `SITE CHMOD mode path`, the path being every word after the
 * mode (so it may hold spaces); the mode octal or one symbolic clause
 * (host/fs/chmod-mode.ts), whose who-less form takes the Umask's bits.
 */
function siteChmod(core: CoreSettings): CommandHandler["run"] {
  return async (cmd, session) => {
    const words = cmd.argv.slice(2);
    if (words.length < 2) {
      // full_cmd: the subcommand's words, its name upper-cased. site_chmod then
      // returns NULL, so dispatch adds its own 500 for SITE, as proftpd does.
      cmd.addError("500", `'SITE ${["CHMOD", ...words].join(" ").trimEnd()}' not understood`);
      return refuse(cmd, "500", notUnderstood("SITE"));
    }
    const modeText = words[0] as string;
    const typed = words.slice(1).join(" ");
    const target = literalTarget(cmd, session, typed);
    let current: number;
    try {
      // dir_realpath: the file must be there (symlinks followed, inside the jail).
      current = (await sessionFs(session).stat(target)).mode;
    } catch (error) {
      return refuseFs(cmd, typed, error);
    }
    const mode = siteChmodMode(modeText, current, core.umask);
    if (mode === undefined) return refuse(cmd, "550", `'${modeText}': invalid mode`);
    try {
      await sessionFs(session).chmod(target, mode);
    } catch (error) {
      // core_chmod's failure names the whole SITE argument, as proftpd's cmd->arg.
      return refuseFs(cmd, cmd.arg, error);
    }
    cmd.addResponse("200", "SITE CHMOD command successful");
    return HandlerResults.HANDLED;
  };
}

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

export function createSiteModule(core: CoreSettings): EngineModule {
  /**
   * SITE HELP lists every SITE subcommand the session's modules provide, one
   * a line, between mod_site.c's header (its PRE_CMD handler) and footer (its
   * POST_CMD handler); `SITE HELP X` gives X's syntax from its module's help.
   */
  const help = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    const target = cmd.argv[2];
    if (target === undefined) {
      cmd.addResponse("214", "The following SITE commands are recognized (* =>'s unimplemented)");
      for (const name of siteCommandNames(session.modules)) cmd.addResponse(CONTINUATION, name);
      cmd.addResponse("214", `Direct comments to ${serverAdmin(core)}`);
      return HandlerResults.HANDLED;
    }
    const name = target.toUpperCase();
    const syntax = siteSyntax(session.modules, name, module);
    if (syntax === undefined) {
      cmd.addError("502", `Unknown command 'SITE ${cmd.arg}'`);
      return HandlerResults.ERROR;
    }
    cmd.addResponse("214", `Syntax: SITE ${name} ${syntax}`);
    return HandlerResults.HANDLED;
  };

  const site: CommandHandler = {
    command: "SITE",
    phase: Phases.CMD,
    run: (cmd, session) => {
      const word = cmd.argv[1];
      if (word === undefined) {
        cmd.addError("500", "'SITE' requires parameters");
        return HandlerResults.ERROR;
      }
      const name = word.toUpperCase();
      // SITE itself is allowed before login; of its subcommands only HELP is
      // (mod_site.c's site_commands table marks CHGRP and CHMOD requires_auth).
      if (session.user === undefined && name !== "HELP") {
        cmd.addError("530", LOGIN_REQUIRED_TEXT);
        return HandlerResults.ERROR;
      }
      for (const owner of [...session.modules].reverse()) {
        for (const handler of owner.siteCommands) {
          if (handler.command !== name) continue;
          const result = handler.run(cmd, session);
          if (result !== HandlerResults.DECLINED) return result;
        }
      }
      cmd.addError("500", `'SITE ${name}' not understood`);
      return HandlerResults.ERROR;
    },
  };

  const module: EngineModule = {
    name: "mod_site.c",
    kind: "static",
    commands: [site],
    siteCommands: [
      { command: "HELP", phase: Phases.CMD, run: help },
      { command: "CHMOD", phase: Phases.CMD, run: siteChmod(core) },
    ],
    directives: [],
    features: [],
    help: [{ command: "SITE", text: "<sp> string" }],
  };
  return module;
}
