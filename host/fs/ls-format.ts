/**
 * proftpd mod_ls.c's listings as pure functions: the `ls -l` line of
 * listfile(), the option letters of parse_list_opts(), the dotfile and unsafe
 * symlink rules, and outputfiles()'s -t/-S sorting. Values in, text out; the
 * handlers in host/static/mod-ls.ts feed them what the session's filesystem
 * returned.
 */
import type { FileInfo } from "./session-fs.js";
import { virtualPath } from "./virtual-path.js";

/** uid → name and gid → name (pr_auth_uid2name / pr_auth_gid2name): the number itself when unknown. */
export interface OwnerNames {
  userName(uid: number): string;
  groupName(gid: number): string;
}

/** Names nobody: every owner shown as its number. */
export const NUMERIC_OWNERS: OwnerNames = {
  userName: (uid) => String(uid),
  groupName: (gid) => String(gid),
};

/** The listing options proftpd acts on (mod_ls.c's opt_* flags). */
export interface ListFlags {
  /** -a: dotfiles, `.` and `..` included. */
  readonly all: boolean;
  /** -A: dotfiles, but not `.` and `..`. */
  readonly almostAll: boolean;
  /** -l: the long format (LIST's default). */
  readonly long: boolean;
  /** -1: names only. */
  readonly one: boolean;
  /** -d: a directory is listed itself, not its contents. */
  readonly directory: boolean;
  /** -F: `/` after directories, `*` after executables, `@` after symlinks. */
  readonly classify: boolean;
  /** -n: owner and group as numbers. */
  readonly numeric: boolean;
  /** -h: sizes of 1000 bytes and more in k, M, G... */
  readonly human: boolean;
  /** -t: newest first. */
  readonly byTime: boolean;
  /** -S: largest first. */
  readonly bySize: boolean;
  /** -r: -t and -S reversed. */
  readonly reverse: boolean;
  /** -U: directory order, unsorted. */
  readonly unsorted: boolean;
}

export const NO_FLAGS: ListFlags = {
  all: false,
  almostAll: false,
  long: false,
  one: false,
  directory: false,
  classify: false,
  numeric: false,
  human: false,
  byTime: false,
  bySize: false,
  reverse: false,
  unsorted: false,
};

export type ListCommand = "LIST" | "NLST" | "STAT";

/** PR_ISSPACE: isspace(3) in the C locale. */
function isSpace(ch: string | undefined): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\v" || ch === "\f" || ch === "\r";
}

function isAlnum(ch: string | undefined): boolean {
  return ch !== undefined && /^[A-Za-z0-9]$/.test(ch);
}

/** One option letter, as parse_list_opts applies it for `command`; letters it does not know change nothing. */
function applyLetter(flags: ListFlags, letter: string, command: ListCommand): ListFlags {
  const notNlst = command !== "NLST";
  switch (letter) {
    case "1":
      return command === "STAT" ? flags : { ...flags, one: true, long: false };
    case "A":
      return { ...flags, almostAll: true };
    case "a":
      return { ...flags, all: true };
    case "d":
      return { ...flags, directory: true };
    case "F":
      return notNlst ? { ...flags, classify: true } : flags;
    case "h":
      return notNlst ? { ...flags, human: true } : flags;
    case "l":
      return notNlst ? { ...flags, long: true, one: false } : flags;
    case "n":
      return notNlst ? { ...flags, numeric: true } : flags;
    case "r":
      return { ...flags, reverse: true };
    case "S":
      return { ...flags, bySize: true };
    case "t":
      return { ...flags, byTime: true };
    case "U":
      return { ...flags, unsorted: true, bySize: false, byTime: false };
    default:
      // -B, -C, -c, -L, -R and -u are proftpd's too; dsod lists without them.
      return flags;
  }
}

/**
 * parse_list_opts: leading `-xyz` words of `arg` are options (letters and
 * digits only; anything else ends a word), the rest is the path. After the
 * last option word, white space is skipped, except that of two spaces only
 * one goes (so a name may start with a space).
 */
