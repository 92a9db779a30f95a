#!/usr/bin/env node
/**
 * dsoctl: proftpd's ftpdctl (src/ftpdctl.c) for dsod.
 *
 *   dsoctl [-s SOCKET] [-v] [--json] ACTION [ARGS...]
 *
 * Sends one request over the controls socket and prints each response line
 * as `dsoctl: <line>`, as ftpdctl does. Options end at the action, so
 * `dsoctl lsmod -v` passes `-v` to lsmod.
 *
 * Exit codes. ftpdctl 1.3.8 exits 0 whenever any response arrived, even
 * `access denied`; scripts need more, so we follow upstream's direction
 * (Issue #1114: the exit code tells the response status):
 *
 *   0   every operation succeeded
 *   1   usage error: no action, bad option, relative -s, a request over the
 *       wire limits (32 arguments, 256 bytes each)
 *   2   access denied (the socket ACL, the action's ACL, or an unidentified client)
 *   3   some operation failed (status -1: an insmod or rmmod name that failed,
 *       missing or wrong parameters)
 *   4   unsupported action
 *   69  cannot contact the server, or it closed without a usable response,
 *       or this client cannot create the file dsod asks for to prove its
 *       uid (EX_UNAVAILABLE)
 *   75  the server is busy serving ControlsMaxClients clients; try again
 *       (EX_TEMPFAIL)
 *
 * `--json` prints the response as one JSON object `{"status":N,"lines":[...]}`
 * instead of prefixed lines, for every action; the exit code is the same.
 *
 * A dsod without its peercred addon answers the request first with an
 * IDENTIFY challenge naming a file; dsoctl creates it (exclusively, mode
 * 0600, so that its owner is this process's uid), says `identify NAME`,
 * waits for the real response and removes the file (docs/security.md).
 *
 * Start-up is kept lean: the process lives for one request, and each module
 * file the ESM loader resolves, reads and links costs it about a millisecond,
 * so we load four small ones (the wire format and its errors, the default
 * socket path, the stdio helper). Node built-ins are taken with
 * process.getBuiltinModule rather than `import` for the same reason: an
 * import goes through the loader too, and builds a namespace that evaluates
 * the module's lazy members (node:util's MIMEType, node:net's BlockList...),
 * about 2 ms for these three.
 *
 * What is left is Node's: against a bare node:net client that sends lsmod and
 * reads the answer (bench/controls-client.ts), dsoctl costs 1.05x the CPU on
 * Node 20 and 1.14x on Node 24 (bench/controls.ts has the wall times). The
 * rest was measured and not taken: all five files merged into one saves
 * 0.7 ms of CPU on Node 20 (1.3 ms on 24); Node 22's compile cache
 * (NODE_COMPILE_CACHE) saves nothing measurable on 24; a V8 startup snapshot
 * (`node --build-snapshot`, works on Node 20) needs a launcher to pass
 * --snapshot-blob, and deserializing even an empty one costs 3.5 ms of CPU
 * more than `node -e 0`.
 */
import { DEFAULT_CONTROLS_SOCKET } from "../controls/default-socket.js";
import {
  ControlsStatus,
  encodeMessage,
  IDENTIFY_ACTION,
  identifyChallengePath,
  MessageDecoder,
  REQUEST_LIMITS,
  RESPONSE_LIMITS,
} from "../controls/wire.js";
import type { DecodedMessage } from "../controls/wire.js";
import { exitQuietlyOnClosedOutput } from "../system/stdio.js";

const { closeSync, constants, fchmodSync, lstatSync, openSync, unlinkSync } = process.getBuiltinModule("node:fs");
const { createConnection } = process.getBuiltinModule("node:net");
const { basename, dirname, isAbsolute } = process.getBuiltinModule("node:path");
const { getSystemErrorMap, parseArgs } = process.getBuiltinModule("node:util");

const PROGRAM = "dsoctl";

const ExitCodes = {
  OK: 0,
  USAGE: 1,
  ACCESS_DENIED: 2,
  FAILED: 3,
  UNSUPPORTED: 4,
  UNAVAILABLE: 69,
  BUSY: 75,
} as const;

/** ftpdctl's usage text: four lines and an empty one, on stdout. */
const USAGE = [
  `usage: ${PROGRAM} [options] action [args...]`,
  "  -h\tdisplays this message",
  "  -s\tspecify an alternate local socket",
  "  -v\tdisplays more verbose information",
  "  --json\tprints the response as one JSON object",
  "",
].join("\n");

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  socket: { type: "string", short: "s" },
  verbose: { type: "boolean", short: "v" },
  json: { type: "boolean" },
} as const;

interface Invocation {
  readonly socket: string;
  readonly verbose: boolean;
  readonly json: boolean;
  readonly request: readonly string[];
}

class UsageError extends Error {}

/**
 * Splits argv at the action: everything before it is ours, everything from
 * it on is the request. A first pass in non-strict mode finds where the
 * first positional starts (an option's value is not one); the strict pass
 * then checks our part alone.
 */
