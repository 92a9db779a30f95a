/**
 * The reference's whole observed ACL matrix (proftpd-behavior.md §5), row by
 * row, against the real dsod and the real dsoctl run as different users: the
 * daemon learns each caller's uid and primary gid from the kernel.
 *
 * proftpd 1.3.8's socket ACL allows everyone by default; ours denies (the
 * manual's intent, upstream #2210). So the rows observed without a
 * ControlsSocketACL get `ControlsSocketACL allow user *` here, and the last row
 * checks the deny-by-default instead of 1.3.8's allow-all.
 */
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, linkSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DSOCTL, PASSWD, ROOT as REPOSITORY, RunningDsod, tempDir, writeConfig } from "./helpers/dsod.js";
import type { RunResult } from "./helpers/dsod.js";

const ROOT = { uid: 0, gid: 0 };
const NOBODY = { uid: 65534, gid: 65534 };
const DAEMON = { uid: 1, gid: 1 };
const NOBODY_IN_DAEMON = { uid: 65534, gid: 1 };
const DAEMON_IN_NOGROUP = { uid: 1, gid: 65534 };
type Identity = typeof ROOT;

const LM = "LM";
const AD = "AD";
const OPEN_SOCKET = "ControlsSocketACL allow user *";

const running: RunningDsod[] = [];
afterEach(async () => {
  for (const daemon of running.splice(0)) await daemon.stop();
});

/** True when every folder above `file` lets other users through, and they may run the file. */
function othersCanRun(file: string): boolean {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (path.dirname(dir) === dir) return (statSync(file).mode & 0o001) !== 0;
  }
}

/**
 * dsoctl and the node that runs it, where the other users can read them. The
 * checkout may be in a folder only root can enter (root's mode-700 home, a
 * test-node copy under ~/.cache): there, dsoctl run as nobody could not even
 * be loaded. So its compiled JavaScript (and package.json, by which it finds
 * its package root) is copied to a world-readable temp folder, and a node
 * others cannot reach is linked (or copied) there too.
 */
function readableDsoctl(): { node: string; dsoctl: string; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "dsoctl-"));
  chmodSync(dir, 0o755);
  const dist = path.dirname(path.dirname(path.dirname(DSOCTL)));
  cpSync(path.join(dist, "host"), path.join(dir, "dist", "host"), {
    recursive: true,
    filter: (source) => !source.endsWith(".map") && !source.endsWith(".ts"),
  });
  copyFileSync(path.join(REPOSITORY, "package.json"), path.join(dir, "package.json"));
  let node = process.execPath;
  if (!othersCanRun(node)) {
    node = path.join(dir, "node");
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node);
    }
    chmodSync(node, 0o755);
  }
  return { node, dsoctl: path.join(dir, path.relative(path.dirname(dist), DSOCTL)), dir };
}

const readable = process.geteuid?.() === 0 ? readableDsoctl() : undefined;
afterAll(() => {
  if (readable !== undefined) rmSync(readable.dir, { recursive: true, force: true });
});

