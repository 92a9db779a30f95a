import { spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl, parseSocketAcl } from "../../../host/controls/acl.js";
import type { Acl, AclTable } from "../../../host/controls/acl.js";
import { currentHost, dsoControlsActions, DSO_ACTIONS } from "../../../host/static/mod-dso/controls.js";
import { helpLines } from "../../../host/controls/ctrls-actions.js";
import { ControlsServer, formatControlsLogLine } from "../../../host/controls/server.js";
import { dispatchRequest, exchangeMessages, RequestQueue } from "../../../host/controls/exchange.js";
import type { ControlsAction, ControlsCaller } from "../../../host/controls/exchange.js";
import { ControlsStatus } from "../../../host/controls/wire.js";
import { encodeMessage, MessageDecoder, RESPONSE_LIMITS } from "../../../host/controls/wire.js";
import { ErrorCodes } from "../../../host/errors.js";
import type { EngineModule } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { SystemAccounts } from "../../../host/system/accounts.js";
import { otherUsersDir } from "../../helpers/other-users.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const LIBEXEC = join(ROOT, "dist", "libexec");
const FIXTURES = join(ROOT, "dist", "test-fixtures");

const accounts = new SystemAccounts();
const me = accounts.userName(process.getuid?.() ?? 0);
const myGroup = accounts.groupName(process.getgid?.() ?? 0);

function staticModule(name: string): EngineModule {
  return { name, kind: "static", commands: [], siteCommands: [], directives: [], features: [], help: [] };
}

function actionAcls(...directives: string[][]): AclTable {
  return directives.reduce(
    (table, args) => applyActionAcl(table, parseActionAcl(args, DSO_ACTIONS, accounts)),
    EMPTY_ACL_TABLE,
  );
}

interface Reply {
  readonly status: number;
  readonly lines: readonly string[];
}

/**
 * A client in this process, on the wire format alone: sends `bytes` (by
 * default one request for `argv`) and resolves with the response, or
 * "closed" when the server hangs up without one.
 */
function send(
  socketPath: string,
  request: readonly string[] | Buffer,
  options: { end?: boolean } = {},
): Promise<Reply | "closed"> {
  return new Promise((resolve, reject) => {
    const decoder = new MessageDecoder(RESPONSE_LIMITS);
    const socket = createConnection(socketPath, () => {
      socket.write(Buffer.isBuffer(request) ? request : encodeMessage(0, request));
      if (options.end === true) socket.end();
    });
    socket.on("data", (chunk: Buffer) => {
      const message = decoder.push(chunk);
      if (message !== undefined) {
        socket.destroy();
        resolve({ status: message.status, lines: message.args });
      }
    });
    socket.on("close", () => resolve("closed"));
    socket.on("error", reject);
  });
}

const ok = (...lines: string[]): Reply => ({ status: ControlsStatus.OK, lines });
const failed = (...lines: string[]): Reply => ({ status: ControlsStatus.FAILED, lines });
const denied: Reply = { status: ControlsStatus.ACCESS_DENIED, lines: ["access denied"] };

/** The ControlsLog's messages, prefix checked and stripped. */
function logMessages(file: string): string[] {
  if (!existsSync(file)) return [];
  const prefix = new RegExp(
    `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d,\\d{3} mod_ctrls/0\\.9\\.5\\[${process.pid}\\]: `,
  );
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      expect(line).toMatch(prefix);
      return line.replace(prefix, "");
    });
}

/**
 * Waits until every connection the log shows accepted is also closed: the
 * server logs `closed connection` when it sees the client's end, which may
 * come after the client already has its answer.
 */
async function settledLog(file: string): Promise<string[]> {
  const count = (messages: string[], prefix: string): number => messages.filter((m) => m.startsWith(prefix)).length;
  for (let i = 0; i < 200; i++) {
    const messages = logMessages(file);
    if (count(messages, "accepted connection from ") === count(messages, "closed connection to ")) return messages;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`connections left open in ${file}`);
}

