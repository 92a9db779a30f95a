/**
 * A session's view of the filesystem: every path a user names is resolved
 * inside one root directory (the DefaultRoot jail, or `/`), with the same
 * boundary as the WASI sandbox (host/fs/jail.ts: directories opened with
 * O_NOFOLLOW, the syscall made through /proc/self/fd, the opened file's real
 * location checked), never a string prefix check. Paths given to and returned
 * by this class are *virtual*: absolute, as the user sees them (`/` is the
 * jail's root). A host path never leaves this file.
 *
 * Symlinks: one whose target stays inside the root is followed; one that leads
 * out is refused (FsError.escape set) with ENOENT, the answer a proftpd user
 * gets under chroot, where such a link dangles. Refusing, rather than looking
 * the target up inside the jail as a chroot would, keeps the rule the WASI
 * sandbox has and never even names the outside.
 *
 * Every call is asynchronous (node:fs/promises, the libuv pool), so a slow disk
 * or a big directory in one session never holds up the others. Failures are
 * FsError with the errno name and strerror's words; node:fs's own messages
 * (which carry host paths) never leave this file.
 *
 * What the jail does not do: the daemon acts with its own credentials, so
 * permissions inside the root are the kernel's verdict for the daemon's user,
 * not for the FTP user (except chmod and times, refused on files the `owner`
 * does not own when the daemon runs as root, as the kernel would refuse that
 * user). A hard link inside the root to a file outside is followed, as it is
 * under proftpd's chroot; FTP has no command that makes one.
 */
import { close, constants, fchmod, fchown, lstat as lstatCallback, open as openFd, readlinkSync } from "node:fs";
import type { Stats } from "node:fs";
import {
  access,
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  rmdir,
  statfs,
  unlink,
  utimes,
} from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import nodePath from "node:path";
import { promisify } from "node:util";
import { atPath, fdPath, HAS_PROC_FD, hasCode, locate, openDir, runAsync, walk } from "./jail.js";
import type { JailRoot, Refusal, Resolved } from "./jail.js";
import { strerror } from "./strerror.js";
import { virtualPath } from "./virtual-path.js";

