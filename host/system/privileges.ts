/**
 * User and Group: the identity dsod runs as once its sockets are bound, as
 * proftpd's session processes drop to it. A process that serves sessions (dsod
 * itself, or each session worker) gives root up for good: supplementary groups
 * first, then the group, then the user, the only order in which each step is
 * still allowed. After that, nothing it runs (its sessions, its guest modules)
 * can act as root.
 *
 * With session workers, dsod is proftpd's master: it keeps root as its real
 * and saved uid only, runs with User/Group as its effective ids, and takes
 * root back for the moments that need it (forking a worker, the shutdown), as
 * proftpd's PRIVS_RELINQUISH and PRIVS_ROOT do (src/privs.c).
 *
 * Once switched, the module path and module files must not be writable by the
 * new identity either: a process running as that user could otherwise replace
 * a module that root later loads with insmod.
 */
import type { Stats } from "node:fs";
import { DsoError, ErrorCodes } from "../errors.js";

export interface Identity {
  readonly user: string;
  readonly uid: number;
  readonly group: string;
  readonly gid: number;
}

export interface IdentityLookup {
  uidOf(name: string): number | undefined;
  gidOf(name: string): number | undefined;
  primaryGidOf(name: string): number | undefined;
  userName(uid: number): string;
  groupName(gid: number): string;
}

/** What the process can do about its ids; `process` in the daemon. */
export interface ProcessIds {
  geteuid(): number;
  getegid(): number;
  setgroups(groups: number[]): void;
  setgid(id: number): void;
  setuid(id: number): void;
}

/** What a master can do besides: change its effective ids only, keeping root as its real and saved ones. */
export interface EffectiveIds extends ProcessIds {
  getuid(): number;
  seteuid(id: number): void;
  setegid(id: number): void;
}

function privilegeError(message: string, cause?: unknown): DsoError {
  return new DsoError(ErrorCodes.PRIVILEGES, message, cause === undefined ? {} : { cause });
}

/**
 * The identity User and Group name; undefined when neither is set. Group
 * defaults to the User's primary group (proftpd keeps gid 0 then; a process
 * that gave up root should not keep root's group). The names were checked
 * when the config was read.
 */
export function resolveIdentity(
  user: string | undefined,
  group: string | undefined,
  accounts: IdentityLookup,
  current: ProcessIds,
): Identity | undefined {
  if (user === undefined && group === undefined) return undefined;
  const uid = user === undefined ? current.geteuid() : accounts.uidOf(user);
  if (uid === undefined) throw privilegeError(`User: Unknown user '${user}'`);
  const gid =
    group !== undefined ? accounts.gidOf(group) : user !== undefined ? accounts.primaryGidOf(user) : undefined;
  if (gid === undefined)
    throw privilegeError(
      group !== undefined ? `Group: Unknown group '${group}'` : `User: no primary group for '${user}'`,
    );
  return { user: user ?? accounts.userName(uid), uid, group: group ?? accounts.groupName(gid), gid };
}

let switched: Identity | undefined;

/** The identity dsod switched to with User/Group, once it has; undefined while it runs as it started. */
export function switchedIdentity(): Identity | undefined {
  return switched;
}

/**
 * Becomes `identity` for good. Already being it is fine (a non-root dsod whose
 * User is itself); anything else needs root, and a failure is fatal with
 * proftpd's words.
 */
export function dropPrivileges(identity: Identity, ids: ProcessIds): void {
  if (ids.geteuid() === identity.uid && ids.getegid() === identity.gid && identity.uid !== 0) return;
  if (ids.geteuid() !== 0) {
    throw privilegeError(`unable to set UID to ${identity.user}, current UID: ${ids.geteuid()}`);
  }
  switchIds(identity, ids, () => {
    ids.setgid(identity.gid);
    ids.setuid(identity.uid);
  });
  if (identity.uid !== 0) switched = identity;
}

/**
 * No supplementary groups, then `setIds` (gid before uid: without root the
 * gid could no longer change), then main.c's check of the effective ids
 * that resulted; a failure is fatal with proftpd's words.
 */
function switchIds(identity: Identity, ids: ProcessIds, setIds: () => void): void {
  try {
    ids.setgroups([]);
    setIds();
  } catch (cause) {
    throw privilegeError(
      `unable to switch to User ${identity.user} and Group ${identity.group}: ${(cause as Error).message}`,
      cause,
    );
  }
  if (ids.geteuid() !== identity.uid)
    throw privilegeError(`unable to set UID to ${identity.user}, current UID: ${ids.geteuid()}`);
  if (ids.getegid() !== identity.gid)
    throw privilegeError(`unable to set GID to ${identity.group}, current GID: ${ids.getegid()}`);
}

/**
 * Whether `identity` could change what has this status: as its owner (who may
 * chmod it whatever its mode), through its group's write bit, or as anyone.
 */
export function writableBy(
  stat: Pick<Stats, "uid" | "gid" | "mode">,
  identity: Pick<Identity, "uid" | "gid">,
): boolean {
  return (
    stat.uid === identity.uid || (stat.gid === identity.gid && (stat.mode & 0o020) !== 0) || (stat.mode & 0o002) !== 0
  );
}

/** The identity the master runs as between its moments as root, and how it switches. */
let relinquished: { readonly identity: Identity; readonly ids: EffectiveIds } | undefined;

/**
 * pr_privs_relinquish (src/privs.c) after PRIVS_SETUP with User/Group: no
 * supplementary groups, effective gid then uid set to the identity's, root
 * kept as the real and saved uid so that withRootPrivileges can take it back.
 * Needs a root process; a failure is fatal with proftpd's words.
 */
export function relinquishPrivileges(identity: Identity, ids: EffectiveIds): void {
  if (ids.getuid() !== 0 || ids.geteuid() !== 0) {
    throw privilegeError(`unable to set UID to ${identity.user}, current UID: ${ids.geteuid()}`);
  }
  switchIds(identity, ids, () => {
    ids.setegid(identity.gid);
    ids.seteuid(identity.uid);
  });
  relinquished = { identity, ids };
  switched = identity;
}

/** How many withRootPrivileges runs are under way: the first takes root back, the last gives it up again. */
let rootDepth = 0;

/**
 * pr_privs_root then pr_privs_relinquish: runs `run` with root as the
 * effective uid and gid, and goes back to User/Group once it has ended. A
 * promise keeps root until it settles, and whatever else runs meanwhile is
 * root too: only for the shutdown, once nothing else is served. Without
 * relinquishPrivileges before, it only runs `run`.
 */
export function withRootPrivileges<T>(run: () => T): T {
  const held = relinquished;
  if (held === undefined) return run();
  const { identity, ids } = held;
  if (rootDepth === 0) {
    // The uid first: only an effective root may change the gid.
    ids.seteuid(0);
    ids.setegid(0);
  }
  rootDepth += 1;
  const release = (): void => {
    rootDepth -= 1;
    if (rootDepth > 0) return;
    ids.setegid(identity.gid);
    ids.seteuid(identity.uid);
  };
  let result: T;
  try {
    result = run();
  } catch (error) {
    release();
    throw error;
  }
  if (!(result instanceof Promise)) {
    release();
    return result;
  }
  return result.finally(release) as T;
}
