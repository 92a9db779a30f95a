/**
 * A session's data connection, as proftpd's src/data.c and mod_core.c's
 * PASV/EPSV/PORT/EPRT keep it: at most one pending passive listener
 * (session.d) or an active address (session.data_addr, data_port); `open()`
 * makes the connection for the next transfer and the transfer closes it.
 *
 * Like proftpd with `AllowForeignAddress off`, a passive listener hands a
 * transfer only a connection from the control connection's peer; unlike
 * proftpd (which fails the transfer with `425 ...: Permission denied`, and
 * checks only when the directive is written), a connection from elsewhere is
 * closed and the listener keeps waiting, so a third party racing the client
 * can neither steal nor spoil the transfer.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import type { Duplex } from "node:stream";
import { messageOf } from "../errors.js";
import { systemClock } from "../system/clock.js";
import type { Clock } from "../system/clock.js";
import { sameHost, unmapped } from "./data-address.js";

export interface DataChannelSettings {
  /** PassivePorts min max; undefined: any port the kernel gives. */
  readonly passivePorts: { readonly min: number; readonly max: number } | undefined;
  /** MasqueradeAddress: the address told in PASV replies instead of the control connection's local one. */
  readonly masqueradeAddress: string | undefined;
  /** AllowForeignAddress: off (default) refuses PORT/EPRT to, and data connections from, another address. */
  readonly allowForeignAddress: boolean;
  /** TimeoutNoTransfer-like bound on waiting for the data connection, ms (proftpd's TimeoutNoTransfer applies). */
  readonly connectTimeoutMs: number;
  /** TimeoutStalled in ms: a transfer that moves nothing for this long ends the session; 0 never. Default one hour. */
  readonly stalledTimeoutMs?: number;
}

/** PR_TUNABLE_TIMEOUTSTALLED: 3600 seconds. */
export const DEFAULT_STALLED_TIMEOUT_MS = 3_600_000;

/** The control connection's ends; `remotePort` gives RFC 959's default data port (the client's port - 1). */
export interface DataEndpoints {
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly remotePort?: number;
}

/** A data connection that could not be made: the errno whose strerror the 425 reply shows, or a reply of its own (a TLS failure). */
export class DataConnectionError extends Error {
  readonly errno: string;
  readonly reply: { readonly code: string; readonly message: string } | undefined;

  constructor(errno: string, message: string, reply?: { readonly code: string; readonly message: string }) {
    super(message);
    this.name = "DataConnectionError";
    this.errno = errno;
    this.reply = reply;
  }
}

export interface PassiveAddress {
  /** The address for the 227 reply: MasqueradeAddress if set, else the listener's. */
  readonly address: string;
  readonly port: number;
}

export interface OpenOptions {
  /** Aborts the wait (ABOR, or the session ending). */
  readonly signal?: AbortSignal;
  /**
   * Runs once the connection is made and before TLS starts on it: the `150`
   * goes out here, as data_passive_open/data_active_open send it before
   * pr_netio_postopen hands the connection to mod_tls.
   */
  readonly connected?: () => void;
}

function systemError(error: unknown): DataConnectionError {
  const code = (error as { code?: unknown } | undefined)?.code;
  const errno = typeof code === "string" ? code : "EIO";
  return new DataConnectionError(errno, messageOf(error));
}

/** A bound passive listener and the one connection it hands on (pr_inet_accept). */
class Listener {
  readonly port: number;
  readonly #server: net.Server;
  #socket: net.Socket | undefined;
  #wake: (() => void) | undefined;

