/**
 * The real dsod serving FTP: commands through the handler chains of compiled-in
 * and loaded modules, the session snapshot of the module set, faults contained,
 * SIGHUP and SIGTERM. Clients are raw sockets and the basic-ftp library.
 */
import { existsSync, statSync } from "node:fs";
import { Client } from "basic-ftp";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import {
  FIXTURES,
  LIBEXEC,
  RunningDsod,
  baseConfig,
  dsoctl,
  logMessages,
  runDsod,
  writeConfig,
} from "./helpers/dsod.js";

const fixture = daemonFixture();
const startDsod = fixture.start;
const connect = fixture.connect;

const EXAMPLE_MODULES = [
  `LoadFile ${LIBEXEC}/libmath.wasm`,
  "LoadModule mod_test.c",
  "LoadModule mod_calc.c",
  "LoadModule mod_site_hello.c",
  "LoadModule mod_counter.c",
  "LoadModule mod_sql_mysql.c",
  "LoadModule mod_override.c",
];

describe("dsod serving FTP", () => {
  it("answers through compiled-in and loaded modules, with proftpd's texts", async () => {
    const { daemon } = await startDsod(['ServerName "dsod test"', ...EXAMPLE_MODULES]);
    const { client, greeting } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(greeting).toEqual(["220 dsod Server (dsod test) [127.0.0.1]"]);
    expect(await client.send("TEST hi")).toEqual(["530 Please login with USER and PASS"]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    await client.login();
    expect(await client.send("TEST hi")).toEqual(["200 Hello from mod_test: hi"]);
    expect(await client.send("SITE CALC 6 7")).toEqual(["200 SITE CALC: 6 + 7 = 13, 6 * 7 = 42"]);
    expect(await client.send("SITE HELLO bob")).toEqual(["200 SITE HELLO: hello, bob"]);
    expect(await client.send("COUNT")).toEqual(["200 COUNT 1"]);
    expect(await client.send("COUNT")).toEqual(["200 COUNT 2"]);
    expect(await client.send("SITE SQL")).toEqual(["200 SITE SQL: 1 backend(s) registered"]);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await client.send("FROB")).toEqual(["500 'FROB' not understood"]);
    expect(await client.send("FEAT")).toEqual([
      "211-Features:",
      " EPRT",
      " EPSV",
      " MDTM",
      " MFMT",
      " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;",
      " REST STREAM",
      " SIZE",
      " TEST",
      " TVFS",
      " UTF8",
      "211 End",
    ]);
    const help = await client.send("HELP");
    expect(help[0]).toBe("214-The following commands are recognized (* =>'s unimplemented):");
    expect(help.join("\n")).toMatch(/ TEST {4}COUNT/);
    expect(help.at(-1)).toBe("214 Direct comments to root@localhost");
    expect(await client.send("QUIT")).toEqual(["221 Goodbye."]);
    await client.closed();
  });

  it("runs the newest module's handler first; DECLINED passes the command on", async () => {
    const { daemon } = await startDsod(["LoadModule mod_override.c"]);
    const client = await connect(daemon);
    expect(await client.send("SYST")).toEqual(["215 UNIX Type: L8 (answered by mod_override.c)"]);
    expect(await client.send("SYST CORE")).toEqual(["215 UNIX Type: L8"]);
    expect((await dsoctl(["-s", daemon.socket, "rmmod", "mod_override.c"])).stdout).toBe(
      "dsoctl: 'mod_override.c' unloaded\n",
    );
    const fresh = await connect(daemon);
    expect(await fresh.send("SYST")).toEqual(["215 UNIX Type: L8"]);
  });

  it("satisfies a real FTP client library", async () => {
    const { daemon } = await startDsod(["LoadModule mod_test.c"]);
    const ftp = new Client(5_000);
    try {
      await ftp.connect("127.0.0.1", daemon.port);
      await ftp.login("demo", "demo");
      const response = await ftp.send("TEST from basic-ftp");
      expect(response.code).toBe(200);
      expect(response.message).toBe("200 Hello from mod_test: from basic-ftp");
      expect([...(await ftp.features()).keys()]).toEqual([
        "EPRT",
        "EPSV",
        "MDTM",
        "MFMT",
        "MLST",
        "REST",
        "SIZE",
        "TEST",
        "TVFS",
        "UTF8",
      ]);
    } finally {
      ftp.close();
    }
  });

  it("keeps each session's module set: old sessions keep theirs, new ones see changes at once", async () => {
    const { daemon } = await startDsod(["LoadModule mod_test.c"]);
    const before = await connect(daemon);
    expect(await before.send("TEST a")).toEqual(["200 Hello from mod_test: a"]);
    const removed = await dsoctl(["-s", daemon.socket, "rmmod", "mod_test.c"]);
    expect(removed.stdout).toBe("dsoctl: 'mod_test.c' unloaded\n");
    expect(removed.status).toBe(0);
    const after = await connect(daemon);
    expect(await after.send("TEST b")).toEqual(["500 'TEST' not understood"]);
    expect(await before.send("TEST c")).toEqual(["200 Hello from mod_test: c"]);
    expect((await dsoctl(["-s", daemon.socket, "insmod", "mod_test.c"])).stdout).toBe("dsoctl: 'mod_test.c' loaded\n");
    expect(await after.send("TEST d")).toEqual(["500 'TEST' not understood"]);
    const latest = await connect(daemon);
    expect(await latest.send("TEST e")).toEqual(["200 Hello from mod_test: e"]);
  });

  it("contains a guest trap: the session gets 451 and goes on, others do not notice", async () => {
    const { daemon } = await startDsod([`ModulePath ${FIXTURES}`, "LoadModule mod_trap.c"]);
    const victim = await connect(daemon);
    const bystander = await connect(daemon);
    expect(await victim.send("SITE TRAP")).toEqual(["451 Requested action aborted: local error in processing."]);
    expect(await victim.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await bystander.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(logMessages(daemon.stderr).join("\n")).toMatch(/mod_trap\.c: fault in site_TRAP: unreachable/);
  });
});

describe("dsod signals", () => {
  it("SIGHUP re-reads the config: new sessions get the new module set, old ones keep theirs", async () => {
    const { daemon, dir } = await startDsod(["LoadModule mod_test.c"]);
    const old = await connect(daemon);
    writeConfig(dir, [baseConfig(dir), 'ServerName "reloaded"', "LoadModule mod_site_hello.c"].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/received SIGHUP -- master server reparsing configuration file/);
    expect((await dsoctl(["-s", daemon.socket, "lsmod"])).stdout).toContain("dsoctl:   mod_site_hello.c\n");
    const { client: greeted, greeting } = await FtpControl.connect(daemon.port);
    greeted.close();
    expect(greeting).toEqual(["220 dsod Server (reloaded) [127.0.0.1]"]);
    const fresh = await connect(daemon);
    expect(await fresh.send("TEST x")).toEqual(["500 'TEST' not understood"]);
    expect(await fresh.send("SITE HELLO y")).toEqual(["200 SITE HELLO: hello, y"]);
    expect(await old.send("TEST z")).toEqual(["200 Hello from mod_test: z"]);
  });

  it("SIGHUP keeps a compiled-in module removed with rmmod out, as proftpd does", async () => {
    const { daemon } = await startDsod(["LoadModule mod_test.c"]);
    expect((await dsoctl(["-s", daemon.socket, "rmmod", "mod_site.c"])).stdout).toBe("dsoctl: 'mod_site.c' unloaded\n");
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/received SIGHUP/);
    // The reload has finished once lsmod shows the config's module again.
    const lsmod = (await dsoctl(["-s", daemon.socket, "lsmod"])).stdout;
    expect(lsmod).toContain("dsoctl:   mod_test.c\n");
    expect(lsmod).not.toContain("mod_site.c");
    const client = await connect(daemon);
    expect(await client.send("SITE HELP")).toEqual(["500 'SITE' not understood"]);
  });

  it("SIGHUP with a broken config keeps the running one and logs why", async () => {
    const { daemon, dir } = await startDsod(["LoadModule mod_test.c"]);
    const config = writeConfig(dir, [baseConfig(dir), "LoadModule mod_test.c", "LoadModule mod_nope.c"].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/unable to reload the configuration/);
    expect(logMessages(daemon.stderr)).toContain(
      `unable to reload the configuration, keeping the running one: LoadModule: error loading module 'mod_nope.c': No such file or directory on line 8 of '${config}'`,
    );
    const client = await connect(daemon);
    expect(await client.send("TEST ok")).toEqual(["200 Hello from mod_test: ok"]);
    expect((await dsoctl(["-s", daemon.socket, "lsmod"])).stdout).toContain("dsoctl:   mod_test.c\n");
  });

  it("SIGTERM ends sessions, unloads modules, removes the socket and exits 0", async () => {
    const { daemon } = await startDsod(["LoadModule mod_test.c"]);
    const client = await connect(daemon);
    expect(existsSync(daemon.socket)).toBe(true);
    const code = await daemon.stop();
    expect(code).toBe(0);
    expect(await client.reply()).toEqual(["421 FTP server shutting down - Server shutting down"]);
    expect(existsSync(daemon.socket)).toBe(false);
    expect(logMessages(daemon.stderr)).toContain("dsod shutting down");
  });
});

describe("dsod -t beside a running daemon", () => {
  it("checks the same config without touching the running daemon's socket", async () => {
    const { daemon, dir } = await startDsod(["LoadModule mod_test.c"]);
    const before = statSync(daemon.socket).ino;
    const result = runDsod(["-t", "-c", `${dir}/dsod.conf`]);
    expect(result.stdout).toBe("Checking syntax of configuration file\nSyntax check complete.\n");
    expect(result.status).toBe(0);
    expect(statSync(daemon.socket).ino).toBe(before);
    expect((await dsoctl(["-s", daemon.socket, "lsmod"])).status).toBe(0);
  });
});

describe("dsod start-up failures", () => {
  it("refuses to start beside a dsod that answers on the same socket", async () => {
    const { daemon, dir } = await startDsod([]);
    const second = writeConfig(dir, baseConfig(dir), "second.conf");
    // A second dsod that started anyway is stopped with the others.
    const outcome = await RunningDsod.start(second, daemon.socket).then(
      (started) => {
        fixture.adopt(started);
        return "started";
      },
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    expect(outcome).toMatch(/Fatal: another dsod is running on '.*dsod\.sock'/);
    const client = await connect(daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });
});
