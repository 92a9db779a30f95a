/**
 * proftpd's <Limit> access control, evaluated as proftpd 1.3.8 does it
 * (src/dirtree.c: dir_check_full, dir_check_limits, check_limits,
 * check_limit, login_check_limits, dir_match_path, reorder_dirs; src/expr.c
 * for AllowUser/AllowGroup lists). Pure: the rules the config recorded and a
 * question in, an answer out.
 *
 * Where a <Directory> applies: proftpd matches its path against the *real*
 * path of what a command touches, that is the session's chroot (DefaultRoot)
 * followed by the path the user sees inside it. So here a <Directory> path is
 * a host path, matched against `jailRoot + virtualPath`; `~` is the user's
 * home (a host path) and `%u` the user's name, resolved once logged in.
 */
import { fnmatch, hasGlob } from "./fnmatch.js";

/** `Order allow,deny` (proftpd's default) or `Order deny,allow`. */
export type LimitOrder = "allow,deny" | "deny,allow";

/**
 * One AllowUser/DenyUser/AllowGroup/DenyGroup directive: its names (a `!`
 * in front negates one), combined with OR (any one true) or AND (all true).
 * proftpd's default is OR for users and AND for groups.
 */
export interface NameList {
  readonly combine: "or" | "and";
  readonly names: readonly string[];
}

/** One `<Limit ...>` section. */
export interface LimitSection {
  /** The command and group names it lists, as written, after proftpd's comma split and X-counterparts. */
  readonly commands: readonly string[];
  /** The first Order inside it; proftpd ignores later ones. */
  order: LimitOrder | undefined;
  allowAll: boolean;
  denyAll: boolean;
  readonly allowUser: NameList[];
  readonly denyUser: NameList[];
  readonly allowGroup: NameList[];
  readonly denyGroup: NameList[];
  readonly file: string;
  readonly line: number;
}

/** One `<Directory path>` section with the <Limit> sections inside it. */
export interface DirectorySection {
  /** As written: absolute, or starting with `~`; may contain globs and `%u`. */
  readonly path: string;
  readonly limits: LimitSection[];
  readonly file: string;
  readonly line: number;
}

/** Everything the config's <Limit> and <Directory> sections recorded, in the order they were written. */
export interface LimitRules {
  readonly server: LimitSection[];
  readonly directories: DirectorySection[];
}

export function emptyLimitRules(): LimitRules {
  return { server: [], directories: [] };
}

/** Who asks: before login `user` and `groups` are undefined, as proftpd's session.user and session.groups are NULL. */
export interface LimitSubject {
  readonly user: string | undefined;
  /** The user's groups, primary first. */
  readonly groups: readonly string[] | undefined;
  /** The user's home, a host path: what `~` in a <Directory> path names. */
  readonly home: string | undefined;
}

/** The question isAllowed answers. */
export interface LimitQuery extends LimitSubject {
  /** The name proftpd checks: the command (`STOR`), or `SITE_CHMOD`, `OPTS_MLST`, `SITE_HELP`. */
  readonly command: string;
  /** The host path the command acts on (the jail's root joined with the user's path). */
  readonly path: string;
}

/** The <Limit> groups, from the `group` column of the cmdtabs in proftpd 1.3.8's modules (G_READ, G_WRITE, G_DIRS). */
const COMMAND_GROUPS: ReadonlyMap<string, "READ" | "WRITE" | "DIRS"> = new Map([
  // mod_core.c
  ["PWD", "DIRS"],
  ["XPWD", "DIRS"],
  ["CWD", "DIRS"],
  ["XCWD", "DIRS"],
  ["CDUP", "DIRS"],
  ["XCUP", "DIRS"],
  ["MDTM", "DIRS"],
  ["MKD", "WRITE"],
  ["XMKD", "WRITE"],
  ["RMD", "WRITE"],
  ["XRMD", "WRITE"],
  ["DELE", "WRITE"],
  ["RNFR", "WRITE"],
  ["RNTO", "WRITE"],
  ["SIZE", "READ"],
  // core_chmod and core_chgrp check G_WRITE under these names.
  ["SITE_CHMOD", "WRITE"],
  ["SITE_CHGRP", "WRITE"],
  // mod_xfer.c
  ["RETR", "READ"],
  ["STOR", "WRITE"],
  ["STOU", "WRITE"],
  ["APPE", "WRITE"],
  // mod_ls.c
  ["LIST", "DIRS"],
  ["NLST", "DIRS"],
  ["STAT", "DIRS"],
  // mod_facts.c
  ["MFF", "WRITE"],
  ["MFMT", "WRITE"],
  ["MLSD", "DIRS"],
  ["MLST", "DIRS"],
]);

