// mod_upload_filter: refuses uploads whose file name matches a pattern of its
// directive, the way proftpd's PathDenyFilter refuses paths by regex (mod_xfer.c
// xfer_pre_stor, mod_core.c core_pre_rnto), but with shell globs on the last
// path component:
//
//   UploadFilterDeny *.exe *.bat [NC]
//
// STOR, APPE and RNTO onto a matching name are refused in PRE_CMD, before any
// other module acts, with `553 <name>: Forbidden filename`: proftpd's text, and
// RFC 959's code for "File name not allowed" (PathDenyFilter answers 550).
// STOU is not checked: the server picks its name (proftpd's xfer_pre_stou
// ignores the client's), so a client cannot choose one to filter.
import { API_VERSION, DECLINED, ERROR, HANDLED, arg, argc, argv, baseName, cmdPath, directiveError, log, replyError } from "./sdk";

export const upload_filter_module: i32 = API_VERSION;

/** The patterns as configured, for the log; `matchers` holds them lower-cased under [NC]. */
let patterns: string[] = [];
let matchers: string[] = [];
let noCase = false;

/** proftpd's filter flags (pr_filter_parse_flags): `[NC]` or `[nocase]` makes the match case-insensitive. */
function isNoCaseFlag(word: string): bool {
  return word == "[NC]" || word == "[nocase]";
}

/**
 * UploadFilterDeny pattern [pattern ...] [NC]: the names uploads may not have.
 * One line holds the whole list: a later line replaces an earlier one.
 */
export function conf_UploadFilterDeny(): i32 {
  let last = argc() - 1;
  const flagged = last >= 1 && isNoCaseFlag(argv(last));
  if (flagged) last--;
  if (last < 1) return directiveError("wrong number of parameters");
  const list: string[] = [];
  const lowered: string[] = [];
  for (let i = 1; i <= last; i++) {
    const pattern = argv(i);
    if (pattern.includes("/")) return directiveError("pattern '" + pattern + "' must not contain '/': it matches the file name only");
    list.push(pattern);
    lowered.push(flagged ? pattern.toLowerCase() : pattern);
  }
  patterns = list;
  matchers = lowered;
  noCase = flagged;
  return HANDLED;
}

/** Where a bracket expression that starts at `p` (just after `[`) ends, or -1 when it is not closed. */
function classEnd(pattern: string, p: i32): i32 {
  let i = p;
  if (i < pattern.length && (pattern.charCodeAt(i) == 0x21 || pattern.charCodeAt(i) == 0x5e)) i++;
  // A `]` first in the class is a member, as fnmatch(3) reads it.
  if (i < pattern.length && pattern.charCodeAt(i) == 0x5d) i++;
  while (i < pattern.length && pattern.charCodeAt(i) != 0x5d) i++;
  return i < pattern.length ? i : -1;
}

/** Whether `c` is in the bracket expression pattern[p, end) (after the `[`, before the `]`). */
function classMatches(pattern: string, p: i32, end: i32, c: i32): bool {
  let i = p;
  const negated = pattern.charCodeAt(i) == 0x21 || pattern.charCodeAt(i) == 0x5e;
  if (negated) i++;
  let found = false;
  while (i < end) {
    const low = pattern.charCodeAt(i);
    if (i + 2 < end && pattern.charCodeAt(i + 1) == 0x2d) {
      if (c >= low && c <= pattern.charCodeAt(i + 2)) found = true;
      i += 3;
    } else {
      if (c == low) found = true;
      i++;
    }
  }
  return found != negated;
}

/**
 * fnmatch(3) without flags on one name: `*` any run, `?` one character,
 * `[a-z]`/`[!a-z]` a class, `\x` the character x. Iterative with a single
 * backtrack point, so a pattern like `*a*a*a*b` costs O(name x pattern), not
 * exponential time, on a hostile name.
 */
function globMatch(pattern: string, name: string): bool {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    // How far pattern[p] takes us on name[n]: the pattern characters it used, 0 on a mismatch.
    let used = 0;
    if (p < pattern.length) {
      const pc = pattern.charCodeAt(p);
      const c = name.charCodeAt(n);
      if (pc == 0x2a) {
        starP = p++;
        starN = n;
        continue;
      }
      const end = pc == 0x5b ? classEnd(pattern, p + 1) : -1;
      if (pc == 0x3f) {
        used = 1;
      } else if (end >= 0) {
        if (classMatches(pattern, p + 1, end, c)) used = end + 1 - p;
      } else if (pc == 0x5c && p + 1 < pattern.length) {
        if (pattern.charCodeAt(p + 1) == c) used = 2;
      } else if (pc == c) {
        used = 1;
      }
    }
    if (used > 0) {
      p += used;
      n++;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) == 0x2a) p++;
  return p == pattern.length;
}

/** The first pattern `name` matches, or "" when none does. */
function deniedBy(name: string): string {
  const subject = noCase ? name.toLowerCase() : name;
  for (let i = 0; i < matchers.length; i++) {
    if (globMatch(matchers[i], subject)) return patterns[i];
  }
  return "";
}

/** Refuses the command when its file name matches a pattern; DECLINED lets it through. */
function check(): i32 {
  const path = cmdPath();
  const name = baseName(path.length > 0 ? path : arg());
  if (name.length == 0) return DECLINED;
  const pattern = deniedBy(name);
  if (pattern.length == 0) return DECLINED;
  // As mod_xfer.c logs `'STOR /path' denied by PathDenyFilter`, at a level shown by default.
  log("'" + argv(0) + " " + (path.length > 0 ? path : arg()) + "' denied by UploadFilterDeny '" + pattern + "'", 0);
  replyError("553", arg() + ": Forbidden filename");
  return ERROR;
}

export function pre_cmd_STOR(): i32 {
  return check();
}

export function pre_cmd_APPE(): i32 {
  return check();
}

export function pre_cmd_RNTO(): i32 {
  return check();
}