/** Resolves once `file` has `times` lines starting with `prefix`, however long the server takes to get there. */
async function loggedTimes(file: string, prefix: string, times: number): Promise<void> {
  while (logMessages(file).filter((m) => m.startsWith(prefix)).length < times) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const dir = mkdtempSync(join(tmpdir(), "dso-cs-"));
// Clients spawned as nobody run a node they can reach: this one may be in a folder only root can enter.
const others = otherUsersDir();
const socketPath = join(dir, "ctl.sock");
const logFile = join(dir, "controls.log");
const traced: string[] = [];
let host: ModuleHost;
let acls: AclTable;
let socketAcl: Acl;
let server: ControlsServer;

function newHost(): ModuleHost {
  return new ModuleHost({
    modulePath: LIBEXEC,
    compiledIn: ["mod_core.c", "mod_dso.c", "mod_ls.c"].map(staticModule),
    protectedModules: ["mod_dso.c"],
  });
}

beforeAll(async () => {
  // A client spawned as nobody must traverse the directory to reach the socket.
  chmodSync(dir, 0o755);
  server = new ControlsServer({
    socketPath,
    actions: dsoControlsActions(
      currentHost(() => host),
      () => acls,
    ),
    socketAcl: () => socketAcl,
    controlsLog: logFile,
    maxClients: 2,
    requestTimeoutMs: 400,
    tracer: { level: () => 20, write: (channel, level, message) => traced.push(`<${channel}:${level}>: ${message}`) },
  });
  await server.start();
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  others.remove();
});

beforeEach(async () => {
  await settledLog(logFile);
  host = newHost();
  acls = actionAcls(["all", "allow", "user", me]);
  socketAcl = parseSocketAcl(["allow", "user", "*"], accounts);
  traced.length = 0;
  if (existsSync(logFile)) truncateSync(logFile, 0);
});

describe("ControlsServer: mod_dso's ftpdctl lines", () => {
  const ask = (...argv: string[]): Promise<Reply | "closed"> => send(socketPath, argv);

  it("insmod loads, and answers proftpd's reason for each failure", async () => {
    expect(await ask("insmod", "mod_test.c")).toEqual(ok("'mod_test.c' loaded"));
    expect(await ask("insmod", "mod_test.c")).toEqual(failed("error loading 'mod_test.c': Already loaded"));
    expect(await ask("insmod", "mod_ls.c")).toEqual(failed("error loading 'mod_ls.c': Already loaded"));
    expect(await ask("insmod", "mod_nonexistent.c")).toEqual(
      failed(
        "error loading 'mod_nonexistent.c': No such file or directory",
        `  '${LIBEXEC}/mod_nonexistent.wasm' does not exist`,
      ),
    );
    for (const [name, meant] of [
      ["foo", "mod_foo.c"],
      ["mod_copy", "mod_copy.c"],
      ["/usr/lib/proftpd/mod_ban.c", "mod_ban.c"],
    ]) {
      expect(await ask("insmod", name as string)).toEqual(
        failed(`error loading '${name}': Bad module name`, `  did you mean '${meant}'?`),
      );
    }
    expect(await ask("insmod")).toEqual(failed("missing required parameters"));
  });

  it("insmod processes every name and fails if any failed", async () => {
    expect(await ask("insmod", "mod_counter.c", "mod_counter.c", "mod_nope.c")).toEqual(
      failed(
        "'mod_counter.c' loaded",
        "error loading 'mod_counter.c': Already loaded",
        "error loading 'mod_nope.c': No such file or directory",
        `  '${LIBEXEC}/mod_nope.wasm' does not exist`,
      ),
    );
    expect(await ask("insmod", "mod_test.c", "mod_sql.c")).toEqual(ok("'mod_test.c' loaded", "'mod_sql.c' loaded"));
  });

  it("insmod: wrong API version, failing init, and one line per link problem", async () => {
    host.setModulePath(FIXTURES);
    expect(await ask("insmod", "mod_badapi.c")).toEqual(
      failed(
        "error loading 'mod_badapi.c': Permission denied",
        "  module 'mod_badapi.c' has wrong API version (0x10), must be 0x20",
      ),
    );
    expect(await ask("insmod", "mod_initfail.c")).toEqual(
      failed(
        "error loading 'mod_initfail.c': Operation not permitted",
        "  module 'mod_initfail.c' failed to initialize",
      ),
    );
    expect(await ask("insmod", "mod_nosym.c")).toEqual(
      failed(
        "error loading 'mod_nosym.c': No such file or directory",
        "  the file was found, but it does not export 'nosym_module' (the module's API version)",
      ),
    );
    expect(await ask("insmod", "mod_undef.c")).toEqual(
      failed(
        "error loading 'mod_undef.c': mod_undef.c: undefined symbol 'no_such_symbol' (func (i32) -> i32)",
        "error loading 'mod_undef.c': mod_undef.c: undefined symbol 'another_missing' (func () -> nil)",
      ),
    );
  });

  it("rmmod unloads, and answers proftpd's reason for each failure", async () => {
    await ask("insmod", "mod_test.c");
    expect(await ask("rmmod", "mod_test.c")).toEqual(ok("'mod_test.c' unloaded"));
    expect(await ask("rmmod", "mod_test.c")).toEqual(failed("error unloading 'mod_test.c': Module not loaded"));
    expect(await ask("rmmod", "mod_nonexistent.c")).toEqual(
      failed("error unloading 'mod_nonexistent.c': Module not loaded"),
    );
    for (const [name, meant] of [
      ["foo.c", "mod_foo.c"],
      ["mod_copy", "mod_copy.c"],
      ["mod_copy.cpp", "mod_copy.c"],
    ]) {
      expect(await ask("rmmod", name as string)).toEqual(
        failed(`error unloading '${name}': Bad module name`, `  did you mean '${meant}'?`),
      );
    }
    expect(await ask("rmmod")).toEqual(failed("missing required parameters"));
    expect(await ask("rmmod", "mod_dso.c")).toEqual(failed("error unloading 'mod_dso.c': Operation not permitted"));
  });

  it("rmmod of a static module works, and insmod brings it back last", async () => {
    expect(await ask("rmmod", "mod_ls.c", "mod_core.c")).toEqual(ok("'mod_ls.c' unloaded", "'mod_core.c' unloaded"));
    expect(await ask("insmod", "mod_ls.c")).toEqual(ok("'mod_ls.c' loaded"));
    expect(await ask("lsmod")).toEqual(ok("Loaded Modules:", "  mod_dso.c", "  mod_ls.c"));
  });

  it("rmmod refuses a module others are bound to, naming them", async () => {
    expect(await ask("insmod", "mod_sql_mysql.c")).toEqual(ok("'mod_sql_mysql.c' loaded"));
    expect(await ask("rmmod", "mod_sql.c")).toEqual(
      failed("error unloading 'mod_sql.c': Device or resource busy (needed by mod_sql_mysql.c)"),
    );
  });

  it("lsmod lists in load order, two spaces in; extra arguments are refused", async () => {
    await ask("insmod", "mod_test.c", "mod_counter.c");
    expect(await ask("lsmod")).toEqual(
      ok("Loaded Modules:", "  mod_core.c", "  mod_dso.c", "  mod_ls.c", "  mod_test.c", "  mod_counter.c"),
    );
    expect(await ask("lsmod", "extra")).toEqual(failed("wrong number of parameters"));
    expect(await ask("lsmod", "-v", "extra")).toEqual(failed("wrong number of parameters"));
  });

  it("lsmod -v details modules, bindings, dependents and libraries", async () => {
    await ask("insmod", "mod_counter.c");
    const reply = await ask("lsmod", "-v");
    if (reply === "closed") throw new Error("no reply");
    const [info] = host.describe().filter((unit) => unit.name === "mod_counter.c");
    const counter = reply.lines.slice(reply.lines.indexOf("  mod_counter.c"), reply.lines.indexOf("Loaded Libraries:"));
    expect(counter).toEqual([
      "  mod_counter.c",
      "    kind: dso",
      `    file: ${join(LIBEXEC, "mod_counter.wasm")}`,
      `    sha256: ${info?.sha256}`,
      `    size: ${info?.size} bytes`,
      "    memory: 65536 bytes",
      `    loaded: ${info?.loadedAt?.toISOString()}`,
      ...(info?.exports ?? []).map((symbol) => `    export: ${symbol}`),
      ...(info?.bindings ?? []).map((b) => `    import: ${b.namespace}.${b.symbol} -> ${b.provider}`),
      "    sessions: 0",
      "    instances: 0 (0 bytes of memory)",
    ]);
    expect(counter).toContain("    import: libcounter.counter_next -> libcounter");
    expect(reply.lines.slice(0, 3)).toEqual(["Loaded Modules:", "  mod_core.c", "    kind: static"]);
    const libraries = reply.lines.slice(reply.lines.indexOf("Loaded Libraries:"));
    expect(libraries.slice(0, 4)).toEqual([
      "Loaded Libraries:",
      "  libcounter",
      "    kind: library",
      "    loaded as a dependency",
    ]);
    expect(libraries).toContain("    needed by: mod_counter.c");
  });

  it("help lists every action sorted, and unknown actions are unsupported", async () => {
    expect(await ask("help")).toEqual(
      ok(
        "help: describe all registered controls",
        "insctrl: enable a disabled control",
        "insmod: load modules",
        "lsctrl: list all registered controls",
        "lsmod: list modules",
        "rmctrl: disable a registered control",
        "rmmod: unload modules",
      ),
    );
    expect(await ask("frobnicate")).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
  });
});

describe("ControlsServer: ACLs", () => {
  const ask = (...argv: string[]): Promise<Reply | "closed"> => send(socketPath, argv);

  it("without ModuleControlsACLs everyone is denied, help still answers", async () => {
    acls = EMPTY_ACL_TABLE;
    expect(await ask("lsmod")).toEqual(denied);
    expect(await ask("insmod", "mod_test.c")).toEqual(denied);
    expect(await ask("rmmod", "mod_dso.c")).toEqual(denied);
    expect(await ask("help")).toMatchObject({ status: ControlsStatus.OK });
    expect(host.listModules()).not.toContain("mod_test.c");
  });

  it("the ACL is checked before the arguments", async () => {
    acls = actionAcls(["lsmod", "allow", "user", me]);
    expect(await ask("insmod")).toEqual(denied);
    expect(await ask("rmmod")).toEqual(denied);
    expect(await ask("lsmod", "extra")).toEqual(failed("wrong number of parameters"));
  });

  it("allow and deny rules per action, by user and by primary group", async () => {
    acls = actionAcls(["lsmod", "deny", "user", me], ["insmod", "allow", "group", myGroup]);
    expect(await ask("lsmod")).toEqual(denied);
    expect(await ask("insmod", "mod_test.c")).toEqual(ok("'mod_test.c' loaded"));
    acls = actionAcls(["all", "deny", "user", "*"]);
    expect(await ask("lsmod")).toEqual(denied);
  });

  it("a socket ACL that denies answers access denied to every action, help included", async () => {
    socketAcl = parseSocketAcl(["deny", "user", me], accounts);
    expect(await ask("help")).toEqual(denied);
    expect(await ask("lsmod")).toEqual(denied);
    expect(await ask("frobnicate")).toEqual(denied);
  });

  it.runIf(process.getuid?.() === 0)(
    "identifies a client spawned as nobody and denies it by `allow user root`",
    async () => {
      acls = actionAcls(["all", "allow", "user", "root"]);
      const request = encodeMessage(0, ["lsmod"]).toString("base64");
      const script = `
      const socket = require("node:net").createConnection(${JSON.stringify(socketPath)});
      socket.on("connect", () => socket.write(Buffer.from(${JSON.stringify(request)}, "base64")));
      const chunks = [];
      socket.on("data", (c) => chunks.push(c));
      socket.on("close", () => {
        const b = Buffer.concat(chunks);
        const lines = [];
        for (let at = 8; at < b.length; at += 4 + b.readUInt32LE(at)) lines.push(b.subarray(at + 4, at + 4 + b.readUInt32LE(at)).toString());
        process.stdout.write(JSON.stringify({ status: b.readInt32LE(0), lines }));
      });`;
      const child = spawn(others.node, ["-e", script], {
        uid: 65534,
        gid: 65534,
        cwd: dir,
        stdio: ["ignore", "pipe", "inherit"],
      });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toEqual(denied);
      expect(await settledLog(logFile)).toEqual([
        "accepted connection from nobody/nogroup client",
        "sent to nobody/nogroup client: return value: -2",
        "sent to nobody/nogroup client: 'access denied'",
        "closed connection to nobody/nogroup client",
      ]);
      expect(await ask("lsmod")).toEqual(ok("Loaded Modules:", "  mod_core.c", "  mod_dso.c", "  mod_ls.c"));
    },
  );
});

describe("ControlsServer: denied callers hold nothing", () => {
  it.runIf(process.getuid?.() === 0)(
    "a caller the socket ACL denies is answered at accept and never takes a slot",
    async () => {
      socketAcl = parseSocketAcl(["allow", "user", me], accounts);
      // nobody opens 6 connections, sends nothing and closes none: three times ControlsMaxClients.
      const script = `
      const net = require("node:net");
      let answered = 0;
      for (let i = 0; i < 6; i++) {
        const socket = net.createConnection(${JSON.stringify(socketPath)});
        socket.on("data", (chunk) => { if (++answered === 6) process.stdout.write("answered"); });
        socket.on("error", () => {});
      }
      process.stdin.resume();`;
      const child = spawn(others.node, ["-e", script], {
        uid: 65534,
        gid: 65534,
        cwd: dir,
        stdio: ["pipe", "pipe", "inherit"],
      });
      try {
        await new Promise((resolve) => child.stdout.once("data", resolve));
        expect(await send(socketPath, ["lsmod"])).toEqual(
          ok("Loaded Modules:", "  mod_core.c", "  mod_dso.c", "  mod_ls.c"),
        );
        expect(await send(socketPath, ["help"])).toMatchObject({ status: ControlsStatus.OK });
      } finally {
        child.kill();
      }
      const nobody = (await settledLog(logFile)).filter((line) => line.includes("nobody/nogroup"));
      expect(nobody.filter((line) => line === "sent to nobody/nogroup client: 'access denied'")).toHaveLength(6);
      expect(
        nobody.filter(
          (line) =>
            line.startsWith("sent to ") && !line.endsWith("return value: -2") && !line.endsWith("'access denied'"),
        ),
      ).toEqual([]);
    },
  );

  it("a busy caller is identified and logged like any other", async () => {
    const silent = [send(socketPath, Buffer.alloc(0)), send(socketPath, Buffer.alloc(0))];
    await waitForAccepted(2);
    expect(await send(socketPath, ["lsmod"])).toMatchObject({ status: ControlsStatus.BUSY });
    await Promise.all(silent);
    const client = `${me}/${myGroup} client`;
    expect((await settledLog(logFile)).slice(2, 6)).toEqual([
      `accepted connection from ${client}`,
      `sent to ${client}: return value: -11`,
      `sent to ${client}: 'too many controls clients (ControlsMaxClients 2), try again later'`,
      `closed connection to ${client}`,
    ]);
  });
});

/** Waits until the ControlsLog shows `count` accepted connections. */
async function waitForAccepted(count: number): Promise<void> {
  while (logMessages(logFile).filter((line) => line.startsWith("accepted connection from ")).length < count) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("ControlsServer: bad clients", () => {
  const header = (status: number, argc: number): Buffer => {
    const bytes = Buffer.alloc(8);
    bytes.writeInt32LE(status, 0);
    bytes.writeUInt32LE(argc, 4);
    return bytes;
  };
  const stillServing = async (): Promise<void> => {
    expect(await send(socketPath, ["lsmod"])).toEqual(
      ok("Loaded Modules:", "  mod_core.c", "  mod_dso.c", "  mod_ls.c"),
    );
  };

  it("garbage bytes get a line naming the problem", async () => {
    expect(await send(socketPath, Buffer.from("GET / HTTP/1.0\r\n\r\n"))).toEqual(
      failed("controls request has 1414012975 arguments, more than the maximum of 32"),
    );
    await stillServing();
  });

  it("an oversized argument, too many arguments, or bad UTF-8 is refused", async () => {
    const long = Buffer.concat([header(0, 2), encodeMessage(0, ["insmod", `mod_${"x".repeat(300)}.c`]).subarray(8)]);
    expect(await send(socketPath, long)).toEqual(
      failed("controls request argument 2 is 306 bytes, more than the maximum of 256"),
    );
    expect(
      await send(socketPath, encodeMessage(0, ["insmod", ...Array.from({ length: 32 }, (_, i) => `mod_${i}.c`)])),
    ).toEqual(failed("controls request has 33 arguments, more than the maximum of 32"));
    const badUtf8 = Buffer.concat([header(0, 1), Buffer.from([2, 0, 0, 0, 0xc3, 0x28])]);
    expect(await send(socketPath, badUtf8)).toEqual(failed("controls request action is not valid UTF-8"));
    await stillServing();
  });

  it("a request cut short by the client's end is refused; a silent or half-sent client is closed", async () => {
    const half = encodeMessage(0, ["insmod", "mod_test.c"]).subarray(0, 13);
    expect(await send(socketPath, half, { end: true })).toEqual(failed("controls request is truncated"));
    const started = Date.now();
    expect(await send(socketPath, half)).toBe("closed");
    expect(await send(socketPath, Buffer.alloc(0))).toBe("closed");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * 400 - 50);
    await stillServing();
  });

  it("a request dripped a byte at a time gets no more than the request timeout, counted from connect", async () => {
    // 32 arguments of 256 bytes: the largest request there is, never finished at this pace.
    const largest = encodeMessage(0, ["rmmod", ...Array.from({ length: 31 }, () => `mod_${"x".repeat(250)}.c`)]);
    const socket = createConnection(socketPath);
    socket.on("error", () => {});
    const started = Date.now();
    let sent = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed && sent < largest.length) socket.write(largest.subarray(sent, ++sent));
    }, 20);
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once("close", resolve));
    clearInterval(drip);
    // Not before the timeout; and before the request was whole, which an idle timer reset by each byte would allow.
    expect(Date.now() - started).toBeGreaterThanOrEqual(400 - 50);
    expect(sent).toBeLessThan(largest.length);
    expect(Buffer.concat(received)).toHaveLength(0);
    await stillServing();
  });

  it("an announced argument over the limit is refused at once, without waiting for its bytes", async () => {
    const huge = Buffer.concat([
      header(0, 2),
      Buffer.from([6, 0, 0, 0]),
      Buffer.from("insmod"),
      Buffer.from([0, 0, 0, 0x40]),
    ]);
    expect(await send(socketPath, huge)).toEqual(
      failed("controls request argument 2 is 1073741824 bytes, more than the maximum of 256"),
    );
  });

  it("connections beyond ControlsMaxClients are refused with a reply, and served once slots free up", async () => {
    const silent = [send(socketPath, Buffer.alloc(0)), send(socketPath, Buffer.alloc(0))];
    // The server logs a connection it accepts as it takes its slot.
    await loggedTimes(logFile, "accepted connection from ", 2);
    expect(await send(socketPath, ["lsmod"])).toEqual({
      status: ControlsStatus.BUSY,
      lines: ["too many controls clients (ControlsMaxClients 2), try again later"],
    });
    expect(await Promise.all(silent)).toEqual(["closed", "closed"]);
    await stillServing();
  });
});

