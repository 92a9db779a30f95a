import { describe, expect, it } from "vitest";
import { ControlLineReader, LineQueue, MAX_COMMAND_BYTES, parseCommandLine } from "../../../host/ftp/command-line.js";
import type { LineSink } from "../../../host/ftp/command-line.js";
import { lineEvents } from "../../helpers/line-events.js";
import type { LineEvent } from "../../helpers/line-events.js";

const bytes = (text: string): Uint8Array => Buffer.from(text, "latin1");

function lines(events: readonly LineEvent[]): string[] {
  return events.flatMap((e) => (e.kind === "line" ? [e.text] : []));
}

describe("ControlLineReader", () => {
  it("splits CRLF and bare LF lines, in order, across reads", () => {
    const reader = new ControlLineReader();
    expect(lines(lineEvents(reader, bytes("USER demo\r\nPA")))).toEqual(["USER demo"]);
    expect(lines(lineEvents(reader, bytes("SS demo\r\nNOOP\nSY")))).toEqual(["PASS demo", "NOOP"]);
    expect(lines(lineEvents(reader, bytes("ST\r\n")))).toEqual(["SYST"]);
  });

  it("decodes UTF-8 (RFC 2640)", () => {
    const reader = new ControlLineReader();
    expect(lines(lineEvents(reader, Buffer.from("TEST grüße\r\n", "utf8")))).toEqual(["TEST grüße"]);
  });

  it("refuses Telnet options and strips IAC sequences as netio.c does", () => {
    const reader = new ControlLineReader();
    // IAC WILL 1, IAC DO 3, IAC IP, IAC DM, IAC IAC (an escaped 255), IAC x (kept).
    const events = lineEvents(
      reader,
      Uint8Array.of(255, 251, 1, 78, 255, 253, 3, 79, 255, 244, 255, 242, 79, 80, 255, 255, 255, 65, 13, 10),
    );
    expect(events.filter((e) => e.kind === "telnet").map((e) => (e.kind === "telnet" ? [...e.reply] : []))).toEqual([
      [255, 254, 1],
      [255, 252, 3],
    ]);
    const line = events.find((e) => e.kind === "line");
    expect(line?.kind === "line" && Buffer.from(line.text, "utf8")).toEqual(Buffer.from("NOOP\uFFFD\uFFFDA", "utf8"));
  });

  it("keeps the Telnet state across reads", () => {
    const reader = new ControlLineReader();
    expect(lineEvents(reader, Uint8Array.of(78, 255))).toEqual([]);
    expect(lineEvents(reader, Uint8Array.of(252))).toEqual([]);
    expect(lineEvents(reader, Uint8Array.of(7, 79, 13, 10))).toEqual([
      { kind: "telnet", reply: Uint8Array.of(255, 254, 7) },
      { kind: "line", text: "NO" },
    ]);
  });

  it("takes a line of MAX_COMMAND_BYTES and drops a longer one without a reply", () => {
    const reader = new ControlLineReader();
    const longest = "A".repeat(MAX_COMMAND_BYTES);
    expect(MAX_COMMAND_BYTES).toBe(4100);
    expect(lineEvents(reader, bytes(`${longest}\r\n`))).toEqual([{ kind: "line", text: longest }]);
    expect(lineEvents(reader, bytes(`${longest}B\r\nNOOP\r\n`))).toEqual([
      { kind: "too-long" },
      { kind: "line", text: "NOOP" },
    ]);
    expect(lineEvents(reader, bytes(`${longest}B\nNOOP\n`))).toEqual([
      { kind: "too-long" },
      { kind: "line", text: "NOOP" },
    ]);
  });

  it("reports an overflow once a line runs past three command buffers, then reads nothing more", () => {
    const reader = new ControlLineReader();
    expect(lineEvents(reader, bytes("A".repeat(3 * 4102 - 1)))).toEqual([]);
    expect(lineEvents(reader, bytes("AA\r\nNOOP\r\n"))).toEqual([{ kind: "overflow" }]);
    expect(lineEvents(reader, bytes("NOOP\r\n"))).toEqual([]);
  });
});

