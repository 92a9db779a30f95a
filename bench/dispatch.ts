/**
 * Dispatch benchmark: FTP commands per second served by a guest module's
 * handler (mod_test.wasm's `TEST`, loaded by ModuleHost) against the same
 * handler compiled in as a TypeScript module (same reply text), each behind a
 * real FtpServer on 127.0.0.1, both servers in this process and measured
 * interleaved; plus the round-trip latency of one command.
 *
 * The load generator runs in a worker thread (this same file, see the end):
 * on a 2-core machine the server's event loop gets one core and the client
 * the other, so the figure is the server's, not a client sharing its loop.
 *
 * - throughput: `TEST x` pipelined, a window of PIPELINE_DEPTH commands in
 *   flight per session (a new command for every reply), over 1 and over 50
 *   sessions; commands/s from the first write to the last reply;
 * - latency: one session, one command at a time (send, wait for the reply),
 *   so it is the cost of one command, not of a queue.
 *
 * A third server measures the floor under the guest: the same mod_test.wasm
 * handler called bare, from a compiled-in TypeScript module, on one instance
 * every session shares, with no CPU guard, no fault containment and no
 * per-session instance, its host symbols the host's own string helpers. What
 * separates the guest row from that one is the sandbox; what separates that
 * one from the compiled-in row is AssemblyScript's own work (allocating the
 * argument, concatenating the reply) and the strings' crossings.
 *
 * TEST is allowed before login (as it would be with proftpd's requires_auth
 * off for it) on all servers alike, so no USER/PASS precedes the load.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { ActiveCommand } from "../host/abi/host-symbols.js";
import { guestStrings } from "../host/abi/guest-memory.js";
import type { GuestStrings } from "../host/abi/guest-memory.js";
import { PRE_LOGIN_COMMANDS } from "../host/ftp/dispatch.js";
import { FtpServer } from "../host/ftp/server.js";
import { HandlerResults, Phases } from "../host/modules/module-api.js";
import type { EngineModule } from "../host/modules/module-api.js";
import { ModuleHost } from "../host/modules/module-host.js";
import { tuneHeapForModuleChurn } from "../host/system/heap.js";
import { createCompiledInModules } from "../host/static/index.js";
import { readModuleShape } from "../host/wasm/reader.js";
import { isMain, LIBEXEC_DIR, percentileRows, printRows, withTarget } from "./load.js";
import { rowOf } from "./stats.js";
import type { Row } from "./stats.js";
import { WorkerClient } from "./worker-client.js";

const ROUNDS = 10;
const SESSION_COUNTS = [1, 50] as const;
const PIPELINE_DEPTH = 32;
/** Commands per throughput sample, over all sessions: about 0.15–0.5 s at the rates seen here (200–800k/s). */
const COMMANDS_PER_SAMPLE = 100_000;
const LATENCY_COMMANDS = 400;
const TARGET_RATIO = 0.9;

const COMMAND = "TEST x";
/** mod_test.ts's greeting and reply shape: `200 <greeting>: <arg>`. */
const GREETING = "Hello from mod_test";

// ---------------------------------------------------------------------------
// The client side (worker thread).

type ClientRequest =
  | { readonly kind: "throughput"; readonly port: number; readonly sessions: number; readonly commands: number }
  | { readonly kind: "latency"; readonly port: number; readonly commands: number }
  | { readonly kind: "probe"; readonly port: number };

type ClientResponse =
  | { readonly kind: "throughput"; readonly elapsedNs: number; readonly commands: number }
  | { readonly kind: "latency"; readonly samplesUs: number[] }
  | { readonly kind: "probe"; readonly reply: string }
  | { readonly kind: "error"; readonly message: string };

const LF = 0x0a;

/** The LFs in `chunk`: the reply lines a read holds. */
export function countLines(chunk: Buffer): number {
  let n = 0;
  for (let at = chunk.indexOf(LF); at >= 0; at = chunk.indexOf(LF, at + 1)) n++;
  return n;
}

/** A connected session whose greeting has been read; `firstReply` reads the first line of the next reply. */
export async function openSession(port: number): Promise<{ socket: net.Socket; firstReply: () => Promise<string> }> {
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await once(socket, "connect");
  let pending = "";
  // The greeting is one line; anything after it is not expected before a command.
  while (!pending.includes("\n")) {
    const [chunk] = (await once(socket, "data")) as [Buffer];
    pending += chunk.toString("latin1");
  }
  const firstReply = async (): Promise<string> => {
    let text = "";
    while (!text.includes("\n")) {
      const [chunk] = (await once(socket, "data")) as [Buffer];
      text += chunk.toString("latin1");
    }
    return text.slice(0, text.indexOf("\r\n"));
  };
  return { socket, firstReply };
}

