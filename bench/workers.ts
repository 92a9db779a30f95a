/**
 * Session workers benchmark (issue #15, "sessions served on all cores"), on
 * the built dsod, side by side in one run:
 *
 * 1. 50 logged-in sessions, pipelined (dispatch.ts's client: a window of 32
 *    commands per session), NOOP (answered by the compiled-in mod_core.c)
 *    and TEST (mod_test.wasm's guest handler), with `SessionWorkers 1` and
 *    `SessionWorkers auto`, plus `SessionWorkers off` (today's single
 *    process) for NOOP; the three daemons run at once and their samples
 *    interleave round by round. The ratio auto/1 comes with the core count
 *    (os.availableParallelism(), what `auto` starts) and, as rows of their
 *    own, the scaling per core (per-round ratio / cores), so a run on a
 *    bigger machine shows what it gains. The server's CPU (dsod and every
 *    worker, from /proc) gives the cores it used and the commands per
 *    server CPU-second, in the note: on a machine whose other work leaves
 *    the workers less than a core each, that figure, not the ratio, says
 *    whether the workers cost anything per command.
 * 2. Logins per second and server CPU per login with `SessionWorkers auto`
 *    (one client logging in over and over: connect, USER, PASS, QUIT;
 *    the CPU of the primary and of every worker process), against
 *    proftpd 1.3.8's CPU per login when it is installed (login.ts measures it).
 * 3. The NOOP throughput of 8 logged-in sessions (one command in flight each)
 *    while a ninth client logs in over and over, over the same without the
 *    logins, paired windows, with `SessionWorkers auto` (login.ts's loops);
 *    the note splits the sessions by the worker the pool gave them (with 2
 *    workers) and gives the CPU the server and the clients used, since on a
 *    small machine the clients' CPU is part of what everything shares;
 *    proftpd 1.3.8's ratio and logins/s, measured the same way in the same
 *    run when it is installed, go beside it. proftpd takes logins far more
 *    slowly than dsod, so the same client logs in there less often; a second
 *    dsod row (when proftpd is installed) holds dsod's login client to
 *    proftpd's rate, so that the two servers are also compared under one load.
 *
 * The load generator runs in a worker thread, as dispatch.ts's does, so the
 * client is not sharing this process's event loop with the login loops.
 *
 * `node --expose-gc dist/bench/workers.js`: run alone.
 */
import { readdirSync, readFileSync } from "node:fs";
import type net from "node:net";
import os from "node:os";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { openSession, pipelined } from "./dispatch.js";
import { loginLoop, noops, processCpuMs, proftpdPerLogin, windowEnd } from "./login.js";
import { startSiteDsod } from "./proftpd/dsod.js";
import type { SiteDsod } from "./proftpd/dsod.js";
import { RawFtp } from "./proftpd/raw-ftp.js";
import { proftpdInstalled, startProftpd } from "./proftpd/proftpd.js";
import { makeSite } from "./proftpd/site.js";
import type { FtpSite } from "./proftpd/site.js";
import { isMain, printRows, withTarget } from "./load.js";
import { median, rowOf } from "./stats.js";
import type { Row } from "./stats.js";
import { WorkerClient } from "./worker-client.js";

const GROUP = "workers";
const SESSIONS = 50;
const ROUNDS = 5;
/**
 * Commands per throughput sample, over all sessions: 0.15–0.4 s at the rates
 * seen here (0.4–1.2 M/s). Shorter samples (30,000 until the <Limit> fast path
 * tripled NOOP's rate) were mostly ramp-up and tail: two workers finish their
 * sessions unevenly, and in 40 ms that uneven end is a good part of the sample.
 */
const COMMANDS_PER_SAMPLE = 150_000;
const SAMPLE_NOTE = `${COMMANDS_PER_SAMPLE / SESSIONS} commands per session, window 32`;
const LOGIN_WINDOWS = 4;
const STALL_SESSIONS = 8;
/** The targets: ≥ 1.7× on 2 cores (0.85 per core), CPU per login ≤ proftpd's, ≥ 0.9× during logins. */
const PER_CORE_TARGET = 0.85;
const STALL_TARGET = 0.9;

