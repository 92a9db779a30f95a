/**
 * A raw FTP control connection: sends a command and reads its complete reply
 * (multi-line replies end at `NNN ` with the code that opened them, RFC 959).
 */
import net from "node:net";

export class FtpControl {
  readonly #socket: net.Socket;
  #buffer = "";
  #waiters: Array<() => void> = [];
  #closed = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      this.#wake();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Connects and reads the greeting. */
  static async connect(port: number): Promise<{ client: FtpControl; greeting: string[] }> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new FtpControl(socket);
    return { client, greeting: await client.reply() };
  }

  /** The next complete reply, as its lines. */
  async reply(timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.#buffer.split("\r\n");
      const first = lines[0] ?? "";
      const code = first.slice(0, 3);
      const multi = first[3] === "-";
      for (let i = 0; i < lines.length - 1; i++) {
        const line = lines[i] as string;
        if ((!multi && i === 0) || (multi && line.startsWith(`${code} `))) {
          const reply = lines.slice(0, i + 1);
          this.#buffer = lines.slice(i + 1).join("\r\n");
          return reply;
        }
      }
      if (this.#closed) throw new Error(`connection closed with partial reply ${JSON.stringify(this.#buffer)}`);
      if (Date.now() > deadline) throw new Error(`no complete reply: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Sends lines without waiting for their replies (pipelining). */
  write(text: string): void {
    this.#socket.write(text);
  }

  async send(command: string): Promise<string[]> {
    this.#socket.write(`${command}\r\n`);
    return this.reply();
  }

  async login(user = "demo", password = "demo"): Promise<void> {
    await this.send(`USER ${user}`);
    const reply = await this.send(`PASS ${password}`);
    if (!reply[0]?.startsWith("230")) throw new Error(`login failed: ${reply.join(" / ")}`);
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once("close", () => resolve()));
  }

  close(): void {
    this.#socket.destroy();
  }
}
