/**
 * Which file or directory an FTP command names, as an absolute path inside the
 * session's jail: what ActiveCommand.path gives handlers (guest modules read it
 * through the host ABI) and what <Limit> inside <Directory> matches against.
 * Pure: a session's working directory and home, and a command line, in.
 */
import { virtualPath } from "../fs/virtual-path.js";
import type { CommandLine } from "./command-line.js";

/** Commands whose whole argument is one path (RFC 959, RFC 3659). */
const PATH_ARGUMENT = new Set([
  "RETR",
  "STOR",
  "APPE",
  "DELE",
  "CWD",
  "XCWD",
  "MKD",
  "XMKD",
  "RMD",
  "XRMD",
  "RNFR",
  "RNTO",
  "SIZE",
  "MDTM",
]);

/**
 * Commands whose proftpd handler interpolates `~` as the user's home
 * (dir_canonical_path in MKD, RMD, DELE, RNFR, RNTO; dir_best_path in
 * mod_xfer.c; mod_ls.c's glob); the others (CWD, SIZE, MDTM, the facts
 * commands) take `~` as a name.
 */
const TILDE_EXPANDED = new Set([
  "RETR",
  "STOR",
  "APPE",
  "MKD",
  "XMKD",
  "RMD",
  "XRMD",
  "DELE",
  "RNFR",
  "RNTO",
  "LIST",
  "NLST",
  "STAT",
]);

/** Commands that name the working directory when given no path. */
const DIRECTORY_DEFAULT = new Set(["MLSD", "MLST", "LIST", "NLST", "STAT"]);

/** SITE subcommands whose last words are a path, after a mode or group word (mod_site.c). */
const SITE_PATH_AFTER_ONE_WORD = new Set(["CHMOD", "CHGRP"]);

export interface PathContext {
  readonly cwd: string;
  /** The user's home inside the jail (`/` when DefaultRoot ~ jails the session there). */
  readonly home: string;
}

/** `LIST -la dir`: leading words that start with `-` are options (mod_ls.c), the rest is the path. */
function withoutListOptions(arg: string): string {
  let rest = arg;
  while (rest.startsWith("-")) {
    const space = rest.indexOf(" ");
    if (space < 0) return "";
    rest = rest.slice(space + 1).trimStart();
  }
  return rest;
}

/** The text after the first `count` space-separated words of `arg`, or undefined when there is none. */
function afterWords(arg: string, count: number): string | undefined {
  let rest = arg;
  for (let i = 0; i < count; i++) {
    const space = rest.indexOf(" ");
    if (space < 0) return undefined;
    rest = rest.slice(space + 1);
  }
  return rest === "" ? undefined : rest;
}

/** The path `line` names, or undefined for a command that names none (or STOU, whose handler picks it). */
export function commandPath(context: PathContext, line: CommandLine): string | undefined {
  const name = line.name;
  const cwd = context.cwd;
  const home = TILDE_EXPANDED.has(name) ? context.home : undefined;
  if (PATH_ARGUMENT.has(name)) return line.arg === "" ? undefined : virtualPath(cwd, line.arg, home);
  if (DIRECTORY_DEFAULT.has(name)) {
    const typed = name === "LIST" || name === "NLST" ? withoutListOptions(line.arg) : line.arg;
    return virtualPath(cwd, typed, home);
  }
  switch (name) {
    case "CDUP":
    case "XCUP":
      return virtualPath(cwd, "..");
    case "PWD":
    case "XPWD":
      return cwd;
    case "MFMT": {
      const typed = afterWords(line.arg, 1);
      return typed === undefined ? undefined : virtualPath(cwd, typed, home);
    }
    case "SITE": {
      const sub = (line.argv[1] ?? "").toUpperCase();
      if (!SITE_PATH_AFTER_ONE_WORD.has(sub)) return undefined;
      const typed = afterWords(line.arg, 2);
      return typed === undefined ? undefined : virtualPath(cwd, typed, home);
    }
    default:
      return undefined;
  }
}
