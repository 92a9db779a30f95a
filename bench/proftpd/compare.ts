/**
 * Reply texts, dsod against the machine's proftpd: the same sessions (the
 * same commands on the same tree, user and directives) run on both, and
 * every command whose replies differ is printed with both answers. What
 * changes from run to run (passive ports, times, STOU's names) is
 * normalised first; listings are compared too, time columns masked.
 *
 *   npm run build:host && node dist/bench/proftpd/compare.js [--all]
 *
 * `--all` prints every exchange, not only the differences. Exits 0 when
 * the replies agree, 1 when some differ, 2 when proftpd is not installed.
 */
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startSiteDsod } from "./dsod.js";
import { proftpdInstalled, proftpdTlsAvailable, startProftpd } from "./proftpd.js";
import { RawFtp } from "./raw-ftp.js";
import type { DataMode } from "./raw-ftp.js";
import { makeSite } from "./site.js";
import type { FtpSite } from "./site.js";

/** test/fixtures/tls in the source tree, from dist/bench/proftpd/ or bench/proftpd/. */
const TLS_DIR = fileURLToPath(
  new URL(
    import.meta.url.includes("/dist/") ? "../../../test/fixtures/tls/" : "../../test/fixtures/tls/",
    import.meta.url,
  ),
);
const TLS = { certificate: path.join(TLS_DIR, "cert.pem"), key: path.join(TLS_DIR, "key.pem") };
const SERVER_NAME = "compare";
/** abort.py beside this file in the source tree. */
const ABORT_PY = fileURLToPath(
  new URL(import.meta.url.includes("/dist/") ? "../../../bench/proftpd/abort.py" : "./abort.py", import.meta.url),
);
/** Large enough that a RETR is still sending when ABOR arrives (loopback buffers hold a few MB). */
const BIG_FILE_BYTES = 256 * 1024 * 1024;

/** One exchange: what was sent and what came back (replies, and listings or file contents when relevant). */
interface Exchange {
  readonly sent: string;
  readonly received: string[];
}

/** Masks what legitimately differs between two runs, not between two servers. */
export function normalize(line: string): string {
  return (
    line
      // proftpd listens on an IPv6 socket (UseIPv6 on, its default), so it sees loopback v4-mapped.
      .replace("[::ffff:127.0.0.1]", "[127.0.0.1]")
      .replace(/^227 Entering Passive Mode \(.*\)/, "227 Entering Passive Mode (<address>)")
      .replace(/\(\|\|\|\d+\|\)/, "(|||<port>|)")
      .replace(/^213 \d{14}(\.\d+)?$/, "213 <mtime>")
      .replace(/modify=\d{14}(\.\d+)?;/g, "modify=<mtime>;")
      .replace(/create=\d{14}(\.\d+)?;/g, "create=<ctime>;")
      .replace(/unique=[0-9a-fA-F]+U[0-9a-fA-F]+;/gi, "unique=<id>;")
      .replace(/[A-Z][a-z]{2} [ \d]\d +(\d\d:\d\d|\d{4}) /, "<date> ")
      .replace(/FILE: \S+/, "FILE: <unique>")
  );
}

/** Records one server's side of a session. */
class Transcript {
  readonly exchanges: Exchange[] = [];
  client: RawFtp | undefined;

