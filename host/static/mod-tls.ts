/**
 * mod_tls.c, compiled in: FTPS as RFC 4217 and proftpd's contrib/mod_tls.c
 * (1.3.8, mod_tls/2.9.2) define it, on node:tls. AUTH TLS secures the control
 * connection, PBSZ and PROT set the data connections' protection, TLSRequired
 * refuses what the policy says must not go in the clear, and a data
 * connection under PROT P must resume the control connection's TLS session
 * unless `TLSOptions NoSessionReuseRequired`.
 *
 * The pure parts live in host/tls/: directive values (directives.ts,
 * protocols.ts), certificate checks (credentials.ts) and the session's
 * SecureContext (context.ts). The data connection's handshake, which answers
 * in the FTP data channel's errors, is beside this file (tls-data.ts).
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { ANY_COMMAND } from "../ftp/dispatch.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  CommandHandler,
  DirectiveHandler,
  EngineModule,
  HandlerResult,
  HelpEntry,
  SessionState,
} from "../modules/module-api.js";
import type { LogPriority } from "../modules/module-host.js";
import { createSessionTls } from "../tls/context.js";
import type { SessionTlsOptions, TlsCredentials } from "../tls/context.js";
import { certificateFile, chainFile, checkKeyMatches, keyFile, readPemFile } from "../tls/credentials.js";
import type { CertificateFile, ChainFile, KeyFile } from "../tls/credentials.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, secureDataConnection } from "./tls-data.js";
import { DEFAULT_TLS_OPTIONS, TLS_NOT_REQUIRED, parseTlsOptions, parseTlsRequired } from "../tls/directives.js";
import type { TlsOptions, TlsRequired } from "../tls/directives.js";
import { DEFAULT_PROTOCOLS, nodeVersionRange, parseTlsProtocol } from "../tls/protocols.js";
import type { TlsVersion } from "../tls/protocols.js";
import { booleanParam, checkArgs, directiveError, param } from "../config/directives.js";

/** MOD_TLS_VERSION: how proftpd's mod_tls names itself in its log lines. */
export const MOD_TLS_VERSION = "mod_tls/2.9.2";

export interface TlsSettings {
  /** TLSEngine: off by default, as in proftpd. */
  engine: boolean;
  /** TLSRSACertificateFile. */
  certificate: CertificateFile | undefined;
  /** TLSRSACertificateKeyFile. */
  key: KeyFile | undefined;
  /** TLSCertificateChainFile: sent after the certificate. */
  chain: ChainFile | undefined;
  /** TLSProtocol: the versions enabled (TLS_PROTO_DEFAULT unless set). */
  protocols: ReadonlySet<TlsVersion>;
  /** TLSRequired. */
  required: TlsRequired;
  /** TLSOptions, every directive's options together. */
  options: TlsOptions;
}

export function defaultTlsSettings(): TlsSettings {
  return {
    engine: false,
    certificate: undefined,
    key: undefined,
    chain: undefined,
    protocols: DEFAULT_PROTOCOLS,
    required: TLS_NOT_REQUIRED,
    options: DEFAULT_TLS_OPTIONS,
  };
}

/** What tls_sess_init adds to FEAT when TLSEngine is on (SSCN, site-to-site TLS, is not implemented). */
export const TLS_FEATURES: readonly string[] = ["AUTH TLS", "CCC", "PBSZ", "PROT"];

/** What tls_sess_init adds to HELP when TLSEngine is on. */
export const TLS_HELP: readonly HelpEntry[] = [
  { command: "AUTH", text: "<sp> base64-data" },
  { command: "PBSZ", text: "<sp> protection buffer size" },
  { command: "PROT", text: "<sp> protection code" },
];

/** Commands tls_any lets through whatever TLSRequired says. */
const UNHINDERED: ReadonlySet<string> = new Set(["SYST", "AUTH", "FEAT", "HOST", "CLNT", "QUIT"]);

/** Commands that log in, refused in the clear by `TLSRequired auth`. */
const AUTH_COMMANDS: ReadonlySet<string> = new Set(["USER", "PASS", "ACCT"]);

/** Commands that open a data connection, refused without PROT P by `TLSRequired data`. */
const DATA_COMMANDS: ReadonlySet<string> = new Set(["APPE", "LIST", "MLSD", "NLST", "RETR", "STOR", "STOU"]);

