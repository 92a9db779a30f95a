/**
 * The filesystem boundary of the WASI layer: every path a guest names is
 * resolved here, inside one preopened directory ("root"), and every syscall
 * that touches the host filesystem goes through this file.
 *
 * Node has no openat()/mkdirat()/unlinkat(), which is what makes a path-based
 * sandbox racy: a directory checked a moment ago may be a symlink to /etc by
 * the time the syscall runs. Two things close that gap on Linux:
 *
 *  - the parent directory of the final component is *opened* (O_DIRECTORY,
 *    O_NOFOLLOW) and its real location read back from `/proc/self/fd/N`; the
 *    syscall is then made on `/proc/self/fd/N/name`, which the kernel resolves
 *    through the already open directory, exactly like `*at(N, "name")`, so
 *    swapping any earlier component afterwards changes nothing;
 *  - the final component is opened with O_NOFOLLOW and the opened file's own
 *    location (`/proc/self/fd/M`) is checked again before the guest gets it.
 *
 * Without `/proc/self/fd` (not Linux) the same checks run on path strings plus
 * a dev/ino comparison, which narrows the race but cannot close it.
 *
 * Known limits (documented in the report/README, not fixable from here):
 *  - a hard link inside the root may name a file outside it; regular files with
 *    more than one link are therefore refused at open, but their metadata is
 *    still visible to path_filestat_get;
 *  - bind mounts inside the root are the operator's choice and are followed.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
} from "node:fs";
import type { BigIntStats, Stats } from "node:fs";
import path from "node:path";
import { E, WasiErrno } from "./errno.js";

/** True where the kernel gives us an fd → path oracle and `*at`-like lookups through it. */
const HAS_PROC_FD = process.platform === "linux" && existsSync("/proc/self/fd");

/** What the last component of a resolved path turned out to be. */
export type TargetKind = "missing" | "symlink" | "directory" | "file" | "other";

export interface Resolved {
  /** Components from the root's real path to the target; empty = the root itself. Never contains `.`/`..`. */
  readonly rel: readonly string[];
  readonly kind: TargetKind;
}

export interface SandboxRootOptions {
  /** The name the guest sees (fd_prestat_dir_name). */
  readonly guestPath: string;
  /** Absolute host directory; resolved once with realpath, so a symlinked root is fine. */
  readonly hostPath: string;
  readonly writable: boolean;
  /**
   * Test seam: called after a path was resolved and before its parent is
   * opened, so a test can swap a component for a symlink in that window.
   */
  readonly beforeOpen?: (hostPath: string) => void;
}

function kindOf(stats: Stats | BigIntStats): TargetKind {
  if (stats.isSymbolicLink()) return "symlink";
  if (stats.isDirectory()) return "directory";
  if (stats.isFile()) return "file";
  return "other";
}

function fail(errno: (typeof E)[keyof typeof E], message: string): never {
  throw new WasiErrno(errno, message);
}

/** A host fd we opened only for the duration of one operation (or the root's own fd, never closed here). */
interface DirHandle {
  readonly fd: number;
  close(): void;
}

export class SandboxRoot {
  readonly guestPath: string;
  /** realpath of the host directory: the prefix every accepted location must have. */
  readonly realRoot: string;
  readonly writable: boolean;
  /**
   * Held for the lifetime of the instance and never handed to the guest: it is
   * the base of `/proc/self/fd/<rootFd>/...` lookups, so it must not be closed
   * (and its number reused by an unrelated host file) before `close()`.
   */
  readonly rootFd: number;
  private readonly beforeOpen: ((hostPath: string) => void) | undefined;
  private closed = false;