/**
 * `perSession` one-line `command`s on each of `sockets`, pipelined with a
 * window of PIPELINE_DEPTH per session; the ns from the first write to the
 * last reply. The sockets stay open (and usable again) when it resolves.
 */
export async function pipelined(sockets: readonly net.Socket[], perSession: number, command: string): Promise<number> {
  const line = Buffer.from(`${command}\r\n`, "latin1");
  const batch = Buffer.concat(Array.from({ length: PIPELINE_DEPTH }, () => line));
  const start = process.hrtime.bigint();
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve, reject) => {
          let sent = Math.min(PIPELINE_DEPTH, perSession);
          let received = 0;
          socket.on("error", reject);
          socket.on("data", (chunk: Buffer) => {
            const replies = countLines(chunk);
            received += replies;
            if (received >= perSession) {
              socket.removeAllListeners("data");
              socket.off("error", reject);
              resolve();
              return;
            }
            // One new command per reply keeps the window full; one write for all of them.
            const more = Math.min(replies, perSession - sent);
            if (more > 0) {
              socket.write(more === PIPELINE_DEPTH ? batch : batch.subarray(0, more * line.length));
              sent += more;
            }
          });
          socket.write(sent === PIPELINE_DEPTH ? batch : batch.subarray(0, sent * line.length));
        }),
    ),
  );
  return Number(process.hrtime.bigint() - start);
}

async function throughput(port: number, sessions: number, commands: number): Promise<ClientResponse> {
  const open = await Promise.all(Array.from({ length: sessions }, () => openSession(port)));
  const perSession = Math.ceil(commands / sessions);
  const elapsedNs = await pipelined(
    open.map(({ socket }) => socket),
    perSession,
    COMMAND,
  );
  for (const { socket } of open) socket.destroy();
  return { kind: "throughput", elapsedNs, commands: perSession * sessions };
}

async function latency(port: number, commands: number): Promise<ClientResponse> {
  const { socket } = await openSession(port);
  const line = Buffer.from(`${COMMAND}\r\n`, "latin1");
  const samplesUs: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let start = 0n;
    socket.on("error", reject);
    const send = (): void => {
      start = process.hrtime.bigint();
      socket.write(line);
    };
    socket.on("data", (chunk: Buffer) => {
      // One command in flight: its reply is one line, possibly split over chunks.
      if (chunk[chunk.length - 1] !== LF) return;
      samplesUs.push(Number(process.hrtime.bigint() - start) / 1e3);
      if (samplesUs.length >= commands) resolve();
      else send();
    });
    send();
  });
  socket.destroy();
  return { kind: "latency", samplesUs };
}

async function probe(port: number): Promise<ClientResponse> {
  const { socket, firstReply } = await openSession(port);
  socket.write(`${COMMAND}\r\n`);
  const reply = await firstReply();
  socket.destroy();
  return { kind: "probe", reply };
}

function serveClient(): void {
  parentPort?.on("message", (request: ClientRequest) => {
    const run =
      request.kind === "throughput"
        ? throughput(request.port, request.sessions, request.commands)
        : request.kind === "latency"
          ? latency(request.port, request.commands)
          : probe(request.port);
    run.then(
      (response) => parentPort?.postMessage(response),
      (error: unknown) => parentPort?.postMessage({ kind: "error", message: String(error) } satisfies ClientResponse),
    );
  });
}

// ---------------------------------------------------------------------------
// The server side (main thread).

/** mod_test's TEST handler as a compiled-in TypeScript module: the same reply, built the same way. */
function compiledInTest(): EngineModule {
  return {
    name: "mod_test_ts.c",
    kind: "static",
    commands: [
      {
        command: "TEST",
        phase: Phases.CMD,
        run: (command) => {
          command.addResponse("200", command.arg.length > 0 ? `${GREETING}: ${command.arg}` : GREETING);
          return HandlerResults.HANDLED;
        },
      },
    ],
    siteCommands: [],
    directives: [],
    features: ["TEST"],
    help: [{ command: "TEST", text: "[<sp> text]" }],
  };
}

