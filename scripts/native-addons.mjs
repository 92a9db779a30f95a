// The native addons (binding.gyp's targets) and where they live, for
// install-native.mjs (at install) and prebuild.mjs (at pack); the host's own
// loader (host/system/package.ts) looks in the same two places.
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const ADDONS = ["peercred", "watchdog", "crypt"];
/** What node-gyp builds: build/Release/<name>.node. */
export const BUILT = path.join(ROOT, "build", "Release");
/** The prebuilt binaries for this machine's platform, shipped in the package. */
export const PREBUILT = path.join(ROOT, "prebuilds", `${process.platform}-${process.arch}`);

/**
 * node-gyp as npm runs it for a package's scripts: `$npm_config_node_gyp`
 * (npm sets it for every lifecycle script), else, run by hand, the copy
 * bundled with the npm next to this node.
 */
export function nodeGyp() {
  return (
    process.env.npm_config_node_gyp ??
    path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")
  );
}
