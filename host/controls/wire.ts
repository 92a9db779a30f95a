/**
 * proftpd's controls wire format, the same for requests and responses
 * (src/ctrls.c pr_ctrls_send_msg): host-endian C ints,
 *
 *   int status; unsigned argc; argc x (unsigned len; len bytes)
 *
 * A request carries status 0 and the action as its first argument; a response
 * carries the handler's return value and one argument per output line.
 * Pure: bytes in, values out. The socket code feeds chunks as they arrive.
 */
import { DsoError, ErrorCodes } from "../errors.js";

/**
 * The `status` int of a controls response. proftpd 1.3.8 handlers answer 0
 * or -1 and ftpdctl ignores the value; upstream master (Issue #1114) gives
 * each outcome its own PR_CTRLS_STATUS_* value and ftpdctl exits with its
 * negation. We keep master's values where they are observed (access denied
 * -2, unsupported action -7), so master's ftpdctl exits 2 and 7 against dsod
 * as it would against proftpd, while 1.3.8's ftpdctl still just prints lines.
 *
 * Part of the wire format, with which the server and dsoctl share it: one
 * module file fewer for dsoctl, which lives for one request.
 */
export const ControlsStatus = {
  OK: 0,
  /** A handler refused or failed (1.3.8's -1); also a malformed request. */
  FAILED: -1,
  /** The socket ACL or the action's ACL denied the client, or it could not be identified. */
  ACCESS_DENIED: -2,
  /** No handler for the action (`unsupported action requested`). */
  UNSUPPORTED: -7,
  /**
   * ControlsMaxClients connections are already being served. Ours alone:
   * proftpd leaves extra clients queued in listen() until the next tick; we
   * answer at once so that a script can retry (EAGAIN's number).
   */
  BUSY: -11,
  /**
   * Ours alone: dsod cannot read this connection's credentials from the kernel
   * (its peercred addon is missing) and asks the client to prove its uid with
   * a file (host/controls/file-identity.ts); the lines say how, for a client
   * that does not know the exchange (EACCES's number).
   */
  IDENTIFY: -13,
} as const;

/** The first line of an IDENTIFY challenge; the second is the file to create. */
export const IDENTIFY_CHALLENGE =
  "dsod cannot read this client's credentials from the kernel: " +
  "create the file below (exclusively, mode 0600) and send its name";

/** The action of the message that answers a challenge: `identify NAME`. */
export const IDENTIFY_ACTION = "identify";

/** The directory dsod names in its challenges, beside the socket. */
export function identifyDirectory(socketPath: string): string {
  return `${socketPath}.identify`;
}

/**
 * The file an IDENTIFY challenge names, or undefined when `message` is no
 * such challenge. Only a fresh name (32 hex digits) in the identify directory
 * of the socket the client chose is taken: a server (whoever it is) cannot
 * make a client create a file anywhere else.
 */
export function identifyChallengePath(message: DecodedMessage, socketPath: string): string | undefined {
  const [first, file, ...rest] = message.args;
  if (message.status !== ControlsStatus.IDENTIFY || first !== IDENTIFY_CHALLENGE || rest.length > 0) return undefined;
  const prefix = `${identifyDirectory(socketPath)}/`;
  return file?.startsWith(prefix) === true && /^[0-9a-f]{32}$/.test(file.slice(prefix.length)) ? file : undefined;
}

/** The per-direction caps proftpd enforces on receipt (src/ctrls.c). */
export interface WireLimits {
  /** Names the direction in error messages. */
  readonly kind: "request" | "response";
  /** A request must name its action; a response may have no lines. */
  readonly minArgs: number;
  readonly maxArgs: number;
  /** Longest first argument (the action, in a request), in bytes. */
  readonly maxFirstArgBytes: number;
  /** Longest of the other arguments, in bytes. */
  readonly maxArgBytes: number;
}

/**
 * pr_ctrls_recv_request: CTRLS_MAX_NREQARGS 32 (the action included),
 * CTRLS_MAX_REQARGLEN 256, and the action read into `char reqaction[128]`
 * with `reqarglen >= sizeof(reqaction)` rejected, so at most 127 bytes.
 */
export const REQUEST_LIMITS: WireLimits = {
  kind: "request",
  minArgs: 1,
  maxArgs: 32,
  maxFirstArgBytes: 127,
  maxArgBytes: 256,
};

/**
 * pr_ctrls_recv_response: CTRLS_MAX_NRESPARGS 1024 lines, each read into a
 * PR_TUNABLE_BUFFER_SIZE (1024) buffer with `resparglen >= sizeof(response)`
 * rejected, so at most 1023 bytes a line.
 */
export const RESPONSE_LIMITS: WireLimits = {
  kind: "response",
  minArgs: 0,
  maxArgs: 1024,
  maxFirstArgBytes: 1023,
  maxArgBytes: 1023,
};

export interface DecodedMessage {
  readonly status: number;
  readonly args: readonly string[];
}

