/**
 * Password checks without the crypt addon (issue #15): dsod forced onto the
 * worker-thread fallback with WASM_DSO_DISABLE_ADDONS=crypt says so once at
 * start, and logins answer exactly as with the addon.
 * test/unit/auth/password-check.test.ts compares the two checkers' answers.
 */
import { describe, expect, it } from "vitest";
import { workerPoolSize } from "../../host/auth/password-check.js";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { RunningDsod, baseConfig, logMessages, tempDir, writeConfig } from "./helpers/dsod.js";

const fixture = daemonFixture();

describe("password checks in worker threads (WASM_DSO_DISABLE_ADDONS=crypt)", () => {
  it("says so once at start, and answers logins as with the addon", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, baseConfig(dir));
    // `env` execs dsod, so the PID stays dsod's.
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], ["env", "WASM_DSO_DISABLE_ADDONS=crypt"]);
    fixture.adopt(daemon);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("password checks"))).toEqual([
      `mod_auth_file/1.0: password checks run in ${workerPoolSize()} JavaScript worker threads ` +
        "(the crypt addon is disabled by WASM_DSO_DISABLE_ADDONS)",
    ]);
    const { client } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS demo")).toEqual(["230 User demo logged in"]);
    await daemon.waitForLog(/USER demo \(Login failed\): Incorrect password/);
  });

  it("says nothing about password checks with the addon", async () => {
    const dir = tempDir();
    const daemon = await RunningDsod.start(writeConfig(dir, baseConfig(dir)), `${dir}/dsod.sock`);
    fixture.adopt(daemon);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("password checks"))).toEqual([]);
  });
});
