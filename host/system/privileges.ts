/**
 * User and Group: the identity dsod runs as once its sockets are bound, as
 * proftpd's session processes drop to it. proftpd's master process stays root
 * and keeps a way back (seteuid); dsod has no master, so it gives root up for
 * good: supplementary groups first, then the group, then the user, the only
 * order in which each step is still allowed. After that, nothing dsod runs
 * (its sessions, its guest modules) can act as root.
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
  try {
    ids.setgroups([]);
    ids.setgid(identity.gid);
    ids.setuid(identity.uid);
  } catch (cause) {
    throw privilegeError(
      `unable to switch to User ${identity.user} and Group ${identity.group}: ${(cause as Error).message}`,
      cause,
    );
  }
  // main.c checks the result the same way.
  if (ids.geteuid() !== identity.uid)
    throw privilegeError(`unable to set UID to ${identity.user}, current UID: ${ids.geteuid()}`);
  if (ids.getegid() !== identity.gid)
    throw privilegeError(`unable to set GID to ${identity.group}, current GID: ${ids.getegid()}`);
  if (identity.uid !== 0) switched = identity;
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
