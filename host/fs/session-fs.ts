/**
 * CONTRACT STUB (being implemented by a helper; the exported names and
 * signatures below are fixed, the bodies are not written yet).
 *
 * A session's view of the filesystem: every path a user names is resolved
 * inside one root directory (the DefaultRoot jail, or `/`), with the same
 * kind of boundary as host/wasi/sandbox-fs.ts (directories opened with
 * O_NOFOLLOW and the syscall made through /proc/self/fd), never a string
 * prefix check. Paths given to and returned by this class are *virtual*:
 * absolute, as the user sees them (`/` is the jail's root). A host path never
 * leaves this file.
 */
import type { FileHandle } from "node:fs/promises";

/** A failure, with the errno name (`ENOENT`) and strerror's words, as proftpd's `550 <path>: <strerror>` replies. */
export class FsError extends Error {
  readonly errno: string;
  constructor(errno: string, message: string) {
    super(message);
    this.errno = errno;
  }
}

export interface FileInfo {
  /** The last component (for the root: `/`). */
  readonly name: string;
  readonly type: "file" | "dir" | "symlink" | "other";
  readonly size: number;
  /** st_mode, permission and type bits. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly dev: number;
  /** For a symlink (lstat only): what it points to, as written. */
  readonly linkTarget?: string;
}

export interface SessionFsOptions {
  /** Umask applied to files and directories created (proftpd's `Umask`; default 022). */
  readonly umask: number;
  readonly dirUmask?: number;
  /** When the daemon runs as root: created files and directories are chowned to these ids. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

export interface OpenWriteOptions {
  /** APPE: write at the end. */
  readonly append?: boolean;
  /** REST before STOR: write from this offset, keeping what is before it. */
  readonly start?: number;
  /** STOU / HiddenStores: fail with EEXIST if the name exists. */
  readonly exclusive?: boolean;
}

export declare class SessionFilesystem {
  /** `hostRoot` is resolved once with realpath; it must be a directory. */
  static open(hostRoot: string, options: SessionFsOptions): Promise<SessionFilesystem>;
  /** Pure: the absolute virtual path for what the user typed, against `cwd`; `..` stops at `/`, `~` is the root. */
  resolve(cwd: string, userPath: string): string;
  /** Follows symlinks that stay inside the root; one pointing out fails with EACCES. */
  stat(path: string): Promise<FileInfo>;
  lstat(path: string): Promise<FileInfo>;
  /** A directory's entries (lstat of each, `.` and `..` not included), in readdir order. */
  list(path: string): Promise<FileInfo[]>;
  openRead(path: string, start?: number): Promise<{ readonly handle: FileHandle; readonly size: number }>;
  openWrite(path: string, options?: OpenWriteOptions): Promise<FileHandle>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  setMtime(path: string, mtime: Date): Promise<void>;
  /** Free bytes on the filesystem that holds `path` (ALLO, and the 452 check). */
  /** Closes what the jail holds open (its root directory). */
  close(): Promise<void>;
}