/**
 * mod_test.wasm's cmd_TEST called bare from a compiled-in module: one instance
 * for every session, no CPU guard, no fault containment, its host symbols
 * reading and writing strings with the host's own helpers (guest-memory.ts),
 * the literals cached as the host caches them. The sandbox's floor.
 */
function bareWasmTest(): EngineModule {
  const bytes = readFileSync(path.join(LIBEXEC_DIR, "mod_test.wasm"));
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 256 });
  let active: ActiveCommand | undefined;
  let strings: GuestStrings | undefined;
  const command = (): ActiveCommand => {
    if (active === undefined) throw new Error("bench: mod_test.wasm called a command symbol outside a command");
    return active;
  };
  const read = (ptr: number): string => (strings as GuestStrings).read(ptr);
  const env: Record<string, WebAssembly.ImportValue> = {
    memory,
    abort: () => {
      throw new Error("bench: mod_test.wasm aborted");
    },
    pr_cmd_arg: () => (strings as GuestStrings).create(command().arg),
    pr_cmd_argc: () => command().argv.length,
    pr_cmd_argv: (i: number) => (strings as GuestStrings).create(command().argv[i] ?? ""),
    pr_response_add: (code: number, text: number) => command().addResponse(read(code), read(text)),
    pr_response_add_err: (code: number, text: number) => command().addError(read(code), read(text)),
    pr_log_debug: () => {},
    pr_help_add: () => {},
    pr_feat_add: () => {},
  };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env });
  strings = guestStrings(instance, memory, readModuleShape(bytes).staticData);
  const exports = instance.exports as Record<string, () => number>;
  exports._initialize?.();
  if (exports.module_init?.() !== 0) throw new Error("bench: mod_test.wasm's module_init failed");
  const cmdTest = exports.cmd_TEST as () => number;
  return {
    name: "mod_test_bare.c",
    kind: "static",
    commands: [
      {
        command: "TEST",
        phase: Phases.CMD,
        run: (cmd) => {
          active = cmd;
          try {
            return cmdTest() === 0 ? HandlerResults.DECLINED : HandlerResults.HANDLED;
          } finally {
            active = undefined;
          }
        },
      },
    ],
    siteCommands: [],
    directives: [],
    features: ["TEST"],
    help: [{ command: "TEST", text: "[<sp> text]" }],
  };
}

let serverLogLines = 0;

interface Target {
  readonly label: "guest" | "ts" | "bare";
  readonly host: ModuleHost;
  readonly server: FtpServer;
  port: number;
}

async function startTarget(label: Target["label"]): Promise<Target> {
  const compiledIn = createCompiledInModules().modules;
  const own = label === "ts" ? [compiledInTest()] : label === "bare" ? [bareWasmTest()] : [];
  const host = new ModuleHost({ modulePath: LIBEXEC_DIR, compiledIn: [...compiledIn, ...own], guestLog: () => {} });
  if (label === "guest") host.loadModule("mod_test.c");
  const server = new FtpServer({
    acquireModules: () => host.acquireModules(),
    serverName: `bench ${label}`,
    idleTimeoutSeconds: 0,
    preLoginCommands: new Set([...PRE_LOGIN_COMMANDS, "TEST"]),
    // A handler fault would answer 451 and fail the probe; other lines (a reset at teardown) are only counted.
    log: () => {
      serverLogLines++;
    },
  });
  const address = await server.listen(0, "127.0.0.1");
  return { label, host, server, port: address.port };
}

