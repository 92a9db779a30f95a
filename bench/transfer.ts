/**
 * Transfer benchmark: the built dsod serving files over loopback, side by
 * side with the machine's proftpd (Debian's 1.3.8, bench/proftpd/) on the
 * same kind of site and the same client, rounds interleaved so both see the
 * same machine load:
 *
 * - RETR and STOR of a 1 GB file, MB/s (curl, to and from /dev/null or a
 *   sparse file: the disk is not what is measured). The time is curl's
 *   time_total - time_pretransfer: the transfer, without connect and login.
 *   The sites are on /dev/shm when it has room, so that a STOR writes to
 *   memory: on a disk the same upload ran at 300 MB/s or 1.4 GB/s depending
 *   on whether the kernel still had dirty pages of the previous one to
 *   throw away, whichever server sent it;
 * - 50 parallel downloads of a 20 MB file (one curl, --parallel), MB/s over
 *   all of them, wall time from the first connect to the last byte;
 * - LIST of a 10,000-entry directory, ms from LIST sent to `226` read
 *   (bench/proftpd/raw-ftp.ts, logged in beforehand);
 * - dsod's RSS during the parallel downloads (the peak of /proc/PID/status
 *   VmRSS, sampled every 20 ms), MB.
 *
 * Targets (issue #10): transfers >= 0.8x proftpd's MB/s, LIST <= 2x
 * proftpd's time, RSS during 50 parallel transfers <= 200 MB. Without
 * proftpd the dsod rows stand alone and say so.
 *
 * BENCH_TRANSFER_QUICK=1 shrinks everything (64 MB file, 50 x 1 MB, 1,000
 * entries, one round) for a smoke run of a few seconds.
 */
