/**
 * The filesystem boundary of the WASI layer: every path a guest names is
 * resolved here, inside one preopened directory ("root"), and every syscall
 * that touches the host filesystem goes through this file.
 *
 * The boundary itself (the path walk, the `*at()` emulation through
 * `/proc/self/fd`, the check of an opened file's real location) is
 * host/fs/jail.ts, shared with the FTP sessions' filesystem; this class runs it
 * synchronously, as WASI calls are, and reports its refusals as WASI errnos.
 *
 * Known limits (documented in the report/README, not fixable from here):
 *  - a hard link inside the root may name a file outside it; regular files with
 *    more than one link are therefore refused at open, but their metadata is
 *    still visible to path_filestat_get;
 *  - bind mounts inside the root are the operator's choice and are followed.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, realpathSync } from "node:fs";
import type { BigIntStats } from "node:fs";
import { atPath, fdPath, HAS_PROC_FD, locate, openDir, relOf, runSync, walk } from "../fs/jail.js";
import type { JailRoot, Refusal, Resolved } from "../fs/jail.js";
import { E, WasiErrno } from "./errno.js";

export type { Resolved, TargetKind } from "../fs/jail.js";

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

/** The WASI errno for each of the jail's refusals: escapes are ENOTCAPABLE, as wasi-libc expects. */
const REFUSAL_ERRNO: Readonly<Record<Refusal, (typeof E)[keyof typeof E]>> = {
  nul: E.INVAL,
  empty: E.NOENT,
  "not-dir": E.NOTDIR,
  absolute: E.NOTCAPABLE,
  "above-root": E.NOTCAPABLE,
  "symlink-outside": E.NOTCAPABLE,
  outside: E.NOTCAPABLE,
  root: E.NOTCAPABLE,
};

function refuse(reason: Refusal, message: string): never {
  throw new WasiErrno(REFUSAL_ERRNO[reason], message);
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
  private readonly jail: JailRoot;
  private readonly beforeOpen: ((hostPath: string) => void) | undefined;
  private closed = false;
  /** The Wasis holding it: the daemon's instance's, and the sessions' instances forked from it. */
  private holders = 1;

  constructor(options: SandboxRootOptions) {
    this.guestPath = options.guestPath;
    this.writable = options.writable;
    this.beforeOpen = options.beforeOpen;
    this.realRoot = realpathSync.native(options.hostPath);
    this.rootFd = openSync(this.realRoot, constants.O_RDONLY | constants.O_DIRECTORY);
    this.jail = { realRoot: this.realRoot, rootFd: this.rootFd, refuse };
  }

  /**
   * Another Wasi holds the directory too, as a forked proftpd session keeps
   * the descriptors its parent opened: a session's instance inherits the
   * daemon's instance's preopens, open since before the privileges were
   * dropped, instead of opening the paths again. Each holder calls close().
   */
  retain(): this {
    if (this.closed) throw new Error(`sandbox root '${this.realRoot}' is closed`);
    this.holders++;
    return this;
  }

  /** Lets go of the directory; its fd is closed when the last holder lets go. */
  close(): void {
    if (this.closed || --this.holders > 0) return;
    this.closed = true;
    closeSync(this.rootFd);
  }

  /** The path of an open host fd that syscalls can use as a directory prefix. */
  static fdPath(fd: number): string {
    return fdPath(fd);
  }

  /** The root-relative components of a real host path, or undefined if it is outside the root. */
  relOf(real: string): string[] | undefined {
    return relOf(this.realRoot, real);
  }

  /**
   * Resolves `guestPath` relative to the directory `base` (components below the
   * root). Refuses absolute paths, `..` above the root and symlinks whose
   * target is outside the root. Symlinks in the middle of a path are followed
   * (as POSIX and the WASI spec do) once realpath shows their target is inside;
   * the last component is followed only when `followLast` (LOOKUP_SYMLINK_FOLLOW).
   */
  resolve(base: readonly string[], guestPath: string, followLast: boolean): Resolved {
    return runSync(walk(this.jail, base, guestPath, followLast));
  }

  /**
   * The root-relative location of an open host fd, read back from the kernel.
   * Throws ENOTCAPABLE when it is outside the root: the caller must close it.
   */
  locate(fd: number, expected: readonly string[]): string[] {
    return runSync(locate(this.jail, fd, expected));
  }

  /**
   * Runs `op` on a path naming `rel`'s last component through its verified,
   * open parent directory (the `*at()` emulation). Refuses the root itself:
   * no caller may unlink, rename or create it.
   */
  atParent<T>(rel: readonly string[], op: (hostPath: string) => T): T {
    if (rel.length === 0) refuse("root", "operation on the preopened directory itself");
    this.beforeOpen?.(`${this.realRoot}/${rel.join("/")}`);
    const parentFd = runSync(openDir(this.jail, rel.slice(0, -1)));
    try {
      return op(atPath(this.jail, parentFd, rel));
    } finally {
      if (parentFd !== this.rootFd) closeSync(parentFd);
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
      fd = openSync(HAS_PROC_FD ? fdPath(this.rootFd) : this.realRoot, flags, mode);
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
