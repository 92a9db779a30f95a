/**
 * The controls wire protocol under random bytes, three ways:
 *
 * - wire: MessageDecoder, for requests (the server's side) and responses
 *   (dsoctl's side), fed structured and random byte streams cut at random:
 *   it decodes messages within the limits or throws DSO_ERR_CTRLS_PROTOCOL,
 *   and never holds more than one maximal message plus the chunk just read;
 * - requests: the server's handling without the socket, the very functions
 *   ControlsServer calls (decoder, dispatchRequest over mod_dso's real
 *   actions and a real ModuleHost, responseFor): every request gets one
 *   response that fits RESPONSE_LIMITS and decodes back to what was sent;
 * - socket: a few of those streams through a real ControlsServer, which
 *   answers each or closes it, and keeps serving.
 */
import { inspect } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyActionAcl, EMPTY_ACL_TABLE, parseActionAcl, parseSocketAcl } from "../../../host/controls/acl.js";
import type { AclTable } from "../../../host/controls/acl.js";
import { currentHost, dsoControlsActions, DSO_ACTIONS } from "../../../host/static/mod-dso/controls.js";
import { ControlsServer } from "../../../host/controls/server.js";
import { dispatchRequest, responseFor } from "../../../host/controls/exchange.js";
import type { ControlsCaller, ControlsResult } from "../../../host/controls/exchange.js";
import { ControlsStatus, MessageDecoder, REQUEST_LIMITS, RESPONSE_LIMITS } from "../../../host/controls/wire.js";
import type { DecodedMessage, WireLimits } from "../../../host/controls/wire.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import type { EngineModule } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { SystemAccounts } from "../../../host/system/accounts.js";
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, report } from "./fuzz-settings.js";

/** Through a real socket each input costs a connection: a fiftieth of the inputs, at least 20. */
const SOCKET_RUNS = Math.max(20, Math.floor(FUZZ_RUNS / 50));

const INT_BYTES = 4;

/** The most bytes a message within `limits` can take. */
function largestMessage(limits: WireLimits): number {
  return (
    2 * INT_BYTES + limits.maxArgs * INT_BYTES + limits.maxFirstArgBytes + (limits.maxArgs - 1) * limits.maxArgBytes
  );
}

function uint(value: number): Buffer {
  const bytes = Buffer.alloc(INT_BYTES);
  bytes.writeUInt32LE(value >>> 0, 0);
  return bytes;
}

/** Arguments near and past the limits, in text and in raw bytes (invalid UTF-8 too). */
const argument = fc
  .oneof(
    fc.constantFrom(
      "insmod",
      "lsmod",
      "rmmod",
      "help",
      "-v",
      "mod_test.c",
      "mod_sql.c",
      "mod_dso.c",
      "mod_ctrls.c",
      "mod_core.c",
      "mod_x.cpp",
      "foo",
      "",
    ),
    fc.string({ maxLength: 40 }),
    fc.string({ maxLength: 12, unit: "binary" }),
    fc.constantFrom(126, 127, 128, 255, 256, 257, 1023, 1024).map((n) => `mod_${"a".repeat(Math.max(0, n - 6))}.c`),
  )
  .map((text) => Buffer.from(text, "utf8"));
const rawArgument = fc.oneof(
  { weight: 5, arbitrary: argument },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)) },
);

/** `arbitrary` once in `every` draws, null otherwise. */
function sometimes<T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });
}

/** A message whose counts and lengths mostly tell the truth, sometimes lie, and may be cut short. */
const framed = fc
  .record({
    status: fc.oneof(fc.constant(0), fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })),
    args: fc.oneof(fc.array(rawArgument, { maxLength: 4 }), fc.array(rawArgument, { maxLength: 34 })),
    argcDelta: fc.oneof(
      { weight: 8, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }) },
    ),
    hugeArgc: sometimes(fc.constantFrom(33, 1024, 1025, 0x7fff_ffff, 0xffff_ffff), 10),
    lie: sometimes(
      fc.record({ index: fc.nat(), length: fc.constantFrom(0, 1, 257, 1024, 0x4000_0000, 0xffff_ffff) }),
      6,
    ),
    cut: sometimes(fc.nat(), 6),
  })
  .map(({ status, args, argcDelta, hugeArgc, lie, cut }) => {
    const header = Buffer.alloc(INT_BYTES);
    header.writeInt32LE(status, 0);
    const argc = hugeArgc ?? Math.max(0, args.length + argcDelta);
    const parts = [header, uint(argc)];
    args.forEach((arg, index) => {
      const length = lie !== null && lie.index % Math.max(1, args.length) === index ? lie.length : arg.length;
      parts.push(uint(length), arg);
    });
    const bytes = Buffer.concat(parts);
    return cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  });

