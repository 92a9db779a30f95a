/**
 * A small FTP client that speaks the protocol line by line, the same for
 * dsod and proftpd: every reply comes back whole (RFC 959 multi-line replies
 * end at `NNN ` with the opening code) and verbatim, and a transfer returns
 * its preliminary and final replies along with the bytes moved. The reply
 * comparison (compare.ts), the transfer bench and the integration tests use
 * it where a client library would hide the exact replies.
 *
 * Data connections: PASV, EPSV or PORT (a listener on the control
 * connection's local address); with `protect()` (after AUTH TLS, PBSZ 0,
 * PROT P) each data connection is TLS, resuming the control connection's
 * session as proftpd's mod_tls requires by default.
 */
import net from "node:net";
import tls from "node:tls";

export type DataMode = "pasv" | "epsv" | "port" | "eprt";

export interface TransferResult {
  /** The reply to the command: `150 ...`, or the refusal (then there is no final reply). */
  readonly first: readonly string[];
  /** The reply after the data connection closed (`226 ...`), empty after a refusal. */
  readonly final: readonly string[];
  readonly data: Buffer;
}

/** How long a reply may take before the exchange counts as hung. */
const REPLY_TIMEOUT_MS = 30_000;

export class RawFtp {
  #socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #closed = false;
  #waiters: Array<() => void> = [];
  #session: Buffer | undefined;
  #protected = false;
  readonly host: string;

  private constructor(socket: net.Socket, host: string) {
    this.#socket = socket;
    this.host = host;
    this.#attach(socket);
  }

  #attach(socket: net.Socket): void {
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on("error", () => {});
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Connects and reads the greeting. */
  static async connect(port: number, host = "127.0.0.1"): Promise<{ client: RawFtp; greeting: string[] }> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new RawFtp(socket, host);
    return { client, greeting: await client.reply() };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The control connection's local port (whose connections the server must accept as data). */
  get localAddress(): string {
    return this.#socket.localAddress ?? this.host;
  }

