import { once } from "node:events";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { constants } from "node:crypto";
import tls from "node:tls";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DataConnectionError } from "../../../host/data/data-channel.js";
import type { LogPriority } from "../../../host/modules/module-host.js";
import { createSessionTls } from "../../../host/tls/context.js";
import type { SessionTlsOptions } from "../../../host/tls/context.js";
import { certificateFile, keyFile } from "../../../host/tls/credentials.js";
import { DataTlsLog, secureDataConnection } from "../../../host/static/tls-data.js";
import { REPO_ROOT } from "../../helpers/paths.js";

const fixtures = path.join(REPO_ROOT, "test", "fixtures", "tls");
const credentials = {
  certificate: certificateFile("/c.pem", { text: readFileSync(path.join(fixtures, "cert.pem"), "latin1") }),
  key: keyFile("/k.pem", { text: readFileSync(path.join(fixtures, "key.pem"), "latin1") }),
  chain: undefined,
};
const RANGE = { minVersion: "TLSv1.2", maxVersion: "TLSv1.3" } as const;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  vi.useRealTimers();
});

/** A listener whose next connection is handed to `accept`. */
async function listen(accept: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer(accept);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/**
 * A TLS client of `version`. Without tickets it resumes by session ID only,
 * as curl does over TLS 1.2 (it turns tickets off).
 */
function client(port: number, version: tls.SecureVersion, session?: Buffer, tickets = true): tls.TLSSocket {
  const socket = tls.connect({
    port,
    host: "127.0.0.1",
    rejectUnauthorized: false,
    maxVersion: version,
    ...(session && { session }),
    ...(!tickets && { secureOptions: constants.SSL_OP_NO_TICKET }),
  });
  socket.on("error", () => {});
  cleanups.push(() => socket.destroy());
  return socket;
}

/** A control connection secured with the FTP session's TLS, as the server does after AUTH TLS; resolves the client's TLS session. */
async function controlSession(
  sessionTls: SessionTlsOptions,
  version: tls.SecureVersion,
  tickets = true,
): Promise<Buffer> {
  const port = await listen((socket) => {
    const secured = new tls.TLSSocket(socket, sessionTls);
    secured.on("error", () => {});
    cleanups.push(() => secured.destroy());
  });
  const [session] = (await once(client(port, version, undefined, tickets), "session")) as [Buffer];
  return session;
}

interface Harness {
  readonly result: Promise<Duplex>;
  readonly log: [LogPriority, string][];
}

async function dataListener(
  sessionTls: SessionTlsOptions,
  requireReuse: boolean,
  handshakeTimeoutMs = 60_000,
): Promise<{ port: number; next: Promise<Harness> }> {
  let accepted!: (harness: Harness) => void;
  const next = new Promise<Harness>((resolve) => (accepted = resolve));
  const port = await listen((socket) => {
    const log: [LogPriority, string][] = [];
    const result = secureDataConnection(socket, {
      tls: sessionTls,
      requireReuse,
      handshakeTimeoutMs,
      log: (priority, message) => log.push([priority, message]),
    });
    result.then(
      (duplex) => cleanups.push(() => duplex.destroy()),
      () => {},
    );
    accepted({ result, log });
  });
  return { port, next };
}

async function refusal(result: Promise<Duplex>): Promise<{ errno: string; message: string }> {
  try {
    await result;
  } catch (error) {
    if (error instanceof DataConnectionError) return { errno: error.errno, message: error.message };
    throw error;
  }
  throw new Error("the data connection was accepted");
}

describe.each(["TLSv1.2", "TLSv1.3"] as const)("a PROT P data connection over %s", (version) => {
  it("is accepted when the client resumes the control connection's session, and carries data", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const session = await controlSession(sessionTls, version);
    const { port, next } = await dataListener(sessionTls, true);
    const data = client(port, version, session);
    const { result, log } = await next;
    const duplex = await result;
    expect(data.isSessionReused()).toBe(true);
    expect(log).toEqual([["debug", DataTlsLog.REUSED]]);
    duplex.end("226 bytes");
    const received: Buffer[] = [];
    data.on("data", (chunk: Buffer) => received.push(chunk));
    await once(data, "end");
    expect(Buffer.concat(received).toString()).toBe("226 bytes");
  });

  it("is refused with EPERM when the client starts a new session, and the client is told by close_notify", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    await controlSession(sessionTls, version);
    const { port, next } = await dataListener(sessionTls, true);
    const data = client(port, version);
    const { result, log } = await next;
    expect(await refusal(result)).toEqual({ errno: "EPERM", message: DataTlsLog.NOT_REUSED });
    expect(log).toEqual([["notice", DataTlsLog.NOT_REUSED]]);
    data.resume();
    await once(data, "end");
  });

  it("is refused when the client resumes a session of another FTP session", async () => {
    const theirs = createSessionTls(credentials, RANGE);
    const session = await controlSession(theirs, version);
    const ours = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(ours, true);
    const data = client(port, version, session);
    const { result } = await next;
    expect((await refusal(result)).message).toBe(DataTlsLog.NOT_REUSED);
    expect(data.isSessionReused()).toBe(false);
  });

  it("is accepted without reuse when reuse is not required (NoSessionReuseRequired)", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(sessionTls, false);
    const data = client(port, version);
    const connected = once(data, "secureConnect");
    const { result, log } = await next;
    await result;
    await connected;
    expect(data.isSessionReused()).toBe(false);
    expect(log).toEqual([]);
  });
});

