/**
 * Capabilities are checked against the importing unit, at link time. A unit
 * needs the capability of every host symbol it imports, and also every
 * capability its providers need: a library that wraps a privileged host symbol
 * cannot lend that privilege to a module that lacks it (the colluding-plugins
 * problem of proxy-wasm-cpp-host #140, as a re-export problem).
 *
 * Pure: bindings and grants in, needs and problems out.
 */
import type { Capability } from "../abi/host-symbols.js";
import type { LinkProblem } from "./problems.js";

export interface CapabilityNeed {
  readonly capability: Capability;
  /** The host symbol that needs it. */
  readonly hostSymbol: string;
  /** The import of this unit that leads there (equal to hostSymbol for a direct import). */
  readonly importName: string;
  /** The provider the import binds to, when the need is inherited from it. */
  readonly via: string | undefined;
}

export interface CapabilityBinding {
  readonly importName: string;
  /** The host symbol's capability, for an import bound to the host. */
  readonly hostCapability: Capability | undefined;
  /** For an import bound to another unit: that unit's name and its own needs. */
  readonly provider: { readonly name: string; readonly needs: readonly CapabilityNeed[] } | undefined;
}

/** Everything a unit needs, directly or through its providers, one entry per capability and origin. */
export function capabilityNeeds(bindings: readonly CapabilityBinding[]): CapabilityNeed[] {
  const needs: CapabilityNeed[] = [];
  // Grouped by symbol name (a string whose hash V8 already has), not by a key joined per import.
  const bySymbol = new Map<string, CapabilityNeed[]>();
  const add = (need: CapabilityNeed): void => {
    const same = bySymbol.get(need.hostSymbol);
    if (same === undefined) bySymbol.set(need.hostSymbol, [need]);
    else if (same.some((n) => n.capability === need.capability && n.via === need.via)) return;
    else same.push(need);
    needs.push(need);
  };
  for (const binding of bindings) {
    if (binding.hostCapability !== undefined) {
      add({
        capability: binding.hostCapability,
        hostSymbol: binding.importName,
        importName: binding.importName,
        via: undefined,
      });
    }
    for (const inherited of binding.provider?.needs ?? []) {
      add({
        capability: inherited.capability,
        hostSymbol: inherited.hostSymbol,
        importName: binding.importName,
        via: binding.provider?.name,
      });
    }
  }
  return needs;
}

/** One problem per need the importer was not granted. */
export function capabilityProblems(
  importer: string,
  needs: readonly CapabilityNeed[],
  granted: ReadonlySet<Capability>,
): LinkProblem[] {
  return needs
    .filter((need) => !granted.has(need.capability))
    .map((need) => ({
      kind: "capability",
      importer,
      symbol: need.via === undefined ? need.hostSymbol : need.importName,
      hostSymbol: need.hostSymbol,
      capability: need.capability,
      via: need.via,
    }));
}
