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

export interface FileCheckOptions {
  /** For files found in the module path: the real module path they must stay inside. */
  readonly within?: string;
  /** The daemon's uid (process.geteuid()); owners are checked only when it is 0. */
  readonly uid: number;
}

function unsafe(file: string, why: string): DsoError {
  return new DsoError(ErrorCodes.UNSAFE_FILE, `'${file}' ${why}`, { errno: Errno.EACCES });
}

function notFound(file: string, cause: unknown): DsoError {
  return new DsoError(ErrorCodes.MODULE_NOT_FOUND, `'${file}' does not exist`, { errno: Errno.ENOENT, cause });
}

/** The checks on an opened file's status: pure, so every rule is unit-tested exactly. */
export function fileProblem(stat: Pick<Stats, "mode" | "uid" | "isFile">, uid: number): string | undefined {
  if (!stat.isFile()) return "is not a regular file";
  if (stat.mode & 0o002) return "is writable by others";
  if (uid === 0 && stat.uid !== 0) return `is owned by uid ${stat.uid}, not by root`;
  return undefined;
}

function isInside(root: string, file: string): boolean {
  const relative = path.relative(root, file);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

/** Reads a module or library file, refusing an unsafe one with DSO_ERR_UNSAFE_FILE. */
export function readModuleFile(file: string, options: FileCheckOptions): Uint8Array<ArrayBuffer> {
  let real: string;
  try {
    real = realpathSync(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw notFound(file, cause);
    throw new DsoError(ErrorCodes.FILE, `'${file}' cannot be read: ${(cause as Error).message}`, { cause });
  }
  if (options.within !== undefined) {
    let root: string;
    try {
      root = realpathSync(options.within);
    } catch (cause) {
      throw notFound(options.within, cause);
    }
    if (!isInside(root, real)) throw unsafe(file, `leads out of the module path (to '${real}')`);
  }
  let fd: number;
  try {
    // O_NOFOLLOW: the real path was resolved above; a symlink appearing there now is an attack.
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw notFound(file, cause);
    if (code === "ELOOP") throw unsafe(file, "was replaced by a symlink while it was being opened");
    if (code === "EACCES" || code === "EPERM") {
      throw new DsoError(ErrorCodes.FILE, `'${file}' cannot be read`, { errno: Errno.EACCES, cause });
    }
    throw new DsoError(ErrorCodes.FILE, `'${file}' cannot be read: ${(cause as Error).message}`, { cause });
  }
  try {
    const problem = fileProblem(fstatSync(fd), options.uid);
    if (problem !== undefined) throw unsafe(file, problem);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
