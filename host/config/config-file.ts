/**
 * Reading configuration files from disk: the one place the config runner's
 * text comes from the OS. Only regular files are read, and only up to a
 * bound: proftpd 1.3.8 opens whatever `Include` names and reads it to the end,
 * so a FIFO blocks the parser (and a live daemon's SIGHUP) forever and
 * `/dev/zero` never ends.
 */
import { closeSync, constants, fstatSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import type { Stats } from "node:fs";
import path from "node:path";

/** The largest configuration file dsod reads: far above any real one, and small enough to hold in memory. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** A refused file. `code` is an errno name when there is one (the runner prints strerror's words for it). */
export class ConfigFileError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = "ConfigFileError";
    this.code = code;
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "a special file";
}

/** Refuses anything that is not a regular file: a directory with EISDIR as proftpd does, the rest by kind. */
function checkRegular(stats: Stats): void {
  if (stats.isFile()) return;
  if (stats.isDirectory()) throw new ConfigFileError("Is a directory", "EISDIR");
  throw new ConfigFileError(`not a regular file (${kindOf(stats)})`);
}

/**
 * Reads a configuration file: a regular file of at most MAX_CONFIG_FILE_BYTES.
 * It is checked before it is opened (a device is never opened), opened
 * without blocking (a FIFO that appears in between cannot hang the reader),
 * and checked again on the open descriptor. Throws ConfigFileError, or the
 * errno error of stat/open/read (ENOENT, EACCES, ENXIO...).
 */
export function readConfigFile(file: string): string {
  checkRegular(statSync(file));
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    checkRegular(fstatSync(fd));
    const chunks: Buffer[] = [];
    let length = 0;
    // Read to the end rather than trust st_size: the file may grow while it is read.
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      length += read;
      if (length > MAX_CONFIG_FILE_BYTES) {
        throw new ConfigFileError(`File too large (more than ${MAX_CONFIG_FILE_BYTES} bytes)`);
      }
      chunks.push(chunk.subarray(0, read));
    }
    return Buffer.concat(chunks, length).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * The files an `Include` argument names, sorted: a wildcard (`*`, `?`, `[`)
 * in the last component is matched against that directory's names, as
 * proftpd's Include uses them (`/etc/dsod/conf.d/*.conf`); anything else names itself.
 */
export function expandInclude(pattern: string): string[] {
  const dir = path.dirname(pattern);
  const base = path.basename(pattern);
  if (!/[*?[]/.test(base)) return [pattern];
  const regex = new RegExp(
    `^${base
      .replace(/[.+^${}()|\\]/g, "\\$&")
      .replace(/\*/g, "[^/]*")
      .replace(/\?/g, "[^/]")}$`,
  );
  return readdirSync(dir)
    .filter((name) => regex.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}
