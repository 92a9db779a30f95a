import { readFileSync } from "node:fs";

/** The package version, read from package.json (two levels above both host/daemon and dist/host/daemon... resolved by walking up). */
function readVersion(): string {
  for (const relative of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "wasm-dso" && pkg.version !== undefined) return pkg.version;
    } catch {
      continue;
    }
  }
  return "unknown";
}

export const DSOD_VERSION = readVersion();
