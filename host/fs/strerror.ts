/**
 * strerror(3)'s words for the errnos a file command can meet, as glibc prints
 * them: proftpd's replies end in `strerror(errno)` (`550 x: No such file or
 * directory`), and node:fs's own messages (libuv's lower-case texts with the
 * host path appended) must never reach a client.
 */
const MESSAGES: Readonly<Record<string, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EIO: "Input/output error",
  ENXIO: "No such device or address",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  EWOULDBLOCK: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  EXDEV: "Invalid cross-device link",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENFILE: "Too many open files in system",
  EMFILE: "Too many open files",
  ETXTBSY: "Text file busy",
  EFBIG: "File too large",
  ENOSPC: "No space left on device",
  ESPIPE: "Illegal seek",
  EROFS: "Read-only file system",
  EMLINK: "Too many links",
  ENAMETOOLONG: "File name too long",
  ENOTEMPTY: "Directory not empty",
  ELOOP: "Too many levels of symbolic links",
  EOVERFLOW: "Value too large for defined data type",
  EILSEQ: "Invalid or incomplete multibyte or wide character",
  ENOTSUP: "Operation not supported",
  EOPNOTSUPP: "Operation not supported",
  EDQUOT: "Disk quota exceeded",
  ESTALE: "Stale file handle",
  ECANCELED: "Operation canceled",
};

/** strerror's text for an errno name (`ENOENT`); glibc's `Unknown error` for one it has no words for. */
export function strerror(errno: string): string {
  return MESSAGES[errno] ?? "Unknown error";
}
