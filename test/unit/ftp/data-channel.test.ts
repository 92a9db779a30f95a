import { once } from "node:events";
import net from "node:net";
import { PassThrough } from "node:stream";
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { DataChannel, DataConnectionError } from "../../../host/data/data-channel.js";
import type { DataChannelSettings, DataEndpoints } from "../../../host/data/data-channel.js";
import { FakeClock, closed, connect, freeRange, readAll, server, settings } from "./data-helpers.js";

const LOOPBACK = { localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" };

const channels: DataChannel[] = [];
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];

function channel(
  overrides: Partial<DataChannelSettings> = {},
  control: DataEndpoints = LOOPBACK,
  clock?: FakeClock,
): DataChannel {
  const made = new DataChannel(control, () => settings(overrides), clock);
  channels.push(made);
  return made;
}

function track<T extends net.Socket | Duplex>(socket: T): T {
  if (socket instanceof net.Socket) sockets.push(socket);
  return socket;
}

afterEach(async () => {
  for (const c of channels.splice(0)) c.end();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function errorOf(promise: Promise<unknown>): Promise<DataConnectionError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DataConnectionError) return error;
    throw error;
  }
  throw new Error("expected a DataConnectionError");
}

describe("a passive data connection", () => {
  it("listens on the control connection's local address and hands on the client's connection", async () => {
    const data = channel();
    const { address, port } = await data.listen();
    expect(address).toBe("127.0.0.1");
    expect(data.passive).toBe(true);
    const client = track(await connect(port));
    const socket = track(await data.open());
    client.end("hello");
    expect((await readAll(socket as net.Socket)).toString()).toBe("hello");
    expect(data.passive).toBe(false);
  });

  it("closes a connection from another address and keeps waiting for the client's", async () => {
    const data = channel();
    const { port } = await data.listen();
    const opened = data.open();
    const foreign = track(await connect(port, "127.0.0.2"));
    await closed(foreign);
    const client = track(await connect(port));
    const socket = track(await opened);
    client.end("mine");
    expect((await readAll(socket as net.Socket)).toString()).toBe("mine");
  });

  it("takes a connection from anywhere with AllowForeignAddress on", async () => {
    const data = channel({ allowForeignAddress: true });
    const { port } = await data.listen();
    const foreign = track(await connect(port, "127.0.0.2"));
    const socket = track(await data.open());
    foreign.end("from afar");
    expect((await readAll(socket as net.Socket)).toString()).toBe("from afar");
  });

  it("matches an IPv4-mapped control connection with the client's IPv4 data connection", async () => {
    const data = channel({}, { localAddress: "::ffff:127.0.0.1", remoteAddress: "::ffff:127.0.0.1" });
    const { address, port } = await data.listen();
    expect(address).toBe("127.0.0.1");
    const client = track(await connect(port));
    const socket = track(await data.open());
    client.end("mapped");
    expect((await readAll(socket as net.Socket)).toString()).toBe("mapped");
  });

  it("has one listener at a time: a new PASV closes the one before", async () => {
    const data = channel();
    const first = await data.listen();
    const second = await data.listen();
    expect(second.port).not.toBe(first.port);
    const refused = net.connect({ host: "127.0.0.1", port: first.port });
    const [error] = (await once(refused, "error")) as [NodeJS.ErrnoException];
    expect(error.code).toBe("ECONNREFUSED");
  });

  it("closes its listener when PORT names an address, and on the session's end", async () => {
    const data = channel();
    const { port } = await data.listen();
    data.target("127.0.0.1", 4000);
    expect(data.passive).toBe(false);
    const refused = net.connect({ host: "127.0.0.1", port });
    expect(((await once(refused, "error")) as [NodeJS.ErrnoException])[0].code).toBe("ECONNREFUSED");

    const later = await data.listen();
    data.end();
    const gone = net.connect({ host: "127.0.0.1", port: later.port });
    expect(((await once(gone, "error")) as [NodeJS.ErrnoException])[0].code).toBe("ECONNREFUSED");
    await expect(data.listen()).rejects.toBeInstanceOf(DataConnectionError);
  });

  it("gives up after connectTimeoutMs with ETIMEDOUT, and on abort with ECANCELED", async () => {
    const clock = new FakeClock();
    const data = channel({ connectTimeoutMs: 1_000 }, LOOPBACK, clock);
    await data.listen();
    const waiting = errorOf(data.open());
    clock.advance(999);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    expect((await waiting).errno).toBe("ETIMEDOUT");
    expect(data.passive).toBe(false);

    await data.listen();
    const controller = new AbortController();
    const aborted = errorOf(data.open({ signal: controller.signal }));
    controller.abort();
    expect((await aborted).errno).toBe("ECANCELED");
  });

  it("picks a port of PassivePorts, another when one is taken, and any port when all are", async () => {
    const min = await freeRange(2);
    const blocker = net.createServer();
    servers.push(blocker);
    await new Promise<void>((resolve) => blocker.listen(min, "127.0.0.1", () => resolve()));
    const data = channel({ passivePorts: { min, max: min + 1 } });
    expect((await data.listen()).port).toBe(min + 1);

    const other = channel({ passivePorts: { min, max: min + 1 } });
    const fallback = (await other.listen()).port;
    expect(fallback === min || fallback === min + 1).toBe(false);
    const client = track(await connect(fallback));
    const socket = track(await other.open());
    client.end("any port");
    expect((await readAll(socket as net.Socket)).toString()).toBe("any port");
  });

  it("tells MasqueradeAddress instead of its own address, looking a name up, keeping its own if that fails", async () => {
    expect((await channel({ masqueradeAddress: "203.0.113.7" }).listen()).address).toBe("203.0.113.7");
    expect((await channel({ masqueradeAddress: "localhost" }).listen()).address).toBe("127.0.0.1");
    expect((await channel({ masqueradeAddress: "no-such-host.invalid" }).listen()).address).toBe("127.0.0.1");
  });
});

