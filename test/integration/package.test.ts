/**
 * The package as a user gets it: `npm pack` of this tree, installed into an
 * empty folder outside the repository (offline: the tarball and its one
 * dependency, packed from node_modules, are all npm needs), and run from
 * there: `dsod -t`, `dsoctl -h`, the embedding example, and a module written
 * in that folder against the installed SDK, built with its own asconfig.json
 * extending `wasm-dso/asconfig.json`, then loaded by the installed dsod and
 * called over FTP.
 *
 * The same tarball is installed a second time as on a machine without a
 * compiler (CC and CXX name none, and the tarball has no prebuilt addons,
 * as `npm pack --ignore-scripts` skips prebuild.mjs): the install still succeeds, and the daemon from there serves FTP,
 * loads a module and says at start what runs degraded. Given prebuilt
 * addons (scripts/prebuild.mjs), the install script takes them instead.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
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

/** Runs npm, failing on a non-zero exit; returns its stdout, and with `output`, its stderr after it. */
function npm(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}, output = false): string {
  const result = spawnSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    env: { ...npmEnv(), ...env },
    encoding: "utf8",
  });
  if (result.status !== 0)
    throw new Error(`npm ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return output ? `${result.stdout}${result.stderr}` : result.stdout;
}

/** An empty project folder in `work`. */
function project(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "package.json"), `${JSON.stringify({ name, private: true, type: "module" })}\n`);
  return dir;
}

/** Packs `dir` into `into` without running its scripts (this tree is built already); returns npm's file list and the tarball. */
function pack(dir: string, into: string): { tarball: string; files: string[] } {
  const [packed] = JSON.parse(
    npm(["pack", "--json", "--ignore-scripts", "--pack-destination", into, dir], into),
  ) as Array<{
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
/** The same tarball, installed where the addons cannot be built. */
let bare: string;
let bareInstalled: string;
let bareInstallOutput: string;
/** The environment of a machine without a C or C++ compiler, for node-gyp's make. */
let noCompiler: NodeJS.ProcessEnv;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), "dsod-pkg-"));
  const ours = pack(ROOT, work);
  packedFiles = ours.files;
  const loader = pack(LOADER, work);
  app = project("app");
  // The install builds the native addons, as a user's would.
  npm(["install", "--offline", ours.tarball, loader.tarball], app);
  installed = path.join(app, "node_modules", "wasm-dso");
  noCompiler = { CC: path.join(work, "no-cc"), CXX: path.join(work, "no-c++") };
  bare = project("bare");
  bareInstallOutput = npm(
    ["install", "--offline", "--foreground-scripts", ours.tarball, loader.tarball],
    bare,
    noCompiler,
    true,
  );
  bareInstalled = path.join(bare, "node_modules", "wasm-dso");
}, 240_000);

afterAll(() => {
  execFileSync("rm", ["-rf", work]);
});

function run(command: string, args: readonly string[], cwd = app): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, encoding: "utf8", timeout: 60_000 });
}

interface Started {
  readonly port: number;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts `<project>/node_modules/.bin/dsod -n -c config` and waits for its `listening` line. */
async function startDsod(dir: string, config: string): Promise<Started> {
  const daemon: ChildProcessWithoutNullStreams = spawn(
    path.join(dir, "node_modules", ".bin", "dsod"),
    ["-n", "-c", config],
    { cwd: dir },
  );
  let stderr = "";
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (daemon.exitCode !== null || daemon.signalCode !== null) return resolve();
      daemon.once("exit", () => resolve());
      daemon.kill("SIGTERM");
    });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      daemon.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on \S+ port (\d+)/.exec(stderr);
        if (match !== null) resolve(Number(match[1]));
      });
      daemon.once("exit", (code) => reject(new Error(`dsod exited with ${code}:\n${stderr}`)));
    });
    return { port, stderr: () => stderr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

describe("npm pack", () => {
  it("ships what a user runs: the host, the example modules, the SDK and its config, the docs, the addon sources", () => {
    const guests = readdirSync(path.join(ROOT, "guest-modules"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `dist/libexec/${f.replace(/\.ts$/, ".wasm")}`)
      .sort();
    expect(packedFiles.filter((f) => f.startsWith("dist/libexec/")).sort()).toEqual(guests);
    for (const file of [
      "dist/host/cli/dsod.js",
      "dist/host/cli/dsoctl.js",
      "dist/host/index.d.ts",
      "asconfig.json",
      "guest-modules/sdk/index.ts",
      "guest-modules/sdk/asconfig.json",
      "guest-modules/sdk/constants.ts",
      "guest-modules/sdk/README.md",
      "binding.gyp",
      "docs/install.md",
      "scripts/install-native.mjs",
      "scripts/native-addons.mjs",
    ]) {
      expect(packedFiles).toContain(file);
    }
  });

  it("ships no tests, fixtures, bench output, scripts but the install's, source maps, TypeScript sources of the host, or files users left in the demo home", () => {
    const stray = packedFiles.filter(
      (f) =>
        /^(test|bench|\.ci)\//.test(f) ||
        (/^scripts\//.test(f) && !["scripts/install-native.mjs", "scripts/native-addons.mjs"].includes(f)) ||
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
    writeFileSync(
      config,
      ["ServerName installed", "Port 0", "ControlsEngine off", "LoadModule mod_test.c", 'TestGreeting "hi"', ""].join(
        "\n",
      ),
    );
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
  it.skipIf(!hasSystemdAnalyze)(
    "passes systemd-analyze verify with its dsod paths pointed at the installed package",
    () => {
      const unit = readFileSync(path.join(installed, "examples", "dsod.service"), "utf8");
      expect(unit).toContain("ExecStart=/usr/local/bin/dsod -n -c /etc/dsod.conf\n");
      expect(unit).toContain("ExecReload=/bin/kill -HUP $MAINPID\n");
      const file = path.join(work, "dsod.service");
      writeFileSync(file, unit.replaceAll("/usr/local/bin/dsod", path.join(app, "node_modules", ".bin", "dsod")));
      const result = run("systemd-analyze", ["verify", file]);
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    },
  );
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
    return run(
      process.execPath,
      [ASC, "mod_hello.ts", "--config", "asconfig.json", "--outFile", "modules/mod_hello.wasm"],
      dir,
    );
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
    const daemon = await startDsod(app, config);
    try {
      const { client } = await FtpControl.connect(daemon.port);
      try {
        await client.login();
        expect(await client.send("HELLO out there")).toEqual(["200 Hello, out there"]);
      } finally {
        client.close();
      }
    } finally {
      await daemon.stop();
    }
  });

  it("is refused, naming the option, when its asconfig.json turns off what the ABI needs", () => {
    const dir = path.join(work, "author-without-imported-memory");
    mkdirSync(path.join(dir, "node_modules"), { recursive: true });
    execFileSync("ln", ["-s", installed, path.join(dir, "node_modules", "wasm-dso")]);
    const built = build(dir, { extends: "wasm-dso/asconfig.json", options: { importMemory: false } });
    expect(built.status).toBe(0);
    const config = path.join(dir, "dsod.conf");
    writeFileSync(
      config,
      ["Port 0", "ControlsEngine off", `ModulePath ${dir}/modules`, "LoadModule mod_hello.c", ""].join("\n"),
    );
    const result = run(path.join(app, "node_modules", ".bin", "dsod"), ["-t", "-c", config]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toContain(
      `Fatal: LoadModule: error loading module 'mod_hello.c': mod_hello.c: built without "importMemory": true (asc --importMemory): it passes strings through host symbols ('abort', 'pr_cmd_arg', 'pr_response_add' and 1 more), which the host reads in the memory it gives the module as env.memory; extend the SDK's config: "extends": "wasm-dso/asconfig.json" on line 4 of '${config}'`,
    );
    expect(readFileSync(path.join(dir, "modules", "mod_hello.wasm")).byteLength).toBeGreaterThan(0);
  });
});

