/**
 * mod_xfer.c, compiled in: the transfer commands (RETR, STOR, STOU, APPE,
 * REST, ABOR), the transfer parameters (TYPE, MODE, STRU, ALLO) and their
 * directives, with proftpd 1.3.8's reply texts. The file transfers are in
 * xfer-files.ts, the settings and directives in xfer-directives.ts.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  CommandHandler,
  EngineModule,
  HandlerResult,
  HelpEntry,
  Phase,
  SessionState,
} from "../modules/module-api.js";
import { XferlogWriter } from "../xfer/xferlog.js";
import { sessionLabel } from "../ftp/session.js";
import type { CoreDataSettings } from "./core-data.js";
import { displayable } from "./core-data.js";
import { defaultXferSettings, xferDirectives } from "./xfer-directives.js";
import type { XferSettings } from "./xfer-directives.js";
import { fileTransferCommands, handled, refuse, shown } from "./xfer-files.js";
import type { XferSession } from "./xfer-files.js";

export { defaultXferSettings, parseHiddenStores } from "./xfer-directives.js";
export type { XferSettings } from "./xfer-directives.js";
export { hiddenStorePath } from "./xfer-files.js";

export interface XferOptions {
  /** Where TransferLog lines go; one writer for the daemon keeps one handle per log. */
  readonly xferlog?: XferlogWriter;
  /**
   * Ends a session after sending `lines` (TimeoutNoTransfer's 421). Without
   * it the no-transfer timer is not armed.
   */
  readonly endSession?: (session: SessionState, lines: readonly string[]) => void;
  /** The daemon's log, for TimeoutNoTransfer's `FTP no transfer timeout, disconnected`. */
  readonly log?: (message: string) => void;
  /** Random numbers in [0, 1) for STOU's names (mkstemp's XXXXXX). */
  readonly random?: () => number;
}

export interface XferModule {
  readonly module: EngineModule;
  readonly settings: XferSettings;
}

/**
 * parse_offset: digits, optionally after white space and `+`; the empty
 * string is 0 (strtoull consumed it all). Undefined for anything else,
 * a `-` sign included.
 */
export function parseOffset(text: string): number | undefined {
  if (text === "") return 0;
  if (!/^\s*\+?[0-9]+$/.test(text)) return undefined;
  return Number(text.trim());
}

/** xfer_init's help entries, in its order (RANG is not implemented). */
const HELP: readonly HelpEntry[] = [
  { command: "TYPE", text: "<sp> type-code (A, I, L 7, L 8)" },
  { command: "STRU", text: "is not implemented (always F)" },
  { command: "MODE", text: "is not implemented (always S)" },
  { command: "RETR", text: "<sp> pathname" },
  { command: "STOR", text: "<sp> pathname" },
  { command: "STOU", text: "(store unique filename)" },
  { command: "APPE", text: "<sp> pathname" },
  { command: "REST", text: "<sp> byte-count" },
  { command: "ABOR", text: "(abort current operation)" },
];

