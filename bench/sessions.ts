/**
 * Sessions benchmark (issue #14, "Costs that keep this practical"): what a
 * session's own module instances cost, with the example config's modules
 * (examples/dsod.conf, rewritten into a temp dir: the bench's site and user,
 * port 0, its own controls socket and xferlog), side by side for each
 * `ModuleInstances` mode (snapshot, replay, shared: one instance for all
 * sessions, as before issue #14), one dsod per mode.
 *
 * 1. Server CPU per session start: one client at a time, connect to the
 *    server's close after QUIT, with a login (USER/PASS, a `$6$` hash checked
 *    by the crypt addon) and without one (SYST, which mod_override.c
 *    answers, reached before login: the instance cost without the password
 *    check). The CPU is dsod's, every thread's (the main thread, libuv's
 *    pool that checks the password, V8's GC threads), from
 *    /proc/<pid>/task/<tid>/schedstat in ns, read between sessions, so
 *    deferred work (a GC, a dropped instance's cleanup) is counted in the
 *    session it lands in: it shows in p90 and in the mean, given in the note.
 *    A third script logs in and reaches every example module (below): what
 *    a session that uses them all pays for its instances. Rounds interleave
 *    the modes; the row is the median over rounds of each round's p50, its
 *    spread the rounds' min–max, and the note has the median of the
 *    per-round differences from shared (the machine's load moves whole
 *    rounds). proftpd's CPU per login (fork, crypt(3)) is the login
 *    section's row, not measured again.
 * 2. Memory per session: dsod's RSS with 1,000 logged-in sessions minus its
 *    RSS before them (after a few warm-up sessions), divided by the sessions;
 *    for sessions that only log in and NOOP and for sessions that reach every
 *    example module that has a handler (mod_sql_mysql.c has none: it only
 *    registers with mod_sql.c in module_init, so no session instantiates it).
 *    A fresh dsod for each figure, so no round reuses the heap another grew.
 * 3. The 1,000 sessions hold: once all are logged in, each sends a NOOP at
 *    once; the time until all have answered, and every error on the way
 *    (a refused connection, a reply other than the one expected).
 *
 * BENCH_SESSION_MODES=snapshot,shared measures only those modes; `default`
 * writes no ModuleInstances or ModuleMemoryTotal line (the build's defaults,
 * e.g. a build from before issue #14). The 1,000 sessions need 1,000
 * descriptors in this process and in dsod (which inherits the limit): with
 * a lower `ulimit -n` the memory rows are skipped and the log says so.
 *
 * `node --expose-gc dist/bench/sessions.js`: run alone.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DSOD_CLI } from "./proftpd/dsod.js";
import { RawFtp } from "./proftpd/raw-ftp.js";
import { makeSite } from "./proftpd/site.js";
import type { FtpSite } from "./proftpd/site.js";
import { isMain, LIBEXEC_DIR, printRows, withTarget } from "./load.js";
import { elapsedNs, median, percentile, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

/** examples/dsod.conf, from dist/bench/ or from the source tree's bench/. */
const EXAMPLE_CONFIG = fileURLToPath(
  new URL(import.meta.url.includes("/dist/") ? "../../examples/dsod.conf" : "../examples/dsod.conf", import.meta.url),
);

const GROUP = "sessions";
const ALL_MODES = ["snapshot", "replay", "shared"] as const;
/** A mode, or `default`: no ModuleInstances line at all. */
type Mode = (typeof ALL_MODES)[number] | "default";

const CPU_ROUNDS = 7;
const STARTS_PER_ROUND = 40;
const WARMUP_STARTS = 20;
const TARGET_START_CPU_MS = 1;

const SESSIONS = 1000;
const MEMORY_ROUNDS = 3;
/** Sessions opened at once while filling up to SESSIONS. */
const CONNECT_BATCH = 50;
const WARMUP_SESSIONS = 10;
/** Descriptors this process keeps for itself besides the sessions' sockets. */
const SPARE_DESCRIPTORS = 200;
const TARGET_KIB_PER_SESSION = 1024;

/** SYST, answered by mod_override.c (allowed before login). */
const MOD_OVERRIDE = ["SYST", "215 UNIX Type: L8 (answered by mod_override.c)"] as const;

