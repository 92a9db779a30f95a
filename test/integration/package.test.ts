/**
 * The package as a user gets it: `npm pack` of this tree, installed into an
 * empty folder outside the repository (offline: the tarball and its one
 * dependency, packed from node_modules, are all npm needs), and run from
 * there: `dsod -t`, `dsoctl -h`, the embedding example, and a module written
 * in that folder against the installed SDK, built with its own asconfig.json
 * extending `wasm-dso/asconfig.json`, then loaded by the installed dsod and
 * called over FTP.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FtpControl } from "./helpers/ftp-client.js";
import { ROOT, logMessages } from "./helpers/dsod.js";

const ASC = path.join(ROOT, "node_modules", "assemblyscript", "bin", "asc.js");
const LOADER = path.join(ROOT, "node_modules", "@assemblyscript", "loader");

/** npm's settings from the `npm test` that runs us would steer the child npm (its prefix, its lifecycle): only the build's headers and the cache go through. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith("npm_") || /^npm_config_(nodedir|cache)$/i.test(key)) env[key] = value;
  }
  return env;
}

function npm(args: readonly string[], cwd: string): string {
  const result = spawnSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, env: npmEnv(), encoding: "utf8" });
  if (result.status !== 0) throw new Error(`npm ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Packs `dir` into `into` without running its scripts (this tree is built already); returns npm's file list and the tarball. */
function pack(dir: string, into: string): { tarball: string; files: string[] } {
  const [packed] = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", into, dir], into)) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  if (packed === undefined) throw new Error(`npm pack ${dir} packed nothing`);
  return { tarball: path.join(into, packed.filename), files: packed.files.map((f) => f.path) };
}

let work: string;
let app: string;
let installed: string;
let packedFiles: string[];

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), "dsod-pkg-"));
  const ours = pack(ROOT, work);
  packedFiles = ours.files;
  const loader = pack(LOADER, work);
  app = path.join(work, "app");
  mkdirSync(app);
  writeFileSync(path.join(app, "package.json"), `${JSON.stringify({ name: "consumer", private: true, type: "module" })}\n`);
  // The install builds the native addons, as a user's would.
  npm(["install", "--offline", ours.tarball, loader.tarball], app);
  installed = path.join(app, "node_modules", "wasm-dso");
}, 240_000);

afterAll(() => {
  execFileSync("rm", ["-rf", work]);
});

function run(command: string, args: readonly string[], cwd = app): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, encoding: "utf8", timeout: 60_000 });
}

