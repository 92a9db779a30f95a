/**
 * The module host: mod_dso's loader and proftpd's module registry, as a façade
 * over the parts wasmtime also keeps apart:
 *
 *   module-compiler.ts   opens, checks and compiles binaries; owns the caches
 *   planner.ts           resolves a load (the unit and what it needs), pure
 *   instantiate.ts       links and instantiates planned units
 *   unit.ts              a loaded unit and its lifecycle state
 *   registry.ts          the units, namespaces, global scope and engine order
 *   fault-supervisor.ts  every call into guest code, faults and reloads
 *
 * A load reads every binary it needs, validates and resolves every import of
 * all of them, and only then instantiates them, dependencies first, and runs
 * their init hooks. Any failure leaves the host exactly as it was: nothing is
 * registered until everything has succeeded. A module load can be split
 * there (prepared-load.ts): prepared (all that can fail), then committed or
 * aborted, so that session workers change together.
 */
import path from "node:path";
import type { HostServices } from "../abi/host-symbols.js";
import { SharedStore, sharedDataBytes } from "../abi/shared-store.js";
import type { SharedStoreApi } from "../abi/shared-store.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { watchdogUnavailable } from "../sandbox/watchdog.js";
import { FaultSupervisor } from "./fault-supervisor.js";
import type { ModuleFault } from "./fault-supervisor.js";
import { describeTrap, instantiateCopy, instantiatePlan, reinstantiate } from "./instantiate.js";
import type { InstanceContext } from "./instantiate.js";
import { MemoryPool } from "./memory-pool.js";
import { ModuleCompiler, loadedLine } from "./module-compiler.js";
import { LinkError, planLoad } from "./planner.js";
import type { PlanSource, UnitRequest } from "./planner.js";
import { DEFAULT_POLICY } from "./policy.js";
import type { UnitPolicy } from "./policy.js";
import type { EngineModule } from "./module-api.js";
import { parseUnloadName } from "./module-name.js";
import { LOADED_LEVEL, dsoDebug } from "./dso-debug.js";
import { dsoLogLines } from "./dso-log.js";
import { publishLoaderEvent } from "./loader-events.js";
import type { LoaderEvent } from "./loader-events.js";
import { UnitRegistry, hostMemoryLimits } from "./registry.js";
import type {
  LoadedUnitInfo,
  LogPriority,
  ModuleHostOptions,
  ModuleSet,
  SessionInstancesMode,
  SymbolInfo,
  Tracer,
} from "./types.js";
import { isDetached } from "./unit.js";
import type { LoadedUnit } from "./unit.js";
import { SessionInstances, SessionMemoryAccount } from "./session-instances.js";
import type { SessionInstancesContext, SessionMemoryApi } from "./session-instances.js";
import { adoptUnitStates, takeUnitStates } from "./instance-states.js";
import type { UnitInstanceState } from "./instance-states.js";
import type { InstanceSnapshot } from "./snapshot.js";
import { forgetSnapshots, forkState, memoryBytes, sessionInstanceError, snapshotOf } from "./session-fork.js";
import { abortModuleLoad, commitModuleLoad, prepareModuleLoad } from "./prepared-load.js";
import type { LoadSteps, PreparedLoad } from "./prepared-load.js";

export { MOD_DSO_VERSION } from "./types.js";
export { SessionMemoryAccount } from "./session-instances.js";
export type { SessionMemoryApi } from "./session-instances.js";
export type { PreparedLoad } from "./prepared-load.js";
export type { ModuleFault } from "./fault-supervisor.js";
export type {
  SessionInstancesMode,
  BindingInfo,
  LoadedUnitInfo,
  LogPriority,
  ModuleHostOptions,
  ModuleSet,
  SymbolInfo,
  Tracer,
} from "./types.js";

