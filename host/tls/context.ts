/**
 * The TLS state of one FTP session, made when the client sends AUTH TLS and
 * used for its control connection and every data connection it opens: a
 * SecureContext of its own, and a cache of its own for TLS 1.2 session IDs.
 *
 * Keeping both per session is what makes mod_tls.c's session-reuse check mean
 * what it says. A client resumes a TLS session either with a ticket (TLS 1.3,
 * and TLS 1.2 clients that ask for one) or with a session ID (TLS 1.2 clients
 * that do not, such as curl). Node.js gives each SecureContext its own random
 * ticket keys, and the session-ID cache below holds only the sessions this FTP
 * session's connections made; so a data connection resumes only a session of
 * its own FTP session. A client of another session, holding its own tickets
 * or IDs, cannot resume here and is refused, as proftpd refuses a data
 * connection whose TLS session does not match the control connection's
 * (tls_accept, on_data).
 */
import net from "node:net";
import tls from "node:tls";
import type { SecureContext, SecureContextOptions, TLSSocketOptions } from "node:tls";
import type { CertificateFile, ChainFile, KeyFile } from "./credentials.js";
import type { NodeVersionRange } from "./protocols.js";

export interface TlsCredentials {
  readonly certificate: CertificateFile;
  readonly key: KeyFile;
  readonly chain: ChainFile | undefined;
}

/**
 * How long a session ticket or cached session stays valid: the longest RFC
 * 8446 allows (7 days). Both die with the FTP session, so they can never
 * outlive it; a short lifetime (OpenSSL's 300 seconds) would only make
 * transfers fail in a session that stayed idle between them.
 */
export const SESSION_TICKET_LIFETIME_SECONDS = 7 * 24 * 60 * 60;

/**
 * Sessions kept per FTP session. A TLS 1.2 client resumes the control
 * connection's session, so one would do; the rest is room for clients that
 * resume the latest data connection's instead.
 */
export const SESSION_CACHE_SIZE = 16;

/** The options of a session's context: the certificate followed by the chain, the key, the TLSProtocol range. */
export function secureContextOptions(credentials: TlsCredentials, range: NodeVersionRange): SecureContextOptions {
  return {
    cert: credentials.certificate.pem + (credentials.chain?.pem ?? ""),
    key: credentials.key.pem,
    minVersion: range.minVersion,
    maxVersion: range.maxVersion,
    // TLSServerCipherPreference's default (on): the server's cipher order wins.
    honorCipherOrder: true,
    sessionTimeout: SESSION_TICKET_LIFETIME_SECONDS,
  };
}

/**
 * The session-ID cache, in the shape node:tls asks of a server: a TLSSocket
 * made with `server` set to it stores new sessions through its `newSession`
 * event and finds them again through `resumeSession`. It never listens.
 */
function sessionCache(): net.Server {
  const sessions = new Map<string, Buffer>();
  const cache = new net.Server();
  cache.on("newSession", (id: Buffer, data: Buffer, done: () => void) => {
    sessions.set(id.toString("hex"), data);
    // The oldest goes first: a Map iterates in insertion order.
    for (const oldest of sessions.keys()) {
      if (sessions.size <= SESSION_CACHE_SIZE) break;
      sessions.delete(oldest);
    }
    done();
  });
  cache.on("resumeSession", (id: Buffer, done: (error: Error | null, data: Buffer | null) => void) => {
    done(null, sessions.get(id.toString("hex")) ?? null);
  });
  return cache;
}

/**
 * What every server-side TLSSocket of one FTP session is made with:
 * `new tls.TLSSocket(socket, options)` for the control connection at AUTH and
 * for each data connection under PROT P.
 */
export type SessionTlsOptions = TLSSocketOptions & {
  readonly isServer: true;
  readonly secureContext: SecureContext;
  readonly server: net.Server;
};

export function createSessionTls(credentials: TlsCredentials, range: NodeVersionRange): SessionTlsOptions {
  return {
    isServer: true,
    secureContext: tls.createSecureContext(secureContextOptions(credentials, range)),
    server: sessionCache(),
  };
}
