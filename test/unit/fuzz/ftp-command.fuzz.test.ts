/**
 * The FTP control channel's input side under random bytes: ControlLineReader
 * (Telnet and line framing), parseCommandLine, and dispatchCommand through
 * every compiled-in module, before and after login. Whatever the client
 * sends, nothing throws, every command is answered with well-formed FTP reply
 * lines (a 3-digit code, no CR or LF inside a line, a multi-line reply closed
 * by its own code), and each answer is bounded.
 *
 * The session has no filesystem and a data channel that refuses to be used,
 * so no input reaches the disk or opens a socket: a handler that tries is a
 * fault dispatch must contain (a 451), which is what this target checks too.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Clock } from "../../../host/system/clock.js";
import { ControlLineReader, MAX_COMMAND_BYTES, parseCommandLine } from "../../../host/ftp/command-line.js";
import { lineEvents } from "../../helpers/line-events.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { DataChannel } from "../../../host/data/data-channel.js";
import { createCompiledInModules } from "../../../host/static/index.js";
import { testSession } from "../../helpers/session.js";
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, report } from "./fuzz-settings.js";

/** Bytes of reply one command may produce: HELP's command table is the longest, about 1 KB. */
const MAX_REPLY_BYTES = 16 * 1024;

/** mod_delay.c's waits come due at once: its Promise path is fuzzed without the time it would take. */
const immediateClock: Clock = {
  now: () => performance.now(),
  schedule(_ms, run) {
    const timer = setImmediate(run);
    return () => clearImmediate(timer);
  },
};

const modules = createCompiledInModules({ clock: immediateClock }).modules;

/** Every command and SITE subcommand the compiled-in modules know, and a few they do not. */
const COMMANDS = [
  ...new Set([
    ...modules.flatMap((module) => module.commands.map((handler) => handler.command)),
    ...modules.flatMap((module) => module.siteCommands.map((handler) => `SITE ${handler.command}`)),
    ...modules.flatMap((module) => module.help.map((entry) => entry.command)),
    "SITE",
    "SITE HELP",
    "HELP SITE",
    "OPTS UTF8 ON",
    "AUTH TLS",
    "XYZZY",
  ]),
];

const NO_DATA = "no data connections while fuzzing";

/** A data channel any use of which throws: a handler that reaches for it faults, and dispatch must contain that. */
const REFUSING_DATA = new Proxy(
  {},
  {
    get: () => {
      throw new Error(NO_DATA);
    },
  },
) as DataChannel;

const text = fc.oneof(
  fc.constantFrom(...COMMANDS),
  fc.constantFrom(...COMMANDS).map((command) => command.toLowerCase()),
  fc.constantFrom(
    " ",
    "  ",
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\0",
    "\r\0",
    '"',
    '\\"',
    "\\",
    "'",
    "%",
    "*",
    "/",
    "..",
    "~",
    "-",
    "_",
    ",",
    "|",
    "é",
    "\u{1F600}",
    "\u2028",
  ),
  fc.constantFrom(
    "demo",
    "anonymous",
    "root",
    "secret",
    "127,0,0,1,4,1",
    "|1|127.0.0.1|1025|",
    "|2|::1|1025|",
    "ALL",
    "UTF8",
    "-la",
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 12, unit: "binary" }),
  fc.constantFrom(
    "x".repeat(300),
    "y".repeat(MAX_COMMAND_BYTES),
    "z".repeat(MAX_COMMAND_BYTES + 2),
    "w".repeat(3 * 4102 + 10),
  ),
);

/** RFC 854 sequences: options refused, IP and DM dropped, IAC IAC, a lone IAC, and raw bytes (invalid UTF-8 too). */
const bytes = fc.oneof(
  { weight: 6, arbitrary: text.map((piece) => Buffer.from(piece, "utf8")) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        [255, 251, 1],
        [255, 252, 3],
        [255, 253, 24],
        [255, 254, 1],
        [255, 255],
        [255, 244],
        [255, 242],
        [255],
        [0xc3],
        [0xff, 0xfe],
        [0x0d],
        [0x0a],
      )
      .map((b) => Buffer.from(b)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)) },
);

/** A command line as a client might send it: a command word, then pieces, then (mostly) a line end. */
const commandLine = fc
  .tuple(
    fc.constantFrom(...COMMANDS).map((command) => Buffer.from(command)),
    fc.array(bytes, { maxLength: 6 }),
    fc.constantFrom("\r\n", "\r\n", "\r\n", "\n", "", "\r"),
  )
  .map(([command, pieces, end]) => Buffer.concat([command, ...pieces, Buffer.from(end)]));

/** A client's byte stream and how the network cuts it into reads. */
const traffic = fc.record({
  stream: fc
    .array(fc.oneof({ weight: 4, arbitrary: commandLine }, { weight: 1, arbitrary: bytes }), {
      minLength: 1,
      maxLength: 24,
      size: "medium",
    })
    .map((parts) => Buffer.concat(parts)),
  cuts: fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
  loggedIn: fc.boolean(),
});

