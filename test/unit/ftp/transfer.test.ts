import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { DataChannel } from "../../../host/data/data-channel.js";
import type { DataChannelSettings } from "../../../host/data/data-channel.js";
import { abortReply, receiveOverData, sendOverData, transferWhat } from "../../../host/ftp/transfer.js";
import { HandlerResults } from "../../../host/modules/module-api.js";
import type { SessionState } from "../../../host/modules/module-api.js";
import { RecordingControl, testCommand, testSession } from "../../helpers/session.js";
import { FakeClock, closed, connect, readAll, server, settings } from "./data-helpers.js";

const LOOPBACK = { localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" };

interface Harness {
  readonly session: SessionState;
  readonly control: RecordingControl;
  readonly cmd: ActiveCommand;
  /** `code text` lines added with addResponse and addError. */
  readonly replies: string[];
  readonly errors: string[];
}

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function harness(overrides: Partial<DataChannelSettings> = {}, clock?: FakeClock): Harness {
  const control = new RecordingControl();
  const data = new DataChannel(LOOPBACK, () => settings(overrides), clock);
  cleanups.push(() => data.end());
  const session = testSession([], "alice", { data, control });
  const replies: string[] = [];
  const errors: string[] = [];
  const cmd = testCommand(["RETR", "f"], {
    addResponse: (code, message) => replies.push(`${code} ${message}`),
    addError: (code, message) => errors.push(`${code} ${message}`),
  });
  return { session, control, cmd, replies, errors };
}

/** PASV and the client's connection to it. */
async function passiveClient(h: Harness): Promise<net.Socket> {
  const { port } = await h.session.data.listen();
  const client = await connect(port);
  cleanups.push(() => client.destroy());
  // A transfer the server stops resets the client's end; the tests look at the server's side.
  client.on("error", () => {});
  return client;
}

/** Waits (turn by turn of the event loop, no timer) until `condition` holds. */
async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let turns = 0; !(await condition()); turns++) {
    if (turns > 100_000) throw new Error("condition never held");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "dsod-transfer-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
});

describe("sending (RETR, listings)", () => {
  it("sends the bytes after the 150, adds 226 and records the transfer", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const received = readAll(client);
    const result = await sendOverData(
      h.session,
      h.cmd,
      Readable.from([Buffer.from("hello\n"), Buffer.from("world\n")]),
      {
        what: transferWhat("f", 12),
        ascii: false,
        fileSize: 12,
      },
    );
    expect(result).toBe(HandlerResults.HANDLED);
    expect(h.control.sent).toEqual(["150 Opening BINARY mode data connection for f (12 bytes)"]);
    expect(h.replies).toEqual(["226 Transfer complete"]);
    expect((await received).toString()).toBe("hello\nworld\n");
    expect(h.cmd.transfer).toMatchObject({ direction: "download", bytes: 12, fileSize: 12, complete: true });
  });

  it("turns LF into CRLF in ASCII mode and counts the bytes on the wire", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const received = readAll(client);
    await sendOverData(h.session, h.cmd, Readable.from([Buffer.from("a\nb\r"), Buffer.from("\nc\n")]), {
      what: "file list",
      ascii: true,
    });
    expect(h.control.sent).toEqual(["150 Opening ASCII mode data connection for file list"]);
    expect((await received).toString()).toBe("a\r\nb\r\nc\r\n");
    expect(h.cmd.transfer).toMatchObject({ bytes: 9, fileSize: 9 });
  });

  it("answers 425 with strerror when the data connection cannot be made, and destroys the source", async () => {
    const h = harness();
    const { server: srv, port } = await server();
    await new Promise((resolve) => srv.close(resolve));
    h.session.data.target("127.0.0.1", port);
    const source = new PassThrough();
    const result = await sendOverData(h.session, h.cmd, source, { what: "f", ascii: false });
    expect(result).toBe(HandlerResults.ERROR);
    expect(h.errors).toEqual(["425 Unable to build data connection: Connection refused"]);
    expect(h.control.sent).toEqual([]);
    expect(source.destroyed).toBe(true);
    expect(h.cmd.transfer).toMatchObject({ bytes: 0, complete: false });
  });

  it("stops on ABOR with 426 Transfer aborted. Data connection closed.", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const source = new PassThrough();
    const result = sendOverData(h.session, h.cmd, source, { what: "f", ascii: false });
    source.write("first part");
    const received = readAll(client);
    await until(() => h.control.sent.length === 1);
    h.control.abortTarget?.();
    expect(await result).toBe(HandlerResults.ERROR);
    expect(h.errors).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(source.destroyed).toBe(true);
    await received;
    expect(h.control.abortTarget).toBeUndefined();
  });

  it("answers pr_data_abort's 426 when the client resets the data connection", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const source = new PassThrough();
    const result = sendOverData(h.session, h.cmd, source, { what: "f", ascii: false });
    await until(() => h.control.sent.length === 1);
    client.resetAndDestroy();
    let settled = false;
    void result.then(() => (settled = true));
    while (!settled) {
      source.write(Buffer.alloc(64 * 1024));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await result).toBe(HandlerResults.ERROR);
    expect(h.errors).toEqual(["426 Transfer aborted. Data connection closed"]);
  });

  it("ends the session without a reply when nothing moves for TimeoutStalled", async () => {
    const clock = new FakeClock();
    const h = harness({ stalledTimeoutMs: 1_000 }, clock);
    const client = await passiveClient(h);
    const source = new PassThrough();
    const result = sendOverData(h.session, h.cmd, source, { what: "f", ascii: false });
    const received = readAll(client);
    source.write("a");
    // The 150 is out and the one timer left is TimeoutStalled's (the wait for the connection has ended).
    await until(() => h.control.sent.length === 1 && clock.pending === 1);
    clock.advance(999);
    expect(h.session.closing).toBe(false);
    clock.advance(1);
    expect(await result).toBe(HandlerResults.ERROR);
    expect(h.session.closing).toBe(true);
    expect(h.errors).toEqual([]);
    expect(h.replies).toEqual([]);
    expect((await received).toString()).toBe("a");
  });
});