  private constructor(server: net.Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  /** Binds `address:port`; rejects with the bind error (EADDRINUSE when taken). */
  static bind(address: string, port: number, accepts: (peer: string) => boolean): Promise<Listener> {
    return new Promise((resolve, reject) => {
      let listener: Listener | undefined;
      const server = net.createServer({ pauseOnConnect: true }, (socket) => listener?.accept(socket, accepts));
      server.once("error", reject);
      server.listen({ host: address, port, exclusive: true, backlog: 8 }, () => {
        server.off("error", reject);
        // A failing listener only matters to the transfer waiting on it, which times out.
        server.on("error", () => {});
        listener = new Listener(server, (server.address() as net.AddressInfo).port);
        resolve(listener);
      });
    });
  }

  accept(socket: net.Socket, accepts: (peer: string) => boolean): void {
    if (this.#socket !== undefined || !accepts(socket.remoteAddress ?? "")) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    // Errors surface when the transfer uses the socket; until then they must not go unhandled.
    socket.on("error", () => {});
    // proftpd closes the listening socket once it has its connection.
    this.#server.close();
    this.#wake?.();
  }

  /** The connection, once one from an accepted peer arrives. */
  wait(clock: Clock, timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        cancelTimer();
        signal?.removeEventListener("abort", onAbort);
        this.#wake = undefined;
      };
      const onAbort = (): void => {
        finish();
        reject(new DataConnectionError("ECANCELED", "data connection wait aborted"));
      };
      const cancelTimer =
        timeoutMs > 0
          ? clock.schedule(timeoutMs, () => {
              finish();
              reject(new DataConnectionError("ETIMEDOUT", "no data connection in time"));
            })
          : () => {};
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => {
        finish();
        resolve(this.#socket as net.Socket);
      };
      if (signal?.aborted === true) onAbort();
      else if (this.#socket !== undefined) this.#wake();
    });
  }

  /** Gives up the connection to the caller: close() no longer touches it. */
  take(): void {
    this.#socket = undefined;
  }

  close(): void {
    this.#server.close();
    this.#socket?.destroy();
    this.#socket = undefined;
  }
}

export class DataChannel {
  /** PROT: `C` clear, `P` private (TLS on the data connection). */
  protection: "C" | "P" = "C";
  /** EPSV ALL was sent: PORT, EPRT and PASV are refused from now on. */
  epsvAll = false;
  /**
   * Set by mod_tls.c while PROT is P: wraps a freshly made data connection in
   * TLS (and checks session reuse); `open()` calls it before handing the
   * connection to the transfer. Undefined: clear data connections.
   */
  secure: ((socket: net.Socket) => Promise<Duplex>) | undefined = undefined;
  /** The time transfers on this channel measure and time out by. */
  readonly clock: Clock;
  readonly #control: DataEndpoints;
  readonly #settings: () => DataChannelSettings;
  #listener: Listener | undefined;
  /** The session ended: nothing is listened on any more. */
  #ended = false;
  /** PORT/EPRT's address (session.data_addr); unset: the client's own address. */
  #address: string | undefined;
  /** session.data_port: PORT/EPRT's port, or the last passive port; RFC 959's default at first. */
  #port: number;
  /** Transfers in progress (proftpd's SF_XFER) and when one last began or ended, for TimeoutNoTransfer. */
  #transfers = 0;
  #lastTransferAt: number;
  /** whenIdle's callers, woken when the last transfer ends. */
  #idleWaiters: (() => void)[] = [];

  constructor(control: DataEndpoints, settings: () => DataChannelSettings, clock: Clock = systemClock) {
    this.#control = control;
    this.#settings = settings;
    this.clock = clock;
    this.#port = control.remotePort !== undefined && control.remotePort > 0 ? control.remotePort - 1 : 0;
    this.#lastTransferAt = clock.now();
  }

  /** Whether a transfer is using the channel. */
  get transferring(): boolean {
    return this.#transfers > 0;
  }

  /** The clock time a transfer last began or ended (the session's start before any). */
  get lastTransferAt(): number {
    return this.#lastTransferAt;
  }

  /**
   * A transfer starts (pr_data_open resets TimeoutNoTransfer); pair with
   * endTransfer. Calls nest: a command may hold the channel for the whole of
   * its transfer, the file's opening and closing included.
   */
  beginTransfer(): void {
    this.#transfers++;
    this.#lastTransferAt = this.clock.now();
  }

