/**
 * What the control connection's TLS runs over, so that CCC can take it off
 * again. A TLSSocket made directly on a net.Socket owns it for good: ending
 * the TLS session ends the TCP connection. Made on a TlsCarrier instead, it
 * reads and writes the connection through the carrier, and CCC (RFC 4217
 * section 6, mod_tls.c's tls_ccc) works as proftpd's does: the server sends
 * its close_notify after the 200 reply, the client answers with its own, and
 * from the next byte on the connection is clear text again.
 *
 * The carrier tells where the client's close_notify ends by TLS record
 * framing: once clearing starts, the first complete record to arrive is the
 * client's close_notify (a client waits for the 200 before it shuts TLS
 * down, and sends nothing else in between). Everything after that record is
 * clear text, handed back whole. A client that skips its close_notify and
 * goes straight to clear text is recognised by the first byte, which cannot
 * start a TLS record. The client's close_notify may come before the server's
 * has gone out (Python's unwrap sends its own and only then waits): what TLS
 * still writes, its close_notify, goes through until TLS has ended, and the
 * client reads it before it sends any clear text.
 */
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** TLS record content types a client's close_notify can travel in: alert (TLS 1.2), application data (TLS 1.3). */
const ALERT = 21;
const APPLICATION_DATA = 23;
const HEADER = 5;

/**
 * The length of the TLS record at the start of `bytes`, header included;
 * `undefined` when more bytes are needed to know, or -1 when the bytes are
 * not a TLS record (clear text).
 */
export function recordLength(bytes: Uint8Array): number | undefined {
  const type = bytes[0];
  if (type === undefined) return undefined;
  if (type !== ALERT && type !== APPLICATION_DATA) return -1;
  // The record's legacy version: 3.1 to 3.4 (TLS 1.3 records say 3.3).
  if (bytes.length > 1 && bytes[1] !== 3) return -1;
  if (bytes.length < HEADER) return undefined;
  return HEADER + (((bytes[3] ?? 0) << 8) | (bytes[4] ?? 0));
}

export class TlsCarrier extends Duplex {
  readonly #raw: Socket;
  /** Set by clearAfterNextRecord until the client's close_notify has arrived. */
  #clearing: ((clearText: Buffer) => void) | undefined;
  /** The connection's reads are clear text again: the carrier no longer reads, ends or destroys it (it writes until TLS ends). */
  #released = false;
  #held = Buffer.alloc(0);

  constructor(raw: Socket) {
    super();
    this.#raw = raw;
    raw.on("data", this.#onData);
    raw.on("end", this.#onEnd);
    raw.on("close", this.#onClose);
  }

  /**
   * CCC: after the next TLS record (the client's close_notify) the carrier
   * lets go of the connection and calls `cleared` with the clear text that
   * followed the record. End the TLSSocket after calling this, so that the
   * server's close_notify goes out.
   */
  clearAfterNextRecord(cleared: (clearText: Buffer) => void): void {
    this.#clearing = cleared;
  }

  readonly #onData = (chunk: Buffer): void => {
    const cleared = this.#clearing;
    if (cleared === undefined) {
      if (!this.push(chunk)) this.#raw.pause();
      return;
    }
    this.#held = Buffer.concat([this.#held, chunk]);
    const length = recordLength(this.#held);
    if (length === undefined || this.#held.length < length) return;
    const record = length < 0 ? Buffer.alloc(0) : this.#held.subarray(0, length);
    const rest = length < 0 ? this.#held : this.#held.subarray(length);
    this.#release();
    if (record.length > 0) this.push(record);
    this.push(null);
    cleared(rest);
  };

  readonly #onEnd = (): void => {
    this.push(null);
  };

  readonly #onClose = (): void => {
    this.destroy();
  };

  #release(): void {
    this.#released = true;
    this.#clearing = undefined;
    this.#held = Buffer.alloc(0);
    this.#raw.off("data", this.#onData);
    this.#raw.off("end", this.#onEnd);
    this.#raw.off("close", this.#onClose);
  }

  override _read(): void {
    if (!this.#released) this.#raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.#raw.write(chunk, done);
  }

  /** The TLS session ended: so does the connection, unless CCC keeps it for clear text. */
  override _final(done: (error?: Error | null) => void): void {
    if (!this.#released && this.#clearing === undefined) this.#raw.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (!this.#released) {
      this.#release();
      this.#raw.destroy(error ?? undefined);
    }
    done(error);
  }
}