describe("ControlsServer: ControlsLog and ctrls trace", () => {
  it("logs an accepted insmod and an lsmod denied by its ACL in proftpd's lines", async () => {
    acls = actionAcls(["insmod", "allow", "user", me]);
    await send(socketPath, ["insmod", "mod_test.c"]);
    await settledLog(logFile);
    await send(socketPath, ["lsmod"]);
    const client = `${me}/${myGroup} client`;
    expect(await settledLog(logFile)).toEqual([
      `accepted connection from ${client}`,
      `recvd from ${client}: 'insmod mod_test.c'`,
      `sent to ${client}: return value: 0`,
      `sent to ${client}: ''mod_test.c' loaded'`,
      `closed connection to ${client}`,
      `accepted connection from ${client}`,
      `sent to ${client}: return value: -2`,
      `sent to ${client}: 'access denied'`,
      `closed connection to ${client}`,
    ]);
    expect(traced).toEqual([
      "<ctrls:5>: checking client credentials using SO_PEERCRED",
      "<ctrls:19>: known action 'insmod' requested",
      "<ctrls:7>: calling 'insmod' control handler",
      "<ctrls:19>: ran 'insmod' ctrl, callback value = 0",
      "<ctrls:5>: checking client credentials using SO_PEERCRED",
      "<ctrls:19>: known action 'lsmod' requested",
      "<ctrls:7>: calling 'lsmod' control handler",
      "<ctrls:19>: ran 'lsmod' ctrl, callback value = -2",
    ]);
  });
});

