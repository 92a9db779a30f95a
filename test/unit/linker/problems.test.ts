import { describe, expect, it } from "vitest";
import { ErrorCodes } from "../../../host/errors.js";
import { linkErrorCode, problemCode, problemLine } from "../../../host/linker/problems.js";
import type { LinkProblem } from "../../../host/linker/problems.js";

const undefinedSymbol: LinkProblem = {
  kind: "undefined-symbol",
  importer: "mod_x.c",
  symbol: "f",
  namespace: undefined,
  expected: "func () -> nil",
};
const granted: LinkProblem = {
  kind: "capability",
  importer: "mod_x.c",
  symbol: "wrap_uid",
  hostSymbol: "session_uid",
  capability: "session",
  via: "libwrap",
};
const direct: LinkProblem = { ...granted, symbol: "session_uid", via: undefined };
const overCap: LinkProblem = { kind: "memory-over-cap", importer: "mod_x.c", pages: 300, limit: 256 };

describe("link problems", () => {
  it("word each kind as the operator reads it", () => {
    expect([granted, direct, overCap].map(problemLine)).toEqual([
      "mod_x.c: symbol 'wrap_uid' of libwrap needs capability 'session' (it reaches host symbol 'session_uid'), which mod_x.c is not granted",
      "mod_x.c: symbol 'session_uid' needs capability 'session', which mod_x.c is not granted",
      "mod_x.c: memory needs 300 pages, over its cap of 256 pages",
    ]);
    expect(
      problemLine({
        kind: "needed-failed",
        importer: "mod_x.c",
        unitKind: "library",
        unit: "libz",
        code: ErrorCodes.MODULE_NOT_FOUND,
        line: "gone",
      }),
    ).toBe("mod_x.c: needed library 'libz': gone");
  });

  it("have one code per kind: a capability or the memory cap is its policy's, the rest a link failure", () => {
    expect([undefinedSymbol, direct, overCap].map(problemCode)).toEqual([
      ErrorCodes.LINK,
      ErrorCodes.CAPABILITY,
      ErrorCodes.MEMORY_LIMIT,
    ]);
  });

  it("give a failed link the code its problems share, and DSO_ERR_LINK when they are of several kinds", () => {
    expect(linkErrorCode([granted, direct])).toBe(ErrorCodes.CAPABILITY);
    expect(linkErrorCode([overCap])).toBe(ErrorCodes.MEMORY_LIMIT);
    expect(linkErrorCode([undefinedSymbol])).toBe(ErrorCodes.LINK);
    expect(linkErrorCode([direct, undefinedSymbol])).toBe(ErrorCodes.LINK);
    expect(linkErrorCode([direct, overCap])).toBe(ErrorCodes.LINK);
  });
});
