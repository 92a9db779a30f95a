/**
 * `DefaultRoot ~`: every way out of the home (`..`, absolute names, symlinks
 * inside the home pointing out, NUL bytes, names too long) is answered with
 * proftpd's reply and touches nothing outside: the tree beside the home is
 * the same, byte for byte and time for time, after every attempt.
 *
 * The texts are proftpd 1.3.8's for the same commands on the same tree
 * (bench/proftpd/compare.ts). proftpd chroots, so for it a symlink to a host
 * path outside the home dangles: `No such file or directory`.
 */
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { run, siteFixture, snapshot } from "./helpers/ftp-site.js";
import type { ServedSite } from "./helpers/ftp-site.js";

const fixture = siteFixture();

/** The home's tree: a file, a directory, symlinks out of the home (absolute and relative) and one that stays inside. */
function populate(served: ServedSite): void {
  const { home, outside } = served.site;
  writeFileSync(path.join(home, "hello.txt"), "hello\n");
  mkdirSync(path.join(home, "sub"));
  writeFileSync(path.join(home, "sub", "inner.txt"), "inner\n");
  symlinkSync(outside, path.join(home, "link-out"));
  symlinkSync("../../outside", path.join(home, "link-rel"));
  symlinkSync(path.join(outside, "secret.txt"), path.join(home, "secret-link.txt"));
  symlinkSync("sub/inner.txt", path.join(home, "inner-link.txt"));
  mkdirSync(path.join(outside, "deeper"));
  writeFileSync(path.join(outside, "deeper", "file.bin"), "deeper\n");
}

/** What is around the home: the outside tree and the site dir's own entries. */
function surroundings(served: ServedSite): string[] {
  return [
    ...snapshot(served.site.outside),
    ...readdirSync(served.site.dir).sort(),
    ...readdirSync(path.dirname(served.site.home)),
  ];
}