describe("ControlsServer: the socket file", () => {
  const other = join(dir, "other.sock");
  /** help on a server with no daemon actions: mod_ctrls's own. */
  const CTRLS_HELP = [
    "help: describe all registered controls",
    "insctrl: enable a disabled control",
    "lsctrl: list all registered controls",
    "rmctrl: disable a registered control",
  ];

  it("is mode 0777 like mod_ctrls's, and removed on close", async () => {
    const second = new ControlsServer({ socketPath: other, actions: [] });
    await second.start();
    expect(statSync(other).mode & 0o777).toBe(0o777);
    await second.close();
    expect(existsSync(other)).toBe(false);
  });

  it("takes ControlsSocketMode for the socket file's permissions", async () => {
    const guarded = new ControlsServer({
      socketPath: other,
      actions: [],
      socketAcl: () => socketAcl,
      socketMode: 0o660,
    });
    await guarded.start();
    try {
      expect(statSync(other).mode & 0o777).toBe(0o660);
      expect(await send(other, ["help"])).toEqual(ok(...CTRLS_HELP));
    } finally {
      await guarded.close();
    }
  });

  it.runIf(process.getuid?.() === 0)(
    "with ControlsSocketOwner, the kernel keeps everyone outside owner and group from connecting",
    async () => {
      const guarded = new ControlsServer({
        socketPath: other,
        actions: [],
        socketAcl: () => socketAcl,
        socketMode: 0o660,
        socketOwner: { uid: 0, gid: 1 },
      });
      await guarded.start();
      const connectAs = (uid: number, gid: number): Promise<string> =>
        new Promise((resolve) => {
          const script = `require("node:net").createConnection(${JSON.stringify(other)}).on("connect", () => { process.stdout.write("connected"); process.exit(0); }).on("error", (e) => { process.stdout.write(e.code); process.exit(0); });`;
          const child = spawn(others.node, ["-e", script], {
            uid,
            gid,
            cwd: dir,
            stdio: ["ignore", "pipe", "inherit"],
          });
          let stdout = "";
          child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
          child.on("exit", () => resolve(stdout));
        });
      try {
        expect([statSync(other).uid, statSync(other).gid]).toEqual([0, 1]);
        // nobody/nogroup is neither the owner nor in group 1 (daemon): connect(2) itself is refused.
        expect(await connectAs(65534, 65534)).toBe("EACCES");
        expect(await connectAs(65534, 1)).toBe("connected");
      } finally {
        await guarded.close();
      }
    },
  );

  it("replaces a stale socket nobody answers on", async () => {
    // A daemon killed by SIGKILL leaves its socket file behind with nobody listening.
    const script = `require("node:net").createServer().listen(${JSON.stringify(other)}, () => process.stdout.write("ready"))`;
    const crashed = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => crashed.stdout.once("data", resolve));
    const exited = new Promise((resolve) => crashed.on("exit", resolve));
    crashed.kill("SIGKILL");
    await exited;
    expect(statSync(other).isSocket()).toBe(true);
    const second = new ControlsServer({ socketPath: other, actions: [], socketAcl: () => socketAcl });
    await second.start();
    expect(await send(other, ["help"])).toEqual(ok(...CTRLS_HELP));
    await second.close();
  });

  it("refuses a socket a live server answers on, and a file that is no socket", async () => {
    const second = new ControlsServer({ socketPath, actions: [] });
    await expect(second.start()).rejects.toMatchObject({
      code: ErrorCodes.CTRLS_SOCKET,
      message: `another dsod is running on '${socketPath}'`,
    });
    writeFileSync(other, "not a socket");
    await expect(new ControlsServer({ socketPath: other, actions: [] }).start()).rejects.toMatchObject({
      code: ErrorCodes.CTRLS_SOCKET,
      message: `'${other}' exists and is not a socket`,
    });
    rmSync(other);
    await stillAnswering();
  });

  async function stillAnswering(): Promise<void> {
    expect(await send(socketPath, ["help"])).toMatchObject({ status: ControlsStatus.OK });
  }
});

