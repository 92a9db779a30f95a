/**
 * The boundary shared by the WASI sandbox (host/wasi/sandbox-fs.ts, synchronous:
 * WASI calls are) and the FTP sessions' filesystem (host/fs/session-fs.ts,
 * asynchronous: one session must never block the others): how a path below a
 * root directory is resolved, and how an open directory's real location is
 * checked.
 *
 * Node has no openat()/mkdirat()/unlinkat(), which is what makes a path-based
 * jail racy: a directory checked a moment ago may be a symlink to /etc by the
 * time the syscall runs. Two things close that gap on Linux:
 *
 *  - the parent directory of the final component is *opened* (O_DIRECTORY,
 *    O_NOFOLLOW) and its real location read back from `/proc/self/fd/N`; the
 *    syscall is then made on `/proc/self/fd/N/name`, which the kernel resolves
 *    through the already open directory, exactly like `*at(N, "name")`, so
 *    swapping any earlier component afterwards changes nothing;
 *  - the final component is opened with O_NOFOLLOW and the opened file's own
 *    location (`/proc/self/fd/M`) is checked again before anyone uses it.
 *
 * Without `/proc/self/fd` (not Linux) the same checks run on path strings plus
 * a dev/ino comparison, which narrows the race but cannot close it.
 *
 * The algorithms are written once, as generators that yield each filesystem
 * call they need (a `Probe`) and receive its result; `runSync` and `runAsync`
 * make those calls with node:fs's synchronous or promise API. A failed call is
 * thrown back into the generator at the point that asked for it.
 */
