/**
 * strerror(3) as glibc words it, for the errno names Node reports
 * (`ECONNREFUSED`): proftpd puts these words in its replies (`425 Unable to
 * build data connection: Connection refused`, `452 Transfer aborted. No space
 * left on device`). File errnos come from the session filesystem's table;
 * network ones from libuv, whose messages are glibc's lower-cased, except the
 * few below.
 */
import { constants } from "node:os";
import { getSystemErrorMap } from "node:util";
import { strerror as fileStrerror } from "../fs/strerror.js";

/** Where libuv words a network error differently from glibc. */
const GLIBC: Readonly<Record<string, string>> = {
  EHOSTUNREACH: "No route to host",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENOTCONN: "Transport endpoint is not connected",
};

/** The strerror text for an errno name; the name itself when it is not an errno. */
export function strerror(errno: string): string {
  const file = fileStrerror(errno);
  if (file !== "Unknown error") return file;
  const fixed = GLIBC[errno];
  if (fixed !== undefined) return fixed;
  const number = (constants.errno as Readonly<Record<string, number>>)[errno];
  const message = number === undefined ? undefined : getSystemErrorMap().get(-number)?.[1];
  return message === undefined ? errno : message.charAt(0).toUpperCase() + message.slice(1);
}

/** The errno name a Node error carries (`error.code` for system errors), if any. */
export function errnoOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && code.startsWith("E") && !code.startsWith("ERR_")) return code;
  const errno = (error as { errno?: unknown }).errno;
  return typeof errno === "string" ? errno : undefined;
}
