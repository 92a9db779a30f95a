/**
 * mod_core.c's directory and name commands (core_cwd, core_cdup, core_pwd,
 * core_mkd, core_rmd, core_dele, core_rnfr, core_rnto, core_size, core_mdtm),
 * core_opts with the OPTS UTF8 of mod_lang.c's lang_utf8 (dsod has no
 * mod_lang.c; its names are always UTF-8), and the Umask directive. Part of
 * mod_core.c: mod-core.ts includes these handlers. Every path is the user's,
 * resolved inside the session's jail (session.fs).
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { timeVal } from "../fs/facts.js";
import { FsError, fsErrorReply } from "../fs/session-fs.js";
import type { SessionFilesystem } from "../fs/session-fs.js";
import { strerror } from "../fs/strerror.js";
import { virtualPath } from "../fs/virtual-path.js";
import { handlerIndex } from "../ftp/handler-index.js";
import { notUnderstood } from "../ftp/dispatch.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  CommandHandler,
  DirectiveHandler,
  HandlerResult,
  HelpEntry,
  SessionState,
} from "../modules/module-api.js";
import { directiveError, param, parseBoolean } from "../config/directives.js";

/** What the Umask directive sets. */
export interface UmaskSettings {
  /** Umask for files, and for directories unless `dirUmask` is set; proftpd's default 022. */
  umask: number;
  /** Umask's optional second argument (proftpd's DirUmask). */
  dirUmask: number | undefined;
}

export function defaultUmaskSettings(): UmaskSettings {
  return { umask: 0o022, dirUmask: undefined };
}

export interface CoreFilesOptions {
  /** mod_xfer.c's AllowOverwrite: whether RNTO may replace an existing name (off, as in proftpd, unless given). */
  readonly allowOverwrite?: () => boolean;
}

/** core_init's help entries for CWD, XCWD, CDUP and XCUP, which come first in its list. */
export const CORE_DIRECTORY_HELP: readonly HelpEntry[] = [
  { command: "CWD", text: "<sp> pathname" },
  { command: "XCWD", text: "<sp> pathname" },
  { command: "CDUP", text: "(up one directory)" },
  { command: "XCUP", text: "(up one directory)" },
];

/** core_init's help entries from RNFR to SIZE, in its order (after ALLO, before SYST). */
export const CORE_NAME_HELP: readonly HelpEntry[] = [
  { command: "RNFR", text: "<sp> pathname" },
  { command: "RNTO", text: "<sp> pathname" },
  { command: "DELE", text: "<sp> pathname" },
  { command: "MDTM", text: "<sp> pathname" },
  { command: "RMD", text: "<sp> pathname" },
  { command: "XRMD", text: "<sp> pathname" },
  { command: "MKD", text: "<sp> pathname" },
  { command: "XMKD", text: "<sp> pathname" },
  { command: "PWD", text: "(returns current working directory)" },
  { command: "XPWD", text: "(returns current working directory)" },
  { command: "SIZE", text: "<sp> pathname" },
];

/** core_init's help entry for OPTS (after FEAT). */
export const CORE_OPTS_HELP: readonly HelpEntry[] = [{ command: "OPTS", text: "<sp> command [<sp> options]" }];

/** core_init's FEAT lines for these commands, and mod_lang.c's UTF8. */
export const CORE_FILE_FEATURES: readonly string[] = ["MDTM", "SIZE", "UTF8"];

/** PR_OPTS_MAX_PARAM_COUNT (Bug#3870). */
const OPTS_MAX_PARAMS = 8;

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

function done(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addResponse(code, message);
  return HandlerResults.HANDLED;
}

/** `550 <path as typed>: <strerror>`, the reply of every failed file operation here. */
export function refuseFs(cmd: ActiveCommand, typed: string, error: unknown, code = "550"): HandlerResult {
  const reply = fsErrorReply(typed, error, code);
  return refuse(cmd, reply.code, reply.message);
}

