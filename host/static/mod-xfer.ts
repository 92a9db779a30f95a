/**
 * mod_xfer.c, compiled in: the transfer commands (RETR, STOR, STOU, APPE,
 * REST, ABOR), the transfer parameters (TYPE, MODE, STRU, ALLO) and their
 * directives, with proftpd 1.3.8's reply texts. As in proftpd, the checks of
 * RETR/STOR/STOU/APPE run in PRE_CMD and the transfer in CMD, so a module's
 * own PRE_CMD handler sees the command first and can refuse it; LOG_CMD writes
 * the TransferLog line.
 */
import type { FileHandle } from "node:fs/promises";
import type { ActiveCommand } from "../abi/host-symbols.js";
import { FsError } from "../fs/session-fs.js";
import type { SessionFilesystem } from "../fs/session-fs.js";
import { virtualPath } from "../fs/virtual-path.js";
import { unmapped } from "../ftp/data-address.js";
import { errnoOf, strerror } from "../ftp/strerror.js";
import { fileSource, receiveOverData, sendOverData, transferWhat } from "../ftp/transfer.js";
import type { ReceiveOutcome } from "../ftp/transfer.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, DirectiveHandler, EngineModule, HandlerResult, HelpEntry, Phase, SessionState } from "../modules/module-api.js";
import { XferlogWriter } from "../xfer/xferlog.js";
import { sessionLabel } from "../ftp/session.js";
import type { CoreDataSettings } from "./core-data.js";
import { displayable } from "./core-data.js";
import { checkArgs, directiveError, param } from "./directives.js";
import { parseDuration } from "./mod-core.js";

export interface XferSettings {
  /** AllowOverwrite: off by default, so STOR (and STOU, see below) never replaces a file. */
  allowOverwrite: boolean;
  /** AllowRetrieveRestart: on by default. */
  allowRetrieveRestart: boolean;
  /** AllowStoreRestart: off by default (REST before STOR, and APPE to an existing file). */
  allowStoreRestart: boolean;
  /** DeleteAbortedStores: unset by default, which keeps a partial STOR but removes a partial HiddenStores file. */
  deleteAbortedStores: boolean | undefined;
  /** HiddenStores: uploads go to `<prefix><name><suffix>` and are renamed when complete. */
  hiddenStores: { readonly prefix: string; readonly suffix: string } | undefined;
  /** DefaultTransferMode: the TYPE a session has after login unless it sent TYPE before. */
  defaultTransferMode: "ascii" | "binary";
  /** StoreUniquePrefix: STOU's names start with it (`ftp`). */
  storeUniquePrefix: string;
  /** TimeoutNoTransfer in seconds; unset (the default in 1.3.8) arms no timer, 0 neither. */
  timeoutNoTransfer: number | undefined;
  /** TimeoutStalled in seconds, PR_TUNABLE_TIMEOUTSTALLED; 0 never. */
  timeoutStalled: number;
}

export function defaultXferSettings(): XferSettings {
  return {
    allowOverwrite: false,
    allowRetrieveRestart: true,
    allowStoreRestart: false,
    deleteAbortedStores: undefined,
    hiddenStores: undefined,
    defaultTransferMode: "ascii",
    storeUniquePrefix: "ftp",
    timeoutNoTransfer: undefined,
    timeoutStalled: 3600,
  };
}

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

/** Per session: session.restart_pos and whether TYPE came before login (have_type). */
interface XferSession {
  restart: number;
  typeBeforeLogin: boolean;
}

/** What PRE_CMD found for the CMD and LOG_CMD phases (proftpd's cmd->notes). */
interface Retrieve {
  readonly kind: "retrieve";
  readonly path: string;
}

interface Store {
  readonly kind: "store";
  /** The file's virtual path. */
  readonly path: string;
  /** What replies name: the argument as sent, or STOU's unique name. */
  readonly label: string;
  readonly append: boolean;
  readonly unique: boolean;
  /** HiddenStores: the temporary file's virtual path. */
  readonly hidden: string | undefined;
  /** The hidden file exists because this upload created it. */
  createdHidden: boolean;
}

const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** How often STOU tries for a name nobody has (mkstemp tries about as hard). */
const STOU_ATTEMPTS = 100;

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

function handled(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addResponse(code, message);
  return HandlerResults.HANDLED;
}

