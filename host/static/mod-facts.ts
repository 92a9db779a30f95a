/**
 * mod_facts.c, compiled in: RFC 3659's MLSD (facts_mlsd), MLST (facts_mlst),
 * MFMT (facts_mfmt) and OPTS MLST (facts_opts_mlst), over the session's jail.
 *
 * Where dsod differs: MFF is not implemented and not advertised; the FEAT
 * line is the default facts' (`OPTS MLST` changes what a session's MLSx
 * lines carry, not the FEAT text every session shares); FactsAdvertise,
 * FactsDefault and FactsOptions are not directives here.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { DEFAULT_FACTS, factsLine, mlstFeature, optsMlst, parseTimeVal } from "../fs/facts.js";
import type { FactSet, FactsEntry, FactsIdentity } from "../fs/facts.js";
import { FsError, fsErrorReply } from "../fs/session-fs.js";
import type { FileInfo, SessionFilesystem } from "../fs/session-fs.js";
import { strerror } from "../fs/strerror.js";
import { virtualPath } from "../fs/virtual-path.js";
import { sendOverData } from "../ftp/transfer.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, HelpEntry, SessionState } from "../modules/module-api.js";
import { invalidParameters, literalTarget } from "./core-files.js";
import { sendLines } from "./mod-ls.js";
import type { SendOverData } from "./mod-ls.js";

export interface FactsOptions {
  /** Whose perm, UNIX.ownername and UNIX.groupname the facts show; by default the session's account. */
  readonly identity?: (session: SessionState) => FactsIdentity;
  /** Sends MLSD's lines over the data connection (a test seam; host/ftp/transfer.ts otherwise). */
  readonly send?: SendOverData;
}

/** facts_init's help entries. */
const HELP: readonly HelpEntry[] = [
  { command: "MLSD", text: "[<sp> pathname]" },
  { command: "MLST", text: "[<sp> pathname]" },
];

/** facts_sess_init's FEAT lines (without MFF, which dsod does not implement). */
export const FACTS_FEATURES: readonly string[] = ["MFMT", "TVFS", mlstFeature(DEFAULT_FACTS)];

/** session.uid, gid and names from the logged-in account (no supplementary gids: AuthUserFile names groups, not ids). */
export function sessionIdentity(session: SessionState): FactsIdentity {
  const account = session.account;
  if (account === undefined) return { uid: -1, gid: -1, gids: [], user: session.user ?? "", group: "" };
  return {
    uid: account.uid,
    gid: account.gid,
    gids: [],
    user: account.name,
    group: account.groups[0] ?? String(account.gid),
  };
}

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

/** Resolves to undefined instead of failing. */
function maybe<T>(promise: Promise<T>): Promise<T | undefined> {
  return promise.then(
    (value) => value,
    () => undefined,
  );
}

