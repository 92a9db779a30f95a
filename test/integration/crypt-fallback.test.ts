/**
 * Password checks without the crypt addon (issue #15): dsod forced onto the
 * worker-thread fallback with WASM_DSO_DISABLE_ADDONS=crypt says so once at
 * start in each process that checks passwords, and logins answer exactly as
 * with the addon.
 * test/unit/auth/password-check.test.ts compares the two checkers' answers.
 */
import { describe, expect, it } from "vitest";
import { workerPoolSize } from "../../host/auth/password-check.js";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { RunningDsod, baseConfig, logMessages, tempDir, writeConfig } from "./helpers/dsod.js";

const fixture = daemonFixture();

describe("password checks in worker threads (WASM_DSO_DISABLE_ADDONS=crypt)", () => {
  // Each process that serves sessions has its own threads and says so once as it starts, with its own pid in the
  // line (as proftpd's session processes log under theirs): dsod itself, or each session worker but not the primary.
  it.each([
    { workers: "off", count: 1 },
    { workers: "2", count: 2 },
  ])(
    "says so once in each process serving sessions (SessionWorkers $workers), logins as with the addon",
    async ({ workers, count }) => {
      const dir = tempDir();
      const config = writeConfig(dir, [baseConfig(dir), `SessionWorkers ${workers}`].join("\n"));
      // `env` execs dsod, so the PID stays dsod's.
      const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], ["env", "WASM_DSO_DISABLE_ADDONS=crypt"]);
      fixture.adopt(daemon);
      const notices = daemon.stderr
        .split("\n")
        .filter((line) => line.includes("password checks"))
        .map((line) => ({ pid: Number(/ dsod\[(\d+)\]: /.exec(line)?.[1]), message: logMessages(line)[0] }));
      const servers =
        workers === "off"
          ? [daemon.child.pid]
          : [...daemon.stderr.matchAll(/worker \d+ \(pid (\d+)\) started/g)].map((match) => Number(match[1]));
      expect(servers).toHaveLength(count);
      const message =
        `mod_auth_file/1.0: password checks run in ${workerPoolSize()} JavaScript worker threads ` +
        "(the crypt addon is disabled by WASM_DSO_DISABLE_ADDONS)";
      expect(notices.map((notice) => notice.message)).toEqual(Array.from({ length: count }, () => message));
      expect(new Set(notices.map((notice) => notice.pid))).toEqual(new Set(servers));
      const { client } = await FtpControl.connect(daemon.port);
      fixture.adoptClient(client);
      expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
      expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
      expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
      expect(await client.send("PASS demo")).toEqual(["230 User demo logged in"]);
      await daemon.waitForLog(/USER demo \(Login failed\): Incorrect password/);
    },
  );

  it("says nothing about password checks with the addon", async () => {
    const dir = tempDir();
    const daemon = await RunningDsod.start(writeConfig(dir, baseConfig(dir)), `${dir}/dsod.sock`);
    fixture.adopt(daemon);
    expect(logMessages(daemon.stderr).filter((line) => line.includes("password checks"))).toEqual([]);
  });
});
