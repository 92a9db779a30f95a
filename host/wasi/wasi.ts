/**
 * A minimal WASI preview1 (`wasi_snapshot_preview1`) for untrusted guests.
 *
 * `node:wasi` documents that it is not a security boundary, so guests never see
 * it: this module implements the subset below itself, with every filesystem
 * path going through `SandboxRoot` (sandbox-fs.ts), which confines it to one
 * operator-configured directory.
 *
 * Implemented: args_get, args_sizes_get, environ_get, environ_sizes_get,
 * clock_res_get, clock_time_get, random_get, proc_exit, sched_yield, fd_write,
 * fd_read, fd_pread, fd_pwrite, fd_seek, fd_tell, fd_close, fd_fdstat_get,
 * fd_fdstat_set_flags (always refused), fd_filestat_get, fd_prestat_get,
 * fd_prestat_dir_name, fd_readdir, path_open, path_filestat_get,
 * path_create_directory, path_remove_directory, path_unlink_file, path_rename.
 *
 * Answer ENOSYS (52) without looking at their arguments: fd_advise,
 * fd_allocate, fd_datasync, fd_sync, fd_fdstat_set_rights,
 * fd_filestat_set_size, fd_filestat_set_times, fd_renumber,
 * path_filestat_set_times, path_link (a guest must not make hard links: see the
 * nlink rule in sandbox-fs.ts), path_readlink, path_symlink (a guest-made
 * symlink is one more thing to confine), poll_oneoff, proc_raise, sock_accept,
 * sock_recv, sock_send, sock_shutdown.
 *
 * Every function returns an errno and never throws on guest input; the one
 * exception is proc_exit, which throws `WasiExit` so the host ends the call.
 */
import { randomFillSync } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import type { BigIntStats, Dirent } from "node:fs";
import path from "node:path";
import { DsoError, ErrorCodes } from "../errors.js";
import {
  ClockId,
  DIR_RIGHTS_READ,
  DIR_RIGHTS_WRITE,
  E,
  errnoOf,
  FdFlags,
  FILE_RIGHTS_READ,
  FILE_RIGHTS_WRITE,
  FileType,
  LOOKUP_SYMLINK_FOLLOW,
  OFlags,
  Rights,
  WasiErrno,
  Whence,
} from "./errno.js";
import type { Errno } from "./errno.js";
import { HAS_PROC_FD, SandboxRoot, sandboxSupported } from "./sandbox-fs.js";

export type WasiValueType = "i32" | "i64";

export interface WasiFuncType {
  params: WasiValueType[];
  results: "i32"[];
}

export interface WasiPreopen {
  /** The directory name the guest sees (what wasi-libc matches paths against), e.g. `/data`. */
  readonly guestPath: string;
  /** Absolute host directory. */
  readonly hostPath: string;
  /** False: the guest may only read (every create/write/unlink/rename answers ENOTCAPABLE). */
  readonly writable: boolean;
}

export interface WasiOptions {
  readonly preopens: ReadonlyArray<WasiPreopen>;
  /** The importing instance's memory; asked again on every call because it may grow. */
  readonly memory: () => WebAssembly.Memory;
  /** One call per complete line written to fd 1 or 2 (without its newline). */
  readonly log: (stream: "stdout" | "stderr", text: string) => void;
  readonly args?: string[];
  readonly env?: Record<string, string>;
  /**
   * Another Wasi whose preopened directories this one inherits instead of
   * opening `preopens` again (a session's instance forked from the daemon's:
   * its descriptors were opened before the privileges were dropped).
   */
  readonly inherit?: Wasi;
}

export interface Wasi {
  /** Functions for the `wasi_snapshot_preview1` import namespace. */
  readonly imports: Record<string, (...args: never[]) => unknown>;
  /** The wasm type of each import, for the linker's signature check. */
  readonly types: Record<string, WasiFuncType>;
  /** The preopened directories, in preopen order (fds 3, 4, ...). */
  readonly roots: readonly SandboxRoot[];
  /** Flushes partial output lines and closes every host fd; later calls answer EBADF. */
  close(): void;
}

/**
 * proc_exit: the guest asked to end. A DsoError with the GUEST_TRAP code so the
 * host's existing trap handling ends the call; `exitCode` is the guest's status.
 */
export class WasiExit extends DsoError {
  readonly exitCode: number;
  constructor(exitCode: number) {
    super(ErrorCodes.GUEST_TRAP, `guest called proc_exit(${exitCode})`);
    this.name = "WasiExit";
    this.exitCode = exitCode;
  }
}

/**
 * Signatures from the witx: `i` = i32, `I` = i64; after `>` the result (every
 * function but proc_exit returns an errno as i32).
 */