/** A failure, with the errno name (`ENOENT`) and strerror's words, as proftpd's `550 <path>: <strerror>` replies. */
export class FsError extends Error {
  readonly errno: string;
  /** True when the jail refused a way out of the root (the kernel was not asked). */
  readonly escape: boolean;
  constructor(errno: string, message: string, escape = false) {
    super(message);
    this.name = "FsError";
    this.errno = errno;
    this.escape = escape;
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
  /**
   * Test seam: runs after a path was resolved and before the directory that
   * holds it is opened, so a test can swap a component for a symlink in that
   * window.
   */
  readonly beforeOpen?: () => void;
}

export interface OpenWriteOptions {
  /** APPE: write at the end. */
  readonly append?: boolean;
  /** REST before STOR: write from this offset, keeping what is before it. */
  readonly start?: number;
  /** STOU / HiddenStores: fail with EEXIST if the name exists. */
  readonly exclusive?: boolean;
}

/** Linux's NAME_MAX and PATH_MAX (the latter counts the terminating NUL). */
const NAME_MAX = 255;
const PATH_MAX = 4096;

/**
 * Linux's O_PATH (not in node's constants): a handle on the inode itself,
 * with no read or write access needed. chmod and utimes through
 * /proc/self/fd/N of such a handle act on what was opened, so a symlink put in
 * place after the check is never followed.
 */
const O_PATH = 0o10000000;

const openAsync = promisify(
  (file: string, flags: number, done: (error: NodeJS.ErrnoException | null, fd: number) => void) =>
    openFd(file, flags, done),
);
const closeAsync = promisify(close);
const fchmodAsync = promisify(fchmod);
const fchownAsync = promisify(fchown);

function fail(errno: string, escape = false): never {
  throw new FsError(errno, strerror(errno), escape);
}

/** The jail's refusals as the errnos a user of proftpd would see: a way out is ENOENT, as a dangling link under chroot. */
function refuse(reason: Refusal): never {
  switch (reason) {
    case "nul":
      return fail("EINVAL");
    case "empty":
      return fail("ENOENT");
    case "not-dir":
      return fail("ENOTDIR");
    case "root":
      return fail("EBUSY");
    case "absolute":
    case "above-root":
    case "symlink-outside":
    case "outside":
      return fail("ENOENT", true);
  }
}

/** Any failure as an FsError; an error without an errno (a bug) is rethrown as is. */
function toFsError(error: unknown): unknown {
  if (error instanceof FsError) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return new FsError(code, strerror(code));
  return error;
}

/**
 * proftpd's reply to a failed file command: `<path as typed>: <strerror>`
 * (550 unless the command uses another code, like LIST's 450). The typed path
 * ends at a NUL, as it would in proftpd's C strings. Only FsError has a reply;
 * anything else is rethrown (dispatch turns it into its 451 and logs it).
 */
export function fsErrorReply(
  typed: string,
  error: unknown,
  code = "550",
): { readonly code: string; readonly message: string } {
  if (!(error instanceof FsError)) throw error;
  const nul = typed.indexOf("\0");
  return { code, message: `${nul < 0 ? typed : typed.slice(0, nul)}: ${error.message}` };
}

/** lstat calls in flight at once for one listing: enough to keep the libuv pool busy, few enough to let other sessions' calls through. */
const LSTAT_WINDOW = 128;

/**
 * lstat of every name in `dir` (undefined for one removed meanwhile), with
 * node's callback API: a directory of 10,000 entries is 10,000 calls, and a
 * promise for each costs more than the call.
 */
function lstatEach(dir: string, names: readonly string[]): Promise<Array<Stats | undefined>> {
  return new Promise((resolve, reject) => {
    const results = new Array<Stats | undefined>(names.length);
    let next = 0;
    let pending = names.length;
    let failed = false;
    if (pending === 0) {
      resolve(results);
      return;
    }
    const start = (): void => {
      const index = next++;
      lstatCallback(`${dir}/${names[index] as string}`, (error, stats) => {
        if (failed) return;
        if (error !== null && error.code !== "ENOENT") {
          failed = true;
          reject(error);
          return;
        }
        results[index] = error === null ? stats : undefined;
        if (--pending === 0) resolve(results);
        else if (next < names.length) start();
      });
    };
    for (let i = 0; i < Math.min(LSTAT_WINDOW, names.length); i++) start();
  });
}

function typeOf(stats: Stats): FileInfo["type"] {
  if (stats.isFile()) return "file";
  if (stats.isDirectory()) return "dir";
  if (stats.isSymbolicLink()) return "symlink";
  return "other";
}

function infoOf(name: string, stats: Stats, linkTarget?: string): FileInfo {
  const info: FileInfo = {
    name,
    type: typeOf(stats),
    size: stats.size,
    mode: stats.mode,
    nlink: stats.nlink,
    uid: stats.uid,
    gid: stats.gid,
    mtimeMs: stats.mtimeMs,
    ctimeMs: stats.ctimeMs,
    ino: stats.ino,
    dev: stats.dev,
  };
  return linkTarget === undefined ? info : { ...info, linkTarget };
}

/** The last component of a virtual path, `/` for the root. */
function lastName(virtual: string): string {
  const normalized = virtualPath("/", virtual);
  return normalized === "/" ? "/" : normalized.slice(normalized.lastIndexOf("/") + 1);
}

export class SessionFilesystem {
  readonly #root: FileHandle;
  readonly #realRoot: string;
  readonly #jail: JailRoot;
  readonly #options: SessionFsOptions;
  readonly #chownTo: { readonly uid: number; readonly gid: number } | undefined;

  private constructor(realRoot: string, root: FileHandle, options: SessionFsOptions) {
    this.#root = root;
    this.#realRoot = realRoot;
    this.#options = options;
    this.#jail = { realRoot, rootFd: root.fd, refuse };
    this.#chownTo = process.getuid?.() === 0 ? options.owner : undefined;
  }

  /** The root's real path (symlinks resolved): where the session is jailed. */
  get realRoot(): string {
    return this.#realRoot;
  }