/** dir_check_full: commands that the lowest-priority ALL group never covers. */
function excludedFromAll(command: string): boolean {
  return ["EPRT", "EPSV", "PASV", "PORT", "PROT"].includes(command) || command.startsWith("OPTS");
}

/**
 * The names checked for a command, most specific first (dir_check_full): the
 * command itself, then its group, then ALL. SITE HELP checks only its own name
 * (mod_site.c site_help calls dir_check_limits directly).
 */
export function limitNames(command: string): string[] {
  const name = command.toUpperCase();
  if (name === "SITE_HELP") return [name];
  const names = [name];
  const group = COMMAND_GROUPS.get(name);
  if (group !== undefined) names.push(group);
  if (!excludedFromAll(name)) names.push("ALL");
  return names;
}

/** pr_expr_eval_user_or / _and. */
function userMatches(list: NameList, user: string): boolean {
  for (const entry of list.names) {
    const negated = entry.startsWith("!");
    const found = (user === (negated ? entry.slice(1) : entry)) !== negated;
    if (list.combine === "or" && found) return true;
    if (list.combine === "and" && !found) return false;
  }
  return list.combine === "and";
}

/** pr_expr_eval_group_or / _and: membership in the primary group or any supplementary one. */
function groupMatches(list: NameList, groups: readonly string[]): boolean {
  for (const entry of list.names) {
    const negated = entry.startsWith("!");
    const found = groups.includes(negated ? entry.slice(1) : entry) !== negated;
    if (list.combine === "or" && found) return true;
    if (list.combine === "and" && !found) return false;
  }
  return list.combine === "and";
}

/**
 * check_limit_allow: before login (no user, no groups) the mere presence of
 * an AllowUser or AllowGroup counts as allowing, because proftpd checks
 * again once it knows who the user is.
 */
function explicitlyAllowed(limit: LimitSection, subject: LimitSubject): boolean {
  const { user, groups } = subject;
  if (user === undefined ? limit.allowUser.length > 0 : limit.allowUser.some((l) => userMatches(l, user))) return true;
  if (
    groups === undefined
      ? limit.allowGroup.length > 0
      : groups.length > 0 && limit.allowGroup.some((l) => groupMatches(l, groups))
  ) {
    return true;
  }
  return limit.allowAll;
}

/** check_limit_deny: DenyUser and DenyGroup only once the user is known. */
function explicitlyDenied(limit: LimitSection, subject: LimitSubject): boolean {
  if (limit.denyAll) return true;
  const { user, groups } = subject;
  if (user !== undefined && limit.denyUser.some((l) => userMatches(l, user))) return true;
  return groups !== undefined && groups.length > 0 && limit.denyGroup.some((l) => groupMatches(l, groups));
}

/** check_limit: 1 explicit allow, 0 implicit allow, -1 implicit deny, -2 explicit deny. */
function checkLimit(limit: LimitSection, subject: LimitSubject): 1 | 0 | -1 | -2 {
  if (limit.order === "deny,allow") {
    if (explicitlyDenied(limit, subject)) return -2;
    return explicitlyAllowed(limit, subject) ? 1 : -1;
  }
  if (explicitlyAllowed(limit, subject)) return 1;
  return explicitlyDenied(limit, subject) ? -2 : 0;
}

function lists(limit: LimitSection, name: string): boolean {
  const wanted = name.toLowerCase();
  return limit.commands.some((c) => c.toLowerCase() === wanted);
}

/**
 * check_limits over one configuration level: 2 allowed, 0 denied, 1 no
 * decision. proftpd links each section at the head of its level, so the
 * section written last is consulted first and the first decision wins.
 */
function checkLimits(limits: readonly LimitSection[], name: string, subject: LimitSubject): 0 | 1 | 2 {
  for (let i = limits.length - 1; i >= 0; i--) {
    const limit = limits[i] as LimitSection;
    if (!lists(limit, name)) continue;
    const result = checkLimit(limit, subject);
    if (result === 1) return 2;
    if (result < 0) return 0;
  }
  return 1;
}

