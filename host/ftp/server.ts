/**
 * The FTP listener: proftpd's standalone daemon accepting connections, each
 * served by a ControlSession as a forked session process would be. Each
 * session keeps the module set it started with until it ends, as a forked
 * child keeps the modules it was forked with.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { ModuleSet } from "../modules/module-host.js";
import type { SessionState } from "../modules/module-api.js";
import { commandPath } from "./command-path.js";
import type { CommandLine } from "./command-line.js";
import { DataChannel } from "./data-channel.js";
import type { DataChannelSettings } from "./data-channel.js";
import type { DispatchOptions } from "./dispatch.js";
import { ControlSession } from "./session.js";

export interface FtpServerOptions {
  /** The module set for a new session (ModuleHost.acquireModules); released when the session ends. */
  readonly acquireModules: () => ModuleSet;
  /** ServerName, shown in the greeting. */
  readonly serverName: string;
  /** TimeoutIdle in seconds; 0 turns it off. */
  readonly idleTimeoutSeconds: number;
  /** Commands allowed before login; dispatch's PRE_LOGIN_COMMANDS unless given. */
  readonly preLoginCommands?: ReadonlySet<string>;
  /** <Limit> checks and command paths, passed on to dispatch. */
  readonly authorize?: DispatchOptions["authorize"];
  /** PassivePorts, MasqueradeAddress, AllowForeignAddress..., read when a data connection is made. */
  readonly dataSettings?: () => DataChannelSettings;
  /** Log lines: handler faults, over-long commands, failed session starts, socket errors. */
  readonly log?: (message: string) => void;
}

/** pr_session_disconnect's text for PR_SESS_DISCONNECT_SERVER_SHUTDOWN (src/session.c). */
export const DEFAULT_SHUTDOWN_MESSAGE = "Server shutting down";

/** proftpd's defaults for what the data connection needs, when the embedder gives none. */
export const DEFAULT_DATA_SETTINGS: DataChannelSettings = {
  passivePorts: undefined,
  masqueradeAddress: undefined,
  allowForeignAddress: false,
  connectTimeoutMs: 300_000,
};

function commandPathOf(session: SessionState, line: CommandLine): string | undefined {
  return commandPath(session, line);
}

/** The greeting with proftpd's default ServerIdent (src/session.c pr_session_send_banner). */
export function greeting(serverName: string, localAddress: string): string {
  return `220 ProFTPD Server (${serverName}) [${localAddress}]`;
}

export class FtpServer {
  readonly #options: FtpServerOptions;
  readonly #server: net.Server;
  readonly #sessions = new Set<ControlSession>();
  readonly #dispatch: DispatchOptions;
  #nextId = 0;

  constructor(options: FtpServerOptions) {
    this.#options = options;
    this.#server = net.createServer((socket) => this.#accept(socket));
    this.#dispatch = {
      onFault: (fault) => {
        const reason = fault.error instanceof Error ? fault.error.message : String(fault.error);
        this.#log(`session ${fault.session}: ${fault.phase} handler of ${fault.module} for ${fault.command} failed: ${reason}`);
      },
      pathOf: (session, line) => (session.user === undefined ? undefined : commandPathOf(session, line)),
      ...(options.preLoginCommands !== undefined && { preLoginCommands: options.preLoginCommands }),
      ...(options.authorize !== undefined && { authorize: options.authorize }),
    };
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
    return this.#sessions.size;
  }

  /**
   * Stops accepting, tells every session `421 FTP server shutting down -
   * <message>` (the text of proftpd's shutdown notice, src/main.c) and ends
   * it; resolves once every connection has closed.
   */
  close(message: string = DEFAULT_SHUTDOWN_MESSAGE): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const session of this.#sessions) {
      if (!session.state.closing) session.end([`421 FTP server shutting down - ${message}`]);
    }
    return closed;
  }

  #log(message: string): void {
    this.#options.log?.(message);
  }

  #accept(socket: net.Socket): void {
    const set = this.#options.acquireModules();
    const id = ++this.#nextId;
    const dataSettings = this.#options.dataSettings ?? (() => DEFAULT_DATA_SETTINGS);
    const session: ControlSession = new ControlSession(
      socket,
      (control): SessionState => {
        const endpoints = { localAddress: socket.localAddress ?? "", remoteAddress: socket.remoteAddress ?? "" };
        return {
          id,
          ...endpoints,
          modules: set.modules,
          pendingUser: undefined,
          user: undefined,
          account: undefined,
          fs: undefined,
          cwd: "/",
          home: "/",
          transferType: "A",
          data: new DataChannel(endpoints, dataSettings),
          control,
          closing: false,
        };
      },
      {
        dispatch: this.#dispatch,
        idleTimeoutSeconds: () => this.#options.idleTimeoutSeconds,
        log: (message) => this.#log(message),
        closed: () => {
          this.#sessions.delete(session);
          set.release();
        },
      },
    );
    this.#sessions.add(session);

    // modules_session_init: newest module first; a failing one ends the session.
    try {
      for (let m = set.modules.length - 1; m >= 0; m--) set.modules[m]?.sessionInit?.();
    } catch (error) {
      this.#log(`session ${id}: session init failed: ${error instanceof Error ? error.message : String(error)}`);
      session.destroy();
      return;
    }
    session.open([greeting(this.#options.serverName, socket.localAddress ?? "")]);
  }
}