  constructor(options: SandboxRootOptions) {
    this.guestPath = options.guestPath;
    this.writable = options.writable;
    this.beforeOpen = options.beforeOpen;
    this.realRoot = realpathSync.native(options.hostPath);
    this.rootFd = openSync(this.realRoot, constants.O_RDONLY | constants.O_DIRECTORY);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.rootFd);
  }

  /** The path of an open host fd that syscalls can use as a directory prefix. */
  static fdPath(fd: number): string {
    return `/proc/self/fd/${fd}`;
  }

  /** Where lookups start: through the held root fd, so renaming the root cannot redirect them. */
  private get base(): string {
    return HAS_PROC_FD ? SandboxRoot.fdPath(this.rootFd) : this.realRoot;
  }

  private hostPathOf(rel: readonly string[]): string {
    return rel.length === 0 ? this.base : `${this.base}/${rel.join("/")}`;
  }

  /** The root-relative components of a real host path, or undefined if it is outside the root. */
  relOf(real: string): string[] | undefined {
    if (real === this.realRoot) return [];
    const prefix = this.realRoot.endsWith("/") ? this.realRoot : `${this.realRoot}/`;
    if (!real.startsWith(prefix)) return undefined;
    return real.slice(prefix.length).split("/");
  }

  /**
   * Resolves `guestPath` relative to the directory `base` (components below the
   * root). Refuses absolute paths, `..` above the root and symlinks whose
   * target is outside the root. Symlinks in the middle of a path are followed
   * (as POSIX and the WASI spec do) once realpath shows their target is inside;
   * the last component is followed only when `followLast` (LOOKUP_SYMLINK_FOLLOW).
   */
  resolve(base: readonly string[], guestPath: string, followLast: boolean): Resolved {
    if (guestPath.includes("\0")) fail(E.INVAL, "NUL in path");
    if (guestPath.length === 0) fail(E.NOENT, "empty path");
    if (guestPath.startsWith("/")) fail(E.NOTCAPABLE, `absolute path '${guestPath}'`);
    const names = guestPath.split("/").filter((name) => name !== "" && name !== ".");
    const mustBeDir = guestPath.endsWith("/") || guestPath.endsWith("/.") || guestPath.endsWith("/..");
    let stack = [...base];
    let kind: TargetKind = "directory";
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const last = i === names.length - 1;
      if (name === "..") {
        // `stack` only ever holds real directories below the root, so popping it
        // is the kernel's `..` too; an empty stack means `..` of the root.
        if (stack.length === 0) fail(E.NOTCAPABLE, `'${guestPath}' leaves the preopened directory`);
        stack.pop();
        kind = "directory";
        continue;
      }
      const host = this.hostPathOf([...stack, name]);
      let stats: Stats;
      try {
        stats = lstatSync(host);
      } catch (error) {
        if (last && (error as NodeJS.ErrnoException).code === "ENOENT") return { rel: [...stack, name], kind: "missing" };
        throw error;
      }
      if (stats.isSymbolicLink()) {
        if (last && !followLast && !mustBeDir) return { rel: [...stack, name], kind: "symlink" };
        // realpath resolves the whole chain (and reports loops as ELOOP); only
        // its end point matters, and it must be inside the root.
        const real = realpathSync.native(host);
        const rel = this.relOf(real);
        if (rel === undefined) fail(E.NOTCAPABLE, `symlink '${name}' in '${guestPath}' leads outside the preopened directory`);
        stack = rel;
        kind = kindOf(statSync(real));
        if (!last && kind !== "directory") fail(E.NOTDIR, `'${name}' is not a directory`);
        continue;
      }
      kind = kindOf(stats);
      if (!last && kind !== "directory") fail(E.NOTDIR, `'${name}' is not a directory`);
      stack.push(name);
    }
    if (mustBeDir && kind !== "directory" && kind !== "missing") fail(E.NOTDIR, `'${guestPath}' is not a directory`);
    return { rel: stack, kind };
  }

  /**
   * The root-relative location of an open host fd, read back from the kernel.
   * Throws ENOTCAPABLE when it is outside the root: the caller must close it.
   */
  locate(fd: number, expected: readonly string[]): string[] {
    if (HAS_PROC_FD) {
      const rel = this.relOf(readlinkSync(SandboxRoot.fdPath(fd)));
      if (rel === undefined) fail(E.NOTCAPABLE, "opened file is outside the preopened directory");
      return rel;
    }
    // Fallback: the expected path must still be inside and name the same inode.
    const real = realpathSync.native(path.join(this.realRoot, ...expected));
    const rel = this.relOf(real);
    const opened = fstatSync(fd, { bigint: true });
    const named = lstatSync(real, { bigint: true });
    if (rel === undefined || opened.dev !== named.dev || opened.ino !== named.ino) {
      fail(E.NOTCAPABLE, "opened file is outside the preopened directory");
    }
    return rel;
  }

  /** Opens a directory below the root and checks where it really is. */
  private openDir(rel: readonly string[]): DirHandle {
    if (rel.length === 0) return { fd: this.rootFd, close: () => {} };
    const fd = openSync(
      this.hostPathOf(rel),
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    try {
      this.locate(fd, rel);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return { fd, close: () => closeSync(fd) };
  }

  /**
   * Runs `op` on a path naming `rel`'s last component through its verified,
   * open parent directory (the `*at()` emulation). Refuses the root itself:
   * no caller may unlink, rename or create it.
   */
  atParent<T>(rel: readonly string[], op: (hostPath: string) => T): T {
    const name = rel[rel.length - 1];
    if (name === undefined) fail(E.NOTCAPABLE, "operation on the preopened directory itself");
    this.beforeOpen?.(path.join(this.realRoot, ...rel));
    const parent = this.openDir(rel.slice(0, -1));
    try {
      return op(HAS_PROC_FD ? `${SandboxRoot.fdPath(parent.fd)}/${name}` : path.join(this.realRoot, ...rel));
    } finally {
      parent.close();
    }
  }

  /**
   * Opens `rel` with `flags` (O_NOFOLLOW added) and returns the host fd with its
   * verified location. The caller owns the fd.
   */
  open(rel: readonly string[], flags: number, mode: number): { fd: number; rel: string[] } {
    let fd: number;
    if (rel.length === 0) {
      // The root itself: reopen it through our own fd (a magic link, so no O_NOFOLLOW).
      fd = openSync(HAS_PROC_FD ? SandboxRoot.fdPath(this.rootFd) : this.realRoot, flags, mode);
    } else {
      fd = this.atParent(rel, (host) => openSync(host, flags | constants.O_NOFOLLOW, mode));
    }
    try {
      return { fd, rel: this.locate(fd, rel) };
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** lstat of `rel` through its verified parent (fstat of the root for `[]`). */
  lstat(rel: readonly string[]): BigIntStats {
    if (rel.length === 0) return fstatSync(this.rootFd, { bigint: true });
    return this.atParent(rel, (host) => lstatSync(host, { bigint: true }));
  }
}

/** Whether this platform has the open flags the boundary depends on. */
export function sandboxSupported(): boolean {
  return typeof constants.O_NOFOLLOW === "number" && typeof constants.O_DIRECTORY === "number";
}

export { HAS_PROC_FD };
