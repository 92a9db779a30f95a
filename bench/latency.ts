/**
 * Tail latency and allocation of one control session:
 *
 * - latency: one logged-in session, one NOOP at a time (send, wait for the
 *   reply), against the built dsod (a child process, as deployed) and the
 *   machine's proftpd 1.3.8 side by side, rounds interleaved; p50, p99 and
 *   p999 of each round, the row being their median over the rounds. Without
 *   /usr/sbin/proftpd the rows are dsod's alone and the log says so.
 *   BENCH_DSOD_BASELINE=<path to another build's host/cli/dsod.js> measures
 *   that build too, in the same rounds (a before/after comparison on a shared
 *   machine).
 * - allocation: bytes the server side allocates per NOOP in V8's young
 *   generation (what scavenges collect: new space and its large objects,
 *   v8.getHeapSpaceStatistics()), across a run of NOOPs during which no GC
 *   ran (Node 20's V8 has no allocation counter), with an FtpServer of the
 *   compiled-in modules and the daemon's FairScheduler in this thread and the
 *   client in a worker, whose heap is its own; the message to the worker and
 *   its answer are counted too, spread over the NOOPs. Not heapUsed: the
 *   forced full collections between runs throw away compiled code, and V8
 *   compiling it again during a run added 0 to 3 KB per NOOP to heapUsed at
 *   random (code and old space), to the bare server below as much as to dsod.
 *   Node's own floor is measured in the same rounds: a bare node:net server
 *   that answers each NOOP with dsod's reply, the replies to one read in one
 *   write (on Node 20 a read and a write on a socket allocate about 1 KB
 *   between them: the stream's ticks, and a Map per tick queue run in
 *   processPromiseRejections). Both with one NOOP in flight and pipelined
 *   (PIPELINE_WINDOW in flight), where Node's share spreads over the NOOPs
 *   of a read and what is left is dsod's per command.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { performance, PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { FtpServer } from "../host/ftp/server.js";
import { FairScheduler } from "../host/ftp/scheduler.js";
import { createCompiledInModules } from "../host/static/index.js";
import { ModuleHost } from "../host/modules/module-host.js";
import { MODULE_HOST_V8_FLAGS, tuneHeapForModuleChurn } from "../host/system/heap.js";
import { DSOD_CLI, dsodSiteConfig } from "./proftpd/dsod.js";
import { proftpdInstalled, startProftpd } from "./proftpd/proftpd.js";
import { makeSite } from "./proftpd/site.js";
import { countLines } from "./dispatch.js";
import { isMain, LIBEXEC_DIR, printRows, withTarget } from "./load.js";
import { percentile, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const ROUNDS = 7;
const COMMANDS_PER_ROUND = 2000;
const WARMUP_COMMANDS = 3000;
const TARGET_P99_RATIO = 1.5;
const ALLOCATION_ROUNDS = 9;
const ALLOCATION_COMMANDS = 400;
const TARGET_BYTES_PER_NOOP = 1024;
/** NOOPs in flight on the pipelined allocation rows, as bench/dispatch.ts's clients keep them. */
const PIPELINE_WINDOW = 32;
const NOOP_REPLY = "200 NOOP command successful\r\n";
const PERCENTILES = [50, 99, 99.9] as const;

