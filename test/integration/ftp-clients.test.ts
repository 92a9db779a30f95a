/**
 * The built dsod serving files to real FTP clients, each the program or
 * library people use: curl, Python's ftplib, lftp and basic-ftp. Every
 * transfer is checked byte for byte against the file on disk, sizes against
 * SIZE and mtimes against MDTM; replies are checked line for line where the
 * client shows them (curl -v, ftplib's return values).
 */
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Client } from "basic-ftp";
import { describe, expect, it } from "vitest";
import { curlReplies, haveTool, patternBytes, run, siteFixture } from "./helpers/ftp-site.js";
import type { ServedSite } from "./helpers/ftp-site.js";

const fixture = siteFixture();
const HAVE_LFTP = await haveTool("lftp");

/** A local working dir inside the site's temp dir (outside the home). */
function localDir(served: ServedSite, name: string): string {
  const dir = path.join(served.site.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Whole seconds, as MDTM and LIST show a time. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

describe("curl", () => {
  it("uploads with -T, lists with LIST and NLST, downloads passive and active, byte for byte", async () => {
    const served = await fixture.serve();
    const local = localDir(served, "local");
    const data = patternBytes(3 * 1024 * 1024 + 17);
    writeFileSync(path.join(local, "data.bin"), data);

    const up = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "--ftp-create-dirs",
      "-T",
      path.join(local, "data.bin"),
      `${served.url}/up/data.bin`,
    ]);
    expect(up.status).toBe(0);
    const upReplies = curlReplies(up.stderr);
    expect(upReplies).toContain('257 "/up" - Directory successfully created');
    expect(upReplies).toContain("150 Opening BINARY mode data connection for data.bin");
    expect(upReplies.at(-1)).toBe("226 Transfer complete");
    expect(readFileSync(path.join(served.site.home, "up", "data.bin")).equals(data)).toBe(true);

    const list = await run("curl", ["--max-time", "30", "-sS", `${served.url}/up/`]);
    expect(list.status).toBe(0);
    // Listings are ASCII transfers: curl turns the wire's CRLF back into LF (the wire itself: ftp-transfers.test.ts).
    expect(list.stdout).toMatch(
      new RegExp(`^-rw-r--r--   1 alice +\\S+ +${data.length} [A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d data\\.bin\\n$`),
    );
    const nlst = await run("curl", ["--max-time", "30", "-sS", "-l", `${served.url}/up/`]);
    expect(nlst.stdout).toBe("data.bin\n");

    for (const mode of [
      [],
      ["--ftp-port", "-"],
      ["-P", "127.0.0.1"],
      ["--disable-epsv"],
      ["--ftp-port", "-", "--disable-eprt"],
    ]) {
      const out = path.join(local, `down-${mode.join("")}.bin`);
      const down = await run("curl", [
        "--max-time",
        "30",
        "-sS",
        "-v",
        ...mode,
        "-o",
        out,
        `${served.url}/up/data.bin`,
      ]);
      expect(down.status, down.stderr).toBe(0);
      const replies = curlReplies(down.stderr);
      expect(replies).toContain(`150 Opening BINARY mode data connection for data.bin (${data.length} bytes)`);
      expect(replies.at(-1)).toBe("226 Transfer complete");
      if (mode.includes("--disable-eprt")) expect(replies).toContain("200 PORT command successful");
      else if (mode.length > 0 && mode[0] !== "--disable-epsv")
        expect(replies).toContain("200 EPRT command successful");
      if (mode.includes("--disable-epsv"))
        expect(replies.some((r) => r.startsWith("227 Entering Passive Mode (127,0,0,1,"))).toBe(true);
      expect(readFileSync(out).equals(data)).toBe(true);
    }
  });

  it("reports SIZE and MDTM as the file has them (curl -I)", async () => {
    const served = await fixture.serve();
    const file = path.join(served.site.home, "dated.txt");
    writeFileSync(file, "twelve bytes");
    const when = new Date("2024-02-29T13:14:15Z");
    utimesSync(file, when, when);
    const head = await run("curl", ["--max-time", "30", "-sS", "-I", `${served.url}/dated.txt`]);
    expect(head.status).toBe(0);
    expect(head.stdout).toContain("Content-Length: 12\r\n");
    expect(head.stdout).toContain("Last-Modified: Thu, 29 Feb 2024 13:14:15 GMT\r\n");
  });

  it("resumes a download with REST (-C -) and appends an upload with APPE (--append)", async () => {
    const served = await fixture.serve(["AllowStoreRestart on"]);
    const local = localDir(served, "local");
    const data = patternBytes(1_000_000, 2);
    writeFileSync(path.join(served.site.home, "whole.bin"), data);
    const partial = path.join(local, "whole.bin");
    writeFileSync(partial, data.subarray(0, 400_000));
    const resumed = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "-C",
      "-",
      "-o",
      partial,
      `${served.url}/whole.bin`,
    ]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(curlReplies(resumed.stderr)).toContain(
      "350 Restarting at 400000. Send STORE or RETRIEVE to initiate transfer",
    );
    expect(readFileSync(partial).equals(data)).toBe(true);

    writeFileSync(path.join(local, "tail.bin"), data.subarray(0, 1000));
    const appended = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "--append",
      "-T",
      path.join(local, "tail.bin"),
      `${served.url}/whole.bin`,
    ]);
    expect(appended.status, appended.stderr).toBe(0);
    expect(curlReplies(appended.stderr)).toContain("150 Opening BINARY mode data connection for whole.bin");
    expect(
      readFileSync(path.join(served.site.home, "whole.bin")).equals(Buffer.concat([data, data.subarray(0, 1000)])),
    ).toBe(true);
  });

  it("downloads in TYPE A (--use-ascii): an LF file stays LF through curl's own CRLF handling", async () => {
    const served = await fixture.serve();
    writeFileSync(path.join(served.site.home, "unix.txt"), "one\ntwo\r\nthree\n");
    const down = await run("curl", ["--max-time", "30", "-sS", "-v", "--use-ascii", `${served.url}/unix.txt`]);
    expect(down.status).toBe(0);
    expect(curlReplies(down.stderr)).toContain("200 Type set to A");
    expect(curlReplies(down.stderr)).toContain("150 Opening ASCII mode data connection for unix.txt (15 bytes)");
    expect(down.stdout).toBe("one\ntwo\nthree\n");
  });

  it("does it all over FTPS (--ssl-reqd -k), control and data protected", async () => {
    const served = await fixture.serve([], { tls: true });
    const local = localDir(served, "local");
    const data = patternBytes(2 * 1024 * 1024 + 3, 3);
    writeFileSync(path.join(local, "secret.bin"), data);
    const up = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "-v",
      "--ssl-reqd",
      "-k",
      "-T",
      path.join(local, "secret.bin"),
      `${served.url}/secret.bin`,
    ]);
    expect(up.status, up.stderr).toBe(0);
    const replies = curlReplies(up.stderr);
    expect(replies.slice(0, 2)).toEqual(["220 dsod Server (dsod) [127.0.0.1]", "234 AUTH SSL successful"]);
    expect(replies).toContain("200 PBSZ 0 successful");
    expect(replies).toContain("200 Protection set to Private");
    expect(readFileSync(path.join(served.site.home, "secret.bin")).equals(data)).toBe(true);
    // Active mode is left to ftplib below: curl 7.88 fails EPRT under TLS itself ("sa_addr inet_ntop() failed"), against proftpd too.
    const down = await run("curl", [
      "--max-time",
      "30",
      "-sS",
      "--ssl-reqd",
      "-k",
      `${served.url}/secret.bin`,
      "-o",
      path.join(local, "back.bin"),
    ]);
    expect(down.status, down.stderr).toBe(0);
    expect(readFileSync(path.join(local, "back.bin")).equals(data)).toBe(true);
    const list = await run("curl", ["--max-time", "30", "-sS", "--ssl-reqd", "-k", "-l", `${served.url}/`]);
    expect(list.stdout).toBe("secret.bin\n");
  });
});