export function createFactsModule(options: FactsOptions = {}): EngineModule {
  const identity = options.identity ?? sessionIdentity;
  const send = options.send ?? sendOverData;
  /** facts_opts, per session: what OPTS MLST selected. */
  const selections = new WeakMap<SessionState, FactSet>();
  const selected = (session: SessionState): FactSet => selections.get(session) ?? DEFAULT_FACTS;

  /** The entry for `info` found at `path`; a symlink needs its target's stat (undefined when it has none). */
  const entryOf = async (
    fs: SessionFilesystem,
    info: FileInfo,
    name: string,
    path: string,
    shown: string,
  ): Promise<FactsEntry | undefined> => {
    if (info.type !== "symlink") return { info, name, path: shown };
    const target = await maybe(fs.stat(path));
    return target === undefined ? undefined : { info, target, name, path: shown };
  };

  const withFs =
    (
      run: (cmd: ActiveCommand, session: SessionState, fs: SessionFilesystem) => Promise<HandlerResult>,
    ): CommandHandler["run"] =>
    async (cmd, session) => {
      if (session.fs === undefined) return refuse(cmd, "550", `${cmd.arg}: ${strerror("EACCES")}`);
      return run(cmd, session, session.fs);
    };

  const mlsd = withFs(async (cmd, session, fs) => {
    const typed = cmd.argv.length !== 1 ? cmd.arg : session.cwd;
    const dir = literalTarget(cmd, session, typed);
    let found: FileInfo[];
    try {
      const info = await fs.stat(dir);
      if (info.type !== "dir") return refuse(cmd, "550", `'${typed}' is not a directory`);
      found = await fs.list(dir);
      // readdir's `.` and `..` come first; lstat of `dir/.` and `dir/..` are the directories themselves.
      found.unshift({ ...info, name: "." }, { ...(await fs.lstat(virtualPath(dir, ".."))), name: ".." });
    } catch (error) {
      const reply = fsErrorReply(typed, error);
      return refuse(cmd, reply.code, reply.message);
    }
    const who = identity(session);
    const facts = selected(session);
    const lines: string[] = [];
    for (const info of found) {
      // An entry that cannot be described (a symlink without a target) is left out.
      const entry = await entryOf(fs, info, info.name, virtualPath(dir, info.name), info.name);
      if (entry !== undefined) lines.push(factsLine(entry, facts, who, { cdir: true, showSymlinks: true }));
    }
    return sendLines(send, session, cmd, lines, "MLSD");
  });

  const mlst = withFs(async (cmd, session, fs) => {
    const typed = cmd.argv.length !== 1 ? cmd.arg : session.cwd;
    const path = literalTarget(cmd, session, typed);
    const info = await maybe(fs.lstat(path));
    // ShowSymlinks is not set (facts_mlst reads it without a default): a symlink is described by its target's type.
    const entry = info === undefined ? undefined : await entryOf(fs, info, path, path, path);
    if (entry === undefined) return refuse(cmd, "550", `'${typed}' cannot be listed`);
    cmd.addResponse("250", `Start of list for ${typed}`);
    cmd.addResponse("", factsLine(entry, selected(session), identity(session), { cdir: false, showSymlinks: false }));
    cmd.addResponse("250", "End of list");
    return HandlerResults.HANDLED;
  });

  const mfmt = withFs(async (cmd, session, fs) => {
    if (cmd.argv.length < 3) return invalidParameters(cmd);
    const space = cmd.arg.indexOf(" ");
    if (space < 0) return refuse(cmd, "501", "Invalid command syntax");
    const stamp = cmd.argv[1] as string;
    const typed = cmd.arg.slice(space + 1);
    const path = literalTarget(cmd, session, typed);
    if (stamp.length < 14) return refuse(cmd, "501", `${stamp}: ${strerror("EINVAL")}`);
    // Fractions of a second are ignored ("unsupported timestamp precision").
    const timestamp = stamp.includes(".") ? stamp.slice(0, stamp.indexOf(".")) : stamp;
    const mtime = parseTimeVal(timestamp);
    if (mtime === undefined) return refuse(cmd, "501", `${typed}: ${strerror("EINVAL")}`);
    try {
      await fs.setMtime(path, mtime);
    } catch (error) {
      // ENOENT is 550, anything else 501; a way out of the jail is a name that is not there, as under chroot.
      const missing = error instanceof FsError && (error.errno === "ENOENT" || error.escape);
      const reply = fsErrorReply(typed, error, missing ? "550" : "501");
      return refuse(cmd, reply.code, reply.message);
    }
    cmd.addResponse("213", `Modify=${timestamp}; ${typed}`);
    return HandlerResults.HANDLED;
  });

  const optsMlstHandler: CommandHandler["run"] = (cmd, session) => {
    const choice = optsMlst(cmd.argv.slice(1));
    if (choice === undefined) return refuse(cmd, "501", `'${cmd.name.replaceAll("_", " ")}' not understood`);
    selections.set(session, choice.selected);
    cmd.addResponse("200", choice.reply);
    return HandlerResults.HANDLED;
  };

  return {
    name: "mod_facts.c",
    kind: "static",
    commands: [
      { command: "MFMT", phase: Phases.CMD, run: mfmt },
      { command: "MLSD", phase: Phases.CMD, run: mlsd },
      { command: "MLST", phase: Phases.CMD, run: mlst },
      { command: "OPTS_MLST", phase: Phases.CMD, requiresAuth: false, run: optsMlstHandler },
    ],
    siteCommands: [],
    directives: [],
    features: FACTS_FEATURES,
    help: HELP,
  };
}