const SIGNATURES: Readonly<Record<string, string>> = {
  args_get: "ii>i",
  args_sizes_get: "ii>i",
  environ_get: "ii>i",
  environ_sizes_get: "ii>i",
  clock_res_get: "ii>i",
  clock_time_get: "iIi>i",
  fd_advise: "iIIi>i",
  fd_allocate: "iII>i",
  fd_close: "i>i",
  fd_datasync: "i>i",
  fd_fdstat_get: "ii>i",
  fd_fdstat_set_flags: "ii>i",
  fd_fdstat_set_rights: "iII>i",
  fd_filestat_get: "ii>i",
  fd_filestat_set_size: "iI>i",
  fd_filestat_set_times: "iIIi>i",
  fd_pread: "iiiIi>i",
  fd_prestat_get: "ii>i",
  fd_prestat_dir_name: "iii>i",
  fd_pwrite: "iiiIi>i",
  fd_read: "iiii>i",
  fd_readdir: "iiiIi>i",
  fd_renumber: "ii>i",
  fd_seek: "iIii>i",
  fd_sync: "i>i",
  fd_tell: "ii>i",
  fd_write: "iiii>i",
  path_create_directory: "iii>i",
  path_filestat_get: "iiiii>i",
  path_filestat_set_times: "iiiIIi>i",
  path_link: "iiiiiii>i",
  path_open: "iiiiiIIii>i",
  path_readlink: "iiiiii>i",
  path_remove_directory: "iii>i",
  path_rename: "iiiiii>i",
  path_symlink: "iiiii>i",
  path_unlink_file: "iii>i",
  poll_oneoff: "iiii>i",
  proc_exit: "i>",
  proc_raise: "i>i",
  sched_yield: ">i",
  random_get: "ii>i",
  sock_accept: "iii>i",
  sock_recv: "iiiiii>i",
  sock_send: "iiiii>i",
  sock_shutdown: "ii>i",
};

/** See the header comment for why each of these is left out. */
export const WASI_UNSUPPORTED: readonly string[] = [
  "fd_advise",
  "fd_allocate",
  "fd_datasync",
  "fd_sync",
  "fd_fdstat_set_rights",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_renumber",
  "path_filestat_set_times",
  "path_link",
  "path_readlink",
  "path_symlink",
  "poll_oneoff",
  "proc_raise",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
];

function parseSignature(signature: string): WasiFuncType {
  const [params = "", results = ""] = signature.split(">");
  return {
    params: Array.from(params, (c) => (c === "I" ? "i64" : "i32")),
    results: Array.from(results, () => "i32" as const),
  };
}

/** The wasm type of every preview1 function, for the linker to check imports before any instance exists. */
export const WASI_TYPES: Readonly<Record<string, WasiFuncType>> = Object.fromEntries(
  Object.entries(SIGNATURES).map(([name, signature]) => [name, parseSignature(signature)]),
);

/** Largest number of guest fds open at once: a guest cannot exhaust the daemon's own descriptors. */
const MAX_FDS = 1024;
/** A line longer than this is logged in pieces, so a guest without newlines cannot grow the buffer forever. */
const MAX_LINE = 64 * 1024;
/** Paths longer than PATH_MAX are refused before decoding. */
const MAX_PATH = 4096;
/** Created files and directories: no group/world write whatever the daemon's umask. */
const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

interface StdioEntry {
  readonly kind: "stdio";
  readonly stream: 0 | 1 | 2;
  readonly rightsBase: bigint;
  readonly rightsInheriting: bigint;
}

interface DirEntry {
  readonly kind: "dir";
  readonly root: SandboxRoot;
  /** Where the directory was when opened, relative to its root (lookups use its current place: `baseOf`). */
  readonly rel: readonly string[];
  readonly hostFd: number;
  /** The preopen's own fd belongs to its SandboxRoot and is closed only with it. */
  readonly ownsFd: boolean;
  readonly preopen: boolean;
  readonly rightsBase: bigint;
  readonly rightsInheriting: bigint;
}

interface FileEntry {
  readonly kind: "file";
  readonly root: SandboxRoot;
  readonly hostFd: number;
  /** Node has no lseek: the offset is ours and every read/write is positional. */
  position: number;
  readonly fdflags: number;
  readonly rightsBase: bigint;
  readonly rightsInheriting: bigint;
}

type Entry = StdioEntry | DirEntry | FileEntry;

function fail(errno: Errno, message?: string): never {
  throw new WasiErrno(errno, message);
}

/** Bounds-checked access to the guest's memory (EFAULT instead of a RangeError or a host trap). */
class GuestMemory {
  private readonly memory: () => WebAssembly.Memory;
  constructor(memory: () => WebAssembly.Memory) {
    this.memory = memory;
  }

  private range(ptr: number, len: number): { buffer: ArrayBufferLike; start: number; length: number } {
    // i32 arguments arrive signed; pointers and sizes are u32.
    const start = ptr >>> 0;
    const length = len >>> 0;
    const buffer = this.memory().buffer;
    if (start + length > buffer.byteLength) fail(E.FAULT, `guest range ${start}+${length} out of bounds`);
    return { buffer, start, length };
  }

