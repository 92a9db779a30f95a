/**
 * Where this package lives, and its native addons. Code runs from host/...
 * (sources, under vitest) and from dist/host/... (compiled), so the root is
 * found by walking up to package.json rather than by counting `..`.
 * Imports only node built-ins: dsoctl loads it and must start fast.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findPackageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

export const PACKAGE_ROOT: string = findPackageRoot();

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
