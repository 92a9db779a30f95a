/**
 * Controls ACLs: `ModuleControlsACLs actions|all allow|deny user|group list`
 * (modules/mod_dso.c set_modulectrlsacls) and `ControlsSocketACL allow|deny
 * user|group list` (modules/mod_ctrls.c set_ctrlssocketacl), evaluated as
 * src/ctrls.c pr_ctrls_check_acl does. Pure: names reach ids only through the
 * `IdResolver` passed in, so tests need no accounts database.
 *
 * Parse errors are DsoError(CONFIG) whose message is the text proftpd hands to
 * CONF_ERROR; the config layer prefixes `<Directive>: `, which is where the
 * doubled colon of `ModuleControlsACLs: : unknown action: 'foo'` comes from.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import type { IdResolver } from "../system/accounts.js";

export type AclKind = "user" | "group";

/**
 * One of ctrls_usr_acl_t / ctrls_grp_acl_t. `everyone` is proftpd's
 * "nuids == 1 && uids == NULL" encoding of `*`.
 */
export interface AclRule {
  readonly allow: boolean;
  readonly everyone: boolean;
  readonly ids: readonly number[];
}

/** A user rule and a group rule, OR-ed (ctrls_acl_t). */
export interface Acl {
  readonly user: AclRule;
  readonly group: AclRule;
}

/** Per-action ACLs; an action with no entry has the unset ACL, which denies. */
export type AclTable = ReadonlyMap<string, Acl>;

/** What one ModuleControlsACLs directive sets: `kind` rule of each action. */
export interface ActionAclDirective {
  readonly actions: readonly string[];
  readonly kind: AclKind;
  readonly rule: AclRule;
}

/**
 * pr_ctrls_init_acl: allow=TRUE with an empty list, which rule_ok turns into
 * FALSE, so an unconfigured action is denied to everyone, root included.
 */
export const UNSET_RULE: AclRule = { allow: true, everyone: false, ids: [] };
export const UNSET_ACL: Acl = { user: UNSET_RULE, group: UNSET_RULE };
export const EMPTY_ACL_TABLE: AclTable = new Map();

/**
 * The socket ACL before any ControlsSocketACL directive. proftpd 1.3.8 zeroes
 * it (allow=FALSE, empty list), which evaluates to "everyone allowed"; the
 * manual promises deny-by-default and upstream fixed it (Issue #2210), so we
 * start from the unset ACL, as pr_ctrls_init_acl leaves it.
 */
export const DEFAULT_SOCKET_ACL: Acl = UNSET_ACL;

function configError(message: string): DsoError {
  return new DsoError(ErrorCodes.CONFIG, message);
}

function isSpace(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\v" || ch === "\f" || ch === "\r";
}

/**
 * Splits an ACL list like src/ctrls.c ctrls_argsep: items end at `,` or
 * whitespace; a leading `"` quotes an item up to the next `"` (or `,`), with
 * `\` escaping inside quotes. Quirks kept: the terminator after a closing
 * quote is consumed, so `"a",b` yields an empty item between them.
 */
export function splitAclList(text: string): string[] {
  const items: string[] = [];
  let i = 0;
  for (;;) {
    while (i < text.length && isSpace(text.charAt(i))) {
      i++;
    }
    if (i >= text.length) {
      return items;
    }
    const quoted = text.charAt(i) === '"';
    if (quoted) {
      i++;
    }
    let item = "";
    while (i < text.length) {
      const ch = text.charAt(i);
      if (ch === "," || (quoted ? ch === '"' : isSpace(ch))) {
        break;
      }
      if (ch === "\\" && quoted && i + 1 < text.length) {
        i++;
      }
      item += text.charAt(i);
      i++;
    }
    if (i < text.length) {
      i++;
    }
    items.push(item);
  }
}

/**
 * pr_ctrls_set_user_acl / set_group_acl: `*` anywhere makes the rule cover
 * everybody (earlier names are discarded); names the resolver does not know
 * are silently dropped.
 */