export class ModuleHost {
  #modulePath: string;
  readonly #compiledIn: ReadonlyMap<string, EngineModule>;
  readonly #protected: ReadonlySet<string>;
  readonly #policy: (unit: string) => UnitPolicy;
  readonly #log: ((priority: LogPriority, message: string) => void) | undefined;
  readonly #tracer: Tracer | undefined;
  readonly #debugLevel: number;
  readonly #compiler = new ModuleCompiler();
  readonly #memories = new MemoryPool();
  /**
   * The daemon's shared store, one scope per unit name: it outlives instances,
   * so a scope survives its module's fault resets and an rmmod then insmod,
   * as mod_ban's table outlives its sessions.
   */
  readonly #shared: SharedStoreApi;
  readonly #registry: UnitRegistry;
  readonly #faults: FaultSupervisor;
  readonly #instances: InstanceContext;
  readonly #source: PlanSource;
  readonly #sessionContext: SessionInstancesContext;
  readonly #steps: LoadSteps;
  #seq = 0;
  /** Changes of what loads link against (loads, unloads, faults): a load prepared before one is stale. */
  #changes = 0;
  #sessionInstances: SessionInstancesMode;
  /** ModuleMemoryTotal, in bytes; no bound when undefined. */
  #memoryTotal: number | undefined;
  /** What the open sessions reserved of it. */
  readonly #sessionMemory: SessionMemoryApi;

  constructor(options: ModuleHostOptions) {
    this.#modulePath = options.modulePath;
    this.#compiledIn = new Map((options.compiledIn ?? []).map((m) => [m.name, m]));
    this.#protected = new Set(options.protectedModules ?? []);
    this.#policy = options.policy ?? (() => DEFAULT_POLICY);
    this.#shared = options.sharedStore ?? new SharedStore();
    this.#log = options.log;
    this.#tracer = options.tracer;
    this.#debugLevel = options.debugLevel ?? 0;
    this.#sessionInstances = options.sessionInstances ?? "snapshot";
    this.#memoryTotal = options.memoryTotal;
    this.#sessionMemory = options.sessionMemory ?? new SessionMemoryAccount();
    const guestLog =
      options.guestLog ?? ((importer, _level, message) => this.#log?.("debug", `${importer}: ${message}`));
    const trace = (level: number, message: string): void => this.#trace("dso", level, message);
    this.#registry = new UnitRegistry(
      {
        memories: this.#memories,
        tracing: (level) => this.#traceOn(level),
        trace,
        unloadHookFailed: (unit, error) =>
          this.#emit({ kind: "unload-hook-failed", unit: unit.name, reason: describeTrap(error) }),
      },
      [...this.#compiledIn.values()],
    );
    const clock = options.clock ?? Date.now;
    this.#faults = new FaultSupervisor({
      now: clock,
      reinstantiate: (unit) => {
        this.#changes++;
        reinstantiate(this.#instances, unit);
      },
      templateRan: (unit) => forgetSnapshots(unit),
      detach: (unit) => {
        this.#changes++;
        this.#registry.detach(unit);
      },
      report: (event) => this.#emit(event),
    });
    const services: HostServices = {
      log: guestLog,
      trace: (_importer, channel, level, message) => this.#trace(channel, level, message),
      activeCommand: () => this.#faults.activeCommand(),
      sharedData: (importer) => this.#shared.scope(importer, sharedDataBytes(this.#policy(importer).memoryCapPages)),
      now: clock,
    };
    this.#instances = {
      memories: this.#memories,
      services,
      policy: this.#policy,
      unitOf: (provider) => this.#registry.byProvider(provider),
      setProvider: (provider, unit) => this.#registry.setProvider(provider, unit),
      tracing: (level) => this.#traceOn(level),
      trace,
      invoke: (unit, entryPoint, command, instances) =>
        instances === undefined
          ? this.#faults.invoke(unit, entryPoint, command)
          : this.#faults.invokeIn(instances, unit, entryPoint, command),
      run: (own, entryPoint, command) => this.#faults.run(own, entryPoint, command),
      initFailed: (module) => this.#emit({ kind: "init-failed", module }),
    };
    this.#source = this.#planSource();
    this.#steps = this.#loadSteps();
    this.#sessionContext = this.#sessionInstancesContext(clock);
    for (const module of this.#registry.engine) module.init?.();
  }

