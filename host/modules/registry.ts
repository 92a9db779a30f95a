/**
 * proftpd's module list and ld.so's link map in one: the loaded units by name,
 * namespace and provider, the global symbol scope they define, and the engine
 * order (compiled-in modules first, then loaded ones, oldest first: lsmod
 * order). A unit enters on commit, leaves the engine on detach, and is
 * finalized once nothing can run it any more.
 */
import { HOST_SYMBOLS, hostSymbolType } from "../abi/host-symbols.js";
import { SymbolScope } from "../linker/scope.js";
import type { Binding } from "../linker/resolve.js";
import type { Provider } from "../linker/scope.js";
import { formatExternType } from "../wasm/types.js";
import type { EngineModule } from "./module-api.js";
import type { MemoryLimits, MemoryPool } from "./memory-pool.js";
import { parseModuleName } from "./module-name.js";
import { HOST_PROVIDER, publicTypes } from "./planner.js";
import type { LinkedProvider } from "./planner.js";
import type { LoadedUnitInfo, ModuleSet, SymbolInfo } from "./types.js";
import { detachedState, isDetached, isFaulted, unitInfo } from "./unit.js";
import type { LoadedUnit } from "./unit.js";

/** The limits of the memory the host gave a unit, if its binary imports one. */
export function hostMemoryLimits(bindings: readonly Binding[]): MemoryLimits | undefined {
  for (const binding of bindings) if ("hostMemory" in binding) return binding.hostMemory;
  return undefined;
}

/** The module symbol a loaded module was linked with (the planner's PlannedUnit.moduleSymbol). */
function moduleSymbolOf(unit: LoadedUnit): string | undefined {
  return unit.kind === "module" ? parseModuleName(unit.name).symbol : undefined;
}

export interface RegistryContext {
  readonly memories: MemoryPool;
  tracing(level: number): boolean;
  trace(level: number, message: string): void;
  /** A unit's unload hook failed. */
  unloadHookFailed(unit: LoadedUnit, error: unknown): void;
}

export class UnitRegistry {
  readonly scope = new SymbolScope();
  readonly #context: RegistryContext;
  readonly #units = new Map<string, LoadedUnit>();
  readonly #byNamespace = new Map<string, LoadedUnit>();
  readonly #byProvider = new Map<Provider, LoadedUnit>();
  /**
   * Engine order: compiled-in modules first, then loaded ones, oldest first
   * (lsmod order). Replaced, never mutated: every session acquiring the same
   * order shares this one array, so dispatch indexes its handlers once per
   * module set (host/ftp/handler-index.ts), not once per session.
   */
  #engine: readonly EngineModule[];

  /** The host's own symbols come first in the scope, as ld.so searches the executable first. */
  constructor(context: RegistryContext, compiledIn: readonly EngineModule[]) {
    this.#context = context;
    this.#engine = [...compiledIn];
    for (const symbol of HOST_SYMBOLS.values()) {
      const type = { kind: "func", type: hostSymbolType(symbol) } as const;
      this.scope.add([{ name: symbol.name, type, provider: HOST_PROVIDER }]);
    }
  }

  get engine(): readonly EngineModule[] {
    return this.#engine;
  }

  unit(name: string): LoadedUnit | undefined {
    return this.#units.get(name);
  }

  byNamespace(namespace: string): LoadedUnit | undefined {
    return this.#byNamespace.get(namespace);
  }

  /** A loaded unit as later loads link against it. */
  linkedNamespace(namespace: string): LinkedProvider | undefined {
    return this.#byNamespace.get(namespace);
  }

  byProvider(provider: Provider): LoadedUnit | undefined {
    return this.#byProvider.get(provider);
  }

  setProvider(provider: Provider, unit: LoadedUnit | undefined): void {
    if (unit === undefined) this.#byProvider.delete(provider);
    else this.#byProvider.set(provider, unit);
  }

  /** A compiled-in module back in the engine (insmod of a static module rmmod'ed before). */
  pushEngine(module: EngineModule): void {
    this.#engine = [...this.#engine, module];
  }

  /** A compiled-in module out of the engine; its code stays, as proftpd's lt_dlclose(NULL). */
  removeFromEngine(index: number): void {
    this.#engine = this.#engine.filter((_, i) => i !== index);
  }

  setEngine(modules: readonly EngineModule[]): void {
    this.#engine = modules;
  }

