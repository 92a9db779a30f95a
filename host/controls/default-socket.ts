/**
 * Where dsod listens and dsoctl connects when neither is told otherwise: the
 * `ControlsSocket` of the default config, `<package root>/run/dsod.sock`.
 * proftpd compiles its default in (`/run/proftpd.sock` on Debian, PR_RUN_DIR);
 * ours follows the package so that an unprivileged checkout works unchanged.
 *
 * Kept apart from server.ts so that dsoctl can import it without pulling in
 * the server, the ACLs or the peer-credentials addon (dsoctl start-up time).
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The directory holding package.json. This file runs from host/controls/
 * (sources, under vitest) and from dist/host/controls/ (built), so walk up
 * rather than count `..`.
 */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) {
      return dir;
    }
    if (dirname(dir) === dir) {
      throw new Error(`no package.json above ${start}`);
    }
  }
}

export const DEFAULT_CONTROLS_SOCKET: string = join(packageRoot(), "run", "dsod.sock");
