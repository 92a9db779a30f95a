/**
 * TLS on a data connection under `PROT P`: mod_tls.c's tls_netio_postopen_cb
 * and tls_accept(conn, on_data). The server side of the handshake runs on the
 * fresh data socket with the FTP session's TLS; unless reuse is waived
 * (TLSOptions NoSessionReuseRequired, or after CCC), the client must resume
 * the control connection's TLS session, or the connection is refused. A
 * refusal rejects with a DataConnectionError for EPERM: the transfer answers
 * `425 Unable to build data connection: Operation not permitted`, as
 * proftpd's data.c does when postopen fails with EPERM.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { DataConnectionError } from "../data/data-channel.js";
import type { LogPriority } from "../modules/module-host.js";
import type { SessionTlsOptions } from "../tls/context.js";

/** TLS_DEFAULT_HANDSHAKE_TIMEOUT: 300 seconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 300_000;

export interface DataTlsOptions {
  /** The FTP session's TLS (see host/tls/context.ts). */
  readonly tls: SessionTlsOptions;
  /** Refuse a data connection that did not resume a TLS session of this FTP session. */
  readonly requireReuse: boolean;
  readonly handshakeTimeoutMs: number;
  /** Where mod_tls.c's TLSLog lines go: refusals at `notice`, the rest at `debug`. */
  readonly log: (priority: LogPriority, message: string) => void;
}

/** The lines proftpd's tls_log writes for each refusal, kept verbatim. */
export const DataTlsLog = {
  NOT_REUSED:
    "client did not reuse TLS session, rejecting data connection (see the NoSessionReuseRequired TLSOptions parameter)",
  REUSED: "client reused TLS session for data connection",
  FAILED: "unable to open data connection: TLS negotiation failed",
} as const;

function refused(message: string): DataConnectionError {
  return new DataConnectionError("EPERM", message);
}

/** Wraps a data socket in server-side TLS; resolves once the handshake is done and the session checked. */
export function secureDataConnection(socket: Socket, options: DataTlsOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const secured = new TLSSocket(socket, options.tls);
    const settle = (): void => {
      clearTimeout(timer);
      secured.off("secure", onSecure);
      secured.off("error", onError);
      secured.off("close", onClose);
    };
    const fail = (message: string): void => {
      settle();
      options.log("notice", message);
      // Whatever the socket reports while it goes down has been dealt with.
      secured.on("error", () => {});
      secured.destroy();
      reject(refused(message));
    };
    const onSecure = (): void => {
      settle();
      // From here on the transfer deals with what the socket reports; until then nothing may go unheard.
      secured.on("error", () => {});
      // 'secure' fires from inside OpenSSL's handshake, before a TLS 1.3 server has sent its
      // session tickets; a connection ended there (a short listing, a refusal) sends a broken
      // close_notify that clients fail on (Python's ssl: SHUTDOWN_WHILE_IN_INIT). So the
      // connection is used, or ended, from the next turn of the event loop on.
      setImmediate(() => {
        if (secured.destroyed) {
          fail(`${DataTlsLog.FAILED}: the client closed the connection`);
          return;
        }
        if (options.requireReuse && !secured.isSessionReused()) {
          options.log("notice", DataTlsLog.NOT_REUSED);
          // tls_end_sess: a close_notify, then the connection goes.
          secured.end(() => secured.destroy());
          reject(refused(DataTlsLog.NOT_REUSED));
          return;
        }
        if (options.requireReuse) options.log("debug", DataTlsLog.REUSED);
        resolve(secured);
      });
    };
    const onError = (error: Error): void => fail(`${DataTlsLog.FAILED}: ${error.message}`);
    const onClose = (): void => fail(`${DataTlsLog.FAILED}: the client closed the connection`);
    const timer = setTimeout(
      () => fail(`TLS negotiation timed out (${Math.round(options.handshakeTimeoutMs / 1000)} seconds)`),
      options.handshakeTimeoutMs,
    );
    secured.once("secure", onSecure);
    secured.once("error", onError);
    secured.once("close", onClose);
  });
}