/** The session's jail; a session without one (its root could not be opened) may touch nothing. */
export function sessionFs(session: SessionState): SessionFilesystem {
  if (session.fs === undefined) throw new FsError("EACCES", strerror("EACCES"));
  return session.fs;
}

/**
 * The command's path inside the jail, set on the command for the handlers and
 * guests after this one. `~` is the user's home, as dir_canonical_path
 * interpolates it (MKD, RMD, DELE, RNFR, RNTO; LIST, NLST and STAT too).
 */
export function commandTarget(cmd: ActiveCommand, session: SessionState, typed: string): string {
  const target = virtualPath(session.cwd, typed, session.home);
  cmd.path = target;
  return target;
}

/**
 * The same for the commands whose proftpd handler looks the name up as given
 * (dir_realpath, lstat, utimes: CWD, SIZE, MDTM, MLST, MLSD, MFMT, SITE
 * CHMOD): a leading `~` is a name like any other.
 */
export function literalTarget(cmd: ActiveCommand, session: SessionState, typed: string): string {
  return commandTarget(cmd, session, typed.startsWith("~") ? `./${typed}` : typed);
}

/** quote_dir / pr_str_quote: a `"` in a path is doubled inside the quoted reply (RFC 959 appendix II). */
export function quoteDir(path: string): string {
  return path.replaceAll('"', '""');
}

/** CHECK_CMD_MIN_ARGS / CHECK_CMD_ARGS's reply. */
export function invalidParameters(cmd: ActiveCommand): HandlerResult {
  return refuse(cmd, "501", "Invalid number of parameters");
}

function cmdHandler(command: string, run: CommandHandler["run"]): CommandHandler {
  return { command, phase: Phases.CMD, run };
}

/** A command made for an OPTS subcommand (core_opts's subcmd): `OPTS_X` and the words after X; replies go to OPTS. */
function optsSubcommand(cmd: ActiveCommand, name: string): ActiveCommand {
  const words = cmd.argv.slice(2);
  return {
    name,
    arg: words.join(" "),
    argv: [name, ...words],
    user: cmd.user,
    cwd: cmd.cwd,
    path: undefined,
    transfer: undefined,
    addResponse: (code, message) => cmd.addResponse(code, message),
    addError: (code, message) => cmd.addError(code, message),
  };
}

/** The Umask directive (set_umask): `Umask octal [dir-octal]`. */
export function umaskDirective(settings: UmaskSettings): DirectiveHandler {
  const octal = (text: string): number => {
    // strtol(arg, &endp, 8) with nothing left over.
    if (!/^[ \t\n\v\f\r]*([+-]?[0-7]+)?$/.test(text)) throw directiveError(`'${text}' is not a valid umask`);
    return text.trim() === "" ? 0 : Number.parseInt(text, 8) & 0o7777;
  };
  return {
    name: "Umask",
    run: (d) => {
      // CHECK_VARARGS(cmd, 1, 2)
      if (d.argv.length < 2 || d.argv.length > 3) throw directiveError("missing parameters");
      const umask = octal(param(d, 1));
      const dirUmask = d.argv.length === 3 ? octal(param(d, 2)) : undefined;
      settings.umask = umask;
      settings.dirUmask = dirUmask;
    },
  };
}