  /** What the planner sees: this host's binaries, policies, loaded units and scope. */
  #planSource(): PlanSource {
    return {
      modulePath: () => this.#modulePath,
      policy: this.#policy,
      open: (request, policy) =>
        this.#compiler.open(request, policy, this.#modulePath, () => {
          if (request.kind === "module" && request.explicit) this.#debugLoaded(request.namespace, request.file);
        }),
      isCompiledIn: (name) => this.#compiledIn.has(name),
      loadedNamespace: (namespace) => this.#registry.linkedNamespace(namespace),
      loadedProvider: (provider) => this.#registry.byProvider(provider),
      lookupGlobal: (name) => this.#registry.scope.first(name),
      sandboxProblem: watchdogUnavailable,
      nextSeq: () => ++this.#seq,
      trace: (level, message) => this.#trace("dso", level, message),
      wrongApiVersion: (module, found, expected) => this.#emit({ kind: "wrong-api-version", module, found, expected }),
    };
  }

  /** What a module load's phases reach of this host (prepared-load.ts). */
  #loadSteps(): LoadSteps {
    return {
      owner: this,
      registry: this.#registry,
      memories: this.#memories,
      compiledIn: (name) => this.#compiledIn.get(name),
      isLoaded: (name) => this.isLoaded(name),
      modulePath: () => this.#modulePath,
      instantiate: (request) => this.#instantiate(request),
      changes: () => this.#changes,
      changed: () => {
        this.#changes++;
      },
      setProvider: (provider, unit) => this.#registry.setProvider(provider, unit),
      emit: (event) => this.#emit(event),
      trace: (level, message) => this.#trace("dso", level, message),
      debugLoaded: (stem, file) => this.#debugLoaded(stem, file),
    };
  }

  /** How a session's instances are made and given back (session-instances.ts). */
  #sessionInstancesContext(now: () => number): SessionInstancesContext {
    return {
      now,
      unitOf: (provider) => this.#registry.byProvider(provider),
      create: (template, state, exportsOf) => {
        try {
          return instantiateCopy(this.#instances, template, state, exportsOf);
        } catch (cause) {
          throw sessionInstanceError(template.name, cause);
        }
      },
      snapshot: (own) =>
        own.template.instanceState.unsnapshotable === undefined
          ? snapshotOf(own.template, own.instance, own.memory)
          : undefined,
      rebuilding: (template) => this.#emit({ kind: "reinstantiating", unit: template.name }),
      dispose: (own) => {
        own.sandbox.wasi?.close();
        own.importer.strings?.release();
        const limits = hostMemoryLimits(own.template.bindings);
        if (own.memory !== undefined && limits !== undefined) this.#memories.release(own.memory, limits);
      },
      ran: (instances) => this.#sessionMemory.ran(instances),
      released: (instances) => this.#sessionMemory.close(instances),
    };
  }

  /** Where later loads look (ModulePath affects only the loads after it, as in mod_dso.c). */
  get modulePath(): string {
    return this.#modulePath;
  }

  /** ModulePath: checks on the directory are the directive's; the host only remembers it. */
  setModulePath(directory: string): void {
    this.#modulePath = directory;
    this.#compiler.forgetModulePath();
  }

  #traceOn(level: number): boolean {
    return this.#tracer !== undefined && this.#tracer.level("dso") >= level;
  }

  #trace(channel: string, level: number, message: string): void {
    if (this.#tracer !== undefined && this.#tracer.level(channel) >= level) this.#tracer.write(channel, level, message);
  }

  /** Publishes an event; a host given a `log` sink also logs mod_dso's lines for it. */
  #emit(event: LoaderEvent): void {
    publishLoaderEvent(this, event);
    if (this.#log === undefined) return;
    for (const { priority, message } of dsoLogLines(event, this.#debugLevel)) this.#log(priority, message);
  }

  /** dso_load_module's DEBUG7 line once a module's file is open, with its modification time. */
  #debugLoaded(stem: string, file: string | undefined): void {
    if (file === undefined || this.#debugLevel < LOADED_LEVEL) return;
    const line = loadedLine(stem, file);
    if (line !== undefined) this.#emit({ kind: "debug", line });
  }

  /** True when a module of that name is in the engine (`<IfModule>`'s test). */
  isLoaded(name: string): boolean {
    return this.#registry.engine.some((m) => m.name === name);
  }

  /** The engine's modules in load order, oldest first. */
  engineModules(): readonly EngineModule[] {
    return this.#registry.engine;
  }

  /** Names of the modules in the engine, in lsmod order. */
  listModules(): string[] {
    return this.#registry.engine.map((m) => m.name);
  }

  /** `LoadModule` / `insmod`: loads `mod_x.c` from the module path, with any needed dependencies. */
  loadModule(requested: string): void {
    this.commitLoad(this.prepareLoad(requested));
  }

  /**
   * A module load's first phase: all of loadModule that can fail, refusals
   * reported as loadModule reports them; nothing anyone sees changes.
   * commitLoad or abortLoad must follow, before any other change of the host.
   */
  prepareLoad(requested: string): PreparedLoad {
    return prepareModuleLoad(this.#steps, requested);
  }

  /** A prepared load's module enters the engine, as loadModule's does; throws only DSO_ERR_STALE_LOAD. */
  commitLoad(prepared: PreparedLoad): void {
    commitModuleLoad(this.#steps, prepared);
  }

  /** Finalizes what a prepared load made; the host stays as it was. */
  abortLoad(prepared: PreparedLoad): void {
    abortModuleLoad(this.#steps, prepared);
  }

  /** `LoadFile`: loads a library into the global scope, where it stays until the host closes. */
  loadFile(file: string): void {
    if (!path.isAbsolute(file)) {
      throw new DsoError(ErrorCodes.NOT_ABSOLUTE, "must be an absolute path");
    }
    const namespace = path.basename(file).replace(/\.wasm$/, "");
    const existing = this.#registry.byNamespace(namespace);
    if (existing !== undefined) {
      // proftpd accepts the same LoadFile twice; a different file under a taken name would be ambiguous.
      if (existing.file === file) return;
      throw new DsoError(
        ErrorCodes.ALREADY_LOADED,
        `a library named '${namespace}' is already loaded from '${existing.file}'`,
      );
    }
    // dso_load_file's trace lines.
    this.#trace("dso", 5, `loading file '${file}'`);
    try {
      this.#load({ kind: "library", name: namespace, namespace, file, explicit: true });
    } catch (error) {
      // Beyond dso_load_file, which traces no failure: every refusal has its level-1 line.
      const tracedAtSource = error instanceof LinkError;
      if (!tracedAtSource)
        for (const line of isDsoError(error) ? error.lines : [String(error)]) this.#trace("dso", 1, line);
      throw error;
    }
    this.#trace("dso", 8, `file '${file}' successfully loaded`);
  }

  /** rmmod's checks: where the module is in the engine and its unit, or the error rmmod refuses with. */
  #unloadTarget(name: string): { index: number; unit: LoadedUnit | undefined } {
    parseUnloadName(name);
    if (this.#protected.has(name)) {
      throw new DsoError(ErrorCodes.PROTECTED, `module '${name}' cannot be unloaded`);
    }
    const index = this.#registry.engine.findIndex((m) => m.name === name);
    if (index < 0) throw new DsoError(ErrorCodes.NOT_LOADED, `module '${name}' is not loaded`);
    const unit = this.#registry.unit(name);
    if (unit !== undefined && unit.dependents.size > 0) {
      const names = [...unit.dependents].map((d) => d.name).join(", ");
      throw new DsoError(ErrorCodes.HAS_DEPENDENTS, `module '${name}' is needed by ${names}`);
    }
    return { index, unit };
  }

  /** Throws what unloadModule would refuse `name` with; changes nothing (an rmmod's first phase). */
  checkUnload(name: string): void {
    this.#unloadTarget(name);
  }

  /** `rmmod`: removes a module from the engine; a dynamically loaded one is unlinked and released. */
  unloadModule(name: string): void {
    const { index, unit } = this.#unloadTarget(name);
    this.#changes++;
    this.#trace("dso", 5, `unloading module '${name}'`);
    if (unit === undefined) {
      // A compiled-in module leaves the engine only; its code stays, as proftpd's lt_dlclose(NULL).
      this.#registry.removeFromEngine(index);
    } else {
      this.#registry.detach(unit);
    }
    this.#trace("dso", 8, `module '${name}' successfully unloaded`);
  }

  /**
   * Session workers (issue 15): from now on a module's faults are counted for
   * the whole daemon by `report` (the primary, host/cluster/fault-sync.ts),
   * which unloads it everywhere when its ModuleFaultPolicy says so; this host
   * only disables it meanwhile, and never takes a module out on its own.
   */
  reportFaultsTo(report: (fault: ModuleFault) => void): void {
    this.#faults.escalateTo(report);
  }

  /**
   * The unload the primary decided for a module's faults (reportFaultsTo): it
   * leaves the engine as the fault supervisor takes it out in one process, and
   * the sessions that keep it in their set find it disabled after a fault.
   */
  unloadFaulted(name: string): void {
    const { unit } = this.#unloadTarget(name);
    // A compiled-in module runs no guest code, so it never faulted: it leaves as with rmmod.
    if (unit === undefined) return this.unloadModule(name);
    unit.state = { kind: "faulted", retryAt: undefined };
    this.#changes++;
    this.#registry.detach(unit);
  }

  /**
   * What one process does to a module whose faults would unload it while
   * other modules are bound to it (fault-supervisor.ts): it stays, disabled,
   * every call into it refused, until rmmod or a SIGHUP. Session workers are
   * told by the primary (fault-sync.ts), so that the module is disabled in
   * every worker and not only where it faulted. A name that is no module
   * loaded here is left alone: the primary asks every host, whatever each has.
   */
  disableFaulted(name: string): void {
    const unit = this.#registry.unit(name);
    if (unit?.kind === "module") unit.state = { kind: "faulted", retryAt: undefined };
  }

  /**
   * ModuleOrder: the engine becomes exactly these modules, in this order; the
   * others leave it (and can come back with insmod, like an rmmod'ed static
   * module). The directive checks its arguments before calling this.
   */
  setModuleOrder(names: readonly string[]): string[] {
    const byName = new Map(this.#registry.engine.map((m) => [m.name, m]));
    const ordered = names.map((name) => {
      const module = byName.get(name);
      if (module === undefined) throw new DsoError(ErrorCodes.NOT_LOADED, `no such module '${name}' loaded`);
      return module;
    });
    const removed = this.#registry.engine.filter((m) => !names.includes(m.name));
    this.#changes++;
    for (const module of removed) {
      const unit = this.#registry.unit(module.name);
      if (unit !== undefined) this.#registry.detach(unit);
    }
    this.#registry.setEngine(ordered);
    return removed.map((m) => m.name);
  }

  /** True for a module rmmod refuses to remove, and ModuleOrder must keep (`mod_dso.c`, `mod_ctrls.c`). */
  isProtected(name: string): boolean {
    return this.#protected.has(name);
  }

  /**
   * A SIGHUP's or a shutdown's unload (mod_dso.c dso_restart_ev): each loaded
   * module leaves newest first with its debug and trace lines, then close().
   * Compiled-in modules stay, as proftpd's static ones do.
   */
  unloadAll(): void {
    for (const module of [...this.#registry.engine].reverse()) {
      const unit = this.#registry.unit(module.name);
      if (unit === undefined || isDetached(unit)) continue;
      this.#emit({ kind: "debug", line: dsoDebug.unloading(module.name) });
      this.#trace("dso", 5, `unloading module '${module.name}'`);
      this.#registry.detach(unit, true);
      this.#trace("dso", 8, `module '${module.name}' successfully unloaded`);
    }
    this.close();
  }

  /** Unloads every module newest first, then every library: the host's shutdown. */
  close(): void {
    this.#changes++;
    for (const module of [...this.#registry.engine].reverse()) {
      const unit = this.#registry.unit(module.name);
      if (unit !== undefined && !isDetached(unit)) this.#registry.detach(unit, true);
    }
    for (const unit of this.#registry.allUnits().reverse()) this.#registry.detach(unit, true);
  }

  /** ModuleInstances: how the sessions started from now on get their guest instances. */
  setSessionInstances(mode: SessionInstancesMode): void {
    this.#sessionInstances = mode;
  }

  get sessionInstances(): SessionInstancesMode {
    return this.#sessionInstances;
  }

  /** ModuleMemoryTotal: the bound on all guest memory; new sessions past it are refused. */
  setMemoryTotal(bytes: number | undefined): void {
    this.#memoryTotal = bytes;
  }

  /**
   * Bytes of guest memory the daemon's instances hold and the open sessions hold or reserved
   * (with session workers: this process's).
   */
  guestMemoryBytes(): number {
    return this.#sessionMemory.bytes() + this.templateMemoryBytes();
  }

  /** Bytes of guest memory the daemon's instances of this host's units hold, without the sessions'. */
  templateMemoryBytes(): number {
    let bytes = 0;
    for (const unit of this.#registry.allUnits()) bytes += memoryBytes(unit);
    return bytes;
  }

  /**
   * A snapshot of the engine for a new session; the units stay alive until
   * `release()`. With ModuleInstances `snapshot` or `replay`, the session gets
   * its own instances of the set's guest units, forked now (session-instances.ts),
   * and reserves their memory of ModuleMemoryTotal; past that bound the
   * session is refused (DSO_ERR_MEMORY_TOTAL) and nothing is held.
   */
  acquireModules(): ModuleSet {
    const set = this.#registry.acquire();
    if (this.#sessionInstances === "shared") return set;
    try {
      const forks = new Map<LoadedUnit, InstanceSnapshot | undefined>();
      for (const unit of set.held) forkState(unit, forks, this.#sessionInstances);
      let reserved = 0;
      for (const unit of forks.keys()) reserved += memoryBytes(unit);
      const limit = this.#memoryTotal;
      const instances = new SessionInstances(this.#sessionContext, forks, reserved);
      const used = this.#sessionMemory.admit(instances, this.templateMemoryBytes(), limit);
      if (used !== undefined) {
        const needs = `guest memory is ${used} bytes, a session needs ${reserved} more`;
        throw new DsoError(ErrorCodes.MEMORY_TOTAL, `ModuleMemoryTotal (${limit} bytes) reached: ${needs}`);
      }
      return {
        modules: set.modules,
        instances,
        release: () => {
          instances.release();
          set.release();
        },
      };
    } catch (error) {
      set.release();
      throw error;
    }
  }

  /** The state of this host's guest instances, for a host of the same module set to adopt (instance-states.ts). */
  instanceStates(): UnitInstanceState[] {
    return takeUnitStates(this.#registry.allUnits());
  }

  /**
   * Makes this host's instances copies of another host's `instanceStates()`,
   * without running guest code; a refusal (DSO_ERR_INSTANCE_STATE) restores none.
   */
  adoptInstanceStates(states: readonly UnitInstanceState[]): void {
    adoptUnitStates((name) => this.#registry.unit(name), states);
  }

  /** Where `symbol` resolves in the global scope, with the definitions it shadows. */
  lookup(symbol: string): SymbolInfo | undefined {
    return this.#registry.lookup(symbol);
  }

  /**
   * ld.so's dlsym(RTLD_DEFAULT, name): the winning wasm definition of `symbol`
   * in the global scope (an exported function, global, memory or table), or
   * undefined. Host symbols have no single address: they are bound per importer.
   */
  dlsym(symbol: string): WebAssembly.ExportValue | undefined {
    return this.#registry.dlsym(symbol);
  }

  /** Number of names in the global scope. */
  get scopeSize(): number {
    return this.#registry.scope.size;
  }

  /** Details of every module in the engine (lsmod -v), then of every library. */
  describe(): LoadedUnitInfo[] {
    return this.#registry.describe().map((info) => {
      const unit = info.kind === "static" ? undefined : this.#registry.unit(info.name);
      return unit === undefined ? info : { ...info, instances: this.#sessionMemory.instancesOf(unit) };
    });
  }

  /** Plans the load and instantiates its units, dependencies first; nothing is registered yet. */
  #instantiate(request: UnitRequest): LoadedUnit[] {
    const plan = planLoad(request, this.#source);
    return instantiatePlan(this.#instances, plan, (unit) => this.#registry.runUnloadHook(unit), new Date());
  }

  /** Instantiates the load's units and commits them only when all succeeded. */
  #load(request: UnitRequest): void {
    const units = this.#instantiate(request);
    for (const unit of units) this.#registry.commit(unit);
    this.#changes++;
  }
}
