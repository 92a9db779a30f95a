/**
 * Who is on a controls connection when the kernel cannot be asked (the
 * peercred addon is missing): the client proves its uid by creating a file,
 * in the spirit of proftpd's own fallback (src/ctrls.c ctrls_get_creds_basic,
 * "Stevens' method"), where the client binds its socket to a mode-0700 path
 * and the server stat()s it. Node cannot bind a client socket to a path, so:
 *
 *   1. at start, dsod makes `<ControlsSocket>.identify`, a directory of mode
 *      1733 (anyone may create a file there; nobody but dsod may list it; the
 *      sticky bit keeps each file its creator's);
 *   2. on each connection, dsod sends an IDENTIFY challenge naming a fresh
 *      file there, 128 random bits its name, known only to this connection;
 *   3. the client creates that file (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600)
 *      and sends `identify NAME` after its request;
 *   4. dsod lstat()s it: a regular file, one link, mode 0600, its three times
 *      within ControlsAuthFreshness (10 s, proftpd's default), and takes its
 *      owner as the caller's uid. Only the kernel sets a file's owner, to
 *      the uid of the process that creates it.
 *
 * What this does not give, and docs/security.md says: the pid; a gid the
 * kernel vouches for (the file's group is one the client chose among its
 * groups on Linux, the directory's elsewhere, so it is reported only on
 * Linux); and the guarantee that a denied user cannot delay others, since
 * identification takes a round trip (at most MAX_IDENTIFYING at once).
 *
 * `judgeProofFile` and `proofRefusal` are pure; FileIdentity is the shell.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import type { Stats } from "node:fs";
import path from "node:path";
import type { Socket } from "node:net";
import { DsoError, ErrorCodes } from "../errors.js";
import {
  ControlsStatus,
  encodeMessage,
  IDENTIFY_ACTION,
  IDENTIFY_CHALLENGE,
  identifyDirectory,
  MessageDecoder,
  REQUEST_LIMITS,
} from "./wire.js";
import type { DecodedMessage } from "./wire.js";

/** ControlsAuthFreshness's default: how old a proof file may be. */
export const PROOF_MAX_AGE_MS = 10_000;
/** Clock skew allowed the other way (a file system on another clock, a coarse timestamp). */
const PROOF_FUTURE_MS = 2_000;
/** Connections being identified at once; past this the oldest is dropped. */
export const MAX_IDENTIFYING = 32;
/** The directory's mode: sticky, rwx for dsod, wx for everyone else. */
export const IDENTIFY_DIR_MODE = 0o1733;

/** What judgeProofFile reads of an lstat() result. */
export interface ProofStat {
  readonly isFile: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly nlink: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

export type ProofVerdict = { readonly uid: number; readonly gid: number } | { readonly refused: string };

/**
 * Judges the file a client created: the caller's uid (and, on Linux, gid;
 * -1, matching no group rule, elsewhere) or why it proves nothing.
 */
export function judgeProofFile(stat: ProofStat, nowMs: number, linux: boolean): ProofVerdict {
  if (!stat.isFile) return { refused: "the proof is not a regular file" };
  if (stat.nlink !== 1) return { refused: `the proof has ${stat.nlink} links, not 1` };
  const mode = stat.mode & 0o7777;
  if (mode !== 0o600) return { refused: `the proof has mode ${mode.toString(8).padStart(4, "0")}, not 0600` };
  const times = [
    ["access", stat.atimeMs],
    ["modification", stat.mtimeMs],
    ["change", stat.ctimeMs],
  ] as const;
  for (const [name, time] of times) {
    if (time < nowMs - PROOF_MAX_AGE_MS || time > nowMs + PROOF_FUTURE_MS) {
      const off = Math.round((nowMs - time) / 1000);
      return { refused: `the proof's ${name} time is ${off} s off, more than ${PROOF_MAX_AGE_MS / 1000} s` };
    }
  }
  return { uid: stat.uid, gid: linux ? stat.gid : -1 };
}

/** Why the messages of a connection do not answer the challenge for `name`, or undefined when they do. */
export function proofRefusal(proof: DecodedMessage, name: string): string | undefined {
  const [action, claimed, ...rest] = proof.args;
  if (action !== IDENTIFY_ACTION || rest.length > 0 || claimed === undefined) {
    return `expected '${IDENTIFY_ACTION} NAME' after the request, got '${proof.args.join(" ")}'`;
  }
  return claimed === name ? undefined : `the client named '${claimed}', not the file it was asked to create`;
}

export type IdentifyOutcome =
  { readonly uid: number; readonly gid: number; readonly request: DecodedMessage } | { readonly refused: string };

function toProofStat(stat: Stats): ProofStat {
  return {
    isFile: stat.isFile(),
    uid: stat.uid,
    gid: stat.gid,
    mode: stat.mode,
    nlink: stat.nlink,
    atimeMs: stat.atimeMs,
    mtimeMs: stat.mtimeMs,
    ctimeMs: stat.ctimeMs,
  };
}

export class FileIdentity {
  readonly directory: string;
  /** Connections between challenge and proof, oldest first. */
  readonly #identifying = new Set<Socket>();