describe("a TLS 1.3 data connection ended as soon as it is handed on (a short listing)", () => {
  it("reaches the client after the server's session tickets, so the client sees a clean close_notify", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(sessionTls, false);
    const data = client(port, "TLSv1.3");
    const events: string[] = [];
    data.on("session", () => events.push("ticket"));
    data.on("data", (chunk: Buffer) => events.push(`data ${chunk.toString()}`));
    const { result } = await next;
    (await result).end("x");
    await once(data, "end");
    // Ended from inside OpenSSL's handshake (the 'secure' event), the data came first and the
    // close_notify after the tickets was malformed (Python's ssl: SHUTDOWN_WHILE_IN_INIT).
    expect(events).toEqual(["ticket", "ticket", "data x"]);
  });
});

describe("a PROT P data connection over TLS 1.2 without tickets (session IDs, as curl resumes)", () => {
  it("is accepted when it resumes the control connection's session", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const session = await controlSession(sessionTls, "TLSv1.2", false);
    const { port, next } = await dataListener(sessionTls, true);
    const data = client(port, "TLSv1.2", session, false);
    const connected = once(data, "secureConnect");
    const { result, log } = await next;
    await result;
    await connected;
    expect(data.isSessionReused()).toBe(true);
    expect(log).toEqual([["debug", DataTlsLog.REUSED]]);
  });

  it("is refused when it offers another FTP session's session ID", async () => {
    const theirs = createSessionTls(credentials, RANGE);
    const session = await controlSession(theirs, "TLSv1.2", false);
    const ours = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(ours, true);
    client(port, "TLSv1.2", session, false);
    const { result } = await next;
    expect((await refusal(result)).message).toBe(DataTlsLog.NOT_REUSED);
  });
});

describe("a data connection's failed handshake", () => {
  it("is refused with EPERM when the client speaks no TLS", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(sessionTls, true);
    const plain = net.connect(port, "127.0.0.1");
    plain.on("error", () => {});
    cleanups.push(() => plain.destroy());
    plain.write("hello, this is not a ClientHello\r\n");
    const { result, log } = await next;
    const refused = await refusal(result);
    expect(refused.errno).toBe("EPERM");
    expect(refused.message.startsWith(`${DataTlsLog.FAILED}: `)).toBe(true);
    expect(log).toEqual([["notice", refused.message]]);
  });

  it("is refused when the client closes before the handshake", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(sessionTls, true);
    const plain = net.connect(port, "127.0.0.1", () => plain.end());
    const { result } = await next;
    expect((await refusal(result)).message).toMatch(new RegExp(`^${DataTlsLog.FAILED}: `));
  });

  it("times out as TLSTimeoutHandshake says", async () => {
    const sessionTls = createSessionTls(credentials, RANGE);
    const { port, next } = await dataListener(sessionTls, true, 300_000);
    const plain = net.connect(port, "127.0.0.1");
    cleanups.push(() => plain.destroy());
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { result, log } = await next;
    vi.advanceTimersByTime(300_000);
    expect((await refusal(result)).message).toBe("TLS negotiation timed out (300 seconds)");
    expect(log).toEqual([["notice", "TLS negotiation timed out (300 seconds)"]]);
  });
});
