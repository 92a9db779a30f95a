/**
 * A module's sess_init through the real dsod, as proftpd's
 * modules_session_init (src/modules.c) and its caller in src/main.c: a
 * negative result ends the session before the greeting (the client sees the
 * connection close, nothing else), and the daemon logs which module refused
 * it; a result of 0 lets the session start.
 */
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { removeModuleDirs, wat, writeModuleDir } from "../helpers/wat.js";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { dsoctl, logMessages } from "./helpers/dsod.js";

const fixture = daemonFixture();
afterAll(removeModuleDirs);

/** A module `mod_NAME.c` whose sess_init returns `result`. */
function sessInitModule(name: string, result: number): Promise<Uint8Array> {
  return wat(`(module
    (global (export "${name}_module") i32 (i32.const 32))
    (func (export "sess_init") (result i32) (i32.const ${result})))`);
}

/** What the server sends on a new connection before it closes it: "" when it closes it at once, else the first line. */
function firstLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (received.includes("\r\n")) socket.destroy();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(received));
  });
}

describe("sess_init", () => {
  it("below 0 ends the session before the greeting, until the module is unloaded", async () => {
    const dir = writeModuleDir({
      "mod_sessfail.wasm": await sessInitModule("sessfail", -1),
      "mod_sessok.wasm": await sessInitModule("sessok", 0),
    });
    const modules = [`ModulePath ${dir}`, "LoadModule mod_sessok.c", "LoadModule mod_sessfail.c"];
    const { daemon } = await fixture.start(modules);
    expect(await firstLine(daemon.port)).toBe("");
    await daemon.waitForLog(/session init failed: mod_sessfail\.c: error initializing session\n/);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("session init failed"))).toEqual([
      "session 1 (127.0.0.1[127.0.0.1]): session init failed: mod_sessfail.c: error initializing session",
    ]);

    const rmmod = await dsoctl(["-s", daemon.socket, "rmmod", "mod_sessfail.c"]);
    expect(rmmod.stdout).toBe("dsoctl: 'mod_sessfail.c' unloaded\n");
    const { client, greeting } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(greeting).toEqual(["220 dsod Server (dsod) [127.0.0.1]"]);
  });
});