describe("pure cores", () => {
  const caller: ControlsCaller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
  const action = (name: string, allowed: boolean): ControlsAction => ({
    name,
    description: `${name} things`,
    acl: () => allowed,
    handler: (args) => ({ status: 0, lines: [`${name} ${args.join(",")}`] }),
  });

  it("formats ControlsLog lines with local time and milliseconds", () => {
    expect(
      formatControlsLogLine(new Date(2026, 10, 26, 8, 7, 2, 3), 8245, "accepted connection from root/root client"),
    ).toBe("2026-11-26 08:07:02,003 mod_ctrls/0.9.5[8245]: accepted connection from root/root client");
  });

  it("logs the request only when it has arguments", () => {
    expect(exchangeMessages(caller, ["lsmod"], { status: 0, lines: ["Loaded Modules:"] })).toEqual([
      "sent to root/root client: return value: 0",
      "sent to root/root client: 'Loaded Modules:'",
    ]);
    expect(exchangeMessages(caller, ["rmmod", "mod_a.c", "mod_b.c"], { status: -1, lines: [] })).toEqual([
      "recvd from root/root client: 'rmmod mod_a.c mod_b.c'",
      "sent to root/root client: return value: -1",
    ]);
  });

  it("dispatches: help sorted, ACL first, unknown unsupported, handler errors contained", async () => {
    const actions = [action("zap", true), action("add", false)];
    expect(helpLines(actions)).toEqual(["add: add things", "zap: zap things"]);
    expect(await dispatchRequest(actions, ["zap", "a", "b"], caller)).toEqual({ status: 0, lines: ["zap a,b"] });
    expect(await dispatchRequest(actions, ["add"], caller)).toEqual(denied);
    expect(await dispatchRequest(actions, ["nope"], caller)).toEqual({
      status: ControlsStatus.UNSUPPORTED,
      lines: ["unsupported action requested"],
    });
    const broken: ControlsAction = {
      ...action("boom", true),
      handler: () => {
        throw new Error("exploded");
      },
    };
    expect(await dispatchRequest([broken], ["boom"], caller)).toEqual(failed("boom: exploded"));
  });

  it("dispatches a handler that answers later: its answer, or its rejection as a thrown error's, traced the same", async () => {
    const trace: string[] = [];
    const record = (level: number, message: string): void => void trace.push(`${level}: ${message}`);
    const later: ControlsAction = {
      ...action("later", true),
      handler: async (args) => ({ status: 0, lines: [`later ${args.join(",")}`] }),
    };
    const refused: ControlsAction = {
      ...action("refused", true),
      handler: () => Promise.reject(new Error("exploded later")),
    };
    expect(await dispatchRequest([later, refused], ["later", "x"], caller, record)).toEqual(ok("later x"));
    expect(await dispatchRequest([later, refused], ["refused"], caller, record)).toEqual(
      failed("refused: exploded later"),
    );
    expect(trace).toEqual([
      "19: known action 'later' requested",
      "7: calling 'later' control handler",
      "19: ran 'later' ctrl, callback value = 0",
      "19: known action 'refused' requested",
      "7: calling 'refused' control handler",
      "19: ran 'refused' ctrl, callback value = -1",
    ]);
  });

  it("queues requests: each starts once every earlier one has settled, a rejected one included", async () => {
    const queue = new RequestQueue();
    const events: string[] = [];
    let release: () => void = () => {};
    const first = queue.run(async () => {
      events.push("first starts");
      await new Promise<void>((resolve) => (release = resolve));
      events.push("first ends");
      throw new Error("first failed");
    });
    const second = queue.run(async () => {
      events.push("second runs");
      return 2;
    });
    // However many turns pass, the second waits for the first.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(events).toEqual(["first starts"]);
    release();
    await expect(first).rejects.toThrow("first failed");
    expect(await second).toBe(2);
    expect(events).toEqual(["first starts", "first ends", "second runs"]);
  });
});

