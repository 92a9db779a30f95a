import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl, parseSocketAcl } from "../../../host/controls/acl.js";
import type { AclTable } from "../../../host/controls/acl.js";
import { DEFAULT_CONTROLS_SOCKET } from "../../../host/controls/default-socket.js";
import { currentHost, dsoControlsActions, DSO_ACTIONS } from "../../../host/static/mod-dso/controls.js";
import { ControlsServer } from "../../../host/controls/server.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { SystemAccounts } from "../../../host/system/accounts.js";

// The built client, as users run it (`npx tsc -p tsconfig.build.json`, or `npm test`'s pretest).
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DSOCTL = join(ROOT, "dist", "host", "cli", "dsoctl.js");
const LIBEXEC = join(ROOT, "dist", "libexec");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs dsoctl as a child; asynchronously, since the server answering it lives in this process. */
function dsoctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DSOCTL, ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const accounts = new SystemAccounts();
const me = accounts.userName(process.getuid?.() ?? 0);
const dir = mkdtempSync(join(tmpdir(), "dso-ctl-"));
const socketPath = join(dir, "ctl.sock");
let host: ModuleHost;
let acls: AclTable;
let server: ControlsServer;

beforeAll(async () => {
  expect(existsSync(DSOCTL), `${DSOCTL} is missing: run npx tsc -p tsconfig.build.json`).toBe(true);
  const socketAcl = parseSocketAcl(["allow", "user", "*"], accounts);
  server = new ControlsServer({
    socketPath,
    actions: dsoControlsActions(
      currentHost(() => host),
      () => acls,
    ),
    socketAcl: () => socketAcl,
    maxClients: 1,
  });
  await server.start();
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  host = new ModuleHost({ modulePath: LIBEXEC });
  acls = applyActionAcl(EMPTY_ACL_TABLE, parseActionAcl(["all", "allow", "user", me], DSO_ACTIONS, accounts));
});

describe("dsoctl against a ControlsServer", () => {
  it("prints each reply line as `dsoctl: <line>` and exits 0 when everything succeeded", async () => {
    expect(await dsoctl("-s", socketPath, "insmod", "mod_test.c")).toEqual({
      code: 0,
      stdout: "dsoctl: 'mod_test.c' loaded\n",
      stderr: "",
    });
    expect(await dsoctl("-s", socketPath, "lsmod")).toEqual({
      code: 0,
      stdout: "dsoctl: Loaded Modules:\ndsoctl:   mod_test.c\n",
      stderr: "",
    });
  });

  it("exits 3 when some operation failed, after printing every line", async () => {
    expect(await dsoctl("-s", socketPath, "insmod", "mod_test.c", "mod_nope.c")).toEqual({
      code: 3,
      stdout: `dsoctl: 'mod_test.c' loaded\ndsoctl: error loading 'mod_nope.c': No such file or directory\ndsoctl:   '${LIBEXEC}/mod_nope.wasm' does not exist\n`,
      stderr: "",
    });
    expect(await dsoctl("-s", socketPath, "rmmod")).toEqual({
      code: 3,
      stdout: "dsoctl: missing required parameters\n",
      stderr: "",
    });
  });

  it("exits 2 on access denied and 4 on an unsupported action", async () => {
    acls = EMPTY_ACL_TABLE;
    expect(await dsoctl("-s", socketPath, "insmod")).toEqual({
      code: 2,
      stdout: "dsoctl: access denied\n",
      stderr: "",
    });
    expect(await dsoctl("-s", socketPath, "frobnicate")).toEqual({
      code: 4,
      stdout: "dsoctl: unsupported action requested\n",
      stderr: "",
    });
  });

  it("-v prints ftpdctl's verbose lines; options end at the action", async () => {
    expect(await dsoctl("-v", "-s", socketPath, "lsmod", "-v")).toEqual({
      code: 0,
      stdout: [
        'dsoctl: adding "lsmod" to reqargv',
        'dsoctl: adding "-v" to reqargv',
        `dsoctl: contacting server using '${socketPath}'`,
        "dsoctl: sending control request",
        "dsoctl: receiving control response",
        "dsoctl: Loaded Modules:",
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  it("--json prints status and lines as one object, with the same exit code", async () => {
    expect(await dsoctl("--json", "-s", socketPath, "rmmod", "mod_test.c")).toEqual({
      code: 3,
      stdout: '{"status":-1,"lines":["error unloading \'mod_test.c\': Module not loaded"]}\n',
      stderr: "",
    });
  });

  it("exits 75 when ControlsMaxClients clients are being served", async () => {
    const holder = createConnection(socketPath);
    await new Promise((resolve) => holder.once("connect", resolve));
    const run = await dsoctl("-s", socketPath, "lsmod");
    holder.destroy();
    expect(run).toEqual({
      code: 75,
      stdout: "dsoctl: too many controls clients (ControlsMaxClients 1), try again later\n",
      stderr: "",
    });
  });
});

describe("dsoctl usage and connection errors", () => {
  it("-h prints the usage on stdout and exits 0", async () => {
    expect(await dsoctl("-h")).toEqual({
      code: 0,
      stdout: [
        "usage: dsoctl [options] action [args...]",
        "  -h\tdisplays this message",
        "  -s\tspecify an alternate local socket",
        "  -v\tdisplays more verbose information",
        "  --json\tprints the response as one JSON object",
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  it("exits 1 without an action, with a relative -s, an unknown option or an oversized argument", async () => {
    expect(await dsoctl("-s", socketPath)).toEqual({
      code: 1,
      stdout: "dsoctl: missing required action\n",
      stderr: "",
    });
    expect(await dsoctl("-s", "run/dsod.sock", "lsmod")).toEqual({
      code: 1,
      stdout: "",
      stderr: "dsoctl: alternate socket path must be an absolute path\n",
    });
    expect(await dsoctl("-x", "lsmod")).toEqual({ code: 1, stdout: "", stderr: "dsoctl: Unknown option '-x'\n" });
    expect(await dsoctl("-s", socketPath, "insmod", "x".repeat(257))).toEqual({
      code: 1,
      stdout: "",
      stderr: "dsoctl: controls request argument 2 is 257 bytes, more than the maximum of 256\n",
    });
  });

  it("exits 69 when no server answers", async () => {
    const none = join(dir, "none.sock");
    expect(await dsoctl("-s", none, "lsmod")).toEqual({
      code: 69,
      stdout: "",
      stderr: `dsoctl: error contacting server using '${none}': No such file or directory\n`,
    });
  });

  it("defaults to <package root>/run/dsod.sock", async () => {
    expect(DEFAULT_CONTROLS_SOCKET).toBe(join(ROOT, "run", "dsod.sock"));
    const run = await dsoctl("-v", "lsmod");
    expect(run.stdout.split("\n")[1]).toBe(`dsoctl: contacting server using '${DEFAULT_CONTROLS_SOCKET}'`);
  });
});
