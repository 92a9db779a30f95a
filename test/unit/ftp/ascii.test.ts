import { describe, expect, it } from "vitest";
import { FromCrlf, ToCrlf } from "../../../host/ftp/ascii.js";

/** Runs `converter` over `chunks`, flushing at the end when it can. */
function run(converter: ToCrlf | FromCrlf, chunks: readonly string[]): string {
  const parts = chunks.map((chunk) => converter.push(Buffer.from(chunk, "latin1")));
  if (converter instanceof FromCrlf) parts.push(converter.end());
  return Buffer.concat(parts).toString("latin1");
}

/** Every way of cutting `text` into two or three chunks. */
function splits(text: string): string[][] {
  const out: string[][] = [[text]];
  for (let i = 0; i <= text.length; i++) {
    out.push([text.slice(0, i), text.slice(i)]);
    for (let j = i; j <= text.length; j++) out.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
  }
  return out;
}

describe("TYPE A going out (pr_ascii_ftp_to_crlf)", () => {
  it("gives every bare LF a CR and leaves CRLF and lone CRs alone", () => {
    expect(run(new ToCrlf(), ["a\nb\r\nc\rd\n\n"])).toBe("a\r\nb\r\nc\rd\r\n\r\n");
    expect(run(new ToCrlf(), ["\n"])).toBe("\r\n");
  });

  it("does not add a CR to an LF whose CR ended the previous chunk", () => {
    expect(run(new ToCrlf(), ["line\r", "\nnext\n"])).toBe("line\r\nnext\r\n");
    expect(run(new ToCrlf(), ["line", "\n"])).toBe("line\r\n");
  });

  it("gives the same bytes however the data is cut", () => {
    const text = "a\r\n\n\r\r\nb\n\r";
    const whole = run(new ToCrlf(), [text]);
    expect(whole).toBe("a\r\n\r\n\r\r\nb\r\n\r");
    for (const chunks of splits(text)) expect(run(new ToCrlf(), chunks)).toBe(whole);
  });
});

describe("TYPE A coming in (pr_ascii_ftp_from_crlf)", () => {
  it("drops the CR of each CRLF and keeps other CRs", () => {
    expect(run(new FromCrlf(), ["a\r\nb\rc\n\r\r\n"])).toBe("a\nb\rc\n\r\n");
  });

  it("holds a CR that ends a chunk until the next byte says what it is", () => {
    const converter = new FromCrlf();
    expect(converter.push(Buffer.from("line\r")).toString()).toBe("line");
    expect(converter.push(Buffer.from("\nnext\r")).toString()).toBe("\nnext");
    expect(converter.push(Buffer.from("x")).toString()).toBe("\rx");
  });

  it("keeps a CR the data ends with", () => {
    expect(run(new FromCrlf(), ["end\r"])).toBe("end\r");
    expect(run(new FromCrlf(), ["a\r", ""])).toBe("a\r");
  });

  it("gives the same bytes however the data is cut", () => {
    const text = "a\r\n\r\r\n\n\rb\r";
    const whole = run(new FromCrlf(), [text]);
    expect(whole).toBe("a\n\r\n\n\rb\r");
    for (const chunks of splits(text)) expect(run(new FromCrlf(), chunks)).toBe(whole);
  });
});
