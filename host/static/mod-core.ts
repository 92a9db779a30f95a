/**
 * mod_core.c, compiled in: the FTP commands every session has (NOOP, SYST,
 * QUIT, FEAT, HELP) and the server's base directives. The directives only
 * record their values in CoreSettings; the daemon reads them to bind and
 * identify the server.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { emptyLimitRules } from "../access/limit.js";
import type { LimitRules } from "../access/limit.js";
import { CONTINUATION } from "../ftp/dispatch.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  CommandHandler,
  DirectiveHandler,
  EngineModule,
  HandlerResult,
  HelpEntry,
  SessionState,
} from "../modules/module-api.js";
import { CORE_DATA_FEATURES, CORE_DATA_HELP, createCoreData } from "./core-data.js";
import type { CoreDataSettings } from "./core-data.js";
import {
  CORE_DIRECTORY_HELP,
  CORE_FILE_FEATURES,
  CORE_NAME_HELP,
  CORE_OPTS_HELP,
  coreFileCommands,
  umaskDirective,
} from "./core-files.js";
import type { CoreFilesOptions } from "./core-files.js";
import { booleanParam, checkArgs, directiveError, param } from "../config/directives.js";
import { limitDirectives } from "./limit-directives.js";
import { DEFAULT_SERVER_IDENT, serverIdentDirective } from "./server-ident.js";
import type { ServerIdent } from "./server-ident.js";

export interface CoreSettings {
  /** ServerType: only `standalone` (inetd mode has no meaning for dsod). */
  serverType: "standalone";
  /** ServerName: shown in the greeting. */
  serverName: string;
  /** ServerIdent: what the greeting says (host/static/server-ident.ts). */
  serverIdent: ServerIdent;
  /** ServerAdmin: shown at the end of HELP and SITE HELP; see serverAdmin(). */
  serverAdmin: string | undefined;
  /** DefaultAddress: the server's address; proftpd still binds the wildcard address unless SocketBindTight is on. */
  defaultAddress: string | undefined;
  /** Port: 0 to 65535, 21 by default. */
  port: number;
  /** UseIPv6. */
  useIPv6: boolean;
  /** User and Group: the identity dsod runs as once its sockets are bound (host/system/privileges.ts). */
  user: string | undefined;
  group: string | undefined;
  /** PidFile: an absolute path, written by the daemon once it listens and removed when it exits. */
  pidFile: string | undefined;
  /** ScoreboardFile: accepted for compatibility; dsod keeps its scoreboard in memory. */
  scoreboardFile: string | undefined;
  /** MaxInstances: sessions at once; 0 for `none`; undefined for the default the descriptor limit allows (host/system/limits.ts). */
  maxInstances: number | undefined;
  /** TimeoutIdle in seconds; 0 turns it off. */
  timeoutIdle: number;
  /** What the <Limit> and <Directory> sections recorded; host/access/limit.ts evaluates it. */
  limits: LimitRules;
  /** Umask: the mode bits taken from files (and directories) a session creates; 022 by default. */
  umask: number;
  /** Umask's second argument: the directories' umask, when it differs. */
  dirUmask: number | undefined;
}