const CTRL_REQUIRED = "SSL/TLS required on the control channel";
const DATA_REQUIRED = "SSL/TLS required on the data channel";
const UNWILLING = "Unwilling to accept security parameters";

/** mod_tls.c's per-session flags (tls_flags, session.rfc2228_mech). */
interface TlsSession {
  /** session.rfc2228_mech is "TLS": AUTH TLS or AUTH SSL succeeded. */
  mechanism: boolean;
  /** TLS_SESS_ON_CTRL: the control connection is protected. */
  onControl: boolean;
  /** TLS_SESS_HAVE_CCC: the client cleared the control connection's protection. */
  cleared: boolean;
  /** The session's TLS context and session cache, made at AUTH (see host/tls/context.ts). */
  tls: SessionTlsOptions | undefined;
}

export interface TlsModuleOptions {
  /** Where mod_tls.c's TLSLog lines go (dsod has no TLSLog: the daemon log). */
  readonly log?: (priority: LogPriority, message: string) => void;
}

export interface TlsModule {
  readonly module: EngineModule;
  readonly settings: TlsSettings;
  /**
   * tls_postparse_ev's checks, once the whole configuration is read: with
   * TLSEngine on, a certificate needs its key and a key its certificate.
   * Throws a DsoError (DSO_ERR_CONFIG) naming the file.
   */
  postParse(): void;
}

function absolutePath(directive: ActiveCommand): string {
  checkArgs(directive, 1);
  const path = param(directive, 1);
  if (!path.startsWith("/")) throw directiveError("parameter must be an absolute path");
  return path;
}

/** A handler of tls_cmdtab; `requiresAuth` is its requires_auth column. */
function handler(
  command: string,
  phase: CommandHandler["phase"],
  requiresAuth: boolean,
  run: CommandHandler["run"],
): CommandHandler {
  return { command, phase, requiresAuth, run };
}

