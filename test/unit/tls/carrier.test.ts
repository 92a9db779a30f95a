import { once } from "node:events";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { TlsCarrier, recordLength } from "../../../host/tls/carrier.js";
import { REPO_ROOT } from "../../helpers/paths.js";

const fixtures = path.join(REPO_ROOT, "test", "fixtures", "tls");
const context = tls.createSecureContext({
  cert: readFileSync(path.join(fixtures, "cert.pem")),
  key: readFileSync(path.join(fixtures, "key.pem")),
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe("recordLength", () => {
  it("reads a TLS record's length from its header", () => {
    expect(recordLength(Buffer.from([21, 3, 3, 0, 2, 1, 0]))).toBe(7);
    expect(recordLength(Buffer.from([23, 3, 3, 0x01, 0x00]))).toBe(261);
    expect(recordLength(Buffer.from([23, 3, 1, 0, 0]))).toBe(5);
  });

  it("waits for the whole header", () => {
    expect(recordLength(Buffer.alloc(0))).toBeUndefined();
    expect(recordLength(Buffer.from([21]))).toBeUndefined();
    expect(recordLength(Buffer.from([23, 3, 3, 0]))).toBeUndefined();
  });

  it("sees clear text, which cannot start a record of those types", () => {
    expect(recordLength(Buffer.from("PWD\r\n"))).toBe(-1);
    expect(recordLength(Buffer.from([22, 3, 1, 0, 5]))).toBe(-1);
    expect(recordLength(Buffer.from([23, 80]))).toBe(-1);
  });
});

/**
 * The client's side of CCC, as OpenSSL's SSL_shutdown does it under Python's
 * unwrap(): TLS over a pass-through stream that lets go of the socket once
 * both close_notify alerts have crossed.
 */
class ClientCarrier extends Duplex {
  readonly raw: net.Socket;
  constructor(raw: net.Socket) {
    super();
    this.raw = raw;
    raw.on("data", this.onData);
  }
  released = false;
  readonly onData = (chunk: Buffer): void => {
    this.push(chunk);
  };
  /** From now on the socket carries clear text: what the TLS session still writes is dropped. */
  release(): void {
    this.released = true;
    this.raw.off("data", this.onData);
  }
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    if (this.released) done();
    else this.raw.write(chunk, done);
  }
  override _final(done: () => void): void {
    done();
  }
}

/** Lines as they arrive on a stream, awaited one at a time. */
class Lines {
  readonly #queue: string[] = [];
  #wake: (() => void) | undefined;
  constructor(stream: NodeJS.ReadableStream) {
    let partial = "";
    stream.on("data", (chunk: Buffer | string) => {
      partial += chunk.toString();
      let at: number;
      while ((at = partial.indexOf("\r\n")) >= 0) {
        this.#queue.push(partial.slice(0, at));
        partial = partial.slice(at + 2);
      }
      this.#wake?.();
    });
  }
  async next(): Promise<string> {
    while (this.#queue.length === 0) await new Promise<void>((resolve) => (this.#wake = resolve));
    return this.#queue.shift() as string;
  }
}

/**
 * A server that answers each line `200 <line>`, over TLS on a TlsCarrier,
 * clearing TLS on `CCC`; then `200 clear <line>`. With `lateCloseNotify` its
 * close_notify goes out only once the client's has arrived.
 */
async function server(lateCloseNotify = false): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const listener = net.createServer((socket) => {
    cleanups.push(() => socket.destroy());
    const carrier = new TlsCarrier(socket);
    const secured = new tls.TLSSocket(carrier, { isServer: true, secureContext: context });
    secured.on("error", (error: Error) => seen.push(`error ${error.message}`));
    const answerClear = (chunk: Buffer): void => {
      for (const line of chunk
        .toString("latin1")
        .split("\r\n")
        .filter((l) => l !== "")) {
        seen.push(`clear ${line}`);
        socket.write(`200 clear ${line}\r\n`);
      }
    };
    secured.on("data", (chunk: Buffer) => {
      const line = chunk.toString("latin1").trim();
      seen.push(`tls ${line}`);
      if (line !== "CCC") {
        secured.write(`200 ${line}\r\n`);
        return;
      }
      carrier.clearAfterNextRecord((rest) => {
        if (lateCloseNotify) secured.end();
        socket.on("data", answerClear);
        if (rest.length > 0) answerClear(rest);
      });
      if (lateCloseNotify) secured.write("200 Clearing control channel protection\r\n");
      else secured.end("200 Clearing control channel protection\r\n");
    });
  });
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  cleanups.push(() => listener.close());
  return { port: (listener.address() as net.AddressInfo).port, seen };
}

describe.each(["TLSv1.2", "TLSv1.3"] as const)("CCC over %s", (version) => {
  it("ends TLS both ways and leaves the connection in clear text", async () => {
    const { port, seen } = await server();
    const raw = net.connect(port, "127.0.0.1");
    cleanups.push(() => raw.destroy());
    await once(raw, "connect");
    const carrier = new ClientCarrier(raw);
    const secured = tls.connect({ socket: carrier, rejectUnauthorized: false, maxVersion: version });
    await once(secured, "secureConnect");
    const ended = once(secured, "end");
    const lines = new Lines(secured);
    secured.write("NOOP\r\n");
    expect(await lines.next()).toBe("200 NOOP");
    secured.write("CCC\r\n");
    expect(await lines.next()).toBe("200 Clearing control channel protection");
    // The server's close_notify came; the client's goes, and clear text right behind it.
    await ended;
    secured.end();
    await once(secured, "finish");
    carrier.release();
    const clear = new Lines(raw);
    raw.write("PWD\r\n");
    expect(await clear.next()).toBe("200 clear PWD");
    raw.write("NOOP\r\n");
    expect(await clear.next()).toBe("200 clear NOOP");
    expect(seen).toEqual(["tls NOOP", "tls CCC", "clear PWD", "clear NOOP"]);
  });
});

describe("CCC with a client that sends its close_notify first (Python's unwrap)", () => {
  it("still sends the server's close_notify, then takes clear text", async () => {
    const { port, seen } = await server(true);
    const raw = net.connect(port, "127.0.0.1");
    cleanups.push(() => raw.destroy());
    await once(raw, "connect");
    const carrier = new ClientCarrier(raw);
    const secured = tls.connect({ socket: carrier, rejectUnauthorized: false });
    await once(secured, "secureConnect");
    const lines = new Lines(secured);
    secured.write("CCC\r\n");
    expect(await lines.next()).toBe("200 Clearing control channel protection");
    const ended = once(secured, "end");
    secured.end();
    // The server's close_notify, written after the client's arrived.
    await ended;
    carrier.release();
    const clear = new Lines(raw);
    raw.write("PWD\r\n");
    expect(await clear.next()).toBe("200 clear PWD");
    expect(seen).toEqual(["tls CCC", "clear PWD"]);
  });
});

describe("a TlsCarrier without CCC", () => {
  it("takes clear text at once from a client that skips its close_notify", async () => {
    const { port, seen } = await server();
    const raw = net.connect(port, "127.0.0.1");
    cleanups.push(() => raw.destroy());
    await once(raw, "connect");
    const carrier = new ClientCarrier(raw);
    const secured = tls.connect({ socket: carrier, rejectUnauthorized: false });
    await once(secured, "secureConnect");
    const ended = once(secured, "end");
    const lines = new Lines(secured);
    secured.write("CCC\r\n");
    expect(await lines.next()).toBe("200 Clearing control channel protection");
    await ended;
    carrier.release();
    const clear = new Lines(raw);
    raw.write("PWD\r\n");
    expect(await clear.next()).toBe("200 clear PWD");
    expect(seen).toEqual(["tls CCC", "clear PWD"]);
  });

  it("ends the connection when TLS ends, and ends TLS when the connection closes", async () => {
    let serverSide!: { secured: tls.TLSSocket; raw: net.Socket };
    const listener = net.createServer((socket) => {
      const secured = new tls.TLSSocket(new TlsCarrier(socket), { isServer: true, secureContext: context });
      secured.on("error", () => {});
      serverSide = { secured, raw: socket };
      secured.on("data", () => secured.end("221 Goodbye.\r\n"));
    });
    listener.listen(0, "127.0.0.1");
    await once(listener, "listening");
    cleanups.push(() => listener.close());
    const port = (listener.address() as net.AddressInfo).port;
    const quitting = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    cleanups.push(() => quitting.destroy());
    await once(quitting, "secureConnect");
    const lines = new Lines(quitting);
    quitting.write("QUIT\r\n");
    expect(await lines.next()).toBe("221 Goodbye.");
    await once(serverSide.raw, "close");
    const dropping = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    await once(dropping, "secureConnect");
    const closed = once(serverSide.secured, "close");
    dropping.destroy();
    await closed;
    expect(serverSide.raw.destroyed).toBe(true);
  });
});