const stream = fc.record({
  bytes: fc
    .array(
      fc.oneof(
        { weight: 4, arbitrary: framed },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
      ),
      {
        minLength: 1,
        maxLength: 3,
      },
    )
    .map((parts) => Buffer.concat(parts)),
  cuts: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 6 }),
});

function* reads(bytes: Buffer, cuts: readonly number[]): Generator<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = cuts[i % cuts.length] as number;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

/** Why `message` breaks `limits`, or undefined. */
function limitProblem(message: DecodedMessage, limits: WireLimits): string | undefined {
  if (message.args.length > limits.maxArgs || message.args.length < limits.minArgs)
    return `${message.args.length} arguments`;
  const long = message.args.findIndex(
    (arg, i) => Buffer.byteLength(arg) > (i === 0 ? limits.maxFirstArgBytes : limits.maxArgBytes),
  );
  return long < 0 ? undefined : `argument ${long + 1} of ${Buffer.byteLength(message.args[long] as string)} bytes`;
}

const isProtocolError = (error: unknown): boolean =>
  error instanceof DsoError && error.code === ErrorCodes.CTRLS_PROTOCOL;

/** Runs `property` with the fuzz settings and reports; `crashes` counts what broke an invariant. */
async function check(
  target: string,
  property: fc.IAsyncProperty<[{ bytes: Buffer; cuts: number[] }]>,
  runs: number,
  counts: { inputs: number; crashes: number; problem: string | undefined },
): Promise<void> {
  try {
    await fc.assert(property, { numRuns: runs, seed: FUZZ_SEED });
  } finally {
    report(target, counts.inputs, counts.crashes);
    if (counts.problem !== undefined) console.log(counts.problem);
  }
  expect(counts.crashes).toBe(0);
}

const accounts = new SystemAccounts();
const me: ControlsCaller = {
  uid: process.getuid?.() ?? 0,
  gid: process.getgid?.() ?? 0,
  pid: process.pid,
  user: "me",
  group: "me",
};
const moduleDir = mkdtempSync(path.join(tmpdir(), "dso-fuzz-"));
const COMPILED_IN = ["mod_core.c", "mod_dso.c", "mod_ctrls.c", "mod_ls.c"];
const staticModule = (name: string): EngineModule => ({
  name,
  kind: "static",
  commands: [],
  siteCommands: [],
  directives: [],
  features: [],
  help: [],
});
let host: ModuleHost;
const acls: AclTable = applyActionAcl(
  EMPTY_ACL_TABLE,
  parseActionAcl(["all", "allow", "user", "*"], DSO_ACTIONS, accounts),
);
const actions = dsoControlsActions(
  currentHost(() => host),
  () => acls,
);
const socketPath = path.join(moduleDir, "ctl.sock");
const server = new ControlsServer({
  socketPath,
  actions,
  socketAcl: () => parseSocketAcl(["allow", "user", "*"], accounts),
  maxClients: 5,
  requestTimeoutMs: 2_000,
});

beforeAll(async () => {
  // An empty module path: insmod of any well-formed name is a quick ENOENT, never a real load.
  host = new ModuleHost({
    modulePath: moduleDir,
    compiledIn: COMPILED_IN.map(staticModule),
    protectedModules: ["mod_dso.c", "mod_ctrls.c"],
  });
  await server.start();
});

afterAll(async () => {
  await server.close();
  host.close();
  rmSync(moduleDir, { recursive: true, force: true });
});

