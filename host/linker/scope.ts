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
  /**
   * The winning definition of each name, looked up by every import: kept apart
   * from the rare shadowed ones so that a lookup touches one entry, and adding a
   * name nobody else defines allocates nothing.
   */
  readonly #winners = new Map<string, Definition>();
  /** Later definitions of names defined more than once, in scope order. */
  readonly #shadowed = new Map<string, Definition[]>();

  /** Number of distinct names in scope. */
  get size(): number {
    return this.#winners.size;
  }

  /** Adds a provider's definitions in scope order; returns who shadows whom. */
  add(definitions: readonly Definition[]): ShadowEvent[] {
    const events: ShadowEvent[] = [];
    for (const definition of definitions) {
      const winner = this.#winners.get(definition.name);
      if (winner === undefined) {
        this.#winners.set(definition.name, definition);
        continue;
      }
      const all = [winner, ...(this.#shadowed.get(definition.name) ?? [])];
      let index = all.length;
      while (index > 0 && precedes(definition.provider, (all[index - 1] as Definition).provider)) index--;
      all.splice(index, 0, definition);
      this.#winners.set(definition.name, all[0] as Definition);
      this.#shadowed.set(definition.name, all.slice(1));
      events.push({
        name: definition.name,
        winner: (all[0] as Definition).provider,
        shadowed: (index === 0 ? (all[1] as Definition) : definition).provider,
      });
    }
    return events;
  }

  /** Removes every definition of `provider`. */
  remove(provider: Provider, names: Iterable<string>): void {
    for (const name of names) {
      const winner = this.#winners.get(name);
      if (winner === undefined) continue;
      const rest = this.#shadowed.get(name);
      if (rest === undefined) {
        if (winner.provider === provider) this.#winners.delete(name);
        continue;
      }
      const kept = [winner, ...rest].filter((d) => d.provider !== provider);
      const [first, ...later] = kept;
      if (first === undefined) this.#winners.delete(name);
      else this.#winners.set(name, first);
      if (later.length === 0) this.#shadowed.delete(name);
      else this.#shadowed.set(name, later);
    }
  }

  lookup(name: string): SymbolLookup | undefined {
    const winner = this.#winners.get(name);
    if (winner === undefined) return undefined;
    return { winner, shadowed: this.#shadowed.get(name) ?? [] };
  }

  first(name: string): Definition | undefined {
    return this.#winners.get(name);
  }
}
