/**
 * mod_ban.c (guest-modules/mod_ban.ts), proftpd's mod_ban as a guest, through
 * the built dsod and the real dsoctl: its ban lists in the shared store stop a
 * login-guessing client across sessions (BanOnEvent MaxLoginAttempts) and
 * end the session whose failed login reached the count (ban_handle_event's
 * pr_session_disconnect), a banned host is refused at connect with
 * `530 <BanMessage>` before any greeting (ban_sess_init), `dsoctl ban` /
 * `dsoctl permit` answer with mod_ban's words, and BanControlsACLs guards them.
 */
import net from "node:net";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import type { FtpControl } from "./helpers/ftp-client.js";
import { LIBEXEC, baseConfig, dsoctl, logMessages, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";
import type { RunningDsod } from "./helpers/dsod.js";

const fixture = daemonFixture();
const BANNED = "530 Sorry (none), 127.0.0.1 is banned";

function modBan(acl: string, engine = "on"): string[] {
  return [
    `ModulePath ${LIBEXEC}`,
    "ModuleCapabilities mod_ban.c session",
    "LoadModule mod_ban.c",
    `BanEngine ${engine}`,
    "BanOnEvent MaxLoginAttempts 2/00:10:00 01:00:00",
    'BanMessage "Sorry %u, %a is banned"',
    `BanControlsACLs ${acl}`,
  ];
}

/** Everything the server sends on a new connection until it closes it, or its first line if it stays open. */
function connectOnce(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (received.startsWith("220") && received.includes("\r\n")) socket.destroy();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(received));
  });
}

/** The reply to the first of `commands` (sent in one write), then the server's close with nothing after it. */
async function lastReply(client: FtpControl, ...commands: string[]): Promise<string[]> {
  client.write(commands.map((command) => `${command}\r\n`).join(""));
  const lines = await client.reply();
  await client.closed();
  await expect(client.reply()).rejects.toThrow('connection closed with partial reply ""');
  return lines;
}

function ctl(daemon: RunningDsod, ...args: string[]): ReturnType<typeof dsoctl> {
  return dsoctl(["-s", daemon.socket, ...args]);
}

