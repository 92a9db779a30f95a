/**
 * CPU budgets without the watchdog addon (issue #17: no compiler, still a
 * working daemon): dsod forced onto the node:vm fallback with
 * WASM_DSO_DISABLE_ADDONS=watchdog still interrupts a spinning guest, answers
 * 451 as with the addon, and goes on serving.
 * test/integration/sandbox-limits.test.ts tests the addon.
 */
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FIXTURES, RunningDsod, baseConfig, dsoctl, logMessages, tempDir, writeConfig } from "./helpers/dsod.js";

const ABORTED = "451 Requested action aborted: local error in processing.";

const fixture = daemonFixture();

describe("CPU budgets in the node:vm fallback (WASM_DSO_DISABLE_ADDONS=watchdog)", () => {
  it("interrupts a spinning guest with a 451, logs it as wall-clock time, and goes on serving", async () => {
    const dir = tempDir();
    const lines = [baseConfig(dir), `ModulePath ${FIXTURES}`, "ModuleCPULimit * 50", "LoadModule mod_spin.c"];
    const config = writeConfig(dir, lines.join("\n"));
    // `env` execs dsod, so the PID stays dsod's.
    const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`, [], ["env", "WASM_DSO_DISABLE_ADDONS=watchdog"]);
    fixture.adopt(daemon);
    // Said by the primary (its reference host runs the guest controls) and by each worker, which loads its own addon.
    const notices = daemon.stderr
      .split("\n")
      .filter((line) => line.includes("CPU budgets enforced"))
      .map((line) => ({ pid: Number(/ dsod\[(\d+)\]: /.exec(line)?.[1]), message: logMessages(line)[0] }));
    const workers = [...daemon.stderr.matchAll(/worker \d+ \(pid (\d+)\) started/g)].map((match) => Number(match[1]));
    expect(workers.length).toBeGreaterThanOrEqual(1);
    const message =
      "mod_dso/0.5: CPU budgets enforced in wall-clock time by node:vm " +
      "(the watchdog addon is disabled by WASM_DSO_DISABLE_ADDONS)";
    expect(notices.map((notice) => notice.message)).toEqual(Array.from({ length: workers.length + 1 }, () => message));
    expect(new Set(notices.map((notice) => notice.pid))).toEqual(new Set([daemon.child.pid, ...workers]));
    const spinner = await fixture.connect(daemon);
    const other = await fixture.connect(daemon);
    const spin = spinner.send("SITE SPIN");
    expect(await other.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await spin).toEqual([ABORTED]);
    const fault =
      "mod_spin.c: fault in site_SPIN: guest call ran past its 50 ms CPU budget, " +
      "counted in wall-clock time (node:vm), and was interrupted";
    await daemon.waitForLog(/mod_spin\.c: fault in site_SPIN/);
    expect(logMessages(daemon.stderr).filter((line) => line.startsWith("mod_spin.c: fault in"))).toEqual([fault]);
    expect(await spinner.send("NOOP")).toEqual(["200 NOOP command successful"]);
    const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
    expect(lsmod.stdout.split("\n")[0]).toBe("dsoctl: Loaded Modules:");
  });
});