/**
 * The commands that reach every example module with a handler, and how the
 * reply begins when it did (the module's own text, so a reply from another
 * module, or a refusal, counts as an error).
 */
const EVERY_MODULE: ReadonlyArray<readonly [command: string, reply: string]> = [
  ["TEST", "200 Hello from wasm-dso"], // mod_test.c (TestGreeting from the config)
  ["SITE CALC 2 3", "200 SITE CALC: 2 + 3 = 5"], // mod_calc.c, calling libmath
  ["SITE HELLO bench", "200 SITE HELLO: hello, bench"], // mod_site_hello.c
  ["COUNT", "200 COUNT "], // mod_counter.c, calling libcounter
  ["SITE SQL", "200 SITE SQL: "], // mod_sql.c
  MOD_OVERRIDE,
  ["SITE XFERSTATS", "200 "], // mod_xfer_stats.c
  ["STOR bench.exe", "553 bench.exe: Forbidden filename"], // mod_upload_filter.c, in PRE_CMD
];

function modes(log: (line: string) => void): Mode[] {
  const named = process.env.BENCH_SESSION_MODES?.split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  if (named === undefined || named.length === 0) return [...ALL_MODES];
  const known: readonly string[] = [...ALL_MODES, "default"];
  const unknown = named.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`BENCH_SESSION_MODES: no mode ${unknown.join(", ")} (${known.join(", ")})`);
  log(`sessions: modes ${named.join(", ")} only (BENCH_SESSION_MODES)`);
  return named as Mode[];
}

function modeLabel(mode: Mode): string {
  return mode === "default" ? "build default" : mode;
}

/**
 * dsod's config for one mode: examples/dsod.conf with the site's user and
 * home, port 0, the files it writes in `dir`, the libexec paths absolute,
 * and the session limits lifted for SESSIONS sessions. Pure.
 */
function sessionsConfig(example: string, site: FtpSite, dir: string, mode: Mode): string {
  const lines = example
    .replaceAll("%{env:DSOD_CONFIG_DIR}/../dist/libexec/", LIBEXEC_DIR)
    .split("\n")
    .map((line) => {
      if (/^Port\s/.test(line)) return "Port 0";
      if (/^AuthUserFile\s/.test(line)) return `AuthUserFile ${site.passwdFile}`;
      if (/^DefaultRoot\s/.test(line)) return "DefaultRoot ~";
      if (/^TransferLog\s/.test(line)) return `TransferLog ${path.join(dir, "xferlog")}`;
      // Several dsods run at once; none opens a data connection.
      if (/^PassivePorts\s/.test(line)) return "";
      return line;
    });
  // One process: this section reads the CPU and RSS of dsod's pid (bench/workers.ts measures workers).
  lines.push(`ControlsSocket ${path.join(dir, "dsod.sock")}`, `MaxInstances ${SESSIONS + 100}`, "SessionWorkers off");
  if (mode !== "default") lines.push(`ModuleInstances ${mode}`, "ModuleMemoryTotal 8G");
  return `${lines.join("\n")}\n`;
}

interface Server {
  readonly pid: number;
  readonly port: number;
  /** The end of dsod's stderr: why sessions were refused, or why it died. */
  readonly tail: () => string;
  readonly stop: () => Promise<void>;
}

const TAIL_CHARS = 2000;
let started = 0;

/** The built dsod on `mode`'s config, once it logs `listening on ... port N`; of its stderr, the tail is kept. */
async function startDsod(site: FtpSite, mode: Mode, example: string): Promise<Server> {
  const dir = path.join(site.dir, `dsod-${++started}-${mode}`);
  mkdirSync(dir);
  const config = path.join(dir, "dsod.conf");
  writeFileSync(config, sessionsConfig(example, site, dir, mode));
  // The example's ModuleControlsACLs name %{env:USER}, which a container's root may lack.
  const env = { ...process.env, USER: process.env.USER || os.userInfo().username };
  const child: ChildProcess = spawn(process.execPath, [DSOD_CLI, "-n", "-c", config], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-TAIL_CHARS)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (): void => {
      const match = /listening on \S+ port (\d+)/.exec(stderr);
      if (match === null) return;
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      resolve(Number(match[1]));
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`sessions: dsod (ModuleInstances ${mode}) exited with ${code} before listening:\n${stderr}`));
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
    child.once("error", reject);
  });
  const stop = (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  };
  return { pid: child.pid ?? 0, port, tail: () => stderr, stop };
}