const INT_BYTES = 4;
/** os.endianness(), read off a typed array: node:os is not worth loading for dsoctl. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function protocolError(message: string, cause?: unknown): DsoError {
  return new DsoError(ErrorCodes.CTRLS_PROTOCOL, message, cause === undefined ? {} : { cause });
}

function argName(limits: WireLimits, index: number): string {
  if (index === 0 && limits.kind === "request") {
    return "controls request action";
  }
  return `controls ${limits.kind} ${limits.kind === "request" ? "argument" : "line"} ${index + 1}`;
}

function checkArgCount(argc: number, limits: WireLimits): void {
  if (argc > limits.maxArgs) {
    const unit = limits.kind === "request" ? "arguments" : "lines";
    throw protocolError(`controls ${limits.kind} has ${argc} ${unit}, more than the maximum of ${limits.maxArgs}`);
  }
  if (argc < limits.minArgs) {
    throw protocolError(`controls ${limits.kind} has no action`);
  }
}

function checkArgLength(length: number, index: number, limits: WireLimits): void {
  const max = index === 0 ? limits.maxFirstArgBytes : limits.maxArgBytes;
  if (length > max) {
    throw protocolError(`${argName(limits, index)} is ${length} bytes, more than the maximum of ${max}`);
  }
}

/**
 * Frames one message. With `limits`, refuses what the receiving side would
 * reject, so an oversized reply fails here, not as a half-read on the client.
 */
export function encodeMessage(status: number, args: readonly string[], limits?: WireLimits): Buffer {
  if (!Number.isInteger(status) || status < -0x8000_0000 || status > 0x7fff_ffff) {
    throw protocolError(`controls status ${status} is not a 32-bit integer`);
  }
  const encoded = args.map((arg) => Buffer.from(arg, "utf8"));
  if (limits !== undefined) {
    checkArgCount(encoded.length, limits);
    encoded.forEach((bytes, index) => checkArgLength(bytes.length, index, limits));
  }
  const size = encoded.reduce((sum, bytes) => sum + INT_BYTES + bytes.length, 2 * INT_BYTES);
  const out = Buffer.allocUnsafe(size);
  let offset = LITTLE_ENDIAN ? out.writeInt32LE(status, 0) : out.writeInt32BE(status, 0);
  offset = writeUint(out, encoded.length, offset);
  for (const bytes of encoded) {
    offset = writeUint(out, bytes.length, offset);
    offset += bytes.copy(out, offset);
  }
  return out;
}

function writeUint(out: Buffer, value: number, offset: number): number {
  return LITTLE_ENDIAN ? out.writeUInt32LE(value, offset) : out.writeUInt32BE(value, offset);
}

function readUint(buf: Buffer, offset: number): number {
  return LITTLE_ENDIAN ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

/**
 * Incremental decoder: feed it socket chunks in order. Every length is
 * checked against the limits as soon as its 4 bytes arrive, before any byte
 * it announces is awaited, so a hostile peer cannot make us buffer more than
 * one maximal message. A message cut short simply stays pending; use
 * `inMessage` on end-of-stream to tell a clean close from a truncation.
 */
export class MessageDecoder {
  readonly #limits: WireLimits;
  #buffer: Buffer = Buffer.alloc(0);
  #status: number | undefined;
  #argc: number | undefined;
  #args: string[] = [];

  constructor(limits: WireLimits) {
    this.#limits = limits;
  }

  /** Bytes received but not yet returned as part of a message. */
  get pendingBytes(): number {
    return this.#buffer.length;
  }

  /**
   * True once any part of a message has arrived and the message is not
   * complete: a stream that ends now was cut short, even at an argument
   * boundary (where no bytes are left pending).
   */
  get inMessage(): boolean {
    return this.#status !== undefined || this.#buffer.length > 0;
  }

  /**
   * Appends `chunk` and returns the next complete message, or undefined while
   * one is still incomplete. Bytes after a complete message stay buffered:
   * `push(Buffer.alloc(0))` decodes the next one. Throws DsoError
   * (CTRLS_PROTOCOL) when a limit is broken; the decoder is then unusable.
   */
  push(chunk: Uint8Array): DecodedMessage | undefined {
    if (chunk.length > 0) {
      this.#buffer = this.#buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffer, chunk]);
    }
    let offset = 0;
    if (this.#status === undefined) {
      if (this.#buffer.length < INT_BYTES) {
        return undefined;
      }
      this.#status = LITTLE_ENDIAN ? this.#buffer.readInt32LE(0) : this.#buffer.readInt32BE(0);
      offset += INT_BYTES;
    }
    if (this.#argc === undefined) {
      if (this.#buffer.length - offset < INT_BYTES) {
        return this.#keep(offset);
      }
      const argc = readUint(this.#buffer, offset);
      checkArgCount(argc, this.#limits);
      this.#argc = argc;
      offset += INT_BYTES;
    }
    while (this.#args.length < this.#argc) {
      if (this.#buffer.length - offset < INT_BYTES) {
        return this.#keep(offset);
      }
      const length = readUint(this.#buffer, offset);
      checkArgLength(length, this.#args.length, this.#limits);
      if (this.#buffer.length - offset - INT_BYTES < length) {
        return this.#keep(offset);
      }
      const start = offset + INT_BYTES;
      this.#args.push(this.#decodeArg(this.#buffer.subarray(start, start + length)));
      offset = start + length;
    }
    const message: DecodedMessage = { status: this.#status, args: this.#args };
    this.#status = undefined;
    this.#argc = undefined;
    this.#args = [];
    this.#keep(offset);
    return message;
  }

  #decodeArg(bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch (cause) {
      throw protocolError(`${argName(this.#limits, this.#args.length)} is not valid UTF-8`, cause);
    }
  }

  /** Drops the consumed prefix; a length prefix not yet satisfied is re-read next time. */
  #keep(consumed: number): undefined {
    if (consumed > 0) {
      this.#buffer = this.#buffer.subarray(consumed);
    }
    return undefined;
  }
}