describe("receiving (STOR, APPE, STOU)", () => {
  it("writes what the client sends, binary as it comes", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const file = path.join(dir, "up");
    const handle = await open(file, "w");
    cleanups.push(() => handle.close().catch(() => undefined));
    client.end(Buffer.from("a\r\nb\n"));
    const outcome = await receiveOverData(h.session, h.cmd, handle, { what: "up", ascii: false });
    expect(outcome).toMatchObject({ complete: true, bytes: 5 });
    expect(h.control.sent).toEqual(["150 Opening BINARY mode data connection for up"]);
    expect(h.errors).toEqual([]);
    expect(h.replies).toEqual([]);
    await handle.close();
    expect(await readFile(file, "latin1")).toBe("a\r\nb\n");
  });

  it("turns CRLF into LF in ASCII mode, also across the client's writes", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const file = path.join(dir, "ascii");
    const handle = await open(file, "w");
    const outcome = receiveOverData(h.session, h.cmd, handle, { what: "ascii", ascii: true });
    client.write("one\r");
    await until(() => h.control.sent.length === 1);
    client.write("\ntwo\r\nthree\r");
    client.end();
    expect((await outcome).complete).toBe(true);
    await handle.close();
    expect(await readFile(file, "latin1")).toBe("one\ntwo\nthree\r");
  });

  it("writes from the REST offset, and names STOU's file in RFC 1123's 150", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const file = path.join(dir, "restart");
    const handle = await open(file, "w+");
    await handle.write("0123456789");
    client.end("XY");
    await receiveOverData(h.session, h.cmd, handle, { what: "ftpAbc123", ascii: false, unique: true, start: 4 });
    expect(h.control.sent).toEqual(["150 FILE: ftpAbc123"]);
    await handle.close();
    expect(await readFile(file, "latin1")).toBe("0123XY6789");
  });

  it("answers 452 Transfer aborted. No space left on device when the disk is full", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const handle = await open("/dev/full", "w");
    cleanups.push(() => handle.close().catch(() => undefined));
    client.end(Buffer.alloc(100_000, 1));
    const outcome = await receiveOverData(h.session, h.cmd, handle, { what: "big", ascii: false });
    expect(outcome.complete).toBe(false);
    expect(h.errors).toEqual(["452 Transfer aborted. No space left on device"]);
  });

  it("stops on ABOR with 426 and leaves the handle for the caller to close", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const handle = await open(path.join(dir, "aborted"), "w");
    const outcome = receiveOverData(h.session, h.cmd, handle, { what: "aborted", ascii: false });
    client.write("partial");
    await until(() => h.control.sent.length === 1);
    h.control.abortTarget?.();
    expect((await outcome).complete).toBe(false);
    expect(h.errors).toEqual(["426 Transfer aborted. Data connection closed."]);
    await handle.close();
  });
});