export function parseListOptions(
  arg: string,
  command: ListCommand,
  initial: ListFlags,
): { flags: ListFlags; rest: string } {
  let flags = initial;
  let at = 0;
  let ptr = 0;
  while (isSpace(arg[ptr])) ptr++;
  if (arg[ptr] === "-") at = ptr;
  while (arg[at] === "-") {
    at++;
    while (isAlnum(arg[at])) {
      flags = applyLetter(flags, arg[at] as string, command);
      at++;
    }
    ptr = at;
    while (ptr < arg.length && isSpace(arg[ptr])) ptr++;
    if (arg[ptr] === "-") {
      at = ptr;
    } else if (at < arg.length && arg[at + 1] === " ") {
      at++;
      break;
    } else {
      at = ptr;
      break;
    }
  }
  return { flags, rest: arg.slice(at) };
}

/** ls_stat: STAT takes no options; a first word starting with `-` is skipped, then the white space after it. */
export function skipFirstOptionWord(arg: string): string {
  let at = 0;
  if (arg.startsWith("-")) while (at < arg.length && !isSpace(arg[at])) at++;
  while (at < arg.length && isSpace(arg[at])) at++;
  return arg.slice(at);
}

/** is_dotdir. */
export function isDotDir(name: string): boolean {
  return name === "." || name === "..";
}

/** Whether a name is left out: dotfiles unless -a, or -A for all but `.` and `..`. */
export function hiddenByDot(name: string, flags: ListFlags): boolean {
  return name.startsWith(".") && !flags.all && (!flags.almostAll || isDotDir(name));
}

/**
 * is_safe_symlink's refusal (Bug#3719): a symlink to `.`, `..` or something
 * that cleans up to the listed directory or one above it is never listed, so
 * recursive listings cannot loop. `dir` is the listed directory's virtual path.
 */