/** A <Directory> placed in proftpd's tree: nested under the closest enclosing one (reorder_dirs). */
interface DirNode {
  readonly section: DirectorySection;
  /** The path after `~` and `%u` were resolved. */
  readonly name: string;
  /** `~` and `%u` sections are resolved at login and, in proftpd 1.3.8, never nested. */
  readonly deferred: boolean;
  /** Children in proftpd's list order: the most recently linked first. */
  readonly children: DirNode[];
  parent: DirNode | undefined;
}

/** src/dirtree.c _strmatch: the length of the common prefix. */
function commonPrefix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * find_best_dir: the deepest section whose path (globs taken literally)
 * contains `node`'s path. At the end of the config, when proftpd nests, a
 * deferred section still reads `~/...` or `.../%u/...` and contains nothing.
 */
function findBestDir(set: readonly DirNode[], node: DirNode): { best: DirNode | undefined; length: number } {
  const path = node.name;
  let best: DirNode | undefined;
  let length = 0;
  for (const candidate of set) {
    if (candidate === node || candidate.deferred) continue;
    let len = candidate.name.length;
    while (len > 0 && (candidate.name[len - 1] === "*" || candidate.name[len - 1] === "/")) len--;
    if (path.length > len && path[len] !== "/") continue;
    if (len < path.length && path.startsWith(candidate.name.slice(0, len))) {
      const inner = findBestDir(candidate.children, node);
      const here = commonPrefix(path, candidate.name);
      if (inner.best === undefined && here > length) {
        best = candidate;
        length = here;
      } else if (inner.length > length) {
        best = inner.best;
        length = inner.length;
      }
    }
  }
  return { best, length };
}

/** reorder_dirs as fixup_servers runs it at the end of the config: deferred sections stay where they are. */
function reorderDirs(set: DirNode[]): void {
  for (const node of [...set]) {
    if (node.deferred) continue;
    const { best } = findBestDir(set, node);
    if (best === undefined) continue;
    set.splice(set.indexOf(node), 1);
    best.children.unshift(node);
    node.parent = best;
  }
  for (const node of set) reorderDirs(node.children);
}

function isDeferred(path: string): boolean {
  return path.startsWith("~") || path.includes("%u");
}

/**
 * resolve_deferred_dirs: `%u` becomes the user's name, a leading `~` the
 * user's home. proftpd also resolves symlinks in the result (dir_best_path);
 * dsod matches the path as written, so write the real path.
 */
function resolveDeferred(path: string, subject: LimitSubject): string | undefined {
  if (subject.user === undefined) return undefined;
  let name = path.replaceAll("%u", subject.user);
  if (name.startsWith("~")) {
    if (subject.home === undefined) return undefined;
    name = `${subject.home.replace(/\/+$/, "")}${name.slice(1)}` || "/";
  }
  return name;
}

/** The last tree built for a rules object, and whom for: a listing asks once per entry, for one user. */
const treeCache = new WeakMap<
  LimitRules,
  { user: string | undefined; home: string | undefined; count: number; tree: DirNode[] }
>();

/** The tree of <Directory> sections a session sees: phase one at config end, deferred paths resolved for the user. */
function directoryTree(rules: LimitRules, subject: LimitSubject): DirNode[] {
  const cached = treeCache.get(rules);
  if (
    cached !== undefined &&
    cached.user === subject.user &&
    cached.home === subject.home &&
    cached.count === rules.directories.length
  ) {
    return cached.tree;
  }
  const tree = buildTree(rules, subject);
  treeCache.set(rules, { user: subject.user, home: subject.home, count: rules.directories.length, tree });
  return tree;
}

function buildTree(rules: LimitRules, subject: LimitSubject): DirNode[] {
  const top: DirNode[] = [];
  // Each section is linked at the head of the list, so the list runs last-written first.
  for (let i = rules.directories.length - 1; i >= 0; i--) {
    const section = rules.directories[i] as DirectorySection;
    const deferred = isDeferred(section.path);
    const name = deferred ? resolveDeferred(section.path, subject) : section.path;
    if (name === undefined) continue;
    top.push({ section, name, deferred, children: [], parent: undefined });
  }
  reorderDirs(top);
  return top;
}

