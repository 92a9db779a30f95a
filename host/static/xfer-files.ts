/**
 * mod_xfer.c's file transfers: RETR, STOR, STOU and APPE. As in proftpd, the
 * checks run in PRE_CMD (xfer_pre_retr, xfer_pre_stor, ...) and the transfer
 * in CMD, so a module's own PRE_CMD handler sees the command first and can
 * refuse it; LOG_CMD writes the TransferLog line and LOG_CMD_ERR cleans up.
 */
import type { FileHandle } from "node:fs/promises";
import type { ActiveCommand } from "../abi/host-symbols.js";
import { FsError } from "../fs/session-fs.js";
import type { SessionFilesystem } from "../fs/session-fs.js";
import { virtualPath } from "../fs/virtual-path.js";
import { unmapped } from "../data/data-address.js";
import { errnoOf, strerror } from "../ftp/strerror.js";
import { fileSource, receiveOverData, sendOverData, transferWhat } from "../ftp/transfer.js";
import type { ReceiveOutcome } from "../ftp/transfer.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, HandlerResult, SessionState } from "../modules/module-api.js";
import type { XferlogWriter } from "../xfer/xferlog.js";
import type { CoreDataSettings } from "./core-data.js";
import { displayable } from "./core-data.js";
import type { XferSettings } from "./xfer-directives.js";

/** Per session: session.restart_pos and whether TYPE came before login (have_type). */
export interface XferSession {
  restart: number;
  typeBeforeLogin: boolean;
}

export interface FileTransferContext {
  readonly data: CoreDataSettings;
  readonly settings: XferSettings;
  readonly state: (session: SessionState) => XferSession;
  /** Where TransferLog lines go. */
  readonly writer: XferlogWriter;
  /** Random numbers in [0, 1) for STOU's names (mkstemp's XXXXXX). */
  readonly random: () => number;
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

export function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

export function handled(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addResponse(code, message);
  return HandlerResults.HANDLED;
}

/** strerror's words for a failed file operation (SessionFilesystem reports them with FsError). */
function errorText(error: unknown): string {
  return error instanceof FsError ? error.message : strerror(errnoOf(error) ?? "EIO");
}

/** The argument as proftpd's replies show it: a C string, so it ends at a NUL. */
export function shown(cmd: ActiveCommand): string {
  const nul = cmd.arg.indexOf("\0");
  return nul < 0 ? cmd.arg : cmd.arg.slice(0, nul);
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

/** A command's PRE_CMD check, which notes what its CMD handler transfers. */
type PreCheck = (cmd: ActiveCommand, session: SessionState) => Promise<HandlerResult>;

/** The handlers of RETR, STOR, STOU and APPE, each in PRE_CMD, CMD, LOG_CMD and LOG_CMD_ERR. */
export function fileTransferCommands(context: FileTransferContext): CommandHandler[] {
  const { data, settings, state, writer, random } = context;
  const notes = new WeakMap<ActiveCommand, Retrieve | Store>();

  /** _log_transfer: one TransferLog line, when a log is configured and the session has a user. */
  const logTransfer = async (
    session: SessionState,
    cmd: ActiveCommand,
    path: string,
    direction: "o" | "i",
    status: "c" | "i",
  ): Promise<void> => {
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

  /** The command's virtual path, which dispatch usually gives; later handlers see it in cmd.path either way. */
  const pathOf = (cmd: ActiveCommand, session: SessionState): string => {
    cmd.path ??= virtualPath(session.cwd, cmd.arg, session.home);
    return cmd.path;
  };

  /** xfer_pre_retr. */
  const preRetrieve: PreCheck = async (cmd, session) => {
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
    pre: PreCheck,
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
  const preStore =
    (append: boolean): PreCheck =>
    async (cmd, session) => {
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
        if (!append && !settings.allowOverwrite)
          return refuse(cmd, "550", `${shown(cmd)}: Overwrite permission denied`);
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
  const preUnique: PreCheck = async (cmd, session) => {
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
    // proftpd checks AllowOverwrite against the file mkstemp just made, so STOU needs
    // AllowOverwrite on (its own tests set it).
    if (!settings.allowOverwrite) {
      await fs.unlink(created.path).catch(() => {});
      return refuse(cmd, "550", `${created.name}: Overwrite permission denied`);
    }
    notes.set(cmd, {
      kind: "store",
      path: created.path,
      label: created.name,
      append: false,
      unique: true,
      hidden: undefined,
      createdHidden: false,
    });
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

  const sizeOf = (fs: SessionFilesystem, path: string): Promise<number> =>
    fs.stat(path).then(
      (info) => info.size,
      () => 0,
    );

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
  const store =
    (pre: PreCheck) =>
    async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
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

  const storeFile = async (
    cmd: ActiveCommand,
    session: SessionState,
    fs: SessionFilesystem,
    note: Store,
  ): Promise<HandlerResult> => {
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
  const logComplete =
    (direction: "o" | "i") =>
    async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
      state(session).restart = 0;
      const note = notes.get(cmd);
      if (note !== undefined) await logTransfer(session, cmd, note.path, direction, "c");
      return HandlerResults.DECLINED;
    };

  /** xfer_err_cleanup: REST is used up, and a failed upload's hidden file goes (unless DeleteAbortedStores off). */
  const cleanup = async (cmd: ActiveCommand, session: SessionState): Promise<HandlerResult> => {
    state(session).restart = 0;
    const note = notes.get(cmd);
    if (
      note?.kind === "store" &&
      note.hidden !== undefined &&
      note.createdHidden &&
      settings.deleteAbortedStores !== false
    ) {
      await session.fs?.unlink(note.hidden).catch(() => {});
      note.createdHidden = false;
    }
    return HandlerResults.DECLINED;
  };

  /** Each command: its PRE_CMD check, its CMD transfer, and TransferLog's direction (`o`utgoing, `i`ncoming). */
  const preStor = preStore(false);
  const preAppe = preStore(true);
  const transfers: ReadonlyArray<readonly [string, PreCheck, CommandHandler["run"], "o" | "i"]> = [
    ["RETR", preRetrieve, retrieve, "o"],
    ["STOR", preStor, store(preStor), "i"],
    ["STOU", preUnique, store(preUnique), "i"],
    ["APPE", preAppe, store(preAppe), "i"],
  ];
  return transfers.flatMap(([command, pre, transfer, direction]): CommandHandler[] => [
    { command, phase: Phases.PRE_CMD, run: pre },
    { command, phase: Phases.CMD, run: transfer },
    { command, phase: Phases.LOG_CMD, run: logComplete(direction) },
    { command, phase: Phases.LOG_CMD_ERR, run: cleanup },
  ]);
}
