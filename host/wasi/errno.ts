/**
 * The numbers of WASI preview1 (witx `typenames.witx` of
 * `wasi_snapshot_preview1`): errno values, rights bits, file types and flag
 * bits. Guests compiled against wasi-libc hard-code these, so they are part of
 * the ABI and must never be renumbered.
 */

/** `errno` (u16): the only values this implementation returns are listed. */
export const E = {
  SUCCESS: 0,
  ACCES: 2,
  AGAIN: 6,
  BADF: 8,
  BUSY: 10,
  DQUOT: 19,
  EXIST: 20,
  FAULT: 21,
  FBIG: 22,
  ILSEQ: 25,
  INVAL: 28,
  IO: 29,
  ISDIR: 31,
  LOOP: 32,
  MFILE: 33,
  MLINK: 34,
  NAMETOOLONG: 37,
  NFILE: 41,
  NOENT: 44,
  NOMEM: 48,
  NOSPC: 51,
  NOSYS: 52,
  NOTDIR: 54,
  NOTEMPTY: 55,
  NOTSUP: 58,
  NXIO: 60,
  OVERFLOW: 61,
  PERM: 63,
  ROFS: 69,
  SPIPE: 70,
  TXTBSY: 74,
  XDEV: 75,
  NOTCAPABLE: 76,
} as const;

export type Errno = (typeof E)[keyof typeof E];

/**
 * Thrown inside the implementation to unwind to the import wrapper, which
 * returns `errno` to the guest. Never escapes to the guest's caller.
 */
export class WasiErrno extends Error {
  readonly errno: Errno;
  constructor(errno: Errno, message = `wasi errno ${errno}`) {
    super(message);
    this.name = "WasiErrno";
    this.errno = errno;
  }
}

/** Node's `err.code` for a failed syscall → the WASI errno a POSIX libc would have seen. */
const NODE_CODES: Readonly<Record<string, Errno>> = {
  EACCES: E.ACCES,
  EAGAIN: E.AGAIN,
  EWOULDBLOCK: E.AGAIN,
  EBADF: E.BADF,
  EBUSY: E.BUSY,
  EDQUOT: E.DQUOT,
  EEXIST: E.EXIST,
  EFAULT: E.FAULT,
  EFBIG: E.FBIG,
  EILSEQ: E.ILSEQ,
  EINVAL: E.INVAL,
  EIO: E.IO,
  EISDIR: E.ISDIR,
  ELOOP: E.LOOP,
  EMFILE: E.MFILE,
  EMLINK: E.MLINK,
  ENAMETOOLONG: E.NAMETOOLONG,
  ENFILE: E.NFILE,
  ENOENT: E.NOENT,
  ENOMEM: E.NOMEM,
  ENOSPC: E.NOSPC,
  ENOSYS: E.NOSYS,
  ENOTDIR: E.NOTDIR,
  ENOTEMPTY: E.NOTEMPTY,
  ENOTSUP: E.NOTSUP,
  EOPNOTSUPP: E.NOTSUP,
  ENXIO: E.NXIO,
  EOVERFLOW: E.OVERFLOW,
  EPERM: E.PERM,
  EROFS: E.ROFS,
  ESPIPE: E.SPIPE,
  ETXTBSY: E.TXTBSY,
  EXDEV: E.XDEV,
};

/** Maps anything thrown by node:fs (or by us) to an errno; unknown failures become EIO. */
export function errnoOf(error: unknown): Errno {
  if (error instanceof WasiErrno) return error.errno;
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return NODE_CODES[error.code] ?? E.IO;
  }
  return E.IO;
}

/** `filetype` (u8). */
export const FileType = {
  UNKNOWN: 0,
  BLOCK_DEVICE: 1,
  CHARACTER_DEVICE: 2,
  DIRECTORY: 3,
  REGULAR_FILE: 4,
  SOCKET_DGRAM: 5,
  SOCKET_STREAM: 6,
  SYMBOLIC_LINK: 7,
} as const;

/** `rights` (u64 flags), bit n = 1n << n in witx order. */
export const Rights = {
  FD_DATASYNC: 1n << 0n,
  FD_READ: 1n << 1n,
  FD_SEEK: 1n << 2n,
  FD_FDSTAT_SET_FLAGS: 1n << 3n,
  FD_SYNC: 1n << 4n,
  FD_TELL: 1n << 5n,
  FD_WRITE: 1n << 6n,
  FD_ADVISE: 1n << 7n,
  FD_ALLOCATE: 1n << 8n,
  PATH_CREATE_DIRECTORY: 1n << 9n,
  PATH_CREATE_FILE: 1n << 10n,
  PATH_LINK_SOURCE: 1n << 11n,
  PATH_LINK_TARGET: 1n << 12n,
  PATH_OPEN: 1n << 13n,
  FD_READDIR: 1n << 14n,
  PATH_READLINK: 1n << 15n,
  PATH_RENAME_SOURCE: 1n << 16n,
  PATH_RENAME_TARGET: 1n << 17n,
  PATH_FILESTAT_GET: 1n << 18n,
  PATH_FILESTAT_SET_SIZE: 1n << 19n,
  PATH_FILESTAT_SET_TIMES: 1n << 20n,
  FD_FILESTAT_GET: 1n << 21n,
  FD_FILESTAT_SET_SIZE: 1n << 22n,
  FD_FILESTAT_SET_TIMES: 1n << 23n,
  PATH_SYMLINK: 1n << 24n,
  PATH_REMOVE_DIRECTORY: 1n << 25n,
  PATH_UNLINK_FILE: 1n << 26n,
  POLL_FD_READWRITE: 1n << 27n,
  SOCK_SHUTDOWN: 1n << 28n,
  SOCK_ACCEPT: 1n << 29n,
} as const;

/**
 * Rights are granted only for operations this implementation actually has, so
 * `fd_fdstat_get` never advertises something that would answer ENOSYS.
 */
export const FILE_RIGHTS_READ = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_GET;
export const FILE_RIGHTS_WRITE = Rights.FD_WRITE;
export const DIR_RIGHTS_READ = Rights.PATH_OPEN | Rights.FD_READDIR | Rights.PATH_FILESTAT_GET | Rights.FD_FILESTAT_GET;
export const DIR_RIGHTS_WRITE =
  Rights.PATH_CREATE_DIRECTORY |
  Rights.PATH_CREATE_FILE |
  Rights.PATH_RENAME_SOURCE |
  Rights.PATH_RENAME_TARGET |
  Rights.PATH_FILESTAT_SET_SIZE |
  Rights.PATH_REMOVE_DIRECTORY |
  Rights.PATH_UNLINK_FILE;

/** `lookupflags` (u32). */
export const LOOKUP_SYMLINK_FOLLOW = 1;

/** `oflags` (u16). */
export const OFlags = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;

/** `fdflags` (u16). */
export const FdFlags = { APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 } as const;

/** `whence` (u8). */
export const Whence = { SET: 0, CUR: 1, END: 2 } as const;

/** `clockid` (u32). */
export const ClockId = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME: 2, THREAD_CPUTIME: 3 } as const;