  private constructor(directory: string) {
    this.directory = directory;
  }

  /** What dsod says at start: why the kernel is not asked (`reason`), and what is done instead. */
  notice(reason: string): string {
    const instead = `controls clients prove their uid with a file they create in '${this.directory}' instead`;
    return `${reason}; ${instead} (docs/security.md, "Controls identity without the peercred addon")`;
  }

  /**
   * Makes (or checks) the directory beside `socketPath`: a real directory,
   * owned by dsod's user, mode 1733. Throws DsoError (CTRLS_SOCKET).
   */
  static prepare(socketPath: string): FileIdentity {
    const directory = identifyDirectory(socketPath);
    try {
      mkdirSync(directory, { mode: 0o700 });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "EEXIST") {
        throw dirError(directory, (cause as Error).message, cause);
      }
    }
    const stat = lstatSync(directory);
    if (!stat.isDirectory()) throw dirError(directory, "it exists and is not a directory");
    if (stat.uid !== (process.geteuid?.() ?? stat.uid)) {
      throw dirError(directory, `it is owned by uid ${stat.uid}, not by dsod's user`);
    }
    // Set after mkdir, which the umask would trim; never group-setgid, whose files would take its group.
    chmodSync(directory, IDENTIFY_DIR_MODE);
    return new FileIdentity(directory);
  }

  /**
   * Challenges the client on `socket`, reads its request and its proof, and
   * calls `done` once: with the uid and gid the proof file shows and the
   * request, or with why the client is not identified. A connection
   * destroyed first (the server's deadline, an error, MAX_IDENTIFYING) gets
   * no call.
   */
  identify(socket: Socket, now: () => number, done: (outcome: IdentifyOutcome) => void): void {
    const name = randomBytes(16).toString("hex");
    const file = path.join(this.directory, name);
    this.#identifying.add(socket);
    if (this.#identifying.size > MAX_IDENTIFYING) {
      const [oldest] = this.#identifying;
      this.#identifying.delete(oldest as Socket);
      oldest?.destroy();
    }
    const decoder = new MessageDecoder(REQUEST_LIMITS);
    let request: DecodedMessage | undefined;
    const finish = (outcome: IdentifyOutcome): void => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      this.#identifying.delete(socket);
      done(outcome);
    };
    const onData = (chunk: Buffer): void => {
      let message: DecodedMessage | undefined;
      try {
        message = decoder.push(chunk);
        while (message !== undefined && request === undefined) {
          request = message;
          message = decoder.push(Buffer.alloc(0));
        }
      } catch (error) {
        finish({ refused: (error as Error).message });
        return;
      }
      if (message === undefined || request === undefined) return;
      const refusal = proofRefusal(message, name);
      finish(refusal !== undefined ? { refused: refusal } : this.#check(file, now(), request));
    };
    const onEnd = (): void => finish({ refused: "the client closed the connection before proving its identity" });
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", () => this.#identifying.delete(socket));
    socket.write(encodeMessage(ControlsStatus.IDENTIFY, [IDENTIFY_CHALLENGE, file]));
  }

  #check(file: string, nowMs: number, request: DecodedMessage): IdentifyOutcome {
    let stat: Stats;
    try {
      stat = lstatSync(file);
    } catch (cause) {
      return { refused: `unable to check the proof '${file}': ${(cause as Error).message}` };
    }
    try {
      unlinkSync(file);
    } catch {
      // dsod may not remove it once it gave root up (the directory is sticky); the client removes its own.
    }
    const verdict = judgeProofFile(toProofStat(stat), nowMs, process.platform === "linux");
    return "refused" in verdict ? verdict : { ...verdict, request };
  }
}

function dirError(directory: string, message: string, cause?: unknown): DsoError {
  return new DsoError(
    ErrorCodes.CTRLS_SOCKET,
    `unable to prepare the controls identity directory '${directory}': ${message}`,
    cause === undefined ? {} : { cause },
  );
}