export function unsafeSymlink(target: string, dir: string): boolean {
  if (target === "." || target === ".." || target === "./" || target === "../") return true;
  if (target.length >= 2 && target.startsWith(".") && (target.endsWith("/") || target.endsWith("."))) {
    // strncmp(cwd, cleaned, strlen(cleaned)) == 0: the cleaned path is a prefix of the directory.
    return dir.startsWith(virtualPath(dir, target));
  }
  return false;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const UNITS = ["", "k", "M", "G", "T", "P"];

/** The ten-character mode column: type letter, then rwx with s/S/t/T. */
export function modeString(mode: number): string {
  const type = TYPE_LETTERS.get(mode & 0o170000) ?? "?";
  const bit = (mask: number, letter: string): string => (mode & mask ? letter : "-");
  const special = (x: number, s: number, set: string): string => {
    if (mode & x) return mode & s ? set : "x";
    return mode & s ? set.toUpperCase() : "-";
  };
  return (
    type +
    bit(0o400, "r") +
    bit(0o200, "w") +
    special(0o100, 0o4000, "s") +
    bit(0o040, "r") +
    bit(0o020, "w") +
    special(0o010, 0o2000, "s") +
    bit(0o004, "r") +
    bit(0o002, "w") +
    special(0o001, 0o1000, "t")
  );
}

const TYPE_LETTERS: ReadonlyMap<number, string> = new Map([
  [0o100000, "-"],
  [0o120000, "l"],
  [0o140000, "s"],
  [0o060000, "b"],
  [0o020000, "c"],
  [0o010000, "p"],
  [0o040000, "d"],
]);

/** ls_fmt_filesize: `%8lu`, or with -h from 1000 bytes on `%7.1f` and a unit. */
export function sizeColumn(size: number, human: boolean): string {
  if (!human || size < 1000) return String(size).padStart(8);
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1).padStart(7)}${UNITS[unit]}`;
}

/** Half a year, as listfile tells recent files (time of day) from old ones (year). */
const SIX_MONTHS_SECONDS = 180 * 24 * 60 * 60;

/** The date columns in UTC (TimesGMT's default): `Mmm dd hh:mm` within six months, else `Mmm dd  yyyy`. */
export function dateColumns(mtimeMs: number, nowMs: number): string {
  const seconds = Math.floor(mtimeMs / 1000);
  const date = new Date(seconds * 1000);
  const day = String(date.getUTCDate()).padStart(2);
  const time =
    Math.floor(nowMs / 1000) - seconds > SIX_MONTHS_SECONDS
      ? String(date.getUTCFullYear()).padStart(5)
      : `${String(date.getUTCHours()).padStart(2, "0")}:${String(date.getUTCMinutes()).padStart(2, "0")}`;
  return `${MONTHS[date.getUTCMonth()]} ${day} ${time}`;
}

/** One thing to list: the name to show, its lstat, and for -F the type of a symlink's target. */
export interface ListEntry {
  readonly name: string;
  readonly info: FileInfo;
  /** stat of a symlink's target (undefined: dangling, or not looked up). */
  readonly target?: FileInfo;
}

function isExecutable(info: FileInfo): boolean {
  return (info.mode & 0o111) !== 0;
}

/** -F's suffix (listfile): for a symlink in the long format, what its target is. */
function classifySuffix(entry: ListEntry, long: boolean): string {
  const { info } = entry;
  if (info.type === "symlink") {
    if (!long) return "@";
    const target = entry.target;
    if (target === undefined) return "";
    if (target.type === "dir") return "/";
    return isExecutable(target) ? "*" : "";
  }
  if (info.type === "dir") return "/";
  return isExecutable(info) ? "*" : "";
}

/**
 * listfile(): the line for one entry. Long: `%s %3d %-8s %-8s %s %s %2d %s %s`
 * (mode, links, owner, group, size, month, day, time or year, name) and
 * ` -> target` for a symlink; otherwise the name alone, and in the short form
 * only files, directories and symlinks have a line (undefined otherwise).
 */
export function listLine(entry: ListEntry, flags: ListFlags, owners: OwnerNames, nowMs: number): string | undefined {
  const { info } = entry;
  const suffix = flags.classify ? classifySuffix(entry, flags.long) : "";
  if (!flags.long) {
    if (info.type === "other") return undefined;
    return `${entry.name}${suffix}`;
  }
  if (!TYPE_LETTERS.has(info.mode & 0o170000)) return undefined;
  const owner = flags.numeric ? String(info.uid) : owners.userName(info.uid);
  const group = flags.numeric ? String(info.gid) : owners.groupName(info.gid);
  let line =
    `${modeString(info.mode)} ${String(info.nlink).padStart(3)} ${owner.padEnd(8)} ${group.padEnd(8)} ` +
    `${sizeColumn(info.size, flags.human)} ${dateColumns(info.mtimeMs, nowMs)} ${entry.name}`;
  if (info.type === "symlink" && info.linkTarget !== undefined) line += ` -> ${info.linkTarget}`;
  return `${line}${suffix}`;
}

function isSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdfff;
}

/**
 * strcmp on the UTF-8 bytes (sreaddir's dircmp in the C locale), without
 * encoding: UTF-16 code units order as UTF-8 bytes do, except that a
 * surrogate (a character beyond U+FFFF, 4 bytes in UTF-8) sorts after every
 * other character.
 */
export function byteOrder(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = isSurrogate(x);
    if (xs !== isSurrogate(y)) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** outputfiles(): -t newest first, -S largest first, -r reverses them; otherwise as given. Stable. */
export function sortForOutput(entries: readonly ListEntry[], flags: ListFlags): ListEntry[] {
  const sorted = [...entries];
  const direction = flags.reverse ? -1 : 1;
  if (flags.byTime) {
    sorted.sort((a, b) => direction * (Math.floor(b.info.mtimeMs / 1000) - Math.floor(a.info.mtimeMs / 1000)));
  } else if (flags.bySize) {
    sorted.sort((a, b) => direction * (b.info.size - a.info.size));
  }
  return sorted;
}

/** pr_str_is_fnmatch: whether a path has glob characters. */
export function isGlob(text: string): boolean {
  return /[*?[]/.test(text);
}

/**
 * glob(3)'s match of one name against one pattern component: `*`, `?`,
 * `[...]` (with `!`/`^` negation and ranges), `\` escaping; a leading dot
 * must be matched by a dot in the pattern.
 */
export function globMatch(pattern: string, name: string): boolean {
  if (name.startsWith(".") && !pattern.startsWith(".")) return false;
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else if (ch === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i] as string);
    else if (ch === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) {
        source += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, close);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      source += `[${negate ? "^" : ""}${body.replaceAll("\\", "\\\\").replaceAll("]", "\\]")}]`;
      i = close;
    } else source += escapeRegExp(ch);
  }
  return new RegExp(`^${source}$`, "su").test(name);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * pr_fs_clean_path for NLST's single target: empty and `.` components go,
 * `..` takes the component before it, trailing slashes go; `.` if nothing is
 * left of a relative path.
 */
export function cleanPath(target: string): string {
  const absolute = target.startsWith("/");
  const parts: string[] = [];
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else if (part !== ".." || !absolute) parts.push(part);
  }
  const joined = parts.join("/");
  if (absolute) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** pdircat for NLST's names: `dir/name`, without doubling a slash. */
export function joinName(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}
