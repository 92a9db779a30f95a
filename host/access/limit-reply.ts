/**
 * What proftpd 1.3.8 answers when <Limit> refuses a command. Each handler
 * calls dir_check() itself and words its own refusal, so the texts differ:
 * some name the errno that check_limit() left (EPERM, "Operation not
 * permitted"), some set EACCES ("Permission denied"), CWD says what the
 * CDPath lookup after it left ("No such file or directory"). Pure: the
 * generation's rules, the session and the command in, a reply or nothing out.
 */
import path from "node:path";
import { isAllowed, limitsConcern, loginAllowed } from "./limit.js";
import type { LimitRules, LimitSubject } from "./limit.js";

/** A refusal, in the shape of the dispatcher's Refusal. */
export interface LimitRefusal {
  readonly code: string;
  readonly message: string;
}

/** What the checks need of a session (SessionState has all of it). */
export interface LimitSession {
  readonly user: string | undefined;
  readonly account: { readonly home: string; readonly groups: readonly string[] } | undefined;
  /** The working directory inside the jail. */
  readonly cwd: string;
}

/** Which path a command is checked against. */
type Where = "target" | "cwd" | "parent";

/**
 * proftpd checks the argument count (CHECK_CMD_ARGS, CHECK_CMD_MIN_ARGS)
 * before <Limit>: a command with the wrong count gets its handler's 501, so
 * limitReply leaves it alone. `none`: no argument; `some`: one at least.
 */
type Args = "none" | "some" | "any";

interface Spec {
  readonly where: Where;
  readonly args: Args;
  readonly reply: (name: string, arg: string, cwd: string) => LimitRefusal;
}

const EPERM = "Operation not permitted";
const EACCES = "Permission denied";
const ENOENT = "No such file or directory";

function spec(where: Where, args: Args, reply: Spec["reply"]): Spec {
  return { where, args, reply };
}

const argEperm = spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${EPERM}` }));
const argEacces = spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${EACCES}` }));
const facts = (args: Args): Spec => spec("target", args, () => ({ code: "550", message: "Unable to handle command" }));
const dataEperm = (args: Args): Spec => spec("cwd", args, (name) => ({ code: "501", message: `${name}: ${EPERM}` }));
const tls = spec("cwd", "any", () => ({ code: "534", message: "Unwilling to accept security parameters" }));

/** The commands whose handlers in proftpd 1.3.8 consult <Limit>, with their refusal (the function mirrored in each comment). */
const SPECS: ReadonlyMap<string, Spec> = new Map([
  // core_pwd
  ["PWD", spec("cwd", "none", (name) => ({ code: "550", message: `${name}: ${EACCES}` }))],
  ["XPWD", spec("cwd", "none", (name) => ({ code: "550", message: `${name}: ${EACCES}` }))],
  // core_chdir: the failed check sends it through the CDPath lookup, whose find_config leaves ENOENT.
  ["CWD", spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${ENOENT}` }))],
  ["XCWD", spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${ENOENT}` }))],
  // core_cdup is core_chdir(cmd, "..").
  ["CDUP", spec("parent", "none", () => ({ code: "550", message: `..: ${ENOENT}` }))],
  ["XCUP", spec("parent", "none", () => ({ code: "550", message: `..: ${ENOENT}` }))],
  // core_mkd, core_rmd
  ["MKD", argEacces],
  ["XMKD", argEacces],
  ["RMD", argEacces],
  ["XRMD", argEacces],
  // core_dele, core_rnfr, core_rnto, core_mdtm, core_size
  ["DELE", argEperm],
  ["RNFR", argEperm],
  ["RNTO", argEperm],
  ["MDTM", argEperm],
  ["SIZE", argEperm],
  // xfer_pre_retr, xfer_pre_stor (APPE goes through it)
  ["RETR", argEperm],
  ["STOR", argEperm],
  ["APPE", argEperm],
  // xfer_pre_stou names the unique file it made; dsod refuses before there is one, so the reply names the command.
  ["STOU", spec("cwd", "any", (name) => ({ code: "550", message: `${name}: ${EPERM}` }))],
  // ls_nlst
  [
    "NLST",
    spec("target", "any", (_name, arg, cwd) => ({ code: "450", message: `${arg === "" ? cwd : arg}: ${EPERM}` })),
  ],
  // ls_stat without a path; with one it lists what <Limit> lets through, like LIST (see limitAllows).
  ["STAT", spec("cwd", "none", (name) => ({ code: "500", message: `${name}: ${EPERM}` }))],
  // facts_mlsd, facts_mlst, facts_mff, facts_mfmt
  ["MLSD", facts("any")],
  ["MLST", facts("any")],
  ["MFF", facts("some")],
  ["MFMT", facts("some")],
  // core_help
  ["HELP", spec("cwd", "any", (name) => ({ code: "501", message: `${name}: ${EACCES}` }))],
  // core_noop
  ["NOOP", spec("cwd", "any", () => ({ code: "550", message: EPERM }))],
  // core_feat
  ["FEAT", spec("cwd", "none", (name) => ({ code: "550", message: `${name}: ${EPERM}` }))],
  // core_pasv, core_epsv, core_port, core_eprt
  ["PASV", dataEperm("none")],
  ["EPSV", dataEperm("any")],
  ["PORT", dataEperm("some")],
  ["EPRT", dataEperm("some")],
  // mod_tls.c tls_prot, tls_ccc
  ["PROT", tls],
  ["CCC", tls],
]);

