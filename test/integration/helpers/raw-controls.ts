/**
 * A raw controls-socket client for what dsoctl never sends: garbage, requests
 * over the wire limits, requests cut short, connections left half-open. Built
 * on the wire format itself (host/controls/wire.ts), so a well-formed request
 * here is byte for byte what dsoctl (and proftpd's ftpdctl) would send.
 */
import net from "node:net";
import { endianness } from "node:os";
import { encodeMessage, MessageDecoder, RESPONSE_LIMITS } from "../../../host/controls/wire.js";
import type { DecodedMessage } from "../../../host/controls/wire.js";

const LITTLE_ENDIAN = endianness() === "LE";

/** A request with status 0 and `args`, with no limits checked (so it may break them). */
export function request(args: readonly string[]): Buffer {
  return encodeMessage(0, args);
}

/** A request built from raw argument bytes, `argc` as given (it may lie about the count). */
export function rawRequest(argc: number, args: readonly Buffer[], status = 0): Buffer {
  const head = Buffer.alloc(8);
  if (LITTLE_ENDIAN) {
    head.writeInt32LE(status, 0);
    head.writeUInt32LE(argc, 4);
  } else {
    head.writeInt32BE(status, 0);
    head.writeUInt32BE(argc, 4);
  }
  const parts: Buffer[] = [head];
  for (const arg of args) {
    const length = Buffer.alloc(4);
    if (LITTLE_ENDIAN) length.writeUInt32LE(arg.length, 0);
    else length.writeUInt32BE(arg.length, 0);
    parts.push(length, arg);
  }
  return Buffer.concat(parts);
}

/** What came back on one connection. */
export interface RawOutcome {
  /** The decoded response, if a complete one arrived. */
  readonly response: DecodedMessage | undefined;
  /** Bytes received that did not make a response (a reply cut short, or junk). */
  readonly leftover: number;
  /** The server closed (or reset) the connection before `timeoutMs`. */
  readonly closedByServer: boolean;
}

/**
 * An open raw connection: write what you like, then read what the server says.
 * It never sends FIN unless told to (`end()`), so it can stay half-sent.
 */
export class RawControls {
  readonly #socket: net.Socket;
  readonly #decoder = new MessageDecoder(RESPONSE_LIMITS);
  #response: DecodedMessage | undefined;
  #received = 0;
  #closed = false;
  #decodeFailed = false;
  readonly #closedPromise: Promise<void>;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      this.#received += chunk.length;
      if (this.#response !== undefined || this.#decodeFailed) return;
      try {
        this.#response = this.#decoder.push(chunk);
      } catch {
        this.#decodeFailed = true;
      }
    });
    this.#closedPromise = new Promise((resolve) =>
      socket.once("close", () => {
        this.#closed = true;
        resolve();
      }),
    );
  }

  static connect(socketPath: string): Promise<RawControls> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      socket.once("connect", () => resolve(new RawControls(socket)));
      socket.once("error", reject);
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Writes and waits until the bytes are handed to the kernel. A server that
   * already answered and closed may make this fail (EPIPE); that is an
   * outcome to look at, not a test error, so it resolves either way.
   */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.#socket.write(bytes, () => resolve());
    });
  }

  /** Half-closes our side (FIN): "that is all I am going to send". */
  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Waits until the server closes the connection or `timeoutMs` passes, then reports. */
  async outcome(timeoutMs = 5_000): Promise<RawOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const closedByServer = await Promise.race([
      this.#closedPromise.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    const responseBytes =
      this.#response === undefined ? 0 : encodeMessage(this.#response.status, this.#response.args).length;
    return { response: this.#response, leftover: this.#received - responseBytes, closedByServer };
  }

  closed(): Promise<void> {
    return this.#closedPromise;
  }
}

/** Connects, sends `bytes` (optionally followed by FIN) and reports what came back. */
export async function rawExchange(
  socketPath: string,
  bytes: Uint8Array,
  options: { end?: boolean; timeoutMs?: number } = {},
): Promise<RawOutcome> {
  const client = await RawControls.connect(socketPath);
  try {
    await client.write(bytes);
    if (options.end === true) client.end();
    return await client.outcome(options.timeoutMs ?? 5_000);
  } finally {
    client.destroy();
  }
}