/** Runs a Python ftplib script with the site's port/user/password as argv[1..3]; it prints one JSON document. */
async function ftplib(
  served: ServedSite,
  script: string,
  extra: readonly string[] = [],
): Promise<Record<string, unknown>> {
  const prelude = [
    "import ftplib, io, json, ssl, sys",
    "port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]",
    "out = {}",
  ].join("\n");
  const result = await run("python3", [
    "-c",
    `${prelude}\n${script}\nprint(json.dumps(out))`,
    String(served.port),
    served.site.user,
    served.site.password,
    ...extra,
  ]);
  if (result.status !== 0) throw new Error(`python3 failed (${result.status}):\n${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe("Python ftplib", () => {
  const SESSION = `
def session(ftp, passive):
    r = {}
    ftp.set_pasv(passive)
    r["pwd"] = ftp.pwd()
    r["mkd"] = ftp.mkd("py")
    r["cwd"] = ftp.cwd("py")
    data = bytes(range(256)) * 4096
    r["stor"] = ftp.storbinary("STOR blob.bin", io.BytesIO(data))
    got = io.BytesIO()
    r["retr"] = ftp.retrbinary("RETR blob.bin", got.write)
    r["same"] = got.getvalue() == data
    r["size"] = ftp.size("blob.bin")
    r["stor_lines"] = ftp.storlines("STOR text.txt", io.BytesIO(b"l1\\nl2\\n"))
    lines = []
    r["retr_lines"] = ftp.retrlines("RETR text.txt", lines.append)
    r["lines"] = lines
    r["nlst"] = sorted(ftp.nlst())
    r["mlsd"] = sorted((name, facts["type"], facts.get("size")) for name, facts in ftp.mlsd())
    listing = []
    ftp.dir(listing.append)
    r["dir"] = len(listing)
    r["rename"] = ftp.rename("blob.bin", "renamed.bin")
    r["mdtm"] = ftp.sendcmd("MDTM renamed.bin")[:4]
    r["delete"] = [ftp.delete("renamed.bin"), ftp.delete("text.txt")]
    r["cdup"] = ftp.sendcmd("CDUP")
    r["rmd"] = ftp.rmd("py")
    r["quit"] = ftp.quit()
    return r
`;

  const expected = (passive: boolean, tls: boolean): Record<string, unknown> => ({
    pwd: "/",
    mkd: "/py",
    cwd: "250 CWD command successful",
    stor: "226 Transfer complete",
    retr: "226 Transfer complete",
    same: true,
    size: 1048576,
    stor_lines: "226 Transfer complete",
    retr_lines: "226 Transfer complete",
    lines: ["l1", "l2"],
    nlst: ["blob.bin", "text.txt"],
    mlsd: [
      [".", "cdir", null],
      ["..", "pdir", null],
      ["blob.bin", "file", "1048576"],
      ["text.txt", "file", "6"],
    ],
    dir: 2,
    rename: "250 Rename successful",
    mdtm: "213 ",
    delete: ["250 DELE command successful", "250 DELE command successful"],
    cdup: "250 CDUP command successful",
    rmd: "250 RMD command successful",
    quit: "221 Goodbye.",
    ...(tls ? { auth: "234 AUTH TLS successful", prot: "200 Protection set to Private" } : {}),
    passive,
  });

  it("FTP, passive and active", async () => {
    const served = await fixture.serve();
    for (const passive of [true, false]) {
      const out = await ftplib(
        served,
        `${SESSION}
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", port)
out["welcome"] = ftp.getwelcome()
out["login"] = ftp.login(user, password)
out.update(session(ftp, ${passive ? "True" : "False"}))
out["passive"] = ${passive ? "True" : "False"}
`,
      );
      expect(out).toEqual({
        welcome: "220 dsod Server (dsod) [127.0.0.1]",
        login: "230 User alice logged in",
        ...expected(passive, false),
      });
    }
  });

  it("FTP_TLS with PROT P, passive and active", async () => {
    const served = await fixture.serve([], { tls: true });
    for (const passive of [true, false]) {
      const out = await ftplib(
        served,
        `${SESSION}
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
# ftplib does not resume the control connection's TLS session on data
# connections, which proftpd (and dsod) require by default; this is the
# usual fix in a client.
class FTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
ftp = FTP_TLS(context=context)
ftp.connect("127.0.0.1", port)
out["auth"] = ftp.auth()
out["login"] = ftp.login(user, password)
out["prot"] = ftp.prot_p()
out.update(session(ftp, ${passive ? "True" : "False"}))
out["passive"] = ${passive ? "True" : "False"}
`,
      );
      expect(out).toEqual({ login: "230 User alice logged in", ...expected(passive, true) });
    }
  });
});

describe("Python ftplib, stock FTP_TLS", () => {
  it("works once `TLSOptions NoSessionReuseRequired` lets data connections skip session reuse", async () => {
    const served = await fixture.serve(["TLSOptions NoSessionReuseRequired"], { tls: true });
    const out = await ftplib(
      served,
      `
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
ftp = ftplib.FTP_TLS(context=context)
ftp.connect("127.0.0.1", port)
ftp.auth()
ftp.login(user, password)
out["prot"] = ftp.prot_p()
out["stor"] = ftp.storbinary("STOR t.bin", io.BytesIO(b"tls" * 1000))
got = io.BytesIO()
out["retr"] = ftp.retrbinary("RETR t.bin", got.write)
out["same"] = got.getvalue() == b"tls" * 1000
out["nlst"] = ftp.nlst()
`,
    );
    expect(out).toEqual({
      prot: "200 Protection set to Private",
      stor: "226 Transfer complete",
      retr: "226 Transfer complete",
      same: true,
      nlst: ["t.bin"],
    });
  });
});

describe("lftp", () => {
  it.skipIf(!HAVE_LFTP)(
    `mirrors a tree up and down, contents and mtimes kept${HAVE_LFTP ? "" : " (skipped: lftp is not installed)"}`,
    async () => {
      const served = await fixture.serve(["AllowOverwrite on"]);
      const source = localDir(served, "source");
      const files: Record<string, Buffer> = {
        "top.txt": Buffer.from("top level\n"),
        empty: Buffer.alloc(0),
        "a/one.bin": patternBytes(300_000, 4),
        "a/b/two.bin": patternBytes(70_001, 5),
        "a/b/c/three.txt": Buffer.from("deep\r\nlines\n"),
      };
      const stamp = new Date("2023-06-01T08:09:10Z");
      for (const [name, bytes] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(source, name)), { recursive: true });
        writeFileSync(path.join(source, name), bytes);
        utimesSync(path.join(source, name), stamp, stamp);
      }
      const back = path.join(served.site.dir, "back");
      const script = [
        "set ftp:ssl-allow no",
        "set net:max-retries 1",
        `mirror -R --verbose=0 ${source} /tree`,
        `mirror --verbose=0 /tree ${back}`,
        "quit",
      ].join("; ");
      const result = await run("lftp", [
        "-u",
        `${served.site.user},${served.site.password}`,
        "-p",
        String(served.port),
        "-e",
        script,
        "127.0.0.1",
      ]);
      expect(result.status, result.stderr).toBe(0);
      for (const [name, bytes] of Object.entries(files)) {
        const onServer = path.join(served.site.home, "tree", name);
        const downloaded = path.join(back, name);
        expect(readFileSync(onServer).equals(bytes), name).toBe(true);
        expect(readFileSync(downloaded).equals(bytes), name).toBe(true);
        expect(seconds(statSync(onServer).mtimeMs), name).toBe(seconds(stamp.getTime()));
        expect(seconds(statSync(downloaded).mtimeMs), name).toBe(seconds(stamp.getTime()));
      }
    },
  );
});

describe("basic-ftp", () => {
  it("passes access() and the whole API: list, up/download, dirs, rename, remove, size, lastMod", async () => {
    const served = await fixture.serve(["AllowOverwrite on", "AllowStoreRestart on"]);
    const local = localDir(served, "local");
    const client = new Client(10_000);
    try {
      const welcome = await client.access({
        host: "127.0.0.1",
        port: served.port,
        user: served.site.user,
        password: served.site.password,
      });
      expect(welcome.message).toBe("220 dsod Server (dsod) [127.0.0.1]");
      expect(await client.pwd()).toBe("/");
      await client.ensureDir("/docs/deep");
      expect(await client.pwd()).toBe("/docs/deep");
      const data = patternBytes(512 * 1024, 6);
      writeFileSync(path.join(local, "a.bin"), data);
      expect((await client.uploadFrom(path.join(local, "a.bin"), "a.bin")).message).toBe("226 Transfer complete");
      expect(await client.size("a.bin")).toBe(data.length);
      const mtime = statSync(path.join(served.site.home, "docs/deep/a.bin")).mtimeMs;
      expect(seconds((await client.lastMod("a.bin")).getTime())).toBe(seconds(mtime));
      await client.downloadTo(path.join(local, "a.copy"), "a.bin");
      expect(readFileSync(path.join(local, "a.copy")).equals(data)).toBe(true);
      // appendFrom: APPE; downloadTo with a start offset: REST + RETR.
      writeFileSync(path.join(local, "more.bin"), data.subarray(0, 100));
      await client.appendFrom(path.join(local, "more.bin"), "a.bin");
      expect(await client.size("a.bin")).toBe(data.length + 100);
      await client.downloadTo(path.join(local, "a.copy"), "a.bin", data.length);
      expect(readFileSync(path.join(local, "a.copy")).equals(Buffer.concat([data, data.subarray(0, 100)]))).toBe(true);

      const listed = await client.list();
      expect(listed.map((f) => [f.name, f.size, f.isFile])).toEqual([["a.bin", data.length + 100, true]]);
      await client.rename("a.bin", "../b.bin");
      await client.cd("..");
      expect((await client.list()).map((f) => f.name).sort()).toEqual(["b.bin", "deep"]);
      await client.remove("b.bin");
      await client.removeDir("deep");
      await client.cd("/");
      expect((await client.list()).map((f) => [f.name, f.isDirectory])).toEqual([["docs", true]]);

      const tree = path.join(local, "tree");
      mkdirSync(path.join(tree, "x", "y"), { recursive: true });
      writeFileSync(path.join(tree, "root.txt"), "root\n");
      writeFileSync(path.join(tree, "x", "y", "leaf.bin"), patternBytes(4096, 7));
      await client.uploadFromDir(tree, "/copy");
      const back = path.join(local, "back");
      await client.downloadToDir(back, "/copy");
      expect(readFileSync(path.join(back, "root.txt"), "utf8")).toBe("root\n");
      expect(readFileSync(path.join(back, "x", "y", "leaf.bin")).equals(patternBytes(4096, 7))).toBe(true);
      await client.cd("/");
      await client.removeDir("/copy");
      await client.clearWorkingDir();
      expect(await client.list()).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("works over explicit FTPS (secure: true)", async () => {
    const served = await fixture.serve([], { tls: true });
    const local = localDir(served, "local");
    const client = new Client(10_000);
    try {
      await client.access({
        host: "127.0.0.1",
        port: served.port,
        user: served.site.user,
        password: served.site.password,
        secure: true,
        secureOptions: { rejectUnauthorized: false },
      });
      const data = patternBytes(300_000, 8);
      writeFileSync(path.join(local, "s.bin"), data);
      await client.uploadFrom(path.join(local, "s.bin"), "s.bin");
      await client.downloadTo(path.join(local, "s.copy"), "s.bin");
      expect(readFileSync(path.join(local, "s.copy")).equals(data)).toBe(true);
      expect((await client.list()).map((f) => f.name)).toEqual(["s.bin"]);
    } finally {
      client.close();
    }
  });
});
