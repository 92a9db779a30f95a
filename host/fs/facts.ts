/**
 * RFC 3659 facts as proftpd 1.3.8's mod_facts.c writes them, as pure
 * functions: facts_mlinfo_fmt's line, facts_mlinfo_get's type and perm
 * values (with pr_fs_have_access's permission rule), facts_mlst_feat_add's
 * FEAT line, facts_opts_mlst's fact selection and facts_modify_mtime's
 * timestamp.
 */
import type { FileInfo } from "./session-fs.js";

/** The facts, in the order facts_mlinfo_fmt writes them (media-type needs mod_mime, which dsod lacks). */
export const FACT_NAMES = [
  "modify",
  "perm",
  "size",
  "type",
  "unique",
  "UNIX.group",
  "UNIX.groupname",
  "UNIX.mode",
  "UNIX.owner",
  "UNIX.ownername",
] as const;

export type Fact = (typeof FACT_NAMES)[number];

export type FactSet = ReadonlySet<Fact>;

/** FACTS_OPT_SHOW_DEFAULT: every fact. */
export const DEFAULT_FACTS: FactSet = new Set(FACT_NAMES);

/** facts_mlst_feat_add: `MLST ` and each fact, with `*` when it is shown. */
export function mlstFeature(selected: FactSet): string {
  return `MLST ${FACT_NAMES.map((fact) => `${fact}${selected.has(fact) ? "*" : ""};`).join("")}`;
}

/** The session's user as mod_facts sees it: session.uid, gid, supplementary gids, user and group names. */
export interface FactsIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly gids: readonly number[];
  readonly user: string;
  readonly group: string;
}

export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;

/**
 * pr_fs_have_access (src/fsio.c): root may read and write anything; otherwise
 * the other bits always count, the owner bits when the uid owns the file, the
 * group bits when its gid is the user's primary or a supplementary group.
 */
export function haveAccess(info: FileInfo, mode: number, who: FactsIdentity): boolean {
  if (who.uid === 0 && mode !== X_OK) return true;
  let mask = 0o007;
  if (info.uid === who.uid) mask |= 0o700;
  if (info.gid === who.gid || who.gids.includes(info.gid)) mask |= 0o070;
  mask &= info.mode;
  if (mode & R_OK && !(mask & 0o444)) return false;
  if (mode & W_OK && !(mask & 0o222)) return false;
  if (mode & X_OK && !(mask & 0o111)) return false;
  return true;
}

/** One thing to describe: its lstat, its target's stat when it is a symlink, its directory entry name and the path to print. */
export interface FactsEntry {
  readonly info: FileInfo;
  /** stat of a symlink's target (a symlink without one cannot be described). */
  readonly target?: FileInfo;
  /** The directory entry's name: `.` and `..` are cdir and pdir. */
  readonly name: string;
  /** What follows the facts: the entry name (MLSD) or the full path (MLST). */
  readonly path: string;
}

export interface FactsLineOptions {
  /** MLSD: `.` and `..` are cdir and pdir (MLST says dir, Bug#4198). */
  readonly cdir: boolean;
  /** ShowSymlinks: a symlink's type is OS.unix=symlink, not its target's. */
  readonly showSymlinks: boolean;
}

function hex(value: number): string {
  return value.toString(16).toUpperCase();
}

/** gmtime as RFC 3659's time-val, `YYYYMMDDhhmmss` (also MDTM's reply). */
export function timeVal(mtimeMs: number): string {
  const date = new Date(Math.floor(mtimeMs / 1000) * 1000);
  const two = (value: number): string => String(value).padStart(2, "0");
  return (
    String(date.getUTCFullYear()).padStart(4, "0") +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds())
  );
}

/** facts_mlinfo_get's type fact. */
function typeFact(entry: FactsEntry, options: FactsLineOptions): string {
  const { info, target } = entry;
  if (info.type === "dir") {
    if (options.cdir && entry.name === ".") return "cdir";
    if (options.cdir && entry.name === "..") return "pdir";
    return "dir";
  }
  if (info.type === "symlink") {
    if (options.showSymlinks) return "OS.unix=symlink";
    return target?.type === "dir" ? "dir" : "file";
  }
  return "file";
}

/**
 * facts_mlinfo_get's perm fact, access checked on what the path leads to (a
 * symlink's target): a file `adfr` if readable else `dfr`, plus `w` if
 * writable; a directory `fl` if readable, `cdmp` if writable, `e` if searchable.
 */
