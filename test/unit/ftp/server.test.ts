import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { Client } from "basic-ftp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FtpServer } from "../../../host/ftp/server.js";
import { ControlClient } from "../../helpers/control-client.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { createCompiledInModules } from "../../../host/static/index.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const MODULE_PATH = path.join(ROOT, "dist", "libexec");
const PASSWD = path.join(ROOT, "examples", "dsod.passwd");

/** FEAT of the compiled-in modules, around where a guest's TEST sorts. */
const FEATURES_BEFORE_TEST = [
  "211-Features:",
  " EPRT",
  " EPSV",
  " MDTM",
  " MFMT",
  " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;",
  " REST STREAM",
  " SIZE",
];
const FEATURES_AFTER_TEST = [" TVFS", " UTF8", "211 End"];

describe("FtpServer with the compiled-in modules and real guest modules", () => {
  const compiled = createCompiledInModules();
  compiled.core.serverName = "dso-ref";
  compiled.authFile.setPath(PASSWD);
  compiled.authFile.load(readFileSync(PASSWD, "utf8"));
  const host = new ModuleHost({ modulePath: MODULE_PATH, compiledIn: compiled.modules });
  const logLines: string[] = [];
  const server = new FtpServer({
    acquireModules: () => host.acquireModules(),
    serverName: compiled.core.serverName,
    idleTimeoutSeconds: compiled.core.timeoutIdle,
    log: (message) => logLines.push(message),
  });
  let port = 0;

  async function login(): Promise<ControlClient> {
    const client = await ControlClient.connect(port);
    expect(await client.reply()).toEqual(["220 dsod Server (dso-ref) [127.0.0.1]"]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS demo")).toEqual(["230 User demo logged in"]);
    return client;
  }

  beforeAll(async () => {
    host.loadModule("mod_test.c");
    port = (await server.listen(0, "127.0.0.1")).port;
  });

  afterAll(async () => {
    await server.close();
    host.close();
  });

  it("greets, refuses commands before login, logs in and runs a guest command", async () => {
    const client = await ControlClient.connect(port);
    expect(await client.reply()).toEqual(["220 dsod Server (dso-ref) [127.0.0.1]"]);
    expect(await client.send("TEST hi")).toEqual(["530 Please login with USER and PASS"]);
    expect(await client.send("SYST")).toEqual(["215 UNIX Type: L8"]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    expect(await client.send("PASS demo")).toEqual(["503 Login with USER first"]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS demo")).toEqual(["230 User demo logged in"]);
    expect(await client.send("TEST hi")).toEqual(["200 Hello from mod_test: hi"]);
    expect(await client.send("FOO bar")).toEqual(["500 'FOO' not understood"]);
    expect(await client.send("")).toEqual(["500 Invalid command: try being more creative"]);
    expect(await client.send("QUIT")).toEqual(["221 Goodbye."]);
    await client.closed();
  });

  it("lists the guest's TEST in HELP and FEAT", async () => {
    const client = await login();
    expect(await client.send("HELP")).toEqual([
      "214-The following commands are recognized (* =>'s unimplemented):",
      " CWD     XCWD    CDUP    XCUP    QUIT    PORT    PASV    EPRT    ",
      " EPSV    ALLO    RNFR    RNTO    DELE    MDTM    RMD     XRMD    ",
      " MKD     XMKD    PWD     XPWD    SIZE    SYST    HELP    NOOP    ",
      " FEAT    OPTS    TYPE    STRU    MODE    RETR    STOR    STOU    ",
      " APPE    REST    ABOR    USER    PASS    LIST    NLST    STAT    ",
      " SITE    MLSD    MLST    TEST    ",
      "214 Direct comments to root@localhost",
    ]);
    expect(await client.send("HELP TEST")).toEqual(["214 Syntax: TEST [<sp> text]"]);
    expect(await client.send("FEAT")).toEqual([...FEATURES_BEFORE_TEST, " TEST", ...FEATURES_AFTER_TEST]);
    client.destroy();
  });

  it("answers pipelined commands in order, and ignores what follows QUIT", async () => {
    const client = await login();
    client.write("NOOP\r\nTEST one\nSYST\r\nQUIT\r\nNOOP\r\n");
    expect(await client.reply()).toEqual(["200 NOOP command successful"]);
    expect(await client.reply()).toEqual(["200 Hello from mod_test: one"]);
    expect(await client.reply()).toEqual(["215 UNIX Type: L8"]);
    expect(await client.reply()).toEqual(["221 Goodbye."]);
    await client.closed();
    await expect(client.reply()).rejects.toThrow('connection closed; pending: ""');
  });

  it("runs SITE subcommands of a module loaded before the session started", async () => {
    const before = await login();
    host.loadModule("mod_site_hello.c");
    try {
      const after = await login();
      expect(await after.send("SITE HELLO bob")).toEqual(["200 SITE HELLO: hello, bob"]);
      expect(await after.send("SITE HELP")).toEqual([
        "214-The following SITE commands are recognized (* =>'s unimplemented)",
        " HELLO [<sp> name]",
        " HELP",
        " CHMOD",
        "214 Direct comments to root@localhost",
      ]);
      expect(await before.send("SITE HELLO bob")).toEqual(["500 'SITE HELLO' not understood"]);
      after.destroy();
    } finally {
      host.unloadModule("mod_site_hello.c");
      before.destroy();
    }
  });

  it("keeps a session's modules when one is unloaded; new sessions no longer have it", async () => {
    const old = await login();
    host.unloadModule("mod_test.c");
    try {
      const fresh = await login();
      expect(await fresh.send("TEST x")).toEqual(["500 'TEST' not understood"]);
      expect(await old.send("TEST still")).toEqual(["200 Hello from mod_test: still"]);
      expect(await fresh.send("FEAT")).toEqual([...FEATURES_BEFORE_TEST, ...FEATURES_AFTER_TEST]);
      fresh.destroy();
    } finally {
      old.destroy();
      host.loadModule("mod_test.c");
    }
  });

  it("answers a guest trap with 451, logs it, and keeps the session", async () => {
    host.setModulePath(path.join(ROOT, "dist", "test-fixtures"));
    host.loadModule("mod_trap.c");
    host.setModulePath(MODULE_PATH);
    try {
      const client = await login();
      expect(await client.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
      expect(await client.send("TEST after")).toEqual(["200 Hello from mod_test: after"]);
      expect(logLines.filter((l) => l.includes("mod_trap.c"))).toEqual([
        expect.stringMatching(
          /^session \d+: CMD handler of mod_trap\.c for SITE failed: mod_trap\.c: fault in site_TRAP: /,
        ),
      ]);
      client.destroy();
    } finally {
      host.unloadModule("mod_trap.c");
    }
  });

  it("satisfies a real FTP client library (basic-ftp)", async () => {
    const client = new Client(5000);
    try {
      const welcome = await client.connect("127.0.0.1", port);
      expect(welcome).toEqual({ code: 220, message: "220 dsod Server (dso-ref) [127.0.0.1]" });
      expect(await client.login("demo", "demo")).toEqual({ code: 230, message: "230 User demo logged in" });
      expect(await client.send("TEST x")).toEqual({ code: 200, message: "200 Hello from mod_test: x" });
      const features = [...(await client.features()).keys()];
      expect(features).toContain("TEST");
      expect(features).toContain("EPSV");
    } finally {
      client.close();
    }
  });
});

describe("FtpServer session ends", () => {
  function makeServer(idleTimeoutSeconds: number): { server: FtpServer; released: () => number } {
    const compiled = createCompiledInModules();
    let released = 0;
    const server = new FtpServer({
      acquireModules: () => ({
        modules: compiled.modules,
        release: () => {
          released++;
        },
      }),
      serverName: "dsod",
      idleTimeoutSeconds,
    });
    return { server, released: () => released };
  }

  it("ends idle sessions with proftpd's 421 and releases their modules", async () => {
    const { server, released } = makeServer(1);
    const { port } = await server.listen(0, "127.0.0.1");
    const client = await ControlClient.connect(port);
    expect(await client.reply()).toEqual(["220 dsod Server (dsod) [127.0.0.1]"]);
    expect(await client.reply()).toEqual(["421 Idle timeout (1 seconds): closing control connection"]);
    await client.closed();
    await server.close();
    expect(released()).toBe(1);
  });

  it("close() stops accepting, sends 421 to every session and resolves when all are closed", async () => {
    const { server, released } = makeServer(0);
    const { port } = await server.listen(0, "127.0.0.1");
    const a = await ControlClient.connect(port);
    const b = await ControlClient.connect(port);
    await a.reply();
    await b.reply();
    expect(server.sessionCount).toBe(2);
    const closing = server.close();
    expect(await a.reply()).toEqual(["421 FTP server shutting down - Server shutting down"]);
    expect(await b.reply()).toEqual(["421 FTP server shutting down - Server shutting down"]);
    await closing;
    expect(server.sessionCount).toBe(0);
    expect(released()).toBe(2);
    await expect(ControlClient.connect(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("answers Telnet option requests with refusals", async () => {
    const { server } = makeServer(0);
    const { port } = await server.listen(0, "127.0.0.1");
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(Buffer.from([255, 253, 1, ...Buffer.from("NOOP\r\n")]));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const all = Buffer.concat(received);
    expect(all.includes(Buffer.from([255, 252, 1]))).toBe(true);
    expect(all.toString("latin1")).toContain("200 NOOP command successful\r\n");
    socket.destroy();
    await server.close();
  });
});
