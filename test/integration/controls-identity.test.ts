/**
 * Controls identity without the peercred addon (docs/security.md): the real
 * dsod with the addon disabled (WASM_DSO_DISABLE_ADDONS=peercred) and the real
 * dsoctl run as other users, who prove their uid with a file the kernel gives
 * them. A socket ACL that allows one uid lets that uid in and nobody else; a
 * client that tries to pass as that uid with its file is refused.
 */
import { spawn } from "node:child_process";
import { chmodSync, chownSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { IS_ROOT, otherUsersDsoctl } from "../helpers/other-users.js";
import { PASSWD, RunningDsod, dsoctl, logMessages, tempDir, writeConfig } from "./helpers/dsod.js";
import type { RunResult } from "./helpers/dsod.js";

const ROOT_USER = { uid: 0, gid: 0 };
const NOBODY = { uid: 65534, gid: 65534 };
const DAEMON = { uid: 1, gid: 1 };

const running: RunningDsod[] = [];
afterEach(async () => {
  for (const daemon of running.splice(0)) await daemon.stop();
});

const readable = IS_ROOT ? otherUsersDsoctl() : undefined;
afterAll(() => readable?.remove());

async function start(lines: readonly string[]): Promise<{ daemon: RunningDsod; dir: string }> {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const socket = `${dir}/dsod.sock`;
  const config = writeConfig(
    dir,
    ["DefaultAddress 127.0.0.1", "Port 0", `AuthUserFile ${PASSWD}`, `ControlsSocket ${socket}`, ...lines].join("\n"),
  );
  const daemon = await RunningDsod.start(config, socket, [], ["env", "WASM_DSO_DISABLE_ADDONS=peercred"]);
  running.push(daemon);
  return { daemon, dir };
}

function as(who: { uid: number; gid: number }, args: readonly string[]): Promise<RunResult> {
  if (readable === undefined) throw new Error("running dsoctl as another user needs root");
  return dsoctl(args, { ...who, from: readable });
}

/**
 * A client run as `who` that follows the exchange but, asked for a file,
 * makes it a symlink to `target` (a file of the uid it wants to pass as).
 */
function forger(socket: string, target: string, who: { uid: number; gid: number }): Promise<RunResult> {
  if (readable === undefined) throw new Error("running a client as another user needs root");
  const script = path.join(readable.dir, "forger.mjs");
  writeFileSync(
    script,
    [
      `import { createConnection } from "node:net";`,
      `import { symlinkSync } from "node:fs";`,
      `import { basename } from "node:path";`,
      `import { encodeMessage, identifyChallengePath, MessageDecoder, RESPONSE_LIMITS } from "./dist/host/controls/wire.js";`,
      `const socketPath = ${JSON.stringify(socket)};`,
      `const decoder = new MessageDecoder(RESPONSE_LIMITS);`,
      `let asked = false;`,
      `const socket = createConnection(socketPath, () => socket.write(encodeMessage(0, ["lsmod"])));`,
      `socket.on("data", (chunk) => {`,
      `  let message = decoder.push(chunk);`,
      `  const file = message === undefined || asked ? undefined : identifyChallengePath(message, socketPath);`,
      `  if (file !== undefined) {`,
      `    asked = true;`,
      `    symlinkSync(${JSON.stringify(target)}, file);`,
      `    socket.write(encodeMessage(0, ["identify", basename(file)]));`,
      `    message = decoder.push(Buffer.alloc(0));`,
      `  }`,
      `  if (message !== undefined) { for (const line of message.args) console.log(line); socket.destroy(); }`,
      `});`,
    ].join("\n"),
  );
  chmodSync(script, 0o644);
  return new Promise((resolve) => {
    const child = spawn(readable.node, [script], { ...who, cwd: readable.dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

describe.runIf(IS_ROOT)("controls identity by file, without the peercred addon", () => {
  it("says so once at start, and a socket ACL that allows one uid serves that uid alone", async () => {
    const { daemon } = await start(["ControlsSocketACL allow user daemon", "ModuleControlsACLs all allow user *"]);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("prove their uid"))).toEqual([
      `mod_ctrls/0.9.5: cannot check client credentials: the peercred addon is disabled by WASM_DSO_DISABLE_ADDONS; controls clients prove their uid with a file they create in '${daemon.socket}.identify' instead (docs/security.md, "Controls identity without the peercred addon")`,
    ]);
    const served = await as(DAEMON, ["-s", daemon.socket, "lsmod"]);
    expect(served.stdout.split("\n")[0]).toBe("dsoctl: Loaded Modules:");
    expect([served.status, served.stderr]).toEqual([0, ""]);
    for (const who of [NOBODY, ROOT_USER]) {
      expect(await as(who, ["-s", daemon.socket, "lsmod"])).toEqual({
        status: 2,
        stdout: "dsoctl: access denied\n",
        stderr: "",
      });
    }
  });

  it("refuses a client that offers another user's file as its proof", async () => {
    const { daemon, dir } = await start(["ControlsSocketACL allow user daemon", "ModuleControlsACLs all allow user *"]);
    const daemons = path.join(dir, "daemons-file");
    writeFileSync(daemons, "", { mode: 0o600 });
    chownSync(daemons, DAEMON.uid, DAEMON.gid);
    const forged = await forger(daemon.socket, daemons, NOBODY);
    expect(forged.stdout).toBe("access denied\n  cannot check client credentials: the proof is not a regular file\n");
    expect(forged.stderr).toBe("");
  });

  it("leaves no proof file behind, served or denied", async () => {
    const { daemon } = await start(["ControlsSocketACL allow user nobody", "ModuleControlsACLs all allow user *"]);
    expect((await as(NOBODY, ["-s", daemon.socket, "lsmod"])).status).toBe(0);
    expect((await as(DAEMON, ["-s", daemon.socket, "lsmod"])).status).toBe(2);
    expect(readdirSync(`${daemon.socket}.identify`)).toEqual([]);
  });
});