/** A logged-in control connection that sends one NOOP at a time. */
class NoopClient {
  readonly #socket: net.Socket;
  #text = "";
  #waiting: ((line: string) => void) | undefined;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#text += chunk.toString("latin1");
      // Last lines only: a multi-line reply ends with `ddd text`.
      const end = this.#text.lastIndexOf("\r\n");
      if (end < 0 || this.#waiting === undefined) return;
      const lines = this.#text.slice(0, end).split("\r\n");
      const last = lines[lines.length - 1] as string;
      if (!/^\d{3} /.test(last)) return;
      this.#text = this.#text.slice(end + 2);
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting(last);
    });
  }

  static async connect(port: number): Promise<NoopClient> {
    const socket = net.connect(port, "127.0.0.1");
    const client = new NoopClient(socket);
    const greeting = client.#next();
    await once(socket, "connect");
    await greeting;
    return client;
  }

  #next(): Promise<string> {
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  async send(line: string): Promise<string> {
    const reply = this.#next();
    this.#socket.write(`${line}\r\n`);
    return reply;
  }

  async login(user: string, password: string): Promise<void> {
    await this.send(`USER ${user}`);
    const reply = await this.send(`PASS ${password}`);
    if (!reply.startsWith("230")) throw new Error(`bench: login refused: ${reply}`);
  }

  /** Round trips of `count` NOOPs, in µs. */
  async noops(count: number): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      const reply = await this.send("NOOP");
      samples.push(Number(process.hrtime.bigint() - start) / 1e3);
      if (!reply.startsWith("200")) throw new Error(`bench: NOOP answered '${reply}'`);
    }
    return samples;
  }

  /** `count` NOOPs with `window` in flight: a new one for each reply, written together as replies come. */
  async pipelined(count: number, window: number): Promise<void> {
    const socket = this.#socket;
    let sent = Math.min(window, count);
    let replies = 0;
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        const lines = countLines(chunk);
        replies += lines;
        if (replies >= count) {
          socket.off("data", onData);
          resolve();
          return;
        }
        const more = Math.min(lines, count - sent);
        if (more > 0) socket.write("NOOP\r\n".repeat(more));
        sent += more;
      };
      socket.on("data", onData);
      socket.write("NOOP\r\n".repeat(sent));
    });
    // The replies were counted here, not awaited by send(): the line reader keeps none of them.
    this.#text = "";
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A dsod build (`cli`) serving the site, as bench/proftpd/dsod.ts starts it, with dsod's own V8 flags. */
async function startDsod(
  cli: string,
  site: ReturnType<typeof makeSite>,
  label: string,
): Promise<{ port: number; child: ChildProcess }> {
  const config = path.join(site.dir, `dsod-${label}.conf`);
  writeFileSync(config, dsodSiteConfig({ site }).replace(`${site.dir}/dsod.sock`, `${site.dir}/dsod-${label}.sock`));
  const child = spawn(process.execPath, [cli, "-n", "-c", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on \S+ port (\d+)/.exec(stderr);
      if (match !== null) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`bench: dsod exited with ${code}:\n${stderr}`)));
  });
  return { port, child };
}

interface LatencyTarget {
  readonly label: string;
  readonly client: NoopClient;
  readonly rounds: number[][];
}

function latencyRows(targets: readonly LatencyTarget[]): Row[] {
  const group = "latency";
  const note = `1 session logged in, one NOOP in flight, client-side round trip; per-round percentile of ${COMMANDS_PER_ROUND}`;
  const anchorTarget = targets[0] as LatencyTarget;
  const rows: Row[] = [];
  const anchors = new Map<number, Row>();
  for (const target of targets) {
    for (const p of PERCENTILES) {
      const anchor = target === anchorTarget ? undefined : anchors.get(p);
      const name = `${group}: NOOP round trip, ${target.label}, p${String(p).replace(".", "")}`;
      const row = rowOf(
        { group, name, unit: "µs", note },
        target.rounds.map((samples) => percentile(samples, p)),
        anchor === undefined ? undefined : { name: anchor.name, figure: anchor.figure },
      );
      if (target === anchorTarget) anchors.set(p, row);
      const judged =
        p === 99 && anchor !== undefined && anchorTarget.label.startsWith("proftpd") && target.label === "dsod";
      rows.push(judged ? withTarget(row, `<= ${TARGET_P99_RATIO}x`, row.ratio <= TARGET_P99_RATIO) : row);
    }
  }
  return rows;
}

async function measureLatency(log: (line: string) => void): Promise<Row[]> {
  const site = makeSite({ prefix: "bench-latency-" });
  const children: ChildProcess[] = [];
  const stops: Array<() => Promise<void>> = [];
  const targets: LatencyTarget[] = [];
  try {
    if (proftpdInstalled()) {
      const proftpd = await startProftpd({ site });
      stops.push(() => proftpd.stop());
      targets.push({ label: "proftpd 1.3.8", client: await NoopClient.connect(proftpd.port), rounds: [] });
    } else {
      log("latency: /usr/sbin/proftpd is not installed: dsod's rows only (apt-get install proftpd-core)");
    }
    const builds: Array<[string, string]> = [["dsod", DSOD_CLI]];
    const baseline = process.env.BENCH_DSOD_BASELINE;
    if (baseline !== undefined && baseline !== "") builds.push(["dsod baseline", baseline]);
    for (const [label, cli] of builds) {
      const dsod = await startDsod(cli, site, label.replace(/\s+/g, "-"));
      children.push(dsod.child);
      targets.push({ label, client: await NoopClient.connect(dsod.port), rounds: [] });
    }
    for (const target of targets) {
      await target.client.login(site.user, site.password);
      await target.client.noops(WARMUP_COMMANDS);
    }
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first, so no target always follows another's GC or a busy neighbour.
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(round + i) % targets.length] as LatencyTarget;
        target.rounds.push(await target.client.noops(COMMANDS_PER_ROUND));
      }
    }
    for (const target of targets) target.client.close();
    return latencyRows(targets);
  } finally {
    for (const child of children) child.kill("SIGTERM");
    for (const stop of stops) await stop();
  }
}