/** proftpd's defaults where dsod has them; the server is named after the daemon. */
export function defaultCoreSettings(): CoreSettings {
  return {
    serverType: "standalone",
    serverName: "dsod",
    serverIdent: DEFAULT_SERVER_IDENT,
    serverAdmin: undefined,
    defaultAddress: undefined,
    port: 21,
    useIPv6: true,
    user: undefined,
    group: undefined,
    pidFile: undefined,
    scoreboardFile: undefined,
    maxInstances: undefined,
    // PR_TUNABLE_TIMEOUTIDLE
    timeoutIdle: 600,
    limits: emptyLimitRules(),
    umask: 0o022,
    dirUmask: undefined,
  };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * proftpd's ServerFQDN, the reverse-DNS name of the server's address. dsod
 * does no DNS lookups: a loopback or unset address is `localhost` (what
 * /etc/hosts maps 127.0.0.1 to), any other address stands for itself.
 */
export function serverFqdn(settings: CoreSettings): string {
  const address = settings.defaultAddress;
  return address === undefined || LOOPBACK.test(address) ? "localhost" : address;
}

/** ServerAdmin, or proftpd's default `root@<ServerFQDN>` (src/dirtree.c). */
export function serverAdmin(settings: CoreSettings): string {
  return settings.serverAdmin ?? `root@${serverFqdn(settings)}`;
}

/** pr_str_get_duration, whole seconds only: `N` or `HH:MM:SS`. */
export function parseDuration(text: string): number | undefined {
  if (/^[0-9]+$/.test(text)) return Number(text);
  const clock = /^([0-9]+):([0-5][0-9]):([0-5][0-9])$/.exec(text);
  if (clock === null) return undefined;
  return Number(clock[1]) * 3600 + Number(clock[2]) * 60 + Number(clock[3]);
}

/** What mod_core.c's daemon directives need from the daemon. */
export interface CoreDaemonOptions {
  /** pr_auth_getpwnam / pr_auth_getgrnam for User and Group; unchecked names without it. */
  readonly accounts?: { uidOf(name: string): number | undefined; gidOf(name: string): number | undefined };
  /** Where compatibility notices go. */
  readonly log?: (priority: "notice", message: string) => void;
}

function directives(settings: CoreSettings, daemon: CoreDaemonOptions): DirectiveHandler[] {
  const absolute = (directive: ActiveCommand, describe: (path: string) => string): string => {
    checkArgs(directive, 1);
    const path = param(directive, 1);
    if (!path.startsWith("/")) throw directiveError(describe(path));
    return path;
  };
  return [
    {
      name: "ServerType",
      run: (d) => {
        checkArgs(d, 1);
        const type = param(d, 1).toLowerCase();
        if (type === "inetd") throw directiveError("type 'inetd' is not supported; dsod runs standalone only");
        if (type !== "standalone") throw directiveError("type must be either 'inetd' or 'standalone'");
        settings.serverType = "standalone";
      },
    },
    {
      name: "ServerName",
      run: (d) => {
        checkArgs(d, 1);
        settings.serverName = param(d, 1);
      },
    },
    serverIdentDirective((ident) => (settings.serverIdent = ident)),
    {
      name: "ServerAdmin",
      run: (d) => {
        checkArgs(d, 1);
        settings.serverAdmin = param(d, 1);
      },
    },
    {
      name: "DefaultAddress",
      run: (d) => {
        // set_defaultaddress counts its own arguments and says so differently.
        if (d.argv.length < 2) throw directiveError("wrong number of parameters");
        settings.defaultAddress = param(d, 1);
      },
    },
    {
      name: "Port",
      run: (d) => {
        checkArgs(d, 1);
        const text = param(d, 1);
        const port = Number(text);
        if (!/^[0-9]+$/.test(text) || port > 65535) throw directiveError("value must be between 0 and 65535");
        settings.port = port;
      },
    },
    {
      name: "UseIPv6",
      run: (d) => {
        checkArgs(d, 1);
        settings.useIPv6 = booleanParam(d, 1);
      },
    },
    {
      name: "User",
      run: (d) => {
        checkArgs(d, 1);
        const name = param(d, 1);
        // set_user: the name must resolve now.
        if (daemon.accounts !== undefined && daemon.accounts.uidOf(name) === undefined)
          throw directiveError(`Unknown user '${name}'`);
        settings.user = name;
      },
    },
    {
      name: "Group",
      run: (d) => {
        checkArgs(d, 1);
        const name = param(d, 1);
        if (daemon.accounts !== undefined && daemon.accounts.gidOf(name) === undefined)
          throw directiveError(`Unknown group '${name}'`);
        settings.group = name;
      },
    },
    {
      name: "PidFile",
      // pr_pidfile_set refuses a relative path with EINVAL.
      run: (d) => {
        settings.pidFile = absolute(d, (path) => `unable to set PidFile '${path}': Invalid argument`);
      },
    },
    {
      name: "ScoreboardFile",
      // set_scoreboard_path refuses a relative path with EINVAL.
      run: (d, context) => {
        settings.scoreboardFile = absolute(d, (path) => `unable to use '${path}': Invalid argument`);
        daemon.log?.(
          "notice",
          `ScoreboardFile on line ${context.line} of '${context.file}' is accepted for compatibility only: dsod keeps its scoreboard in memory and writes no file`,
        );
      },
    },
    {
      name: "MaxInstances",
      run: (d) => {
        // set_maxinstances
        checkArgs(d, 1);
        const text = param(d, 1);
        if (text.toLowerCase() === "none") {
          settings.maxInstances = 0;
          return;
        }
        if (!/^[0-9]+$/.test(text) || Number(text) < 1)
          throw directiveError("argument must be 'none' or a number greater than 0");
        settings.maxInstances = Number(text);
      },
    },
    {
      name: "TimeoutIdle",
      run: (d) => {
        checkArgs(d, 1);
        const seconds = parseDuration(param(d, 1));
        if (seconds === undefined)
          throw directiveError(`error parsing timeout value '${param(d, 1)}': Invalid argument`);
        settings.timeoutIdle = seconds;
      },
    },
  ];
}

/** The help entries of the session's modules for FTP commands (not SITE subcommands), first registration winning as in src/help.c. */
export function ftpHelpEntries(modules: readonly EngineModule[]): HelpEntry[] {
  const seen = new Map<string, HelpEntry>();
  for (const module of modules) {
    for (const entry of module.help) {
      const siteOnly =
        module.siteCommands.some((c) => c.command === entry.command) &&
        !module.commands.some((c) => c.command === entry.command);
      if (!siteOnly && !seen.has(entry.command)) seen.set(entry.command, entry);
    }
  }
  return [...seen.values()];
}

/**
 * HELP's command table (pr_help_add_response, src/help.c): 8 names a line,
 * each padded to 8 columns (`%-8s`, so a longer name is cut to 8).
 */
export function helpTable(commands: readonly string[]): string[] {
  const rows: string[] = [];
  for (let at = 0; at < commands.length; at += 8) {
    rows.push(
      commands
        .slice(at, at + 8)
        .map((c) => c.slice(0, 8).padEnd(8))
        .join(""),
    );
  }
  return rows;
}

function handler(command: string, run: (cmd: ActiveCommand, session: SessionState) => HandlerResult): CommandHandler {
  return { command, phase: Phases.CMD, run };
}

function commands(settings: CoreSettings): CommandHandler[] {
  return [
    handler("HELP", (cmd, session) => {
      const entries = ftpHelpEntries(session.modules);
      const target = cmd.argv[1];
      if (target === undefined) {
        cmd.addResponse("214", "The following commands are recognized (* =>'s unimplemented):");
        for (const row of helpTable(entries.map((e) => e.command))) cmd.addResponse(CONTINUATION, row);
        cmd.addResponse(CONTINUATION, `Direct comments to ${serverAdmin(settings)}`);
        return HandlerResults.HANDLED;
      }
      const wanted = target.toUpperCase();
      const entry = entries.find((e) => e.command === wanted);
      if (entry === undefined) {
        cmd.addError("502", `Unknown command '${wanted}'`);
        return HandlerResults.ERROR;
      }
      cmd.addResponse("214", `Syntax: ${entry.command} ${entry.text}`);
      return HandlerResults.HANDLED;
    }),
    handler("SYST", (cmd) => {
      cmd.addResponse("215", "UNIX Type: L8");
      return HandlerResults.HANDLED;
    }),
    handler("NOOP", (cmd) => {
      cmd.addResponse("200", "NOOP command successful");
      return HandlerResults.HANDLED;
    }),
    handler("FEAT", (cmd, session) => {
      // CHECK_CMD_ARGS(cmd, 1)
      if (cmd.argv.length !== 1) {
        cmd.addError("501", "Invalid number of parameters");
        return HandlerResults.ERROR;
      }
      const features = [...new Set(session.modules.flatMap((m) => m.features))];
      if (features.length === 0) {
        cmd.addResponse("211", "No features supported");
        return HandlerResults.HANDLED;
      }
      // core_feat sorts with strcasecmp "for a prettier output".
      features.sort((a, b) => {
        const x = a.toLowerCase();
        const y = b.toLowerCase();
        return x < y ? -1 : x > y ? 1 : 0;
      });
      cmd.addResponse("211", "Features:");
      for (const feature of features) cmd.addResponse(CONTINUATION, feature);
      cmd.addResponse(CONTINUATION, "End");
      return HandlerResults.HANDLED;
    }),
    handler("QUIT", (cmd, session) => {
      cmd.addResponse("221", "Goodbye.");
      session.closing = true;
      return HandlerResults.HANDLED;
    }),
  ];
}

/** mod_core.c's core_init help entries for the commands above, in its order. */
const HELP: readonly HelpEntry[] = [
  ...CORE_DIRECTORY_HELP,
  { command: "QUIT", text: "(close control connection)" },
  ...CORE_DATA_HELP,
  ...CORE_NAME_HELP,
  { command: "SYST", text: "(returns system type)" },
  { command: "HELP", text: "[<sp> command]" },
  { command: "NOOP", text: "(no operation)" },
  { command: "FEAT", text: "(returns feature list)" },
  ...CORE_OPTS_HELP,
];

export interface CoreModule {
  readonly module: EngineModule;
  readonly settings: CoreSettings;
  /** What PassivePorts, MasqueradeAddress, AllowForeignAddress and TransferLog set (core-data.ts). */
  readonly data: CoreDataSettings;
}

/**
 * `extraDirectives` join mod_core.c's conftab: directives of proftpd's core
 * that the daemon implements. `files` wires what the file commands read from
 * other modules (RNTO's AllowOverwrite).
 */
export function createCoreModule(
  extraDirectives: readonly DirectiveHandler[],
  files: CoreFilesOptions = {},
  daemon: CoreDaemonOptions = {},
): CoreModule {
  const settings = defaultCoreSettings();
  const data = createCoreData(() => settings.useIPv6);
  const module: EngineModule = {
    name: "mod_core.c",
    kind: "static",
    commands: [...commands(settings), ...data.commands, ...coreFileCommands(files)],
    siteCommands: [],
    directives: [
      ...directives(settings, daemon),
      umaskDirective(settings),
      ...limitDirectives(settings.limits),
      ...data.directives,
      ...extraDirectives,
    ],
    features: [...CORE_DATA_FEATURES, ...CORE_FILE_FEATURES],
    help: HELP,
  };
  return { module, settings, data: data.settings };
}
