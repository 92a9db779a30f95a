/**
 * Login benchmark (issue #15, "logins stall everyone"):
 *
 * 1. One password check of an ftpasswd-default SHA-512-crypt hash (`$6$`,
 *    5000 rounds): its latency and the CPU it costs the process (every
 *    thread, from process.cpuUsage), for the JavaScript crypt(3) on the main
 *    thread (how dsod checked before, the anchor), the crypt addon (the
 *    system's crypt_r on the addon's own threads) and the worker-thread fallback.
 *    Interleaved round by round.
 *    The anchor of the hash itself is crypt(3) in C (the same crypt_r called
 *    in a loop by a program compiled here with cc -O2 -lcrypt), when cc is there.
 * 2. dsod's CPU per login (from /proc, over a window of a client logging in
 *    over and over, alone), with the addon and without, against proftpd's
 *    (its master and the session processes it has reaped) when it is installed.
 * 3. The NOOP throughput of 8 logged-in sessions of the built dsod, alone and
 *    while a ninth client logs in over and over (connect, USER, PASS, QUIT),
 *    with the addon and with WASM_DSO_DISABLE_ADDONS=crypt; paired windows,
 *    the ratio is with-logins over alone (target >= 0.9).
 *
 * `node dist/bench/login.js`: run alone.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { crypt, verifyCrypt } from "../host/auth/crypt.js";
import { PasswordChecker } from "../host/auth/password-check.js";
import { DISABLE_ADDONS_ENV } from "../host/system/package.js";
import { startSiteDsod } from "./proftpd/dsod.js";
import { proftpdInstalled, startProftpd } from "./proftpd/proftpd.js";
import { RawFtp } from "./proftpd/raw-ftp.js";
import { makeSite } from "./proftpd/site.js";
import { isMain, printRows } from "./load.js";
import { elapsedNs, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const ROUNDS = 7;
const CHECKS_PER_ROUND = 20;
const SESSIONS = 8;
const WINDOW_MS = 1_500;
const WINDOWS = 4;

/** CPU ms per crypt_r call in C, one sample per round; undefined without cc or libcrypt's development files. */
function cCryptSamples(setting: string, log: (line: string) => void): number[] | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-crypt-"));
  try {
    const source = path.join(dir, "crypt.c");
    const binary = path.join(dir, "crypt");
    writeFileSync(
      source,
      `#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
int main(void) {
  static struct crypt_data data;
  for (int r = 0; r < ${ROUNDS + 1}; r++) {
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int i = 0; i < ${CHECKS_PER_ROUND}; i++) {
      memset(&data, 0, sizeof data);
      if (crypt_r("bench", "${setting}", &data) == NULL) return 1;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    if (r > 0) printf("%f\\n", ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6) / ${CHECKS_PER_ROUND});
  }
  return 0;
}
`,
    );
    execFileSync("cc", ["-O2", "-o", binary, source, "-lcrypt"], { stdio: ["ignore", "ignore", "pipe"] });
    return execFileSync(binary, { encoding: "utf8" }).trim().split("\n").map(Number);
  } catch (error) {
    log(`bench: no crypt(3) anchor in C (${(error as Error).message.split("\n")[0]})`);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A checker with the addon, or (`disabled`) the worker fallback, chosen as dsod chooses. */
function checkerWith(disabled: boolean): PasswordChecker {
  const saved = process.env[DISABLE_ADDONS_ENV];
  if (disabled) process.env[DISABLE_ADDONS_ENV] = "crypt";
  else Reflect.deleteProperty(process.env, DISABLE_ADDONS_ENV);
  try {
    return PasswordChecker.select();
  } finally {
    if (saved === undefined) Reflect.deleteProperty(process.env, DISABLE_ADDONS_ENV);
    else process.env[DISABLE_ADDONS_ENV] = saved;
  }
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** ms per check and CPU ms per check over one round of sequential checks. */
async function round(check: () => boolean | Promise<boolean>): Promise<{ ms: number; cpu: number }> {
  const cpu = cpuMs();
  const start = process.hrtime.bigint();
  for (let i = 0; i < CHECKS_PER_ROUND; i++) {
    if (!(await check())) throw new Error("bench: the password check failed");
  }
  return { ms: elapsedNs(start) / 1e6 / CHECKS_PER_ROUND, cpu: (cpuMs() - cpu) / CHECKS_PER_ROUND };
}

async function checkRows(log: (line: string) => void): Promise<Row[]> {
  const hash = crypt("bench", "$6$saltsaltsaltsalt") ?? "";
  const native = checkerWith(false);
  const workers = checkerWith(true);
  if (native.mode.kind !== "native") throw new Error(`bench: the crypt addon is not built (${native.notice() ?? ""})`);
  await workers.ready();
  const kinds = [
    { name: "JavaScript on the main thread (before)", check: () => verifyCrypt("bench", hash) },
    { name: "crypt addon (crypt_r, dso-crypt threads)", check: () => native.verify("bench", hash) },
    {
      name: `JavaScript in worker threads (${workers.mode.kind === "workers" ? workers.mode.size : 0})`,
      check: () => workers.verify("bench", hash),
    },
  ];
  const ms = kinds.map(() => [] as number[]);
  const cpu = kinds.map(() => [] as number[]);
  // One warm-up round each (JIT, worker start), not counted.
  for (const kind of kinds) await round(kind.check);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, kind] of kinds.entries()) {
      const sample = await round(kind.check);
      ms[i]?.push(sample.ms);
      cpu[i]?.push(sample.cpu);
    }
    log(`bench: login checks round ${r + 1}/${ROUNDS}`);
  }
  await workers.close();
  const rows: Row[] = [];
  const c = cCryptSamples("$6$saltsaltsaltsalt", log);
  if (c !== undefined) {
    const unit = "CPU ms/check";
    const anchor = rowOf({ group: "login", name: "$6$ crypt_r(3) in C, CPU (the glibc/libxcrypt anchor)", unit }, c);
    rows.push(anchor);
    rows.push(rowOf({ group: "login", name: "$6$ crypt addon CPU against crypt_r in C", unit }, cpu[1] ?? [], anchor));
  }
  for (const [what, samples, unit] of [
    ["latency", ms, "ms/check"],
    ["CPU", cpu, "CPU ms/check"],
  ] as const) {
    let anchor: { name: string; figure: number } | undefined;
    for (const [i, kind] of kinds.entries()) {
      const name = `$6$ password check ${what}: ${kind.name}`;
      const row = rowOf({ group: "login", name, unit }, samples[i] ?? [], anchor);
      anchor ??= { name: row.name, figure: row.figure };
      rows.push(row);
    }
  }
  return rows;
}