import {
  close,
  closeSync,
  constants,
  existsSync,
  fstat,
  fstatSync,
  lstatSync,
  open,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
} from "node:fs";
import type { BigIntStats } from "node:fs";
import { lstat, readlink, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

/** True where the kernel gives us an fd → path oracle and `*at`-like lookups through it. */
export const HAS_PROC_FD = process.platform === "linux" && existsSync("/proc/self/fd");

/** The path of an open host fd that syscalls can use as a directory prefix. */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** What the last component of a resolved path turned out to be. */
export type TargetKind = "missing" | "symlink" | "directory" | "file" | "other";

export interface Resolved {
  /** Components from the root's real path to the target; empty = the root itself. Never contains `.`/`..`. */
  readonly rel: readonly string[];
  readonly kind: TargetKind;
}

/**
 * Why the jail refused a path. Each user turns it into its own error (WASI:
 * ENOTCAPABLE for the escapes; FTP: EACCES).
 */
export type Refusal =
  /** A NUL byte in the path. */
  | "nul"
  /** An empty path. */
  | "empty"
  /** An absolute path where a relative one is required. */
  | "absolute"
  /** `..` above the root. */
  | "above-root"
  /** A symlink whose target is outside the root. */
  | "symlink-outside"
  /** An opened file or directory turned out to be outside the root. */
  | "outside"
  /** A component that must be a directory is not. */
  | "not-dir"
  /** An operation on the root itself (unlink, rename, create). */
  | "root";

/** Throws the caller's error for a refusal; never returns. */
export type Refuse = (reason: Refusal, message: string) => never;

/** Where a jail's root is and how its refusals are reported. */
export interface JailRoot {
  /** realpath of the root directory: the prefix every accepted location must have. */
  readonly realRoot: string;
  /** The root's fd, held open for the jail's lifetime: lookups start from `/proc/self/fd/<rootFd>`. */
  readonly rootFd: number;
  readonly refuse: Refuse;
}

/** One filesystem call an algorithm needs; stats are BigIntStats (inode numbers may exceed 2^53). */
export type Probe =
  | { readonly op: "lstat"; readonly path: string }
  | { readonly op: "stat"; readonly path: string }
  | { readonly op: "realpath"; readonly path: string }
  | { readonly op: "readlink"; readonly path: string }
  | { readonly op: "fstat"; readonly fd: number }
  | { readonly op: "open"; readonly path: string; readonly flags: number }
  | { readonly op: "close"; readonly fd: number };

export type Steps<T> = Generator<Probe, T, unknown>;

function* probeStats(probe: Probe): Steps<BigIntStats> {
  return (yield probe) as BigIntStats;
}

function* probeString(probe: Probe): Steps<string> {
  return (yield probe) as string;
}

function* probeNumber(probe: Probe): Steps<number> {
  return (yield probe) as number;
}

function syncProbe(probe: Probe): unknown {
  switch (probe.op) {
    case "lstat":
      return lstatSync(probe.path, { bigint: true });
    case "stat":
      return statSync(probe.path, { bigint: true });
    case "realpath":
      return realpathSync.native(probe.path);
    case "readlink":
      return readlinkSync(probe.path);
    case "fstat":
      return fstatSync(probe.fd, { bigint: true });
    case "open":
      return openSync(probe.path, probe.flags);
    case "close":
      closeSync(probe.fd);
      return undefined;
  }
}

const fstatAsync = promisify((fd: number, done: (error: NodeJS.ErrnoException | null, stats: BigIntStats) => void) =>
  fstat(fd, { bigint: true }, done),
);
const openAsync = promisify(
  (file: string, flags: number, done: (error: NodeJS.ErrnoException | null, fd: number) => void) =>
    open(file, flags, done),
);
const closeAsync = promisify(close);

function asyncProbe(probe: Probe): Promise<unknown> {
  switch (probe.op) {
    case "lstat":
      return lstat(probe.path, { bigint: true });
    case "stat":
      return stat(probe.path, { bigint: true });
    case "realpath":
      return realpath(probe.path);
    case "readlink":
      return readlink(probe.path);
    case "fstat":
      return fstatAsync(probe.fd);
    case "open":
      return openAsync(probe.path, probe.flags);
    case "close":
      return closeAsync(probe.fd);
  }
}

/** Runs `steps` with node:fs's synchronous calls. */
export function runSync<T>(steps: Steps<T>): T {
  let step = steps.next();
  while (step.done !== true) {
    let result: unknown;
    try {
      result = syncProbe(step.value);
    } catch (error) {
      step = steps.throw(error);
      continue;
    }
    step = steps.next(result);
  }
  return step.value;
}

/** Runs `steps` with node:fs's asynchronous calls. */
export async function runAsync<T>(steps: Steps<T>): Promise<T> {
  let step = steps.next();
  while (step.done !== true) {
    let result: unknown;
    try {
      result = await asyncProbe(step.value);
    } catch (error) {
      step = steps.throw(error);
      continue;
    }
    step = steps.next(result);
  }
  return step.value;
}

function kindOf(stats: BigIntStats): TargetKind {
  if (stats.isSymbolicLink()) return "symlink";
  if (stats.isDirectory()) return "directory";
  if (stats.isFile()) return "file";
  return "other";
}

/** The root-relative components of a real host path, or undefined if it is outside the root. */
export function relOf(realRoot: string, real: string): string[] | undefined {
  if (real === realRoot) return [];
  const prefix = realRoot.endsWith("/") ? realRoot : `${realRoot}/`;
  if (!real.startsWith(prefix)) return undefined;
  return real.slice(prefix.length).split("/");
}

/** Where lookups start: through the held root fd, so renaming the root cannot redirect them. */
function base(root: JailRoot): string {
  return HAS_PROC_FD ? fdPath(root.rootFd) : root.realRoot;
}

/** The host path naming `rel` below the root (through the root fd on Linux). */
export function hostPathOf(root: JailRoot, rel: readonly string[]): string {
  return rel.length === 0 ? base(root) : `${base(root)}/${rel.join("/")}`;
}

/** Whether an errno-carrying error from node:fs has this code. */
export function hasCode(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as NodeJS.ErrnoException).code === code;
}

/**
 * Resolves `relative` against the directory `from` (components below the
 * root). Refuses absolute paths, `..` above the root and symlinks whose target
 * is outside the root. Symlinks in the middle of a path are followed (as POSIX
 * does) once realpath shows their target is inside; the last component is
 * followed only when `followLast`.
 */