/** recur_match_path: an exact match, or the path under a section's path (`*` crosses `/`, as proftpd passes no flags). */
function recurMatchPath(set: readonly DirNode[], path: string): DirNode | undefined {
  for (const node of set) {
    let dir = node.name;
    if (dir === path) return node;
    let pattern = dir;
    if (dir.length >= 2 && !dir.endsWith("/*")) {
      if (dir.endsWith("/")) {
        dir = dir.slice(0, -1);
        if (dir === path) return node;
      }
      pattern = `${dir}/*`;
    } else if (dir.length === 1) {
      pattern = `${dir}*`;
    }
    if (fnmatch(pattern, path) || (hasGlob(dir) && fnmatch(dir, path))) {
      return recurMatchPath(node.children, path) ?? node;
    }
  }
  return undefined;
}

/** dir_match_path: one trailing `*`, then one trailing `/`, are not part of the path. */
function matchDirectory(tree: readonly DirNode[], path: string): DirNode | undefined {
  let wanted = path.endsWith("*") ? path.slice(0, -1) : path;
  if (wanted.length > 1 && wanted.endsWith("/")) wanted = wanted.slice(0, -1);
  if (wanted === "") return undefined;
  return recurMatchPath(tree, wanted);
}

/** dir_check_limits: the matched <Directory>, its enclosing ones, then the server's own <Limit>s. */
function dirCheckLimits(rules: LimitRules, dir: DirNode | undefined, name: string, subject: LimitSubject): 0 | 1 | 2 {
  for (let node = dir; node !== undefined; node = node.parent) {
    const result = checkLimits(node.section.limits, name, subject);
    if (result !== 1) return result;
  }
  return checkLimits(rules.server, name, subject);
}

/**
 * Whether <Limit> lets `query.command` act on `query.path`. The command's own
 * name is looked up through every level first, then its group, then ALL: a
 * `<Limit STOR>` anywhere beats a `<Limit WRITE>` in a deeper <Directory>.
 */
export function isAllowed(rules: LimitRules, query: LimitQuery): boolean {
  if (!limitsConcern(rules, query.command)) return true;
  const names = limitNames(query.command);
  const dir = matchDirectory(directoryTree(rules, query), query.path);
  for (const name of names) {
    const result = dirCheckLimits(rules, dir, name, query);
    if (result !== 1) return result === 2;
  }
  return true;
}

/**
 * Whether some <Limit> section, at server level or in a <Directory>, lists
 * `command` or a group that covers it (limitNames). When none does, every
 * check of it allows, whoever asks and wherever: callers ask this first and
 * skip building the question, so a config without <Limit> costs a command
 * nothing (every NOOP is checked, as core_noop calls dir_check).
 */
export function limitsConcern(rules: LimitRules, command: string): boolean {
  if (rules.server.length === 0 && rules.directories.length === 0) return false;
  const names = limitNames(command);
  const concerned = (limit: LimitSection): boolean => names.some((name) => lists(limit, name));
  return rules.server.some(concerned) || rules.directories.some((d) => d.limits.some(concerned));
}

/**
 * login_check_limits(main_server->conf, FALSE, TRUE): after the password is
 * right, every server-level <Limit LOGIN> must not deny (an implicit allow
 * does not count either way). <Limit LOGIN> inside <Directory> is not consulted.
 */
export function loginAllowed(rules: LimitRules, subject: LimitSubject): boolean {
  for (let i = rules.server.length - 1; i >= 0; i--) {
    const limit = rules.server[i] as LimitSection;
    if (!limit.commands.some((c) => c.toUpperCase() === "LOGIN")) continue;
    if (checkLimit(limit, subject) < 0) return false;
  }
  return true;
}

/**
 * The check proftpd makes when a client connects (src/main.c, before the
 * greeting): login_check_limits(main_server->conf, TRUE, FALSE) with no user
 * known. Some <Limit LOGIN> must explicitly allow, unless none decides at all.
 * So `<Limit LOGIN> DenyAll` refuses everyone, while `AllowUser bob` +
 * `DenyAll` lets the connection through and refuses at PASS.
 */
export function connectAllowed(rules: LimitRules): boolean {
  const nobody: LimitSubject = { user: undefined, groups: undefined, home: undefined };
  let decided = false;
  for (let i = rules.server.length - 1; i >= 0; i--) {
    const limit = rules.server[i] as LimitSection;
    if (!limit.commands.some((c) => c.toUpperCase() === "LOGIN")) continue;
    const result = checkLimit(limit, nobody);
    if (result === 1) return true;
    if (result < 0) decided = true;
  }
  return !decided;
}