/** strerror's words for a failed file operation (SessionFilesystem reports them with FsError). */
function errorText(error: unknown): string {
  return error instanceof FsError ? error.message : strerror(errnoOf(error) ?? "EIO");
}

/** The argument as proftpd's replies show it: a C string, so it ends at a NUL. */
function shown(cmd: ActiveCommand): string {
  const nul = cmd.arg.indexOf("\0");
  return nul < 0 ? cmd.arg : cmd.arg.slice(0, nul);
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

/**
 * get_hidden_store_path: `<prefix><basename><suffix>` in the file's own
 * directory; undefined when the path has no name to hide.
 */
export function hiddenStorePath(path: string, prefix: string, suffix: string): string | undefined {
  const slash = path.lastIndexOf("/");
  const base = path.slice(slash + 1);
  if (base === "" || base === "." || base === "..") return undefined;
  return `${path.slice(0, slash + 1)}${prefix}${base}${suffix}`;
}

/** HiddenStores' arguments (set_hiddenstores): on|off, or a prefix (with dots added unless it has them or a suffix follows), and a suffix. */
export function parseHiddenStores(args: readonly string[]): XferSettings["hiddenStores"] {
  const [first = "", suffix] = args;
  const dotted = first.startsWith(".") && first.endsWith(".");
  const enabled = dotted ? undefined : booleanWord(first);
  if (enabled === false) return undefined;
  if (enabled === true) return { prefix: ".in.", suffix: "." };
  const addPeriods = !dotted && suffix === undefined;
  return { prefix: addPeriods ? `.${first}.` : first, suffix: suffix ?? "." };
}

/** get_boolean's words. */
function booleanWord(word: string): boolean | undefined {
  const lower = word.toLowerCase();
  if (["on", "yes", "true", "1"].includes(lower)) return true;
  if (["off", "no", "false", "0"].includes(lower)) return false;
  return undefined;
}

function directives(settings: XferSettings): DirectiveHandler[] {
  /** The boolean directives differ in one letter of their complaint. */
  const flag = (name: string, complaint: string, set: (value: boolean) => void): DirectiveHandler => ({
    name,
    run: (d) => {
      checkArgs(d, 1);
      const value = booleanWord(param(d, 1));
      if (value === undefined) throw directiveError(complaint);
      set(value);
    },
  });
  const timeout = (name: string, set: (seconds: number) => void): DirectiveHandler => ({
    name,
    run: (d) => {
      checkArgs(d, 1);
      const seconds = parseDuration(param(d, 1));
      if (seconds === undefined) throw directiveError(`error parsing timeout value '${param(d, 1)}': Invalid argument`);
      set(seconds);
    },
  });
  return [
    flag("AllowOverwrite", "expected boolean parameter", (v) => (settings.allowOverwrite = v)),
    flag("AllowRetrieveRestart", "expected boolean parameter", (v) => (settings.allowRetrieveRestart = v)),
    flag("AllowStoreRestart", "expected boolean parameter", (v) => (settings.allowStoreRestart = v)),
    {
      name: "DefaultTransferMode",
      run: (d) => {
        checkArgs(d, 1);
        const mode = param(d, 1).toLowerCase();
        if (mode !== "ascii" && mode !== "binary") throw directiveError("parameter must be 'ascii' or 'binary'");
        settings.defaultTransferMode = mode;
      },
    },
    flag("DeleteAbortedStores", "expected Boolean parameter", (v) => (settings.deleteAbortedStores = v)),
    {
      name: "HiddenStores",
      run: (d) => {
        checkArgs(d, 1);
        settings.hiddenStores = parseHiddenStores(d.argv.slice(1, 3));
      },
    },
    {
      name: "StoreUniquePrefix",
      run: (d) => {
        checkArgs(d, 1);
        const prefix = param(d, 1);
        if (prefix.includes("/")) throw directiveError(`no slashes allowed in prefix: '${prefix}'`);
        settings.storeUniquePrefix = prefix;
      },
    },
    timeout("TimeoutNoTransfer", (s) => (settings.timeoutNoTransfer = s)),
    timeout("TimeoutStalled", (s) => (settings.timeoutStalled = s)),
  ];
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
  const writer = options.xferlog ?? new XferlogWriter();
  const random = options.random ?? Math.random;
  const sessions = new WeakMap<SessionState, XferSession>();
  const notes = new WeakMap<ActiveCommand, Retrieve | Store>();

  const state = (session: SessionState): XferSession => {
    let found = sessions.get(session);
    if (found === undefined) {
      found = { restart: 0, typeBeforeLogin: false };
      sessions.set(session, found);
    }
    return found;
  };

  const on = (command: string, phase: Phase, run: CommandHandler["run"]): CommandHandler => ({ command, phase, run });

  /** _log_transfer: one TransferLog line, when a log is configured and the session has a user. */
  const logTransfer = async (session: SessionState, cmd: ActiveCommand, path: string, direction: "o" | "i", status: "c" | "i"): Promise<void> => {
    const file = data.transferLog;
    if (file === undefined || session.user === undefined) return;
    await writer.write(file, {
      at: new Date(),
      seconds: (cmd.transfer?.durationMs ?? 0) / 1000,
      remoteHost: unmapped(session.remoteAddress),
      bytes: cmd.transfer?.bytes ?? 0,
      filename: path,
      type: session.transferType === "A" ? "a" : "b",
      direction,
      user: session.user,
      service: session.control.secure ? "ftps" : "ftp",
      status,
    });
  };

  const withFs = (cmd: ActiveCommand, session: SessionState): SessionFilesystem | undefined => {
    if (session.fs === undefined) refuse(cmd, "550", `${shown(cmd)}: ${strerror("EACCES")}`);
    return session.fs;
  };

  /** The command's virtual path, which dispatch usually gives; handlers after mod_xfer's see it in cmd.path either way. */
  const pathOf = (cmd: ActiveCommand, session: SessionState): string => {
    cmd.path ??= virtualPath(session.cwd, cmd.arg, session.home);
    return cmd.path;
  };

  /** xfer_pre_retr. */
  const preRetrieve = async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    if (cmd.argv.length < 2) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
    const fs = withFs(cmd, session);
    if (fs === undefined) return HandlerResults.ERROR;
    const path = pathOf(cmd, session);
    let type: string;
    try {
      type = (await fs.stat(path)).type;
    } catch (error) {
      return refuse(cmd, "550", `${shown(cmd)}: ${errorText(error)}`);
    }
    if (type !== "file") return refuse(cmd, "550", `${shown(cmd)}: Not a regular file`);
    const xfer = state(session);
    if (xfer.restart > 0 && !settings.allowRetrieveRestart) {
      xfer.restart = 0;
      return refuse(cmd, "451", `${shown(cmd)}: Restart not permitted, try again`);
    }
    notes.set(cmd, { kind: "retrieve", path });
    return HandlerResults.HANDLED;
  };

  /**
   * What PRE_CMD noted for the command; when a newer module's PRE_CMD handler
   * answered HANDLED, mod_xfer's own never ran, so its checks run now.
   */
  const noted = async (
    cmd: ActiveCommand,
    session: SessionState,
    pre: (cmd: ActiveCommand, session: SessionState) => Promise<HandlerResult>,
  ): Promise<Retrieve | Store | undefined> => {
    const note = notes.get(cmd);
    if (note !== undefined) return note;
    return (await pre(cmd, session)) === HandlerResults.HANDLED ? notes.get(cmd) : undefined;
  };

  /** xfer_retr. */
  const retrieve = async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    const note = await noted(cmd, session, preRetrieve);
    const fs = session.fs;
    if (fs === undefined || note?.kind !== "retrieve") return HandlerResults.ERROR;
    let opened: { readonly handle: FileHandle; readonly size: number };
    try {
      opened = await fs.openRead(note.path);
    } catch (error) {
      return refuse(cmd, "550", `${shown(cmd)}: ${errorText(error)}`);
    }
    const xfer = state(session);
    const start = xfer.restart;
    if (start > opened.size) {
      await opened.handle.close();
      return refuse(cmd, "554", `REST: invalid ${shown(cmd)} argument`);
    }
    xfer.restart = 0;
    const result = await sendOverData(session, cmd, fileSource(opened.handle, start), {
      what: transferWhat(shown(cmd), opened.size - start),
      ascii: session.transferType === "A",
      fileSize: opened.size,
    });
    // retr_abort logs the incomplete transfer; a complete one is logged in LOG_CMD.
    if (result !== HandlerResults.HANDLED) await logTransfer(session, cmd, note.path, "o", "i");
    return result;
  };

  /** xfer_pre_stor, and xfer_pre_appe with `append`. */
  const preStore = (append: boolean) => async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    if (cmd.argv.length < 2) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
    const fs = withFs(cmd, session);
    if (fs === undefined) return HandlerResults.ERROR;
    const path = pathOf(cmd, session);
    const xfer = state(session);
    let type: string | undefined;
    try {
      type = (await fs.stat(path)).type;
    } catch {
      // file_mode2 reports nothing it cannot stat: the upload's open says what is wrong.
      type = undefined;
    }
    if (type !== undefined) {
      if (!append && !settings.allowOverwrite) return refuse(cmd, "550", `${shown(cmd)}: Overwrite permission denied`);
      if (type !== "file") return refuse(cmd, "550", `${shown(cmd)}: Not a regular file`);
      if ((xfer.restart > 0 || append) && !settings.allowStoreRestart) {
        xfer.restart = 0;
        return refuse(cmd, "451", `${shown(cmd)}: Append/Restart not permitted, try again`);
      }
    }
    let hidden: string | undefined;
    const hiding = settings.hiddenStores;
    if (hiding !== undefined) {
      if (xfer.restart > 0) return refuse(cmd, "501", "REST not compatible with server configuration");
      // Bug#4144: APPE is accepted, without HiddenStores.
      if (!append) {
        // %P is the session's process ID in proftpd; dsod's sessions share a process, so it is the session's number.
        const pid = String(session.id);
        hidden = hiddenStorePath(path, hiding.prefix.replaceAll("%P", pid), hiding.suffix.replaceAll("%P", pid));
        if (hidden === undefined) return refuse(cmd, "451", `${path}: Bad file name`);
        const exists = await fs.lstat(hidden).then(
          () => true,
          () => false,
        );
        if (exists) return refuse(cmd, "550", `${shown(cmd)}: Temporary hidden file ${hidden} already exists`);
      }
    }
    notes.set(cmd, { kind: "store", path, label: shown(cmd), append, unique: false, hidden, createdHidden: false });
    return HandlerResults.HANDLED;
  };

  /** xfer_pre_stou: a new file named `<StoreUniquePrefix>XXXXXX` in the working directory. */
  const preUnique = async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    // Clients may send a name along (RFC 959 has none); it is ignored, more is refused.
    if (cmd.argv.length > 2) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
    const fs = withFs(cmd, session);
    if (fs === undefined) return HandlerResults.ERROR;
    if (state(session).restart > 0) return refuse(cmd, "550", "STOU incompatible with REST");
    let created: { readonly name: string; readonly path: string } | undefined;
    for (let attempt = 0; attempt < STOU_ATTEMPTS && created === undefined; attempt++) {
      let name = settings.storeUniquePrefix;
      for (let i = 0; i < 6; i++) name += NAME_CHARS[Math.floor(random() * NAME_CHARS.length)];
      const path = fs.resolve(session.cwd, name);
      try {
        await (await fs.openWrite(path, { exclusive: true })).close();
        created = { name, path };
      } catch (error) {
        if (!(error instanceof FsError && error.errno === "EEXIST")) break;
      }
    }
    if (created === undefined) return refuse(cmd, "450", `${cmd.name}: unable to generate unique filename`);
    cmd.path = created.path;
    // proftpd checks AllowOverwrite against the file mkstemp just made, so STOU needs AllowOverwrite on (its own tests set it).
    if (!settings.allowOverwrite) {
      await fs.unlink(created.path).catch(() => {});
      return refuse(cmd, "550", `${created.name}: Overwrite permission denied`);
    }
    notes.set(cmd, { kind: "store", path: created.path, label: created.name, append: false, unique: true, hidden: undefined, createdHidden: false });
    return HandlerResults.HANDLED;
  };

  /** stor_abort: close the file, and remove what DeleteAbortedStores and HiddenStores say to. */
  const abortStore = async (fs: SessionFilesystem, note: Store, handle: FileHandle): Promise<void> => {
    await handle.close().catch(() => {});
    if (note.hidden !== undefined) {
      if (settings.deleteAbortedStores !== false && note.createdHidden) {
        await fs.unlink(note.hidden).catch(() => {});
        note.createdHidden = false;
      }
    } else if (settings.deleteAbortedStores === true) {
      await fs.unlink(note.path).catch(() => {});
    }
  };

  const sizeOf = (fs: SessionFilesystem, path: string): Promise<number> => fs.stat(path).then((info) => info.size, () => 0);

  const uploadInfo = (outcome: ReceiveOutcome, fileSize: number, complete: boolean): ActiveCommand["transfer"] => ({
    direction: "upload",
    bytes: outcome.bytes,
    fileSize,
    durationMs: outcome.durationMs,
    complete,
  });

  /**
   * xfer_stor, for STOR, APPE and STOU (`pre` is the command's own PRE_CMD
   * check). The data channel is held from the file's opening to its closing,
   * so that a session ending meanwhile closes its filesystem only after the
   * file is dealt with (DataChannel.whenIdle).
   */
  const store = (pre: (cmd: ActiveCommand, session: SessionState) => Promise<HandlerResult>) => async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    const note = await noted(cmd, session, pre);
    const fs = session.fs;
    if (fs === undefined || note?.kind !== "store") return HandlerResults.ERROR;
    session.data.beginTransfer();
    try {
      return await storeFile(cmd, session, fs, note);
    } finally {
      session.data.endTransfer();
    }
  };

  const storeFile = async (cmd: ActiveCommand, session: SessionState, fs: SessionFilesystem, note: Store): Promise<HandlerResult> => {
    const xfer = state(session);
    // REST counts for APPE too: xfer_stor seeks to the end and then to the restart position.
    const start = xfer.restart;
    let handle: FileHandle;
    try {
      if (note.hidden !== undefined) handle = await fs.openWrite(note.hidden, { exclusive: true });
      else if (note.append && start === 0) handle = await fs.openWrite(note.path, { append: true });
      else handle = await fs.openWrite(note.path, start > 0 ? { start } : {});
    } catch (error) {
      return refuse(cmd, "550", `${note.label}: ${errorText(error)}`);
    }
    if (note.hidden !== undefined) note.createdHidden = true;
    if (start > 0 && start > (await sizeOf(fs, note.path))) {
      await handle.close().catch(() => {});
      return refuse(cmd, "554", `REST: invalid ${note.label} argument`);
    }
    xfer.restart = 0;
    const outcome = await receiveOverData(session, cmd, handle, {
      what: note.label,
      ascii: session.transferType === "A",
      unique: note.unique,
      ...(start > 0 && { start }),
    });
    if (!outcome.complete) {
      await abortStore(fs, note, handle);
      cmd.transfer = uploadInfo(outcome, await sizeOf(fs, note.path), false);
      await logTransfer(session, cmd, note.path, "i", "i");
      return HandlerResults.ERROR;
    }
    try {
      await handle.close();
    } catch (error) {
      // stor_complete: a failed close loses the upload's end; only a hidden file is removed.
      if (note.hidden !== undefined) await fs.unlink(note.hidden).catch(() => {});
      cmd.transfer = uploadInfo(outcome, await sizeOf(fs, note.path), false);
      await logTransfer(session, cmd, note.path, "i", "i");
      return refuse(cmd, errnoOf(error) === "EDQUOT" ? "552" : "550", `${note.label}: ${errorText(error)}`);
    }
    if (note.hidden !== undefined) {
      try {
        await fs.rename(note.hidden, note.path);
        note.createdHidden = false;
      } catch (error) {
        await fs.unlink(note.hidden).catch(() => {});
        note.createdHidden = false;
        return refuse(cmd, "550", `${note.path}: Rename of hidden file ${note.hidden} failed: ${errorText(error)}`);
      }
    }
    cmd.transfer = uploadInfo(outcome, await sizeOf(fs, note.path), true);
    return handled(cmd, "226", "Transfer complete");
  };

  /** xfer_log_retr / xfer_log_stor: the completed transfer's line; REST is used up. */
  const logComplete = (direction: "o" | "i") => async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    state(session).restart = 0;
    const note = notes.get(cmd);
    if (note !== undefined) await logTransfer(session, cmd, note.path, direction, "c");
    return HandlerResults.DECLINED;
  };

  /** xfer_err_cleanup: REST is used up, and a hidden file left by a failed upload goes (unless DeleteAbortedStores off). */
  const cleanup = async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    state(session).restart = 0;
    const note = notes.get(cmd);
    if (note?.kind === "store" && note.hidden !== undefined && note.createdHidden && settings.deleteAbortedStores !== false) {
      await session.fs?.unlink(note.hidden).catch(() => {});
      note.createdHidden = false;
    }
    return HandlerResults.DECLINED;
  };

  /** xfer_post_pass: the session's TYPE after login, and TimeoutNoTransfer's timer. */
  const afterLogin = (_cmd: ActiveCommand, session: SessionState): HandlerResult => {
    if (!state(session).typeBeforeLogin) session.transferType = settings.defaultTransferMode === "binary" ? "I" : "A";
    const seconds = settings.timeoutNoTransfer;
    const endSession = options.endSession;
    if (seconds !== undefined && seconds > 0 && endSession !== undefined) watchNoTransfer(session, seconds, endSession, options.log);
    return HandlerResults.DECLINED;
  };

  const preStor = preStore(false);
  const preAppe = preStore(true);

  const commands: CommandHandler[] = [
    {
      command: "TYPE",
      phase: Phases.CMD,
      // Clients send TYPE before logging in; xfer_post_pass then keeps their choice.
      requiresAuth: false,
      run: (cmd, session) => {
      if (cmd.argv.length < 2 || cmd.argv.length > 3) return refuse(cmd, "500", `'${displayable(cmd)}' not understood`);
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
    on("STRU", Phases.CMD, (cmd) => {
      // xfer_stru: the first letter decides.
      if (cmd.argv.length !== 2) return refuse(cmd, "501", `'${displayable(cmd)}' not understood`);
      switch ((cmd.argv[1] as string).charAt(0).toUpperCase()) {
        case "F":
          return handled(cmd, "200", "Structure set to F");
        case "R":
        case "P":
          return refuse(cmd, "504", `'${displayable(cmd)}' unsupported structure type`);
        default:
          return refuse(cmd, "501", `'${displayable(cmd)}' unrecognized structure type`);
      }
    }),
    on("MODE", Phases.CMD, (cmd) => {
      // xfer_mode: the first letter decides.
      if (cmd.argv.length !== 2) return refuse(cmd, "501", `'${displayable(cmd)}' not understood`);
      switch ((cmd.argv[1] as string).charAt(0).toUpperCase()) {
        case "S":
          return handled(cmd, "200", "Mode set to S");
        case "B":
        case "C":
          return refuse(cmd, "504", `'${displayable(cmd)}' unsupported transfer mode`);
        default:
          return refuse(cmd, "501", `'${displayable(cmd)}' unrecognized transfer mode`);
      }
    }),
    on("ALLO", Phases.CMD, (cmd) => {
      // xfer_allo, without TransferOptions AllowAllo: nothing to reserve.
      if (cmd.argv.length !== 2 && cmd.argv.length !== 4) return refuse(cmd, "504", `'${displayable(cmd)}' not understood`);
      if (parseOffset(cmd.argv[1] as string) === undefined) return refuse(cmd, "504", `${shown(cmd)}: Invalid ALLO argument`);
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
    on("RETR", Phases.PRE_CMD, preRetrieve),
    on("RETR", Phases.CMD, retrieve),
    on("RETR", Phases.LOG_CMD, logComplete("o")),
    on("RETR", Phases.LOG_CMD_ERR, cleanup),
    on("STOR", Phases.PRE_CMD, preStor),
    on("STOR", Phases.CMD, store(preStor)),
    on("STOR", Phases.LOG_CMD, logComplete("i")),
    on("STOR", Phases.LOG_CMD_ERR, cleanup),
    on("STOU", Phases.PRE_CMD, preUnique),
    on("STOU", Phases.CMD, store(preUnique)),
    on("STOU", Phases.LOG_CMD, logComplete("i")),
    on("STOU", Phases.LOG_CMD_ERR, cleanup),
    on("APPE", Phases.PRE_CMD, preAppe),
    on("APPE", Phases.CMD, store(preAppe)),
    on("APPE", Phases.LOG_CMD, logComplete("i")),
    on("APPE", Phases.LOG_CMD_ERR, cleanup),
    on("PASS", Phases.POST_CMD, afterLogin),
  ];

  const module: EngineModule = {
    name: "mod_xfer.c",
    kind: "static",
    commands,
    siteCommands: [],
    directives: directives(settings),
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