import { execFile } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startSiteDsod } from "./proftpd/dsod.js";
import { proftpdInstalled, PROFTPD, startProftpd } from "./proftpd/proftpd.js";
import { RawFtp } from "./proftpd/raw-ftp.js";
import { makeSite } from "./proftpd/site.js";
import type { FtpSite } from "./proftpd/site.js";
import { isMain, printRows, withTarget } from "./load.js";
import { elapsedNs, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const MB = 1024 * 1024;
const QUICK = process.env.BENCH_TRANSFER_QUICK === "1";
const BIG_BYTES = QUICK ? 64 * MB : 1024 * MB;
const PARALLEL = 50;
const PARALLEL_BYTES = QUICK ? 1 * MB : 20 * MB;
/** Memory-backed: where the sites go when it has room (siteBase). */
const SHM = "/dev/shm";
const LIST_ENTRIES = QUICK ? 1_000 : 10_000;
const ROUNDS = QUICK ? 1 : 3;
const LIST_ROUNDS = QUICK ? 3 : 7;
const RSS_SAMPLE_MS = 20;

const TRANSFER_TARGET = 0.8;
const LIST_TARGET = 2;
const RSS_TARGET_MB = 200;

interface Server {
  readonly name: "dsod" | "proftpd";
  readonly port: number;
  readonly pid: number;
  readonly site: FtpSite;
  stop(): Promise<void>;
}

/** A sparse file of `bytes`: reading it costs no disk, the same for both servers. */
function sparse(file: string, bytes: number): void {
  closeSync(openSync(file, "w"));
  truncateSync(file, bytes);
}

function prepare(site: FtpSite): void {
  sparse(path.join(site.home, "big.bin"), BIG_BYTES);
  sparse(path.join(site.home, "medium.bin"), PARALLEL_BYTES);
  sparse(path.join(site.dir, "upload.bin"), BIG_BYTES);
  const dir = path.join(site.home, "many");
  mkdirSync(dir);
  for (let i = 0; i < LIST_ENTRIES; i++) writeFileSync(path.join(dir, `entry-${String(i).padStart(5, "0")}.txt`), "");
}

function curl(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["-sS", ...args], { encoding: "utf8", maxBuffer: 16 * MB }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`curl ${args.join(" ")} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

function url(server: Server, file: string): string {
  return `ftp://${server.site.user}:${server.site.password}@127.0.0.1:${server.port}/${file}`;
}

/** MB/s of one transfer from curl's -w figures: bytes over (total - pretransfer). */
function rate(writeOut: string): number {
  const [bytes, total, pretransfer] = writeOut.trim().split(" ").map(Number) as [number, number, number];
  return bytes / MB / (total - pretransfer);
}

async function retr(server: Server): Promise<number> {
  return rate(
    await curl(["-o", "/dev/null", "-w", "%{size_download} %{time_total} %{time_pretransfer}", url(server, "big.bin")]),
  );
}

async function stor(server: Server): Promise<number> {
  const mbs = rate(
    await curl([
      "-T",
      path.join(server.site.dir, "upload.bin"),
      "-w",
      "%{size_upload} %{time_total} %{time_pretransfer}",
      url(server, "uploaded.bin"),
    ]),
  );
  rmSync(path.join(server.site.home, "uploaded.bin"));
  return mbs;
}

/** The highest VmRSS (MB) of `pid` while `work` runs. */
async function peakRss(pid: number, work: () => Promise<void>): Promise<number> {
  let peak = 0;
  const sample = (): void => {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    if (match !== null) peak = Math.max(peak, Number(match[1]) / 1024);
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_MS);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  sample();
  return peak;
}

/** PARALLEL downloads at once from one curl; MB/s over the whole batch, and dsod's peak RSS. */
async function parallel(server: Server): Promise<{ mbs: number; rssMb: number }> {
  const args = ["--parallel", "--parallel-immediate", "--parallel-max", String(PARALLEL)];
  for (let i = 0; i < PARALLEL; i++) args.push("-o", "/dev/null", url(server, "medium.bin"));
  let seconds = 0;
  const rssMb = await peakRss(server.pid, async () => {
    const start = process.hrtime.bigint();
    await curl(args);
    seconds = elapsedNs(start) / 1e9;
  });
  return { mbs: (PARALLEL * PARALLEL_BYTES) / MB / seconds, rssMb };
}

/** ms of each LIST of the big directory on one logged-in session. */
async function list(server: Server, rounds: number): Promise<number[]> {
  const { client } = await RawFtp.connect(server.port);
  try {
    await client.login(server.site.user, server.site.password);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const start = process.hrtime.bigint();
      const result = await client.retrieve("LIST many");
      times.push(elapsedNs(start) / 1e6);
      const lines = result.data.toString("latin1").split("\r\n").length - 1;
      if (result.final[0] !== "226 Transfer complete" || lines !== LIST_ENTRIES)
        throw new Error(`bench: ${server.name} LIST gave ${lines} lines, ${result.final.join(" / ")}`);
    }
    return times;
  } finally {
    client.close();
  }
}

/** tmpfs for the sites when it can hold a STOR's file and its margin (the RETR file is sparse), else the temp dir. */
function siteBase(log: (line: string) => void): string | undefined {
  try {
    const { bavail, bsize } = statfsSync(SHM);
    if (bavail * bsize >= 2 * BIG_BYTES) return SHM;
    log(`bench: transfer: ${SHM} has too little room for a ${BIG_BYTES / MB} MB upload; the sites are on disk`);
  } catch {
    log(`bench: transfer: no ${SHM}; the sites are on disk`);
  }
  return undefined;
}