function* reads(stream: Buffer, cuts: readonly number[]): Generator<Buffer> {
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    const size = cuts[i % cuts.length] as number;
    yield stream.subarray(at, at + size);
    at += size;
  }
}

/** Why `lines` is not one well-formed FTP reply, or undefined when it is. */
function replyProblem(lines: readonly string[]): string | undefined {
  if (lines.length === 0) return "no reply at all";
  const bad = lines.find((line) => /[\r\n]/.test(line));
  if (bad !== undefined) return `CR or LF inside ${JSON.stringify(bad)}`;
  const first = lines[0] as string;
  const last = lines.at(-1) as string;
  const opening = /^(\d{3})([ -])/.exec(first);
  if (opening === null) return `no 3-digit code: ${JSON.stringify(first)}`;
  if (lines.length === 1) return opening[2] === " " ? undefined : `a lone continuation opener ${JSON.stringify(first)}`;
  if (opening[2] !== "-") return `several lines, the first not opening a multi-line reply: ${JSON.stringify(first)}`;
  if (!last.startsWith(`${opening[1]} `))
    return `multi-line reply ${opening[1]} not closed by its code: ${JSON.stringify(last)}`;
  return undefined;
}

describe("fuzz: FTP command lines through the reader, the parser and dispatch", () => {
  it(
    "answers every command with well-formed, bounded replies and never throws",
    async () => {
      let inputs = 0;
      let commands = 0;
      let faults = 0;
      let crashes = 0;
      const faultKinds = new Map<string, number>();
      const property = fc.asyncProperty(traffic, async ({ stream, cuts, loggedIn }) => {
        inputs++;
        const session = testSession(modules, loggedIn ? "demo" : undefined, { data: REFUSING_DATA });
        const reader = new ControlLineReader();
        const problems: string[] = [];
        try {
          for (const chunk of reads(stream, cuts)) {
            for (const event of lineEvents(reader, chunk)) {
              if (event.kind === "telnet") {
                const [iac, verb] = event.reply;
                if (event.reply.length !== 3 || iac !== 255 || (verb !== 252 && verb !== 254))
                  problems.push(`telnet reply ${event.reply.join(",")}`);
                continue;
              }
              if (event.kind !== "line") continue;
              if (event.text.includes("\n") || event.text.length > MAX_COMMAND_BYTES)
                problems.push(`line of ${event.text.length} with LF or too long`);
              const line = parseCommandLine(event.text);
              if (line === undefined) continue;
              // White space as isspace(3) in the C locale: U+2028 and the like may well be in a command word.
              if (
                line.name.length === 0 ||
                /[ \t\n\v\f\r]/.test(line.name) ||
                line.name !== (line.argv[0] ?? "").toUpperCase()
              ) {
                problems.push(`command name ${JSON.stringify(line.name)} from ${JSON.stringify(line.argv[0])}`);
              }
              commands++;
              const result = await dispatchCommand(session, line, {
                onFault: (fault) => {
                  faults++;
                  const message = fault.error instanceof Error ? fault.error.message : String(fault.error);
                  const kind = `${fault.module} ${fault.command}: ${message}`;
                  faultKinds.set(kind, (faultKinds.get(kind) ?? 0) + 1);
                  // Only the data channel this session refuses may make a handler throw; anything else is a bug.
                  if (message !== NO_DATA)
                    problems.push(`${JSON.stringify(event.text.slice(0, 80))}: handler fault ${kind}`);
                },
              });
              const problem = replyProblem(result.lines);
              if (problem !== undefined) problems.push(`${JSON.stringify(event.text.slice(0, 80))}: ${problem}`);
              const size = result.lines.reduce((sum, reply) => sum + Buffer.byteLength(reply) + 2, 0);
              if (size > MAX_REPLY_BYTES)
                problems.push(`${JSON.stringify(event.text.slice(0, 80))}: ${size} bytes of reply`);
              if (session.closing) return problems.length === 0 || fail(problems);
            }
          }
        } catch (error) {
          problems.push(`threw ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        }
        return problems.length === 0 || fail(problems);
      });
      let firstProblems: readonly string[] | undefined;
      const fail = (problems: readonly string[]): false => {
        crashes++;
        firstProblems ??= problems;
        return false;
      };
      try {
        await fc.assert(property, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED });
      } finally {
        report("ftp-command", inputs, crashes);
        if (firstProblems !== undefined) console.log(firstProblems.slice(0, 5).join("\n"));
        console.log(`fuzz ftp-command: ${commands} commands dispatched, ${faults} handler faults contained`);
        for (const [kind, count] of [...faultKinds].sort((a, b) => b[1] - a[1]).slice(0, 10))
          console.log(`  ${count} × ${kind}`);
      }
      expect(crashes).toBe(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
