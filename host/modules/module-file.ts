/**
 * Reading a module or library file safely. proftpd checks only that ModulePath
 * is not world-writable (mod_dso.c set_modulepath); a sandbox for third-party
 * code must also refuse a file that others could have replaced: writable by
 * others, not a regular file, owned by someone other than root or the daemon's
 * user (when the daemon runs as root), or a symlink that leads out of the
 * module path. The file is checked through the descriptor it is read from, so
 * it cannot be swapped between the check and the read.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync } from "node:fs";
import type { Stats } from "node:fs";
import path from "node:path";
import { DsoError, Errno, ErrorCodes } from "../errors.js";
import { switchedIdentity, writableBy } from "../system/privileges.js";
import type { Identity } from "../system/privileges.js";

export interface FileCheckOptions {
  /** For files found in the module path: the module path's real path, which they must stay inside. */
  readonly within?: string;
  /** The daemon's uid (process.geteuid()); owners are checked only when it is 0. */
  readonly uid: number;
  /**
   * True when the content of the file with this identity is already known (and
   * compiled): the file is still opened and checked, but not read again.
   */
  readonly known?: (identity: string) => boolean;
  /** Given the file's size before it is read: an error it returns refuses the file unread (a load limit on its size). */
  readonly refuseSize?: (size: number) => DsoError | undefined;
}

export interface ModuleFile {
  /** Device, inode, size, modification and change times: any write changes it. */
  readonly identity: string;
  /** The content; undefined when `known` said the identity is known. */
  readonly bytes: Uint8Array<ArrayBuffer> | undefined;
}

function unsafe(file: string, why: string): DsoError {
  return new DsoError(ErrorCodes.UNSAFE_FILE, `'${file}' ${why}`);
}

function notFound(file: string, cause: unknown): DsoError {
  return new DsoError(ErrorCodes.MODULE_NOT_FOUND, `'${file}' does not exist`, { cause });
}

function unreadable(file: string, cause: unknown): DsoError {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return notFound(file, cause);
  if (code === "EACCES" || code === "EPERM")
    return new DsoError(ErrorCodes.FILE, `'${file}' cannot be read`, { errno: Errno.EACCES, cause });
  return new DsoError(ErrorCodes.FILE, `'${file}' cannot be read: ${(cause as Error).message}`, { cause });
}

/**
 * The checks on an opened file's status: pure, so every rule is unit-tested
 * exactly. `switched` is the identity dsod gave root up for (User/Group): a
 * file it could rewrite is refused too.
 */
export function fileProblem(
  stat: Pick<Stats, "mode" | "uid" | "gid" | "isFile">,
  uid: number,
  switched?: Identity,
): string | undefined {
  if (!stat.isFile()) return "is not a regular file";
  if (stat.mode & 0o002) return "is writable by others";
  if (uid === 0 && stat.uid !== 0) return `is owned by uid ${stat.uid}, not by root`;
  if (switched !== undefined && writableBy(stat, switched))
    return `could be replaced by ${switched.user}, the User dsod runs as`;
  return undefined;
}

function isInside(root: string, file: string): boolean {
  const relative = path.relative(root, file);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

/** The real path of a module path, resolved once per ModulePath. */
export function realModulePath(directory: string): string {
  try {
    return realpathSync(directory);
  } catch (cause) {
    throw notFound(directory, cause);
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function isSymlinkError(cause: unknown): boolean {
  return (cause as NodeJS.ErrnoException).code === "ELOOP";
}

/**
 * Opens the file without following a symlink in its last component, so what
 * is checked and read is the file itself. A file named directly in a module
 * path whose real path is known is opened there in one call: it is inside by
 * construction. Only a symlink (O_NOFOLLOW's ELOOP) costs a realpath walk,
 * and is accepted when it leads to a file inside the module path.
 */
function openChecked(file: string, within: string | undefined): number {
  if (within !== undefined) {
    try {
      return openSync(path.join(within, path.basename(file)), OPEN_FLAGS);
    } catch (cause) {
      if (!isSymlinkError(cause)) throw unreadable(file, cause);
    }
  }
  let real: string;
  try {
    real = realpathSync(file);
  } catch (cause) {
    throw unreadable(file, cause);
  }
  if (within !== undefined && !isInside(within, real))
    throw unsafe(file, `leads out of the module path (to '${real}')`);
  try {
    return openSync(real, OPEN_FLAGS);
  } catch (cause) {
    // The real path was just resolved: a symlink appearing there now is an attack.
    if (isSymlinkError(cause)) throw unsafe(file, "was replaced by a symlink while it was being opened");
    throw unreadable(file, cause);
  }
}

/** Opens, checks and (unless known) reads a module or library file; an unsafe one is DSO_ERR_UNSAFE_FILE. */
export function readModuleFile(file: string, options: FileCheckOptions): ModuleFile {
  const fd = openChecked(file, options.within);
  try {
    const stat = fstatSync(fd, { bigint: true });
    const problem = fileProblem(
      { mode: Number(stat.mode), uid: Number(stat.uid), gid: Number(stat.gid), isFile: () => stat.isFile() },
      options.uid,
      switchedIdentity(),
    );
    if (problem !== undefined) throw unsafe(file, problem);
    const refusal = options.refuseSize?.(Number(stat.size));
    if (refusal !== undefined) throw refusal;
    const identity = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    return { identity, bytes: options.known?.(identity) === true ? undefined : readFileSync(fd) };
  } finally {
    closeSync(fd);
  }
}
