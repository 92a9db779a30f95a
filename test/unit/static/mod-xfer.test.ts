import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { SessionFilesystem } from "../../../host/fs/session-fs.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { DataChannel } from "../../../host/data/data-channel.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { EngineModule, SessionState } from "../../../host/modules/module-api.js";
import { dataChannelSettings } from "../../../host/static/core-data.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import type { CoreModule } from "../../../host/static/mod-core.js";
import { createXferModule, hiddenStorePath, parseHiddenStores, parseOffset } from "../../../host/static/mod-xfer.js";
import type { XferModule, XferOptions } from "../../../host/static/mod-xfer.js";
import { XferlogWriter } from "../../../host/xfer/xferlog.js";
import { RecordingControl, testCommand, testSession } from "../../helpers/session.js";
import { FakeClock, connect, readAll } from "../ftp/data-helpers.js";

const cleanups: (() => unknown)[] = [];
let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "dsod-xfer-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Setup {
  readonly core: CoreModule;
  readonly xfer: XferModule;
  readonly session: SessionState;
  readonly control: RecordingControl;
}

async function setup(
  options: XferOptions = {},
  clock?: FakeClock,
  extra: readonly EngineModule[] = [],
): Promise<Setup> {
  const core = createCoreModule([]);
  const writer = new XferlogWriter();
  cleanups.push(() => writer.close());
  const xfer = createXferModule(core.data, { xferlog: writer, ...options });
  const endpoints = { localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" };
  const data = new DataChannel(endpoints, () => dataChannelSettings(core.data, xfer.settings.timeoutStalled), clock);
  cleanups.push(() => data.end());
  const fs = await SessionFilesystem.open(root, { umask: 0o022 });
  cleanups.push(() => fs.close());
  const control = new RecordingControl();
  const session = testSession([core.module, xfer.module, ...extra], "alice", {
    ...endpoints,
    data,
    fs,
    control,
    transferType: "I",
  });
  return { core, xfer, session, control };
}

async function send(session: SessionState, text: string): Promise<string[]> {
  const line = parseCommandLine(text);
  if (line === undefined) throw new Error(`not a command: ${text}`);
  return (await dispatchCommand(session, line)).lines.slice();
}

function directive(s: Setup, argv: string[]): string | undefined {
  const name = (argv[0] ?? "").toLowerCase();
  const handler = [...s.core.module.directives, ...s.xfer.module.directives].find((d) => d.name.toLowerCase() === name);
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  try {
    handler.run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
    return undefined;
  } catch (error) {
    if (isDsoError(error)) return error.message;
    throw error;
  }
}

/** PASV, the client's connection, then `command` while `client` works its end; the command's reply lines. */
async function overData<T>(
  s: Setup,
  command: string,
  client: (socket: net.Socket) => Promise<T>,
): Promise<{ lines: string[]; client: T }> {
  const [reply = ""] = await send(s.session, "PASV");
  const match = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(reply);
  if (match === null) throw new Error(reply);
  const socket = await connect(Number(match[1]) * 256 + Number(match[2]));
  cleanups.push(() => socket.destroy());
  const clientDone = client(socket);
  const lines = await send(s.session, command);
  return { lines, client: await clientDone };
}

const upload =
  (...parts: string[]) =>
  async (socket: net.Socket): Promise<void> => {
    for (const part of parts) socket.write(part);
    socket.end();
  };

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let turns = 0; !(await condition()); turns++) {
    if (turns > 100_000) throw new Error("condition never held");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** What the session does when the client closes the control connection (ControlSession's close): abort target first, then the cleanups. */
function closeControl(s: Setup): void {
  s.session.closing = true;
  s.control.abortTarget?.();
  for (const cleanup of s.control.cleanups) cleanup();
}

const exists = (file: string): Promise<boolean> =>
  stat(path.join(root, file)).then(
    () => true,
    () => false,
  );

describe("RETR (xfer_pre_retr, xfer_retr)", () => {
  it("sends the file after 150 with its size, then 226", async () => {
    const s = await setup();
    await writeFile(path.join(root, "f.txt"), "hello\nworld\n");
    const { lines, client } = await overData(s, "RETR f.txt", readAll);
    expect(s.control.sent).toEqual(["150 Opening BINARY mode data connection for f.txt (12 bytes)"]);
    expect(lines).toEqual(["226 Transfer complete"]);
    expect(client.toString()).toBe("hello\nworld\n");
  });

  it("converts LF to CRLF in ASCII mode", async () => {
    const s = await setup();
    s.session.transferType = "A";
    await writeFile(path.join(root, "f.txt"), "a\nb\n");
    const { client } = await overData(s, "RETR f.txt", readAll);
    expect(s.control.sent).toEqual(["150 Opening ASCII mode data connection for f.txt (4 bytes)"]);
    expect(client.toString()).toBe("a\r\nb\r\n");
  });

  it("starts at REST's offset and names the bytes left", async () => {
    const s = await setup();
    await writeFile(path.join(root, "f"), "0123456789");
    expect(await send(s.session, "REST 4")).toEqual([
      "350 Restarting at 4. Send STORE or RETRIEVE to initiate transfer",
    ]);
    const { client } = await overData(s, "RETR f", readAll);
    expect(s.control.sent).toEqual(["150 Opening BINARY mode data connection for f (6 bytes)"]);
    expect(client.toString()).toBe("456789");
    expect(await send(s.session, "REST 11")).toEqual([
      "350 Restarting at 11. Send STORE or RETRIEVE to initiate transfer",
    ]);
    expect(await send(s.session, "RETR f")).toEqual(["554 REST: invalid f argument"]);
  });

  it("refuses what is missing or not a file, and a restart when AllowRetrieveRestart is off", async () => {
    const s = await setup();
    await mkdir(path.join(root, "dir"));
    await writeFile(path.join(root, "f"), "x");
    expect(await send(s.session, "RETR nope")).toEqual(["550 nope: No such file or directory"]);
    expect(await send(s.session, "RETR dir")).toEqual(["550 dir: Not a regular file"]);
    expect(await send(s.session, "RETR")).toEqual(["500 'RETR' not understood"]);
    expect(await send(s.session, "RETR f\0.txt")).toEqual(["550 f: Invalid argument"]);
    directive(s, ["AllowRetrieveRestart", "off"]);
    await send(s.session, "REST 1");
    expect(await send(s.session, "RETR f")).toEqual(["451 f: Restart not permitted, try again"]);
  });

  it("gives POST_CMD handlers the command's path and what the transfer moved", async () => {
    let seen: unknown;
    const watcher: EngineModule = {
      name: "mod_watch.c",
      kind: "dso",
      commands: [
        {
          command: "RETR",
          phase: Phases.POST_CMD,
          run: (cmd) => {
            seen = { path: cmd.path, ...cmd.transfer };
            return HandlerResults.DECLINED;
          },
        },
      ],
      siteCommands: [],
      directives: [],
      features: [],
      help: [],
    };
    const s = await setup({}, undefined, [watcher]);
    await writeFile(path.join(root, "f"), "12345");
    await overData(s, "RETR f", readAll);
    expect(seen).toMatchObject({ path: "/f", direction: "download", bytes: 5, fileSize: 5, complete: true });
  });
});

describe("STOR and APPE (xfer_pre_stor, xfer_stor)", () => {
  it("stores a new file after 150, then 226", async () => {
    const s = await setup();
    const { lines } = await overData(s, "STOR up.bin", upload("a\r\n", "b"));
    expect(s.control.sent).toEqual(["150 Opening BINARY mode data connection for up.bin"]);
    expect(lines).toEqual(["226 Transfer complete"]);
    expect(await readFile(path.join(root, "up.bin"), "latin1")).toBe("a\r\nb");
  });

  it("converts CRLF to LF in ASCII mode", async () => {
    const s = await setup();
    s.session.transferType = "A";
    await overData(s, "STOR up.txt", upload("one\r", "\ntwo\r\n"));
    expect(await readFile(path.join(root, "up.txt"), "latin1")).toBe("one\ntwo\n");
  });

  it("replaces a file only with AllowOverwrite on", async () => {
    const s = await setup();
    await writeFile(path.join(root, "f"), "old");
    expect(await send(s.session, "STOR f")).toEqual(["550 f: Overwrite permission denied"]);
    directive(s, ["AllowOverwrite", "on"]);
    await overData(s, "STOR f", upload("new"));
    expect(await readFile(path.join(root, "f"), "latin1")).toBe("new");
    await mkdir(path.join(root, "dir"));
    expect(await send(s.session, "STOR dir")).toEqual(["550 dir: Not a regular file"]);
  });

  it("appends and restarts only with AllowStoreRestart on", async () => {
    const s = await setup();
    await writeFile(path.join(root, "f"), "0123456789");
    expect(await send(s.session, "APPE f")).toEqual(["451 f: Append/Restart not permitted, try again"]);
    directive(s, ["AllowStoreRestart", "on"]);
    await overData(s, "APPE f", upload("AB"));
    expect(await readFile(path.join(root, "f"), "latin1")).toBe("0123456789AB");
    directive(s, ["AllowOverwrite", "on"]);
    await send(s.session, "REST 3");
    await overData(s, "STOR f", upload("xy"));
    expect(await readFile(path.join(root, "f"), "latin1")).toBe("012xy56789AB");
    await send(s.session, "REST 100");
    expect(await send(s.session, "STOR f")).toEqual(["554 REST: invalid f argument"]);
    // xfer_stor seeks APPE's file to its end and then to the REST offset.
    await send(s.session, "REST 4");
    await overData(s, "APPE f", upload("AP"));
    expect(await readFile(path.join(root, "f"), "latin1")).toBe("012xAP6789AB");
    await send(s.session, "REST 100");
    expect(await send(s.session, "APPE f")).toEqual(["554 REST: invalid f argument"]);
  });

  it("appends to a file that does not exist yet without asking AllowStoreRestart", async () => {
    const s = await setup();
    await overData(s, "APPE fresh", upload("new"));
    expect(await readFile(path.join(root, "fresh"), "latin1")).toBe("new");
  });

  it("keeps a partial upload after ABOR by default, and removes it with DeleteAbortedStores on", async () => {
    for (const [setting, kept] of [
      [undefined, true],
      ["on", false],
    ] as const) {
      const s = await setup();
      if (setting !== undefined) directive(s, ["DeleteAbortedStores", setting]);
      const name = `partial-${String(setting)}`;
      const [pasv = ""] = await send(s.session, "PASV");
      const match = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(pasv) as RegExpExecArray;
      const socket = await connect(Number(match[1]) * 256 + Number(match[2]));
      cleanups.push(() => socket.destroy());
      const lines = send(s.session, `STOR ${name}`);
      socket.write("partial");
      await until(async () => (await stat(path.join(root, name)).catch(() => undefined))?.size === 7);
      s.control.abortTarget?.();
      expect(await lines).toEqual(["426 Transfer aborted. Data connection closed."]);
      expect(await exists(name)).toBe(kept);
    }
  });
});

describe("HiddenStores", () => {
  it("uploads to .in.<name>. and renames it once complete", async () => {
    const s = await setup();
    directive(s, ["HiddenStores", "on"]);
    const { lines } = await overData(s, "STOR up", async (socket) => {
      socket.write("part");
      await until(() => s.control.sent.length === 1);
      expect(await exists(".in.up.")).toBe(true);
      expect(await exists("up")).toBe(false);
      socket.end("rest");
    });
    expect(lines).toEqual(["226 Transfer complete"]);
    expect(await readFile(path.join(root, "up"), "latin1")).toBe("partrest");
    expect(await exists(".in.up.")).toBe(false);
  });

  it("removes the hidden file of an aborted upload, and refuses REST and a hidden name in use", async () => {
    const s = await setup();
    directive(s, ["HiddenStores", "on"]);
    const [pasv = ""] = await send(s.session, "PASV");
    const match = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(pasv) as RegExpExecArray;
    const socket = await connect(Number(match[1]) * 256 + Number(match[2]));
    cleanups.push(() => socket.destroy());
    // The server may drop the connection with "part" still unread: a reset for this end.
    socket.on("error", () => {});
    const lines = send(s.session, "STOR up");
    socket.write("part");
    await until(() => s.control.sent.length === 1);
    s.control.abortTarget?.();
    expect(await lines).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(await exists(".in.up.")).toBe(false);
    expect(await exists("up")).toBe(false);

    directive(s, ["AllowStoreRestart", "on"]);
    await send(s.session, "REST 5");
    expect(await send(s.session, "STOR up")).toEqual(["501 REST not compatible with server configuration"]);
    await writeFile(path.join(root, ".in.taken."), "");
    expect(await send(s.session, "STOR taken")).toEqual([
      "550 taken: Temporary hidden file /.in.taken. already exists",
    ]);
    expect(await exists(".in.taken.")).toBe(true);
  });

  it("renames the hidden file into place when the client closes the control connection and then ends the upload", async () => {
    const s = await setup();
    directive(s, ["HiddenStores", "on"]);
    const { fs } = s.session;
    if (fs === undefined) throw new Error("no filesystem");
    // As mod_auth does at login: the jail closes once no transfer holds the data channel.
    let jailClosed = false;
    s.control.onClose(() => void s.session.data.whenIdle().then(() => (jailClosed = true)));
    const { lines } = await overData(s, "STOR up", async (socket) => {
      socket.write("all");
      await until(async () => (await readFile(path.join(root, ".in.up."), "latin1").catch(() => "")) === "all");
      closeControl(s);
      await new Promise((resolve) => setImmediate(resolve));
      expect(jailClosed).toBe(false);
      socket.end();
    });
    expect(lines).toEqual(["226 Transfer complete"]);
    expect(await readFile(path.join(root, "up"), "latin1")).toBe("all");
    expect(await exists(".in.up.")).toBe(false);
    await until(() => jailClosed);
  });

  it("removes the hidden file when data arrives after the client closed the control connection", async () => {
    const s = await setup();
    directive(s, ["HiddenStores", "on"]);
    const { lines } = await overData(s, "STOR up", async (socket) => {
      socket.on("error", () => {});
      await until(() => s.control.sent.length === 1);
      closeControl(s);
      socket.write("late");
    });
    expect(lines).toEqual(["426 Transfer aborted. Data connection closed."]);
    expect(await exists(".in.up.")).toBe(false);
    expect(await exists("up")).toBe(false);
  });

  it("reads its arguments as set_hiddenstores does", () => {
    expect(parseHiddenStores(["on"])).toEqual({ prefix: ".in.", suffix: "." });
    expect(parseHiddenStores(["off"])).toBeUndefined();
    expect(parseHiddenStores(["tmp"])).toEqual({ prefix: ".tmp.", suffix: "." });
    expect(parseHiddenStores([".up."])).toEqual({ prefix: ".up.", suffix: "." });
    expect(parseHiddenStores(["up-", ".part"])).toEqual({ prefix: "up-", suffix: ".part" });
    expect(hiddenStorePath("/a/b/file", ".in.", ".")).toBe("/a/b/.in.file.");
    expect(hiddenStorePath("/", ".in.", ".")).toBeUndefined();
  });
});

describe("STOU (xfer_pre_stou)", () => {
  it("needs AllowOverwrite, as in proftpd, and leaves no file when refused", async () => {
    const s = await setup({ random: () => 0 });
    expect(await send(s.session, "STOU")).toEqual(["550 ftpAAAAAA: Overwrite permission denied"]);
    expect(await exists("ftpAAAAAA")).toBe(false);
  });

  it("stores under a new name told in 150 FILE:, sets cmd.path, and skips names in use", async () => {
    let calls = 0;
    const s = await setup({ random: () => (calls++ < 6 ? 0 : 0.999) });
    directive(s, ["AllowOverwrite", "on"]);
    directive(s, ["StoreUniquePrefix", "up-"]);
    await writeFile(path.join(root, "up-AAAAAA"), "taken");
    const { lines } = await overData(s, "STOU", upload("unique"));
    expect(s.control.sent).toEqual(["150 FILE: up-999999"]);
    expect(lines).toEqual(["226 Transfer complete"]);
    expect(await readFile(path.join(root, "up-999999"), "latin1")).toBe("unique");
    expect(await readFile(path.join(root, "up-AAAAAA"), "latin1")).toBe("taken");
    expect(await send(s.session, "STOU a b")).toEqual(["500 'STOU a b' not understood"]);
    await send(s.session, "REST 1");
    expect(await send(s.session, "STOU")).toEqual(["550 STOU incompatible with REST"]);
  });
});

describe("TransferLog (xferlog_write)", () => {
  it("writes a complete download's and an aborted upload's lines", async () => {
    const s = await setup();
    const log = path.join(root, "logs", "xferlog");
    await mkdir(path.dirname(log), { mode: 0o755 });
    directive(s, ["TransferLog", log]);
    await writeFile(path.join(root, "my file"), "12345");
    await overData(s, "RETR my file", readAll);
    const [pasv = ""] = await send(s.session, "PASV");
    const match = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(pasv) as RegExpExecArray;
    const socket = await connect(Number(match[1]) * 256 + Number(match[2]));
    cleanups.push(() => socket.destroy());
    const lines = send(s.session, "STOR cut");
    socket.write("abc");
    await until(async () => (await stat(path.join(root, "cut")).catch(() => undefined))?.size === 3);
    s.control.abortTarget?.();
    await lines;
    const text = await readFile(log, "latin1");
    const time = "[A-Z][a-z]{2} [A-Z][a-z]{2} \\d{2} \\d{2}:\\d{2}:\\d{2} \\d{4}";
    expect(text).toMatch(
      new RegExp(
        `^${time} 0 127\\.0\\.0\\.1 5 /my_file b _ o r alice ftp 0 \\* c\\n${time} 0 127\\.0\\.0\\.1 3 /cut b _ i r alice ftp 0 \\* i\\n$`,
      ),
    );
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- reading the umask the file was created under
    expect((await stat(log)).mode & 0o777).toBe(0o644 & ~process.umask());
  });
});

describe("the transfer parameters", () => {
  it("answers TYPE as xfer_type does, before login too", async () => {
    const s = await setup();
    expect(await send(s.session, "TYPE A")).toEqual(["200 Type set to A"]);
    expect(s.session.transferType).toBe("A");
    expect(await send(s.session, "TYPE i")).toEqual(["200 Type set to i"]);
    expect(s.session.transferType).toBe("I");
    expect(await send(s.session, "TYPE L 7")).toEqual(["200 Type set to L"]);
    expect(s.session.transferType).toBe("A");
    expect(await send(s.session, "TYPE L 8")).toEqual(["200 Type set to L"]);
    expect(s.session.transferType).toBe("I");
    expect(await send(s.session, "TYPE A N")).toEqual(["200 Type set to A"]);
    expect(await send(s.session, "TYPE E")).toEqual(["504 TYPE not implemented for 'E' parameter"]);
    expect(await send(s.session, "TYPE L 9")).toEqual(["504 TYPE not implemented for 'L' parameter"]);
    expect(await send(s.session, "TYPE")).toEqual(["500 'TYPE' not understood"]);
    s.session.user = undefined;
    expect(await send(s.session, "TYPE I")).toEqual(["200 Type set to I"]);
    expect(await send(s.session, "MODE S")).toEqual(["530 Please login with USER and PASS"]);
  });

  it("keeps a TYPE sent before login, else gives DefaultTransferMode's after it", async () => {
    const pass = (s: Setup): void => {
      const handler = s.xfer.module.commands.find((h) => h.command === "PASS" && h.phase === Phases.POST_CMD);
      void handler?.run(testCommand(["PASS", "secret"]), s.session);
    };
    const plain = await setup();
    plain.session.user = undefined;
    plain.session.transferType = "I";
    pass(plain);
    expect(plain.session.transferType).toBe("A");

    const binary = await setup();
    directive(binary, ["DefaultTransferMode", "binary"]);
    binary.session.transferType = "A";
    pass(binary);
    expect(binary.session.transferType).toBe("I");

    const chosen = await setup();
    chosen.session.user = undefined;
    await send(chosen.session, "TYPE I");
    chosen.session.user = "alice";
    pass(chosen);
    expect(chosen.session.transferType).toBe("I");
  });

  it("answers MODE, STRU, ALLO, SMNT and REST with proftpd's texts", async () => {
    const s = await setup();
    expect(await send(s.session, "MODE s")).toEqual(["200 Mode set to S"]);
    expect(await send(s.session, "MODE B")).toEqual(["504 'MODE B' unsupported transfer mode"]);
    expect(await send(s.session, "MODE Z")).toEqual(["501 'MODE Z' unrecognized transfer mode"]);
    expect(await send(s.session, "MODE")).toEqual(["501 'MODE' not understood"]);
    expect(await send(s.session, "STRU F")).toEqual(["200 Structure set to F"]);
    expect(await send(s.session, "STRU r")).toEqual(["504 'STRU r' unsupported structure type"]);
    expect(await send(s.session, "STRU X")).toEqual(["501 'STRU X' unrecognized structure type"]);
    expect(await send(s.session, "ALLO 1000")).toEqual(["202 No storage allocation necessary"]);
    expect(await send(s.session, "ALLO 1000 R 10")).toEqual(["202 No storage allocation necessary"]);
    expect(await send(s.session, "ALLO x")).toEqual(["504 x: Invalid ALLO argument"]);
    expect(await send(s.session, "ALLO")).toEqual(["504 'ALLO' not understood"]);
    expect(await send(s.session, "SMNT /")).toEqual(["502 SMNT command not implemented"]);
    expect(await send(s.session, "REST -1")).toEqual(["501 REST requires a value greater than or equal to 0"]);
    expect(await send(s.session, "REST")).toEqual(["500 'REST' not understood"]);
    s.session.transferType = "A";
    expect(await send(s.session, "REST 10")).toEqual(["501 REST: Resuming transfers not allowed in ASCII mode"]);
    expect(await send(s.session, "REST 0")).toEqual([
      "350 Restarting at 0. Send STORE or RETRIEVE to initiate transfer",
    ]);
    expect([parseOffset(""), parseOffset(" +12"), parseOffset("12x"), parseOffset("-0")]).toEqual([
      0,
      12,
      undefined,
      undefined,
    ]);
  });

  it("answers ABOR with 226 Abort successful and drops a pending listener", async () => {
    const s = await setup();
    await send(s.session, "PASV");
    expect(s.session.data.passive).toBe(true);
    expect(await send(s.session, "ABOR")).toEqual(["226 Abort successful"]);
    expect(s.session.data.passive).toBe(false);
    expect(await send(s.session, "ABOR now")).toEqual(["500 'ABOR now' not understood"]);
  });
});

describe("TimeoutNoTransfer", () => {
  it("ends a logged-in session that transfers nothing for that long, not one in a transfer", async () => {
    const clock = new FakeClock();
    const ended: string[][] = [];
    const s = await setup({ endSession: (_session, lines) => ended.push([...lines]) }, clock);
    directive(s, ["TimeoutNoTransfer", "60"]);
    const handler = s.xfer.module.commands.find((h) => h.command === "PASS" && h.phase === Phases.POST_CMD);
    await handler?.run(testCommand(["PASS", "x"]), s.session);
    clock.advance(30_000);
    s.session.data.beginTransfer();
    clock.advance(60_000);
    expect(ended).toEqual([]);
    s.session.data.endTransfer();
    clock.advance(59_999);
    expect(ended).toEqual([]);
    clock.advance(1);
    expect(ended).toEqual([["421 No transfer timeout (60 seconds): closing control connection"]]);
  });

  it("checks its directives' values", async () => {
    const s = await setup();
    expect(directive(s, ["TimeoutStalled", "soon"])).toBe("error parsing timeout value 'soon': Invalid argument");
    expect(directive(s, ["TimeoutStalled", "00:10:00"])).toBeUndefined();
    expect(s.xfer.settings.timeoutStalled).toBe(600);
    expect(directive(s, ["AllowOverwrite", "maybe"])).toBe("expected boolean parameter");
    expect(directive(s, ["DeleteAbortedStores", "maybe"])).toBe("expected Boolean parameter");
    expect(directive(s, ["DefaultTransferMode", "ebcdic"])).toBe("parameter must be 'ascii' or 'binary'");
    expect(directive(s, ["StoreUniquePrefix", "a/b"])).toBe("no slashes allowed in prefix: 'a/b'");
  });
});

describe("the module", () => {
  it("is mod_xfer.c with REST STREAM and its HELP entries", async () => {
    const s = await setup();
    expect(s.xfer.module.name).toBe("mod_xfer.c");
    expect(s.xfer.module.features).toEqual(["REST STREAM"]);
    expect(s.xfer.module.help.map((h) => h.command)).toEqual([
      "TYPE",
      "STRU",
      "MODE",
      "RETR",
      "STOR",
      "STOU",
      "APPE",
      "REST",
      "ABOR",
    ]);
  });
});
