/**
 * mod_ls.c, compiled in: LIST (ls_list, genericlist, dolist), NLST (ls_nlst,
 * nlstdir, nlstfile) and STAT (ls_stat), over the session's jail. Listings
 * go over the data connection (host/ftp/transfer.ts); STAT answers on the
 * control connection.
 *
 * Where dsod differs: globbing is done in the last path component only, and
 * its matches are sorted; the options -B, -C, -c, -L, -R and -u are accepted
 * and ignored; `LIST -d` without a path lists nothing (proftpd 1.3.8's
 * session dies on it); DirFakeUser/Group/Mode, ListOptions and ShowSymlinks
 * are not directives here (ShowSymlinks is on); a symlink leading out of the
 * jail is left out of NLST and MLSD, where proftpd's chroot would look its
 * target up inside.
 */
import { Readable } from "node:stream";
import type { ActiveCommand } from "../abi/host-symbols.js";
import {
  byteOrder,
  cleanPath,
  globMatch,
  hiddenByDot,
  isDotDir,
  isGlob,
  joinName,
  listLine,
  NO_FLAGS,
  parseListOptions,
  skipFirstOptionWord,
  sortForOutput,
  unsafeSymlink,
} from "../fs/ls-format.js";
import type { ListEntry, ListFlags, OwnerNames } from "../fs/ls-format.js";
import type { FileInfo, SessionFilesystem } from "../fs/session-fs.js";
import { fsErrorReply } from "../fs/session-fs.js";
import { virtualPath } from "../fs/virtual-path.js";
import { CONTINUATION } from "../ftp/dispatch.js";
import { sendOverData } from "../ftp/transfer.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, HelpEntry, SessionState } from "../modules/module-api.js";
import { commandTarget } from "./core-files.js";

export type SendOverData = typeof sendOverData;

export interface LsOptions {
  /** ServerName, for STAT's `Status of '<name>'`. */
  readonly serverName: () => string;
  /** uid and gid → names for the long format; by default the session's own account, numbers for the rest. */
  readonly owners?: (session: SessionState) => OwnerNames;
  /** Sends a listing over the data connection (a test seam; host/ftp/transfer.ts otherwise). */
  readonly send?: SendOverData;
  /** The clock for `within six months` (a test seam). */
  readonly now?: () => number;
}

/** ls_init's help entries. */
const HELP: readonly HelpEntry[] = [
  { command: "LIST", text: "[<sp> pathname]" },
  { command: "NLST", text: "[<sp> (pathname)]" },
  { command: "STAT", text: "[<sp> pathname]" },
];

/** The session's own account by name; any other owner as its number. */
export function sessionOwners(session: SessionState): OwnerNames {
  const account = session.account;
  return {
    userName: (uid) => (account !== undefined && uid === account.uid ? account.name : String(uid)),
    groupName: (gid) =>
      account !== undefined && gid === account.gid && account.groups[0] !== undefined ? account.groups[0] : String(gid),
  };
}

/** A listing, or the reply that refuses it. */
type Listing = { readonly lines: string[] } | { readonly code: string; readonly message: string };

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * session.c->remote_name: proftpd shows the name /etc/hosts gives a loopback
 * client (`localhost`); dsod does no DNS lookups, so any other client is its
 * address.
 */
function remoteName(address: string): string {
  return LOOPBACK.test(address) ? "localhost" : address;
}

/** The parent directory of a virtual path (the root's is itself, as `..` in a chroot). */
function parentOf(dir: string): string {
  return virtualPath(dir, "..");
}