async function startServers(log: (line: string) => void): Promise<Server[]> {
  const servers: Server[] = [];
  const base = siteBase(log);
  const dsodSite = makeSite({ prefix: "bench-dsod-", ...(base !== undefined && { base }) });
  prepare(dsodSite);
  const dsod = await startSiteDsod({ site: dsodSite, extra: ["AllowOverwrite on"] });
  servers.push({ name: "dsod", port: dsod.port, pid: dsod.pid, site: dsodSite, stop: () => dsod.stop() });
  if (proftpdInstalled()) {
    const site = makeSite({ prefix: "bench-proftpd-", ...(base !== undefined && { base }) });
    prepare(site);
    const proftpd = await startProftpd({ site });
    servers.push({ name: "proftpd", port: proftpd.port, pid: proftpd.pid, site, stop: () => proftpd.stop() });
  } else {
    log(`bench: transfer: proftpd is not installed (${PROFTPD}); dsod's rows stand alone`);
  }
  return servers;
}

export async function runTransfer(log: (line: string) => void): Promise<Row[]> {
  const servers = await startServers(log);
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number): void => void samples.set(key, [...(samples.get(key) ?? []), value]);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate who goes first, so neither always runs on a machine the other just warmed or loaded.
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        add(`${server.name} retr`, await retr(server));
        add(`${server.name} stor`, await stor(server));
        const { mbs, rssMb } = await parallel(server);
        add(`${server.name} parallel`, mbs);
        if (server.name === "dsod") add("dsod rss", rssMb);
      }
      log(`bench: transfer round ${round + 1}/${ROUNDS} done`);
    }
    for (const server of servers) {
      for (const ms of await list(server, LIST_ROUNDS)) add(`${server.name} list`, ms);
    }
  } finally {
    for (const server of servers) await server.stop();
    for (const server of servers) rmSync(server.site.dir, { recursive: true, force: true });
  }
  return rowsOf(samples, servers.length > 1);
}

function rowsOf(samples: Map<string, number[]>, compared: boolean): Row[] {
  const size = QUICK ? `${BIG_BYTES / MB} MB (quick)` : "1 GB";
  const of = (key: string): number[] => samples.get(key) ?? [];
  const alone = compared ? undefined : "proftpd not installed: no comparison";
  const rows: Row[] = [];
  const pair = (
    key: string,
    name: string,
    unit: string,
    target: { text: string; met: (ratio: number) => boolean },
  ): void => {
    if (compared) {
      const anchor = rowOf({ group: "transfer", name: `proftpd ${name}`, unit }, of(`proftpd ${key}`));
      const row = rowOf({ group: "transfer", name: `dsod ${name}`, unit }, of(`dsod ${key}`), anchor);
      rows.push(anchor, withTarget(row, target.text, target.met(row.ratio)));
    } else {
      rows.push(
        rowOf(
          { group: "transfer", name: `dsod ${name}`, unit, ...(alone === undefined ? {} : { note: alone }) },
          of(`dsod ${key}`),
        ),
      );
    }
  };
  const faster = { text: `>= ${TRANSFER_TARGET}x proftpd`, met: (ratio: number) => ratio >= TRANSFER_TARGET };
  pair("retr", `RETR ${size} over loopback (curl)`, "MB/s", faster);
  pair("stor", `STOR ${size} over loopback (curl)`, "MB/s", faster);
  pair(
    "parallel",
    `${PARALLEL} parallel RETR of ${PARALLEL_BYTES / MB} MB (curl --parallel), all together`,
    "MB/s",
    faster,
  );
  pair("list", `LIST of a ${LIST_ENTRIES.toLocaleString("en")}-entry directory`, "ms", {
    text: `<= ${LIST_TARGET}x proftpd`,
    met: (ratio: number) => ratio <= LIST_TARGET,
  });
  const rss = rowOf(
    { group: "transfer", name: `dsod RSS during ${PARALLEL} parallel RETR (peak)`, unit: "MB" },
    of("dsod rss"),
  );
  rows.push(withTarget(rss, `<= ${RSS_TARGET_MB} MB`, rss.figure <= RSS_TARGET_MB));
  return rows;
}

// `node dist/bench/transfer.js`: run alone.
if (isMain(import.meta.url)) {
  printRows(await runTransfer((line) => process.stderr.write(`${line}\n`)));
}