describe("DefaultRoot ~", () => {
  it("keeps `..` and absolute names inside the home", async () => {
    const served = await fixture.serve();
    populate(served);
    const before = surroundings(served);
    const ftp = await fixture.login(served);
    const exchanges: Array<[string, string[]]> = [
      ["TYPE I", ["200 Type set to I"]],
      ["PWD", ['257 "/" is the current directory']],
      ["CWD ..", ["250 CWD command successful"]],
      ["PWD", ['257 "/" is the current directory']],
      ["CWD ../../..", ["250 CWD command successful"]],
      ["PWD", ['257 "/" is the current directory']],
      ["CWD /etc", ["550 /etc: No such file or directory"]],
      ["CWD ../outside", ["550 ../outside: No such file or directory"]],
      ["CWD sub/../../outside", ["550 sub/../../outside: No such file or directory"]],
      ["SIZE /hello.txt", ["213 6"]],
      ["SIZE ../hello.txt", ["213 6"]],
      ["SIZE ../outside/secret.txt", ["550 ../outside/secret.txt: No such file or directory"]],
      ["SIZE ../../outside/secret.txt", ["550 ../../outside/secret.txt: No such file or directory"]],
      ["SIZE /etc/passwd", ["550 /etc/passwd: No such file or directory"]],
      [`SIZE ${served.site.outside}/secret.txt`, [`550 ${served.site.outside}/secret.txt: No such file or directory`]],
      ["MDTM ../../outside/secret.txt", ["550 ../../outside/secret.txt: No such file or directory"]],
      ["DELE ../../outside/secret.txt", ["550 ../../outside/secret.txt: No such file or directory"]],
      ["RMD ../../outside/deeper", ["550 ../../outside/deeper: No such file or directory"]],
      ["SITE CHMOD 777 ../../outside/secret.txt", ["550 ../../outside/secret.txt: No such file or directory"]],
      ["RNFR ../../outside/secret.txt", ["550 ../../outside/secret.txt: No such file or directory"]],
      ["RNFR hello.txt", ["350 File or directory exists, ready for destination name"]],
      ["RNTO ../../outside/moved.txt", ["550 ../../outside/moved.txt: No such file or directory"]],
      ["MLST ../../outside/secret.txt", ["550 '../../outside/secret.txt' cannot be listed"]],
      ["STAT ../../outside", ["450 ../../outside: No such file or directory"]],
    ];
    const got: Array<[string, string[]]> = [];
    for (const [command] of exchanges) got.push([command, await ftp.send(command)]);
    expect(got).toEqual(exchanges);
    const retr = await ftp.retrieve("RETR ../../outside/secret.txt");
    expect(retr.first).toEqual(["550 ../../outside/secret.txt: No such file or directory"]);
    const etc = await ftp.retrieve("NLST /etc");
    expect(etc.first).toEqual(["450 /etc: No such file or directory"]);
    const up = await ftp.retrieve("LIST -a ../..");
    expect(up.data.toString("utf8")).toMatch(/ hello\.txt\r\n/);
    expect(up.data.equals((await ftp.retrieve("LIST -a /")).data)).toBe(true);
    // STOR ../x lands in the jail's root, like `cd ..` at `/`.
    const stored = await ftp.store("STOR ../../landed.txt", Buffer.from("in\n"));
    expect(stored.final).toEqual(["226 Transfer complete"]);
    expect(readdirSync(served.site.home)).toContain("landed.txt");
    expect(surroundings(served)).toEqual(before);
  });

  it("answers 550 through symlinks that lead out of the home, and follows one that stays inside", async () => {
    const served = await fixture.serve(["AllowOverwrite on"]);
    populate(served);
    const before = surroundings(served);
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const commands = [
      "CWD link-out",
      "CWD link-rel",
      "SIZE link-out/secret.txt",
      "SIZE link-rel/secret.txt",
      "SIZE secret-link.txt",
      "MDTM link-out/secret.txt",
      "DELE link-out/secret.txt",
      "MKD link-out/x",
      "RMD link-out/deeper",
      "SITE CHMOD 777 link-out/secret.txt",
      "SITE CHMOD 777 secret-link.txt",
      "STAT link-out",
    ];
    const got: string[] = [];
    for (const command of commands) got.push(...(await ftp.send(command)));
    const retr = await ftp.retrieve("RETR secret-link.txt");
    const stor = await ftp.store("STOR link-out/new.txt", Buffer.from("x"));
    const over = await ftp.store("STOR secret-link.txt", Buffer.from("overwritten"));
    const list = await ftp.retrieve("LIST link-out/");
    expect([...got, ...retr.first, ...stor.first, ...over.first, ...list.first, ...list.final]).toEqual([
      "550 link-out: No such file or directory",
      "550 link-rel: No such file or directory",
      "550 link-out/secret.txt: No such file or directory",
      "550 link-rel/secret.txt: No such file or directory",
      "550 secret-link.txt: No such file or directory",
      "550 link-out/secret.txt: No such file or directory",
      "550 link-out/secret.txt: No such file or directory",
      "550 link-out/x: No such file or directory",
      "550 link-out/deeper: No such file or directory",
      "550 link-out/secret.txt: No such file or directory",
      "550 secret-link.txt: No such file or directory",
      "450 link-out: No such file or directory",
      "550 secret-link.txt: No such file or directory",
      "550 link-out/new.txt: No such file or directory",
      "550 secret-link.txt: No such file or directory",
      "150 Opening BINARY mode data connection for file list",
      "450 link-out/: No such file or directory",
    ]);
    const inside = await ftp.retrieve("RETR inner-link.txt");
    expect(inside.data.toString("utf8")).toBe("inner\n");
    expect(surroundings(served)).toEqual(before);
  });

  // proftpd cuts a name at its NUL and acts on the rest (`DELE hello.txt\0...` deletes hello.txt); the issue asks for 550.
  it("refuses names with a NUL byte and names too long with 550, touching nothing", async () => {
    const served = await fixture.serve();
    populate(served);
    const before = surroundings(served);
    const homeBefore = snapshot(served.site.home);
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const raw = async (line: string): Promise<string[]> => ftp.sendRaw(Buffer.from(`${line}\r\n`, "latin1"));
    const nul: string[] = [];
    for (const line of [
      "SIZE hello.txt\0x",
      "DELE hello.txt\0../../outside/secret.txt",
      "MKD new\0dir",
      "CWD sub\0/../../outside",
      "RETR x\0y",
    ])
      nul.push(...(await raw(line)));
    expect(nul).toEqual([
      "550 hello.txt: Invalid argument",
      "550 hello.txt: Invalid argument",
      "550 new: Invalid argument",
      "550 sub: Invalid argument",
      "550 x: Invalid argument",
    ]);
    const long = "n".repeat(300);
    expect(await ftp.send(`MKD ${long}`)).toEqual([`550 ${long}: File name too long`]);
    expect(await ftp.send(`SIZE ${long}`)).toEqual([`550 ${long}: File name too long`]);
    const stored = await ftp.store(`STOR ${long}`, Buffer.from("x"));
    expect(stored.first).toEqual([`550 ${long}: File name too long`]);
    const deep = `${"d/".repeat(200)}x`;
    expect(await ftp.send(`SIZE ${deep}`)).toEqual([`550 ${deep}: No such file or directory`]);
    expect(await ftp.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(snapshot(served.site.home)).toEqual(homeBefore);
    expect(surroundings(served)).toEqual(before);
  });

  it("keeps curl's unnormalised paths (--path-as-is) inside too", async () => {
    const served = await fixture.serve();
    populate(served);
    const before = surroundings(served);
    const out = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "--path-as-is",
      "--ftp-method",
      "nocwd",
      `${served.url}/../../outside/secret.txt`,
    ]);
    expect(out.status).toBe(78);
    expect(out.stdout).toBe("");
    expect(out.stderr).toContain("< 550 ../../outside/secret.txt: No such file or directory");
    const up = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "--path-as-is",
      "--ftp-method",
      "nocwd",
      "-T",
      "/etc/hostname",
      `${served.url}/link-out/stolen.txt`,
    ]);
    expect(up.status).not.toBe(0);
    expect(surroundings(served)).toEqual(before);
  });
});