/** The last component of a path as typed (listfile strips the rest, Bug#4259). */
function baseName(typed: string): string {
  const trimmed = typed.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** A listing's lines over the data connection, each ending in CRLF; the 150 line names `what` and the session's TYPE. */
export function sendLines(
  send: SendOverData,
  session: SessionState,
  cmd: ActiveCommand,
  lines: readonly string[],
  what: string,
): Promise<HandlerResult> {
  const text = lines.map((line) => `${line}\r\n`).join("");
  // TYPE A's LF to CRLF conversion leaves these CRLFs as they are.
  return send(session, cmd, Readable.from(text === "" ? [] : [Buffer.from(text)]), {
    what,
    ascii: session.transferType === "A",
  });
}

/** Resolves to undefined instead of failing: for the lookups whose failure only means "skip it". */
function maybe<T>(promise: Promise<T>): Promise<T | undefined> {
  return promise.then(
    (value) => value,
    () => undefined,
  );
}

export function createLsModule(options: LsOptions): EngineModule {
  const send = options.send ?? sendOverData;
  const now = options.now ?? Date.now;
  const owners = options.owners ?? sessionOwners;

  /** An entry for the listing, with its symlink target's stat when -F needs it. */
  const entryOf = async (
    fs: SessionFilesystem,
    name: string,
    info: FileInfo,
    path: string,
    flags: ListFlags,
  ): Promise<ListEntry> => {
    if (info.type !== "symlink" || !flags.classify) return { name, info };
    const target = await maybe(fs.stat(path));
    return target === undefined ? { name, info } : { name, info, target };
  };

  /**
   * listdir: a directory's entries sorted byte-wise (unless -U), with `.`
   * and `..` under -a, dotfiles and unsafe symlinks left out.
   */
  const directoryEntries = async (fs: SessionFilesystem, dir: string, flags: ListFlags): Promise<ListEntry[]> => {
    // sreaddir failing (an unreadable directory) lists nothing, as chdir or opendir failing does in listdir.
    const found = await maybe(fs.list(dir));
    if (found === undefined) return [];
    if (flags.all) {
      const dots = [
        { ...(await fs.stat(dir)), name: "." },
        { ...(await fs.stat(parentOf(dir))), name: ".." },
      ];
      found.unshift(...dots);
    }
    if (!flags.unsorted) found.sort((a, b) => byteOrder(a.name, b.name));
    const entries: ListEntry[] = [];
    for (const info of found) {
      if (hiddenByDot(info.name, flags)) continue;
      if (info.type === "symlink" && info.linkTarget !== undefined && unsafeSymlink(info.linkTarget, dir)) continue;
      // Only -F looks past a symlink; everything else is already known (and a big directory has many entries).
      entries.push(
        info.type === "symlink" && flags.classify
          ? await entryOf(fs, info.name, info, virtualPath(dir, info.name), flags)
          : { name: info.name, info },
      );
    }
    return entries;
  };

  /** glob(3) in the last component: matches sorted, as typed before the pattern; none when the pattern is elsewhere. */
  const globPaths = async (fs: SessionFilesystem, session: SessionState, pattern: string): Promise<string[]> => {
    const slash = pattern.lastIndexOf("/");
    const prefix = slash < 0 ? "" : pattern.slice(0, slash + 1);
    const last = pattern.slice(slash + 1);
    if (isGlob(prefix) || last === "") return [];
    const dir = virtualPath(session.cwd, prefix === "" ? "." : prefix, session.home);
    const names = ((await maybe(fs.list(dir))) ?? []).map((info) => info.name).filter((name) => globMatch(last, name));
    return names.sort(byteOrder).map((name) => `${prefix}${name}`);
  };

  /**
   * dolist for LIST and STAT: the working directory's entries; or a target's:
   * a directory's contents (unless -d), anything else as one line named as
   * typed; glob matches each as one line.
   */
  const dolist = async (
    fs: SessionFilesystem,
    session: SessionState,
    target: string,
    flags: ListFlags,
    sort: boolean,
  ): Promise<Listing> => {
    const nowMs = now();
    const names = owners(session);
    const format = (entries: readonly ListEntry[]): string[] =>
      (sort ? sortForOutput(entries, flags) : entries).flatMap((entry) => listLine(entry, flags, names, nowMs) ?? []);
    if (target === "") {
      // listfile(".") under -d: a dotfile like any other, shown only with -a.
      if (flags.directory)
        return { lines: hiddenByDot(".", flags) ? [] : format([{ name: ".", info: await fs.stat(session.cwd) }]) };
      return { lines: format(await directoryEntries(fs, session.cwd, flags)) };
    }
    let paths = [target];
    if (isGlob(target)) {
      const matches = await globPaths(fs, session, target);
      if (matches.length > 0) paths = matches;
    } else {
      try {
        await fs.stat(virtualPath(session.cwd, target, session.home));
      } catch (error) {
        return fsErrorReply(target, error, "450");
      }
    }
    const files: ListEntry[] = [];
    let contents: ListEntry[] = [];
    for (const typed of paths) {
      const path = virtualPath(session.cwd, typed, session.home);
      const info = await maybe(fs.lstat(path));
      if (info === undefined) continue;
      const followed = info.type === "symlink" ? ((await maybe(fs.stat(path)))?.type ?? "symlink") : info.type;
      if (flags.directory || followed !== "dir" || typed !== target) {
        if (hiddenByDot(baseName(typed), flags)) continue;
        if (info.type === "symlink" && info.linkTarget !== undefined && unsafeSymlink(info.linkTarget, session.cwd))
          continue;
        files.push(await entryOf(fs, typed, info, path, flags));
      } else {
        contents = await directoryEntries(fs, path, flags);
      }
    }
    return { lines: [...format(files), ...format(contents)] };
  };

  /** have_options: with one word only, a word naming an existing path is a path, not options. */
  const hasOptions = async (
    fs: SessionFilesystem,
    cmd: ActiveCommand,
    session: SessionState,
    arg: string,
  ): Promise<boolean> => {
    if (cmd.argv.length > 2) return true;
    return (await maybe(fs.stat(virtualPath(session.cwd, arg, session.home)))) === undefined;
  };

  /**
   * sendline: CRLF line ends written by mod_ls itself (no conversion), and
   * the 150 line saying the session's TYPE, as pr_data_open words it before
   * mod_ls sets SF_ASCII_OVERRIDE.
   */
  const sendListing = (cmd: ActiveCommand, session: SessionState, lines: readonly string[]): Promise<HandlerResult> =>
    sendLines(send, session, cmd, lines, "file list");

  const refuse = (cmd: ActiveCommand, reply: { readonly code: string; readonly message: string }): HandlerResult => {
    cmd.addError(reply.code, reply.message);
    return HandlerResults.ERROR;
  };

  const withFs = (
    run: (cmd: ActiveCommand, session: SessionState, fs: SessionFilesystem) => Promise<HandlerResult>,
  ): CommandHandler["run"] => {
    return async (cmd, session) => {
      if (session.fs === undefined) return refuse(cmd, { code: "450", message: `${cmd.arg}: Permission denied` });
      try {
        return await run(cmd, session, session.fs);
      } catch (error) {
        return refuse(cmd, fsErrorReply(cmd.arg, error, "450"));
      }
    };
  };

  const list = withFs(async (cmd, session, fs) => {
    let flags: ListFlags = { ...NO_FLAGS, long: true };
    let target = cmd.arg;
    if (await hasOptions(fs, cmd, session, cmd.arg))
      ({ flags, rest: target } = parseListOptions(cmd.arg, "LIST", flags));
    commandTarget(cmd, session, target);
    const listing = await dolist(fs, session, target, flags, true);
    if (!("lines" in listing)) {
      // dolist opens the data connection before it looks: the 150, an empty listing, then the 450 (the 226 is dropped).
      if ((await sendListing(cmd, session, [])) === HandlerResults.ERROR) return HandlerResults.ERROR;
      return refuse(cmd, listing);
    }
    return sendListing(cmd, session, listing.lines);
  });

  /** nlstdir: a directory's names (with the directory before them unless it is `.`), readdir order. */
  const nlstDirectory = async (
    fs: SessionFilesystem,
    session: SessionState,
    dir: string,
    flags: ListFlags,
  ): Promise<string[]> => {
    const path = virtualPath(session.cwd, dir, session.home);
    const found = await maybe(fs.list(path));
    if (found === undefined) return [];
    if (flags.all)
      found.unshift({ ...(await fs.stat(path)), name: "." }, { ...(await fs.stat(parentOf(path))), name: ".." });
    const current = dir === "." || dir === "" || dir === "./";
    const lines: string[] = [];
    for (const info of found) {
      if (hiddenByDot(info.name, flags)) continue;
      // file_mode2: a symlink whose target cannot be stat'ed is left out.
      if (info.type === "symlink" && (await maybe(fs.stat(virtualPath(path, info.name)))) === undefined) continue;
      lines.push(current || flags.one ? info.name : joinName(dir, info.name));
    }
    return lines;
  };

  /** nlstfile: the name as given, or under -1 its last component. */
  const nlstName = (name: string, flags: ListFlags): string => {
    const slash = name.lastIndexOf("/");
    return flags.one && slash >= 0 && name.length > 1 ? name.slice(slash + 1) : name;
  };

  const nlst = withFs(async (cmd, session, fs) => {
    let target = cmd.argv.length === 1 ? "." : cmd.arg;
    let flags = NO_FLAGS;
    if (await hasOptions(fs, cmd, session, target)) ({ flags, rest: target } = parseListOptions(target, "NLST", flags));
    // Bug#4069: options and nothing else name the working directory.
    if (target === "") target = ".";
    commandTarget(cmd, session, target);
    let lines: string[];
    if (isGlob(target)) {
      let matches = await globPaths(fs, session, target);
      if (matches.length === 0) {
        if ((await maybe(fs.stat(virtualPath(session.cwd, target, session.home)))) === undefined) {
          return refuse(cmd, { code: "450", message: "No files found" });
        }
        matches = [target];
      }
      lines = [];
      for (const match of matches) {
        const info = await maybe(fs.stat(virtualPath(session.cwd, match, session.home)));
        if (info?.type === "dir" || info?.type === "file") lines.push(nlstName(match, flags));
      }
    } else {
      if (!isDotDir(target)) target = cleanPath(target);
      let info: FileInfo;
      try {
        info = await fs.stat(virtualPath(session.cwd, target, session.home));
      } catch (error) {
        return refuse(cmd, fsErrorReply(cmd.arg, error, "450"));
      }
      if (info.type === "file") lines = [nlstName(target, flags)];
      else if (info.type === "dir") lines = await nlstDirectory(fs, session, target, flags);
      else return refuse(cmd, { code: "450", message: `${cmd.arg}: Not a regular file` });
    }
    return sendListing(cmd, session, lines);
  });

  /** ls_stat without a path: the session's status. */
  const sessionStatus = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    cmd.addResponse("211", `Status of '${options.serverName()}'`);
    cmd.addResponse(CONTINUATION, `Connected from ${remoteName(session.remoteAddress)} (${session.remoteAddress})`);
    cmd.addResponse(CONTINUATION, `Logged in as ${session.user ?? ""}`);
    cmd.addResponse(
      CONTINUATION,
      `TYPE: ${session.transferType === "A" ? "ASCII" : "BINARY"}, STRUcture: File, Mode: Stream`,
    );
    // One command at a time: STAT never runs while a transfer does.
    cmd.addResponse(CONTINUATION, "No data connection");
    cmd.addResponse(CONTINUATION, "End of status");
    return HandlerResults.HANDLED;
  };

  const statPath = withFs(async (cmd, session, fs) => {
    const typed = skipFirstOptionWord(cmd.arg);
    const path = typed === "" ? "." : typed;
    const target = commandTarget(cmd, session, path);
    let info: FileInfo;
    try {
      info = await fs.lstat(target);
    } catch (error) {
      return refuse(cmd, fsErrorReply(path, error, "450"));
    }
    const code = info.type === "dir" ? "212" : "213";
    // STAT lists like `ls -la`, in directory order, whatever options were sent.
    const listing = await dolist(fs, session, path, { ...NO_FLAGS, all: true, long: true }, false);
    if (!("lines" in listing)) return refuse(cmd, listing);
    cmd.addResponse(code, `Status of ${path}:`);
    for (const line of listing.lines) cmd.addResponse(code, line);
    cmd.addResponse(code, "End of status");
    return HandlerResults.HANDLED;
  });

  const stat: CommandHandler["run"] = (cmd, session) =>
    cmd.argv.length === 1 ? sessionStatus(cmd, session) : statPath(cmd, session);

  return {
    name: "mod_ls.c",
    kind: "static",
    commands: [
      { command: "NLST", phase: Phases.CMD, run: nlst },
      { command: "LIST", phase: Phases.CMD, run: list },
      { command: "STAT", phase: Phases.CMD, run: stat },
    ],
    siteCommands: [],
    directives: [],
    features: [],
    help: HELP,
  };
}
