/**
 * The FTP control-connection server: proftpd's standalone listener and, per
 * connection, what its forked session process does (src/main.c cmd_loop).
 * Each session keeps the module set it started with until it ends, as a
 * forked child keeps the modules it was forked with.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { SessionState } from "../modules/module-api.js";
import type { ModuleSet } from "../modules/module-host.js";
import { ControlLineReader, parseCommandLine } from "./command-line.js";
import { dispatchCommand } from "./dispatch.js";
import type { DispatchOptions } from "./dispatch.js";

export interface FtpServerOptions {
  /** The module set for a new session (ModuleHost.acquireModules); released when the session ends. */
  readonly acquireModules: () => ModuleSet;
  /** ServerName, shown in the greeting. */
  readonly serverName: string;
  /** TimeoutIdle in seconds; 0 turns it off. */
  readonly idleTimeoutSeconds: number;
  /** Commands allowed before login; dispatch's PRE_LOGIN_COMMANDS unless given. */
  readonly preLoginCommands?: ReadonlySet<string>;
  /** Log lines: handler faults, over-long commands, failed session starts, socket errors. */
  readonly log?: (message: string) => void;
}

/** pr_session_disconnect's text for PR_SESS_DISCONNECT_SERVER_SHUTDOWN (src/session.c). */
export const DEFAULT_SHUTDOWN_MESSAGE = "Server shutting down";

/** cmd_loop's reply to a line that makes no command (empty, or leading white space). */
const INVALID_COMMAND = "500 Invalid command: try being more creative";

interface Connection {
  readonly socket: net.Socket;
  readonly session: SessionState;
}

/** The greeting with proftpd's default ServerIdent (src/session.c pr_session_send_banner). */
export function greeting(serverName: string, localAddress: string): string {
  return `220 ProFTPD Server (${serverName}) [${localAddress}]`;
}

export class FtpServer {
  readonly #options: FtpServerOptions;
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  #nextId = 0;

  constructor(options: FtpServerOptions) {
    this.#options = options;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host?: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Sessions now open. */
  get sessionCount(): number {
    return this.#connections.size;
  }

  /**
   * Stops accepting, tells every session `421 FTP server shutting down -
   * <message>` (the text of proftpd's shutdown notice, src/main.c) and ends
   * it; resolves once every connection has closed.
   */
  close(message: string = DEFAULT_SHUTDOWN_MESSAGE): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of this.#connections) {
      if (!connection.session.closing) this.#end(connection, [`421 FTP server shutting down - ${message}`]);
    }
    return closed;
  }

  #log(message: string): void {
    this.#options.log?.(message);
  }

  #accept(socket: net.Socket): void {
    const set = this.#options.acquireModules();
    const session: SessionState = {
      id: ++this.#nextId,
      remoteAddress: socket.remoteAddress ?? "",
      modules: set.modules,
      pendingUser: undefined,
      user: undefined,
      closing: false,
    };
    const connection: Connection = { socket, session };
    this.#connections.add(connection);
    socket.once("close", () => {
      this.#connections.delete(connection);
      set.release();
    });
    socket.on("error", (error) => this.#log(`session ${session.id}: ${error.message}`));

    // modules_session_init: newest module first; a failing one ends the session.
    try {
      for (const module of [...set.modules].reverse()) module.sessionInit?.();
    } catch (error) {
      this.#log(`session ${session.id}: session init failed: ${error instanceof Error ? error.message : String(error)}`);
      socket.destroy();
      return;
    }

    this.#write(connection, [greeting(this.#options.serverName, socket.localAddress ?? "")]);
    const idle = this.#options.idleTimeoutSeconds;
    if (idle > 0) {
      socket.setTimeout(idle * 1000, () => {
        this.#end(connection, [`421 Idle timeout (${idle} seconds): closing control connection`]);
      });
    }

    const reader = new ControlLineReader();
    socket.on("data", (chunk: Buffer) => {
      for (const event of reader.push(chunk)) {
        if (session.closing) return;
        switch (event.kind) {
          case "telnet":
            socket.write(event.reply);
            break;
          case "too-long":
            this.#log(`session ${session.id}: client sent too-long command, ignoring`);
            break;
          case "overflow":
            this.#log(`session ${session.id}: client kept sending a too-long command, disconnecting`);
            session.closing = true;
            socket.destroy();
            return;
          case "line":
            this.#command(connection, event.text);
            break;
        }
      }
    });
  }

  #command(connection: Connection, text: string): void {
    const { session } = connection;
    const line = parseCommandLine(text);
    if (line === undefined) {
      this.#write(connection, [INVALID_COMMAND]);
      return;
    }
    const options: DispatchOptions = {
      onFault: (fault) => {
        const reason = fault.error instanceof Error ? fault.error.message : String(fault.error);
        this.#log(`session ${session.id}: ${fault.phase} handler of ${fault.module} for ${fault.command} failed: ${reason}`);
      },
      ...(this.#options.preLoginCommands !== undefined && { preLoginCommands: this.#options.preLoginCommands }),
    };
    const result = dispatchCommand(session, line, options);
    if (session.closing) this.#end(connection, result.lines);
    else this.#write(connection, result.lines);
  }

  #write(connection: Connection, lines: readonly string[]): void {
    if (lines.length > 0) connection.socket.write(lines.map((l) => `${l}\r\n`).join(""));
  }

  /** Sends the last lines and closes the connection once they are written. */
  #end(connection: Connection, lines: readonly string[]): void {
    connection.session.closing = true;
    const { socket } = connection;
    socket.end(lines.map((l) => `${l}\r\n`).join(""), () => socket.destroy());
  }
}