describe("fuzz: the controls wire protocol", () => {
  it.each([
    ["wire-request", REQUEST_LIMITS],
    ["wire-response", RESPONSE_LIMITS],
  ] as const)(
    "%s: decodes messages within the limits or refuses with DSO_ERR_CTRLS_PROTOCOL, holding one message at most",
    async (target, limits) => {
      const counts = { inputs: 0, crashes: 0, problem: undefined as string | undefined };
      const bound = largestMessage(limits);
      const property = fc.asyncProperty(stream, async ({ bytes, cuts }) => {
        counts.inputs++;
        const decoder = new MessageDecoder(limits);
        const fail = (problem: string): false => {
          counts.crashes++;
          counts.problem ??= `${target}: ${problem}`;
          return false;
        };
        try {
          for (const chunk of reads(bytes, cuts)) {
            let message = decoder.push(chunk);
            while (message !== undefined) {
              const problem = limitProblem(message, limits);
              if (problem !== undefined) return fail(problem);
              message = decoder.push(new Uint8Array(0));
            }
            if (decoder.pendingBytes > bound + chunk.length) return fail(`${decoder.pendingBytes} bytes held`);
          }
        } catch (error) {
          if (!isProtocolError(error))
            return fail(error instanceof Error ? (error.stack ?? error.message) : String(error));
        }
        return true;
      });
      await check(target, property, FUZZ_RUNS, counts);
    },
    FUZZ_TIMEOUT_MS,
  );

  it(
    "requests: every request is answered with one response that fits RESPONSE_LIMITS and decodes back",
    async () => {
      const counts = { inputs: 0, crashes: 0, problem: undefined as string | undefined };
      let answered = 0;
      let dispatched = 0;
      const property = fc.asyncProperty(stream, async ({ bytes, cuts }) => {
        counts.inputs++;
        const fail = (problem: string): false => {
          counts.crashes++;
          counts.problem ??= `requests: ${problem}`;
          return false;
        };
        // As ControlsServer#accept: the first request or protocol error is answered, the rest dropped.
        const decoder = new MessageDecoder(REQUEST_LIMITS);
        let result: ControlsResult | undefined;
        try {
          for (const chunk of reads(bytes, cuts)) {
            let request: DecodedMessage | undefined;
            try {
              request = decoder.push(chunk);
            } catch (error) {
              if (!isProtocolError(error)) return fail(`decoder threw ${String(error)}`);
              result = { status: ControlsStatus.FAILED, lines: [(error as Error).message] };
              break;
            }
            if (request !== undefined) {
              dispatched++;
              result = await dispatchRequest(actions, request.args, me);
              break;
            }
          }
          if (result === undefined && decoder.inMessage)
            result = { status: ControlsStatus.FAILED, lines: ["controls request is truncated"] };
          if (result === undefined) return true;
          answered++;
          const { sent, bytes: response } = responseFor(result);
          const decoded = new MessageDecoder(RESPONSE_LIMITS).push(response);
          if (decoded === undefined) return fail(`a response of ${response.length} bytes does not decode whole`);
          if (decoded.status !== sent.status || decoded.args.join("\n") !== sent.lines.join("\n"))
            return fail("the response decodes to something else");
          if (sent.lines.length === 0 && sent.status !== ControlsStatus.OK)
            return fail(`status ${sent.status} with no line saying why`);
        } catch (error) {
          return fail(error instanceof Error ? (error.stack ?? error.message) : String(error));
        } finally {
          // Every input meets the same host: what an rmmod took out comes back.
          for (const name of COMPILED_IN) if (!host.isLoaded(name)) host.loadModule(name);
        }
        return true;
      });
      await check("controls-requests", property, FUZZ_RUNS, counts);
      console.log(
        `fuzz controls-requests: ${answered} requests answered, ${dispatched} of them decoded and dispatched`,
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it(
    "socket: a real ControlsServer answers or closes each stream, and keeps serving",
    async () => {
      const counts = { inputs: 0, crashes: 0, problem: undefined as string | undefined };
      let responses = 0;
      const property = fc.asyncProperty(stream, async ({ bytes, cuts }) => {
        counts.inputs++;
        const outcome = await new Promise<{ response: DecodedMessage | undefined; error: unknown }>((resolve) => {
          const decoder = new MessageDecoder(RESPONSE_LIMITS);
          let response: DecodedMessage | undefined;
          let error: unknown;
          const socket = createConnection(socketPath, () => {
            for (const chunk of reads(bytes, cuts)) socket.write(chunk);
            socket.end();
          });
          socket.on("data", (chunk: Buffer) => {
            try {
              response ??= decoder.push(chunk);
            } catch (caught) {
              error = caught;
            }
          });
          // EPIPE or ECONNRESET: the server answered and closed while this client still wrote.
          socket.on("error", () => {});
          socket.on("close", () => resolve({ response, error }));
        });
        // Any byte at all starts a request, and a request ends in a response: decoded, refused, or truncated.
        if (outcome.error !== undefined || (outcome.response === undefined && bytes.length > 0)) {
          counts.crashes++;
          counts.problem ??= `socket: ${outcome.error === undefined ? "no response" : inspect(outcome.error)} for ${bytes.length} bytes`;
          return false;
        }
        if (outcome.response !== undefined) responses++;
        return true;
      });
      await check("controls-socket", property, SOCKET_RUNS, counts);
      console.log(`fuzz controls-socket: ${responses} responses`);
    },
    FUZZ_TIMEOUT_MS,
  );
});
