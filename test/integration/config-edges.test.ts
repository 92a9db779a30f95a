/**
 * Configuration reading under abuse (issue #11), through the built dsod:
 * `Include` of a FIFO or a device, which used to hang `dsod -t` and a live
 * daemon's SIGHUP, and sections or quotes left open, which `dsod -t` used to
 * pass. Also that <Limit> and <Directory> now pass `-t`.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { baseConfig, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const fixture = daemonFixture();

function check(lines: readonly string[]): { status: number | null; stdout: string; messages: string[]; file: string } {
  const dir = tempDir();
  const file = writeConfig(dir, lines.join("\n"));
  const result = runDsod(["-t", "-c", file]);
  return { status: result.status, stdout: result.stdout, messages: logMessages(result.stderr), file };
}

describe("dsod -t refuses what is not a regular file, without blocking", () => {
  it("a FIFO named by Include", () => {
    const dir = tempDir();
    const fifo = path.join(dir, "extra.conf");
    execFileSync("mkfifo", [fifo]);
    const file = writeConfig(dir, ["ServerName x", `Include ${fifo}`].join("\n"));
    const result = runDsod(["-t", "-c", file]);
    expect(logMessages(result.stderr)).toEqual([
      `Fatal: Include: error including '${fifo}': not a regular file (a FIFO) on line 2 of '${file}'`,
    ]);
    // A blocked read would have run into the runner's 30 s timeout: no status, no message.
    expect(result.status).toBe(1);
  });

  it("/dev/zero, a directory, and a main config that is a FIFO", () => {
    const zero = check(["Include /dev/zero"]);
    expect(zero.messages).toEqual([
      `Fatal: Include: error including '/dev/zero': not a regular file (a character device) on line 1 of '${zero.file}'`,
    ]);
    expect(zero.status).toBe(1);
    const dir = tempDir();
    const folder = check([`Include ${dir}`]);
    expect(folder.messages).toEqual([
      `Fatal: Include: error including '${dir}': Is a directory on line 1 of '${folder.file}'`,
    ]);
    const fifo = path.join(dir, "dsod.conf");
    execFileSync("mkfifo", [fifo]);
    const main = runDsod(["-t", "-c", fifo]);
    expect(logMessages(main.stderr)).toEqual([
      `Fatal: unable to read configuration file '${fifo}': not a regular file (a FIFO)`,
    ]);
    expect(main.status).toBe(1);
  });

  it("a file over the 1 MiB bound", () => {
    const dir = tempDir();
    const big = path.join(dir, "big.conf");
    writeFileSync(big, "# padding\n".repeat(110_000));
    const file = writeConfig(dir, `Include ${big}`);
    const result = runDsod(["-t", "-c", file]);
    expect(logMessages(result.stderr)).toEqual([
      `Fatal: Include: error including '${big}': File too large (more than 1048576 bytes) on line 1 of '${file}'`,
    ]);
    expect(result.status).toBe(1);
  });
});

describe("dsod -t refuses sections and quotes left open", () => {
  it("a used <IfModule> never closed", () => {
    const result = check(["ServerName x", "<IfModule mod_core.c>", "  ServerName y"]);
    expect(result.messages).toEqual([`Fatal: <IfModule>: unclosed <IfModule> context on line 2 of '${result.file}'`]);
    expect(result.status).toBe(1);
  });

  it("a stray </IfModule> and a stray </Limit>", () => {
    const ifModule = check(["ServerName x", "</IfModule>"]);
    expect(ifModule.messages).toEqual([
      `Fatal: </IfModule>: directive not allowed in server config context on line 2 of '${ifModule.file}'`,
    ]);
    expect(ifModule.status).toBe(1);
    const limit = check(["</Limit>"]);
    expect(limit.messages).toEqual([
      `Fatal: </Limit>: directive not allowed in server config context on line 1 of '${limit.file}'`,
    ]);
    expect(limit.status).toBe(1);
  });

  it("an unterminated quote", () => {
    const result = check(["ServerName x", 'ServerName "dsod test']);
    expect(result.messages).toEqual([`Fatal: ServerName: unterminated quoted string on line 2 of '${result.file}'`]);
    expect(result.status).toBe(1);
  });

  it("a <Limit> never closed, with main.c's words and where it opened", () => {
    const result = check(["<Limit WRITE>", "  DenyAll"]);
    expect(result.messages).toEqual([
      `Fatal: error processing configuration file '${result.file}': unclosed configuration section`,
      `Fatal: <Limit> opened on line 1 of '${result.file}' is not closed`,
    ]);
    expect(result.status).toBe(1);
  });
});

describe("dsod -t takes <Limit> and <Directory>", () => {
  it("passes a config with them, and refuses what a <Limit> does not take", () => {
    const good = check([
      "<Limit LOGIN>",
      "  Order allow,deny",
      "  AllowUser demo",
      "  DenyAll",
      "</Limit>",
      "<Directory ~/incoming>",
      "  <Limit READ DIRS>",
      "    AllowGroup OR staff,ops",
      "    DenyAll",
      "  </Limit>",
      "</Directory>",
    ]);
    expect(good.messages).toEqual([]);
    expect(good.stdout).toBe("Checking syntax of configuration file\nSyntax check complete.\n");
    expect(good.status).toBe(0);
    const bad = check(["<Limit WRITE>", "  Port 2121", "</Limit>"]);
    expect(bad.messages).toEqual([`Fatal: Port: directive not allowed in <Limit> context on line 2 of '${bad.file}'`]);
    expect(bad.status).toBe(1);
  });
});

describe("SIGHUP with a FIFO Include", () => {
  it("is refused at once; the running config keeps serving open and new sessions", async () => {
    const { daemon, dir } = await fixture.start(['ServerName "before"']);
    // NOOP needs no login: what is tested is that sessions keep being answered.
    const open = await fixture.connect(daemon, false);
    const fifo = path.join(dir, "extra.conf");
    execFileSync("mkfifo", [fifo]);
    const config = writeConfig(dir, [baseConfig(dir), 'ServerName "after"', `Include ${fifo}`].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/unable to reload the configuration/);
    expect(logMessages(daemon.stderr)).toContain(
      `unable to reload the configuration, keeping the running one: Include: error including '${fifo}': not a regular file (a FIFO) on line 8 of '${config}'`,
    );
    expect(await open.send("NOOP")).toEqual(["200 NOOP command successful"]);
    const { client, greeting } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(greeting).toEqual(["220 dsod Server (before) [127.0.0.1]"]);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });
});
