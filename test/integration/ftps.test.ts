/**
 * FTPS on the real dsod (mod_tls.c) with real clients: curl (`--ssl-reqd`)
 * and Python's ftplib.FTP_TLS, passive mode, PROT P, files uploaded and
 * downloaded byte for byte; TLSRequired and the session-reuse rule as
 * proftpd 1.3.8 applies them.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";
import { PASSWD, ROOT, runDsod, tempDir, writeConfig } from "./helpers/dsod.js";

const CERT = path.join(ROOT, "test", "fixtures", "tls", "cert.pem");
const KEY = path.join(ROOT, "test", "fixtures", "tls", "key.pem");
const TLS_ON = ["TLSEngine on", `TLSRSACertificateFile ${CERT}`, `TLSRSACertificateKeyFile ${KEY}`];

const fixture = daemonFixture();

/** A home for demo (password `demo`) in a fresh directory, jailed there. */
function home(): { dir: string; lines: string[] } {
  const dir = tempDir();
  const [entry = ""] = readFileSync(PASSWD, "utf8").split("\n");
  const fields = entry.split(":");
  fields[5] = dir;
  writeFileSync(path.join(dir, "passwd"), `${fields.join(":")}\n`);
  return { dir, lines: [`AuthUserFile ${dir}/passwd`, "DefaultRoot ~"] };
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A Python ftplib.FTP_TLS session: login (AUTH TLS first), PROT P, STOR then
 * RETR of `upload`; prints one JSON object. `reuse` makes the data
 * connections resume the control connection's TLS session, which ftplib does
 * not do by itself (proftpd's FAQ answer: subclass it, or NoSessionReuseRequired).
 */
const PYTHON_CLIENT = String.raw`
import ftplib, io, json, sys
port, upload, name, reuse = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "reuse"
class Reusing(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
ftp = (Reusing if reuse else ftplib.FTP_TLS)()
out = {"replies": []}
out["replies"].append(ftp.connect("127.0.0.1", port))
out["replies"].append(ftp.auth())
out["replies"].append(ftp.login("demo", "demo"))
out["replies"].append(ftp.prot_p())
out["tls"] = ftp.sock.version()
data = open(upload, "rb").read()
try:
    out["replies"].append(ftp.storbinary("STOR " + name, io.BytesIO(data)))
    got = io.BytesIO()
    out["replies"].append(ftp.retrbinary("RETR " + name, got.write))
    out["same"] = got.getvalue() == data
except (ftplib.Error, OSError) as error:
    out["error"] = str(error)
    if isinstance(error, OSError):
        try:
            ftp.getresp()
        except ftplib.Error as reply:
            out["error"] = str(reply)
out["replies"].append(ftp.quit())
print(json.dumps(out))
`;

async function python(
  port: number,
  upload: string,
  name: string,
  reuse: "reuse" | "new",
): Promise<Record<string, unknown>> {
  const result = await run("python3", ["-c", PYTHON_CLIENT, String(port), upload, name, reuse]);
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

function payload(dir: string, name: string, size: number): { file: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  const file = path.join(dir, "..", `${path.basename(dir)}-${name}`);
  writeFileSync(file, bytes);
  return { file, bytes };
}

describe("FTPS with curl", () => {
  it("over TLS 1.2, resumes by session ID (curl asks for no tickets) and transfers", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    const { file, bytes } = payload(dir, "up12.bin", 500_000);
    const url = `ftp://demo:demo@127.0.0.1:${daemon.port}/up12.bin`;
    expect((await run("curl", ["-sS", "--ssl-reqd", "-k", "--tls-max", "1.2", "-T", file, url])).code).toBe(0);
    const down = path.join(dir, "..", `${path.basename(dir)}-down12.bin`);
    expect((await run("curl", ["-sS", "--ssl-reqd", "-k", "--tls-max", "1.2", url, "-o", down])).code).toBe(0);
    expect(readFileSync(down).equals(bytes)).toBe(true);
  });

  it("clears the control connection with --ftp-ssl-ccc, and still transfers over PROT P", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    const { file, bytes } = payload(dir, "ccc.bin", 100_000);
    const url = `ftp://demo:demo@127.0.0.1:${daemon.port}/ccc.bin`;
    for (const mode of ["passive", "active"]) {
      const up = await run("curl", [
        "-sS",
        "-v",
        "--ssl-reqd",
        "-k",
        "--ftp-ssl-ccc",
        "--ftp-ssl-ccc-mode",
        mode,
        "-T",
        file,
        `${url}.${mode}`,
      ]);
      expect(up.code).toBe(0);
      expect(up.stderr).toContain("< 200 Clearing control channel protection");
      expect(readFileSync(path.join(dir, `ccc.bin.${mode}`)).equals(bytes)).toBe(true);
    }
  });

  it("uploads and downloads over PROT P, byte for byte", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    const { file, bytes } = payload(dir, "up.bin", 3_000_000);
    const url = `ftp://demo:demo@127.0.0.1:${daemon.port}/up.bin`;
    const up = await run("curl", ["-sS", "-v", "--ssl-reqd", "-k", "-T", file, url]);
    expect(up.code).toBe(0);
    expect(up.stderr).toContain("< 234 AUTH SSL successful");
    expect(up.stderr).toContain("> PROT P");
    expect(up.stderr).toContain("< 200 Protection set to Private");
    expect(readFileSync(path.join(dir, "up.bin")).equals(bytes)).toBe(true);
    const down = path.join(dir, "..", `${path.basename(dir)}-down.bin`);
    const get = await run("curl", ["-sS", "--ssl-reqd", "-k", url, "-o", down]);
    expect(get.code).toBe(0);
    expect(readFileSync(down).equals(bytes)).toBe(true);
  });
});

