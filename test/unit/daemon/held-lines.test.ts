/**
 * HeldLines (host/daemon/held-lines.ts): a session worker's lines for a
 * module-set change it repeats after the primary are dropped when the change
 * succeeds and written, in order, when it fails; other lines pass at once.
 */
import { describe, expect, it } from "vitest";
import { HeldLines } from "../../../host/daemon/held-lines.js";

function setup(): { held: HeldLines; lines: string[]; log: (message: string) => void } {
  const held = new HeldLines();
  const lines: string[] = [];
  const log = held.log((priority, message) => void lines.push(`${priority}: ${message}`));
  return { held, lines, log: (message) => log("notice", message) };
}

describe("HeldLines", () => {
  it("passes lines at once outside a repeated change", () => {
    const { held, lines, log } = setup();
    log("a session's line");
    held.pass(() => lines.push("a trace line"));
    expect(lines).toEqual(["notice: a session's line", "a trace line"]);
  });

  it("drops the lines of a repeated change that succeeds, and returns its value", () => {
    const { held, lines, log } = setup();
    const value = held.repeat(() => {
      log("loading");
      held.pass(() => lines.push("traced"));
      return 42;
    });
    expect(value).toBe(42);
    expect(lines).toEqual([]);
    log("after");
    expect(lines).toEqual(["notice: after"]);
  });

  it("writes the lines of a repeated change that fails, in order, then throws its error", () => {
    const { held, lines, log } = setup();
    const failure = new Error("refused");
    expect(() =>
      held.repeat(() => {
        log("loading");
        held.pass(() => lines.push("traced"));
        log("unable to load");
        throw failure;
      }),
    ).toThrow(failure);
    expect(lines).toEqual(["notice: loading", "traced", "notice: unable to load"]);
    log("after");
    expect(lines.at(-1)).toBe("notice: after");
  });

  it("treats a change repeated inside another as part of it", () => {
    const { held, lines, log } = setup();
    expect(() =>
      held.repeat(() => {
        held.repeat(() => log("inner"));
        throw new Error("outer fails");
      }),
    ).toThrow("outer fails");
    expect(lines).toEqual(["notice: inner"]);
  });
});