/** The commands: CMD handlers, and RNTO's cleanup in LOG_CMD and LOG_CMD_ERR. */
export function coreFileCommands(options: CoreFilesOptions = {}): CommandHandler[] {
  const allowOverwrite = options.allowOverwrite ?? (() => false);
  /** core_rnfr's session.xfer.path: what RNFR named, until the next RNTO. */
  const renaming = new WeakMap<SessionState, string>();

  /** core_chdir: the real directory (symlinks resolved) becomes the working directory. */
  const changeDirectory = async (cmd: ActiveCommand, session: SessionState, typed: string): Promise<HandlerResult> => {
    const target = literalTarget(cmd, session, typed);
    try {
      session.cwd = await sessionFs(session).enter(target);
    } catch (error) {
      return refuseFs(cmd, typed, error);
    }
    return done(cmd, "250", `${cmd.name} command successful`);
  };

  const cwd: CommandHandler["run"] = (cmd, session) =>
    cmd.argv.length < 2 ? invalidParameters(cmd) : changeDirectory(cmd, session, cmd.arg);

  const cdup: CommandHandler["run"] = (cmd, session) =>
    cmd.argv.length !== 1 ? invalidParameters(cmd) : changeDirectory(cmd, session, "..");

  const pwd: CommandHandler["run"] = (cmd, session) => {
    if (cmd.argv.length !== 1) return invalidParameters(cmd);
    return done(cmd, "257", `"${quoteDir(session.cwd)}" is the current directory`);
  };

  const mkd: CommandHandler["run"] = async (cmd, session) => {
    if (cmd.argv.length < 2) return invalidParameters(cmd);
    // core_mkd refuses any name with an asterisk (its own XXX asks why).
    if (cmd.arg.includes("*")) return refuse(cmd, "550", `${cmd.arg}: Invalid directory name`);
    const target = commandTarget(cmd, session, cmd.arg);
    try {
      await sessionFs(session).mkdir(target);
    } catch (error) {
      return refuseFs(cmd, cmd.arg, error);
    }
    return done(cmd, "257", `"${quoteDir(target)}" - Directory successfully created`);
  };

  /** RMD and DELE: one fs call on the named path, then `250 <command> command successful`. */
  const remove =
    (op: (fs: SessionFilesystem, path: string) => Promise<void>): CommandHandler["run"] =>
    async (cmd, session) => {
      if (cmd.argv.length < 2) return invalidParameters(cmd);
      const target = commandTarget(cmd, session, cmd.arg);
      try {
        await op(sessionFs(session), target);
      } catch (error) {
        return refuseFs(cmd, cmd.arg, error);
      }
      return done(cmd, "250", `${cmd.name} command successful`);
    };

  const rnfr: CommandHandler["run"] = async (cmd, session) => {
    if (cmd.argv.length < 2) return invalidParameters(cmd);
    const target = commandTarget(cmd, session, cmd.arg);
    try {
      // exists2: lstat, so a symlink (even a dangling one) can be renamed.
      await sessionFs(session).lstat(target);
    } catch (error) {
      return refuseFs(cmd, cmd.arg, error);
    }
    renaming.set(session, target);
    return done(cmd, "350", "File or directory exists, ready for destination name");
  };

  const rnto: CommandHandler["run"] = async (cmd, session) => {
    if (cmd.argv.length < 2) return invalidParameters(cmd);
    const from = renaming.get(session);
    if (from === undefined) return refuse(cmd, "503", "Bad sequence of commands");
    const target = commandTarget(cmd, session, cmd.arg);
    try {
      const fs = sessionFs(session);
      if (!allowOverwrite()) {
        const exists = await fs.stat(target).then(
          () => true,
          () => false,
        );
        if (exists) return refuse(cmd, "550", `${cmd.arg}: Rename permission denied`);
      }
      await fs.rename(from, target);
    } catch (error) {
      // A directory moved across mount points: core_rnto says EPERM, the more telling text.
      if (error instanceof FsError && error.errno === "EISDIR")
        return refuseFs(cmd, cmd.arg, new FsError("EPERM", strerror("EPERM")));
      return refuseFs(cmd, cmd.arg, error);
    }
    return done(cmd, "250", "Rename successful");
  };

  /** core_rnto_cleanup: whatever RNTO did, the RNFR name is forgotten. */
  const forgetRename: CommandHandler["run"] = (_cmd, session) => {
    renaming.delete(session);
    return HandlerResults.DECLINED;
  };

  const size: CommandHandler["run"] = async (cmd, session) => {
    if (cmd.argv.length < 2) return invalidParameters(cmd);
    // proftpd built without PR_ALLOW_ASCII_MODE_SIZE: the size on disk is not what an ASCII transfer sends.
    if (session.transferType === "A") return refuse(cmd, "550", `${cmd.name} not allowed in ASCII mode`);
    const target = literalTarget(cmd, session, cmd.arg);
    try {
      const info = await sessionFs(session).stat(target);
      if (info.type !== "file") return refuse(cmd, "550", `${cmd.arg}: not a regular file`);
      return done(cmd, "213", String(info.size));
    } catch (error) {
      return refuseFs(cmd, cmd.arg, error);
    }
  };

  const mdtm: CommandHandler["run"] = async (cmd, session) => {
    if (cmd.argv.length < 2) return invalidParameters(cmd);
    const target = literalTarget(cmd, session, cmd.arg);
    try {
      const info = await sessionFs(session).stat(target);
      if (info.type !== "file") return refuse(cmd, "550", `${cmd.arg}: not a plain file`);
      return done(cmd, "213", timeVal(info.mtimeMs));
    } catch (error) {
      return refuseFs(cmd, cmd.arg, error);
    }
  };

  /**
   * core_opts: `OPTS X ...` runs the CMD handlers registered for `OPTS_X`
   * (mod_facts.c's OPTS_MLST, lang_utf8's OPTS_UTF8), newest module first,
   * with the words after X; `'OPTS X' not understood` when none takes it.
   */
  const opts: CommandHandler["run"] = async (cmd, session) => {
    const word = cmd.argv[1];
    if (word === undefined) return invalidParameters(cmd);
    if (cmd.argv.length - 1 > OPTS_MAX_PARAMS) return refuse(cmd, "550", `${cmd.name}: ${strerror("EINVAL")}`);
    const name = `OPTS_${word.toUpperCase()}`;
    const sub = optsSubcommand(cmd, name);
    for (const { handler } of handlerIndex(session.modules).handlers(Phases.CMD, name)) {
      if (handler.command !== name) continue;
      const result = await handler.run(sub, session);
      if (result !== HandlerResults.DECLINED) return result;
    }
    return refuse(cmd, "500", notUnderstood(name));
  };

  /** lang_utf8: dsod's names are UTF-8 either way, so both answers are accepted as proftpd accepts them by default. */
  const optsUtf8: CommandHandler["run"] = (cmd) => {
    const method = cmd.name.replaceAll("_", " ");
    const value = cmd.argv.length === 2 ? parseBoolean(cmd.argv[1] as string) : undefined;
    if (value === undefined) return refuse(cmd, "501", `'${method}' not understood`);
    return done(cmd, "200", `UTF8 set to ${value ? "on" : "off"}`);
  };

  return [
    cmdHandler("PWD", pwd),
    cmdHandler("XPWD", pwd),
    cmdHandler("CWD", cwd),
    cmdHandler("XCWD", cwd),
    cmdHandler("MKD", mkd),
    cmdHandler("XMKD", mkd),
    cmdHandler(
      "RMD",
      remove((fs, path) => fs.rmdir(path)),
    ),
    cmdHandler(
      "XRMD",
      remove((fs, path) => fs.rmdir(path)),
    ),
    cmdHandler("CDUP", cdup),
    cmdHandler("XCUP", cdup),
    cmdHandler(
      "DELE",
      remove((fs, path) => fs.unlink(path)),
    ),
    cmdHandler("MDTM", mdtm),
    cmdHandler("RNFR", rnfr),
    cmdHandler("RNTO", rnto),
    { command: "RNTO", phase: Phases.LOG_CMD, run: forgetRename },
    { command: "RNTO", phase: Phases.LOG_CMD_ERR, run: forgetRename },
    cmdHandler("SIZE", size),
    { command: "OPTS", phase: Phases.CMD, requiresAuth: false, run: opts },
    { command: "OPTS_UTF8", phase: Phases.CMD, requiresAuth: false, run: optsUtf8 },
  ];
}
