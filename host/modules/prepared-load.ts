/**
 * A module load in two phases, so that every session worker makes the same
 * change or none (issue 15): `prepare` does everything that can fail (the
 * name, the file, compiling, linking, instantiating, the init hooks: all of
 * mod_dso.c's dso_load_module but the module's entry into the module list),
 * `commit` does the rest, which cannot fail, and `abort` finalizes what
 * prepare made. In between, the host is as it was: lsmod, lookups and new
 * sessions see what they saw before, and a refusal was reported (events and
 * trace lines) exactly as a refused LoadModule reports it.
 *
 * A prepared load is bound to its host as it was: any other change of that
 * host (a load, an unload, ModuleOrder, a fault that unloads or
 * re-instantiates a unit) makes its commit DSO_ERR_STALE_LOAD. A stale load
 * can still be aborted; a load is committed or aborted once.
 */
import path from "node:path";
import { DsoError, ErrorCodes } from "../errors.js";
import type { Provider } from "../linker/scope.js";
import { dsoDebug } from "./dso-debug.js";
import { exportNameProblems } from "./handler-names.js";
import type { HandlerNameProblem } from "./handler-names.js";
import { refusalReport } from "./load-report.js";
import type { ReportStep } from "./load-report.js";
import type { LoaderEvent } from "./loader-events.js";
import type { MemoryPool } from "./memory-pool.js";
import type { EngineModule } from "./module-api.js";
import { parseModuleName } from "./module-name.js";
import { publicExports } from "./planner.js";
import type { UnitRequest } from "./planner.js";
import { hostMemoryLimits } from "./registry.js";
import type { UnitRegistry } from "./registry.js";
import type { LoadedUnit } from "./unit.js";

/** A load ModuleHost.prepareLoad made, to give back to commitLoad or abortLoad of the same host. */
export interface PreparedLoad {
  /** The module it loads (`mod_x.c`). */
  readonly module: string;
}

/** What the phases need of the host. */
export interface LoadSteps {
  /** The host: a load prepared by another one is refused. */
  readonly owner: object;
  readonly registry: UnitRegistry;
  readonly memories: MemoryPool;
  compiledIn(name: string): EngineModule | undefined;
  isLoaded(name: string): boolean;
  modulePath(): string;
  /** Plans and instantiates a load: its units initialized, dependencies first, registered nowhere but as providers. */
  instantiate(request: UnitRequest): LoadedUnit[];
  /** How many changes the host has had: a load prepared before the last one is stale. */
  changes(): number;
  /** Counts a change of the host. */
  changed(): void;
  setProvider(provider: Provider, unit: LoadedUnit | undefined): void;
  emit(event: LoaderEvent): void;
  trace(level: number, message: string): void;
  /** dso_load_module's DEBUG7 line once a module's file is open. */
  debugLoaded(stem: string, file: string | undefined): void;
}

interface Pending {
  readonly owner: object;
  /** The host's change count when it was prepared. */
  readonly changes: number;
  readonly module: string;
  readonly stemPath: string;
  /** A compiled-in module coming back to the engine (insmod after rmmod), its init hook run. */
  readonly builtIn: EngineModule | undefined;
  /** The units instantiated, dependencies first, the module last. */
  readonly units: readonly LoadedUnit[];
  readonly misnamed: readonly HandlerNameProblem[];
  state: "prepared" | "committed" | "aborted";
}

/** What a PreparedLoad stands for; the handle itself shows only the module's name. */
const pending = new WeakMap<PreparedLoad, Pending>();

function staleLoad(message: string): DsoError {
  return new DsoError(ErrorCodes.STALE_LOAD, message);
}

function report(steps: LoadSteps, report: readonly ReportStep[]): void {
  for (const step of report) {
    if ("event" in step) steps.emit(step.event);
    else steps.trace(step.trace, step.message);
  }
}

function alreadyLoaded(steps: LoadSteps, name: string): never {
  steps.emit({ kind: "already-loaded", module: name });
  steps.trace(1, `module '${name}' already loaded`);
  throw new DsoError(ErrorCodes.ALREADY_LOADED, `module '${name}' already loaded`);
}