export function* walk(root: JailRoot, from: readonly string[], relative: string, followLast: boolean): Steps<Resolved> {
  const refuse: Refuse = root.refuse;
  if (relative.includes("\0")) refuse("nul", "NUL in path");
  if (relative.length === 0) refuse("empty", "empty path");
  if (relative.startsWith("/")) refuse("absolute", `absolute path '${relative}'`);
  const names = relative.split("/").filter((name) => name !== "" && name !== ".");
  const mustBeDir = relative.endsWith("/") || relative.endsWith("/.") || relative.endsWith("/..");
  let stack = [...from];
  let kind: TargetKind = "directory";
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const last = i === names.length - 1;
    if (name === "..") {
      // `stack` only ever holds real directories below the root, so popping it
      // is the kernel's `..` too; an empty stack means `..` of the root.
      if (stack.length === 0) refuse("above-root", `'${relative}' leaves the root directory`);
      stack.pop();
      kind = "directory";
      continue;
    }
    const host = hostPathOf(root, [...stack, name]);
    let stats: BigIntStats;
    try {
      stats = yield* probeStats({ op: "lstat", path: host });
    } catch (error) {
      if (last && hasCode(error, "ENOENT")) return { rel: [...stack, name], kind: "missing" };
      throw error;
    }
    if (stats.isSymbolicLink()) {
      if (last && !followLast && !mustBeDir) return { rel: [...stack, name], kind: "symlink" };
      // realpath resolves the whole chain (and reports loops as ELOOP); only
      // its end point matters, and it must be inside the root.
      const real = yield* probeString({ op: "realpath", path: host });
      const rel = relOf(root.realRoot, real);
      if (rel === undefined)
        refuse("symlink-outside", `symlink '${name}' in '${relative}' leads outside the root directory`);
      stack = rel;
      kind = kindOf(yield* probeStats({ op: "stat", path: real }));
      if (!last && kind !== "directory") refuse("not-dir", `'${name}' is not a directory`);
      continue;
    }
    kind = kindOf(stats);
    if (!last && kind !== "directory") refuse("not-dir", `'${name}' is not a directory`);
    stack.push(name);
  }
  if (mustBeDir && kind !== "directory" && kind !== "missing") refuse("not-dir", `'${relative}' is not a directory`);
  return { rel: stack, kind };
}

/**
 * The root-relative location of an open host fd, read back from the kernel.
 * Refuses ("outside") when it is outside the root: the caller must close it.
 */
export function* locate(root: JailRoot, fd: number, expected: readonly string[]): Steps<string[]> {
  if (HAS_PROC_FD) {
    const rel = relOf(root.realRoot, yield* probeString({ op: "readlink", path: fdPath(fd) }));
    if (rel === undefined) root.refuse("outside", "opened file is outside the root directory");
    return rel;
  }
  // Fallback: the expected path must still be inside and name the same inode.
  const real = yield* probeString({ op: "realpath", path: path.join(root.realRoot, ...expected) });
  const rel = relOf(root.realRoot, real);
  const opened = yield* probeStats({ op: "fstat", fd });
  const named = yield* probeStats({ op: "lstat", path: real });
  if (rel === undefined || opened.dev !== named.dev || opened.ino !== named.ino) {
    root.refuse("outside", "opened file is outside the root directory");
  }
  return rel;
}

/** Flags for opening a directory that must not be a symlink (O_NONBLOCK: never wait on a FIFO put in its place). */
export const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens the directory `rel` below the root and checks where it really is.
 * Returns its fd (the root's own fd for `[]`, which the caller must not close).
 */
export function* openDir(root: JailRoot, rel: readonly string[]): Steps<number> {
  if (rel.length === 0) return root.rootFd;
  const fd = yield* probeNumber({ op: "open", path: hostPathOf(root, rel), flags: DIRECTORY_FLAGS });
  try {
    yield* locate(root, fd, rel);
  } catch (error) {
    yield { op: "close", fd };
    throw error;
  }
  return fd;
}

/**
 * The path that names `rel`'s last component through its parent's open fd
 * (the `*at()` emulation), or, without /proc, the joined host path.
 */
export function atPath(root: JailRoot, parentFd: number, rel: readonly string[]): string {
  const name = rel[rel.length - 1] as string;
  return HAS_PROC_FD ? `${fdPath(parentFd)}/${name}` : path.join(root.realRoot, ...rel);
}