describe("FTPS with Python's ftplib.FTP_TLS", () => {
  it("uploads and downloads over PROT P when the data connections resume the control connection's session", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    const { file, bytes } = payload(dir, "py.bin", 1_000_000);
    const result = await python(daemon.port, file, "py.bin", "reuse");
    expect(result).toEqual({
      replies: [
        "220 dsod Server (dsod) [127.0.0.1]",
        "234 AUTH TLS successful",
        "230 User demo logged in",
        "200 Protection set to Private",
        "226 Transfer complete",
        "226 Transfer complete",
        "221 Goodbye.",
      ],
      tls: "TLSv1.3",
      same: true,
    });
    expect(readFileSync(path.join(dir, "py.bin")).equals(bytes)).toBe(true);
  });

  it("is refused a data connection that starts a new TLS session, as proftpd refuses it", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    const { file } = payload(dir, "new.bin", 1000);
    const result = await python(daemon.port, file, "new.bin", "new");
    expect(result.error).toBe("425 Unable to build data connection: Operation not permitted");
    expect(result.same).toBeUndefined();
  });

  it("gets its data connections with TLSOptions NoSessionReuseRequired", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON, "TLSOptions NoSessionReuseRequired"]);
    const { file, bytes } = payload(dir, "noreuse.bin", 200_000);
    const result = await python(daemon.port, file, "noreuse.bin", "new");
    expect(result.same).toBe(true);
    expect(readFileSync(path.join(dir, "noreuse.bin")).equals(bytes)).toBe(true);
  });
});

describe("CCC with Python's ftplib", () => {
  it("goes back to clear text on the control connection; PROT P transfers go on", async () => {
    const { dir, lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON]);
    writeFileSync(path.join(dir, "ccc.bin"), randomBytes(50_000));
    const script = String.raw`
import ftplib, io, json, sys
ftp = ftplib.FTP_TLS()
ftp.connect("127.0.0.1", int(sys.argv[1]))
replies = [ftp.login("demo", "demo"), ftp.prot_p(), ftp.ccc(), ftp.sendcmd("NOOP")]
got = io.BytesIO()
replies.append(ftp.retrbinary("RETR ccc.bin", got.write))
replies.append(ftp.quit())
print(json.dumps({"replies": replies, "size": len(got.getvalue())}))
`;
    const result = await run("python3", ["-c", script, String(daemon.port)]);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({
      replies: [
        "230 User demo logged in",
        "200 Protection set to Private",
        "200 Clearing control channel protection",
        "200 NOOP command successful",
        "226 Transfer complete",
        "221 Goodbye.",
      ],
      size: 50_000,
    });
  });
});

describe("mod_tls.c's policy on the wire", () => {
  it("lists AUTH TLS in FEAT only with TLSEngine on", async () => {
    const { lines } = home();
    const off = (await fixture.start(lines)).daemon;
    const plain = await fixture.connect(off, false);
    expect((await plain.send("FEAT")).filter((line) => line === " AUTH TLS")).toEqual([]);
    expect(await plain.send("AUTH TLS")).toEqual(["500 'AUTH' not understood"]);
    const on = (await fixture.start([...lines, ...TLS_ON])).daemon;
    const client = await fixture.connect(on, false);
    const feat = await client.send("FEAT");
    expect(feat.filter((line) => [" AUTH TLS", " CCC", " PBSZ", " PROT"].includes(line))).toEqual([
      " AUTH TLS",
      " CCC",
      " PBSZ",
      " PROT",
    ]);
    expect(await client.send("PBSZ 0")).toEqual(["500 'PBSZ' not understood"]);
  });

  it("TLSRequired on: refuses commands in the clear until AUTH", async () => {
    const { lines } = home();
    const { daemon } = await fixture.start([...lines, ...TLS_ON, "TLSRequired on"]);
    const { client } = await FtpControl.connect(daemon.port);
    fixture.adoptClient(client);
    expect(await client.send("USER demo")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(await client.send("LIST")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(await client.send("SYST")).toEqual(["215 UNIX Type: L8"]);
    const curl = await run("curl", ["-sS", `ftp://demo:demo@127.0.0.1:${daemon.port}/`]);
    expect(curl.stderr).toBe("curl: (67) Access denied: 550\n");
  });

  it("stops dsod when TLSEngine is on with a certificate and no key", () => {
    const dir = tempDir();
    const config = writeConfig(dir, ["TLSEngine on", `TLSRSACertificateFile ${CERT}`].join("\n"));
    const result = runDsod(["-t", "-c", config]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `Fatal: mod_tls/2.9.2: TLSRSACertificateFile '${CERT}' has no key: TLSRSACertificateKeyFile is not set`,
    );
  });

  it("stops dsod at a bad certificate file, naming the file and the line", () => {
    const dir = tempDir();
    const config = writeConfig(dir, ["TLSEngine on", `TLSRSACertificateFile ${dir}/missing.pem`].join("\n"));
    const result = runDsod(["-t", "-c", config]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `Fatal: TLSRSACertificateFile: '${dir}/missing.pem' does not exist or does not contain a certificate on line 2 of '${config}'`,
    );
  });
});
