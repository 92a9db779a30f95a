import { describe, expect, it } from "vitest";
import { parseTlsOptions, parseTlsRequired } from "../../../host/tls/directives.js";

describe("TLSRequired (set_tlsrequired)", () => {
  it("reads Boolean words as all or nothing", () => {
    for (const on of ["on", "On", "yes", "true", "1"])
      expect(parseTlsRequired(on)).toEqual({ ctrl: 1, data: 1, auth: 1 });
    for (const off of ["off", "NO", "false", "0"]) expect(parseTlsRequired(off)).toEqual({ ctrl: 0, data: 0, auth: 0 });
  });

  it("reads every keyword as proftpd does", () => {
    const table: [string, { ctrl: number; data: number; auth: number }][] = [
      ["control", { ctrl: 1, data: 0, auth: 1 }],
      ["ctrl", { ctrl: 1, data: 0, auth: 1 }],
      ["data", { ctrl: 0, data: 1, auth: 0 }],
      ["!data", { ctrl: 0, data: -1, auth: 0 }],
      ["both", { ctrl: 1, data: 1, auth: 1 }],
      ["ctrl+data", { ctrl: 1, data: 1, auth: 1 }],
      ["ctrl+!data", { ctrl: 1, data: -1, auth: 1 }],
      ["auth", { ctrl: 0, data: 0, auth: 1 }],
      ["auth+data", { ctrl: 0, data: 1, auth: 1 }],
      ["auth+!data", { ctrl: 0, data: -1, auth: 1 }],
    ];
    for (const [word, expected] of table) expect(parseTlsRequired(word), word).toEqual(expected);
  });

  it("matches keywords case-sensitively (strcmp) and refuses anything else", () => {
    for (const bad of ["Ctrl", "DATA", "ctrl+auth", "", "data+ctrl"])
      expect(() => parseTlsRequired(bad), bad).toThrow(/^bad parameter$/);
  });
});

describe("TLSOptions (set_tlsoptions)", () => {
  it("takes NoSessionReuseRequired", () => {
    expect(parseTlsOptions(["NoSessionReuseRequired"])).toEqual({ noSessionReuseRequired: true });
    expect(parseTlsOptions(["NoSessionReuseRequired", "NoSessionReuseRequired"])).toEqual({
      noSessionReuseRequired: true,
    });
  });

  it("refuses an empty list and unknown names in proftpd's words", () => {
    expect(() => parseTlsOptions([])).toThrow(/^wrong number of parameters$/);
    expect(() => parseTlsOptions(["NoSuchOption"])).toThrow(/^: unknown TLSOption 'NoSuchOption'$/);
    // strcmp: the case matters.
    expect(() => parseTlsOptions(["nosessionreuserequired"])).toThrow(/^: unknown TLSOption 'nosessionreuserequired'$/);
  });

  it("refuses proftpd's other options as not supported, saying why", () => {
    expect(() => parseTlsOptions(["AllowPerUser"])).toThrow(
      /^TLSOption 'AllowPerUser' is not supported by dsod: per-user TLSRequired is not supported$/,
    );
    expect(() => parseTlsOptions(["NoSessionReuseRequired", "UseImplicitSSL"])).toThrow(
      /^TLSOption 'UseImplicitSSL' is not supported by dsod: implicit FTPS is not supported; clients use AUTH TLS$/,
    );
    for (const name of [
      "AllowDotLogin",
      "AllowWeakDH",
      "AllowWeakSecurity",
      "AllowClientRenegotiation",
      "AllowClientRenegotiations",
      "EnableDiags",
      "ExportCertData",
      "IgnoreSNI",
      "NoEmptyFragments",
      "StdEnvVars",
      "dNSNameRequired",
      "iPAddressRequired",
      "CommonNameRequired",
      "NoAutoECDH",
    ]) {
      expect(() => parseTlsOptions([name]), name).toThrow(
        new RegExp(`^TLSOption '${name}' is not supported by dsod: `),
      );
    }
  });
});
