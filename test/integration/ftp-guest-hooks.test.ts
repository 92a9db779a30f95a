/**
 * Guest modules hooked on the file commands, driven by real clients: the
 * example guests as examples/dsod.conf loads them (mod_upload_filter.c
 * refuses uploads by name in PRE_CMD; mod_xfer_stats.c counts bytes in
 * LOG_CMD and answers SITE XFERSTATS) and the test guest mod_guard.c
 * (test/fixtures/guests/mod_guard.ts: refuses DELE and RETR of some names
 * with its own replies, records the jail paths of those that went through).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Client, FTPError } from "basic-ftp";
import { describe, expect, it } from "vitest";
import { GUEST_LINES, curlReplies, patternBytes, run, siteFixture } from "./helpers/ftp-site.js";

const fixture = siteFixture();

describe("guest modules on STOR, RETR and DELE", () => {
  it("mod_upload_filter refuses uploads by name (curl, basic-ftp); mod_xfer_stats counts what went through", async () => {
    const served = await fixture.serve(GUEST_LINES);
    const local = path.join(served.site.dir, "local");
    mkdirSync(local);
    const body = patternBytes(123_456, 21);
    for (const name of ["virus.exe", "ok.bin"]) writeFileSync(path.join(local, name), body);

    const refused = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "-T",
      path.join(local, "virus.exe"),
      `${served.url}/virus.exe`,
    ]);
    expect(refused.status).toBe(25);
    expect(curlReplies(refused.stderr)).toContain("553 virus.exe: Forbidden filename");
    expect(existsSync(path.join(served.site.home, "virus.exe"))).toBe(false);

    const stored = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-T",
      path.join(local, "ok.bin"),
      `${served.url}/ok.bin`,
    ]);
    expect(stored.status).toBe(0);
    const fetched = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-o",
      path.join(local, "back.bin"),
      `${served.url}/ok.bin`,
    ]);
    expect(fetched.status).toBe(0);
    expect(readFileSync(path.join(local, "back.bin")).equals(body)).toBe(true);

    const client = new Client(10_000);
    try {
      await client.access({
        host: "127.0.0.1",
        port: served.port,
        user: served.site.user,
        password: served.site.password,
      });
      // [NC]: the patterns match regardless of case.
      const error = await client.uploadFrom(path.join(local, "ok.bin"), "SETUP.Exe").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FTPError);
      expect((error as FTPError).message).toBe("553 SETUP.Exe: Forbidden filename");
      // RNTO onto a refused name is an upload by another way.
      await client.send("RNFR ok.bin");
      const renamed = await client.send("RNTO ok.bat").catch((e: unknown) => e);
      expect((renamed as FTPError).message).toBe("553 ok.bat: Forbidden filename");
      expect((await client.send("SITE XFERSTATS")).message).toBe(
        "200 alice: 123456 bytes up in 1 file, 123456 bytes down in 1 file",
      );
    } finally {
      client.close();
    }
    expect(existsSync(path.join(served.site.home, "SETUP.Exe"))).toBe(false);
    expect(existsSync(path.join(served.site.home, "ok.bat"))).toBe(false);
  });

  it("mod_guard refuses DELE and RETR with its own replies and sees paths inside the jail (ftplib)", async () => {
    const served = await fixture.serve(GUEST_LINES);
    const { home } = served.site;
    mkdirSync(path.join(home, "sub"));
    for (const name of ["keep-me.txt", "gone.txt", "plans.private", "open.txt"])
      writeFileSync(path.join(home, "sub", name), `${name}\n`);
    const script = `
import ftplib, io, json, sys
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]))
ftp.login(sys.argv[2], sys.argv[3])
out = {}
ftp.cwd("sub")
def attempt(key, call):
    try:
        out[key] = call()
    except ftplib.all_errors as error:
        out[key] = str(error)
attempt("keep", lambda: ftp.delete("keep-me.txt"))
attempt("gone", lambda: ftp.delete("gone.txt"))
attempt("private", lambda: ftp.retrbinary("RETR plans.private", io.BytesIO().write))
got = io.BytesIO()
attempt("open", lambda: ftp.retrbinary("RETR open.txt", got.write))
out["open_bytes"] = got.getvalue().decode()
attempt("guard", lambda: ftp.sendcmd("SITE GUARD"))
print(json.dumps(out))
`;
    const result = await run("python3", ["-c", script, String(served.port), served.site.user, served.site.password]);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      keep: "550 keep-me.txt: kept by mod_guard",
      gone: "250 DELE command successful",
      private: "553 plans.private: private file",
      open: "226 Transfer complete",
      open_bytes: "open.txt\n",
      guard: "200 GUARD: 1 DELE (last /sub/gone.txt in /sub), 1 RETR (last /sub/open.txt in /sub)",
    });
    expect(existsSync(path.join(home, "sub", "keep-me.txt"))).toBe(true);
    expect(existsSync(path.join(home, "sub", "gone.txt"))).toBe(false);
  });
});