// ---------------------------------------------------------------------------
// Allocation per NOOP: the server in this thread, the client in a worker.

/** What the allocation client is asked: see allocationClient. */
interface AllocationRequest {
  readonly port?: number;
  readonly count?: number;
  readonly client?: number;
  readonly window?: number;
}

/**
 * The worker's side: `{ port }` connects a client (its number is the answer),
 * `{ count, client, window }` sends that many NOOPs on client `client`, one
 * at a time or `window` in flight, `{}` closes them all; each is answered
 * when done.
 */
function allocationClient(): void {
  const clients: NoopClient[] = [];
  parentPort?.on("message", (request: AllocationRequest) => {
    void (async () => {
      const client = clients[request.client ?? 0];
      if (request.port !== undefined) clients.push(await NoopClient.connect(request.port));
      else if (request.count !== undefined && (request.window ?? 1) > 1)
        await client?.pipelined(request.count, request.window ?? 1);
      else if (request.count !== undefined) await client?.noops(request.count);
      else for (const each of clients) each.close();
      parentPort?.postMessage(clients.length - 1);
    })();
  });
}

/** Bytes in V8's young generation: what was allocated since the last GC, while none has run. */
function youngGenerationBytes(): number {
  let used = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    const young = space.space_name === "new_space" || space.space_name === "new_large_object_space";
    if (young) used += space.space_used_size;
  }
  return used;
}

/**
 * Node's floor: a bare node:net server that answers each NOOP with dsod's
 * reply, the replies to the NOOPs of one read in one write (as dsod writes a
 * pipelined batch).
 */
async function listenFloorServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.write("220 floor\r\n");
    socket.on("data", (chunk: Buffer) => {
      const lines = countLines(chunk);
      socket.write(lines === 1 ? NOOP_REPLY : NOOP_REPLY.repeat(lines));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const close = async (): Promise<void> => {
    server.close();
    await once(server, "close");
  };
  return { port: (server.address() as net.AddressInfo).port, close };
}

interface AllocationTarget {
  readonly label: string;
  readonly port: number;
  /** NOOPs in flight: 1 (request and response) or PIPELINE_WINDOW. */
  readonly window: number;
  client: number;
  readonly perNoop: number[];
}

async function measureAllocation(log: (line: string) => void): Promise<Row[]> {
  if (globalThis.gc === undefined) {
    log("latency: no allocation row without --expose-gc (npm run bench passes it)");
    return [];
  }
  const compiledIn = createCompiledInModules().modules;
  const host = new ModuleHost({ modulePath: LIBEXEC_DIR, compiledIn, guestLog: () => {} });
  const scheduler = new FairScheduler<number>({
    now: () => performance.now(),
    idleTime: () => performance.nodeTiming.idleTime,
    defer: (next) => setImmediate(next),
    later: (ms, wake) => setTimeout(wake, ms).unref(),
  });
  const server = new FtpServer({
    acquireModules: () => host.acquireModules(),
    serverName: "bench allocation",
    idleTimeoutSeconds: 0,
    // The client never logs in: its session must not end at TimeoutLogin, however long the measurement takes.
    loginTimeoutSeconds: 0,
    preLoginCommands: new Set(["NOOP"]),
    scheduler,
  });
  const { port } = await server.listen(0, "127.0.0.1");
  const floor = await listenFloorServer();
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: "latency-client" } });
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  observer.observe({ entryTypes: ["gc"] });
  const ask = async (request: AllocationRequest): Promise<number> => {
    worker.postMessage(request);
    const [answer] = (await once(worker, "message")) as [number];
    return answer;
  };
  /**
   * A collection of the young generation (it empties what the next run is
   * measured in), once the observer has seen it. Node tells observers of a GC
   * from an unreferenced immediate, which runs only when the event loop turns
   * for something else: waiting for the observer alone slept until some
   * timer or V8 task woke the loop, seconds each time (the section took a
   * minute), and once, in a full run, until the session's 300 s TimeoutLogin
   * (the stalled NOOP). So the loop is kept turning until the entry has come.
   */
  const collected = async (): Promise<void> => {
    const target = gcs + 1;
    globalThis.gc?.({ type: "minor" });
    while (gcs < target) await new Promise((resolve) => setImmediate(resolve));
  };
  // Each on its own connection: one NOOP in flight, and PIPELINE_WINDOW.
  const targets: AllocationTarget[] = [1, PIPELINE_WINDOW].flatMap((window) => [
    { label: "dsod server side", port, window, client: 0, perNoop: [] },
    { label: "bare node:net server (Node's floor)", port: floor.port, window, client: 0, perNoop: [] },
  ]);
  let discarded = 0;
  // Fewer NOOPs when a scavenge keeps running during them (dsod keeps its young generation small).
  let count = ALLOCATION_COMMANDS;
  try {
    for (const target of targets) {
      target.client = await ask({ port: target.port });
      await ask({ count: WARMUP_COMMANDS, client: target.client, window: target.window });
    }
    const done = (): boolean => targets.every((target) => target.perNoop.length >= ALLOCATION_ROUNDS);
    await collected();
    while (!done() && discarded < 10 * ALLOCATION_ROUNDS) {
      // The two in turn, so that both see the same machine.
      for (const target of targets) {
        if (target.perNoop.length >= ALLOCATION_ROUNDS) continue;
        const before = gcs;
        const used = youngGenerationBytes();
        await ask({ count, client: target.client, window: target.window });
        const grown = youngGenerationBytes() - used;
        // The entries come in order: once this collection's has come, any that ran during the NOOPs has too. It
        // also empties the young generation for the next run.
        await collected();
        if (gcs === before + 1) {
          target.perNoop.push(grown / count);
        } else {
          discarded++;
          count = Math.max(25, Math.floor(count / 2));
        }
      }
    }
    await ask({});
  } finally {
    observer.disconnect();
    await worker.terminate();
    await server.close();
    await floor.close();
    host.close();
  }
  if (discarded > 0) log(`latency: ${discarded} allocation runs were discarded (a GC ran during them)`);
  const flags = MODULE_HOST_V8_FLAGS.join(" ");
  return [1, PIPELINE_WINDOW].flatMap((window) => {
    const [dsod, bare] = targets.filter((target) => target.window === window) as [AllocationTarget, AllocationTarget];
    return dsod.perNoop.length === 0 || bare.perNoop.length === 0 ? [] : allocationRows(dsod, bare, count, flags);
  });
}

