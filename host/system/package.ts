/**
 * This package's native addons, built by `npm ci` (node-gyp, binding.gyp).
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "./package-root.js";

/**
 * Loads `build/Release/<name>.node`, built by `npm ci` (node-gyp, binding.gyp).
 * Returns what the addon exports, or the reason it cannot be loaded, for the
 * caller to turn into its own DsoError.
 */
export function loadNativeAddon(name: string): { addon: unknown } | { file: string; reason: unknown } {
  const file = join(PACKAGE_ROOT, "build", "Release", `${name}.node`);
  try {
    return { addon: createRequire(join(PACKAGE_ROOT, "package.json"))(file) as unknown };
  } catch (reason) {
    return { file, reason };
  }
}

/** The hint every missing-addon error gives. */
export const REBUILD_HINT = "run `npm rebuild` (it needs python3, make and g++)";
