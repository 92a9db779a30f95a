/**
 * This package's native addons (binding.gyp's targets): built at install by
 * scripts/install-native.mjs (node-gyp) into build/Release, or shipped
 * prebuilt for a platform in prebuilds/<platform>-<arch> (scripts/prebuild.mjs).
 * Both are Node-API, so one binary serves every Node line. Without either,
 * dsod still runs, with what each addon's absence costs said at start.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "./package-root.js";

/** The hint every missing-addon error gives. */
export const REBUILD_HINT = "run `npm rebuild` (it needs python3, make and g++)";

/**
 * Names the addons dsod must behave as if it lacked (comma-separated, or
 * `all`): how tests, and an operator checking the fallbacks, run the degraded
 * modes on a machine that has the addons. Read here only.
 */
export const DISABLE_ADDONS_ENV = "WASM_DSO_DISABLE_ADDONS";

function disabled(name: string): boolean {
  const names = (process.env[DISABLE_ADDONS_ENV] ?? "").split(",").map((entry) => entry.trim());
  return names.includes(name) || names.includes("all");
}

/** Where an addon may be, best first: a local build wins over the prebuilt binary. */
function addonCandidates(name: string): string[] {
  return [
    join(PACKAGE_ROOT, "build", "Release", `${name}.node`),
    join(PACKAGE_ROOT, "prebuilds", `${process.platform}-${process.arch}`, `${name}.node`),
  ];
}

/**
 * Loads the addon `name` from build/Release, else from prebuilds/<platform>-<arch>.
 * Returns what the addon exports, or why it cannot be loaded (`message`, one
 * phrase for the caller's DsoError; `file`, where a build would put it;
 * `reason`, the loader's error) for the caller to turn into its own DsoError.
 */
export function loadNativeAddon(name: string): { addon: unknown } | { file: string; reason: unknown; message: string } {
  const [built = "", ...others] = addonCandidates(name);
  if (disabled(name)) {
    const reason = new Error(`disabled by ${DISABLE_ADDONS_ENV}`);
    return { file: built, reason, message: `the ${name} addon is ${reason.message}` };
  }
  const load = createRequire(join(PACKAGE_ROOT, "package.json"));
  let failure: { file: string; reason: unknown } | undefined;
  for (const file of [built, ...others]) {
    if (!existsSync(file)) continue;
    try {
      return { addon: load(file) as unknown };
    } catch (reason) {
      failure ??= { file, reason };
    }
  }
  if (failure !== undefined) {
    const detail = failure.reason instanceof Error ? failure.reason.message.split("\n")[0] : String(failure.reason);
    return { ...failure, message: `unable to load ${failure.file}: ${detail} (${REBUILD_HINT})` };
  }
  return { file: built, reason: new Error("not built"), message: `unable to load ${built} (${REBUILD_HINT})` };
}