/**
 * Node's floor, dsod, and dsod less the floor, at one window. The 1 KB target
 * is the pipelined row's: the profile (50 sessions pipelining NOOP,
 * 6 KB a command) was of that; one NOOP in flight, Node's own read and write
 * take about 1 KB, and the row shows dsod's share above them.
 */
function allocationRows(dsod: AllocationTarget, bare: AllocationTarget, count: number, flags: string): Row[] {
  const how = dsod.window === 1 ? "one in flight" : `pipelined, ${dsod.window} in flight`;
  const note = `young-generation growth over ${count} NOOPs of one session without GC; V8 ${flags}`;
  const floorRow = rowOf(
    { group: "latency", name: `latency: bytes allocated per NOOP, ${how}, ${bare.label}`, unit: "bytes", note },
    bare.perNoop,
  );
  const row = rowOf(
    { group: "latency", name: `latency: bytes allocated per NOOP, ${how}, ${dsod.label}`, unit: "bytes", note },
    dsod.perNoop,
    { name: floorRow.name, figure: floorRow.figure },
  );
  const rounds = Math.min(dsod.perNoop.length, bare.perNoop.length);
  const above = rowOf(
    {
      group: "latency",
      name: `latency: bytes allocated per NOOP, ${how}, dsod above Node's floor`,
      unit: "bytes",
      note: "per round, dsod's figure less the bare server's of the same round",
    },
    dsod.perNoop.slice(0, rounds).map((bytes, i) => bytes - (bare.perNoop[i] as number)),
  );
  const target = `<= ${TARGET_BYTES_PER_NOOP} bytes`;
  return [floorRow, dsod.window === 1 ? row : withTarget(row, target, row.figure <= TARGET_BYTES_PER_NOOP), above];
}

export async function runLatency(log: (line: string) => void): Promise<Row[]> {
  const rows = await measureLatency(log);
  rows.push(...(await measureAllocation(log)));
  return rows;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === "latency-client") {
  allocationClient();
} else if (isMainThread && isMain(import.meta.url)) {
  // `node --expose-gc dist/bench/latency.js`: run alone, with dsod's heap settings as under run.ts.
  tuneHeapForModuleChurn();
  printRows(await runLatency((line) => process.stderr.write(`${line}\n`)));
}