/** What the session does when the client closes the control connection (ControlSession's close): abort target first, then the cleanups. */
function closeControl(h: Harness): void {
  h.session.closing = true;
  h.control.abortTarget?.();
  for (const cleanup of h.control.cleanups) cleanup();
}

describe("the control connection closing during a transfer (pr_data_xfer's poll_ctrl)", () => {
  it("lets an upload whose data connection then ends complete", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const file = path.join(dir, "kept");
    const handle = await open(file, "w");
    cleanups.push(() => handle.close().catch(() => undefined));
    const outcome = receiveOverData(h.session, h.cmd, handle, { what: "kept", ascii: false });
    client.write("all of it");
    await until(() => h.control.sent.length === 1);
    await until(async () => (await readFile(file, "latin1")) === "all of it");
    closeControl(h);
    await new Promise((resolve) => setImmediate(resolve));
    client.end();
    expect(await outcome).toMatchObject({ complete: true, bytes: 9 });
    expect(h.errors).toEqual([]);
  });

  it("writes data that arrives after it, then stops the upload with 426", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const file = path.join(dir, "cut");
    const handle = await open(file, "w");
    cleanups.push(() => handle.close().catch(() => undefined));
    const outcome = receiveOverData(h.session, h.cmd, handle, { what: "cut", ascii: false });
    await until(() => h.control.sent.length === 1);
    closeControl(h);
    client.write("late");
    expect(await outcome).toMatchObject({ complete: false, bytes: 4 });
    expect(h.errors).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(await readFile(file, "latin1")).toBe("late");
  });

  it("stops a download at once", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const received = readAll(client);
    const source = new PassThrough();
    const result = sendOverData(h.session, h.cmd, source, { what: "f", ascii: false });
    source.write("first part");
    await until(() => h.control.sent.length === 1);
    closeControl(h);
    expect(await result).toBe(HandlerResults.ERROR);
    expect(h.errors).toEqual(["426 Transfer aborted. Data connection closed."]);
    await received;
  });

  it("stops an upload at once when the server ends the session (a timeout, a shutdown)", async () => {
    const h = harness();
    const client = await passiveClient(h);
    const handle = await open(path.join(dir, "ended"), "w");
    cleanups.push(() => handle.close().catch(() => undefined));
    const outcome = receiveOverData(h.session, h.cmd, handle, { what: "ended", ascii: false });
    await until(() => h.control.sent.length === 1);
    // ControlSession.end: the session is closing and the transfer is aborted; the connection closes later.
    h.session.closing = true;
    h.control.abortTarget?.();
    expect((await outcome).complete).toBe(false);
    await closed(client);
  });
});

describe("reply texts", () => {
  it("names a file with its size as data_passive_open does", () => {
    expect(transferWhat("f", 0)).toBe("f");
    expect(transferWhat("f", 1)).toBe("f (1 byte)");
    expect(transferWhat("f", 1234)).toBe("f (1234 bytes)");
  });

  it("picks pr_data_abort's code and reason for each errno", () => {
    expect(abortReply(undefined)).toEqual({ code: "426", message: "Transfer aborted. Data connection closed" });
    expect(abortReply("EPIPE")).toEqual({ code: "426", message: "Transfer aborted. Data connection closed" });
    expect(abortReply("ENOSPC")).toEqual({ code: "452", message: "Transfer aborted. No space left on device" });
    expect(abortReply("EDQUOT")).toEqual({ code: "552", message: "Transfer aborted. Disk quota exceeded" });
    expect(abortReply("EFBIG")).toEqual({ code: "552", message: "Transfer aborted. File too large" });
    expect(abortReply("EIO")).toEqual({ code: "451", message: "Transfer aborted. Input/output error" });
    expect(abortReply("ETIMEDOUT")).toEqual({ code: "450", message: "Transfer aborted. Link to file server lost" });
    expect(abortReply("EACCES")).toEqual({ code: "426", message: "Transfer aborted. Permission denied" });
  });
});