export async function runDispatch(log: (line: string) => void): Promise<Row[]> {
  const targets = [await startTarget("guest"), await startTarget("ts"), await startTarget("bare")];
  const client = new WorkerClient<ClientRequest, ClientResponse>(
    new URL(import.meta.url),
    "dispatch-client",
    "dispatch client",
  );
  try {
    // Every server must give the same answer, or the comparison would not be of the same work.
    const expected = `200 ${GREETING}: x`;
    for (const t of targets) {
      const { reply } = (await client.ask({ kind: "probe", port: t.port })) as { reply: string };
      if (reply !== expected) throw new Error(`bench: ${t.label} server answered '${reply}', expected '${expected}'`);
    }
    // Warm-up: every path tiers up (and the wasm handlers leave Liftoff) before anything is timed.
    for (const t of targets) {
      for (const sessions of SESSION_COUNTS)
        await client.ask({ kind: "throughput", port: t.port, sessions, commands: COMMANDS_PER_SAMPLE });
      if (t.label !== "bare") await client.ask({ kind: "latency", port: t.port, commands: LATENCY_COMMANDS });
    }
    const rates = new Map<string, number[]>();
    const latencies = new Map<string, number[][]>();
    const key = (t: Target, sessions: number): string => `${t.label} ${sessions}`;
    for (let round = 0; round < ROUNDS; round++) {
      globalThis.gc?.();
      // Alternate the targets' order, so that none always follows the gc.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const sessions of SESSION_COUNTS) {
        for (const t of order) {
          const r = (await client.ask({
            kind: "throughput",
            port: t.port,
            sessions,
            commands: COMMANDS_PER_SAMPLE,
          })) as {
            elapsedNs: number;
            commands: number;
          };
          const list = rates.get(key(t, sessions)) ?? [];
          list.push(r.commands / (r.elapsedNs / 1e9));
          rates.set(key(t, sessions), list);
        }
      }
      // Latency compares the guest with the compiled-in handler only.
      for (const t of order.filter(({ label }) => label !== "bare")) {
        const r = (await client.ask({ kind: "latency", port: t.port, commands: LATENCY_COMMANDS })) as {
          samplesUs: number[];
        };
        const list = latencies.get(t.label) ?? [];
        list.push(r.samplesUs);
        latencies.set(t.label, list);
      }
    }
    if (serverLogLines > 0)
      log(`dispatch: the servers logged ${serverLogLines} lines (handler faults or socket errors)`);
    log(`dispatch: ${ROUNDS} rounds of ${COMMANDS_PER_SAMPLE} pipelined commands (window ${PIPELINE_DEPTH}) per case`);
    return rowsOf(rates, latencies);
  } finally {
    await client.close();
    for (const t of targets) {
      await t.server.close();
      t.host.close();
    }
  }
}

function rowsOf(rates: ReadonlyMap<string, number[]>, latencies: ReadonlyMap<string, number[][]>): Row[] {
  const group = "dispatch";
  const rows: Row[] = [];
  const note = `pipelined, window ${PIPELINE_DEPTH}/session, ${COMMANDS_PER_SAMPLE} commands/sample`;
  for (const sessions of SESSION_COUNTS) {
    const what = `${sessions} session${sessions === 1 ? "" : "s"}`;
    const anchor = rowOf(
      { group, name: `${group}: TEST via compiled-in TS handler, ${what}`, unit: "commands/s", note },
      rates.get(`ts ${sessions}`) ?? [],
    );
    const guest = rowOf(
      { group, name: `${group}: TEST via guest handler (mod_test.wasm), ${what}`, unit: "commands/s", note },
      rates.get(`guest ${sessions}`) ?? [],
      { name: anchor.name, figure: anchor.figure },
    );
    const bare = rowOf(
      {
        group,
        name: `${group}: TEST via the same wasm handler called bare (no sandbox), ${what}`,
        unit: "commands/s",
        note: `${note}; one instance shared, no CPU guard, no fault containment: the floor under the guest row`,
      },
      rates.get(`bare ${sessions}`) ?? [],
      { name: anchor.name, figure: anchor.figure },
    );
    const sandboxed = rowOf(
      {
        group,
        name: `${group}: TEST via guest handler against the bare wasm handler, ${what}`,
        unit: "commands/s",
        note: "what the sandbox costs: CPU guard, fault containment, the session's own instance",
      },
      rates.get(`guest ${sessions}`) ?? [],
      { name: bare.name, figure: bare.figure },
    );
    rows.push(anchor, withTarget(guest, `>= ${TARGET_RATIO}x`, guest.ratio >= TARGET_RATIO), bare, sandboxed);
  }
  const latencyNote = "1 session, one command in flight, client-side round trip";
  const anchors = percentileRows(
    { group, name: `${group}: latency of one TEST, compiled-in TS handler`, unit: "µs", note: latencyNote },
    latencies.get("ts") ?? [],
  );
  rows.push(
    ...anchors,
    ...percentileRows(
      { group, name: `${group}: latency of one TEST, guest handler`, unit: "µs", note: latencyNote },
      latencies.get("guest") ?? [],
      anchors,
    ),
  );
  return rows;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === "dispatch-client") {
  serveClient();
} else if (isMainThread && isMain(import.meta.url)) {
  // `node --expose-gc dist/bench/dispatch.js`: run alone, with dsod's heap settings as under run.ts.
  tuneHeapForModuleChurn();
  printRows(await runDispatch((line) => process.stderr.write(`${line}\n`)));
}
