/**
 * The global symbol scope, searched the way ld.so searches for a dlopen'd
 * RTLD_GLOBAL object: the executable's own symbols (the host's) first, then the
 * libraries loaded by LoadFile in load order, then loaded modules' exports in
 * load order. The first definition of a name wins; later ones are kept as
 * shadowed definitions, recorded and visible in lookups, never silently
 * replacing the first. Unloading a provider lets the next definition win.
 */
import type { ExternType } from "../wasm/types.js";

export type ProviderKind = "host" | "library" | "module";

/** Who defines symbols: the host, a library or a module. */
export interface Provider {
  readonly kind: ProviderKind;
  /** `host`, `libfoo`, `mod_x.c`. */
  readonly name: string;
  /** Load sequence number; orders providers of one kind. */
  readonly seq: number;
}

export interface Definition {
  readonly name: string;
  readonly type: ExternType;
  readonly provider: Provider;
}

export interface SymbolLookup {
  readonly winner: Definition;
  /** Later definitions of the same name, in scope order. */
  readonly shadowed: readonly Definition[];
}

/** A new definition that did not win because an earlier one exists (or that now hides an existing one). */
export interface ShadowEvent {
  readonly name: string;
  readonly winner: Provider;
  readonly shadowed: Provider;
}

const KIND_RANK: Readonly<Record<ProviderKind, number>> = { host: 0, library: 1, module: 2 };

function precedes(a: Provider, b: Provider): boolean {
  const byKind = KIND_RANK[a.kind] - KIND_RANK[b.kind];
  return byKind === 0 ? a.seq < b.seq : byKind < 0;
}

export class SymbolScope {
  readonly #definitions = new Map<string, Definition[]>();

  /** Number of distinct names in scope. */
  get size(): number {
    return this.#definitions.size;
  }

  /** Adds a provider's definitions in scope order; returns who shadows whom. */
  add(definitions: readonly Definition[]): ShadowEvent[] {
    const events: ShadowEvent[] = [];
    for (const definition of definitions) {
      const existing = this.#definitions.get(definition.name);
      if (existing === undefined) {
        this.#definitions.set(definition.name, [definition]);
        continue;
      }
      let index = existing.length;
      while (index > 0 && precedes(definition.provider, (existing[index - 1] as Definition).provider)) index--;
      existing.splice(index, 0, definition);
      const winner = existing[0] as Definition;
      events.push({
        name: definition.name,
        winner: winner.provider,
        shadowed: (index === 0 ? (existing[1] as Definition) : definition).provider,
      });
    }
    return events;
  }

  /** Removes every definition of `provider`. */
  remove(provider: Provider, names: Iterable<string>): void {
    for (const name of names) {
      const existing = this.#definitions.get(name);
      if (existing === undefined) continue;
      const kept = existing.filter((d) => d.provider !== provider);
      if (kept.length === 0) this.#definitions.delete(name);
      else this.#definitions.set(name, kept);
    }
  }

  lookup(name: string): SymbolLookup | undefined {
    const found = this.#definitions.get(name);
    if (found === undefined) return undefined;
    const [winner, ...shadowed] = found as [Definition, ...Definition[]];
    return { winner, shadowed };
  }

  first(name: string): Definition | undefined {
    return this.#definitions.get(name)?.[0];
  }
}