/** The process's CPU time in ms, from /proc (user + system ticks at 100 Hz, with its reaped children's). */
export function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10;
}

/** CPU ms per login of the server `pid`, one sample per window of a client logging in over and over. */
async function cpuPerLogin(pid: number, port: number, user: string, password: string): Promise<number[]> {
  const perLogin: number[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const before = processCpuMs(pid);
    const count = await loginLoop(port, user, password, windowEnd());
    perLogin.push((processCpuMs(pid) - before) / count);
  }
  return perLogin;
}

/**
 * proftpd's CPU per login, the anchor of dsod's, as a row of `group` whose
 * name starts with `prefix` (the login section's rows have none, the workers
 * section's `workers: `): each section that compares measures it again, under
 * a name of its own, so that a row's "vs" names the anchor its ratio was taken
 * against. Undefined without proftpd.
 */
export async function proftpdPerLogin(
  group: string,
  prefix: string,
): Promise<{ name: string; figure: number; row: Row } | undefined> {
  if (!proftpdInstalled()) return undefined;
  const site = makeSite({ prefix: "wasm-dso-bench-login-" });
  const proftpd = await startProftpd({ site });
  try {
    const row = rowOf(
      { group, name: `${prefix}proftpd 1.3.8 CPU per login, connect to QUIT (fork, crypt(3))`, unit: "CPU ms/login" },
      await cpuPerLogin(proftpd.pid, proftpd.port, site.user, site.password),
    );
    return { name: row.name, figure: row.figure, row };
  } finally {
    await proftpd.stop();
  }
}

