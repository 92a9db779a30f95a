import { spawnSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { LIBEXEC_DIR, REPO_ROOT } from "../../helpers/paths.js";

const MB = 1024 * 1024;

interface NewSpace {
  /** V8's young generation when the host was loaded and the heap tuned (or not), in bytes. */
  readonly before: number;
  /** The same after 4,000 insmod/rmmod cycles. */
  readonly after: number;
}

/**
 * Runs an insmod/rmmod churn in a fresh process (a young generation, once
 * grown, never shrinks, so this process's own cannot tell) and returns the
 * size of V8's young generation before and after.
 */
function newSpaceAroundChurn(tuned: boolean): NewSpace {
  const entry = pathToFileURL(path.join(REPO_ROOT, "dist", "host", "index.js")).href;
  const script = `
    import v8 from "node:v8";
    import { ModuleHost, tuneHeapForModuleChurn } from ${JSON.stringify(entry)};
    const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size;
    if (${tuned}) tuneHeapForModuleChurn();
    const before = newSpace();
    const host = new ModuleHost({ modulePath: ${JSON.stringify(LIBEXEC_DIR)} });
    for (let i = 0; i < 4000; i++) { host.loadModule("mod_test.c"); host.unloadModule("mod_test.c"); }
    host.close();
    process.stdout.write(JSON.stringify({ before, after: newSpace() }));`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout) as NewSpace;
}

// Measured, with the host imported and the heap tuned: the young generation is 2-4 MiB on Node 20.20, 22.23 and
// 24.22 (V8 grows it once or twice while the host's modules load, more on V8 13), and tuned churn keeps it there;
// Node 26.12 (V8 14, which sizes it by pages rather than by doubling) has 2.75-3 MiB then and ends tuned churn at
// 4 MiB. Untuned, 4,000 cycles take it to 32 MiB or more on all four.
describe("tuneHeapForModuleChurn", () => {
  it("keeps V8's young generation small under insmod/rmmod churn, where it would grow", { timeout: 60_000 }, () => {
    const tuned = newSpaceAroundChurn(true);
    const untuned = newSpaceAroundChurn(false);
    expect(tuned.after, `tuned from ${tuned.before} bytes`).toBeLessThanOrEqual(4 * MB);
    expect(untuned.after).toBeGreaterThan(4 * tuned.after);
  });
});