  #record(sent: string, received: readonly string[]): void {
    this.exchanges.push({ sent, received: received.map(normalize) });
  }

  get ftp(): RawFtp {
    if (this.client === undefined) throw new Error("not connected");
    return this.client;
  }

  async connect(port: number): Promise<void> {
    const { client, greeting } = await RawFtp.connect(port);
    this.client = client;
    this.#record("(connect)", greeting);
  }

  async cmd(line: string): Promise<string[]> {
    const reply = await this.ftp.send(line);
    this.#record(line, reply);
    return reply;
  }

  async raw(shown: string, bytes: Buffer): Promise<void> {
    this.#record(shown, await this.ftp.sendRaw(bytes));
  }

  async retr(line: string, mode: DataMode = "pasv"): Promise<void> {
    const result = await this.ftp.retrieve(line, mode);
    const listing = /^(LIST|NLST|MLSD)/.test(line);
    const data = listing
      ? result.data
          .toString("utf8")
          .split("\r\n")
          .filter((l) => l !== "")
      : result.data.length > 0
        ? [`(${result.data.length} bytes: ${JSON.stringify(result.data.subarray(0, 40).toString("latin1"))})`]
        : [];
    this.#record(`${line} [${mode}]`, [...result.first, ...data, ...result.final]);
  }

  async stor(line: string, body: string, mode: DataMode = "pasv"): Promise<void> {
    const result = await this.ftp.store(line, Buffer.from(body, "latin1"), mode);
    this.#record(`${line} [${mode}, ${body.length} bytes]`, [...result.first, ...result.final]);
  }

  /** ABOR during RETR of `name`, sent by abort.py the way `mode` says (see there); no connection of ours. */
  abort(port: number, site: FtpSite, name: string, mode: "telnet" | "ftplib" | "plain"): void {
    const run = spawnSync("python3", [ABORT_PY, String(port), site.user, site.password, name, mode], {
      encoding: "utf8",
      timeout: 60_000,
    });
    let received: string[];
    try {
      const out = JSON.parse(run.stdout) as { retr?: string[]; abor?: string[][]; noop?: string[]; error?: string };
      received = [
        ...(out.retr ?? []),
        ...(out.abor ?? []).flat(),
        ...(out.noop ?? []).map((line) => `(then NOOP) ${line}`),
        ...(out.error === undefined ? [] : [`(error: ${out.error})`]),
      ];
    } catch {
      received = [`(abort.py failed: ${run.error?.message ?? run.stderr.trim()})`];
    }
    this.#record(`RETR ${name}, then ABOR (${mode})`, received);
  }

  async tls(): Promise<void> {
    this.#record("AUTH TLS", await this.ftp.startTls());
  }

  async protect(): Promise<void> {
    const [pbsz, prot] = await this.ftp.protect();
    this.#record("PBSZ 0", pbsz);
    this.#record("PROT P", prot);
  }

  note(sent: string, error: unknown): void {
    this.#record(sent, [`(error: ${error instanceof Error ? error.message : String(error)})`]);
  }
}

/** The tree both servers serve: files, a subdirectory, a big sparse file, a symlink out of the home. */
export function populate(site: FtpSite): void {
  const { home } = site;
  writeFileSync(path.join(home, "hello.txt"), "hello\n");
  writeFileSync(path.join(home, "crlf.txt"), "one\r\ntwo\nthree\r\n");
  mkdirSync(path.join(home, "sub"));
  writeFileSync(path.join(home, "sub", "inner.txt"), "inner\n");
  writeFileSync(path.join(home, "big.bin"), "");
  truncateSync(path.join(home, "big.bin"), BIG_FILE_BYTES);
  symlinkSync(site.outside, path.join(home, "link-out"));
  for (const name of ["hello.txt", "crlf.txt", "sub", "sub/inner.txt", "big.bin"])
    chownSync(path.join(home, name), site.uid, site.gid);
}

type Session = (t: Transcript, port: number, site: FtpSite) => Promise<void>;

const login = async (t: Transcript, site: FtpSite): Promise<void> => {
  await t.cmd(`USER ${site.user}`);
  await t.cmd(`PASS ${site.password}`);
};