type Mode = "off" | "1" | "auto";
const MODES: readonly Mode[] = ["off", "1", "auto"];
const COMMANDS = [
  { command: "NOOP", what: "NOOP (compiled-in mod_core.c)", modes: MODES },
  { command: "TEST x", what: "TEST (guest handler, mod_test.wasm)", modes: ["1", "auto"] as readonly Mode[] },
] as const;

// ---------------------------------------------------------------------------
// The client side (worker thread): logged-in sessions kept per port.

type ClientRequest =
  | { readonly kind: "open"; readonly port: number; readonly user: string; readonly password: string }
  | { readonly kind: "run"; readonly port: number; readonly command: string; readonly perSession: number }
  | { readonly kind: "close"; readonly port: number };

type ClientResponse =
  | { readonly kind: "opened"; readonly reply: string }
  | { readonly kind: "ran"; readonly elapsedNs: number }
  | { readonly kind: "closed" }
  | { readonly kind: "error"; readonly message: string };

const sessionsByPort = new Map<number, net.Socket[]>();

/** SESSIONS sessions logged in on `port`; the reply of one to TEST, which every mode must answer alike. */
async function openLoggedIn(port: number, user: string, password: string): Promise<ClientResponse> {
  const open = await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      const { socket, firstReply } = await openSession(port);
      socket.write(`USER ${user}\r\n`);
      const name = await firstReply();
      socket.write(`PASS ${password}\r\n`);
      const login = await firstReply();
      if (!name.startsWith("331") || !login.startsWith("230")) throw new Error(`login refused: ${name} / ${login}`);
      return { socket, firstReply };
    }),
  );
  sessionsByPort.set(
    port,
    open.map(({ socket }) => socket),
  );
  const [probe] = open;
  probe?.socket.write("TEST x\r\n");
  return { kind: "opened", reply: (await probe?.firstReply()) ?? "" };
}

function serveClient(): void {
  parentPort?.on("message", (request: ClientRequest) => {
    const sockets = sessionsByPort.get(request.port) ?? [];
    const run: Promise<ClientResponse> =
      request.kind === "open"
        ? openLoggedIn(request.port, request.user, request.password)
        : request.kind === "run"
          ? pipelined(sockets, request.perSession, request.command).then((elapsedNs) => ({ kind: "ran", elapsedNs }))
          : Promise.resolve().then(() => {
              for (const socket of sockets) socket.destroy();
              sessionsByPort.delete(request.port);
              return { kind: "closed" };
            });
    run.then(
      (response) => parentPort?.postMessage(response),
      (error: unknown) => parentPort?.postMessage({ kind: "error", message: String(error) } satisfies ClientResponse),
    );
  });
}

// ---------------------------------------------------------------------------
// The server side.

/** The live child processes of `pid` (a dsod's session workers), from every one of its threads. */
function childPids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((task) => {
    const children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
    return children === "" ? [] : children.split(" ").map(Number);
  });
}

/** CPU ms of dsod and its live children (the workers), each with its reaped children's (dead workers). */
function treeCpuMs(pid: number): number {
  let total = processCpuMs(pid);
  for (const child of childPids(pid)) {
    try {
      total += processCpuMs(child);
    } catch {
      // Exited since the list was read: its CPU is in dsod's reaped-children figure once reaped.
    }
  }
  return total;
}

interface Daemon {
  readonly mode: Mode;
  readonly site: FtpSite;
  readonly dsod: SiteDsod;
}

async function startDaemon(mode: Mode): Promise<Daemon> {
  const site = makeSite({ prefix: "wasm-dso-bench-workers-" });
  const dsod = await startSiteDsod({ site, extra: ["LoadModule mod_test.c", `SessionWorkers ${mode}`] });
  return { mode, site, dsod };
}

