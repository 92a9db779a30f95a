/**
 * The shape every module has, compiled in (TypeScript) or loaded (WebAssembly):
 * proftpd's `module` struct with its conftab, cmdtab and hooks. The engine
 * treats both kinds alike.
 */
import type { SessionInstances } from "./session-instances.js";
import type { TLSSocketOptions } from "node:tls";
import type { ActiveCommand, TransferInfo } from "../abi/host-symbols.js";
import type { SessionFilesystem } from "../fs/session-fs.js";
import type { DataChannel } from "../data/data-channel.js";

export type { TransferInfo };

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

/** The text of the 530 every command but PRE_LOGIN_COMMANDS gets before login (mod_auth.c's auth_cmd_chk_cb). */
export const LOGIN_REQUIRED_TEXT = "Please login with USER and PASS";

/** What a handler returns; DECLINED passes the command on to the next module in the chain. */
export const HandlerResults = {
  DECLINED: 0,
  HANDLED: 1,
  ERROR: -1,
} as const;

export type HandlerResult = (typeof HandlerResults)[keyof typeof HandlerResults];

/** The account a session logged in as (AuthUserFile's entry), as proftpd's session.user/uid/gid. */
export interface SessionAccount {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** The home directory, a host path. */
  readonly home: string;
  /** Group names the account belongs to, primary first, for <Limit>'s AllowGroup/DenyGroup. */
  readonly groups: readonly string[];
}

/**
 * The control connection as handlers use it, beyond the reply lists.
 * Implemented by the FTP server.
 */
export interface ControlChannel {
  /**
   * pr_response_send: writes a reply line now, before the command completes
   * (mod_xfer's `150 Opening ...` before a transfer).
   */
  send(code: string, message: string): void;
  /** True once AUTH TLS secured the control connection. */
  readonly secure: boolean;
  /**
   * AUTH TLS: once the reply of the current command is written, the server
   * starts a TLS handshake on the control connection with `context`. The
   * session reads nothing more until it is done; a failed handshake ends it.
   */
  startTlsAfterReply(options: TLSSocketOptions): void;
  /**
   * CCC: once the reply of the current command is written, the server ends
   * TLS on the control connection (its close_notify, then the client's) and
   * reads clear text from then on. The data connections keep their PROT.
   */
  clearTlsAfterReply(): void;
  /**
   * Registers what happens to the command in progress when the client sends
   * ABOR (or closes the control connection) while it runs; returns the
   * function that unregisters it. Only one abort target at a time.
   */
  onAbort(abort: () => void): () => void;
  /**
   * Registers a function that runs when the session ends (the control
   * connection closed for any reason): open data connections and file handles
   * are closed there. Returns the function that unregisters it.
   */
  onClose(cleanup: () => void): () => void;
}

/**
 * One FTP session, as handlers see it. Like a forked proftpd session, it keeps
 * the module set it started with until it ends.
 */
export interface SessionState {
  readonly id: number;
  readonly remoteAddress: string;
  /** The address the client connected to (the server side of the control connection). */
  readonly localAddress: string;
  /** The modules of this session, oldest first (handlers run newest first). */
  readonly modules: readonly EngineModule[];
  /** The session's own instances of its guest modules (ModuleInstances); absent when they share the daemon's. */
  readonly instances?: SessionInstances | undefined;
  /** Set by USER, cleared by a successful PASS. */
  pendingUser: string | undefined;
  /** The logged-in user. */
  user: string | undefined;
  /** The logged-in account, set with `user` by mod_auth.c. */
  account: SessionAccount | undefined;
  /** Where the user's files are: the jail made at login (DefaultRoot, else the whole filesystem). */
  fs: SessionFilesystem | undefined;
  /** The working directory as the user sees it inside `fs` (always absolute, `/` at the jail's root). */
  cwd: string;
  /** The user's home as they see it inside `fs`: `/` when DefaultRoot ~ jails them there; what `~` names. */
  home: string;
  /** TYPE: `A` (ASCII, converted on the wire) or `I` (binary). proftpd's default is ASCII. */
  transferType: "A" | "I";
  /** The data connection: what PASV/EPSV/PORT/EPRT set up, and PROT's protection level. */
  readonly data: DataChannel;
  readonly control: ControlChannel;
  /** Set by QUIT: the session ends after the reply. */
  closing: boolean;
}

export interface CommandHandler {
  /** Upper-case FTP command (`NOOP`), or SITE subcommand (`CHMOD`) for site handlers. */
  readonly command: string;
  readonly phase: Phase;
  /**
   * False for a handler a client may reach before logging in (proftpd's
   * cmdtab `requires_auth` FALSE: mod_tls.c's AUTH, PBSZ and PROT, for
   * instance). Unset means the handler needs a login, unless the command is
   * one of dispatch's PRE_LOGIN_COMMANDS.
   */
  readonly requiresAuth?: boolean;
  /**
   * Handles the command. Only compiled-in modules may return a Promise (a
   * transfer, a directory listing, a file operation): the session reads no
   * further command until it settles, as a proftpd session process handles one
   * command at a time. Guest handlers are synchronous.
   */
  run(command: ActiveCommand, session: SessionState): HandlerResult | Promise<HandlerResult>;
}

/** A configuration section a directive stands in: `<Directory /srv/ftp>` is `{ name: "<Directory>", args: ["/srv/ftp"] }`. */
export interface ConfigSection {
  readonly name: string;
  readonly args: readonly string[];
  readonly file: string;
  readonly line: number;
}

/** Where a directive stands in the configuration. */
export interface DirectiveContext {
  readonly file: string;
  readonly line: number;
  /** True for the first directive of the main configuration file (ModuleOrder must be). */
  readonly first: boolean;
  /**
   * The sections around the directive, outermost first; empty or absent in
   * the server config. `<IfModule>` is not one: it only decides which lines
   * are read. Handlers use it as proftpd's CHECK_CONF does.
   */
  readonly sections?: readonly ConfigSection[];
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
  /**
   * Runs when a session starts with this module in its set; `session` is what
   * host symbols see (its address) and keeps what a refusal says; a guest's
   * runs in the session's own instance, from `instances`.
   */
  sessionInit?(session: ActiveCommand, instances?: SessionInstances): void;
  /** Runs once the module has left the engine and no session holds it. */
  unload?(): void;
}