/** The sessions, by name; each starts with a fresh connection. */
const SESSIONS: ReadonlyArray<readonly [string, Session]> = [
  [
    "login",
    async (t, port, site) => {
      await t.connect(port);
      for (const line of [
        "PWD",
        "FEAT",
        "SYST",
        "NOOP",
        "PASS x",
        `USER ${site.user}`,
        "PASS wrong",
        `USER ${site.user}`,
        `PASS ${site.password}`,
        "USER bob",
        "QUIT",
      ])
        await t.cmd(line);
    },
  ],
  [
    "settings",
    async (t, port, site) => {
      await t.connect(port);
      await login(t, site);
      for (const line of [
        "PWD",
        "XPWD",
        "SYST",
        "NOOP",
        "TYPE A",
        "TYPE A N",
        "TYPE L 8",
        "TYPE I",
        "TYPE X",
        "TYPE",
        "MODE S",
        "MODE B",
        "MODE Z",
        "STRU F",
        "STRU R",
        "ALLO 1000",
        "FEAT",
        "OPTS UTF8 ON",
        "OPTS UTF8 OFF",
        "OPTS MLST type;size;modify;",
        "OPTS MLST",
        "OPTS FOO",
        "HELP",
        "HELP RETR",
        "ABOR",
        "FROB",
      ])
        await t.cmd(line);
    },
  ],
  [
    "directories and names",
    async (t, port, site) => {
      await t.connect(port);
      await login(t, site);
      for (const line of [
        "MKD newdir",
        "MKD newdir",
        "XMKD newdir2",
        "CWD newdir",
        "PWD",
        "CDUP",
        "PWD",
        "XCWD sub",
        "XPWD",
        "XCUP",
        "CWD nosuch",
        "CWD hello.txt",
        "CWD",
        "RMD newdir2",
        "XRMD newdir",
        "RMD nosuch",
        "RMD sub",
        "MKD",
        "RMD",
        "SIZE hello.txt",
        "SIZE sub",
        "SIZE nosuch",
        "SIZE",
        "MDTM hello.txt",
        "MDTM nosuch",
        "MDTM sub",
        "DELE nosuch",
        "DELE sub",
        "DELE",
        "RNTO x",
        "RNFR nosuch",
        "RNFR hello.txt",
        "RNTO renamed.txt",
        "RNFR renamed.txt",
        "RNTO hello.txt",
        "RNFR",
        "RNFR hello.txt",
        "NOOP",
        "RNTO hello.txt",
        "SITE CHMOD 600 hello.txt",
        "SITE CHMOD 644 hello.txt",
        "SITE CHMOD 999 hello.txt",
        "SITE CHMOD 644 nosuch",
        "SITE CHMOD 644",
        "SITE CHMOD",
        "SITE HELP",
        "SITE FROB",
        "STAT",
        "STAT hello.txt",
        "STAT sub",
        "STAT nosuch",
        "MLST hello.txt",
        "MLST sub",
        "MLST",
        "MLST nosuch",
        "OPTS MLST type;size;",
        "MLST hello.txt",
      ])
        await t.cmd(line);
    },
  ],
  [
    "data connections",
    async (t, port, site) => {
      await t.connect(port);
      await login(t, site);
      await t.cmd("TYPE I");
      for (const line of [
        "EPSV 1",
        "EPSV 2",
        "EPSV 3",
        "EPSV x",
        "PORT 10,0,0,1,7,208",
        "PORT 1,2,3",
        "PORT 127,0,0,1,0,20",
        "EPRT |1|10.0.0.1|2000|",
        "EPRT |2|::1|2000|",
        "EPRT |3|x|1|",
        "EPRT junk",
      ]) {
        await t.cmd(line);
      }
      for (const mode of ["pasv", "epsv", "port", "eprt"] as const) await t.retr("RETR hello.txt", mode);
      await t.retr("RETR nosuch");
      await t.retr("RETR sub");
      await t.retr("LIST");
      await t.retr("LIST -a");
      await t.retr("LIST -l sub");
      await t.retr("LIST sub/inner.txt");
      await t.retr("LIST nosuch");
      await t.retr("NLST");
      await t.retr("NLST sub");
      await t.retr("NLST nosuch");
      await t.retr("MLSD");
      await t.retr("MLSD hello.txt");
      await t.retr("MLSD nosuch");
      await t.stor("STOR up.txt", "first\n");
      await t.stor("STOR up.txt", "second\n");
      await t.stor("APPE up.txt", "appended\n");
      await t.stor("APPE new-by-appe.txt", "new\n");
      await t.cmd("SIZE up.txt");
      await t.cmd("REST 3");
      await t.retr("RETR up.txt");
      await t.cmd("REST 6");
      await t.stor("STOR up.txt", "THIRD\n");
      await t.retr("RETR up.txt");
      await t.cmd("REST abc");
      await t.cmd("REST -1");
      await t.cmd("REST");
      await t.cmd("REST 0");
      await t.stor("STOU", "unique\n");
      await t.stor("STOU up.txt", "unique\n");
      await t.cmd("TYPE A");
      await t.retr("RETR crlf.txt");
      await t.cmd("SIZE crlf.txt");
      await t.stor("STOR lf.txt", "a\nb\r\nc\n");
      await t.cmd("TYPE I");
      await t.retr("RETR lf.txt");
      await t.stor("STOR sub", "x");
      await t.stor("STOR nosuch/x.txt", "x");
      await t.cmd("DELE up.txt");
      await t.cmd("DELE lf.txt");
      await t.cmd("DELE new-by-appe.txt");
      await t.cmd("ABOR");
    },
  ],
  [
    "abort",
    async (t, port, site) => {
      for (const mode of ["telnet", "ftplib", "plain"] as const) t.abort(port, site, "big.bin", mode);
    },
  ],
  [
    "jail",
    async (t, port, site) => {
      await t.connect(port);
      await login(t, site);
      await t.cmd("TYPE I");
      for (const line of [
        "CWD ..",
        "PWD",
        "CWD /",
        "PWD",
        "CWD ../..",
        "PWD",
        "CWD /etc",
        "CWD ../outside",
        "CWD link-out",
        "PWD",
        "CWD /",
        "SIZE ../outside/secret.txt",
        "SIZE ../../outside/secret.txt",
        "SIZE /etc/passwd",
        "SIZE link-out/secret.txt",
        "MDTM link-out/secret.txt",
        "DELE link-out/secret.txt",
        "MKD link-out/x",
        "MKD ../x",
        "RMD link-out",
        "RNFR hello.txt",
        "RNTO ../../outside/moved.txt",
        "RNFR hello.txt",
        "RNTO link-out/moved.txt",
        "SITE CHMOD 777 link-out/secret.txt",
        "STAT link-out",
        "MLST link-out",
        `SIZE ${"a".repeat(300)}`,
        `MKD ${"b".repeat(300)}`,
        `SIZE ${"c/".repeat(200)}x`,
      ])
        await t.cmd(line);
      await t.retr("RETR ../outside/secret.txt");
      await t.retr("RETR /etc/passwd");
      await t.retr("RETR link-out/secret.txt");
      await t.retr("LIST link-out");
      await t.retr("LIST ../..");
      await t.retr("NLST /etc");
      await t.stor("STOR link-out/new.txt", "x");
      await t.stor("STOR ../escaped.txt", "x");
      await t.stor(`STOR ${"d".repeat(300)}`, "x");
      await t.raw("SIZE hello.txt\\0x", Buffer.from("SIZE hello.txt\0x\r\n", "latin1"));
      await t.raw("DELE hello\\0.txt", Buffer.from("DELE hello\0.txt\r\n", "latin1"));
    },
  ],
];