  /** `hostRoot` is opened and its real path read back once; it must be a directory. */
  static async open(hostRoot: string, options: SessionFsOptions): Promise<SessionFilesystem> {
    let root: FileHandle | undefined;
    try {
      root = await open(hostRoot, constants.O_RDONLY | constants.O_DIRECTORY);
      // The kernel's name for what was opened is its real path: one call into libuv's pool per login, not two
      // (readlink of /proc/self/fd is answered from the kernel's dentries, never from a disk), and no
      // window between resolving the root and opening it.
      const realRoot = HAS_PROC_FD ? readlinkSync(fdPath(root.fd)) : await realpath(hostRoot);
      return new SessionFilesystem(realRoot, root, options);
    } catch (error) {
      // The open or read-back's error is the one to report, not a failure to close.
      await root?.close().catch(() => {});
      throw toFsError(error);
    }
  }

  /** Pure: the absolute virtual path for what the user typed, against `cwd`; `..` stops at `/`, `~` is the root. */
  resolve(cwd: string, userPath: string): string {
    return virtualPath(cwd, userPath, "/");
  }

  /** Follows symlinks that stay inside the root; one pointing out fails with EACCES. */
  stat(path: string): Promise<FileInfo> {
    return this.#run(async () => {
      const target = await this.#existing(path, true);
      const stats =
        target.rel.length === 0 ? await this.#root.stat() : await this.#atParent(target.rel, (host) => lstat(host));
      return infoOf(lastName(path), stats);
    });
  }

  lstat(path: string): Promise<FileInfo> {
    return this.#run(async () => {
      const target = await this.#existing(path, false);
      if (target.rel.length === 0) return infoOf("/", await this.#root.stat());
      return this.#atParent(target.rel, async (host) => {
        const stats = await lstat(host);
        return infoOf(lastName(path), stats, stats.isSymbolicLink() ? await readlink(host) : undefined);
      });
    });
  }

  /**
   * The virtual path of a directory the session may change into (CWD): the
   * real one, symlinks resolved, as proftpd's `dir_realpath` gives it.
   * ENOTDIR for anything else; EACCES when it cannot be searched.
   */
  enter(path: string): Promise<string> {
    return this.#run(async () => {
      const target = await this.#existing(path, true);
      if (target.kind !== "directory") fail("ENOTDIR");
      if (target.rel.length === 0) await access(this.#rootPath(), constants.X_OK);
      else await this.#atParent(target.rel, (host) => access(host, constants.X_OK));
      return `/${target.rel.join("/")}`;
    });
  }

  /** A directory's entries (lstat of each, `.` and `..` not included), in readdir order. */
  list(path: string): Promise<FileInfo[]> {
    return this.#run(async () => {
      const target = await this.#existing(path, true);
      if (target.kind !== "directory") fail("ENOTDIR");
      const dirFd = await runAsync(openDir(this.#jail, target.rel));
      try {
        const dir = HAS_PROC_FD ? fdPath(dirFd) : nodePath.join(this.#realRoot, ...target.rel);
        const names = await readdir(dir);
        const stats = await lstatEach(dir, names);
        const entries: FileInfo[] = [];
        for (let i = 0; i < names.length; i++) {
          const name = names[i] as string;
          const found = stats[i];
          // Removed between readdir and lstat: it is simply not there any more.
          if (found === undefined) continue;
          entries.push(infoOf(name, found, found.isSymbolicLink() ? await readlink(`${dir}/${name}`) : undefined));
        }
        return entries;
      } finally {
        if (dirFd !== this.#jail.rootFd) await closeAsync(dirFd);
      }
    });
  }

  /** A regular file opened for reading (EISDIR for a directory, EINVAL for a FIFO, device or socket). */
  openRead(path: string, start = 0): Promise<{ readonly handle: FileHandle; readonly size: number }> {
    return this.#run(async () => {
      if (!Number.isSafeInteger(start) || start < 0) fail("EINVAL");
      const target = await this.#existing(path, true);
      if (target.kind === "directory") fail("EISDIR");
      // O_NONBLOCK: opening a FIFO must not wait for a writer.
      const handle = await this.#openAt(target.rel, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const stats = await handle.stat();
        if (!stats.isFile()) fail("EINVAL");
        return { handle, size: stats.size };
      } catch (error) {
        await handle.close();
        throw error;
      }
    });
  }

  /**
   * A regular file opened for writing: created (with the umask's mode, and
   * chowned to `owner` when running as root) if missing, else truncated unless
   * appending or restarting at `start`.
   */
  openWrite(path: string, options: OpenWriteOptions = {}): Promise<FileHandle> {
    return this.#run(async () => {
      const { append = false, start, exclusive = false } = options;
      if (start !== undefined && (!Number.isSafeInteger(start) || start < 0)) fail("EINVAL");
      const appendFlag = append ? constants.O_APPEND : 0;
      // Created by someone else between the walk and the create: open it as existing, once.
      for (let attempt = 0; ; attempt++) {
        const target = await this.#resolve(path, true);
        if (target.kind === "directory") fail("EISDIR");
        if (target.kind === "missing") {
          try {
            return await this.#create(target.rel, appendFlag);
          } catch (error) {
            if (exclusive || attempt > 0 || !hasCode(error, "EEXIST")) throw error;
            continue;
          }
        }
        if (exclusive) fail("EEXIST");
        const truncate = !append && start === undefined ? constants.O_TRUNC : 0;
        const handle = await this.#openAt(
          target.rel,
          constants.O_WRONLY | constants.O_NONBLOCK | appendFlag | truncate,
        );
        try {
          if (!(await handle.stat()).isFile()) fail("EINVAL");
          return handle;
        } catch (error) {
          await handle.close();
          throw error;
        }
      }
    });
  }

  mkdir(path: string): Promise<void> {
    return this.#run(async () => {
      const target = await this.#resolve(path, false);
      if (target.kind !== "missing") fail("EEXIST");
      const mode = 0o777 & ~(this.#options.dirUmask ?? this.#options.umask);
      await this.#atParent(target.rel, (host) => mkdir(host, mode));
      const fd = await runAsync(openDir(this.#jail, target.rel));
      try {
        await this.#settle(fd, mode);
      } finally {
        await closeAsync(fd);
      }
    });
  }

  rmdir(path: string): Promise<void> {
    return this.#run(async () => {
      const target = await this.#existing(path, false);
      if (target.rel.length === 0) fail("EBUSY");
      await this.#atParent(target.rel, (host) => rmdir(host));
    });
  }

  /** Removes a file, or a symlink itself (never its target). */
  unlink(path: string): Promise<void> {
    return this.#run(async () => {
      const target = await this.#existing(path, false);
      if (target.kind === "directory") fail("EISDIR");
      await this.#atParent(target.rel, (host) => unlink(host));
    });
  }

  /** Renames `from` (a symlink itself, not its target) to `to`, replacing what `to` names. */
  rename(from: string, to: string): Promise<void> {
    return this.#run(async () => {
      const source = await this.#existing(from, false);
      const destination = await this.#resolve(to, false);
      if (source.rel.length === 0 || destination.rel.length === 0) fail("EBUSY");
      await this.#atParent(source.rel, (oldHost) =>
        this.#atParent(destination.rel, (newHost) => rename(oldHost, newHost)),
      );
    });
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.#run(async () => {
      const target = await this.#owned(path);
      await this.#viaHandle(target.rel, (host) => chmod(host, mode & 0o7777));
    });
  }

  /** Sets the modification (and access) time, as MFMT's utimes does. */
  setMtime(path: string, mtime: Date): Promise<void> {
    return this.#run(async () => {
      const target = await this.#owned(path);
      await this.#viaHandle(target.rel, (host) => utimes(host, mtime, mtime));
    });
  }

  /** Free bytes on the filesystem that holds `path` (ALLO, and the 452 check). */
  freeSpace(path: string): Promise<number> {
    return this.#run(async () => {
      const target = await this.#existing(path, true);
      const stats =
        target.rel.length === 0
          ? await statfs(this.#rootPath(), { bigint: true })
          : await this.#atParent(target.rel, (host) => statfs(host, { bigint: true }));
      return Number(stats.bavail * stats.bsize);
    });
  }

  /** Closes what the jail holds open (its root directory). */
  async close(): Promise<void> {
    await this.#root.close();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw toFsError(error);
    }
  }

  /** The walk's input for a virtual path: relative to the root, `.` for the root; names checked against NAME_MAX and PATH_MAX. */
  #relative(virtual: string): string {
    if (virtual.includes("\0")) fail("EINVAL");
    const normalized = virtualPath("/", virtual);
    if (Buffer.byteLength(normalized) >= PATH_MAX) fail("ENAMETOOLONG");
    for (const name of normalized.split("/")) if (Buffer.byteLength(name) > NAME_MAX) fail("ENAMETOOLONG");
    return normalized === "/" ? "." : normalized.slice(1);
  }

  #resolve(virtual: string, followLast: boolean): Promise<Resolved> {
    return runAsync(walk(this.#jail, [], this.#relative(virtual), followLast));
  }

  async #existing(virtual: string, followLast: boolean): Promise<Resolved> {
    const target = await this.#resolve(virtual, followLast);
    if (target.kind === "missing") fail("ENOENT");
    return target;
  }

  /** The target of chmod or utimes; when root acts for `owner`, only a file that owner owns (EPERM otherwise). */
  async #owned(virtual: string): Promise<Resolved> {
    const target = await this.#existing(virtual, true);
    if (this.#chownTo !== undefined) {
      const stats =
        target.rel.length === 0 ? await this.#root.stat() : await this.#atParent(target.rel, (host) => lstat(host));
      if (stats.uid !== this.#chownTo.uid) fail("EPERM");
    }
    return target;
  }

  /** The root directory as a path syscalls can take. */
  #rootPath(): string {
    return HAS_PROC_FD ? fdPath(this.#jail.rootFd) : this.#realRoot;
  }

  /** Runs `op` on `rel`'s last component through its verified, open parent directory (the `*at()` emulation). */
  async #atParent<T>(rel: readonly string[], op: (host: string) => Promise<T>): Promise<T> {
    if (rel.length === 0) fail("EBUSY");
    this.#options.beforeOpen?.();
    const parentFd = await runAsync(openDir(this.#jail, rel.slice(0, -1)));
    try {
      return await op(atPath(this.#jail, parentFd, rel));
    } finally {
      if (parentFd !== this.#jail.rootFd) await closeAsync(parentFd);
    }
  }

  /** Opens `rel` (never the root) with O_NOFOLLOW and checks where the opened file really is. */
  async #openAt(rel: readonly string[], flags: number, mode?: number): Promise<FileHandle> {
    const handle = await this.#atParent(rel, (host) => open(host, flags | constants.O_NOFOLLOW, mode));
    try {
      await runAsync(locate(this.#jail, handle.fd, rel));
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  /** Creates a new file: exactly the umask's mode, whatever the daemon's own umask, and the owner's ids when root. */
  async #create(rel: readonly string[], appendFlag: number): Promise<FileHandle> {
    const mode = 0o666 & ~this.#options.umask;
    const handle = await this.#openAt(
      rel,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | appendFlag,
      mode,
    );
    try {
      await this.#settle(handle.fd, mode);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  async #settle(fd: number, mode: number): Promise<void> {
    await fchmodAsync(fd, mode);
    if (this.#chownTo !== undefined) await fchownAsync(fd, this.#chownTo.uid, this.#chownTo.gid);
  }

  /**
   * Runs `op` on a path that names exactly the file `rel` resolved to: on
   * Linux /proc/self/fd of an O_PATH handle opened without following a
   * symlink, whose location is checked; elsewhere the host path.
   */
  async #viaHandle(rel: readonly string[], op: (host: string) => Promise<void>): Promise<void> {
    if (rel.length === 0) return op(this.#rootPath());
    if (!HAS_PROC_FD) return op(nodePath.join(this.#realRoot, ...rel));
    const fd = await this.#atParent(rel, (host) => openAsync(host, O_PATH | constants.O_NOFOLLOW));
    try {
      await runAsync(locate(this.#jail, fd, rel));
      await op(fdPath(fd));
    } finally {
      await closeAsync(fd);
    }
  }
}