  bytes(ptr: number, len: number): Uint8Array {
    const { buffer, start, length } = this.range(ptr, len);
    return new Uint8Array(buffer, start, length);
  }

  view(ptr: number, len: number): DataView {
    const { buffer, start, length } = this.range(ptr, len);
    return new DataView(buffer, start, length);
  }

  /** Checks an output location before any side effect, so a bad pointer never loses a result. */
  check(ptr: number, len: number): void {
    this.range(ptr, len);
  }

  setU32(ptr: number, value: number): void {
    this.view(ptr, 4).setUint32(0, value, true);
  }

  setU64(ptr: number, value: bigint): void {
    this.view(ptr, 8).setBigUint64(0, value, true);
  }

  /** An iovec/ciovec array: every buffer is checked before any is used. */
  iovecs(ptr: number, count: number): Uint8Array[] {
    const n = count >>> 0;
    const table = this.view(ptr, n * 8);
    const result: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      result.push(this.bytes(table.getUint32(i * 8, true), table.getUint32(i * 8 + 4, true)));
    }
    return result;
  }

  path(ptr: number, len: number): string {
    if (len >>> 0 > MAX_PATH) fail(E.NAMETOOLONG);
    const bytes = this.bytes(ptr, len);
    if (bytes.includes(0)) fail(E.INVAL, "NUL in path");
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice());
    } catch {
      return fail(E.ILSEQ, "path is not UTF-8");
    }
  }
}

/** fd 1/2 output, split into lines (UTF-8 sequences split across writes are kept whole). */
class LineBuffer {
  private readonly decoder = new TextDecoder();
  private pending = "";
  private readonly emit: (text: string) => void;
  constructor(emit: (text: string) => void) {
    this.emit = emit;
  }

  push(bytes: Uint8Array): void {
    this.pending += this.decoder.decode(bytes, { stream: true });
    let newline: number;
    while ((newline = this.pending.indexOf("\n")) !== -1) {
      this.emit(this.pending.slice(0, newline));
      this.pending = this.pending.slice(newline + 1);
    }
    while (this.pending.length > MAX_LINE) {
      this.emit(this.pending.slice(0, MAX_LINE));
      this.pending = this.pending.slice(MAX_LINE);
    }
  }

  flush(): void {
    this.pending += this.decoder.decode();
    if (this.pending.length > 0) this.emit(this.pending);
    this.pending = "";
  }
}

function encodeStrings(strings: readonly string[]): Uint8Array[] {
  const encoder = new TextEncoder();
  return strings.map((s) => {
    if (s.includes("\0")) {
      throw new DsoError(ErrorCodes.CONFIG, `WASI argument or environment entry contains NUL: ${JSON.stringify(s)}`);
    }
    return encoder.encode(`${s}\0`);
  });
}

function fileTypeOf(stats: BigIntStats | Dirent): number {
  if (stats.isDirectory()) return FileType.DIRECTORY;
  if (stats.isFile()) return FileType.REGULAR_FILE;
  if (stats.isSymbolicLink()) return FileType.SYMBOLIC_LINK;
  if (stats.isCharacterDevice()) return FileType.CHARACTER_DEVICE;
  if (stats.isBlockDevice()) return FileType.BLOCK_DEVICE;
  if (stats.isSocket()) return FileType.SOCKET_STREAM;
  return FileType.UNKNOWN;
}

/** `filestat`: dev@0 ino@8 filetype@16 nlink@24 size@32 atim@40 mtim@48 ctim@56, 64 bytes. */
function writeFilestat(view: DataView, stats: BigIntStats | undefined, type: number): void {
  for (let i = 0; i < 64; i += 8) view.setBigUint64(i, 0n, true);
  view.setUint8(16, type);
  if (stats === undefined) return;
  view.setBigUint64(0, stats.dev, true);
  view.setBigUint64(8, stats.ino, true);
  view.setBigUint64(24, stats.nlink, true);
  view.setBigUint64(32, stats.size, true);
  view.setBigUint64(40, stats.atimeNs, true);
  view.setBigUint64(48, stats.mtimeNs, true);
  view.setBigUint64(56, stats.ctimeNs, true);
}

function toPosition(offset: bigint): number {
  if (offset < 0n) fail(E.INVAL, "negative offset");
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) fail(E.OVERFLOW, "offset too large");
  return Number(offset);
}

function validatePreopen(preopen: WasiPreopen): void {
  if (preopen.guestPath.length === 0 || preopen.guestPath.includes("\0")) {
    throw new DsoError(ErrorCodes.CONFIG, `invalid WASI guest path ${JSON.stringify(preopen.guestPath)}`);
  }
  if (!path.isAbsolute(preopen.hostPath)) {
    throw new DsoError(ErrorCodes.NOT_ABSOLUTE, `WASI directory '${preopen.hostPath}' is not an absolute path`);
  }
}