describe("parseCommandLine", () => {
  it("upper-cases the name and keeps the argument as sent", () => {
    expect(parseCommandLine("test  Hello World")).toEqual({
      name: "TEST",
      arg: " Hello World",
      argv: ["test", "Hello", "World"],
    });
    expect(parseCommandLine("USER demo")).toEqual({ name: "USER", arg: "demo", argv: ["USER", "demo"] });
    expect(parseCommandLine("NOOP")).toEqual({ name: "NOOP", arg: "", argv: ["NOOP"] });
  });

  it("reads quoted words with backslash escapes (pr_str_get_word)", () => {
    expect(parseCommandLine('TEST "a b" "c\\"d" e')?.argv).toEqual(["TEST", "a b", 'c"d', "e"]);
  });

  it("keeps SITE arguments' embedded white space as empty words", () => {
    expect(parseCommandLine("SITE HELLO  bob")).toEqual({
      name: "SITE",
      arg: "HELLO  bob",
      argv: ["SITE", "HELLO", "", "bob"],
    });
  });

  it("strips leftover CR/LF and a leading CR, and turns CR NUL into CR (RFC 2640)", () => {
    expect(parseCommandLine("\rNOOP\r")?.name).toBe("NOOP");
    expect(parseCommandLine("TEST a\r\0b")?.arg).toBe("a\rb");
  });

  it("makes no command of an empty line or one with leading white space", () => {
    expect(parseCommandLine("")).toBeUndefined();
    expect(parseCommandLine(" NOOP")).toBeUndefined();
    expect(parseCommandLine("\tNOOP")).toBeUndefined();
  });
});

describe("ControlLineReader.takeUnterminatedAbort", () => {
  it("takes `ABOR\\r` left without its LF (sent as urgent data) and clears it", () => {
    const reader = new ControlLineReader();
    expect(lineEvents(reader, Buffer.from("NOOP\r\nABOR\r"))).toEqual([{ kind: "line", text: "NOOP" }]);
    expect(reader.takeUnterminatedAbort()).toBe(true);
    expect(reader.takeUnterminatedAbort()).toBe(false);
    expect(lineEvents(reader, Buffer.from("NOOP\r\n"))).toEqual([{ kind: "line", text: "NOOP" }]);
  });

  it("leaves any other partial line alone", () => {
    const reader = new ControlLineReader();
    lineEvents(reader, Buffer.from("ABORT\r"));
    expect(reader.takeUnterminatedAbort()).toBe(false);
    lineEvents(reader, Buffer.from("\n"));
    const other = new ControlLineReader();
    lineEvents(other, Buffer.from("abor"));
    expect(other.takeUnterminatedAbort()).toBe(false);
    expect(lineEvents(other, Buffer.from("\r\n"))).toEqual([{ kind: "line", text: "abor" }]);
  });
});

describe("parseCommandLine's command word", () => {
  it("is never a quoted string (proftpd 1.3.8b, Issue #1683)", () => {
    expect(parseCommandLine('"HELP x"')).toEqual({ name: '"HELP', arg: 'x"', argv: ['"HELP', 'x"'] });
  });
});

describe("ControlLineReader and RFC 959's abort sequence", () => {
  it("reads IAC IP IAC DM ABOR as ABOR, and as ABOR too when the urgent DM byte never arrives", () => {
    const full = new ControlLineReader();
    expect(lineEvents(full, Uint8Array.of(255, 244, 255, 242, ...Buffer.from("ABOR\r\n")))).toEqual([
      { kind: "line", text: "ABOR" },
    ]);
    const withoutUrgentByte = new ControlLineReader();
    expect(lineEvents(withoutUrgentByte, Uint8Array.of(255, 244, 255, ...Buffer.from("ABOR\r\n")))).toEqual([
      { kind: "line", text: "ABOR" },
    ]);
    // Without an IP before it, an IAC before a plain byte is kept, as netio.c keeps it.
    const plain = new ControlLineReader();
    expect(lineEvents(plain, Uint8Array.of(255, 65, 13, 10))).toEqual([{ kind: "line", text: "\uFFFDA" }]);
  });
});

