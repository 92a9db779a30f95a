/**
 * SessionWorkers in the built dsod, where the number of workers is fixed at
 * start: `dsod -t` reads the directive in the server config only, and a
 * SIGHUP that changes it keeps the daemon as it started, saying a restart is
 * needed (as for DefaultAddress, User and SystemLog). With workers, the
 * daemon hands connections off and stays root, as proftpd's master does.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { IS_ROOT } from "../helpers/other-users.js";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { baseConfig, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const fixture = daemonFixture();

describe("SessionWorkers", () => {
  it("is a server config directive: dsod -t takes it there and refuses it in <Directory>", () => {
    const dir = tempDir();
    const good = runDsod(["-t", "-c", writeConfig(dir, [baseConfig(dir), "SessionWorkers auto"].join("\n"))]);
    expect(good.status).toBe(0);
    const bad = writeConfig(
      dir,
      [baseConfig(dir), "<Directory /srv>", "SessionWorkers 2", "</Directory>"].join("\n"),
      "bad.conf",
    );
    const refused = runDsod(["-t", "-c", bad]);
    expect(refused.status).toBe(1);
    expect(logMessages(refused.stderr)).toEqual([
      `Fatal: SessionWorkers: directive not allowed in <Directory> context on line 8 of '${bad}'`,
    ]);
    const wrong = writeConfig(dir, [baseConfig(dir), "SessionWorkers 0"].join("\n"), "wrong.conf");
    expect(logMessages(runDsod(["-t", "-c", wrong]).stderr)).toEqual([
      `Fatal: SessionWorkers: invalid worker count '0' (1 to 256, auto or off) on line 7 of '${wrong}'`,
    ]);
  });

  it("changed by a SIGHUP, needs a restart: the daemon goes on serving its sessions itself", async () => {
    const { daemon, dir } = await fixture.start(['ServerName "before"', "SessionWorkers off"]);
    writeConfig(dir, [baseConfig(dir), 'ServerName "after"', "SessionWorkers 2"].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/SessionWorkers changed/);
    expect(logMessages(daemon.stderr)).toContain("SessionWorkers changed: restart dsod for it to take effect");
    const { client, greeting } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(greeting).toEqual(["220 dsod Server (after) [127.0.0.1]"]);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });
});

/** A /proc/PID/status field, e.g. `Uid`: its value without the tabs around it. */
function status(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? "").slice(field.length + 1).trim();
}

describe("the daemon with SessionWorkers", () => {
  it.skipIf(!IS_ROOT)("runs as User keeping root as its real uid, and says so; the worker becomes User", async () => {
    const { daemon } = await fixture.start(["SessionWorkers 1", "User nobody", "Group nogroup"]);
    const pid = daemon.child.pid as number;
    // proftpd's master (PRIVS_RELINQUISH): User as its effective ids, root kept as its real and saved uid.
    expect(status(pid, "Uid").split(/\s+/)).toEqual(["0", "65534", "0", "65534"]);
    const master = daemon.stderr
      .split("\n")
      .filter((line) =>
        line.endsWith(
          "master process running with effective User nobody (uid 65534), Group nogroup (gid 65534), " +
            "no supplementary groups; sessions run in workers as User nobody",
        ),
      )
      .map((line) => Number(/ dsod\[(\d+)\]: /.exec(line)?.[1]));
    expect(master).toEqual([pid]);
    const client = await fixture.connect(daemon);
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    // Each line names its process: `dsod[PID]: message`.
    const running = daemon.stderr
      .split("\n")
      .filter((line) =>
        line.endsWith("running as User nobody (uid 65534), Group nogroup (gid 65534), no supplementary groups"),
      )
      .map((line) => Number(/ dsod\[(\d+)\]: /.exec(line)?.[1]));
    expect(running).toHaveLength(1);
    expect(running[0]).not.toBe(pid);
    expect(status(running[0] as number, "Uid").split(/\s+/)).toEqual(["65534", "65534", "65534", "65534"]);
  });
});
