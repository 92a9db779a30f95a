import { describe, expect, it } from "vitest";
import { fitResponseLines } from "../../../host/controls/exchange.js";

describe("fitResponseLines", () => {
  it("leaves a response within proftpd's limits as it is", () => {
    expect(fitResponseLines(["a", "b"])).toEqual(["a", "b"]);
    const full = Array.from({ length: 1024 }, (_, i) => `line ${i}`);
    expect(fitResponseLines(full)).toEqual(full);
  });

  it("keeps 1023 lines of a longer response and counts the rest", () => {
    const lines = Array.from({ length: 1500 }, (_, i) => `line ${i}`);
    const fitted = fitResponseLines(lines);
    expect(fitted).toHaveLength(1024);
    expect(fitted[1022]).toBe("line 1022");
    expect(fitted[1023]).toBe("(477 more lines not shown: a response holds at most 1024 lines)");
  });

  it("cuts a line over 1023 bytes, counting UTF-8 bytes", () => {
    const [ascii] = fitResponseLines(["x".repeat(2000)]);
    expect(ascii).toBe(`${"x".repeat(1020)}...`);
    const [wide] = fitResponseLines(["é".repeat(1000)]);
    expect(Buffer.byteLength(wide ?? "")).toBeLessThanOrEqual(1023);
    expect(wide?.endsWith("é...")).toBe(true);
  });
});
