/**
 * proftpd's module naming rules (modules/mod_dso.c dso_load_module and
 * dso_unload_module_by_name): a module is named `mod_NAME.c`, lives in
 * `mod_NAME.so` (ours: `mod_NAME.wasm`) and exports the symbol `NAME_module`.
 */
import { DsoError, ErrorCodes } from "../errors.js";

export interface ModuleName {
  /**
   * `mod_test.c`: the name the module is registered under. proftpd registers
   * `mod_<m->name>.c` whatever was asked for, so `mod_test.cpp` is `mod_test.c`.
   */
  readonly name: string;
  /** `mod_test`: the file stem and the module's namespace for direct binding. */
  readonly stem: string;
  /** `test_module`: the export that carries the module's API version. */
  readonly symbol: string;
}

function badName(name: string): DsoError {
  return new DsoError(ErrorCodes.BAD_MODULE_NAME, `bad module name '${name}'`);
}

/**
 * Names never reach the filesystem unchecked: beyond proftpd's prefix and
 * suffix rules, path separators, `..` and NUL are refused (proftpd builds the
 * path from whatever follows `mod_`).
 */
function hasPathParts(name: string): boolean {
  return name.includes("/") || name.includes("\\") || name.includes("\0") || name.includes("..");
}

/** For LoadModule and insmod: `mod_` prefix, at least 5 characters, ending `.c` or `.cpp`. */
export function parseModuleName(name: string): ModuleName {
  if (name.length < 5 || !name.startsWith("mod_") || hasPathParts(name)) throw badName(name);
  if (!name.endsWith(".c") && !name.endsWith(".cpp")) throw badName(name);
  const stem = name.slice(0, name.lastIndexOf("."));
  return { name: `${stem}.c`, stem, symbol: `${stem.slice("mod_".length)}_module` };
}

/** For rmmod: proftpd accepts only the `.c` form here. */
export function parseUnloadName(name: string): string {
  if (name.length < 5 || !name.startsWith("mod_") || !name.endsWith(".c") || hasPathParts(name)) throw badName(name);
  return name;
}

/** The module name a namespace such as `mod_sql` (or `mod_sql.c`) refers to, if it names a module. */
export function moduleNameOfNamespace(namespace: string): string | undefined {
  if (!namespace.startsWith("mod_") || hasPathParts(namespace)) return undefined;
  return namespace.endsWith(".c") ? namespace : `${namespace}.c`;
}

/** Library namespaces are file stems in the module path: letters, digits, `_`, `-` and `.`. */
export function isLibraryNamespace(namespace: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(namespace) && !hasPathParts(namespace) && !namespace.startsWith("mod_");
}
