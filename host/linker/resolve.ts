/**
 * Resolves one binary's imports against the scope, without running anything.
 * Every import is tried and every failure collected, so one load reports all
 * its undefined symbols and type mismatches together (wasmtime's
 * instantiate_pre discipline: check everything before instantiating).
 *
 * Pure: the caller passes lookups over the scope and the providers.
 */
import { HOST_MEMORY_SYMBOL } from "../abi/host-symbols.js";
import { externTypeMatches, formatExternType } from "../wasm/types.js";
import type { ImportEntry, Limits } from "../wasm/types.js";
import type { LinkProblem } from "./problems.js";
import type { Definition } from "./scope.js";

/** Imports from this namespace are looked up in the flat global scope. */
export const GLOBAL_NAMESPACE = "env";

export type Binding =
  | { readonly import: ImportEntry; readonly definition: Definition }
  | { readonly import: ImportEntry; readonly hostMemory: { readonly initial: number; readonly maximum: number } };

export interface ResolveEnvironment {
  /** The winning definition of a name in the global scope. */
  lookupGlobal(name: string): Definition | undefined;
  /** An export of the provider a namespace names; `undefined` if it has no such export. */
  lookupDirect(namespace: string, name: string): Definition | undefined;
  /** The most pages the importer's own memory may grow to. */
  readonly memoryCapPages: number;
}

export interface ResolveResult {
  readonly bindings: readonly Binding[];
  /** One per failure, each naming importer, symbol, expected and found (problems.ts words them). */
  readonly problems: readonly LinkProblem[];
}

function resolveHostMemory(importer: string, limits: Limits, capPages: number): Binding | LinkProblem {
  if (limits.shared) return { kind: "shared-memory", importer };
  if (limits.min > capPages) return { kind: "memory-over-cap", importer, pages: limits.min, limit: capPages };
  return {
    import: { module: GLOBAL_NAMESPACE, name: HOST_MEMORY_SYMBOL, type: { kind: "memory", limits } },
    hostMemory: { initial: limits.min, maximum: Math.min(limits.max ?? capPages, capPages) },
  };
}

export function resolveImports(
  importer: string,
  imports: readonly ImportEntry[],
  env: ResolveEnvironment,
): ResolveResult {
  const bindings: Binding[] = [];
  const problems: LinkProblem[] = [];
  for (const entry of imports) {
    if (entry.module === GLOBAL_NAMESPACE && entry.name === HOST_MEMORY_SYMBOL && entry.type.kind === "memory") {
      const result = resolveHostMemory(importer, entry.type.limits, env.memoryCapPages);
      if ("kind" in result) problems.push(result);
      else bindings.push(result);
      continue;
    }
    const direct = entry.module !== GLOBAL_NAMESPACE;
    const definition = direct ? env.lookupDirect(entry.module, entry.name) : env.lookupGlobal(entry.name);
    if (definition === undefined) {
      const namespace = direct ? entry.module : undefined;
      problems.push({
        kind: "undefined-symbol",
        importer,
        symbol: entry.name,
        namespace,
        expected: formatExternType(entry.type),
      });
      continue;
    }
    if (!externTypeMatches(definition.type, entry.type)) {
      const found = formatExternType(definition.type);
      const expected = formatExternType(entry.type);
      problems.push({
        kind: "type-mismatch",
        importer,
        symbol: entry.name,
        provider: definition.provider.name,
        expected,
        found,
      });
      continue;
    }
    bindings.push({ import: entry, definition });
  }
  return { bindings, problems };
}
