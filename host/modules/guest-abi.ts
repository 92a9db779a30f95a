/**
 * What the host ABI needs of a guest's build, checked from its binary before
 * anything runs: the compiler options of the SDK's asconfig.json (the package
 * root's, which a module's own asconfig.json extends as
 * `wasm-dso/asconfig.json`) that strings depend on.
 *
 *   importMemory    a guest that passes strings to host symbols imports its
 *                   memory as env.memory: the host reads them there, and owns,
 *                   caps and recycles that memory (docs/security.md);
 *   exportRuntime   a guest that asks host symbols for strings exports its
 *                   runtime's `__new`: the host allocates them with it.
 *
 * Built without either, a module used to load and then fail on its first
 * string, in the middle of a command. Only what a binary actually imports is
 * held against it: a guest that passes no strings needs neither option.
 *
 * Pure: a shape in, problem lines (or a DsoError) out.
 */
import { HOST_MEMORY_SYMBOL, HOST_SYMBOLS } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../errors.js";
import { GLOBAL_NAMESPACE } from "../linker/resolve.js";
import type { ModuleShape } from "../wasm/types.js";

/** How a binary names the options (asconfig.json, asc's command line). */
const IMPORT_MEMORY = `"importMemory": true (asc --importMemory)`;
const EXPORT_RUNTIME = `"exportRuntime": true (asc --exportRuntime)`;
const PRESET = `extend the SDK's config: "extends": "wasm-dso/asconfig.json"`;

/** Up to three names, then how many more: a line stays readable for a module importing every host symbol. */
function named(names: readonly string[]): string {
  const shown = names.slice(0, 3).map((n) => `'${n}'`);
  return names.length > 3 ? `${shown.join(", ")} and ${names.length - 3} more` : shown.join(", ");
}

/** Every build option `name`'s binary lacks for the host symbols it imports, one line each. */
export function guestAbiProblems(name: string, shape: ModuleShape): string[] {
  const passes: string[] = [];
  const receives: string[] = [];
  let importsMemory = false;
  for (const entry of shape.imports) {
    if (entry.module !== GLOBAL_NAMESPACE) continue;
    if (entry.name === HOST_MEMORY_SYMBOL && entry.type.kind === "memory") importsMemory = true;
    const symbol = entry.type.kind === "func" ? HOST_SYMBOLS.get(entry.name) : undefined;
    if (symbol === undefined) continue;
    if (symbol.params.includes("string") || symbol.result === "string") passes.push(symbol.name);
    if (symbol.result === "string") receives.push(symbol.name);
  }
  const problems: string[] = [];
  if (passes.length > 0 && !importsMemory) {
    problems.push(
      `${name}: built without ${IMPORT_MEMORY}: it passes strings through host symbols (${named(passes)}), which the host reads in the memory it gives the module as env.memory; ${PRESET}`,
    );
  }
  const runtime = shape.exports.find((e) => e.name === "__new");
  const allocates =
    runtime !== undefined &&
    runtime.type.kind === "func" &&
    runtime.type.type.params.join() === "i32,i32" &&
    runtime.type.type.results.join() === "i32";
  if (receives.length > 0 && !allocates) {
    problems.push(
      `${name}: built without ${EXPORT_RUNTIME}: it receives strings from host symbols (${named(receives)}), which the host allocates with the module's own __new; ${PRESET}`,
    );
  }
  return problems;
}

/** Refuses a binary built without the options its host symbols need (DSO_ERR_ABI), before it is linked or run. */
export function checkGuestAbi(name: string, shape: ModuleShape): void {
  const problems = guestAbiProblems(name, shape);
  if (problems.length > 0) throw new DsoError(ErrorCodes.ABI, problems.join("; "), { details: problems });
}
