/**
 * Controls benchmark: the wall time of `dsoctl lsmod` as a user runs it, a
 * new node process included, against `node -e 0` (the floor any node CLI
 * pays to start) and against the bare client (controls-client.ts: node:net
 * alone connecting, sending lsmod and reading the response, the floor of any
 * node client of the socket), all three interleaved in the same run; and the
 * time of the request alone, sent in-process over the same socket with the
 * wire format dsoctl uses.
 *
 * The server is the daemon's: a ControlsServer on a temporary socket with
 * mod_dso's actions over a ModuleHost holding the compiled-in modules and
 * mod_test, `ModuleControlsACLs lsmod allow user *` and `ControlsSocketACL
 * allow user *`. It runs in this process, so the spawned clients are timed
 * asynchronously (a synchronous spawn would block the server's event loop).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl, parseSocketAcl } from "../host/controls/acl.js";
import type { IdResolver } from "../host/system/accounts.js";
import { DSO_ACTIONS, dsoControlsActions } from "../host/static/mod-dso/controls.js";
import { ControlsServer } from "../host/controls/server.js";
import { encodeMessage, MessageDecoder, REQUEST_LIMITS, RESPONSE_LIMITS } from "../host/controls/wire.js";
import type { DecodedMessage } from "../host/controls/wire.js";
import { ModuleHost } from "../host/modules/module-host.js";
import { createCompiledInModules } from "../host/static/index.js";
import { isMain, LIBEXEC_DIR, percentileRows, printRows, withTarget } from "./load.js";
import { elapsedNs, rowOf } from "./stats.js";
import type { Row } from "./stats.js";

const PROCESS_RUNS = 20;
const REQUEST_ROUNDS = 10;
const REQUESTS_PER_ROUND = 100;
/** `dsoctl lsmod` against the bare client (issue 18). */
const TARGET_RATIO = 1.15;

const DSOCTL = fileURLToPath(new URL("../host/cli/dsoctl.js", import.meta.url));
const BARE_CLIENT = fileURLToPath(new URL("./controls-client.js", import.meta.url));

/** `*` needs no lookups; any name would be unknown and dropped, as proftpd drops it. */
const NO_ACCOUNTS: IdResolver = { uidOf: () => undefined, gidOf: () => undefined };

/** Runs a command to its exit; resolves with the wall time in ms and its stdout. */
function timedSpawn(args: readonly string[]): Promise<{ ms: number; stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = elapsedNs(start) / 1e6;
      if (code !== 0) reject(new Error(`bench: ${args.join(" ")} exited ${code}: ${stderr}`));
      else resolve({ ms, stdout, code });
    });
  });
}

/** One request over the socket, as dsoctl's exchange() does it; resolves with the µs until the response is decoded. */
function request(socketPath: string, argv: readonly string[]): Promise<{ us: number; response: DecodedMessage }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const decoder = new MessageDecoder(RESPONSE_LIMITS);
    const socket = createConnection(socketPath, () => socket.write(encodeMessage(0, argv, REQUEST_LIMITS)));
    socket.on("data", (chunk: Buffer) => {
      const response = decoder.push(chunk);
      if (response === undefined) return;
      const us = elapsedNs(start) / 1e3;
      socket.destroy();
      resolve({ us, response });
    });
    socket.on("error", reject);
  });
}

export async function runControls(log: (line: string) => void): Promise<Row[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-bench-controls-"));
  const socketPath = path.join(dir, "dsod.sock");
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    compiledIn: createCompiledInModules().modules,
    guestLog: () => {},
  });
  host.loadModule("mod_test.c");
  const acls = applyActionAcl(
    EMPTY_ACL_TABLE,
    parseActionAcl(["lsmod", "allow", "user", "*"], DSO_ACTIONS, NO_ACCOUNTS),
  );
  const socketAcl = parseSocketAcl(["allow", "user", "*"], NO_ACCOUNTS);
  const server = new ControlsServer({
    socketPath,
    actions: dsoControlsActions(host, () => acls),
    socketAcl: () => socketAcl,
  });
  await server.start();
  try {
    // The first request resolves the caller's names (getent) and the first spawns warm the page cache.
    const probe = await request(socketPath, ["lsmod"]);
    const expected = ["Loaded Modules:", ...host.listModules().map((name) => `  ${name}`)];
    if (probe.response.status !== 0 || probe.response.args.join("\n") !== expected.join("\n")) {
      throw new Error(`bench: lsmod answered ${JSON.stringify(probe.response)}`);
    }
    const dsoctlArgs = [DSOCTL, "-s", socketPath, "lsmod"];
    const { stdout } = await timedSpawn(dsoctlArgs);
    if (!stdout.startsWith("dsoctl: Loaded Modules:"))
      throw new Error(`bench: dsoctl printed ${JSON.stringify(stdout)}`);
    await timedSpawn(["-e", "0"]);
    const bareArgs = [BARE_CLIENT, socketPath];
    await timedSpawn(bareArgs);

    const kinds = [
      { args: ["-e", "0"], samples: [] as number[] },
      { args: bareArgs, samples: [] as number[] },
      { args: dsoctlArgs, samples: [] as number[] },
    ];
    for (let i = 0; i < PROCESS_RUNS; i++) {
      // Rotate which goes first, so none always starts right after the same other's exit.
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(i + k) % kinds.length] as (typeof kinds)[number];
        kind.samples.push((await timedSpawn(kind.args)).ms);
      }
    }
    const [floor, bare, dsoctl] = kinds.map((kind) => kind.samples) as [number[], number[], number[]];
    const rounds: number[][] = [];
    for (let round = 0; round < REQUEST_ROUNDS; round++) {
      const samples: number[] = [];
      for (let i = 0; i < REQUESTS_PER_ROUND; i++) samples.push((await request(socketPath, ["lsmod"])).us);
      rounds.push(samples);
    }
    log(
      `controls: ${PROCESS_RUNS} runs each of node -e 0, the bare client and dsoctl, ` +
        `${REQUEST_ROUNDS}x${REQUESTS_PER_ROUND} in-process requests`,
    );

    const group = "controls";
    const anchor = rowOf(
      { group, name: `${group}: node -e 0 (process start floor)`, unit: "ms", note: "spawn to exit" },
      floor,
    );
    const client = rowOf(
      {
        group,
        name: `${group}: bare node:net client, lsmod (client floor)`,
        unit: "ms",
        note: `spawn of node ${path.relative(process.cwd(), BARE_CLIENT)} to exit`,
      },
      bare,
      { name: anchor.name, figure: anchor.figure },
    );
    const endToEnd = rowOf(
      {
        group,
        name: `${group}: dsoctl lsmod, end to end`,
        unit: "ms",
        note: `spawn of node ${path.relative(process.cwd(), DSOCTL)} to exit`,
      },
      dsoctl,
      { name: client.name, figure: client.figure },
    );
    return [
      anchor,
      client,
      withTarget(endToEnd, `<= ${TARGET_RATIO}x the bare client`, endToEnd.ratio <= TARGET_RATIO),
      ...percentileRows(
        {
          group,
          name: `${group}: lsmod request alone (in-process client)`,
          unit: "µs",
          note: "connect, request, response decoded",
        },
        rounds,
      ),
    ];
  } finally {
    await server.close();
    host.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node dist/bench/controls.js`: run alone.
if (isMain(import.meta.url)) printRows(await runControls((line) => process.stderr.write(`${line}\n`)));
