/**
 * The README's embedding example, run as a user would run it.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers/dsod.js";

describe("examples/embed.mjs", () => {
  it("loads, looks up, calls, refuses a duplicate and unloads through the library API", () => {
    const result = spawnSync(process.execPath, [path.join(ROOT, "examples/embed.mjs")], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(
      [
        "modules: mod_calc.c",
        "math_add: func (i32, i32) -> i32 from libmath (library)",
        "math_add(2, 3) = 5",
        "loading it again: DSO_ERR_ALREADY_LOADED - module 'mod_calc.c' already loaded",
        "after rmmod: 0 modules",
        "",
      ].join("\n"),
    );
    expect(result.status).toBe(0);
  });
});