  /** The next complete reply, as its lines (CRLF removed). */
  async reply(): Promise<string[]> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    for (;;) {
      const reply = this.#takeReply();
      if (reply !== undefined) return reply;
      if (this.#closed)
        throw new Error(`connection closed with partial reply ${JSON.stringify(this.#buffer.toString("utf8"))}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(
          `no complete reply within ${REPLY_TIMEOUT_MS} ms: ${JSON.stringify(this.#buffer.toString("utf8"))}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #takeReply(): string[] | undefined {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const end = this.#buffer.indexOf("\r\n", start);
      if (end < 0) return undefined;
      lines.push(this.#buffer.subarray(start, end).toString("utf8"));
      start = end + 2;
      const first = lines[0] as string;
      const last = lines[lines.length - 1] as string;
      const done = first[3] !== "-" || (lines.length > 1 && last.startsWith(`${first.slice(0, 3)} `));
      if (done) {
        this.#buffer = this.#buffer.subarray(start);
        return lines;
      }
    }
  }

  /** Sends one command line and reads its reply. */
  send(line: string): Promise<string[]> {
    return this.sendRaw(Buffer.from(`${line}\r\n`, "utf8"));
  }

  /** Sends bytes as they are (a NUL inside a name, a line without CRLF) and reads the reply. */
  async sendRaw(bytes: Buffer): Promise<string[]> {
    this.#socket.write(bytes);
    return this.reply();
  }

  /** Writes a line without waiting for anything (ABOR while a transfer runs). */
  write(line: string): void {
    this.#socket.write(`${line}\r\n`);
  }

  async login(user: string, password: string): Promise<void> {
    const userReply = await this.send(`USER ${user}`);
    if (!userReply[0]?.startsWith("331")) throw new Error(`USER refused: ${userReply.join(" / ")}`);
    const reply = await this.send(`PASS ${password}`);
    if (!reply[0]?.startsWith("230")) throw new Error(`login failed: ${reply.join(" / ")}`);
  }

  /**
   * AUTH TLS and the handshake on the control connection; resolves with the
   * 234 reply. The server's certificate is not verified (test certificates).
   */
  async startTls(): Promise<string[]> {
    const reply = await this.send("AUTH TLS");
    if (!reply[0]?.startsWith("234")) return reply;
    const plain = this.#socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false, servername: "localhost" });
    secure.on("session", (session: Buffer) => (this.#session = session));
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
    });
    this.#socket = secure;
    this.#attach(secure);
    return reply;
  }

  /** PBSZ 0 and PROT P: every data connection from now on is TLS. */
  async protect(): Promise<[string[], string[]]> {
    const pbsz = await this.send("PBSZ 0");
    const prot = await this.send("PROT P");
    this.#protected = prot[0]?.startsWith("200") === true;
    return [pbsz, prot];
  }

  /**
   * Sets up a data connection in `mode` and returns a way to get the socket
   * once the server has connected (active) or we have (passive). A refused
   * PASV/EPSV/PORT/EPRT comes back as `refused`.
   */
  async dataConnection(
    mode: DataMode,
  ): Promise<{ setup: string[]; socket?: () => Promise<net.Socket>; cleanup: () => void }> {
    if (mode === "pasv" || mode === "epsv") {
      const setup = await this.send(mode.toUpperCase());
      const port = mode === "pasv" ? pasvPort(setup[0] ?? "") : epsvPort(setup[0] ?? "");
      if (port === undefined) return { setup, cleanup: () => {} };
      const socket = net.connect(port, this.host);
      socket.on("error", () => {});
      const connected = new Promise<net.Socket>((resolve, reject) => {
        socket.once("connect", () => resolve(socket));
        socket.once("error", reject);
      });
      // A refused connection matters only to a transfer that goes on to use it.
      connected.catch(() => {});
      return { setup, socket: () => connected.then((s) => this.#wrap(s)), cleanup: () => socket.destroy() };
    }
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, this.localAddress, resolve));
    const address = server.address() as net.AddressInfo;
    const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
    const command =
      mode === "port"
        ? `PORT ${address.address.replaceAll(".", ",")},${address.port >> 8},${address.port & 255}`
        : `EPRT |1|${address.address}|${address.port}|`;
    const setup = await this.send(command);
    const cleanup = (): void => {
      server.close();
    };
    if (!setup[0]?.startsWith("200")) {
      cleanup();
      return { setup, cleanup };
    }
    return {
      setup,
      socket: () =>
        accepted.then((s) => {
          server.close();
          s.on("error", () => {});
          return this.#wrap(s);
        }),
      cleanup,
    };
  }

  async #wrap(socket: net.Socket): Promise<net.Socket> {
    if (!this.#protected) return socket;
    const secure = tls.connect({
      socket,
      rejectUnauthorized: false,
      servername: "localhost",
      ...(this.#session === undefined ? {} : { session: this.#session }),
    });
    secure.on("error", () => {});
    return secure;
  }

  /**
   * A download-like transfer (RETR, LIST, NLST, MLSD): the data connection,
   * the command, every byte until the server closes it, the final reply.
   * `sink` receives the bytes instead of keeping them (a large download).
   */
  async retrieve(command: string, mode: DataMode = "pasv", sink?: (chunk: Buffer) => void): Promise<TransferResult> {
    const data = await this.dataConnection(mode);
    if (data.socket === undefined) return { first: data.setup, final: [], data: Buffer.alloc(0) };
    const first = await this.send(command);
    if (!first[0]?.startsWith("1")) {
      data.cleanup();
      return { first, final: [], data: Buffer.alloc(0) };
    }
    const socket = await data.socket();
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      socket.on("data", (chunk: Buffer) => (sink === undefined ? chunks.push(chunk) : sink(chunk)));
      socket.once("close", () => resolve());
    });
    return { first, final: await this.reply(), data: Buffer.concat(chunks) };
  }

  /** An upload-like transfer (STOR, APPE, STOU): the command, `body` written and the connection closed, the final reply. */
  async store(command: string, body: Buffer, mode: DataMode = "pasv"): Promise<TransferResult> {
    const data = await this.dataConnection(mode);
    if (data.socket === undefined) return { first: data.setup, final: [], data: Buffer.alloc(0) };
    const first = await this.send(command);
    if (!first[0]?.startsWith("1")) {
      data.cleanup();
      return { first, final: [], data: Buffer.alloc(0) };
    }
    const socket = await data.socket();
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.end(body);
    });
    return { first, final: await this.reply(), data: body };
  }

  /** Resolves when the server has closed the control connection. */
  whenClosed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once("close", () => resolve()));
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** The port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).` reply. */
export function pasvPort(reply: string): number | undefined {
  const match = /^227 .*\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply);
  return match === null ? undefined : Number(match[5]) * 256 + Number(match[6]);
}

/** The port of a `229 Entering Extended Passive Mode (|||port|)` reply. */
export function epsvPort(reply: string): number | undefined {
  const match = /^229 .*\(\|\|\|(\d+)\|\)/.exec(reply);
  return match === null ? undefined : Number(match[1]);
}
