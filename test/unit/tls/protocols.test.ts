import { describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { ALL_PROTOCOLS, DEFAULT_PROTOCOLS, nodeVersionRange, parseTlsProtocol } from "../../../host/tls/protocols.js";
import type { TlsVersion } from "../../../host/tls/protocols.js";

function sorted(set: ReadonlySet<TlsVersion>): TlsVersion[] {
  return ALL_PROTOCOLS.filter((v) => set.has(v));
}

function refusal(params: string[]): string {
  try {
    parseTlsProtocol(params);
  } catch (error) {
    if (isDsoError(error) && error.code === "DSO_ERR_CONFIG") return error.message;
    throw error;
  }
  throw new Error(`TLSProtocol ${params.join(" ")} was accepted`);
}

describe("TLSProtocol (set_tlsprotocol)", () => {
  it("takes a list of versions, names matched in any case", () => {
    expect(sorted(parseTlsProtocol(["TLSv1.2", "TLSv1.3"]))).toEqual(["TLSv1.2", "TLSv1.3"]);
    expect(sorted(parseTlsProtocol(["tlsv1.3"]))).toEqual(["TLSv1.3"]);
    expect(sorted(parseTlsProtocol(["TLSV1.2"]))).toEqual(["TLSv1.2"]);
  });

  it("reads ALL (any case) with +/- adjustments", () => {
    expect(sorted(parseTlsProtocol(["ALL"]))).toEqual(ALL_PROTOCOLS);
    expect(sorted(parseTlsProtocol(["all", "-TLSv1.2"]))).toEqual(["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.3"]);
    expect(sorted(parseTlsProtocol(["ALL", "-SSLv3", "-TLSv1", "-TLSv1.1"]))).toEqual(["TLSv1.2", "TLSv1.3"]);
    expect(sorted(parseTlsProtocol(["ALL", "-TLSv1.0"]))).toEqual(["SSLv3", "TLSv1.1", "TLSv1.2", "TLSv1.3"]);
    expect(sorted(parseTlsProtocol(["ALL", "-TLSv1.3", "+TLSv1.3"]))).toEqual(ALL_PROTOCOLS);
  });

  it("reads SSLv23 as every version", () => {
    expect(sorted(parseTlsProtocol(["SSLv23"]))).toEqual(ALL_PROTOCOLS);
  });

  it("refuses with proftpd's texts", () => {
    expect(refusal([])).toBe("wrong number of parameters");
    expect(refusal(["ALL", "TLSv1.2"])).toBe("missing required +/- prefix: TLSv1.2");
    expect(refusal(["ALL", "-TLSv2"])).toBe("unknown protocol: '-TLSv2'");
    expect(refusal(["TLSv1.2", "SSLv2"])).toBe("unknown protocol: 'SSLv2'");
    expect(refusal(["TLSv1.2,TLSv1.3"])).toBe("unknown protocol: 'TLSv1.2,TLSv1.3'");
  });

  it("refuses by name the versions Node.js cannot negotiate", () => {
    const why = "is not supported: Node.js's OpenSSL negotiates only TLSv1.2 and TLSv1.3 at its default security level";
    expect(refusal(["SSLv3"])).toBe(`SSLv3 ${why}`);
    expect(refusal(["TLSv1", "TLSv1.2"])).toBe(`TLSv1 ${why}`);
    expect(refusal(["TLSv1.0"])).toBe(`TLSv1 ${why}`);
    expect(refusal(["TLSv1.1"])).toBe(`TLSv1.1 ${why}`);
    expect(refusal(["ALL", "-TLSv1.1", "+TLSv1.1"])).toBe(`TLSv1.1 ${why}`);
  });
});

describe("the Node.js version range of a protocol set", () => {
  it("keeps what Node.js speaks", () => {
    expect(nodeVersionRange(DEFAULT_PROTOCOLS)).toEqual({ minVersion: "TLSv1.2", maxVersion: "TLSv1.3" });
    expect(nodeVersionRange(parseTlsProtocol(["ALL"]))).toEqual({ minVersion: "TLSv1.2", maxVersion: "TLSv1.3" });
    expect(nodeVersionRange(parseTlsProtocol(["TLSv1.2"]))).toEqual({ minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
    expect(nodeVersionRange(parseTlsProtocol(["ALL", "-TLSv1.2"]))).toEqual({
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
    });
  });

  it("refuses a set that leaves nothing", () => {
    expect(() => nodeVersionRange(parseTlsProtocol(["ALL", "-TLSv1.2", "-TLSv1.3"]))).toThrow(
      "no protocol left that Node.js supports (TLSv1.2, TLSv1.3)",
    );
  });
});