  endTransfer(): void {
    this.#transfers = Math.max(0, this.#transfers - 1);
    this.#lastTransferAt = this.clock.now();
    if (this.#transfers === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /**
   * Resolves once no transfer is in progress (at once when none is). The
   * session's end waits for it before closing what a transfer still uses,
   * as proftpd's exit handlers run stor_abort before the process goes: an
   * upload cut short by the client's leaving still removes its HiddenStores
   * file, and one that completes still renames it into place.
   */
  whenIdle(): Promise<void> {
    if (this.#transfers === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  get settings(): DataChannelSettings {
    return this.#settings();
  }

  /** Whether a passive listener waits for the next transfer (proftpd's SF_PASSIVE). */
  get passive(): boolean {
    return this.#listener !== undefined;
  }

  /**
   * PASV/EPSV: closes any pending listener and binds a new one on the control
   * connection's local address (its IPv4 form for an IPv4-mapped one, as
   * pr_netaddr_v6tov4), on a free port of PassivePorts when set, else, as
   * core_pasv falls back when the range is used up, on any port.
   */
  async listen(): Promise<PassiveAddress> {
    this.close();
    const settings = this.#settings();
    const bindAddress = unmapped(this.#control.localAddress);
    const accepts = (peer: string): boolean =>
      this.#settings().allowForeignAddress || sameHost(peer, this.#control.remoteAddress);
    let listener: Listener | undefined;
    const range = settings.passivePorts;
    if (range !== undefined) {
      for (const port of shuffledRange(range.min, range.max)) {
        try {
          listener = await Listener.bind(bindAddress, port, accepts);
          break;
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (code !== "EADDRINUSE" && code !== "EACCES") throw systemError(error);
        }
      }
    }
    try {
      listener ??= await Listener.bind(bindAddress, 0, accepts);
    } catch (error) {
      throw systemError(error);
    }
    if (this.#ended) {
      listener.close();
      throw new DataConnectionError("ECANCELED", "session ended");
    }
    this.#listener = listener;
    this.#port = listener.port;
    return { address: await this.#toldAddress(settings.masqueradeAddress, bindAddress), port: listener.port };
  }

  /**
   * MasqueradeAddress names an address or a host; a name proftpd cannot
   * resolve at startup is looked up again when needed, and while it does not
   * resolve the listener's own address is told (Bug#4104).
   */
  async #toldAddress(masquerade: string | undefined, bound: string): Promise<string> {
    if (masquerade === undefined) return bound;
    if (net.isIP(masquerade) !== 0) return masquerade;
    try {
      return (await lookup(masquerade, { family: 4 })).address;
    } catch {
      return bound;
    }
  }

  /** PORT/EPRT: the next transfer connects to `address:port`; a pending listener is closed. */
  target(address: string, port: number): void {
    this.close();
    this.#address = address;
    this.#port = port;
  }

  /**
   * The connection for a transfer: the pending listener's (waiting for the
   * client's connection), else one made to the PORT/EPRT address (or RFC
   * 959's default). Times out after `connectTimeoutMs`; wrapped in TLS when
   * `secure` is set. The caller owns and closes what it gets.
   */
  async open(options: OpenOptions = {}): Promise<Duplex> {
    const settings = this.#settings();
    let socket: net.Socket;
    const listener = this.#listener;
    if (listener !== undefined) {
      try {
        socket = await listener.wait(this.clock, settings.connectTimeoutMs, options.signal);
        listener.take();
      } finally {
        this.close();
      }
    } else if (this.epsvAll) {
      // pr_data_open: EPSV ALL allows no active connection, and there is no passive one.
      throw new DataConnectionError("EINVAL", "EPSV ALL in effect and no EPSV listener");
    } else {
      socket = await this.#connect(settings.connectTimeoutMs, options.signal);
    }
    options.connected?.();
    const secure = this.secure;
    if (secure === undefined) return socket;
    try {
      return await secure(socket);
    } catch (error) {
      socket.destroy();
      if (error instanceof DataConnectionError) throw error;
      throw systemError(error);
    }
  }

  #connect(timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
    const host = unmapped(this.#address ?? this.#control.remoteAddress);
    const port = this.#port;
    if (port <= 0 || port > 65535) return Promise.reject(new DataConnectionError("EINVAL", "no data port"));
    // data_active_open binds to the control connection's local address (any port), when the families agree.
    const local = unmapped(this.#control.localAddress);
    const localAddress = net.isIP(local) === net.isIP(host) ? local : undefined;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, ...(localAddress !== undefined && { localAddress }) });
      const finish = (): void => {
        cancelTimer();
        signal?.removeEventListener("abort", onAbort);
        socket.off("error", onError);
      };
      const onError = (error: Error): void => {
        finish();
        socket.destroy();
        reject(systemError(error));
      };
      const onAbort = (): void => {
        finish();
        socket.destroy();
        reject(new DataConnectionError("ECANCELED", "data connection aborted"));
      };
      const cancelTimer =
        timeoutMs > 0
          ? this.clock.schedule(timeoutMs, () => {
              finish();
              socket.destroy();
              reject(new DataConnectionError("ETIMEDOUT", "data connection timed out"));
            })
          : () => {};
      socket.once("error", onError);
      signal?.addEventListener("abort", onAbort, { once: true });
      socket.once("connect", () => {
        finish();
        socket.on("error", () => {});
        socket.pause();
        resolve(socket);
      });
      if (signal?.aborted === true) onAbort();
    });
  }

  /** Closes a pending passive listener and any connection it holds (a new PASV, PORT, ABOR). */
  close(): void {
    this.#listener?.close();
    this.#listener = undefined;
  }

  /** The session ended: closes what is pending, and a PASV still binding closes its listener at once. */
  end(): void {
    this.#ended = true;
    this.close();
  }
}

/** The ports from min to max in random order (pr_inet_create_conn_portrange's shuffle). */
function shuffledRange(min: number, max: number): number[] {
  const ports = Array.from({ length: max - min + 1 }, (_, i) => min + i);
  for (let i = ports.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ports[i], ports[j]] = [ports[j] as number, ports[i] as number];
  }
  return ports;
}