describe("mod_ban.c", () => {
  it("bans a host after BanOnEvent MaxLoginAttempts' count of failed logins, across sessions", async () => {
    const { daemon } = await fixture.start(modBan("ban,permit allow user root"));
    const first = await fixture.connect(daemon, false);
    expect(await first.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await first.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    const second = await fixture.connect(daemon, false);
    expect(await second.send("USER demo")).toEqual(["331 Password required for demo"]);
    // The second failure banned the host: BanMessage after mod_auth's 530, and the session ends.
    expect(await lastReply(second, "PASS wrong")).toEqual([
      "530-Login incorrect.",
      "530 Sorry (none), 127.0.0.1 is banned",
    ]);
    // The host's other session, which proftpd's ban_disconnect_host would have ended, ends at its next login command.
    expect(await lastReply(first, "PASS demo")).toEqual([
      "530-Sorry (none), 127.0.0.1 is banned",
      "530 Login incorrect.",
    ]);
    expect(await connectOnce(daemon.port)).toBe(`${BANNED}\r\n`);
    await daemon.waitForLog(/mod_ban\/0\.7: Login denied: host '127\.0\.0\.1' banned/);
    expect(await ctl(daemon, "ban", "info")).toMatchObject({
      status: 0,
      stdout: "dsoctl: Banned Hosts:\ndsoctl:   127.0.0.1\n",
    });
    const events = await ctl(daemon, "ban", "info", "-e");
    expect(events.stdout).toContain(
      "dsoctl: Ban Events:\ndsoctl:   Event: MaxLoginAttempts\ndsoctl:   Source: 127.0.0.1\n" +
        "dsoctl:     Occurrences: 2/2\n",
    );
    const verbose = await ctl(daemon, "ban", "info", "-v");
    expect(verbose.stdout).toMatch(
      /dsoctl: {5}Reason: MaxLoginAttempts autoban at \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n/,
    );
    expect(verbose.stdout).toMatch(/dsoctl: {5}Expires: .* \(in 3[56]\d\d seconds\)\n/);

    expect(await ctl(daemon, "permit", "host", "127.0.0.1")).toMatchObject({
      status: 0,
      stdout: "dsoctl: host '127.0.0.1' permitted\n",
    });
    expect(await connectOnce(daemon.port)).toMatch(/^220 /);
    await fixture.connect(daemon);
  });

  it("disconnects a login-guessing client at the failed login that triggers the autoban", async () => {
    const { daemon } = await fixture.start(modBan("ban,permit allow user root"));
    const client = await fixture.connect(daemon, false);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    expect(await client.send("USER demo")).toEqual(["331 Password required for demo"]);
    // A command sent behind the triggering PASS is never run: the session ends after the PASS's reply.
    expect(await lastReply(client, "PASS wrong", "NOOP")).toEqual([
      "530-Login incorrect.",
      "530 Sorry (none), 127.0.0.1 is banned",
    ]);
    expect(await connectOnce(daemon.port)).toBe(`${BANNED}\r\n`);
  });

  it("refuses new connections while `dsoctl ban host` holds, and `dsoctl permit host` lifts it", async () => {
    const { daemon } = await fixture.start(modBan("ban,permit allow user root"));
    expect(await ctl(daemon, "ban", "info")).toMatchObject({ status: 0, stdout: "dsoctl: No bans\n" });
    expect(await ctl(daemon, "permit", "host", "127.0.0.1")).toMatchObject({
      status: 0,
      stdout: "dsoctl: permit request unnecessary\ndsoctl: no hosts are banned\n",
    });
    expect(await ctl(daemon, "ban", "host", "127.0.0.1")).toMatchObject({
      status: 0,
      stdout: "dsoctl: host 127.0.0.1 banned\n",
    });
    expect(await ctl(daemon, "ban", "host", "127.0.0.1", "ftp.example")).toMatchObject({
      status: 0,
      stdout: "dsoctl: host 127.0.0.1 already banned\ndsoctl: ban: unknown host 'ftp.example'\n",
    });
    expect(await connectOnce(daemon.port)).toBe(`${BANNED}\r\n`);
    expect(await connectOnce(daemon.port)).toBe(`${BANNED}\r\n`);
    expect(await ctl(daemon, "permit", "host", "127.0.0.1")).toMatchObject({
      status: 0,
      stdout: "dsoctl: host '127.0.0.1' permitted\n",
    });
    expect(await ctl(daemon, "permit", "host", "127.0.0.1")).toMatchObject({
      status: 0,
      stdout: "dsoctl: permit request unnecessary\ndsoctl: no hosts are banned\n",
    });
    expect(await connectOnce(daemon.port)).toMatch(/^220 /);
  });

  it("refuses a banned user at USER, with the user in BanMessage, and keeps the session", async () => {
    const { daemon } = await fixture.start(modBan("ban,permit allow user root"));
    expect(await ctl(daemon, "ban", "user", "demo")).toMatchObject({ status: 0, stdout: "dsoctl: user demo banned\n" });
    const client = await fixture.connect(daemon, false);
    expect(await client.send("USER demo")).toEqual(["530-Sorry demo, 127.0.0.1 is banned", "530 Login incorrect."]);
    // proftpd's ban_pre_pass answers 530 without pr_session_disconnect: this session logs in once permitted.
    // Another host's ban leaves this client alone; ban info lists users, a blank line, then hosts.
    expect(await ctl(daemon, "ban", "host", "192.0.2.1")).toMatchObject({ stdout: "dsoctl: host 192.0.2.1 banned\n" });
    expect(await ctl(daemon, "ban", "info")).toMatchObject({
      stdout: "dsoctl: Banned Users:\ndsoctl:   demo\ndsoctl: \ndsoctl: Banned Hosts:\ndsoctl:   192.0.2.1\n",
    });
    expect(await ctl(daemon, "permit", "user", "*")).toMatchObject({
      status: 0,
      stdout: "dsoctl: all users permitted\n",
    });
    await client.login();
  });

  it("answers only callers BanControlsACLs allows: others get `access denied` and change nothing", async () => {
    const { daemon } = await fixture.start(modBan("ban allow user nobody"));
    expect(await ctl(daemon, "ban", "host", "127.0.0.1")).toMatchObject({
      status: 2,
      stdout: "dsoctl: access denied\n",
    });
    // `permit` is named by no BanControlsACLs line: denied to everyone, root included.
    expect(await ctl(daemon, "permit", "host", "127.0.0.1")).toMatchObject({
      status: 2,
      stdout: "dsoctl: access denied\n",
    });
    expect(await connectOnce(daemon.port)).toMatch(/^220 /);
  });

  it("bans a host that connects faster than BanOnEvent ClientConnectRate allows", async () => {
    const { daemon } = await fixture.start([
      ...modBan("ban,permit allow user root"),
      'BanOnEvent ClientConnectRate 2/00:10:00 00:30:00 "Slow down, %a"',
    ]);
    expect(await connectOnce(daemon.port)).toMatch(/^220 /);
    // proftpd's ban_handle_event sends BanMessage to the connection that reached the count...
    expect(await connectOnce(daemon.port)).toBe(`${BANNED}\r\n`);
    // ...and the ban's own message, the rule's, to the ones refused after.
    expect(await connectOnce(daemon.port)).toBe("530 Slow down, 127.0.0.1\r\n");
  });

  it("refuses a BanOnEvent it cannot count, as proftpd refuses a badly formatted one", () => {
    const dir = tempDir();
    const bad = (rule: string): string[] => {
      const file = writeConfig(
        dir,
        [baseConfig(dir), ...modBan("all allow user root"), `BanOnEvent ${rule}`].join("\n"),
      );
      return logMessages(runDsod(["-t", "-c", file]).stderr).map((line) => line.replace(/ on line \d+ of .*/, ""));
    };
    expect(bad("MaxLoginAttempts 3 01:00:00")).toEqual(["Fatal: BanOnEvent: badly formatted freq parameter: '3'"]);
    expect(bad("MaxLoginAttempts 0/00:10:00 01:00:00")).toEqual([
      "Fatal: BanOnEvent: freq occurrences must be greater than 0",
    ]);
    expect(bad("MaxLoginAttempts 3/00:10:00 00:00:00")).toEqual([
      "Fatal: BanOnEvent: duration parameter cannot be '00:00:00'",
    ]);
    expect(bad("TimeoutIdle 3/00:10:00 01:00:00")).toEqual([
      "Fatal: BanOnEvent: unsupported event: 'TimeoutIdle' (supported: MaxLoginAttempts, ClientConnectRate)",
    ]);
  });

  it("does nothing with BanEngine off: its controls say so", async () => {
    const { daemon } = await fixture.start(modBan("ban,permit allow user root", "off"));
    expect(await ctl(daemon, "ban", "host", "127.0.0.1")).toMatchObject({
      status: 3,
      stdout: "dsoctl: mod_ban/0.7 not enabled\n",
    });
    const client = await fixture.connect(daemon, false);
    for (let attempt = 0; attempt < 2; attempt++) {
      await client.send("USER demo");
      expect(await client.send("PASS wrong")).toEqual(["530 Login incorrect."]);
    }
    expect(await connectOnce(daemon.port)).toMatch(/^220 /);
  });
});