const TLS_SESSIONS: ReadonlyArray<readonly [string, Session]> = [
  [
    "ftps",
    async (t, port, site) => {
      await t.connect(port);
      for (const line of ["PBSZ 0", "PROT P", "CCC", "AUTH", "AUTH FOO"]) await t.cmd(line);
      await t.tls();
      await t.cmd("AUTH TLS");
      await login(t, site);
      for (const line of ["FEAT", "PROT P", "PBSZ 1", "PROT X", "PROT S", "PROT E", "PROT C"]) await t.cmd(line);
      await t.retr("RETR hello.txt");
      await t.protect();
      await t.retr("RETR hello.txt");
      await t.retr("LIST sub");
      await t.stor("STOR tls.txt", "over tls\n");
      await t.cmd("DELE tls.txt");
      // After its 200 the control connection is plain again; this client cannot unwrap TLS, so CCC ends the session.
      await t.cmd("CCC");
    },
  ],
];

async function runSessions(
  port: number,
  site: FtpSite,
  sessions: ReadonlyArray<readonly [string, Session]>,
): Promise<Map<string, Exchange[]>> {
  const out = new Map<string, Exchange[]>();
  for (const [name, session] of sessions) {
    const t = new Transcript();
    try {
      await session(t, port, site);
    } catch (error) {
      t.note("(session ended)", error);
    }
    t.client?.close();
    out.set(name, t.exchanges);
  }
  return out;
}

