/**
 * What a newcomer needs under proftpd's terse refusals of a module. A name
 * proftpd refuses (`Bad module name`, `Invalid argument`): `mod_hello`,
 * `hello.c`, `mod_hello.so`, `Mod_hello.c` or a path all mean `mod_hello.c`.
 * A file without its module symbol (`No such file or directory`, as if the
 * file were missing): the export it lacks. Pure: strings in, lines out.
 */
import { parseModuleName, parseUnloadName } from "./module-name.js";

/**
 * The `mod_NAME.c` form of `text`, if it differs from `text` and is a valid
 * name: the last path part, without its extension, with the `mod_` prefix.
 */
export function suggestModuleName(text: string): string | undefined {
  const base = text.slice(Math.max(text.lastIndexOf("/"), text.lastIndexOf("\\")) + 1);
  const dot = base.lastIndexOf(".");
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const bare = stem.toLowerCase().startsWith("mod_") ? stem.slice("mod_".length) : stem;
  if (bare.length === 0) return undefined;
  const suggestion = `mod_${bare}.c`;
  try {
    parseUnloadName(suggestion);
  } catch {
    return undefined;
  }
  return suggestion === text ? undefined : suggestion;
}

/** The hint line shown under `Bad module name` / `Invalid argument`, when there is one. */
export function nameHint(text: string): string[] {
  const suggestion = suggestModuleName(text);
  return suggestion === undefined ? [] : [`did you mean '${suggestion}'?`];
}

/** The hint line under the ENOENT of a module file that exists but lacks its `NAME_module` export. */
export function moduleSymbolHint(name: string): string {
  return `the file was found, but it does not export '${parseModuleName(name).symbol}' (the module's API version)`;
}
