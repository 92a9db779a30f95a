/**
 * Where `npm run build` puts the binaries tests load. Resolved from this file,
 * not from the working directory, so a test runs the same from any cwd.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is test/helpers/paths.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The example modules and libraries (guest-modules/*.ts): mod_test, libmath, mod_calc... */
export const LIBEXEC_DIR = path.join(REPO_ROOT, "dist", "libexec");

/** The deliberately broken guests (test/fixtures/guests/*.ts): mod_undef, mod_trap... */
export const FIXTURES_DIR = path.join(REPO_ROOT, "dist", "test-fixtures");

/** The SDK compiled alone (dist/sdk/host.wasm): its imports are exactly the SDK's declarations. */
export const SDK_DIR = path.join(REPO_ROOT, "dist", "sdk");

export const DOCS_DIR = path.join(REPO_ROOT, "docs");

export function libexec(file: string): string {
  return path.join(LIBEXEC_DIR, file);
}

export function fixture(file: string): string {
  return path.join(FIXTURES_DIR, file);
}