describe("ControlLineReader.read", () => {
  /** A sink that writes down what it is told, in order. */
  function recorder(): { sink: LineSink; told: string[] } {
    const told: string[] = [];
    const sink: LineSink = {
      line: (text) => told.push(`line ${text}`),
      telnet: (reply) => told.push(`telnet ${reply.join(",")}`),
      tooLong: () => told.push("too-long"),
      overflow: () => told.push("overflow"),
    };
    return { sink, told };
  }

  it("tells its sink each event in the order the bytes came", () => {
    const reader = new ControlLineReader();
    const { sink, told } = recorder();
    const tooLong = `${"x".repeat(MAX_COMMAND_BYTES + 1)}\r\n`;
    reader.read(Uint8Array.of(...bytes("NOOP\r\n"), 255, 251, 1, ...bytes(`${tooLong}SY`)), sink);
    reader.read(bytes("ST\r\n"), sink);
    expect(told).toEqual(["line NOOP", "telnet 255,254,1", "too-long", "line SYST"]);
  });

  it("keeps a line longer than its first buffer whole, read a few bytes at a time", () => {
    const reader = new ControlLineReader();
    const { sink, told } = recorder();
    const text = `STOR ${"dätä-".repeat(400)}`;
    const sent = Buffer.from(`${text}\r\nNOOP\r\n`, "utf8");
    for (let at = 0; at < sent.length; at += 7) reader.read(sent.subarray(at, at + 7), sink);
    expect(told).toEqual([`line ${text}`, "line NOOP"]);
  });
});

describe("ControlLineReader.takeUnterminatedAbort's letters", () => {
  it("takes ABOR in any case, and no byte that only upper-cases near it", () => {
    const mixed = new ControlLineReader();
    lineEvents(mixed, bytes("aBoR\r"));
    expect(mixed.takeUnterminatedAbort()).toBe(true);
    for (const other of [Uint8Array.of(0xc1, 0x42, 0x4f, 0x52, 0x0d), bytes("ABOS\r"), bytes("ABOR\n")]) {
      const reader = new ControlLineReader();
      lineEvents(reader, other);
      expect(reader.takeUnterminatedAbort()).toBe(false);
    }
  });
});

describe("LineQueue", () => {
  it("gives lines back first in, first out, as it grows around its ring and shrinks once drained", () => {
    const queue = new LineQueue();
    const taken: Array<string | undefined> = [];
    for (let i = 0; i < 5; i++) queue.push(`L${i}`);
    for (let i = 0; i < 3; i++) taken.push(queue.shift());
    for (let i = 5; i < 45; i++) queue.push(`L${i}`);
    expect(queue.length).toBe(42);
    while (queue.length > 0) taken.push(queue.shift());
    expect(taken).toEqual(Array.from({ length: 45 }, (_, i) => `L${i}`));
    expect(queue.shift()).toBeUndefined();
    queue.push("again");
    expect([queue.length, queue.shift(), queue.length]).toEqual([1, "again", 0]);
  });
});

describe("parseCommandLine and toUpperCase", () => {
  it("upper-cases a name as String.prototype.toUpperCase does, outside ASCII too", () => {
    expect(parseCommandLine("NOöP x")?.name).toBe("NOÖP");
    expect(parseCommandLine("Noop")?.name).toBe("NOOP");
  });

  it("keeps white space for any first four characters that upper-case to SITE", () => {
    expect(parseCommandLine("site a  b")?.argv).toEqual(["site", "a", "", "b"]);
    // U+017F, the long s, upper-cases to S.
    expect(parseCommandLine("\u017Fite a  b")).toEqual({
      name: "SITE",
      arg: "a  b",
      argv: ["\u017Fite", "a", "", "b"],
    });
    expect(parseCommandLine("SITX a  b")?.argv).toEqual(["SITX", "a", "b"]);
  });

  it("keeps a backslash that ends a quoted word, and the character an escape names", () => {
    expect(parseCommandLine('TEST "a\\')?.argv).toEqual(["TEST", "a\\"]);
    expect(parseCommandLine('TEST "a\\"b c" d')?.argv).toEqual(["TEST", 'a"b c', "d"]);
  });
});