/** CPU time in ns of every thread of `pid` (the first field of each thread's schedstat). */
function serverCpuNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // The thread ended between the listing and the read; its time is gone with it.
    }
  }
  return sum;
}

function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`sessions: no VmRSS for ${pid}`);
  return Number(match[1]);
}

/** The descriptor limit this process (and dsod, its child) runs with. */
function softDescriptorLimit(): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  return match === null || match[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(match[1]);
}

async function expect(client: RawFtp, command: string, start: string): Promise<void> {
  const reply = (await client.send(command)).join(" / ");
  if (!reply.startsWith(start)) throw new Error(`${command} answered '${reply}', expected '${start}...'`);
}

function message(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/** What a session does after the greeting: log in or not, then commands whose replies begin as given. */
interface Script {
  readonly label: string;
  readonly login: boolean;
  readonly commands: ReadonlyArray<readonly [command: string, reply: string]>;
}

/** Connects, reads the greeting and runs `script`; the session stays open. */
async function openSession(port: number, script: Script, site: FtpSite): Promise<RawFtp> {
  const { client, greeting } = await RawFtp.connect(port);
  try {
    if (!greeting[0]?.startsWith("220")) throw new Error(`greeting '${greeting.join(" / ")}'`);
    if (script.login) await client.login(site.user, site.password);
    for (const [command, reply] of script.commands) await expect(client, command, reply);
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}

/** One session start: `script`, then QUIT and the server's close. */
async function sessionStart(port: number, script: Script, site: FtpSite): Promise<void> {
  const client = await openSession(port, script, site);
  try {
    await expect(client, "QUIT", "221");
    await client.whenClosed();
  } finally {
    client.close();
  }
}

/** Server CPU ms of each of `count` session starts, one after another. */
async function startCpu(server: Server, script: Script, site: FtpSite, count: number): Promise<number[]> {
  const samples: number[] = [];
  let before = serverCpuNs(server.pid);
  for (let i = 0; i < count; i++) {
    await sessionStart(server.port, script, site);
    const after = serverCpuNs(server.pid);
    samples.push((after - before) / 1e6);
    before = after;
  }
  return samples;
}

const START_SCRIPTS: readonly Script[] = [
  { label: "no login, SYST (mod_override.c)", login: false, commands: [MOD_OVERRIDE] },
  { label: "USER/PASS (no guest module reached)", login: true, commands: [] },
  { label: "USER/PASS, every module", login: true, commands: EVERY_MODULE },
];

const HOLD_SCRIPTS: readonly Script[] = [
  { label: "NOOP only", login: true, commands: [["NOOP", "200"]] },
  { label: "every module", login: true, commands: EVERY_MODULE },
];

/** Indices of `chosen`, shared first when it is there: the anchor of the other modes' rows. */
function sharedFirst(chosen: readonly Mode[]): number[] {
  const indices = chosen.map((_, i) => i);
  const shared = chosen.indexOf("shared");
  return shared < 0 ? indices : [shared, ...indices.filter((i) => i !== shared)];
}

const mean = (samples: readonly number[]): number => samples.reduce((a, b) => a + b, 0) / samples.length;
const fixed = (value: number): string => value.toFixed(2);
/** `+0.12` or `-0.12`; what rounds to zero is `+0.00`. */
function signed(value: number): string {
  const text = fixed(value);
  if (text === "-0.00") return "+0.00";
  return text.startsWith("-") ? text : `+${text}`;
}

async function cpuRows(
  site: FtpSite,
  example: string,
  chosen: readonly Mode[],
  log: (line: string) => void,
): Promise<Row[]> {
  try {
    readFileSync(`/proc/${process.pid}/schedstat`, "utf8");
  } catch {
    log("sessions: no /proc/<pid>/schedstat (a kernel without CONFIG_SCHED_INFO): no CPU rows");
    return [];
  }
  const servers: Server[] = [];
  try {
    for (const mode of chosen) servers.push(await startDsod(site, mode, example));
    // rounds[script][mode]: one array of samples per round
    const rounds = START_SCRIPTS.map(() => servers.map(() => [] as number[][]));
    for (const server of servers)
      for (const script of START_SCRIPTS) await startCpu(server, script, site, WARMUP_STARTS);
    for (let round = 0; round < CPU_ROUNDS; round++) {
      // Rotate who goes first, so no mode always follows another's GC.
      for (let i = 0; i < servers.length; i++) {
        const s = (round + i) % servers.length;
        for (const [k, script] of START_SCRIPTS.entries())
          rounds[k]?.[s]?.push(await startCpu(servers[s] as Server, script, site, STARTS_PER_ROUND));
      }
      log(`sessions: CPU round ${round + 1}/${CPU_ROUNDS}`);
    }
    const rows: Row[] = [];
    for (const [k, script] of START_SCRIPTS.entries()) {
      let anchor: { row: Row; mode: Mode; p50: number[] } | undefined;
      for (const s of sharedFirst(chosen)) {
        const mode = chosen[s] as Mode;
        const perRound = rounds[k]?.[s] ?? [];
        const p50 = perRound.map((samples) => percentile(samples, 50));
        const p90 = perRound.map((samples) => percentile(samples, 90));
        // The rounds interleave the modes: a difference within a round leaves out what the machine did meanwhile.
        const paired =
          anchor === undefined
            ? ""
            : `${signed(median(p50.map((v, r) => v - (anchor?.p50[r] ?? 0))))} ms over ${modeLabel(anchor.mode)} ` +
              "(median of per-round differences); ";
        let row = rowOf(
          {
            group: GROUP,
            name: `sessions: server CPU per session start, ${script.label}, ${modeLabel(mode)}, p50`,
            unit: "CPU ms",
            note:
              `${paired}p90 ${fixed(median(p90))} (${fixed(Math.min(...p90))}–${fixed(Math.max(...p90))}), ` +
              `mean ${fixed(mean(perRound.flat()))}; connect to close after QUIT, every dsod thread (schedstat); ` +
              `per-round p50 of ${STARTS_PER_ROUND}` +
              (script.login ? "; proftpd: the login section's CPU per login (fork, crypt)" : ""),
          },
          p50,
          anchor === undefined ? undefined : { name: anchor.row.name, figure: anchor.row.figure },
        );
        anchor ??= { row, mode, p50 };
        if (!script.login && mode !== "shared")
          row = withTarget(row, `<= ${TARGET_START_CPU_MS} ms`, row.figure <= TARGET_START_CPU_MS);
        rows.push(row);
      }
    }
    return rows;
  } finally {
    for (const server of servers) await server.stop();
  }
}

interface Hold {
  readonly rssBeforeKiB: number;
  readonly rssAfterKiB: number;
  readonly held: number;
  readonly noopMs: number;
  readonly errors: readonly string[];
  /** The end of dsod's stderr when there were errors. */
  readonly dsodTail: string;
}

/** A fresh dsod: warm-up sessions, RSS, SESSIONS sessions held, RSS, a NOOP on every one at once. */
async function hold(site: FtpSite, example: string, mode: Mode, script: Script): Promise<Hold> {
  const server = await startDsod(site, mode, example);
  const clients: RawFtp[] = [];
  const errors: string[] = [];
  const everyModule = HOLD_SCRIPTS[HOLD_SCRIPTS.length - 1] as Script;
  try {
    for (let i = 0; i < WARMUP_SESSIONS; i++) await sessionStart(server.port, everyModule, site);
    const rssBeforeKiB = rssKiB(server.pid);
    for (let opened = 0; opened < SESSIONS; opened += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, SESSIONS - opened) }, () =>
        openSession(server.port, script, site),
      );
      for (const result of await Promise.allSettled(batch)) {
        if (result.status === "fulfilled") clients.push(result.value);
        else errors.push(message(result.reason));
      }
    }
    const rssAfterKiB = rssKiB(server.pid);
    const start = process.hrtime.bigint();
    const answers = await Promise.allSettled(clients.map((client) => expect(client, "NOOP", "200")));
    const noopMs = elapsedNs(start) / 1e6;
    for (const answer of answers) if (answer.status === "rejected") errors.push(message(answer.reason));
    const dsodTail = errors.length > 0 ? server.tail() : "";
    return { rssBeforeKiB, rssAfterKiB, held: clients.length, noopMs, errors, dsodTail };
  } finally {
    for (const client of clients) client.close();
    await server.stop();
  }
}

