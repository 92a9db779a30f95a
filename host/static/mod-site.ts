/**
 * mod_site.c, compiled in: the SITE command. proftpd's other modules hook
 * SITE subcommands by registering SITE handlers of their own; here each
 * module lists them as `siteCommands`, and this module's SITE handler runs
 * them newest module first, DECLINED passing on, as the stash would.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { CONTINUATION, LOGIN_REQUIRED_TEXT } from "../ftp/dispatch.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, SessionState } from "../modules/module-api.js";
import { serverAdmin } from "./mod-core.js";
import type { CoreSettings } from "./mod-core.js";

/** mod_site.c's `_help` syntax for its HELP subcommand. */
const HELP_SYNTAX = "[<sp> site-command]";

/** Every SITE subcommand of the session's modules, newest module first, each once. */
export function siteCommandNames(modules: readonly EngineModule[]): string[] {
  const names = new Set<string>();
  for (const module of [...modules].reverse()) for (const handler of module.siteCommands) names.add(handler.command);
  return [...names];
}

function siteSyntax(modules: readonly EngineModule[], name: string, self: EngineModule): string | undefined {
  for (const module of [...modules].reverse()) {
    if (!module.siteCommands.some((c) => c.command === name)) continue;
    if (module === self) return HELP_SYNTAX;
    const entry = module.help.find((e) => e.command === name);
    if (entry !== undefined) return entry.text;
  }
  return undefined;
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
    siteCommands: [{ command: "HELP", phase: Phases.CMD, run: help }],
    directives: [],
    features: [],
    help: [{ command: "SITE", text: "<sp> string" }],
  };
  return module;
}
