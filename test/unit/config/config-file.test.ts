import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CONFIG_FILE_BYTES, expandInclude, readConfigFile } from "../../../host/config/config-file.js";
import { ConfigRunner } from "../../../host/config/config-runner.js";
import { ConfigError } from "../../../host/config/lexer.js";
import { createCoreModule } from "../../../host/static/mod-core.js";

let dir: string;
let socketServer: Server;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "dsod-config-file-"));
  execFileSync("mkfifo", [path.join(dir, "fifo")]);
  mkdirSync(path.join(dir, "conf.d"));
  writeFileSync(path.join(dir, "regular.conf"), "ServerName x\n");
  symlinkSync(path.join(dir, "regular.conf"), path.join(dir, "link.conf"));
  socketServer = createServer();
  await new Promise<void>((resolve) => socketServer.listen(path.join(dir, "socket"), resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => socketServer.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** What the runner reports for a main file that Includes `target`. */
function includeError(target: string): string {
  const main = path.join(dir, "main.conf");
  writeFileSync(main, `ServerName a\nInclude ${target}\n`);
  const runner = new ConfigRunner({
    source: { read: readConfigFile, expand: expandInclude },
    env: {},
    modules: () => [createCoreModule([]).module],
    isLoaded: () => true,
    log: () => {},
  });
  try {
    runner.run(main);
  } catch (error) {
    if (error instanceof ConfigError) return error.proftpdText();
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("readConfigFile", () => {
  it("reads a regular file, also through a symlink", () => {
    expect(readConfigFile(path.join(dir, "regular.conf"))).toBe("ServerName x\n");
    expect(readConfigFile(path.join(dir, "link.conf"))).toBe("ServerName x\n");
  });

  it("refuses a FIFO at once instead of blocking on it", () => {
    expect(() => readConfigFile(path.join(dir, "fifo"))).toThrow("not a regular file (a FIFO)");
  });

  it("refuses a device, a directory and a socket", () => {
    expect(() => readConfigFile("/dev/zero")).toThrow("not a regular file (a character device)");
    expect(() => readConfigFile(path.join(dir, "conf.d"))).toThrow(expect.objectContaining({ code: "EISDIR" }));
    expect(() => readConfigFile(path.join(dir, "socket"))).toThrow("not a regular file (a socket)");
  });

  it("reads a file of exactly the bound and refuses one byte more", () => {
    const full = path.join(dir, "full.conf");
    writeFileSync(full, "#".repeat(MAX_CONFIG_FILE_BYTES));
    expect(readConfigFile(full)).toHaveLength(MAX_CONFIG_FILE_BYTES);
    writeFileSync(full, "#".repeat(MAX_CONFIG_FILE_BYTES + 1));
    expect(() => readConfigFile(full)).toThrow("File too large (more than 1048576 bytes)");
  });
});

describe("Include of what is not a regular file is a ConfigError naming it", () => {
  it("a FIFO", () => {
    expect(includeError(`${dir}/fifo`)).toBe(
      `Include: error including '${dir}/fifo': not a regular file (a FIFO) on line 2 of '${dir}/main.conf'`,
    );
  });

  it("a FIFO matched by a wildcard", () => {
    writeFileSync(path.join(dir, "conf.d", "a.conf"), "ServerName b\n");
    execFileSync("mkfifo", [path.join(dir, "conf.d", "b.conf")]);
    expect(includeError(`${dir}/conf.d/*.conf`)).toBe(
      `Include: error including '${dir}/conf.d/b.conf': not a regular file (a FIFO) on line 2 of '${dir}/main.conf'`,
    );
  });

  it("/dev/zero, a directory, a socket, a file over the bound", () => {
    expect(includeError("/dev/zero")).toBe(
      `Include: error including '/dev/zero': not a regular file (a character device) on line 2 of '${dir}/main.conf'`,
    );
    expect(includeError(`${dir}/conf.d`)).toBe(
      `Include: error including '${dir}/conf.d': Is a directory on line 2 of '${dir}/main.conf'`,
    );
    expect(includeError(`${dir}/socket`)).toBe(
      `Include: error including '${dir}/socket': not a regular file (a socket) on line 2 of '${dir}/main.conf'`,
    );
    writeFileSync(path.join(dir, "big.conf"), "#".repeat(MAX_CONFIG_FILE_BYTES + 1));
    expect(includeError(`${dir}/big.conf`)).toBe(
      `Include: error including '${dir}/big.conf': File too large (more than 1048576 bytes) on line 2 of '${dir}/main.conf'`,
    );
  });

  it("the main file too", () => {
    const runner = new ConfigRunner({
      source: { read: readConfigFile, expand: expandInclude },
      env: {},
      modules: () => [],
      isLoaded: () => false,
      log: () => {},
    });
    expect(() => runner.run(`${dir}/fifo`)).toThrow(
      `unable to read configuration file '${dir}/fifo': not a regular file (a FIFO)`,
    );
  });
});
