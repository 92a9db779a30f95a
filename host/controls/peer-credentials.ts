/*
 * Threat model: uid/gid/pid come from the kernel (SO_PEERCRED, recorded when
 * the client called connect), so a client cannot forge them by anything it
 * sends. The pid may since have exited and been reused: log it, never trust
 * it. The gid is the client's primary (effective) gid only; supplementary
 * groups are not seen, exactly as proftpd (src/ctrls.c pr_ctrls_accept).
 *
 * Node has no SO_PEERCRED API (libuv #2255), hence the small N-API addon
 * built from native/peercred.c by node-gyp (binding.gyp at the package root),
 * or shipped prebuilt. Without it the controls server identifies callers by
 * the files they create instead (file-identity.ts), and says so at start.
 */
import type { Socket } from "node:net";
import { DsoError, ErrorCodes, messageOf } from "../errors.js";
import { loadNativeAddon } from "../system/package.js";

export interface PeerCredentials {
  readonly uid: number;
  readonly gid: number;
  /** -1 where the platform does not report it (getpeereid). */
  readonly pid: number;
}

interface PeerCredAddon {
  getPeerCred(fd: number): PeerCredentials;
}

function isAddon(value: unknown): value is PeerCredAddon {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, "getPeerCred") === "function";
}

let loaded: PeerCredAddon | DsoError | undefined;

function addon(): PeerCredAddon {
  if (loaded === undefined) {
    loaded = loadAddon();
  }
  if (loaded instanceof DsoError) {
    throw loaded;
  }
  return loaded;
}

function loadAddon(): PeerCredAddon | DsoError {
  const loaded = loadNativeAddon("peercred");
  if ("reason" in loaded) {
    const message = `cannot check client credentials: ${loaded.message}`;
    return new DsoError(ErrorCodes.CTRLS_PROTOCOL, message, { cause: loaded.reason });
  }
  if (!isAddon(loaded.addon))
    return new DsoError(
      ErrorCodes.CTRLS_PROTOCOL,
      "cannot check client credentials: the peercred addon has no getPeerCred",
    );
  return loaded.addon;
}

/**
 * Undefined when the addon loads, else why callers cannot be identified by
 * the kernel (`cannot check client credentials: unable to load ...`).
 */
export function peerCredentialsUnavailable(): string | undefined {
  loaded ??= loadAddon();
  return loaded instanceof DsoError ? loaded.message : undefined;
}

/**
 * The descriptor behind a connected pipe socket: `socket._handle.fd`, an
 * internal of node:net (a libuv Pipe handle), hence the defensive reads.
 */
function socketFd(socket: Socket): number | undefined {
  const handle: unknown = Reflect.get(socket, "_handle");
  if (typeof handle !== "object" || handle === null) {
    return undefined;
  }
  const fd: unknown = Reflect.get(handle, "fd");
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/**
 * Who is at the other end of an AF_UNIX connection. Throws DsoError when the
 * identity cannot be established (addon missing, socket closed, not a unix
 * socket); callers must then deny the request.
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = socketFd(socket);
  if (fd === undefined) {
    throw new DsoError(ErrorCodes.CTRLS_PROTOCOL, "cannot check client credentials: socket has no file descriptor");
  }
  const native = addon();
  try {
    const { uid, gid, pid } = native.getPeerCred(fd);
    return { uid, gid, pid };
  } catch (cause) {
    throw new DsoError(ErrorCodes.CTRLS_PROTOCOL, `cannot check client credentials: ${messageOf(cause)}`, { cause });
  }
}