function label(mode: Mode, cores: number): string {
  if (mode === "off") return "SessionWorkers off (one process)";
  return mode === "auto" ? `SessionWorkers auto (${cores} workers)` : "SessionWorkers 1";
}

async function throughputRows(daemons: readonly Daemon[], cores: number, log: (line: string) => void): Promise<Row[]> {
  const client = new WorkerClient<ClientRequest, ClientResponse>(
    new URL(import.meta.url),
    "workers-client",
    "workers client",
  );
  const rates = new Map<string, number[]>();
  const used = new Map<string, number[]>();
  const push = (map: Map<string, number[]>, key: string, value: number): void => {
    map.set(key, [...(map.get(key) ?? []), value]);
  };
  try {
    for (const d of daemons) {
      const opened = (await client.ask({
        kind: "open",
        port: d.dsod.port,
        user: d.site.user,
        password: d.site.password,
      })) as { reply: string };
      if (opened.reply !== "200 Hello from mod_test: x")
        throw new Error(`bench: dsod (${d.mode}) answered TEST with '${opened.reply}'`);
      // A build that ignored SessionWorkers would compare one process with itself.
      const expected = d.mode === "off" ? 0 : d.mode === "1" ? 1 : cores;
      const running = childPids(d.dsod.pid).length;
      if (running !== expected)
        throw new Error(`bench: dsod (SessionWorkers ${d.mode}) runs ${running} worker processes, not ${expected}`);
    }
    const perSession = Math.ceil(COMMANDS_PER_SAMPLE / SESSIONS);
    const sample = async (d: Daemon, command: string): Promise<{ rate: number; usedCores: number }> => {
      const cpu = treeCpuMs(d.dsod.pid);
      const { elapsedNs } = (await client.ask({ kind: "run", port: d.dsod.port, command, perSession })) as {
        elapsedNs: number;
      };
      const usedCores = (treeCpuMs(d.dsod.pid) - cpu) / (elapsedNs / 1e6);
      return { rate: (perSession * SESSIONS) / (elapsedNs / 1e9), usedCores };
    };
    // Warm-up: every path tiers up, in every worker, before anything is timed.
    for (const { command, modes } of COMMANDS)
      for (const d of daemons) if (modes.includes(d.mode)) await sample(d, command);
    for (let round = 0; round < ROUNDS; round++) {
      globalThis.gc?.();
      // Alternate which daemon goes first, so that none always follows the gc.
      const order = round % 2 === 0 ? daemons : [...daemons].reverse();
      for (const { command, modes } of COMMANDS) {
        for (const d of order) {
          if (!modes.includes(d.mode)) continue;
          const { rate, usedCores } = await sample(d, command);
          push(rates, `${command} ${d.mode}`, rate);
          push(used, `${command} ${d.mode}`, usedCores);
        }
      }
      log(`bench: workers: throughput round ${round + 1}/${ROUNDS}`);
    }
    for (const d of daemons) await client.ask({ kind: "close", port: d.dsod.port });
  } finally {
    await client.close();
  }

  const rows: Row[] = [];
  for (const { command, what, modes } of COMMANDS) {
    const byMode = new Map<Mode, Row>();
    for (const mode of modes) {
      const key = `${command} ${mode}`;
      const perCpuSecond = (rates.get(key) ?? []).map((rate, i) => rate / (used.get(key)?.[i] ?? Infinity) / 1000);
      const note =
        `server used ${median(used.get(key) ?? []).toFixed(2)} cores, ` +
        `${median(perCpuSecond).toFixed(0)} k commands per server CPU-s; ${SAMPLE_NOTE}`;
      const anchor = mode === "auto" ? byMode.get("1") : mode === "1" ? byMode.get("off") : undefined;
      const name = `${GROUP}: ${SESSIONS} sessions' ${what}, ${label(mode, cores)}`;
      const row = rowOf(
        { group: GROUP, name, unit: "commands/s", note },
        rates.get(key) ?? [],
        anchor === undefined ? undefined : { name: anchor.name, figure: anchor.figure },
      );
      byMode.set(mode, row);
      const target = PER_CORE_TARGET * cores;
      const text = `>= ${target.toFixed(2)}x on ${cores} cores`;
      rows.push(mode === "auto" ? withTarget(row, text, row.ratio >= target) : row);
    }
    const one = rates.get(`${command} 1`) ?? [];
    const perCore = (rates.get(`${command} auto`) ?? []).map((rate, i) => rate / (one[i] ?? rate) / cores);
    const scaling = rowOf(
      {
        group: GROUP,
        name: `${GROUP}: ${what} scaling per core, (auto / 1) / ${cores} cores`,
        unit: "x/core",
        note: "per-round ratio over the core count; 1.00 is linear",
      },
      perCore,
    );
    rows.push(withTarget(scaling, `>= ${PER_CORE_TARGET}`, scaling.figure >= PER_CORE_TARGET));
  }
  return rows;
}

