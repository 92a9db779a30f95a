/**
 * The whole ACL matrix observed on proftpd 1.3.8 through ftpdctl, row by
 * row, against the real dsod and the real dsoctl run as different users: the
 * daemon learns each caller's uid and primary gid from the kernel.
 *
 * proftpd 1.3.8's socket ACL allows everyone by default; ours denies (the
 * manual's intent, upstream #2210). So the rows observed without a
 * ControlsSocketACL get `ControlsSocketACL allow user *` here, and the last row
 * checks the deny-by-default instead of 1.3.8's allow-all.
 */
import { spawn } from "node:child_process";
import { chmodSync } from "node:fs";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { IS_ROOT, otherUsersDsoctl } from "../helpers/other-users.js";
import { PASSWD, RunningDsod, tempDir, writeConfig } from "./helpers/dsod.js";
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

// The checkout may be in a folder other users cannot enter: dsoctl and node run from a world-readable copy.
const readable = IS_ROOT ? otherUsersDsoctl() : undefined;
afterAll(() => readable?.remove());

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
  const config = writeConfig(
    dir,
    ["DefaultAddress 127.0.0.1", "Port 0", `AuthUserFile ${PASSWD}`, `ControlsSocket ${socket}`, ...lines].join("\n"),
  );
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
      config: [
        "ControlsSocketACL allow user root",
        "ControlsSocketACL allow group daemon",
        "ModuleControlsACLs all allow user *",
      ],
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

describe.skipIf(!IS_ROOT)("the ACL matrix, with real identities (needs root to run dsoctl as others)", () => {
  it.each(ROWS)("%s", async (_name, row) => {
    const socket = await start(row.config);
    for (const [who, args, expected] of row.expect) {
      expect([who, args.join(" "), await outcome(socket, who, args)]).toEqual([who, args.join(" "), expected]);
    }
  });
});
