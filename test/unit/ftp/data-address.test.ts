import { describe, expect, it } from "vitest";
import {
  extendedPassiveReply,
  isRfc1918,
  isV4Mapped,
  parseEprtArgument,
  parsePortArgument,
  passiveReply,
  sameHost,
  scanPortNumbers,
  unmapped,
} from "../../../host/data/data-address.js";

describe("PORT's argument (core_port)", () => {
  it("reads h1,h2,h3,h4,p1,p2 into an address and a port", () => {
    expect(parsePortArgument("127,0,0,1,200,10")).toEqual({ address: "127.0.0.1", port: 200 * 256 + 10 });
    expect(parsePortArgument("10,1,2,3,4,0")).toEqual({ address: "10.1.2.3", port: 1024 });
  });

  it("reads numbers as sscanf's %u does: white space and a + before a number, anything after the sixth", () => {
    expect(scanPortNumbers("1, 2,+3,4,5,6")).toEqual([1, 2, 3, 4, 5, 6]);
    expect(parsePortArgument("127,0,0,1,4,1xyz")).toEqual({ address: "127.0.0.1", port: 1025 });
    // The comma must follow the number directly.
    expect(scanPortNumbers("1 ,2,3,4,5,6")).toBeUndefined();
  });

  it("refuses fewer than six numbers, values over 255, an all-zero address or port", () => {
    expect(parsePortArgument("1,2,3")).toBeUndefined();
    expect(parsePortArgument("100,200,300,400,1,2")).toBeUndefined();
    expect(parsePortArgument("0,0,0,0,4,1")).toBeUndefined();
    expect(parsePortArgument("127,0,0,1,0,0")).toBeUndefined();
    expect(parsePortArgument("127,0,0,1,a,1")).toBeUndefined();
  });

  it("wraps a negative number as %u does, which then fails the range check; -0 stays 0", () => {
    expect(scanPortNumbers("-1,0,0,1,4,1")?.[0]).toBe(2 ** 32 - 1);
    expect(parsePortArgument("-1,0,0,1,4,1")).toBeUndefined();
    expect(parsePortArgument("127,-0,0,1,4,1")).toEqual({ address: "127.0.0.1", port: 1025 });
  });
});

describe("EPRT's argument (core_eprt, RFC 2428)", () => {
  it("reads |proto|address|port| for IPv4 and IPv6", () => {
    expect(parseEprtArgument("|1|127.0.0.1|4856|", true)).toEqual({
      kind: "ok",
      family: 1,
      address: "127.0.0.1",
      port: 4856,
    });
    expect(parseEprtArgument("|2|::ffff:127.0.0.1|4856|", true)).toEqual({
      kind: "ok",
      family: 2,
      address: "::ffff:127.0.0.1",
      port: 4856,
    });
    expect(parseEprtArgument("!2!fe80::1!21!", true)).toEqual({ kind: "ok", family: 2, address: "fe80::1", port: 21 });
  });

  it("answers an unknown protocol (or 2 without IPv6) apart from a syntax error", () => {
    expect(parseEprtArgument("|3|127.0.0.1|4856|", true)).toEqual({ kind: "protocol" });
    expect(parseEprtArgument("|2|::1|4856|", false)).toEqual({ kind: "protocol" });
    expect(parseEprtArgument("||127.0.0.1|4856|", true)).toEqual({ kind: "protocol" });
  });

  it("refuses what inet_pton or the delimiters refuse", () => {
    expect(parseEprtArgument(",1,2,3", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|1|100.200.300.400|0|", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|1|127.0.0.1|4856", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|1|127.0.0.1", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|1x|127.0.0.1|4856|", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|2|fe80::1%eth0|4856|", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("|1|127.0.0.1|-5|", true)).toEqual({ kind: "syntax" });
    expect(parseEprtArgument("", true)).toEqual({ kind: "syntax" });
  });

  it("takes an empty port as 0 and keeps only a port's low 16 bits, as the C code does", () => {
    expect(parseEprtArgument("|1|127.0.0.1||", true)).toEqual({ kind: "ok", family: 1, address: "127.0.0.1", port: 0 });
    expect(parseEprtArgument("|1|127.0.0.1|70000|", true)).toEqual({
      kind: "ok",
      family: 1,
      address: "127.0.0.1",
      port: 70000 - 65536,
    });
  });
});

describe("the 227 and 229 replies", () => {
  it("writes PASV's address with commas and the port as two bytes", () => {
    expect(passiveReply("127.0.0.1", 50000)).toBe("Entering Passive Mode (127,0,0,1,195,80).");
    expect(passiveReply("::ffff:192.168.1.20", 1025)).toBe("Entering Passive Mode (192,168,1,20,4,1).");
  });

  it("cuts a plain IPv6 address at its last colon, as core_pasv does", () => {
    expect(passiveReply("::1", 2048)).toBe("Entering Passive Mode (1,8,0).");
  });

  it("writes EPSV's port alone", () => {
    expect(extendedPassiveReply(50000)).toBe("Entering Extended Passive Mode (|||50000|)");
  });
});

describe("addresses (src/netaddr.c)", () => {
  it("equates an IPv4 address with its IPv4-mapped IPv6 form, in any spelling", () => {
    expect(sameHost("127.0.0.1", "::ffff:127.0.0.1")).toBe(true);
    expect(sameHost("::FFFF:7f00:1", "127.0.0.1")).toBe(true);
    expect(sameHost("0:0:0:0:0:ffff:127.0.0.1", "::ffff:127.0.0.1")).toBe(true);
    expect(sameHost("::1", "0:0:0:0:0:0:0:1")).toBe(true);
    expect(sameHost("127.0.0.1", "127.0.0.2")).toBe(false);
    expect(sameHost("::1", "127.0.0.1")).toBe(false);
    expect(sameHost("not an address", "127.0.0.1")).toBe(false);
  });

  it("unmaps only IPv4-mapped addresses", () => {
    expect(isV4Mapped("::ffff:10.0.0.1")).toBe(true);
    expect(isV4Mapped("::10.0.0.1")).toBe(false);
    expect(unmapped("::ffff:10.0.0.1")).toBe("10.0.0.1");
    expect(unmapped("::1")).toBe("::1");
    expect(unmapped("10.0.0.1")).toBe("10.0.0.1");
  });

  it("knows RFC 1918's private networks, mapped ones too", () => {
    expect(["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.0.1", "::ffff:10.0.0.1"].map(isRfc1918)).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(["172.32.0.1", "11.0.0.1", "127.0.0.1", "fd00::1"].map(isRfc1918)).toEqual([false, false, false, false]);
  });
});