/** Logins/s and server CPU per login (primary + workers), against proftpd's CPU per login. */
async function loginRows(d: Daemon, cores: number, log: (line: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const proftpd = await proftpdPerLogin(GROUP, `${GROUP}: `);
  if (proftpd === undefined) log("bench: workers: proftpd is not installed, no CPU-per-login anchor");
  else rows.push(proftpd.row);
  const perSecond: number[] = [];
  const cpuPerLogin: number[] = [];
  for (let w = 0; w < LOGIN_WINDOWS; w++) {
    const cpu = treeCpuMs(d.dsod.pid);
    const start = process.hrtime.bigint();
    const count = await loginLoop(d.dsod.port, d.site.user, d.site.password, windowEnd());
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    perSecond.push(count / seconds);
    cpuPerLogin.push((treeCpuMs(d.dsod.pid) - cpu) / count);
  }
  const what = label(d.mode, cores);
  rows.push(
    rowOf(
      { group: GROUP, name: `${GROUP}: logins/s, one client, connect to QUIT, ${what}`, unit: "logins/s" },
      perSecond,
    ),
  );
  const row = rowOf(
    {
      group: GROUP,
      name: `${GROUP}: dsod CPU per login (primary + workers), ${what}`,
      unit: "CPU ms/login",
      note: "from /proc/<pid>/stat of dsod and its children",
    },
    cpuPerLogin,
    proftpd,
  );
  rows.push(proftpd === undefined ? row : withTarget(row, "<= 1.0x proftpd", row.ratio <= 1));
  return rows;
}

interface StallWindow {
  /** NOOPs/s of the 1st, 3rd, ... sessions (worker 1's, with 2 workers), and of the 2nd, 4th, ... */
  readonly rates: readonly [number, number];
  readonly loginsPerSecond: number;
  /** Cores used by dsod (primary and workers), and by this process (every client). */
  readonly serverCores: number;
  readonly clientCores: number;
}

/**
 * One window of the sessions' NOOPs, one in flight each, with a client
 * logging in over and over beside them (at most `logins.perSecond` a second
 * when it is set) or not. The pool gives each session
 * to the worker with the fewest (ties: the lowest index), so with 2 workers
 * the 1st, 3rd, ... sessions are worker 1's: their rates apart show whether
 * the logins slow only the sessions of the worker that serves them.
 */
async function stallWindow(
  d: StallServer,
  clients: readonly RawFtp[],
  logins: false | { readonly perSecond: number | undefined },
): Promise<StallWindow> {
  const cpu = treeCpuMs(d.pid);
  const client = process.cpuUsage();
  const start = process.hrtime.bigint();
  const end = windowEnd();
  const [first, second, loggedIn] = await Promise.all([
    noops(
      clients.filter((_, i) => i % 2 === 0),
      end,
    ),
    noops(
      clients.filter((_, i) => i % 2 === 1),
      end,
    ),
    logins === false ? 0 : loginLoop(d.port, d.site.user, d.site.password, end, logins.perSecond),
  ]);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const { user, system } = process.cpuUsage(client);
  return {
    rates: [(first * 1000) / ms, (second * 1000) / ms],
    loginsPerSecond: (loggedIn * 1000) / ms,
    serverCores: (treeCpuMs(d.pid) - cpu) / ms,
    clientCores: (user + system) / 1000 / ms,
  };
}

/** What the stall windows drive: dsod, or proftpd as the anchor. */
interface StallServer {
  readonly what: string;
  readonly port: number;
  /** The server's pid: its CPU and its children's (workers, or proftpd's session processes) count. */
  readonly pid: number;
  readonly site: FtpSite;
}

/** Paired windows of the sessions' NOOPs, without logins and with them (at most `perSecond` a second when set). */
async function stallWindows(
  d: StallServer,
  log: (line: string) => void,
  perSecond?: number,
): Promise<{ quiet: StallWindow[]; busy: StallWindow[] }> {
  const clients: RawFtp[] = [];
  try {
    for (let i = 0; i < STALL_SESSIONS; i++) {
      const { client } = await RawFtp.connect(d.port);
      await client.login(d.site.user, d.site.password);
      clients.push(client);
    }
    const quiet: StallWindow[] = [];
    const busy: StallWindow[] = [];
    for (let w = 0; w < LOGIN_WINDOWS; w++) {
      quiet.push(await stallWindow(d, clients, false));
      busy.push(await stallWindow(d, clients, { perSecond }));
      const pace = perSecond === undefined ? "" : `, logins held to ${perSecond}/s`;
      log(`bench: workers: ${d.what}${pace}: login window ${w + 1}/${LOGIN_WINDOWS}`);
    }
    return { quiet, busy };
  } finally {
    for (const client of clients) client.close();
  }
}

/** The busy windows' NOOP/s over the quiet ones', window by window, by `rate` (both workers' sessions by default). */
function pairedRatio(
  { quiet, busy }: { quiet: readonly StallWindow[]; busy: readonly StallWindow[] },
  rate: (window: StallWindow) => number = (window) => window.rates[0] + window.rates[1],
): number {
  return median(busy.map((window, w) => rate(window) / rate(quiet[w] as StallWindow)));
}

/** Cores the server and the clients used over `windows`, for a note. */
function cpuNote(windows: readonly StallWindow[]): string {
  return (
    `server used ${median(windows.map((w) => w.serverCores)).toFixed(2)} cores, ` +
    `the clients ${median(windows.map((w) => w.clientCores)).toFixed(2)}`
  );
}

/**
 * The with-logins row of `windows` against `quietRow`, with the paired ratio
 * (split by worker in the note, beside logins/s and CPU) the target is read on.
 */
function busyRow(
  name: string,
  windows: { quiet: readonly StallWindow[]; busy: readonly StallWindow[] },
  quietRow: Row,
): { row: Row; ratio: number } {
  const ratio = pairedRatio(windows);
  const row = rowOf(
    {
      group: GROUP,
      name,
      unit: "NOOP/s",
      note:
        `paired ratio ${ratio.toFixed(2)}x: sessions 1,3,5,7 ${pairedRatio(windows, (w) => w.rates[0]).toFixed(2)}x, ` +
        `2,4,6,8 ${pairedRatio(windows, (w) => w.rates[1]).toFixed(2)}x; ` +
        `${median(windows.busy.map((w) => w.loginsPerSecond)).toFixed(0)} logins/s; ${cpuNote(windows.busy)}`,
    },
    windows.busy.map((window) => window.rates[0] + window.rates[1]),
    { name: quietRow.name, figure: quietRow.figure },
  );
  return { row, ratio };
}

/**
 * 8 sessions' NOOPs while a ninth client logs in over and over, over the
 * same without the logins; proftpd's figure, measured the same way in the
 * same run when it is installed, beside it: its sessions are processes of
 * their own, and so is each login. Then, with proftpd's figure, dsod again
 * with its login client held to the logins/s proftpd took.
 */
async function stallRows(d: Daemon, cores: number, log: (line: string) => void): Promise<Row[]> {
  const what = label(d.mode, cores);
  const server: StallServer = { what, port: d.dsod.port, pid: d.dsod.pid, site: d.site };
  const windows = await stallWindows(server, log);
  const anchor = proftpdInstalled() ? await proftpdStall(log) : undefined;
  if (anchor === undefined) log("bench: workers: proftpd is not installed, no anchor for the logins' stall");
  const quietRow = rowOf(
    {
      group: GROUP,
      name: `${GROUP}: ${STALL_SESSIONS} sessions' NOOPs, no logins, ${what}`,
      unit: "NOOP/s",
      note: cpuNote(windows.quiet),
    },
    windows.quiet.map((window) => window.rates[0] + window.rates[1]),
  );
  const busy = busyRow(
    `${GROUP}: ${STALL_SESSIONS} sessions' NOOPs while a client logs in repeatedly, ${what}`,
    windows,
    quietRow,
  );
  const row = withTarget(busy.row, `>= ${STALL_TARGET}x`, busy.ratio >= STALL_TARGET);
  if (anchor === undefined) return [quietRow, row];
  const proftpdNote = `; proftpd 1.3.8 in the same run: ${anchor.ratio.toFixed(2)}x at ${anchor.logins} logins/s`;
  // A proftpd that took no login in its windows leaves no rate to hold dsod to.
  if (anchor.logins === 0) return [quietRow, { ...row, note: `${row.note ?? ""}${proftpdNote}` }];
  const paced = await stallWindows(server, log, anchor.logins);
  const { row: pacedRow } = busyRow(
    `${GROUP}: ${STALL_SESSIONS} sessions' NOOPs while a client logs in at most ${anchor.logins} times/s (proftpd's rate), ${what}`,
    paced,
    quietRow,
  );
  return [
    quietRow,
    { ...row, note: `${row.note ?? ""}${proftpdNote}` },
    { ...pacedRow, note: `${pacedRow.note ?? ""}${proftpdNote}` },
  ];
}

/** proftpd's paired ratio and logins/s in the same windows, on a site of its own. */
async function proftpdStall(log: (line: string) => void): Promise<{ ratio: number; logins: number }> {
  const site = makeSite({ prefix: "wasm-dso-bench-workers-proftpd-" });
  const proftpd = await startProftpd({ site });
  try {
    const windows = await stallWindows({ what: "proftpd", port: proftpd.port, pid: proftpd.pid, site }, log);
    return {
      ratio: pairedRatio(windows),
      logins: Math.round(median(windows.busy.map((w) => w.loginsPerSecond))),
    };
  } finally {
    await proftpd.stop();
  }
}

export async function runWorkers(log: (line: string) => void): Promise<Row[]> {
  const cores = os.availableParallelism();
  const daemons: Daemon[] = [];
  try {
    for (const mode of MODES) daemons.push(await startDaemon(mode));
    const rows = await throughputRows(daemons, cores, log);
    // The login rows need only the auto daemon: the others stop, so that nothing else holds CPU or descriptors.
    const auto = daemons.find((d) => d.mode === "auto") as Daemon;
    for (const d of daemons.splice(0)) if (d !== auto) await d.dsod.stop();
    daemons.push(auto);
    rows.push(...(await loginRows(auto, cores, log)), ...(await stallRows(auto, cores, log)));
    log(`bench: workers: ${cores} cores (os.availableParallelism()), load average ${os.loadavg()[0]?.toFixed(2)}`);
    return rows;
  } finally {
    for (const d of daemons) await d.dsod.stop();
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === "workers-client") {
  serveClient();
} else if (isMainThread && isMain(import.meta.url)) {
  printRows(await runWorkers((line) => process.stderr.write(`${line}\n`)));
}
