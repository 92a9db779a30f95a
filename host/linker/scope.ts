/**
 * The global symbol scope, searched the way ld.so searches for a dlopen'd
 * RTLD_GLOBAL object: the executable's own symbols (the host's) first, then the
 * libraries loaded by LoadFile in load order, then loaded modules' exports in
 * load order. The first definition of a name wins; later ones are kept as
 * shadowed definitions, recorded and visible in lookups, never silently
 * replacing the first. Unloading a provider lets the next definition win.
 *
 * A loaded module enters whole, as ld.so adds a link map to the scope: its
 * export table (built once per compiled module and shared by every load of it)
 * is searched where it stands in scope order, so that insmod and rmmod of a
 * module with thousands of exports do no work per export, and a lookup pays a
 * table probe per loaded module only for names the host and the libraries do
 * not define. The host's symbols and LoadFile libraries, which stay for the
 * host's life, are indexed by name.
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

/** A provider added whole: its export types by name, searched in place (SymbolScope.addTable). */
interface ProviderTable {
  readonly provider: Provider;
  readonly types: ReadonlyMap<string, ExternType>;
}

const NONE: readonly Definition[] = [];

/** Who shadows whom when `definition` joins `all` (every definition of its name, in scope order; not empty). */
function shadowEvent(all: readonly Definition[], definition: Definition): ShadowEvent {
  let index = all.length;
  while (index > 0 && precedes(definition.provider, (all[index - 1] as Definition).provider)) index--;
  const first = (all[0] as Definition).provider;
  return index === 0
    ? { name: definition.name, winner: definition.provider, shadowed: first }
    : { name: definition.name, winner: first, shadowed: definition.provider };
}

/** Two lists of definitions in scope order as one. */
function merge(a: readonly Definition[], b: readonly Definition[]): Definition[] {
  if (b.length === 0) return [...a];
  if (a.length === 0) return [...b];
  const out: Definition[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as Definition;
    const y = b[j] as Definition;
    if (precedes(y.provider, x.provider)) {
      out.push(y);
      j++;
    } else {
      out.push(x);
      i++;
    }
  }
  return [...out, ...a.slice(i), ...b.slice(j)];
}

export class SymbolScope {
  /**
   * The winning definition of each name added by name, looked up by every import: kept apart
   * from the rare shadowed ones so that a lookup touches one entry, and adding a
   * name nobody else defines allocates nothing.
   */
  readonly #winners = new Map<string, Definition>();
  /** Later definitions of names defined more than once, in scope order. */
  readonly #shadowed = new Map<string, Definition[]>();
  /** Providers added whole, in scope order. */
  #tables: readonly ProviderTable[] = [];

  /** Number of distinct names in scope. */
  get size(): number {
    if (this.#tables.length === 0) return this.#winners.size;
    const names = new Set(this.#winners.keys());
    for (const { types } of this.#tables) for (const name of types.keys()) names.add(name);
    return names.size;
  }

  /** Adds a provider's definitions in scope order; returns who shadows whom. */
  add(definitions: readonly Definition[]): ShadowEvent[] {
    const events: ShadowEvent[] = [];
    for (const definition of definitions) {
      const { name } = definition;
      const winner = this.#winners.get(name);
      const inTables = this.#tableDefinitions(name);
      if (winner === undefined && inTables.length === 0) {
        this.#winners.set(name, definition);
        continue;
      }
      const own = winner === undefined ? [] : [winner, ...(this.#shadowed.get(name) ?? [])];
      events.push(shadowEvent(merge(own, inTables), definition));
      let index = own.length;
      while (index > 0 && precedes(definition.provider, (own[index - 1] as Definition).provider)) index--;
      own.splice(index, 0, definition);
      this.#winners.set(name, own[0] as Definition);
      if (own.length > 1) this.#shadowed.set(name, own.slice(1));
    }
    return events;
  }

  /**
   * Adds a provider whole: `types` (its exports by name) is kept as it is and
   * searched in place, not copied name by name. Who shadows whom is found only
   * when `withEvents` asks (it looks every name up).
   */
  addTable(provider: Provider, types: ReadonlyMap<string, ExternType>, withEvents: boolean): ShadowEvent[] {
    const events: ShadowEvent[] = [];
    if (withEvents) {
      for (const [name, type] of types) {
        const all = this.#definitions(name);
        if (all.length > 0) events.push(shadowEvent(all, { name, type, provider }));
      }
    }
    const tables = [...this.#tables];
    let index = tables.length;
    while (index > 0 && precedes(provider, (tables[index - 1] as ProviderTable).provider)) index--;
    tables.splice(index, 0, { provider, types });
    this.#tables = tables;
    return events;
  }

  /** Removes a provider added whole. */
  removeTable(provider: Provider): void {
    this.#tables = this.#tables.filter((table) => table.provider !== provider);
  }

  /** Removes every definition of `provider` among `names`, as add() took them. */
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
    const [winner, ...shadowed] = this.#definitions(name);
    return winner === undefined ? undefined : { winner, shadowed };
  }

  first(name: string): Definition | undefined {
    const winner = this.#winners.get(name);
    const tables = this.#tables;
    const firstTable = tables[0];
    // Tables are in scope order: a winner before the first is before them all.
    if (firstTable === undefined || (winner !== undefined && precedes(winner.provider, firstTable.provider))) {
      return winner;
    }
    for (const { provider, types } of tables) {
      const type = types.get(name);
      if (type === undefined) continue;
      return winner !== undefined && precedes(winner.provider, provider) ? winner : { name, type, provider };
    }
    return winner;
  }

  /** Every definition of `name`, in scope order. */
  #definitions(name: string): Definition[] {
    const winner = this.#winners.get(name);
    const own = winner === undefined ? [] : [winner, ...(this.#shadowed.get(name) ?? [])];
    return merge(own, this.#tableDefinitions(name));
  }

  /** The definitions of `name` in the providers added whole, in scope order. */
  #tableDefinitions(name: string): readonly Definition[] {
    if (this.#tables.length === 0) return NONE;
    const found: Definition[] = [];
    for (const { provider, types } of this.#tables) {
      const type = types.get(name);
      if (type !== undefined) found.push({ name, type, provider });
    }
    return found;
  }
}
