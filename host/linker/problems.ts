/**
 * Link and load problems as data (wasmtime's `UnknownImportError` and
 * `IncompatibleImport` carry module, name and types the same way): the
 * resolver, the capability check and the planner produce these; the line an
 * operator reads and the error code are both derived from them, by the pure
 * functions below, never from a message's text.
 */
import type { Capability } from "../abi/host-symbols.js";
import { ErrorCodes } from "../errors.js";
import type { ErrorCode } from "../errors.js";

export type LinkProblem =
  /** No definition of an import: in the global scope (`namespace` undefined) or in the provider a namespace names. */
  | {
      readonly kind: "undefined-symbol";
      readonly importer: string;
      readonly symbol: string;
      readonly namespace: string | undefined;
      readonly expected: string;
    }
  /** A definition whose type is not the one imported. */
  | {
      readonly kind: "type-mismatch";
      readonly importer: string;
      readonly symbol: string;
      readonly provider: string;
      readonly expected: string;
      readonly found: string;
    }
  /** `env.memory` imported as shared: the host gives every unit a memory of its own. */
  | { readonly kind: "shared-memory"; readonly importer: string }
  /** `env.memory` imported with more initial pages than the unit's memory cap. */
  | { readonly kind: "memory-over-cap"; readonly importer: string; readonly pages: number; readonly limit: number }
  /** A host symbol of a capability the importer was not granted, imported directly or through `via`'s export `symbol`. */
  | {
      readonly kind: "capability";
      readonly importer: string;
      readonly symbol: string;
      readonly hostSymbol: string;
      readonly capability: Capability;
      readonly via: string | undefined;
    }
  /** An import namespace naming a compiled-in module: it has no exports to bind to. */
  | { readonly kind: "needed-compiled-in"; readonly importer: string; readonly module: string }
  /** An import namespace that names neither a library nor a module. */
  | { readonly kind: "bad-namespace"; readonly importer: string; readonly namespace: string }
  /** A library or module the importer needs could not be loaded: one problem per line of its error. */
  | {
      readonly kind: "needed-failed";
      readonly importer: string;
      readonly unitKind: "library" | "module";
      readonly unit: string;
      readonly code: ErrorCode;
      readonly line: string;
    };

/** The operator's line for a problem (the trace log's level-1 line, and one line of the error). */
export function problemLine(problem: LinkProblem): string {
  const { importer } = problem;
  switch (problem.kind) {
    case "undefined-symbol":
      return problem.namespace === undefined
        ? `${importer}: undefined symbol '${problem.symbol}' (${problem.expected})`
        : `${importer}: undefined symbol '${problem.symbol}' in ${problem.namespace} (${problem.expected})`;
    case "type-mismatch":
      return (
        `${importer}: symbol '${problem.symbol}' has type ${problem.found} in ${problem.provider}, ` +
        `but ${importer} imports ${problem.expected}`
      );
    case "shared-memory":
      return `${importer}: imports a shared memory, which the host does not provide`;
    case "memory-over-cap":
      return `${importer}: memory needs ${problem.pages} pages, over its cap of ${problem.limit} pages`;
    case "capability":
      return problem.via === undefined
        ? `${importer}: symbol '${problem.symbol}' needs capability '${problem.capability}', which ${importer} is not granted`
        : `${importer}: symbol '${problem.symbol}' of ${problem.via} needs capability '${problem.capability}' ` +
            `(it reaches host symbol '${problem.hostSymbol}'), which ${importer} is not granted`;
    case "needed-compiled-in":
      return `${importer}: needed module '${problem.module}' is compiled in and exports no symbols`;
    case "bad-namespace":
      return `${importer}: import namespace '${problem.namespace}' names no library or module`;
    case "needed-failed":
      return `${importer}: needed ${problem.unitKind} '${problem.unit}': ${problem.line}`;
  }
}

/** The code of one problem: a policy refusal has its policy's code; anything else is a link failure. */
export function problemCode(problem: LinkProblem): ErrorCode {
  switch (problem.kind) {
    case "capability":
      return ErrorCodes.CAPABILITY;
    case "memory-over-cap":
      return ErrorCodes.MEMORY_LIMIT;
    default:
      return ErrorCodes.LINK;
  }
}

/** The code of a failed link: the problems' code when they share one, DSO_ERR_LINK when they are of several kinds. */
export function linkErrorCode(problems: readonly LinkProblem[]): ErrorCode {
  const codes = new Set(problems.map(problemCode));
  const [only] = codes;
  return codes.size === 1 && only !== undefined ? only : ErrorCodes.LINK;
}
