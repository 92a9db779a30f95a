/**
 * Where dsod listens and dsoctl connects when neither is told otherwise: the
 * `ControlsSocket` of the default config, `<package root>/run/dsod.sock`.
 * proftpd compiles its default in (`/run/proftpd.sock` on Debian, PR_RUN_DIR);
 * ours follows the package so that an unprivileged checkout works unchanged.
 *
 * Kept apart from server.ts so that dsoctl can import it without pulling in
 * the server, the ACLs or the peer-credentials addon (dsoctl start-up time).
 */
import { PACKAGE_ROOT } from "../system/package-root.js";

const { join } = process.getBuiltinModule("node:path");

export const DEFAULT_CONTROLS_SOCKET: string = join(PACKAGE_ROOT, "run", "dsod.sock");