describe("installed without a compiler", () => {
  const NOTICE = /controls clients prove their uid with a file/;

  function config(dir: string, name: string): { file: string; socket: string } {
    const socket = path.join(dir, `${name}.sock`);
    const file = path.join(dir, `${name}.conf`);
    writeFileSync(
      file,
      [
        "DefaultAddress 127.0.0.1",
        "Port 0",
        `AuthUserFile ${bareInstalled}/examples/dsod.passwd`,
        `ControlsSocket ${socket}`,
        "ControlsSocketACL allow user *",
        "ModuleControlsACLs all allow user *",
        "LoadModule mod_test.c",
        "",
      ].join("\n"),
    );
    return { file, socket };
  }

  it("installs, with a warning that says what runs degraded and how to build the addons later", () => {
    expect(bareInstallOutput).toContain(
      "wasm-dso: the native addons were not built (no prebuilt peercred addon for linux-x64; node-gyp exited with 1: it needs python3, make and g++).\n",
    );
    expect(bareInstallOutput).toContain("wasm-dso: To build them later: npm rebuild wasm-dso\n");
    expect(existsSync(path.join(bareInstalled, "build", "Release", "peercred.node"))).toBe(false);
  });

  it("checks a config that loads a module, with dsod -t", () => {
    const { file } = config(bare, "check");
    const result = run(path.join(bare, "node_modules", ".bin", "dsod"), ["-t", "-c", file], bare);
    expect(logMessages(result.stderr).filter((line) => line.startsWith("Fatal"))).toEqual([]);
    expect(result.stdout).toBe("Checking syntax of configuration file\nSyntax check complete.\n");
    expect(result.status).toBe(0);
  });

  it("serves FTP and a module's command, says at start how controls callers are identified and CPU budgets enforced, and serves dsoctl", async () => {
    const { file, socket } = config(bare, "serve");
    const daemon = await startDsod(bare, file);
    try {
      expect(logMessages(daemon.stderr()).filter((line) => NOTICE.test(line))).toEqual([
        `mod_ctrls/0.9.5: cannot check client credentials: unable to load ${bareInstalled}/build/Release/peercred.node (run \`npm rebuild\` (it needs python3, make and g++)); controls clients prove their uid with a file they create in '${socket}.identify' instead (docs/security.md, "Controls identity without the peercred addon")`,
      ]);
      // Once by the daemon, and once by each session worker, which loads its own addons.
      const workers = [...daemon.stderr().matchAll(/worker \d+ \(pid \d+\) started/g)].length;
      expect(workers).toBeGreaterThanOrEqual(1);
      const cpu = logMessages(daemon.stderr()).filter((line) => line.includes("CPU budgets enforced"));
      expect(cpu).toEqual(
        Array.from(
          { length: workers + 1 },
          () =>
            `mod_dso/0.5: CPU budgets enforced in wall-clock time by node:vm (unable to load ${bareInstalled}/build/Release/watchdog.node (run \`npm rebuild\` (it needs python3, make and g++)))`,
        ),
      );
      const { client } = await FtpControl.connect(daemon.port);
      try {
        await client.login();
        expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
        expect(await client.send("TEST hi")).toEqual(["200 Hello from mod_test: hi"]);
      } finally {
        client.close();
      }
      const lsmod = run(path.join(bare, "node_modules", ".bin", "dsoctl"), ["-s", socket, "lsmod"], bare);
      expect([lsmod.status, lsmod.stderr, lsmod.stdout.split("\n")[0]]).toEqual([0, "", "dsoctl: Loaded Modules:"]);
      expect(lsmod.stdout).toContain("dsoctl:   mod_test.c\n");
    } finally {
      await daemon.stop();
    }
  });

  it("takes prebuilt addons when they load (scripts/prebuild.mjs), and dsod then runs without the fallback", async () => {
    const built = run(
      process.execPath,
      [
        path.join(ROOT, "scripts", "prebuild.mjs"),
        "--strict",
        "--out",
        path.join(bareInstalled, "prebuilds", "linux-x64"),
      ],
      ROOT,
    );
    expect(built.status).toBe(0);
    const output = npm(["rebuild", "wasm-dso", "--offline", "--foreground-scripts"], bare, noCompiler, true);
    expect(output).toContain("wasm-dso: using the prebuilt native addons in prebuilds/linux-x64\n");
    const { file } = config(bare, "prebuilt");
    const daemon = await startDsod(bare, file);
    try {
      expect(logMessages(daemon.stderr()).filter((line) => NOTICE.test(line))).toEqual([]);
    } finally {
      await daemon.stop();
    }
  });
});
