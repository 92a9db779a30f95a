import { spawnSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { LIBEXEC_DIR, REPO_ROOT } from "../../helpers/paths.js";

const MB = 1024 * 1024;

/**
 * Runs an insmod/rmmod churn in a fresh process (a young generation, once
 * grown, never shrinks, so this process's own cannot tell) and returns the
 * size of V8's young generation afterwards, in bytes.
 */
function newSpaceAfterChurn(tuned: boolean): number {
  const entry = pathToFileURL(path.join(REPO_ROOT, "dist", "host", "index.js")).href;
  const script = `
    import v8 from "node:v8";
    import { ModuleHost, tuneHeapForModuleChurn } from ${JSON.stringify(entry)};
    if (${tuned}) tuneHeapForModuleChurn();
    const host = new ModuleHost({ modulePath: ${JSON.stringify(LIBEXEC_DIR)} });
    for (let i = 0; i < 4000; i++) { host.loadModule("mod_test.c"); host.unloadModule("mod_test.c"); }
    host.close();
    const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
    process.stdout.write(String(space.space_size));`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return Number(result.stdout);
}

describe("tuneHeapForModuleChurn", () => {
  it("keeps V8's young generation at its initial size under insmod/rmmod churn, where it would grow", { timeout: 60_000 }, () => {
    const tuned = newSpaceAfterChurn(true);
    const untuned = newSpaceAfterChurn(false);
    expect(tuned).toBeLessThanOrEqual(2 * MB);
    expect(untuned).toBeGreaterThan(4 * tuned);
  });
});