/** NOOPs answered to `clients`, one at a time each, until `until` resolves. */
export async function noops(clients: readonly RawFtp[], until: Promise<void>): Promise<number> {
  let done = false;
  void until.then(() => (done = true));
  const counts = await Promise.all(
    clients.map(async (client) => {
      let count = 0;
      while (!done) {
        await client.send("NOOP");
        count++;
      }
      return count;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * Logs in over and over until `until` resolves; the number of logins. With
 * `perSecond`, each login starts 1 / perSecond seconds after the one before
 * it (or after the window's start) or later: a server that answers faster
 * gets no more logins than that, and one that answered late gets no burst.
 */
export async function loginLoop(
  port: number,
  user: string,
  password: string,
  until: Promise<void>,
  perSecond?: number,
): Promise<number> {
  let done = false;
  void until.then(() => (done = true));
  let logins = 0;
  let slot = performance.now();
  while (!done) {
    if (perSecond !== undefined) {
      slot += 1000 / perSecond;
      const wait = slot - performance.now();
      if (wait > 0) await Promise.race([new Promise((resolve) => setTimeout(resolve, wait)), until]);
      if (done) break;
      slot = Math.max(slot, performance.now());
    }
    const { client } = await RawFtp.connect(port);
    await client.login(user, password);
    logins++;
    await client.send("QUIT");
    client.close();
  }
  return logins;
}

export function windowEnd(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
}

async function sessionRows(log: (line: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const proftpd = await proftpdPerLogin("login", "");
  if (proftpd !== undefined) rows.push(proftpd.row);
  for (const disabled of [false, true]) {
    const label = disabled ? "worker threads" : "crypt addon";
    const site = makeSite({ prefix: "wasm-dso-bench-login-" });
    const saved = process.env[DISABLE_ADDONS_ENV];
    if (disabled) process.env[DISABLE_ADDONS_ENV] = "crypt";
    const dsod = await startSiteDsod({ site }).finally(() => {
      if (saved === undefined) Reflect.deleteProperty(process.env, DISABLE_ADDONS_ENV);
      else process.env[DISABLE_ADDONS_ENV] = saved;
    });
    try {
      const clients: RawFtp[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        const { client } = await RawFtp.connect(dsod.port);
        await client.login(site.user, site.password);
        clients.push(client);
      }
      const perLogin = await cpuPerLogin(dsod.pid, dsod.port, site.user, site.password);
      const name = `dsod CPU per login, connect to QUIT (${label})`;
      rows.push(
        rowOf({ group: "login", name, unit: "CPU ms/login", note: "target <= 1.0x proftpd" }, perLogin, proftpd),
      );
      const alone: number[] = [];
      const loaded: number[] = [];
      const ratios: number[] = [];
      const logins: number[] = [];
      for (let w = 0; w < WINDOWS; w++) {
        const quiet = (await noops(clients, windowEnd())) / (WINDOW_MS / 1000);
        const end = windowEnd();
        const [busy, count] = await Promise.all([
          noops(clients, end),
          loginLoop(dsod.port, site.user, site.password, end),
        ]);
        alone.push(quiet);
        loaded.push(busy / (WINDOW_MS / 1000));
        ratios.push(busy / (WINDOW_MS / 1000) / quiet);
        logins.push(count / (WINDOW_MS / 1000));
        log(`bench: ${label}: window ${w + 1}/${WINDOWS}`);
      }
      for (const client of clients) client.close();
      const anchor = rowOf(
        { group: "login", name: `${SESSIONS} sessions' NOOPs, no logins (${label})`, unit: "NOOP/s" },
        alone,
      );
      rows.push(anchor);
      rows.push(
        rowOf(
          {
            group: "login",
            name: `${SESSIONS} sessions' NOOPs while a client logs in repeatedly (${label})`,
            unit: "NOOP/s",
            note:
              `paired ratio ${rowOf({ group: "", name: "", unit: "" }, ratios).figure.toFixed(2)}x, ` +
              `${rowOf({ group: "", name: "", unit: "" }, logins).figure.toFixed(0)} logins/s, target >= 0.9x`,
          },
          loaded,
          { name: anchor.name, figure: anchor.figure },
        ),
      );
    } finally {
      await dsod.stop();
    }
  }
  return rows;
}

export async function runLogin(log: (line: string) => void): Promise<Row[]> {
  return [...(await checkRows(log)), ...(await sessionRows(log))];
}

if (isMain(import.meta.url)) {
  printRows(await runLogin((line) => process.stderr.write(`${line}\n`)));
}