function parseCommandLine(argv: readonly string[]): Invocation | "help" {
  const { tokens } = parseArgs({
    args: [...argv],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const actionAt = tokens.find((token) => token.kind === "positional")?.index ?? argv.length;
  let values;
  try {
    ({ values } = parseArgs({
      args: argv.slice(0, actionAt),
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help === true) {
    return "help";
  }
  const socket = values.socket ?? DEFAULT_CONTROLS_SOCKET;
  if (!isAbsolute(socket)) {
    throw new UsageError("alternate socket path must be an absolute path");
  }
  return { socket, verbose: values.verbose === true, json: values.json === true, request: argv.slice(actionAt) };
}

/** The response status as an exit code (see the header). */
function exitCodeOf(status: number): number {
  switch (status) {
    case ControlsStatus.OK:
      return ExitCodes.OK;
    case ControlsStatus.ACCESS_DENIED:
      return ExitCodes.ACCESS_DENIED;
    case ControlsStatus.UNSUPPORTED:
      return ExitCodes.UNSUPPORTED;
    case ControlsStatus.BUSY:
      return ExitCodes.BUSY;
    default:
      return ExitCodes.FAILED;
  }
}

/** strerror(3)'s wording: libuv's messages are glibc's, lower-cased. */
function strerror(error: NodeJS.ErrnoException): string {
  const message = error.errno === undefined ? undefined : getSystemErrorMap().get(error.errno)?.[1];
  return message === undefined ? error.message : message.charAt(0).toUpperCase() + message.slice(1);
}

class UnavailableError extends Error {}

/** Creates the file a challenge names, owned by this process's uid, and returns its name for `identify NAME`. */
function createProof(file: string, socketPath: string): string {
  const fail: (why: string) => never = (why) => {
    throw new UnavailableError(`unable to prove this client's uid to '${socketPath}': ${why}`);
  };
  let fd: number;
  try {
    // A real directory, not a link a stranger's server set up to send root's file elsewhere.
    if (!lstatSync(dirname(file)).isDirectory()) fail(`'${dirname(file)}' is not a directory`);
    fd = openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if (error instanceof UnavailableError) throw error;
    return fail(strerror(error as NodeJS.ErrnoException));
  }
  try {
    // Exactly 0600, whatever the umask took away.
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
  return basename(file);
}

/** Connects, sends the request (and a proof of its uid if asked) and resolves with the one response. */
function exchange(socketPath: string, request: Buffer, verbose: (line: string) => void): Promise<DecodedMessage> {
  let proof: string | undefined;
  return new Promise<DecodedMessage>((resolve, reject) => {
    const decoder = new MessageDecoder(RESPONSE_LIMITS);
    let connected = false;
    const socket = createConnection(socketPath, () => {
      connected = true;
      verbose("sending control request");
      socket.write(request);
      verbose("receiving control response");
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        let response = decoder.push(chunk);
        const file =
          response !== undefined && proof === undefined ? identifyChallengePath(response, socketPath) : undefined;
        if (file !== undefined) {
          verbose(`proving this client's uid with '${file}'`);
          const name = createProof(file, socketPath);
          proof = file;
          socket.write(encodeMessage(0, [IDENTIFY_ACTION, name]));
          response = decoder.push(Buffer.alloc(0));
        }
        if (response !== undefined) {
          socket.destroy();
          resolve(response);
        }
      } catch (error) {
        socket.destroy();
        reject(
          error instanceof UnavailableError
            ? error
            : new UnavailableError(`error receiving response from '${socketPath}': ${(error as Error).message}`),
        );
      }
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      reject(
        new UnavailableError(
          connected
            ? `error receiving response from '${socketPath}': ${strerror(error)}`
            : `error contacting server using '${socketPath}': ${strerror(error)}`,
        ),
      );
    });
    socket.on("end", () => {
      reject(new UnavailableError(`error receiving response from '${socketPath}': connection closed by the server`));
    });
  }).finally(() => {
    if (proof === undefined) return;
    try {
      unlinkSync(proof);
    } catch {
      // dsod removed it already.
    }
  });
}

async function main(argv: readonly string[]): Promise<number> {
  const out = (line: string): void => {
    process.stdout.write(`${PROGRAM}: ${line}\n`);
  };
  let invocation: Invocation | "help";
  try {
    invocation = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${PROGRAM}: ${error.message}\n`);
    return ExitCodes.USAGE;
  }
  if (invocation === "help") {
    process.stdout.write(USAGE);
    return ExitCodes.OK;
  }
  const { socket, request } = invocation;
  const verbose = invocation.verbose ? out : () => {};
  if (request.length === 0) {
    // ftpdctl prints this one on stdout.
    out("missing required action");
    return ExitCodes.USAGE;
  }
  for (const arg of request) {
    verbose(`adding "${arg}" to reqargv`);
  }
  let bytes: Buffer;
  try {
    bytes = encodeMessage(0, request, REQUEST_LIMITS);
  } catch (error) {
    process.stderr.write(`${PROGRAM}: ${(error as Error).message}\n`);
    return ExitCodes.USAGE;
  }
  verbose(`contacting server using '${socket}'`);
  let response: DecodedMessage;
  try {
    response = await exchange(socket, bytes, verbose);
  } catch (error) {
    if (!(error instanceof UnavailableError)) throw error;
    process.stderr.write(`${PROGRAM}: ${error.message}\n`);
    return ExitCodes.UNAVAILABLE;
  }
  if (invocation.json) {
    process.stdout.write(`${JSON.stringify({ status: response.status, lines: response.args })}\n`);
  } else {
    response.args.forEach(out);
  }
  return exitCodeOf(response.status);
}

exitQuietlyOnClosedOutput();
process.exitCode = await main(process.argv.slice(2));
