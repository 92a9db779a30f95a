import { endianness } from "node:os";
import { describe, expect, it } from "vitest";
import { ErrorCodes } from "../../../host/errors.js";
import {
  encodeMessage,
  MessageDecoder,
  REQUEST_LIMITS,
  RESPONSE_LIMITS,
  type DecodedMessage,
  type WireLimits,
} from "../../../host/controls/wire.js";

/** Builds the bytes proftpd's pr_ctrls_send_msg writes on a little-endian host. */
function le(status: number, args: readonly (string | Buffer)[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32LE(status, 0);
  head.writeUInt32LE(args.length, 4);
  const parts: Buffer[] = [head];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : arg;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(bytes.length, 0);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

function headerBytes(status: number, argc: number, lengths: number[]): Buffer {
  const out = Buffer.alloc(8 + 4 * lengths.length);
  out.writeInt32LE(status, 0);
  out.writeUInt32LE(argc, 4);
  lengths.forEach((len, i) => out.writeUInt32LE(len, 8 + 4 * i));
  return out;
}

function decodeAll(limits: WireLimits, bytes: Buffer): DecodedMessage | undefined {
  return new MessageDecoder(limits).push(bytes);
}

function protocolError(fn: () => unknown): { code: unknown; message: unknown } {
  try {
    fn();
  } catch (error) {
    return { code: Reflect.get(error as object, "code"), message: Reflect.get(error as object, "message") };
  }
  throw new Error("expected a protocol error");
}

describe.runIf(endianness() === "LE")("controls wire format (little-endian host)", () => {
  it("encodes a request exactly as pr_ctrls_send_msg does", () => {
    expect(encodeMessage(0, ["insmod", "mod_copy.c"]).toString("hex")).toBe(
      "00000000" + "02000000" + "06000000" + "696e736d6f64" + "0a000000" + "6d6f645f636f70792e63",
    );
  });

  it("encodes a negative status as a signed int", () => {
    expect(encodeMessage(-1, ["access denied"])).toEqual(le(-1, ["access denied"]));
    expect(encodeMessage(-1, []).toString("hex")).toBe("ffffffff00000000");
  });

  it("counts UTF-8 bytes, not UTF-16 units", () => {
    expect(encodeMessage(0, ["é"]).toString("hex")).toBe("00000000010000000200000" + "0c3a9");
  });

  it("decodes what it encodes", () => {
    const message = decodeAll(
      RESPONSE_LIMITS,
      encodeMessage(-1, ["error loading 'mod_x.c': Bad module name", "", "ü"]),
    );
    expect(message).toEqual({ status: -1, args: ["error loading 'mod_x.c': Bad module name", "", "ü"] });
  });

  it("keeps a half-sent message pending, byte by byte", () => {
    const bytes = le(0, ["rmmod", "mod_ban.c"]);
    const decoder = new MessageDecoder(REQUEST_LIMITS);
    for (let i = 0; i < bytes.length - 1; i++) {
      expect(decoder.push(bytes.subarray(i, i + 1))).toBeUndefined();
    }
    expect(decoder.pendingBytes).toBe(bytes.length - 1 - 4 - 4 - 4 - 5);
    expect(decoder.push(bytes.subarray(bytes.length - 1))).toEqual({ status: 0, args: ["rmmod", "mod_ban.c"] });
    expect(decoder.pendingBytes).toBe(0);
  });

  it("splits a multi-byte character across chunks without corrupting it", () => {
    const bytes = le(0, ["lsmod", "ß"]);
    const decoder = new MessageDecoder(REQUEST_LIMITS);
    expect(decoder.push(bytes.subarray(0, bytes.length - 1))).toBeUndefined();
    expect(decoder.push(bytes.subarray(bytes.length - 1))).toEqual({ status: 0, args: ["lsmod", "ß"] });
  });

  it("returns messages one at a time and keeps the bytes after the first", () => {
    const decoder = new MessageDecoder(RESPONSE_LIMITS);
    const first = le(0, ["'mod_a.c' loaded"]);
    const second = le(-1, ["b"]);
    expect(decoder.push(Buffer.concat([first, second.subarray(0, 6)]))).toEqual({
      status: 0,
      args: ["'mod_a.c' loaded"],
    });
    expect(decoder.pendingBytes).toBe(6);
    expect(decoder.push(second.subarray(6))).toEqual({ status: -1, args: ["b"] });
  });

  it("accepts a response with no lines but not a request without an action", () => {
    expect(decodeAll(RESPONSE_LIMITS, le(0, []))).toEqual({ status: 0, args: [] });
    expect(protocolError(() => decodeAll(REQUEST_LIMITS, le(0, [])))).toEqual({
      code: ErrorCodes.CTRLS_PROTOCOL,
      message: "controls request has no action",
    });
  });

  describe("request limits (pr_ctrls_recv_request)", () => {
    it("accepts 32 arguments and rejects 33 as soon as the count arrives", () => {
      const args = ["insmod", ...Array.from({ length: 31 }, (_, i) => `mod_${i}.c`)];
      expect(decodeAll(REQUEST_LIMITS, le(0, args))?.args).toEqual(args);
      expect(protocolError(() => decodeAll(REQUEST_LIMITS, headerBytes(0, 33, [])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls request has 33 arguments, more than the maximum of 32",
      });
    });

    it("accepts a 127-byte action and rejects a 128-byte one", () => {
      expect(decodeAll(REQUEST_LIMITS, le(0, ["a".repeat(127)]))?.args).toEqual(["a".repeat(127)]);
      expect(protocolError(() => decodeAll(REQUEST_LIMITS, headerBytes(0, 1, [128])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls request action is 128 bytes, more than the maximum of 127",
      });
    });

    it("accepts a 256-byte argument and rejects a 257-byte one before its bytes arrive", () => {
      expect(decodeAll(REQUEST_LIMITS, le(0, ["insmod", "m".repeat(256)]))?.args[1]).toHaveLength(256);
      const decoder = new MessageDecoder(REQUEST_LIMITS);
      expect(decoder.push(le(0, ["insmod", "x"]).subarray(0, 4 + 4 + 4 + 6))).toBeUndefined();
      const len = Buffer.alloc(4);
      len.writeUInt32LE(257, 0);
      expect(protocolError(() => decoder.push(len))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls request argument 2 is 257 bytes, more than the maximum of 256",
      });
    });

    it("rejects a 4 GiB length without waiting for (or allocating) it", () => {
      expect(protocolError(() => decodeAll(REQUEST_LIMITS, headerBytes(0, 1, [0xffff_ffff])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls request action is 4294967295 bytes, more than the maximum of 127",
      });
    });

    it("rejects an argument that is not UTF-8", () => {
      expect(protocolError(() => decodeAll(REQUEST_LIMITS, le(0, ["lsmod", Buffer.from([0xff, 0xfe])])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls request argument 2 is not valid UTF-8",
      });
    });
  });

  describe("response limits (pr_ctrls_recv_response)", () => {
    it("accepts 1024 lines and rejects 1025", () => {
      const lines = Array.from({ length: 1024 }, (_, i) => `  mod_${i}.c`);
      expect(decodeAll(RESPONSE_LIMITS, le(0, lines))?.args).toHaveLength(1024);
      expect(protocolError(() => decodeAll(RESPONSE_LIMITS, headerBytes(0, 1025, [])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls response has 1025 lines, more than the maximum of 1024",
      });
    });

    it("accepts 1023-byte lines and rejects a 1024-byte one", () => {
      expect(decodeAll(RESPONSE_LIMITS, le(0, ["r".repeat(1023), "s".repeat(1023)]))?.args[1]).toHaveLength(1023);
      expect(protocolError(() => decodeAll(RESPONSE_LIMITS, headerBytes(0, 1, [1024])))).toEqual({
        code: ErrorCodes.CTRLS_PROTOCOL,
        message: "controls response line 1 is 1024 bytes, more than the maximum of 1023",
      });
    });
  });

  describe("encodeMessage with limits refuses what the peer would reject", () => {
    it("names the broken limit", () => {
      expect(protocolError(() => encodeMessage(0, ["lsmod", "x".repeat(257)], REQUEST_LIMITS)).message).toBe(
        "controls request argument 2 is 257 bytes, more than the maximum of 256",
      );
      expect(protocolError(() => encodeMessage(0, ["ok", "é".repeat(512)], RESPONSE_LIMITS)).message).toBe(
        "controls response line 2 is 1024 bytes, more than the maximum of 1023",
      );
      expect(protocolError(() => encodeMessage(0, [], REQUEST_LIMITS)).message).toBe("controls request has no action");
      expect(encodeMessage(0, ["é".repeat(511)], RESPONSE_LIMITS)).toHaveLength(8 + 4 + 1022);
    });

    it("rejects a status that is not a 32-bit int", () => {
      expect(protocolError(() => encodeMessage(2 ** 31, [])).message).toBe(
        "controls status 2147483648 is not a 32-bit integer",
      );
      expect(protocolError(() => encodeMessage(0.5, [])).message).toBe("controls status 0.5 is not a 32-bit integer");
    });
  });
});
