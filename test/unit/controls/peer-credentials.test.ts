import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, Socket, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes } from "../../../host/errors.js";
import { peerCredentials, type PeerCredentials } from "../../../host/controls/peer-credentials.js";
import { otherUsersDir } from "../../helpers/other-users.js";

// Short path: sun_path is 108 bytes on Linux.
const dir = mkdtempSync(join(tmpdir(), "dso-pc-"));
const socketPath = join(dir, "ctl.sock");
// A client spawned as nobody runs a node it can reach: this one may be in a folder only root can enter.
const others = otherUsersDir();
let server: Server;
const accepted: ((creds: PeerCredentials) => void)[] = [];

beforeAll(async () => {
  // The spawned unprivileged client must reach the socket: traverse the dir, write the socket.
  chmodSync(dir, 0o755);
  server = createServer((socket) => {
    const creds = peerCredentials(socket);
    socket.end();
    accepted.shift()?.(creds);
  });
  await new Promise<void>((resolve) => server.listen({ path: socketPath, writableAll: true }, resolve));
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
  others.remove();
});

function nextAccepted(): Promise<PeerCredentials> {
  return new Promise((resolve) => accepted.push(resolve));
}

describe("peerCredentials (SO_PEERCRED addon)", () => {
  it("reports this process for a client in this process", async () => {
    const creds = nextAccepted();
    const client = createConnection(socketPath);
    client.resume();
    expect(await creds).toEqual({ uid: process.getuid?.(), gid: process.getgid?.(), pid: process.pid });
    client.destroy();
  });

  it.runIf(process.getuid?.() === 0)("reports uid/gid 65534 for a client spawned as nobody", async () => {
    const creds = nextAccepted();
    const script = `require("node:net").createConnection(${JSON.stringify(socketPath)}).on("error", () => process.exit(3)).resume()`;
    const child = spawn(others.node, ["-e", script], { uid: 65534, gid: 65534, cwd: dir, stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const got = await creds;
    expect({ uid: got.uid, gid: got.gid, pid: got.pid }).toEqual({ uid: 65534, gid: 65534, pid: child.pid });
    expect(await exited).toBe(0);
  });

  it("refuses a TCP socket, whose SO_PEERCRED reads as uid/gid -1 (passes any deny rule)", async () => {
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    const address = tcp.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const client = createConnection(port, "127.0.0.1");
    await new Promise<void>((resolve) => client.on("connect", resolve));
    let error: unknown;
    try {
      peerCredentials(client);
    } catch (caught) {
      error = caught;
    }
    client.destroy();
    await new Promise((resolve) => tcp.close(resolve));
    expect(error).toMatchObject({
      code: ErrorCodes.CTRLS_PROTOCOL,
      message: "cannot check client credentials: getPeerCred: not an AF_UNIX socket",
    });
  });

  it("throws DsoError when the socket has no descriptor", () => {
    let error: unknown;
    try {
      peerCredentials(new Socket());
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({
      code: ErrorCodes.CTRLS_PROTOCOL,
      message: "cannot check client credentials: socket has no file descriptor",
    });
  });
});