function permFact(entry: FactsEntry, who: FactsIdentity): string {
  const checked = entry.target ?? entry.info;
  if (entry.info.type !== "dir") {
    return (haveAccess(checked, R_OK, who) ? "adfr" : "dfr") + (haveAccess(checked, W_OK, who) ? "w" : "");
  }
  return (
    (haveAccess(checked, R_OK, who) ? "fl" : "") +
    (haveAccess(checked, W_OK, who) ? "cdmp" : "") +
    (haveAccess(checked, X_OK, who) ? "e" : "")
  );
}

/**
 * facts_mlinfo_fmt: `fact=value;` for each selected fact, a space and the
 * path. A symlink's unique fact is its target's (dev, ino); its size, mode
 * and owner are the link's own, as lstat gave them. UNIX.ownername and
 * UNIX.groupname are the session's user and group names (spaces as `_`,
 * RFC 3659 7.4), whoever owns the file: mod_facts.c fills them from
 * session.user and session.group.
 */
export function factsLine(entry: FactsEntry, selected: FactSet, who: FactsIdentity, options: FactsLineOptions): string {
  const { info } = entry;
  const unique = entry.target ?? info;
  let line = "";
  if (selected.has("modify")) line += `modify=${timeVal(info.mtimeMs)};`;
  if (selected.has("perm")) line += `perm=${permFact(entry, who)};`;
  if (selected.has("size") && info.type !== "dir") line += `size=${info.size};`;
  if (selected.has("type")) line += `type=${typeFact(entry, options)};`;
  if (selected.has("unique")) line += `unique=${hex(unique.dev)}U${hex(unique.ino)};`;
  if (selected.has("UNIX.group")) line += `UNIX.group=${info.gid};`;
  if (selected.has("UNIX.groupname")) line += `UNIX.groupname=${who.group.replaceAll(" ", "_")};`;
  if (selected.has("UNIX.mode")) line += `UNIX.mode=0${(info.mode & 0o7777).toString(8)};`;
  if (selected.has("UNIX.owner")) line += `UNIX.owner=${info.uid};`;
  if (selected.has("UNIX.ownername")) line += `UNIX.ownername=${who.user.replaceAll(" ", "_")};`;
  return `${line} ${entry.path}`;
}

/**
 * facts_opts_mlst: `OPTS MLST` with no facts shows none; otherwise each
 * `name;` that names a fact (any case) is shown, the rest ignored, and the
 * reply lists what was taken. More than one word is refused (undefined).
 */
export function optsMlst(words: readonly string[]): { readonly selected: FactSet; readonly reply: string } | undefined {
  if (words.length > 1) return undefined;
  const text = words[0];
  if (text === undefined) return { selected: new Set(), reply: "MLST OPTS" };
  const selected = new Set<Fact>();
  let taken = "";
  // Only names followed by `;` count: the text after the last `;` is not a fact.
  for (const name of text.split(";").slice(0, -1)) {
    const fact = FACT_NAMES.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    if (fact === undefined) continue;
    selected.add(fact);
    taken += `${fact};`;
  }
  return { selected, reply: `MLST OPTS ${taken}` };
}

/** atoi(3): leading white space, an optional sign, digits; 0 when there are none. */
function atoi(text: string): number {
  const match = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(text);
  return match === null ? 0 : Number.parseInt(match[1] as string, 10);
}

/** FACTS_EPOCH_YEAR. */
const EPOCH_YEAR = 1970;

/**
 * facts_modify_mtime's reading of `YYYYMMDDhhmmss` (a `.fraction` already cut
 * off): each field by atoi, checked against proftpd's bounds (hour 24,
 * minute 60 and second 61 allowed), or undefined (EINVAL).
 */
export function parseTimeVal(timestamp: string): Date | undefined {
  const year = atoi(timestamp.slice(0, 4));
  const month = atoi(timestamp.slice(4, 6));
  const day = atoi(timestamp.slice(6, 8));
  const hour = atoi(timestamp.slice(8, 10));
  const minute = atoi(timestamp.slice(10, 12));
  const second = atoi(timestamp.slice(12));
  if (year < EPOCH_YEAR) return undefined;
  if (month < 1 || month > 12) return undefined;
  if (day < 1 || day > 31) return undefined;
  if (hour < 0 || hour > 24) return undefined;
  if (minute < 0 || minute > 60) return undefined;
  if (second < 0 || second > 61) return undefined;
  // facts_mktime adds the fields up as Date.UTC does, overflowing into the next unit.
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
}