export function createWasi(options: WasiOptions): Wasi {
  if (options.preopens.length > 0 && !sandboxSupported()) {
    throw new DsoError(ErrorCodes.CONFIG, "WASI directories need O_NOFOLLOW and O_DIRECTORY (a POSIX host)");
  }
  const mem = new GuestMemory(options.memory);
  const args = encodeStrings(options.args ?? []);
  const env = encodeStrings(Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`));
  const stdout = new LineBuffer((text) => options.log("stdout", text));
  const stderr = new LineBuffer((text) => options.log("stderr", text));

  const table = new Map<number, Entry>();
  table.set(0, { kind: "stdio", stream: 0, rightsBase: Rights.FD_READ, rightsInheriting: 0n });
  table.set(1, { kind: "stdio", stream: 1, rightsBase: Rights.FD_WRITE, rightsInheriting: 0n });
  table.set(2, { kind: "stdio", stream: 2, rightsBase: Rights.FD_WRITE, rightsInheriting: 0n });

  const roots: SandboxRoot[] = [];
  try {
    for (const preopen of options.preopens) {
      validatePreopen(preopen);
      let root: SandboxRoot;
      const candidate = options.inherit?.roots[roots.length];
      const inherited =
        candidate?.guestPath === preopen.guestPath && candidate.writable === preopen.writable ? candidate : undefined;
      try {
        root = inherited?.retain() ?? new SandboxRoot(preopen);
      } catch (cause) {
        throw new DsoError(ErrorCodes.FILE, `WASI directory '${preopen.hostPath}' cannot be opened`, { cause });
      }
      roots.push(root);
      const base = DIR_RIGHTS_READ | (preopen.writable ? DIR_RIGHTS_WRITE : 0n);
      table.set(2 + roots.length, {
        kind: "dir",
        root,
        rel: [],
        hostFd: root.rootFd,
        ownsFd: false,
        preopen: true,
        rightsBase: base,
        rightsInheriting: base | FILE_RIGHTS_READ | (preopen.writable ? FILE_RIGHTS_WRITE : 0n),
      });
    }
  } catch (error) {
    for (const root of roots) root.close();
    throw error;
  }

  function allocate(entry: Entry): number {
    if (table.size >= MAX_FDS) fail(E.MFILE);
    let fd = 3;
    while (table.has(fd)) fd++;
    table.set(fd, entry);
    return fd;
  }

  function entry(fd: number): Entry {
    return table.get(fd >>> 0) ?? fail(E.BADF);
  }

  function needRight(e: Entry, right: bigint): void {
    if ((e.rightsBase & right) === 0n) fail(E.NOTCAPABLE, "fd lacks the right");
  }

  function dirEntry(fd: number, right: bigint): DirEntry {
    const e = entry(fd);
    if (e.kind !== "dir") fail(E.NOTDIR);
    needRight(e, right);
    return e;
  }

  /** A file (or stdio) fd for read/write; directories answer EISDIR. */
  function ioEntry(fd: number, right: bigint): StdioEntry | FileEntry {
    const e = entry(fd);
    if (e.kind === "dir") fail(E.ISDIR);
    needRight(e, right);
    return e;
  }

  /**
   * Where lookups relative to `dir` start: the directory the fd *is* now (read
   * back from the kernel), like openat(), not the path it was opened by; if
   * that path has since been swapped for a symlink, the fd still means the
   * original directory, and if the directory was moved out of the root it is
   * refused.
   */
  function baseOf(dir: DirEntry): readonly string[] {
    return dir.preopen ? [] : dir.root.locate(dir.hostFd, dir.rel);
  }

  function writableDir(fd: number, right: bigint): DirEntry {
    const dir = dirEntry(fd, right);
    // The rights already say no; the explicit check keeps the rule visible.
    if (!dir.root.writable) fail(E.NOTCAPABLE, "read-only directory");
    return dir;
  }

  function readInto(e: StdioEntry | FileEntry, iovs: Uint8Array[], at: number | undefined): number {
    if (e.kind === "stdio") return 0; // stdin is always at end of file
    let total = 0;
    for (const iov of iovs) {
      if (iov.length === 0) continue;
      const n = readSync(e.hostFd, iov, 0, iov.length, (at ?? e.position) + total);
      total += n;
      if (n < iov.length) break;
    }
    return total;
  }

  function writeFrom(e: StdioEntry | FileEntry, iovs: Uint8Array[], at: number | undefined): number {
    if (e.kind === "stdio") {
      const lines = e.stream === 2 ? stderr : stdout;
      let total = 0;
      for (const iov of iovs) {
        lines.push(iov.slice());
        total += iov.length;
      }
      return total;
    }
    const append = at === undefined && (e.fdflags & FdFlags.APPEND) !== 0;
    let total = 0;
    for (const iov of iovs) {
      let done = 0;
      while (done < iov.length) {
        // null = write(2) at the kernel offset, which O_APPEND moves to the end.
        const position = append ? null : (at ?? e.position) + total + done;
        done += writeSync(e.hostFd, iov, done, iov.length - done, position);
      }
      total += done;
    }
    return total;
  }

  // ---- args / environ -------------------------------------------------------

  function stringsGet(strings: Uint8Array[], ptrs: number, buf: number): number {
    const size = strings.reduce((sum, s) => sum + s.length, 0);
    const table = mem.view(ptrs, strings.length * 4);
    const out = mem.bytes(buf, size);
    let offset = 0;
    strings.forEach((s, i) => {
      table.setUint32(i * 4, (buf >>> 0) + offset, true);
      out.set(s, offset);
      offset += s.length;
    });
    return E.SUCCESS;
  }

  function stringsSizes(strings: Uint8Array[], countPtr: number, sizePtr: number): number {
    mem.check(countPtr, 4);
    mem.check(sizePtr, 4);
    mem.setU32(countPtr, strings.length);
    mem.setU32(
      sizePtr,
      strings.reduce((sum, s) => sum + s.length, 0),
    );
    return E.SUCCESS;
  }

  // ---- clocks ---------------------------------------------------------------

  function clockNow(id: number): bigint {
    switch (id) {
      case ClockId.REALTIME:
        // Microsecond precision: performance.timeOrigin + now() beats Date.now()'s milliseconds.
        return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
      case ClockId.MONOTONIC:
        return process.hrtime.bigint();
      case ClockId.PROCESS_CPUTIME: {
        const usage = process.cpuUsage();
        return BigInt(usage.user + usage.system) * 1000n;
      }
      default:
        // The thread CPU clock has no Node equivalent; the spec says EINVAL for unsupported clocks.
        return fail(E.INVAL, `unsupported clock ${id}`);
    }
  }

  const clockResolution: Readonly<Record<number, bigint>> = {
    [ClockId.REALTIME]: 1000n,
    [ClockId.MONOTONIC]: 1n,
    [ClockId.PROCESS_CPUTIME]: 1000n,
  };

  // ---- the functions --------------------------------------------------------

  const impl: Record<string, (...args: never[]) => number> = {
    args_get: (argv: number, buf: number) => stringsGet(args, argv, buf),
    args_sizes_get: (count: number, size: number) => stringsSizes(args, count, size),
    environ_get: (environ: number, buf: number) => stringsGet(env, environ, buf),
    environ_sizes_get: (count: number, size: number) => stringsSizes(env, count, size),

    clock_res_get: (id: number, out: number) => {
      const res = clockResolution[id] ?? fail(E.INVAL, `unsupported clock ${id}`);
      mem.setU64(out, res);
      return E.SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, out: number) => {
      mem.check(out, 8);
      mem.setU64(out, clockNow(id));
      return E.SUCCESS;
    },

    random_get: (buf: number, len: number) => {
      const bytes = mem.bytes(buf, len);
      for (let offset = 0; offset < bytes.length; offset += 65536) {
        randomFillSync(bytes, offset, Math.min(65536, bytes.length - offset));
      }
      return E.SUCCESS;
    },

    sched_yield: () => E.SUCCESS,

    fd_write: (fd: number, iovs: number, count: number, nwritten: number) => {
      const e = ioEntry(fd, Rights.FD_WRITE);
      mem.check(nwritten, 4);
      const n = writeFrom(e, mem.iovecs(iovs, count), undefined);
      if (e.kind === "file") {
        e.position = (e.fdflags & FdFlags.APPEND) !== 0 ? fstatSync(e.hostFd).size : e.position + n;
      }
      mem.setU32(nwritten, n);
      return E.SUCCESS;
    },
    fd_pwrite: (fd: number, iovs: number, count: number, offset: bigint, nwritten: number) => {
      const e = ioEntry(fd, Rights.FD_WRITE);
      if (e.kind === "stdio") fail(E.SPIPE);
      needRight(e, Rights.FD_SEEK);
      // Linux ignores pwrite's offset on O_APPEND files; refuse instead of surprising the guest.
      if ((e.fdflags & FdFlags.APPEND) !== 0) fail(E.NOTSUP, "pwrite on an append-only fd");
      mem.check(nwritten, 4);
      mem.setU32(nwritten, writeFrom(e, mem.iovecs(iovs, count), toPosition(offset)));
      return E.SUCCESS;
    },
    fd_read: (fd: number, iovs: number, count: number, nread: number) => {
      const e = ioEntry(fd, Rights.FD_READ);
      mem.check(nread, 4);
      const n = readInto(e, mem.iovecs(iovs, count), undefined);
      if (e.kind === "file") e.position += n;
      mem.setU32(nread, n);
      return E.SUCCESS;
    },
    fd_pread: (fd: number, iovs: number, count: number, offset: bigint, nread: number) => {
      const e = ioEntry(fd, Rights.FD_READ);
      if (e.kind === "stdio") fail(E.SPIPE);
      needRight(e, Rights.FD_SEEK);
      mem.check(nread, 4);
      mem.setU32(nread, readInto(e, mem.iovecs(iovs, count), toPosition(offset)));
      return E.SUCCESS;
    },
    fd_seek: (fd: number, offset: bigint, whence: number, out: number) => {
      const e = entry(fd);
      if (e.kind !== "file") fail(e.kind === "dir" ? E.BADF : E.SPIPE);
      // Asking for the offset (cur + 0) needs only FD_TELL, as the rights doc says.
      needRight(e, whence === Whence.CUR && offset === 0n ? Rights.FD_TELL : Rights.FD_SEEK);
      mem.check(out, 8);
      let base: bigint;
      if (whence === Whence.SET) base = 0n;
      else if (whence === Whence.CUR) base = BigInt(e.position);
      else if (whence === Whence.END) base = fstatSync(e.hostFd, { bigint: true }).size;
      else return fail(E.INVAL, "bad whence");
      e.position = toPosition(base + offset);
      mem.setU64(out, BigInt(e.position));
      return E.SUCCESS;
    },
    fd_tell: (fd: number, out: number) => {
      const e = entry(fd);
      if (e.kind !== "file") fail(e.kind === "dir" ? E.BADF : E.SPIPE);
      needRight(e, Rights.FD_TELL);
      mem.setU64(out, BigInt(e.position));
      return E.SUCCESS;
    },
    fd_close: (fd: number) => {
      const e = entry(fd);
      table.delete(fd >>> 0);
      if (e.kind === "file" || (e.kind === "dir" && e.ownsFd)) closeSync(e.hostFd);
      return E.SUCCESS;
    },
    fd_fdstat_get: (fd: number, out: number) => {
      const e = entry(fd);
      const view = mem.view(out, 24);
      const type =
        e.kind === "stdio" ? FileType.CHARACTER_DEVICE : e.kind === "dir" ? FileType.DIRECTORY : FileType.REGULAR_FILE;
      view.setUint8(0, type);
      view.setUint8(1, 0);
      view.setUint16(2, e.kind === "file" ? e.fdflags & FdFlags.APPEND : 0, true);
      view.setUint32(4, 0, true);
      view.setBigUint64(8, e.rightsBase, true);
      view.setBigUint64(16, e.rightsInheriting, true);
      return E.SUCCESS;
    },
    fd_fdstat_set_flags: (fd: number) => {
      entry(fd);
      // Turning on O_APPEND etc. later would bypass what path_open checked; no right grants it.
      return E.NOTCAPABLE;
    },
    fd_filestat_get: (fd: number, out: number) => {
      const e = entry(fd);
      const view = mem.view(out, 64);
      if (e.kind === "stdio") {
        writeFilestat(view, undefined, FileType.CHARACTER_DEVICE);
        return E.SUCCESS;
      }
      needRight(e, Rights.FD_FILESTAT_GET);
      const stats = fstatSync(e.hostFd, { bigint: true });
      writeFilestat(view, stats, fileTypeOf(stats));
      return E.SUCCESS;
    },
    fd_prestat_get: (fd: number, out: number) => {
      const e = entry(fd);
      if (e.kind !== "dir" || !e.preopen) fail(E.BADF);
      const view = mem.view(out, 8);
      view.setUint32(0, 0, true); // tag preopentype::dir, then padding
      view.setUint32(4, new TextEncoder().encode(e.root.guestPath).length, true);
      return E.SUCCESS;
    },
    fd_prestat_dir_name: (fd: number, buf: number, len: number) => {
      const e = entry(fd);
      if (e.kind !== "dir" || !e.preopen) fail(E.BADF);
      const name = new TextEncoder().encode(e.root.guestPath);
      if (len >>> 0 < name.length) fail(E.NAMETOOLONG);
      mem.bytes(buf, name.length).set(name);
      return E.SUCCESS;
    },
    fd_readdir: (fd: number, buf: number, len: number, cookie: bigint, out: number) => {
      const dir = dirEntry(fd, Rights.FD_READDIR);
      mem.check(out, 4);
      const target = mem.bytes(buf, len);
      // Listed through the open fd, so a rename of the directory since it was opened does not matter.
      const where = HAS_PROC_FD ? SandboxRoot.fdPath(dir.hostFd) : path.join(dir.root.realRoot, ...dir.rel);
      // Sorted so cookies (indexes) stay meaningful across calls; `.` and `..` are left out
      // (`..` of the root would describe a directory outside it).
      const entries = readdirSync(where, { withFileTypes: true }).sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
      const encoder = new TextEncoder();
      let used = 0;
      for (let i = cookie < 0n ? entries.length : Number(cookie); i < entries.length && used < target.length; i++) {
        const dirent = entries[i] as Dirent;
        const name = encoder.encode(dirent.name);
        let ino = 0n;
        try {
          ino = lstatSync(`${where}/${dirent.name}`, { bigint: true }).ino;
        } catch {
          // Removed meanwhile: still listed, without an inode number.
        }
        // dirent: d_next@0 u64, d_ino@8 u64, d_namlen@16 u32, d_type@20 u8, 24 bytes, then the name.
        const record = new Uint8Array(24 + name.length);
        const view = new DataView(record.buffer);
        view.setBigUint64(0, BigInt(i + 1), true);
        view.setBigUint64(8, ino, true);
        view.setUint32(16, name.length, true);
        view.setUint8(20, fileTypeOf(dirent));
        record.set(name, 24);
        // The spec lets the last record be cut short; the guest retries with a bigger buffer.
        const n = Math.min(record.length, target.length - used);
        target.set(record.subarray(0, n), used);
        used += n;
      }
      mem.setU32(out, used);
      return E.SUCCESS;
    },

    path_open: (
      fd: number,
      dirflags: number,
      pathPtr: number,
      pathLen: number,
      oflags: number,
      rightsBase: bigint,
      rightsInheriting: bigint,
      fdflags: number,
      out: number,
    ) => {
      const dir = dirEntry(fd, Rights.PATH_OPEN);
      mem.check(out, 4);
      const guestPath = mem.path(pathPtr, pathLen);
      const creat = (oflags & OFlags.CREAT) !== 0;
      const trunc = (oflags & OFlags.TRUNC) !== 0;
      const wantsWrite = (rightsBase & Rights.FD_WRITE) !== 0n;
      const append = (fdflags & FdFlags.APPEND) !== 0;
      if ((wantsWrite || creat || trunc || append) && !dir.root.writable) {
        fail(E.NOTCAPABLE, "read-only directory");
      }
      if (wantsWrite && (dir.rightsInheriting & Rights.FD_WRITE) === 0n) fail(E.NOTCAPABLE);
      if (creat) needRight(dir, Rights.PATH_CREATE_FILE);
      if (trunc) needRight(dir, Rights.PATH_FILESTAT_SET_SIZE);
      if (creat && (oflags & OFlags.DIRECTORY) !== 0) fail(E.INVAL);

      const resolved = dir.root.resolve(baseOf(dir), guestPath, (dirflags & LOOKUP_SYMLINK_FOLLOW) !== 0);
      // FIFOs, sockets and devices inside the root are refused: opening one can block or have side effects.
      if (resolved.kind === "other") fail(E.NOTCAPABLE, "not a regular file or directory");

      const wantsRead = (rightsBase & (Rights.FD_READ | Rights.FD_READDIR)) !== 0n || !wantsWrite;
      let flags = wantsWrite ? (wantsRead ? constants.O_RDWR : constants.O_WRONLY) : constants.O_RDONLY;
      // O_NONBLOCK: a FIFO swapped in after the check must not hang the daemon in open().
      flags |= constants.O_NONBLOCK;
      if (creat) flags |= constants.O_CREAT;
      if ((oflags & OFlags.EXCL) !== 0) flags |= constants.O_EXCL;
      if ((oflags & OFlags.DIRECTORY) !== 0) flags |= constants.O_DIRECTORY;
      if (append) flags |= constants.O_APPEND;
      if ((fdflags & FdFlags.DSYNC) !== 0 && typeof constants.O_DSYNC === "number") flags |= constants.O_DSYNC;
      if ((fdflags & (FdFlags.SYNC | FdFlags.RSYNC)) !== 0 && typeof constants.O_SYNC === "number")
        flags |= constants.O_SYNC;
      // O_TRUNC is applied only after the checks below, so a refused file is never emptied.

      const opened = dir.root.open(resolved.rel, flags, FILE_MODE);
      try {
        const stats = fstatSync(opened.fd, { bigint: true });
        if (stats.isDirectory()) {
          const fdNumber = allocate({
            kind: "dir",
            root: dir.root,
            rel: opened.rel,
            hostFd: opened.fd,
            ownsFd: true,
            preopen: false,
            rightsBase: rightsBase & (DIR_RIGHTS_READ | DIR_RIGHTS_WRITE) & dir.rightsInheriting,
            rightsInheriting: rightsInheriting & dir.rightsInheriting,
          });
          mem.setU32(out, fdNumber);
          return E.SUCCESS;
        }
        if (!stats.isFile()) fail(E.NOTCAPABLE, "not a regular file or directory");
        // A second name for the inode may live outside the root (see sandbox-fs.ts).
        if (stats.nlink > 1n) fail(E.NOTCAPABLE, "file has several hard links");
        if ((oflags & OFlags.DIRECTORY) !== 0) fail(E.NOTDIR);
        if (trunc) ftruncateSync(opened.fd, 0);
        const fdNumber = allocate({
          kind: "file",
          root: dir.root,
          hostFd: opened.fd,
          position: 0,
          fdflags: fdflags & (FdFlags.APPEND | FdFlags.DSYNC | FdFlags.SYNC | FdFlags.RSYNC),
          rightsBase: rightsBase & (FILE_RIGHTS_READ | FILE_RIGHTS_WRITE) & dir.rightsInheriting,
          rightsInheriting: 0n,
        });
        mem.setU32(out, fdNumber);
        return E.SUCCESS;
      } catch (error) {
        closeSync(opened.fd);
        throw error;
      }
    },
    path_filestat_get: (fd: number, flags: number, pathPtr: number, pathLen: number, out: number) => {
      const dir = dirEntry(fd, Rights.PATH_FILESTAT_GET);
      const view = mem.view(out, 64);
      const resolved = dir.root.resolve(baseOf(dir), mem.path(pathPtr, pathLen), (flags & LOOKUP_SYMLINK_FOLLOW) !== 0);
      if (resolved.kind === "missing") fail(E.NOENT);
      const stats = dir.root.lstat(resolved.rel);
      writeFilestat(view, stats, fileTypeOf(stats));
      return E.SUCCESS;
    },
    path_create_directory: (fd: number, pathPtr: number, pathLen: number) => {
      const dir = writableDir(fd, Rights.PATH_CREATE_DIRECTORY);
      const resolved = dir.root.resolve(baseOf(dir), mem.path(pathPtr, pathLen), false);
      if (resolved.kind !== "missing") fail(E.EXIST);
      dir.root.atParent(resolved.rel, (host) => mkdirSync(host, DIR_MODE));
      return E.SUCCESS;
    },
    path_remove_directory: (fd: number, pathPtr: number, pathLen: number) => {
      const dir = writableDir(fd, Rights.PATH_REMOVE_DIRECTORY);
      const resolved = dir.root.resolve(baseOf(dir), mem.path(pathPtr, pathLen), false);
      if (resolved.kind === "missing") fail(E.NOENT);
      if (resolved.kind !== "directory") fail(E.NOTDIR);
      dir.root.atParent(resolved.rel, (host) => rmdirSync(host));
      return E.SUCCESS;
    },
    path_unlink_file: (fd: number, pathPtr: number, pathLen: number) => {
      const dir = writableDir(fd, Rights.PATH_UNLINK_FILE);
      const resolved = dir.root.resolve(baseOf(dir), mem.path(pathPtr, pathLen), false);
      if (resolved.kind === "missing") fail(E.NOENT);
      if (resolved.kind === "directory") fail(E.ISDIR);
      dir.root.atParent(resolved.rel, (host) => unlinkSync(host));
      return E.SUCCESS;
    },
    path_rename: (fd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number) => {
      const from = writableDir(fd, Rights.PATH_RENAME_SOURCE);
      const to = writableDir(newFd, Rights.PATH_RENAME_TARGET);
      // Each preopen is its own capability; moving between them is a copy the guest can do itself.
      if (from.root !== to.root) fail(E.XDEV, "rename across preopened directories");
      const source = from.root.resolve(baseOf(from), mem.path(oldPtr, oldLen), false);
      const target = to.root.resolve(baseOf(to), mem.path(newPtr, newLen), false);
      if (source.kind === "missing") fail(E.NOENT);
      from.root.atParent(source.rel, (oldHost) =>
        to.root.atParent(target.rel, (newHost) => renameSync(oldHost, newHost)),
      );
      return E.SUCCESS;
    },

    proc_exit: (code: number) => {
      stdout.flush();
      stderr.flush();
      throw new WasiExit(code >>> 0);
    },
  };

  let closed = false;
  const imports: Record<string, (...args: never[]) => unknown> = {};
  for (const name of Object.keys(SIGNATURES)) {
    const fn = impl[name] as ((...args: unknown[]) => number) | undefined;
    if (fn === undefined) {
      imports[name] = () => E.NOSYS;
      continue;
    }
    imports[name] = (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (error) {
        if (error instanceof WasiExit) throw error;
        return errnoOf(error);
      }
    };
  }

  return {
    imports,
    types: WASI_TYPES,
    roots,
    close() {
      if (closed) return;
      closed = true;
      stdout.flush();
      stderr.flush();
      for (const e of table.values()) {
        if (e.kind === "file" || (e.kind === "dir" && e.ownsFd)) {
          try {
            closeSync(e.hostFd);
          } catch {
            // Already gone; nothing else to release.
          }
        }
      }
      table.clear();
      for (const root of roots) root.close();
    },
  };
}
