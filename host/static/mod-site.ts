/**
 * mod_site.c, compiled in: the SITE command's own subcommands HELP and CHMOD,
 * dispatched as modules/mod_site.c does. Other modules' SITE subcommands are
 * not ours: each module has its own SITE handler in the chain
 * (host/modules/guest-module.ts siteHandler), so module order decides who
 * answers. This module's CMD handler answers every subcommand it does not
 * know with `500 'SITE X' not understood`, ending the chain: once mod_site.c
 * is re-inserted, and so newest, other modules' subcommands go unanswered, as
 * in proftpd. Its PRE_CMD and POST_CMD handlers frame SITE HELP with the
 * header and footer that every module's lines go between.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { siteChmodMode } from "../fs/chmod-mode.js";
import { CONTINUATION, notUnderstood } from "../ftp/dispatch.js";
import { HandlerResults, LOGIN_REQUIRED_TEXT, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult } from "../modules/module-api.js";
import { literalTarget, refuseFs, sessionFs } from "./core-files.js";
import { serverAdmin } from "./mod-core.js";
import type { CoreSettings } from "./mod-core.js";

/** mod_site.c's `_help` table for its own subcommands, in its order. */
const HELP_SYNTAX: ReadonlyMap<string, string> = new Map([
  ["HELP", "[<sp> site-command]"],
  ["CHMOD", "<sp> mode <sp> pathname"],
]);

/** True for `SITE HELP ...`, when site_pre_cmd and site_post_cmd add the header and footer. */
function isHelp(cmd: ActiveCommand): boolean {
  return cmd.argv[1]?.toUpperCase() === "HELP";
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
   * site_help: `SITE HELP` lists mod_site.c's own subcommands (the other
   * modules' SITE handlers added theirs before it); `SITE HELP X` gives X's
   * syntax when X is one of them.
   */
  const help = (cmd: ActiveCommand): HandlerResult => {
    const target = cmd.argv[2];
    if (target === undefined) {
      [...HELP_SYNTAX.keys()].forEach((name, i) => cmd.addResponse(i === 0 ? "214" : CONTINUATION, name));
      return HandlerResults.HANDLED;
    }
    const name = target.toUpperCase();
    const syntax = HELP_SYNTAX.get(name);
    if (syntax === undefined) {
      cmd.addError("502", `Unknown command 'SITE ${cmd.arg}'`);
      return HandlerResults.ERROR;
    }
    cmd.addResponse("214", `Syntax: SITE ${name} ${syntax}`);
    return HandlerResults.HANDLED;
  };
  const subcommands: CommandHandler[] = [
    { command: "HELP", phase: Phases.CMD, run: help },
    { command: "CHMOD", phase: Phases.CMD, run: siteChmod(core) },
  ];

  /** site_cmd and site_dispatch: this module's own table, and a 500 for anything else. */
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
      const handler = subcommands.find((h) => h.command === name);
      if (handler === undefined) {
        cmd.addError("500", `'SITE ${name}' not understood`);
        return HandlerResults.ERROR;
      }
      // site_commands marks CHGRP and CHMOD requires_auth; HELP may run before login.
      if (session.user === undefined && name !== "HELP") {
        cmd.addError("530", LOGIN_REQUIRED_TEXT);
        return HandlerResults.ERROR;
      }
      return handler.run(cmd, session);
    },
  };

  return {
    name: "mod_site.c",
    kind: "static",
    commands: [
      {
        command: "SITE",
        phase: Phases.PRE_CMD,
        run: (cmd) => {
          if (isHelp(cmd)) cmd.addResponse("214", "The following SITE commands are recognized (* =>'s unimplemented)");
          return HandlerResults.DECLINED;
        },
      },
      site,
      {
        command: "SITE",
        phase: Phases.POST_CMD,
        run: (cmd) => {
          if (isHelp(cmd)) cmd.addResponse("214", `Direct comments to ${serverAdmin(core)}`);
          return HandlerResults.DECLINED;
        },
      },
    ],
    siteCommands: subcommands,
    directives: [],
    features: [],
    help: [{ command: "SITE", text: "<sp> string" }],
  };
}