async function memoryRows(
  site: FtpSite,
  example: string,
  chosen: readonly Mode[],
  log: (line: string) => void,
): Promise<Row[]> {
  const limit = softDescriptorLimit();
  if (limit < SESSIONS + SPARE_DESCRIPTORS) {
    log(`sessions: ulimit -n is ${limit}: ${SESSIONS} sessions need ${SESSIONS + SPARE_DESCRIPTORS}; no memory rows`);
    return [];
  }
  // holds[script][mode]: one Hold per round
  const holds = HOLD_SCRIPTS.map(() => chosen.map(() => [] as Hold[]));
  for (let round = 0; round < MEMORY_ROUNDS; round++) {
    for (let i = 0; i < chosen.length; i++) {
      const s = (round + i) % chosen.length;
      const mode = chosen[s] as Mode;
      for (const [k, script] of HOLD_SCRIPTS.entries()) {
        const result = await hold(site, example, mode, script);
        holds[k]?.[s]?.push(result);
        if (result.errors.length > 0)
          log(
            `sessions: ${modeLabel(mode)}, ${script.label}: ${result.errors.length} errors: ${result.errors[0]}; ` +
              `dsod's log ends:\n${result.dsodTail}`,
          );
      }
    }
    log(`sessions: memory round ${round + 1}/${MEMORY_ROUNDS}`);
  }
  const rows: Row[] = [];
  const mib = (kib: number): string => (kib / 1024).toFixed(0);
  const anchorOf = (row: Row | undefined): { name: string; figure: number } | undefined =>
    row === undefined ? undefined : { name: row.name, figure: row.figure };
  for (const [k, script] of HOLD_SCRIPTS.entries()) {
    let perSessionAnchor: Row | undefined;
    let noopAnchor: Row | undefined;
    for (const s of sharedFirst(chosen)) {
      const mode = chosen[s] as Mode;
      const results = holds[k]?.[s] ?? [];
      const label = `${SESSIONS} sessions, ${script.label}, ${modeLabel(mode)}`;
      let perSession = rowOf(
        {
          group: GROUP,
          name: `sessions: dsod RSS per session, ${label}`,
          unit: "KiB",
          note:
            `RSS ${mib(median(results.map((r) => r.rssBeforeKiB)))} MiB before, ` +
            `${mib(median(results.map((r) => r.rssAfterKiB)))} MiB with the sessions (medians); ` +
            "a fresh dsod each round",
        },
        results.map((r) => (r.rssAfterKiB - r.rssBeforeKiB) / Math.max(1, r.held)),
        anchorOf(perSessionAnchor),
      );
      perSessionAnchor ??= perSession;
      if (mode !== "shared" && mode !== "default")
        perSession = withTarget(
          perSession,
          `<= ${TARGET_KIB_PER_SESSION} KiB`,
          perSession.figure <= TARGET_KIB_PER_SESSION,
        );
      const errors = results.reduce((sum, r) => sum + r.errors.length, 0);
      const held = results.map((r) => r.held);
      const noop = rowOf(
        {
          group: GROUP,
          name: `sessions: a NOOP on each of ${label}, all answered`,
          unit: "ms",
          note: `${errors} errors over ${results.length} rounds; held ${Math.min(...held)}–${Math.max(...held)}`,
        },
        results.map((r) => r.noopMs),
        anchorOf(noopAnchor),
      );
      noopAnchor ??= noop;
      rows.push(perSession, withTarget(noop, "0 errors", errors === 0));
    }
  }
  return rows;
}

export async function runSessions(log: (line: string) => void): Promise<Row[]> {
  const chosen = modes(log);
  const example = readFileSync(EXAMPLE_CONFIG, "utf8");
  const site = makeSite({ prefix: "wasm-dso-bench-sessions-" });
  try {
    const rows = await cpuRows(site, example, chosen, log);
    rows.push(...(await memoryRows(site, example, chosen, log)));
    return rows;
  } finally {
    rmSync(site.dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  printRows(await runSessions((line) => process.stderr.write(`${line}\n`)));
}