describe("npm pack", () => {
  it("ships what a user runs: the host, the example modules, the SDK and its config, the docs, the addon sources", () => {
    const guests = readdirSync(path.join(ROOT, "guest-modules"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `dist/libexec/${f.replace(/\.ts$/, ".wasm")}`)
      .sort();
    expect(packedFiles.filter((f) => f.startsWith("dist/libexec/")).sort()).toEqual(guests);
    for (const file of ["dist/host/cli/dsod.js", "dist/host/cli/dsoctl.js", "dist/host/index.d.ts", "asconfig.json", "guest-modules/sdk/index.ts", "binding.gyp", "docs/install.md"]) {
      expect(packedFiles).toContain(file);
    }
  });

  it("ships no tests, fixtures, bench output, source maps, TypeScript sources of the host, or files users left in the demo home", () => {
    const stray = packedFiles.filter(
      (f) =>
        /^(test|bench|scripts|\.ci)\//.test(f) ||
        /^dist\/(?!host\/|libexec\/)/.test(f) ||
        f.endsWith(".map") ||
        (f.startsWith("host/") && f.endsWith(".ts")) ||
        (f.startsWith("examples/home/demo/") && f !== "examples/home/demo/README.txt"),
    );
    expect(stray).toEqual([]);
  });
});

describe("the installed package", () => {
  it("checks a config with dsod -t, from node_modules/.bin", () => {
    const config = path.join(app, "dsod.conf");
    writeFileSync(config, ["ServerName installed", "Port 0", "ControlsEngine off", "LoadModule mod_test.c", 'TestGreeting "hi"', ""].join("\n"));
    const result = run(path.join(app, "node_modules", ".bin", "dsod"), ["-t", "-c", config]);
    expect(result.stdout.split("\n")[0]).toBe("Checking syntax of configuration file");
    expect(logMessages(result.stderr).filter((line) => line.startsWith("Fatal"))).toEqual([]);
    expect(result.status).toBe(0);
  });

  it.skipIf(existsSync("/etc/dsod.conf"))("without -c, reads /etc/dsod.conf and says so, never the demo config", () => {
    const result = run(path.join(app, "node_modules", ".bin", "dsod"), ["-t"]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toEqual([
      "Fatal: unable to read configuration file '/etc/dsod.conf': No such file or directory",
      `Fatal: without -c, dsod reads /etc/dsod.conf; write it (docs/install.md), or name a file with -c (the example config, with its demo account, is ${installed}/examples/dsod.conf)`,
    ]);
  });

  it("prints dsoctl's usage with dsoctl -h", () => {
    const result = run(path.join(app, "node_modules", ".bin", "dsoctl"), ["-h"]);
    expect(result.stdout.split("\n")[0]).toBe("usage: dsoctl [options] action [args...]");
    expect(result.status).toBe(0);
  });

  it("runs the embedding example, which imports the package by name", () => {
    const result = run(process.execPath, [path.join(installed, "examples", "embed.mjs")]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain("math_add(2, 3) = 5\n");
    expect(result.status).toBe(0);
  });
});

const hasSystemdAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;

describe("examples/dsod.service", () => {
  it.skipIf(!hasSystemdAnalyze)("passes systemd-analyze verify with its dsod paths pointed at the installed package", () => {
    const unit = readFileSync(path.join(installed, "examples", "dsod.service"), "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/dsod -n -c /etc/dsod.conf\n");
    expect(unit).toContain("ExecReload=/bin/kill -HUP $MAINPID\n");
    const file = path.join(work, "dsod.service");
    writeFileSync(file, unit.replaceAll("/usr/local/bin/dsod", path.join(app, "node_modules", ".bin", "dsod")));
    const result = run("systemd-analyze", ["verify", file]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("a module written outside the repository, against the installed SDK", () => {
  const SOURCE = [
    'import { API_VERSION, DECLINED, HANDLED, addHelp, arg, reply } from "wasm-dso/guest-modules/sdk";',
    "",
    "export const hello_module: i32 = API_VERSION;",
    "",
    "export function module_init(): i32 {",
    '  addHelp("HELLO", "[<sp> name]");',
    "  return 0;",
    "}",
    "",
    "export function cmd_HELLO(): i32 {",
    '  if (arg() == "") return DECLINED;',
    '  reply("200", "Hello, " + arg());',
    "  return HANDLED;",
    "}",
    "",
  ].join("\n");

  /** Builds mod_hello.ts in `dir` with `dir`'s asconfig.json, as `npx asc` there would. */
  function build(dir: string, asconfig: object): SpawnSyncReturns<string> {
    writeFileSync(path.join(dir, "asconfig.json"), `${JSON.stringify(asconfig, null, 2)}\n`);
    writeFileSync(path.join(dir, "mod_hello.ts"), SOURCE);
    mkdirSync(path.join(dir, "modules"), { recursive: true });
    return run(process.execPath, [ASC, "mod_hello.ts", "--config", "asconfig.json", "--outFile", "modules/mod_hello.wasm"], dir);
  }

  it("builds with an asconfig.json that extends wasm-dso/asconfig.json, loads in the installed dsod and answers over FTP", async () => {
    const built = build(app, { extends: "wasm-dso/asconfig.json" });
    expect(built.stderr).toBe("");
    expect(built.status).toBe(0);
    const config = path.join(app, "hello.conf");
    writeFileSync(
      config,
      [
        "DefaultAddress 127.0.0.1",
        "Port 0",
        "ControlsEngine off",
        `AuthUserFile ${installed}/examples/dsod.passwd`,
        `ModulePath ${app}/modules`,
        "LoadModule mod_hello.c",
        "",
      ].join("\n"),
    );
    const daemon = spawn(path.join(app, "node_modules", ".bin", "dsod"), ["-n", "-c", config], { cwd: app });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let stderr = "";
        daemon.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString();
          const match = /listening on \S+ port (\d+)/.exec(stderr);
          if (match !== null) resolve(Number(match[1]));
        });
        daemon.once("exit", (code) => reject(new Error(`dsod exited with ${code}:\n${stderr}`)));
      });
      const { client } = await FtpControl.connect(port);
      try {
        await client.login();
        expect(await client.send("HELLO out there")).toEqual(["200 Hello, out there"]);
      } finally {
        client.close();
      }
    } finally {
      await new Promise((resolve) => {
        daemon.once("exit", resolve);
        daemon.kill("SIGTERM");
      });
    }
  });

  it("is refused, naming the option, when its asconfig.json turns off what the ABI needs", () => {
    const dir = path.join(work, "author-without-imported-memory");
    mkdirSync(path.join(dir, "node_modules"), { recursive: true });
    execFileSync("ln", ["-s", installed, path.join(dir, "node_modules", "wasm-dso")]);
    const built = build(dir, { extends: "wasm-dso/asconfig.json", options: { importMemory: false } });
    expect(built.status).toBe(0);
    const config = path.join(dir, "dsod.conf");
    writeFileSync(config, ["Port 0", "ControlsEngine off", `ModulePath ${dir}/modules`, "LoadModule mod_hello.c", ""].join("\n"));
    const result = run(path.join(app, "node_modules", ".bin", "dsod"), ["-t", "-c", config]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toContain(
      `Fatal: LoadModule: error loading module 'mod_hello.c': mod_hello.c: built without "importMemory": true (asc --importMemory): it passes strings through host symbols ('abort', 'pr_cmd_arg', 'pr_response_add' and 1 more), which the host reads in the memory it gives the module as env.memory; extend the SDK's config: "extends": "wasm-dso/asconfig.json" on line 4 of '${config}'`,
    );
    expect(readFileSync(path.join(dir, "modules", "mod_hello.wasm")).byteLength).toBeGreaterThan(0);
  });
});