/** core_opts checks `OPTS_<name>`; mod_site.c checks `SITE_CHMOD`, `SITE_CHGRP`, `SITE_HELP`. */
const SUBCOMMAND_SPECS: ReadonlyMap<string, Spec> = new Map([
  // core_chmod, core_chgrp: mod_site.c answers with the whole SITE argument.
  ["SITE_CHMOD", spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${EACCES}` }))],
  ["SITE_CHGRP", spec("target", "some", (_name, arg) => ({ code: "550", message: `${arg}: ${EACCES}` }))],
  // site_help: "Returning 501 is the best we can do."
  ["SITE_HELP", spec("cwd", "any", () => ({ code: "501", message: `HELP: ${EACCES}` }))],
]);

function firstWord(arg: string): string {
  const space = arg.indexOf(" ");
  return space < 0 ? arg : arg.slice(0, space);
}

function argsFit(args: Args, arg: string): boolean {
  return args === "any" || (args === "none") === (arg === "");
}

/** The real path proftpd matches <Directory> against: the chroot, then the path inside it. */
export function hostPath(jailRoot: string, virtualPath: string): string {
  const root = jailRoot.replace(/\/+$/, "");
  return virtualPath === "/" ? root || "/" : `${root}${virtualPath}`;
}

function subjectOf(session: LimitSession): LimitSubject {
  if (session.user === undefined) return { user: undefined, groups: undefined, home: undefined };
  return { user: session.user, groups: session.account?.groups ?? [], home: session.account?.home };
}

/** The name checked and how to refuse, for a command line; undefined for commands proftpd never limits. */
function specFor(name: string, arg: string): { check: string; spec: Spec; replyArg: string } | undefined {
  if (name === "SITE") {
    const check = `SITE_${firstWord(arg).toUpperCase()}`;
    const found = SUBCOMMAND_SPECS.get(check);
    if (found === undefined) return undefined;
    const rest = arg.slice(firstWord(arg).length).trim();
    return argsFit(found.args, rest) ? { check, spec: found, replyArg: arg } : undefined;
  }
  if (name === "OPTS") {
    const option = firstWord(arg);
    if (option === "") return undefined;
    // core_opts: "OPTS_" joined to the option as the client wrote it (compared case-insensitively).
    return {
      check: `OPTS_${option}`,
      spec: spec("cwd", "any", () => ({ code: "550", message: `OPTS ${option}: ${EACCES}` })),
      replyArg: arg,
    };
  }
  const found = SPECS.get(name);
  if (found === undefined || !argsFit(found.args, arg)) return undefined;
  return { check: name, spec: found, replyArg: arg };
}

/**
 * What proftpd answers when <Limit> refuses this command, or undefined when
 * it may run (or is one proftpd never limits: USER, PASS, QUIT, TYPE, REST...).
 * `virtualPath` is the path the command names inside the jail (the
 * dispatcher's ActiveCommand.path); `jailRoot` is the host directory the
 * session's jail is rooted at (`/` without DefaultRoot). LIST, and STAT with
 * a path, are not refused here: proftpd lists what is allowed (limitAllows).
 */
export function limitReply(
  rules: LimitRules,
  session: LimitSession,
  commandName: string,
  arg: string,
  virtualPath: string | undefined,
  jailRoot: string,
): LimitRefusal | undefined {
  const name = commandName.toUpperCase();
  const found = specFor(name, arg);
  if (found === undefined || !limitsConcern(rules, found.check)) return undefined;
  const where =
    found.spec.where === "cwd"
      ? session.cwd
      : found.spec.where === "parent"
        ? path.posix.dirname(session.cwd)
        : (virtualPath ?? session.cwd);
  const query = { ...subjectOf(session), command: found.check, path: hostPath(jailRoot, where) };
  return isAllowed(rules, query) ? undefined : found.spec.reply(name, found.replyArg, session.cwd);
}

/**
 * For listings (LIST, NLST entries, STAT with a path, MLSD entries): whether
 * <Limit> lets `commandName` see `virtualPath`. proftpd's mod_ls skips a
 * refused target or entry silently, so a refused LIST is an empty listing.
 */
export function limitAllows(
  rules: LimitRules,
  session: LimitSession,
  commandName: string,
  virtualPath: string,
  jailRoot: string,
): boolean {
  const command = commandName.toUpperCase();
  if (!limitsConcern(rules, command)) return true;
  return isAllowed(rules, { ...subjectOf(session), command, path: hostPath(jailRoot, virtualPath) });
}

/**
 * mod_auth.c after the password is accepted: a <Limit LOGIN> that refuses
 * the user turns the login into `530 Login incorrect.`, logged as
 * `USER <name> (Login failed): Limit access denies login`, and counts
 * towards MaxLoginAttempts like a wrong password.
 */
export function loginReply(
  rules: LimitRules,
  account: { readonly name: string; readonly home: string; readonly groups: readonly string[] },
): LimitRefusal | undefined {
  const allowed = loginAllowed(rules, { user: account.name, groups: account.groups, home: account.home });
  return allowed ? undefined : { code: "530", message: "Login incorrect." };
}