export function createTlsModule(moduleOptions: TlsModuleOptions = {}): TlsModule {
  const settings = defaultTlsSettings();
  const sessions = new WeakMap<SessionState, TlsSession>();
  const log = (priority: LogPriority, message: string): void =>
    moduleOptions.log?.(priority, `${MOD_TLS_VERSION}: ${message}`);

  const stateOf = (session: SessionState): TlsSession => {
    let state = sessions.get(session);
    if (state === undefined) {
      state = { mechanism: false, onControl: false, cleared: false, tls: undefined };
      sessions.set(session, state);
    }
    return state;
  };

  const credentials = (): TlsCredentials | undefined => {
    const { certificate, key, chain } = settings;
    return certificate === undefined || key === undefined ? undefined : { certificate, key, chain };
  };

  /** TLS_SESS_NEED_DATA_PROT, kept as the data connection's protection level and TLS wrapper. */
  const protectData = (session: SessionState, state: TlsSession, level: "C" | "P"): void => {
    session.data.protection = level;
    const tls = state.tls;
    session.data.secure =
      level === "P" && tls !== undefined
        ? (socket) =>
            secureDataConnection(socket, {
              tls,
              // Bug#3465: after CCC the data connections' sessions are not checked.
              requireReuse: !settings.options.noSessionReuseRequired && !state.cleared,
              // TLSTimeoutHandshake is not configurable: proftpd's default.
              handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
              log,
            })
        : undefined;
  };

  const refuse = (cmd: ActiveCommand, code: string, message: string): HandlerResult => {
    cmd.addError(code, message);
    return HandlerResults.ERROR;
  };

  /** tls_any: TLSRequired, checked before any module handles a command. */
  const tlsAny = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    if (!settings.engine || UNHINDERED.has(cmd.name)) return HandlerResults.DECLINED;
    const state = stateOf(session);
    const required = settings.required;
    if (!state.onControl && required.auth === 1 && AUTH_COMMANDS.has(cmd.name)) {
      log("info", `SSL/TLS required but absent for authentication, denying ${cmd.name} command`);
      return refuse(cmd, "550", CTRL_REQUIRED);
    }
    if (!state.onControl && required.ctrl === 1) {
      log("info", `SSL/TLS required but absent on control channel, denying ${cmd.name} command`);
      return refuse(cmd, "550", CTRL_REQUIRED);
    }
    if (required.data === 1 && session.data.protection !== "P" && DATA_COMMANDS.has(cmd.name)) {
      log("info", `SSL/TLS required but absent on data channel, denying ${cmd.name} command`);
      return refuse(cmd, "522", DATA_REQUIRED);
    }
    return HandlerResults.DECLINED;
  };

  /** tls_auth. */
  const auth = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    if (!settings.engine) return HandlerResults.DECLINED;
    const state = stateOf(session);
    if (state.onControl) {
      log("info", "Unwilling to accept AUTH after AUTH for this session");
      return refuse(cmd, "503", "Unwilling to accept second AUTH");
    }
    if (cmd.argv.length < 2) return refuse(cmd, "504", "AUTH requires at least one argument");
    if (state.cleared) {
      log("info", "Unwilling to accept AUTH after CCC for this session");
      return refuse(cmd, "534", UNWILLING);
    }
    const pki = credentials();
    if (pki === undefined) {
      log("info", `Unable to accept AUTH ${cmd.arg} due to lack of certificates`);
      return refuse(cmd, "431", "Necessary security resource unavailable");
    }
    if (session.user !== undefined) {
      log(
        "info",
        "Unwilling to accept AUTH after USER/PASS authentication for this session unless AllowPerUser TLSOption is used",
      );
      return refuse(cmd, "534", UNWILLING);
    }
    const mode = (cmd.argv[1] ?? "").toUpperCase();
    const tls = mode === "TLS" || mode === "TLS-C";
    const ssl = mode === "SSL" || mode === "TLS-P";
    if (!tls && !ssl) {
      log("info", `AUTH ${cmd.argv[1] ?? ""} unsupported, declining`);
      return HandlerResults.DECLINED;
    }
    state.tls = createSessionTls(pki, nodeVersionRange(settings.protocols));
    cmd.addResponse("234", `AUTH ${mode} successful`);
    session.control.startTlsAfterReply(state.tls);
    log("debug", `${tls ? "TLS/TLS-C" : "SSL/TLS-P"} requested, starting TLS handshake`);
    state.mechanism = true;
    state.onControl = true;
    // AUTH SSL (and TLS-P) protects the data connections without a PROT P.
    if (ssl) protectData(session, state, "P");
    return HandlerResults.HANDLED;
  };

  /** tls_ccc. */
  const ccc = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    const state = stateOf(session);
    if (!settings.engine || !state.mechanism) return HandlerResults.DECLINED;
    if (!state.onControl) return refuse(cmd, "533", "CCC not allowed on insecure control connection");
    if (settings.required.ctrl === 1) {
      log(
        "info",
        `${cmd.name}: unwilling to accept security parameters: TLSRequired setting does not allow for unprotected control channel`,
      );
      return refuse(cmd, "534", UNWILLING);
    }
    log("info", "received CCC, clearing control channel protection");
    // pr_response_send_async: the reply goes out before the TLS shutdown, as the spec dictates.
    cmd.addResponse("200", "Clearing control channel protection");
    session.control.clearTlsAfterReply();
    state.onControl = false;
    state.cleared = true;
    return HandlerResults.HANDLED;
  };

  /** tls_pbsz. */
  const pbsz = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    const state = stateOf(session);
    if (!settings.engine || !state.mechanism) return HandlerResults.DECLINED;
    if (cmd.argv.length !== 2) return refuse(cmd, "501", "Invalid number of parameters");
    if (!state.onControl) return refuse(cmd, "503", "PBSZ not allowed on insecure control connection");
    // RFC 4217: the buffer size is always 0 for TLS; any other value is answered with the one in force.
    cmd.addResponse("200", cmd.argv[1] === "0" ? "PBSZ 0 successful" : "PBSZ=0 successful");
    return HandlerResults.HANDLED;
  };

  /**
   * tls_prot. PBSZ is not required first: proftpd relaxed that for broken
   * clients. Its `503 PROT not allowed on insecure control connection` cannot
   * happen in dsod: a session has TLS on the control connection from AUTH on,
   * until a CCC, after which PROT is allowed.
   */
  const prot = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    const state = stateOf(session);
    if (!settings.engine || !state.mechanism) return HandlerResults.DECLINED;
    if (cmd.argv.length !== 2) return refuse(cmd, "501", "Invalid number of parameters");
    const level = cmd.argv[1] ?? "";
    if (level === "C" || level === "P") {
      // TLSRequired data forbids PROT C; TLSRequired !data forbids PROT P.
      if ((level === "C" && settings.required.data === 1) || (level === "P" && settings.required.data === -1)) {
        log(
          "info",
          `${cmd.name}: TLSRequired ${level === "C" ? "requires" : "does not allow"} protection for data transfers`,
        );
        log("info", `${cmd.name}: unwilling to accept security parameter (${level})`);
        return refuse(cmd, "534", UNWILLING);
      }
      protectData(session, state, level);
      const message = level === "C" ? "Protection set to Clear" : "Protection set to Private";
      cmd.addResponse("200", message);
      log("debug", message);
      return HandlerResults.HANDLED;
    }
    if (level === "S" || level === "E") return refuse(cmd, "536", `PROT ${level} unsupported`);
    return refuse(cmd, "504", `PROT ${level} unsupported`);
  };

  const directives: DirectiveHandler[] = [
    {
      name: "TLSEngine",
      run: (directive) => {
        checkArgs(directive, 1);
        settings.engine = booleanParam(directive, 1);
      },
    },
    {
      name: "TLSRSACertificateFile",
      run: (directive) => {
        const path = absolutePath(directive);
        const certificate = certificateFile(path, readPemFile(path));
        if (settings.key !== undefined) checkKeyMatches(certificate, settings.key);
        settings.certificate = certificate;
      },
    },
    {
      name: "TLSRSACertificateKeyFile",
      run: (directive) => {
        const path = absolutePath(directive);
        const key = keyFile(path, readPemFile(path));
        if (settings.certificate !== undefined) checkKeyMatches(settings.certificate, key);
        settings.key = key;
      },
    },
    {
      name: "TLSCertificateChainFile",
      run: (directive) => {
        const path = absolutePath(directive);
        settings.chain = chainFile(path, readPemFile(path));
      },
    },
    {
      name: "TLSProtocol",
      run: (directive) => {
        const protocols = parseTlsProtocol(directive.argv.slice(1));
        // Refuse now a list that leaves Node.js nothing to speak, rather than at the first AUTH.
        nodeVersionRange(protocols);
        settings.protocols = protocols;
      },
    },
    {
      name: "TLSRequired",
      run: (directive) => {
        checkArgs(directive, 1);
        settings.required = parseTlsRequired(param(directive, 1));
      },
    },
    {
      name: "TLSOptions",
      run: (directive) => {
        const options = parseTlsOptions(directive.argv.slice(1));
        // Each TLSOptions adds to the ones before it, as tls_post_pass ORs them together.
        settings.options = {
          noSessionReuseRequired: settings.options.noSessionReuseRequired || options.noSessionReuseRequired,
        };
      },
    },
  ];

  const module: EngineModule = {
    name: "mod_tls.c",
    kind: "static",
    commands: [
      handler(ANY_COMMAND, Phases.PRE_CMD, false, tlsAny),
      handler("AUTH", Phases.CMD, false, auth),
      handler("CCC", Phases.CMD, true, ccc),
      handler("PBSZ", Phases.CMD, false, pbsz),
      handler("PROT", Phases.CMD, false, prot),
    ],
    siteCommands: [],
    directives,
    // tls_sess_init adds these only when TLSEngine is on.
    get features(): readonly string[] {
      return settings.engine ? TLS_FEATURES : [];
    },
    get help(): readonly HelpEntry[] {
      return settings.engine ? TLS_HELP : [];
    },
  };

  const postParse = (): void => {
    if (!settings.engine) return;
    if (settings.certificate !== undefined && settings.key === undefined) {
      throw directiveError(
        `${MOD_TLS_VERSION}: TLSRSACertificateFile '${settings.certificate.path}' has no key: TLSRSACertificateKeyFile is not set`,
      );
    }
    if (settings.key !== undefined && settings.certificate === undefined) {
      throw directiveError(
        `${MOD_TLS_VERSION}: TLSRSACertificateKeyFile '${settings.key.path}' has no certificate: TLSRSACertificateFile is not set`,
      );
    }
  };

  return { module, settings, postParse };
}
