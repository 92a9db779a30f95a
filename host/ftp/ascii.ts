/**
 * TYPE A on the wire (RFC 959 3.1.1.1: lines end in CRLF), as proftpd's
 * src/ascii.c converts: going out, every LF without a CR before it gains one
 * (pr_ascii_ftp_to_crlf); coming in, a CR directly before an LF is dropped and
 * any other CR kept (pr_ascii_ftp_from_crlf). Each converter keeps the one
 * byte of state that crosses a chunk boundary, so the result never depends on
 * how the bytes were split.
 */
const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from([CR, LF]);

/** LF → CRLF, for data sent to the client. */
export class ToCrlf {
  /** Whether the byte before the next chunk was a CR (have_dangling_cr). */
  #lastWasCr = false;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts: Buffer[] = [];
    let from = 0;
    for (let lf = chunk.indexOf(LF); lf >= 0; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf === 0 ? this.#lastWasCr : chunk[lf - 1] === CR;
      if (before) continue;
      parts.push(chunk.subarray(from, lf), CRLF);
      from = lf + 1;
    }
    this.#lastWasCr = chunk[chunk.length - 1] === CR;
    if (from === 0) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }
}

/** CRLF → LF, for data received from the client. */
export class FromCrlf {
  /** A CR ended the previous chunk: whether it is dropped depends on the next byte. */
  #heldCr = false;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts: Buffer[] = [];
    if (this.#heldCr && chunk[0] !== LF) parts.push(Buffer.from([CR]));
    this.#heldCr = false;
    let from = 0;
    for (let cr = chunk.indexOf(CR); cr >= 0; cr = chunk.indexOf(CR, cr + 1)) {
      if (cr === chunk.length - 1) {
        parts.push(chunk.subarray(from, cr));
        from = chunk.length;
        this.#heldCr = true;
      } else if (chunk[cr + 1] === LF) {
        parts.push(chunk.subarray(from, cr));
        from = cr + 1;
      }
    }
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }

  /** The end of the data: a CR still held was not followed by an LF, so it stays. */
  end(): Buffer {
    const held = this.#heldCr;
    this.#heldCr = false;
    return held ? Buffer.from([CR]) : Buffer.alloc(0);
  }
}