describe("ControlsServer: handlers that answer later", () => {
  const slowSocket = join(dir, "slow.sock");
  const slowLog = join(dir, "slow.log");
  const events: string[] = [];
  /** Lets every pending I/O callback run: a second request already sent is read meanwhile. */
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  const slow: ControlsAction = {
    name: "slow",
    description: "answer after a while",
    acl: () => true,
    handler: async (args) => {
      events.push(`start ${args.join(" ")}`);
      await turns(20);
      events.push(`end ${args.join(" ")}`);
      return { status: ControlsStatus.OK, lines: [`slow ${args.join(" ")}`] };
    },
  };
  const refused: ControlsAction = {
    name: "refused",
    description: "reject",
    acl: () => true,
    handler: async () => {
      await turns(1);
      throw new Error("refused later");
    },
  };
  let slowServer: ControlsServer;

  beforeAll(async () => {
    slowServer = new ControlsServer({
      socketPath: slowSocket,
      actions: [slow, refused],
      socketAcl: () => parseSocketAcl(["allow", "user", "*"], accounts),
      controlsLog: slowLog,
      maxClients: 5,
    });
    await slowServer.start();
  });

  afterAll(async () => {
    await slowServer.close();
  });

  it("runs one request at a time: two slow requests sent together never interleave", async () => {
    const answers = await Promise.all([send(slowSocket, ["slow", "a"]), send(slowSocket, ["slow", "b"])]);
    expect(answers).toEqual([ok("slow a"), ok("slow b")]);
    // Whichever arrived first ran to its end before the other started.
    const [first, second] = [events[0]?.slice(6), events[2]?.slice(6)];
    expect(events).toEqual([`start ${first}`, `end ${first}`, `start ${second}`, `end ${second}`]);
    expect([first, second].sort()).toEqual(["a", "b"]);
  });

  it("answers and logs a rejected handler as a throwing one", async () => {
    await settledLog(slowLog);
    truncateSync(slowLog, 0);
    expect(await send(slowSocket, ["refused", "x"])).toEqual(failed("refused: refused later"));
    const client = `${me}/${myGroup} client`;
    expect(await settledLog(slowLog)).toEqual([
      `accepted connection from ${client}`,
      `recvd from ${client}: 'refused x'`,
      `sent to ${client}: return value: -1`,
      `sent to ${client}: 'refused: refused later'`,
      `closed connection to ${client}`,
    ]);
  });
});