/** `LoadModule` / `insmod` up to the module's entry into the engine (mod_dso.c dso_load_module). */
export function prepareModuleLoad(steps: LoadSteps, requested: string): PreparedLoad {
  const changes = steps.changes();
  const parsed = parseModuleName(requested);
  const { name } = parsed;
  const stemPath = path.join(steps.modulePath(), parsed.stem);
  steps.emit({ kind: "debug", line: dsoDebug.loading(requested) });
  steps.trace(5, `loading module '${stemPath}'`);
  const made = (fields: Pick<Pending, "builtIn" | "units" | "misnamed">): PreparedLoad => {
    const handle: PreparedLoad = Object.freeze({ module: name });
    pending.set(handle, { owner: steps.owner, changes, module: name, stemPath, state: "prepared", ...fields });
    return handle;
  };
  const builtIn = steps.compiledIn(name);
  if (builtIn !== undefined) {
    // A compiled-in module has no file: proftpd falls back to the executable ('self') and finds it there.
    steps.emit({ kind: "no-file", requested, stemPath });
    steps.trace(7, `looking for symbol '${parsed.symbol}' in loaded module`);
    if (steps.isLoaded(name)) alreadyLoaded(steps, name);
    builtIn.init?.();
    return made({ builtIn, units: [], misnamed: [] });
  }
  if (steps.isLoaded(name)) {
    // proftpd opens the file again before it finds the module loaded.
    steps.debugLoaded(parsed.stem, steps.registry.unit(name)?.file);
    steps.trace(7, `looking for symbol '${parsed.symbol}' in loaded module`);
    alreadyLoaded(steps, name);
  }
  let units: LoadedUnit[];
  try {
    units = steps.instantiate({
      kind: "module",
      name,
      namespace: parsed.stem,
      file: `${stemPath}.wasm`,
      explicit: true,
    });
  } catch (error) {
    report(steps, refusalReport(parsed, requested, stemPath, error));
    throw error;
  }
  // The planner orders dependencies first: the module asked for is the last unit.
  const unit = units.at(-1);
  const misnamed = unit === undefined ? [] : exportNameProblems(publicExports(unit, parsed.symbol), parsed.symbol);
  return made({ builtIn: undefined, units, misnamed });
}

function pendingLoad(steps: LoadSteps, handle: PreparedLoad, action: "commit" | "abort"): Pending {
  const load = pending.get(handle);
  if (load === undefined || load.owner !== steps.owner) {
    throw staleLoad(`cannot ${action} the load of '${handle.module}': this host did not prepare it`);
  }
  if (load.state !== "prepared") {
    throw staleLoad(`cannot ${action} the load of '${load.module}': it was ${load.state} already`);
  }
  return load;
}

/** The module and what it needs enter the registry, the scope and the engine; the load's last lines. */
export function commitModuleLoad(steps: LoadSteps, handle: PreparedLoad): void {
  const load = pendingLoad(steps, handle, "commit");
  if (load.changes !== steps.changes()) {
    throw staleLoad(`cannot commit the load of '${load.module}': the host changed since it was prepared`);
  }
  load.state = "committed";
  if (load.builtIn !== undefined) steps.registry.pushEngine(load.builtIn);
  for (const unit of load.units) steps.registry.commit(unit);
  if (load.misnamed.length > 0) steps.emit({ kind: "handler-names", module: load.module, problems: load.misnamed });
  steps.trace(8, `module '${load.stemPath}' successfully loaded`);
  steps.changed();
}

/**
 * The prepared units are finalized as an rmmod finalizes a unit nothing holds:
 * unload hooks newest first (their init hooks ran), then their WASI
 * directories, strings and memories given back. A compiled-in module stays
 * out of the engine, as after its rmmod.
 */
export function abortModuleLoad(steps: LoadSteps, handle: PreparedLoad): void {
  const load = pendingLoad(steps, handle, "abort");
  load.state = "aborted";
  // Detached first: a trap in an unload hook then marks the unit faulted and never unloads a unit of its name.
  for (const unit of load.units) unit.state = { kind: "detached", faulted: false };
  for (const unit of [...load.units].reverse()) steps.registry.runUnloadHook(unit);
  for (const unit of load.units) {
    steps.setProvider(unit.provider, undefined);
    unit.state = { kind: "finalized" };
    unit.sandbox.wasi?.close();
    unit.importer.strings?.release();
    const limits = hostMemoryLimits(unit.bindings);
    if (unit.memory !== undefined && limits !== undefined) steps.memories.release(unit.memory, limits);
  }
}