export interface Difference {
  readonly session: string;
  readonly sent: string;
  readonly proftpd: readonly string[];
  readonly dsod: readonly string[];
}

/** Runs every session on both servers; returns all exchanges side by side. */
export async function compareReplies(): Promise<{ all: Difference[]; differences: Difference[]; tls: boolean }> {
  const tls = proftpdTlsAvailable();
  const sessions = tls ? [...SESSIONS, ...TLS_SESSIONS] : SESSIONS;
  const proftpdSite = makeSite({ prefix: "compare-proftpd-" });
  const dsodSite = makeSite({ prefix: "compare-dsod-" });
  populate(proftpdSite);
  populate(dsodSite);
  const proftpd = await startProftpd({ site: proftpdSite, serverName: SERVER_NAME, ...(tls ? { tls: TLS } : {}) });
  const dsod = await startSiteDsod({ site: dsodSite, serverName: SERVER_NAME, tls: TLS, extra: ["AllowOverwrite on"] });
  try {
    const reference = await runSessions(proftpd.port, proftpdSite, sessions);
    const ours = await runSessions(dsod.port, dsodSite, sessions);
    const all: Difference[] = [];
    for (const [session, exchanges] of reference) {
      const mine = ours.get(session) ?? [];
      const count = Math.max(exchanges.length, mine.length);
      for (let i = 0; i < count; i++) {
        all.push({
          session,
          sent: exchanges[i]?.sent ?? mine[i]?.sent ?? "?",
          proftpd: exchanges[i]?.received ?? ["(nothing)"],
          dsod: mine[i]?.received ?? ["(nothing)"],
        });
      }
    }
    const differences = all.filter((d) => d.proftpd.join("\n") !== d.dsod.join("\n"));
    return { all, differences, tls };
  } finally {
    await proftpd.stop();
    await dsod.stop();
    for (const site of [proftpdSite, dsodSite]) rmSync(site.dir, { recursive: true, force: true });
  }
}

function print(d: Difference, same: boolean): void {
  const out = process.stdout;
  out.write(`[${d.session}] > ${d.sent.length > 120 ? `${d.sent.slice(0, 117)}...` : d.sent}\n`);
  if (same) {
    for (const line of d.proftpd) out.write(`    ${line}\n`);
    return;
  }
  for (const line of d.proftpd) out.write(`  proftpd: ${line}\n`);
  for (const line of d.dsod) out.write(`  dsod:    ${line}\n`);
}

async function main(): Promise<number> {
  if (!proftpdInstalled()) {
    process.stdout.write("compare: proftpd is not installed (/usr/sbin/proftpd); nothing to compare with\n");
    return 2;
  }
  const showAll = process.argv.includes("--all");
  const { all, differences, tls } = await compareReplies();
  for (const d of showAll ? all : differences) print(d, !differences.includes(d));
  if (!tls)
    process.stdout.write("compare: proftpd has no mod_tls here (Debian's proftpd-mod-crypto); FTPS not compared\n");
  process.stdout.write(`compare: ${all.length - differences.length} exchanges agree, ${differences.length} differ\n`);
  return differences.length === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = await main();
}
