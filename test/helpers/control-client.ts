/**
 * A raw FTP control connection for tests: sends lines, reads whole replies
 * (multi-line ones included), and can stop reading to play a client that
 * never reads its replies.
 */
import net from "node:net";

/** A raw control connection that reads whole replies, multi-line ones included. */
export class ControlClient {
  readonly #socket: net.Socket;
  #buffer = "";
  #waiters: Array<() => void> = [];
  #ended = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      this.#buffer += text;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  static connect(port: number): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new ControlClient(socket)));
      socket.once("error", reject);
    });
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** The next complete reply, as its lines without CRLF. */
  async reply(): Promise<string[]> {
    for (;;) {
      const lines = this.#buffer.split("\r\n");
      const first = lines[0] ?? "";
      const code = first.slice(0, 3);
      const end =
        first[3] === "-" ? lines.findIndex((l, i) => i > 0 && l.startsWith(`${code} `)) : lines.length > 1 ? 0 : -1;
      if (end >= 0 && end < lines.length - 1) {
        this.#buffer = lines.slice(end + 1).join("\r\n");
        return lines.slice(0, end + 1);
      }
      if (this.#ended) throw new Error(`connection closed; pending: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async send(line: string): Promise<string[]> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  write(text: string): void {
    this.#socket.write(text);
  }

  /** Resolves once the server has closed the connection. */
  async closed(): Promise<void> {
    while (!this.#ended) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** The socket itself, to pause reading or watch its write buffer. */
  get socket(): net.Socket {
    return this.#socket;
  }
}