export function buildRule(allow: boolean, kind: AclKind, list: string, resolve: IdResolver): AclRule {
  const ids: number[] = [];
  for (const name of splitAclList(list)) {
    if (name === "*") {
      return { allow, everyone: true, ids: [] };
    }
    const id = kind === "user" ? resolve.uidOf(name) : resolve.gidOf(name);
    if (id !== undefined) {
      ids.push(id);
    }
  }
  return { allow, everyone: false, ids };
}

/**
 * Parses the arguments of `ModuleControlsACLs` (directive name excluded).
 * Checks run in mod_dso's order: count, allow|deny, user|group, then actions
 * (all validated before any is applied). Arguments past the fourth are
 * ignored, as CHECK_ARGS only sets a minimum.
 */
export function parseActionAcl(
  args: readonly string[],
  knownActions: readonly string[],
  resolve: IdResolver,
): ActionAclDirective {
  const [actionList, allow, kind, list] = args;
  if (actionList === undefined || allow === undefined || kind === undefined || list === undefined) {
    throw configError("missing parameters");
  }
  if (allow !== "allow" && allow !== "deny") {
    throw configError("second parameter must be 'allow' or 'deny'");
  }
  if (kind !== "user" && kind !== "group") {
    throw configError("third parameter must be 'user' or 'group'");
  }
  const requested = splitAclList(actionList);
  // `all` is matched case-insensitively, the action names exactly (observed on 1.3.8).
  const isAll = (name: string): boolean => name.toLowerCase() === "all";
  const unknown = requested.find((name) => !isAll(name) && !knownActions.includes(name));
  if (unknown !== undefined) {
    throw configError(`: unknown action: '${unknown}'`);
  }
  const actions = requested.some(isAll) ? [...knownActions] : knownActions.filter((name) => requested.includes(name));
  return { actions, kind, rule: buildRule(allow === "allow", kind, list, resolve) };
}

/** A later directive for the same action and kind replaces the earlier rule. */
export function applyActionAcl(table: AclTable, directive: ActionAclDirective): AclTable {
  const next = new Map(table);
  for (const action of directive.actions) {
    const current = next.get(action) ?? UNSET_ACL;
    next.set(action, { ...current, [directive.kind]: directive.rule });
  }
  return next;
}

/**
 * pr_ctrls_check_user_acl / check_group_acl:
 *   `*` -> allow; empty list -> !allow; otherwise (id listed) XOR deny.
 */
export function ruleAllows(rule: AclRule, id: number): boolean {
  const matched = rule.everyone || rule.ids.includes(id);
  return rule.allow ? matched : !matched;
}

/** The client passes if its uid passes the user rule OR its primary gid the group rule. */
export function aclAllows(acl: Acl, uid: number, gid: number): boolean {
  return ruleAllows(acl.user, uid) || ruleAllows(acl.group, gid);
}

/**
 * pr_ctrls_check_acl for one action. An action with no entry is unset and so
 * denied; proftpd would answer TRUE for an action missing from its acttab,
 * but every action we guard is in the table, so failing closed costs nothing.
 */
export function checkAcl(table: AclTable, action: string, uid: number, gid: number): boolean {
  return aclAllows(table.get(action) ?? UNSET_ACL, uid, gid);
}

/**
 * Parses `ControlsSocketACL allow|deny user|group list` into the whole socket
 * ACL: set_ctrlssocketacl re-initialises it first, so the last directive wins
 * and a user rule cannot be combined with a group rule.
 */
export function parseSocketAcl(args: readonly string[], resolve: IdResolver): Acl {
  const [allow, kind, list] = args;
  if (allow === undefined || kind === undefined || list === undefined) {
    throw configError("missing parameters");
  }
  if (allow !== "allow" && allow !== "deny") {
    throw configError("first parameter must be either 'allow' or 'deny'");
  }
  if (kind !== "user" && kind !== "group") {
    throw configError("second parameter must be either 'user' or 'group'");
  }
  return { ...UNSET_ACL, [kind]: buildRule(allow === "allow", kind, list, resolve) };
}