  libraries(): LoadedUnit[] {
    return [...this.#units.values()].filter((u) => u.kind === "library");
  }

  allUnits(): LoadedUnit[] {
    return [...this.#units.values()];
  }

  /** A fully instantiated unit enters the registry, the scope and (a module) the engine. */
  commit(unit: LoadedUnit): void {
    this.#units.set(unit.name, unit);
    this.#byNamespace.set(unit.namespace, unit);
    for (const dependency of unit.dependencies) {
      dependency.dependents.add(unit);
      dependency.boundBy++;
    }
    // A module enters whole (its export table, shared by every load of it); a LoadFile library stays for the
    // host's life and enters name by name. Who shadows whom is looked for only when someone reads it.
    const events =
      unit.kind === "module"
        ? this.scope.addTable(unit.provider, publicTypes(unit, moduleSymbolOf(unit)), this.#context.tracing(7))
        : this.scope.add(unit.publicDefinitions);
    for (const event of events) {
      this.#context.trace(
        7,
        `symbol '${event.name}' of ${event.shadowed.name} is shadowed by ${event.winner.name} (first definition wins)`,
      );
    }
    if (unit.engineModule !== undefined) this.#engine = [...this.#engine, unit.engineModule];
  }

  detach(unit: LoadedUnit, closing = false): void {
    if (isDetached(unit)) return;
    unit.state = detachedState(unit);
    this.#engine = this.#engine.filter((m) => m !== unit.engineModule);
    if (unit.kind === "module") this.scope.removeTable(unit.provider);
    else
      this.scope.remove(
        unit.provider,
        unit.publicDefinitions.map((d) => d.name),
      );
    this.#units.delete(unit.name);
    this.#byNamespace.delete(unit.namespace);
    for (const dependency of unit.dependencies) {
      dependency.dependents.delete(unit);
      // A needed dependency goes with its last dependent, like a DT_NEEDED library at dlclose.
      if (!closing && !dependency.explicit && dependency.dependents.size === 0) {
        this.#context.trace(5, `unloading ${dependency.kind} '${dependency.name}', no longer needed`);
        this.detach(dependency);
      }
    }
    this.finalizeWhenUnused(unit, closing);
  }

  /**
   * A detached unit is finalized once nothing can run it: no session holds it
   * and no instance bound to its exports can still run (a session may hold a
   * dependent that rmmod already detached).
   */
  finalizeWhenUnused(unit: LoadedUnit, closing = false): void {
    if (unit.state.kind === "detached" && unit.holders === 0 && unit.boundBy === 0) this.#finalize(unit, closing);
  }

  #finalize(unit: LoadedUnit, closing: boolean): void {
    this.#byProvider.delete(unit.provider);
    this.runUnloadHook(unit);
    unit.state = { kind: "finalized" };
    unit.sandbox.wasi?.close();
    unit.importer.strings?.release();
    // Nothing can run the instance now (no session holds it, no module is bound to it), unless dlsym gave it away.
    const limits = hostMemoryLimits(unit.bindings);
    if (!closing && !unit.exportsEscaped && unit.memory !== undefined && limits !== undefined) {
      this.#context.memories.release(unit.memory, limits);
    }
    for (const dependency of unit.dependencies) {
      dependency.boundBy--;
      this.finalizeWhenUnused(dependency, closing);
    }
  }

  /** A faulted instance is never entered again, not even for its unload hook. */
  runUnloadHook(unit: LoadedUnit): void {
    if (isFaulted(unit)) return;
    try {
      unit.engineModule?.unload?.();
    } catch (error) {
      this.#context.unloadHookFailed(unit, error);
    }
  }

  /** A snapshot of the engine for a new session, with its guest modules; the units stay alive until `release()`. */
  acquire(): ModuleSet & { readonly held: readonly LoadedUnit[] } {
    const modules = this.#engine;
    const held = modules.flatMap((m) => {
      const unit = this.#units.get(m.name);
      return unit === undefined ? [] : [unit];
    });
    for (const unit of held) unit.holders++;
    let released = false;
    return {
      modules,
      held,
      release: () => {
        if (released) return;
        released = true;
        for (const unit of held) {
          unit.holders--;
          this.finalizeWhenUnused(unit);
        }
      },
    };
  }

  lookup(symbol: string): SymbolInfo | undefined {
    const found = this.scope.lookup(symbol);
    if (found === undefined) return undefined;
    return {
      symbol,
      provider: found.winner.provider.name,
      providerKind: found.winner.provider.kind,
      type: formatExternType(found.winner.type),
      shadowed: found.shadowed.map((d) => ({ provider: d.provider.name, type: formatExternType(d.type) })),
    };
  }

  dlsym(symbol: string): WebAssembly.ExportValue | undefined {
    const definition = this.scope.first(symbol);
    if (definition === undefined) return undefined;
    const unit = this.#byProvider.get(definition.provider);
    if (unit === undefined) return undefined;
    // The caller may keep it past rmmod: the instance's memory must then never be recycled.
    unit.exportsEscaped = true;
    return unit.instance.exports[symbol];
  }

  describe(): LoadedUnitInfo[] {
    const modules = this.#engine.map((m) => {
      const unit = this.#units.get(m.name);
      return unit === undefined
        ? {
            name: m.name,
            kind: "static" as const,
            explicit: true,
            exports: [],
            bindings: [],
            dependents: [],
            sessions: 0,
          }
        : unitInfo(unit);
    });
    return [...modules, ...this.libraries().map(unitInfo)];
  }
}
