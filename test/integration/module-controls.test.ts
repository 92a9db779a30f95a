/**
 * A guest's control actions through the built dsod and the real dsoctl: the
 * fixture mod_ctrls_test.c exports ctrl_echo and ctrl_boom, and its own
 * CtrlsTestControlsACLs directive guards them, as mod_ban's BanControlsACLs
 * guards `ftpdctl ban`.
 */
import { chmodSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { IS_ROOT, otherUsersDsoctl } from "../helpers/other-users.js";
import { daemonFixture } from "./helpers/fixture.js";
import { FIXTURES, dsoctl, logMessages } from "./helpers/dsod.js";

const MODULE = "mod_ctrls_test.c";
const fixture = daemonFixture();
// The checkout may be in a folder other users cannot enter: dsoctl runs as nobody from a world-readable copy.
const readable = IS_ROOT ? otherUsersDsoctl() : undefined;
afterAll(() => readable?.remove());

/** dsod with the fixture loaded and its actions allowed to root alone. */
async function start(): Promise<(...args: string[]) => ReturnType<typeof dsoctl>> {
  const { daemon } = await fixture.start([
    `ModulePath ${FIXTURES}`,
    `LoadModule ${MODULE}`,
    "CtrlsTestControlsACLs echo,boom allow user root",
    "ControlsACLs all allow user *",
  ]);
  return (...args) => dsoctl(["-s", daemon.socket, ...args]);
}

describe("a guest's control actions", () => {
  it("answer dsoctl with the guest's lines, as ftpdctl prints them", async () => {
    const ctl = await start();
    expect(await ctl("echo", "one", "two words")).toMatchObject({
      status: 0,
      stdout: "dsoctl: one\ndsoctl: two words\n",
    });
    expect(await ctl("echo")).toMatchObject({ status: 3, stdout: "dsoctl: missing parameters\n" });
  });

  it.runIf(IS_ROOT)("are denied by the module's ACL directive to a user it does not name", async () => {
    const { daemon, dir } = await fixture.start([
      `ModulePath ${FIXTURES}`,
      `LoadModule ${MODULE}`,
      "CtrlsTestControlsACLs echo allow user root",
    ]);
    if (readable === undefined) throw new Error("root runs dsoctl as nobody");
    // mkdtemp's folder is root's alone: nobody must reach the socket in it to be answered at all.
    chmodSync(dir, 0o755);
    const asNobody = await dsoctl(["-s", daemon.socket, "echo", "x"], { uid: 65534, gid: 65534, from: readable });
    expect(asNobody).toMatchObject({ status: 2, stdout: "dsoctl: access denied\n" });
    expect(await dsoctl(["-s", daemon.socket, "echo", "x"])).toMatchObject({ status: 0, stdout: "dsoctl: x\n" });
  });

  it("are denied to everyone, root included, without the directive", async () => {
    const { daemon } = await fixture.start([`ModulePath ${FIXTURES}`, `LoadModule ${MODULE}`]);
    expect(await dsoctl(["-s", daemon.socket, "echo", "x"])).toMatchObject({
      status: 2,
      stdout: "dsoctl: access denied\n",
    });
  });

  it("are listed by help and lsctrl, and vanish with rmmod", async () => {
    const ctl = await start();
    expect((await ctl("help")).stdout).toContain("dsoctl: echo: answer with the arguments, one per line\n");
    expect((await ctl("lsctrl")).stdout).toContain(
      `dsoctl: boom (${MODULE})\ndsoctl: count (${MODULE})\ndsoctl: echo (${MODULE})\n`,
    );
    expect(await ctl("rmmod", MODULE)).toMatchObject({ status: 0, stdout: `dsoctl: '${MODULE}' unloaded\n` });
    expect(await ctl("echo", "x")).toMatchObject({ status: 4, stdout: "dsoctl: unsupported action requested\n" });
    expect((await ctl("help")).stdout).not.toContain("echo");
    expect((await ctl("lsctrl")).stdout).not.toContain(MODULE);
    // Back with insmod, as proftpd's: listed again, and unconfigured, so denied (mod_ctrls_admin's `status` after insmod).
    expect(await ctl("insmod", MODULE)).toMatchObject({ status: 0, stdout: `dsoctl: '${MODULE}' loaded\n` });
    expect((await ctl("lsctrl")).stdout).toContain(`dsoctl: echo (${MODULE})\n`);
    expect(await ctl("echo", "x")).toMatchObject({ status: 2, stdout: "dsoctl: access denied\n" });
  });

  it("refuse a config whose ACL directive names an action the module has not", async () => {
    await expect(
      fixture.start([
        `ModulePath ${FIXTURES}`,
        `LoadModule ${MODULE}`,
        "CtrlsTestControlsACLs echo,ban allow user root",
      ]),
    ).rejects.toThrow("CtrlsTestControlsACLs: : unknown action: 'ban'");
  });

  // With workers a guest control runs in the primary's reference host and again in each worker (their instances
  // keep their own state); the store operations of the workers' runs are answered from the reference's.
  it.each(["off", "2"])("act once on the shared store with SessionWorkers %s", async (workers) => {
    const { daemon } = await fixture.start([
      `SessionWorkers ${workers}`,
      `ModulePath ${FIXTURES}`,
      `LoadModule ${MODULE}`,
      "CtrlsTestControlsACLs count allow user root",
    ]);
    for (const count of [1, 2, 3]) {
      expect(await dsoctl(["-s", daemon.socket, "count"])).toMatchObject({
        status: 0,
        stdout: `dsoctl: count ${count}\n`,
      });
    }
    expect(logMessages(daemon.stderr).filter((line) => line.includes("control 'count'"))).toEqual([]);
  });

  it("contain a trapping action: it answers why, and the daemon serves on", async () => {
    const ctl = await start();
    expect(await ctl("boom")).toMatchObject({
      status: 3,
      stdout: `dsoctl: boom: ${MODULE}: fault in ctrl_boom: unreachable\n`,
    });
    const lsmod = await ctl("lsmod");
    expect(lsmod.status).toBe(0);
    expect(lsmod.stdout).toContain(`dsoctl:   ${MODULE}\n`);
  });
});
