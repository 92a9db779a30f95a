/**
 * The shape every module has, compiled in (TypeScript) or loaded (WebAssembly):
 * proftpd's `module` struct with its conftab, cmdtab and hooks. The engine
 * treats both kinds alike.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";

/** proftpd's PR_MODULE_API_VERSION: a module built for an older API is refused. */
export const MODULE_API_VERSION = 0x20;

/** The phases a command passes through, in proftpd's order (src/main.c pr_cmd_dispatch_phase). */
export const Phases = {
  PRE_CMD: "PRE_CMD",
  CMD: "CMD",
  POST_CMD: "POST_CMD",
  POST_CMD_ERR: "POST_CMD_ERR",
  LOG_CMD: "LOG_CMD",
  LOG_CMD_ERR: "LOG_CMD_ERR",
} as const;

export type Phase = (typeof Phases)[keyof typeof Phases];

/** What a handler returns; DECLINED passes the command on to the next module in the chain. */
export const HandlerResults = {
  DECLINED: 0,
  HANDLED: 1,
  ERROR: -1,
} as const;

export type HandlerResult = (typeof HandlerResults)[keyof typeof HandlerResults];

/**
 * One FTP session, as handlers see it. Like a forked proftpd session, it keeps
 * the module set it started with until it ends.
 */
export interface SessionState {
  readonly id: number;
  readonly remoteAddress: string;
  /** The modules of this session, oldest first (handlers run newest first). */
  readonly modules: readonly EngineModule[];
  /** Set by USER, cleared by a successful PASS. */
  pendingUser: string | undefined;
  /** The logged-in user. */
  user: string | undefined;
  /** Set by QUIT: the session ends after the reply. */
  closing: boolean;
}

export interface CommandHandler {
  /** Upper-case FTP command (`NOOP`), or SITE subcommand (`CHMOD`) for site handlers. */
  readonly command: string;
  readonly phase: Phase;
  run(command: ActiveCommand, session: SessionState): HandlerResult;
}

/** Where a directive stands in the configuration. */
export interface DirectiveContext {
  readonly file: string;
  readonly line: number;
  /** True for the first directive of the main configuration file (ModuleOrder must be). */
  readonly first: boolean;
}

export interface DirectiveHandler {
  /** As written in docs (`ModulePath`); matched case-insensitively, as proftpd does. */
  readonly name: string;
  /** Applies the directive; throws a DsoError (the text after `Directive: `) to refuse it. */
  run(directive: ActiveCommand, context: DirectiveContext): void;
}

export interface HelpEntry {
  readonly command: string;
  readonly text: string;
}

export type ModuleKind = "static" | "dso";

export interface EngineModule {
  /** `mod_core.c`: the name lsmod, `<IfModule>` and rmmod use. */
  readonly name: string;
  readonly kind: ModuleKind;
  readonly commands: readonly CommandHandler[];
  readonly siteCommands: readonly CommandHandler[];
  readonly directives: readonly DirectiveHandler[];
  readonly features: readonly string[];
  readonly help: readonly HelpEntry[];
  /** Runs each time the module enters the engine; throwing refuses the load. */
  init?(): void;
  /** Runs when a session starts with this module in its set. */
  sessionInit?(): void;
  /** Runs once the module has left the engine and no session holds it. */
  unload?(): void;
}
