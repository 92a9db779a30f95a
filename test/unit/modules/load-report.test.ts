import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { refusalReport } from "../../../host/modules/load-report.js";
import { parseModuleName } from "../../../host/modules/module-name.js";

const parsed = parseModuleName("mod_x.c");

describe("refusalReport", () => {
  it("reports a missing file as proftpd's fall back to the executable, which has no such module either", () => {
    const error = new DsoError(ErrorCodes.MODULE_NOT_FOUND, "no such file");
    expect(refusalReport(parsed, "mod_x.c", "/lib/mod_x", error)).toEqual([
      { event: { kind: "no-file", requested: "mod_x.c", stemPath: "/lib/mod_x" } },
      { trace: 7, message: "looking for symbol 'x_module' in loaded module" },
      { event: { kind: "no-symbol", symbol: "x_module" } },
      { trace: 1, message: expect.stringContaining("x_module") as string },
    ]);
  });

  it("reports any other refusal once, with each of its lines at trace level 1", () => {
    const error = new DsoError(ErrorCodes.INIT_FAILED, "module 'mod_x.c' failed to initialize");
    expect(refusalReport(parsed, "mod_x.c", "/lib/mod_x", error)).toEqual([
      { event: { kind: "load-refused", module: "mod_x.c", error } },
      ...error.lines.map((message) => ({ trace: 1, message })),
    ]);
  });

  it("does not trace again a missing module symbol, traced where it was found", () => {
    const error = new DsoError(ErrorCodes.NO_MODULE_SYMBOL, "no x_module");
    expect(refusalReport(parsed, "mod_x.c", "/lib/mod_x", error)).toEqual([
      { event: { kind: "load-refused", module: "mod_x.c", error } },
    ]);
  });

  it("reports what is no DsoError by its text", () => {
    const error = new RangeError("boom");
    expect(refusalReport(parsed, "mod_x.c", "/lib/mod_x", error)).toEqual([
      { event: { kind: "load-refused", module: "mod_x.c", error } },
      { trace: 1, message: "unable to load 'mod_x.c': RangeError: boom" },
    ]);
  });
});
