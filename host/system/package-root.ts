/**
 * Where this package lives. Code runs from host/... (sources, under vitest)
 * and from dist/host/... (compiled), so the root is found by walking up to
 * package.json rather than by counting `..`.
 *
 * dsoctl loads this (for the default socket path) and lives for one request,
 * so it takes its built-ins with process.getBuiltinModule: an `import` goes
 * through the ESM loader and evaluates the whole namespace (node:fs as ESM
 * also loads its streams), about 2 ms more at start-up.
 */
const { existsSync } = process.getBuiltinModule("node:fs");
const { dirname, join } = process.getBuiltinModule("node:path");
const { fileURLToPath } = process.getBuiltinModule("node:url");

function findPackageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

export const PACKAGE_ROOT: string = findPackageRoot();