/** The real dsoctl, run as `who`. */
function dsoctl(args: readonly string[], who: Identity): Promise<RunResult> {
  if (readable === undefined) throw new Error("running dsoctl as another user needs root");
  const { node, dsoctl: script, dir } = readable;
  return new Promise((resolve) => {
    const child = spawn(node, [script, ...args], { ...who, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

async function start(lines: readonly string[]): Promise<string> {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const socket = `${dir}/dsod.sock`;
  const config = writeConfig(dir, ["DefaultAddress 127.0.0.1", "Port 0", `AuthUserFile ${PASSWD}`, `ControlsSocket ${socket}`, ...lines].join("\n"));
  running.push(await RunningDsod.start(config, socket));
  return socket;
}

/** LM for a Loaded Modules answer, AD for access denied, else the first line. */
async function outcome(socket: string, who: Identity, args: readonly string[]): Promise<string> {
  const result = await dsoctl(["-s", socket, ...args], who);
  const first = result.stdout.split("\n")[0] ?? "";
  if (first === "dsoctl: Loaded Modules:") return LM;
  if (first === "dsoctl: access denied") {
    expect(result.status).toBe(2);
    return AD;
  }
  return first;
}

interface Row {
  readonly config: readonly string[];
  readonly expect: ReadonlyArray<readonly [Identity, readonly string[], string]>;
}

const ROWS: ReadonlyArray<readonly [string, Row]> = [
  [
    "no ModuleControlsACLs: everyone denied, root included",
    {
      config: [OPEN_SOCKET],
      expect: [
        [ROOT, ["lsmod"], AD],
        [ROOT, ["insmod", "mod_test.c"], AD],
        [ROOT, ["rmmod", "mod_test.c"], AD],
        [NOBODY, ["lsmod"], AD],
      ],
    },
  ],
  [
    "Debian's modules.conf: insmod,rmmod for root, lsmod for everyone",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs insmod,rmmod allow user root", "ModuleControlsACLs lsmod allow user *"],
      expect: [
        [ROOT, ["lsmod"], LM],
        [ROOT, ["insmod", "mod_test.c"], "dsoctl: 'mod_test.c' loaded"],
        [NOBODY, ["lsmod"], LM],
        [NOBODY, ["insmod", "mod_calc.c"], AD],
        [NOBODY, ["rmmod", "mod_test.c"], AD],
      ],
    },
  ],
  [
    "lsmod deny user nobody: everyone but nobody",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs lsmod deny user nobody"],
      expect: [
        [ROOT, ["lsmod"], LM],
        [ROOT, ["insmod", "mod_test.c"], AD],
        [NOBODY, ["lsmod"], AD],
        [DAEMON, ["lsmod"], LM],
      ],
    },
  ],
  [
    "lsmod deny user *: nobody at all",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs lsmod deny user *"],
      expect: [
        [ROOT, ["lsmod"], AD],
        [NOBODY, ["lsmod"], AD],
      ],
    },
  ],
  [
    "lsmod allow group daemon: the primary gid decides",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs lsmod allow group daemon"],
      expect: [
        [ROOT, ["lsmod"], AD],
        [NOBODY, ["lsmod"], AD],
        [DAEMON, ["lsmod"], LM],
        [NOBODY_IN_DAEMON, ["lsmod"], LM],
      ],
    },
  ],
  [
    "allow user root + deny group nogroup: the rules are OR-ed",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs lsmod allow user root", "ModuleControlsACLs lsmod deny group nogroup"],
      expect: [
        [ROOT, ["lsmod"], LM],
        [NOBODY, ["lsmod"], AD],
        [DAEMON, ["lsmod"], LM],
        [DAEMON_IN_NOGROUP, ["lsmod"], AD],
      ],
    },
  ],
  [
    "a later directive for the same action and kind replaces the earlier",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs lsmod allow user root", "ModuleControlsACLs lsmod allow user nobody"],
      expect: [
        [ROOT, ["lsmod"], AD],
        [NOBODY, ["lsmod"], LM],
      ],
    },
  ],
  [
    "ALL, with an unknown user name silently dropped",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs ALL allow user no_such_user_x,root"],
      expect: [
        [ROOT, ["lsmod"], LM],
        [NOBODY, ["lsmod"], AD],
      ],
    },
  ],
  [
    "`*` anywhere makes everyone; numeric ids match nobody; the ACL comes before argument checks",
    {
      config: [OPEN_SOCKET, "ModuleControlsACLs insmod allow user root,*", "ModuleControlsACLs lsmod allow user 0"],
      expect: [
        [ROOT, ["lsmod"], AD],
        [NOBODY, ["insmod"], "dsoctl: missing required parameters"],
      ],
    },
  ],
  [
    "ControlsSocketACL allow user root gates every action, help included",
    {
      config: ["ControlsSocketACL allow user root", "ModuleControlsACLs all allow user *"],
      expect: [
        [ROOT, ["lsmod"], LM],
        [NOBODY, ["lsmod"], AD],
        [NOBODY, ["help"], AD],
      ],
    },
  ],
  [
    "a later ControlsSocketACL re-initialises the socket ACL",
    {
      config: ["ControlsSocketACL allow user root", "ControlsSocketACL allow group daemon", "ModuleControlsACLs all allow user *"],
      expect: [
        [ROOT, ["lsmod"], AD],
        [NOBODY, ["lsmod"], AD],
        [DAEMON, ["lsmod"], LM],
      ],
    },
  ],
  [
    "no ControlsSocketACL: denied by default (1.3.8 allowed everyone)",
    {
      config: ["ModuleControlsACLs all allow user *"],
      expect: [
        [NOBODY, ["lsmod"], AD],
        [DAEMON, ["lsmod"], AD],
        [ROOT, ["help"], AD],
      ],
    },
  ],
];

describe.skipIf(process.geteuid?.() !== 0)("the ACL matrix, with real identities (needs root to run dsoctl as others)", () => {
  it.each(ROWS)("%s", async (_name, row) => {
    const socket = await start(row.config);
    for (const [who, args, expected] of row.expect) {
      expect([who, args.join(" "), await outcome(socket, who, args)]).toEqual([who, args.join(" "), expected]);
    }
  });
});