describe("an active data connection", () => {
  it("connects to the PORT/EPRT address from the control connection's local address", async () => {
    const { server: srv, port, accepted } = await server();
    servers.push(srv);
    const data = channel();
    data.target("127.0.0.1", port);
    let connectedFirst = false;
    const socket = track(await data.open({ connected: () => (connectedFirst = true) }));
    const [peer] = (await accepted.next()).value as [net.Socket];
    track(peer);
    expect(connectedFirst).toBe(true);
    expect(peer.remoteAddress).toBe("127.0.0.1");
    socket.end("active");
    expect((await readAll(peer)).toString()).toBe("active");
  });

  it("reports the connect error's errno", async () => {
    const { server: srv, port } = await server();
    await new Promise((resolve) => srv.close(resolve));
    const data = channel();
    data.target("127.0.0.1", port);
    expect((await errorOf(data.open())).errno).toBe("ECONNREFUSED");
  });

  it("without PORT uses RFC 959's default, the client's port minus one", async () => {
    const { server: srv, port, accepted } = await server();
    servers.push(srv);
    const data = channel({}, { ...LOOPBACK, remotePort: port + 1 });
    const socket = track(await data.open());
    track(((await accepted.next()).value as [net.Socket])[0]);
    expect((socket as net.Socket).remotePort).toBe(port);
  });

  it("refuses to connect after EPSV ALL when no EPSV listener waits", async () => {
    const data = channel();
    data.epsvAll = true;
    data.target("127.0.0.1", 4000);
    expect((await errorOf(data.open())).errno).toBe("EINVAL");
  });
});

describe("TLS on the data connection", () => {
  it("passes the connection through `secure` after `connected`, and reports its failure", async () => {
    const data = channel();
    const order: string[] = [];
    const wrapped = new PassThrough();
    data.secure = async (socket) => {
      order.push(`secure ${socket.remoteAddress}`);
      return wrapped;
    };
    const { port } = await data.listen();
    track(await connect(port));
    expect(await data.open({ connected: () => order.push("connected") })).toBe(wrapped);
    expect(order).toEqual(["connected", "secure 127.0.0.1"]);

    const reply = { code: "522", message: "SSL/TLS required on the data channel" };
    data.secure = () => Promise.reject(new DataConnectionError("EPERM", "handshake", reply));
    const again = await data.listen();
    const client = track(await connect(again.port));
    const error = await errorOf(data.open());
    expect(error.reply).toEqual(reply);
    await closed(client);
  });
});

describe("transfers in progress", () => {
  it("count nested begins, and whenIdle waits for the last one to end", async () => {
    const clock = new FakeClock();
    const data = channel({}, LOOPBACK, clock);
    await data.whenIdle();
    data.beginTransfer();
    data.beginTransfer();
    let idle = false;
    const waiting = data.whenIdle().then(() => (idle = true));
    clock.advance(5);
    data.endTransfer();
    await new Promise((resolve) => setImmediate(resolve));
    expect(idle).toBe(false);
    expect(data.transferring).toBe(true);
    data.endTransfer();
    await waiting;
    expect(data.transferring).toBe(false);
    expect(data.lastTransferAt).toBe(5);
  });
});