export function createXferModule(data: CoreDataSettings, options: XferOptions = {}): XferModule {
  const settings = defaultXferSettings();
  const sessions = new WeakMap<SessionState, XferSession>();

  const state = (session: SessionState): XferSession => {
    let found = sessions.get(session);
    if (found === undefined) {
      found = { restart: 0, typeBeforeLogin: false };
      sessions.set(session, found);
    }
    return found;
  };

  const on = (command: string, phase: Phase, run: CommandHandler["run"]): CommandHandler => ({ command, phase, run });

  /** STRU and MODE: the parameter's first letter decides; one is supported, others are known and refused. */
  const firstLetter = (
    command: string,
    supported: string,
    known: readonly string[],
    setting: string,
    kind: string,
  ): CommandHandler =>
    on(command, Phases.CMD, (cmd) => {
      if (cmd.argv.length !== 2) return refuse(cmd, "501", `'${displayable(cmd)}' not understood`);
      const letter = (cmd.argv[1] as string).charAt(0).toUpperCase();
      if (letter === supported) return handled(cmd, "200", `${setting} set to ${supported}`);
      if (known.includes(letter)) return refuse(cmd, "504", `'${displayable(cmd)}' unsupported ${kind}`);
      return refuse(cmd, "501", `'${displayable(cmd)}' unrecognized ${kind}`);
    });

  /** xfer_post_pass: the session's TYPE after login, and TimeoutNoTransfer's timer. */
  const afterLogin = (_cmd: ActiveCommand, session: SessionState): HandlerResult => {
    if (!state(session).typeBeforeLogin) session.transferType = settings.defaultTransferMode === "binary" ? "I" : "A";
    const seconds = settings.timeoutNoTransfer;
    const endSession = options.endSession;
    if (seconds !== undefined && seconds > 0 && endSession !== undefined)
      watchNoTransfer(session, seconds, endSession, options.log);
    return HandlerResults.DECLINED;
  };

  const commands: CommandHandler[] = [
    {
      command: "TYPE",
      phase: Phases.CMD,
      // Clients send TYPE before logging in; xfer_post_pass then keeps their choice.
      requiresAuth: false,
      run: (cmd, session) => {
        if (cmd.argv.length < 2 || cmd.argv.length > 3)
          return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
        const given = cmd.argv[1] as string;
        const type = given.charAt(0).toUpperCase() + given.slice(1);
        const level = cmd.argv.length === 3 && type === "L" ? cmd.argv[2] : undefined;
        if (type === "A" || level === "7") session.transferType = "A";
        else if (type === "I" || level === "8") session.transferType = "I";
        else return refuse(cmd, "504", `${cmd.name} not implemented for '${given}' parameter`);
        if (session.user === undefined) state(session).typeBeforeLogin = true;
        return handled(cmd, "200", `Type set to ${given}`);
      },
    },
    // xfer_stru and xfer_mode.
    firstLetter("STRU", "F", ["R", "P"], "Structure", "structure type"),
    firstLetter("MODE", "S", ["B", "C"], "Mode", "transfer mode"),
    on("ALLO", Phases.CMD, (cmd) => {
      // xfer_allo, without TransferOptions AllowAllo: nothing to reserve.
      if (cmd.argv.length !== 2 && cmd.argv.length !== 4)
        return refuse(cmd, "504", `'${displayable(cmd)}' not understood`);
      if (parseOffset(cmd.argv[1] as string) === undefined)
        return refuse(cmd, "504", `${shown(cmd)}: Invalid ALLO argument`);
      return handled(cmd, "202", "No storage allocation necessary");
    }),
    on("SMNT", Phases.CMD, (cmd) => handled(cmd, "502", "SMNT command not implemented")),
    on("REST", Phases.CMD, (cmd, session) => {
      // xfer_rest
      if (cmd.argv.length !== 2) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
      const position = parseOffset(cmd.argv[1] as string);
      if (position === undefined) return refuse(cmd, "501", "REST requires a value greater than or equal to 0");
      // "REST 0" is how some clients probe for REST, so only a real restart is refused in ASCII mode.
      if (session.transferType === "A" && position !== 0) {
        return refuse(cmd, "501", `${cmd.name}: Resuming transfers not allowed in ASCII mode`);
      }
      state(session).restart = position;
      return handled(cmd, "350", `Restarting at ${position}. Send STORE or RETRIEVE to initiate transfer`);
    }),
    on("ABOR", Phases.CMD, (cmd, session) => {
      // xfer_abor: a transfer in progress was already stopped (with its 426) when ABOR arrived; what is pending goes.
      if (cmd.argv.length !== 1) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
      session.data.close();
      return handled(cmd, "226", "Abort successful");
    }),
    ...fileTransferCommands({
      data,
      settings,
      state,
      writer: options.xferlog ?? new XferlogWriter(),
      random: options.random ?? Math.random,
    }),
    on("PASS", Phases.POST_CMD, afterLogin),
  ];

  const module: EngineModule = {
    name: "mod_xfer.c",
    kind: "static",
    commands,
    siteCommands: [],
    directives: xferDirectives(settings),
    // mod_core.c advertises REST STREAM in proftpd; here the module that answers REST does.
    features: ["REST STREAM"],
    help: HELP,
  };
  return { module, settings };
}

/**
 * TimeoutNoTransfer (noxfer_timeout_cb): from login, a session that has not
 * begun or ended a transfer for `seconds` is told `421 No transfer timeout
 * (N seconds): closing control connection` and ended; while a transfer runs
 * the timer only starts over.
 */
function watchNoTransfer(
  session: SessionState,
  seconds: number,
  endSession: NonNullable<XferOptions["endSession"]>,
  log: XferOptions["log"],
): void {
  const clock = session.data.clock;
  const limit = seconds * 1000;
  const armedAt = clock.now();
  let cancel: () => void = () => {};
  const check = (): void => {
    if (session.data.transferring) {
      cancel = clock.schedule(limit, check);
      return;
    }
    const idle = clock.now() - Math.max(armedAt, session.data.lastTransferAt);
    if (idle >= limit) {
      log?.(`${sessionLabel(session)}: FTP no transfer timeout, disconnected`);
      endSession(session, [`421 No transfer timeout (${seconds} seconds): closing control connection`]);
      return;
    }
    cancel = clock.schedule(limit - idle, check);
  };
  cancel = clock.schedule(limit, check);
  session.control.onClose(() => cancel());
}
