/**
 * CONTRACT STUB (being implemented by a helper; exported names and signatures fixed).
 *
 * A session's data connection, as proftpd's src/data.c and mod_core.c's
 * PASV/EPSV/PORT/EPRT keep it: at most one pending passive listener or active
 * address; `open()` makes the connection for the next transfer and the
 * transfer closes it.
 */
import type { Duplex } from "node:stream";

export interface DataChannelSettings {
  /** PassivePorts min max; undefined: any port the kernel gives. */
  readonly passivePorts: { readonly min: number; readonly max: number } | undefined;
  /** MasqueradeAddress: the address told in PASV replies instead of the control connection's local one. */
  readonly masqueradeAddress: string | undefined;
  /** AllowForeignAddress: off (default) refuses PORT/EPRT to, and data connections from, another address. */
  readonly allowForeignAddress: boolean;
  /** TimeoutNoTransfer-like bound on waiting for the data connection, ms (proftpd's TimeoutNoTransfer applies). */
  readonly connectTimeoutMs: number;
}

export class DataChannel {
  readonly control: { readonly localAddress: string; readonly remoteAddress: string };
  readonly settings: () => DataChannelSettings;
  constructor(control: { readonly localAddress: string; readonly remoteAddress: string }, settings: () => DataChannelSettings) {
    this.control = control;
    this.settings = settings;
  }
  /** PROT: `C` clear, `P` private (TLS on the data connection). */
  protection: "C" | "P" = "C";
  /** EPSV ALL was sent: PORT, EPRT and PASV are refused from now on. */
  epsvAll = false;
  /**
   * Set by mod_tls.c while PROT is P: wraps a freshly made data connection in
   * TLS (and checks session reuse); `open()` calls it before handing the
   * connection to the transfer. Undefined: clear data connections.
   */
  secure: ((socket: import("node:net").Socket) => Promise<Duplex>) | undefined = undefined;
}
