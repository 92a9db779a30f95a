/**
 * Instantiation and linking (wasmtime's `InstancePre::instantiate`): a planned
 * unit's import object is built from its resolved bindings (host symbols bound
 * to its own state, WASI, providers' exports as they are now), its instance
 * started under its CPU budget, and its code run in order: AssemblyScript's
 * top level, the directives it was configured with, its init hook.
 */
import { guestStrings } from "../abi/guest-memory.js";
import { HOST_SYMBOLS } from "../abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import type { CapabilityNeed } from "../linker/capabilities.js";
import type { Binding } from "../linker/resolve.js";
import type { Provider } from "../linker/scope.js";
import { callGuarded } from "../sandbox/watchdog.js";
import { createWasi } from "../wasi/wasi.js";
import type { ModuleShape } from "../wasm/types.js";
import { DirectiveCall } from "./directive-call.js";
import { guestEngineModule } from "./guest-module.js";
import type { MemoryPool } from "./memory-pool.js";
import { WASI_PROVIDER, entersGlobalScope, publicDefinitions } from "./planner.js";
import type { Plan, PlannedUnit } from "./planner.js";
import type { UnitPolicy } from "./policy.js";
import type { UnitKind } from "./types.js";
import { LINKED } from "./unit.js";
import type { LoadedUnit, SandboxImports } from "./unit.js";

/** What instantiation needs of the host around it. */
export interface InstanceContext {
  readonly memories: MemoryPool;
  readonly services: HostServices;
  policy(unit: string): UnitPolicy;
  /** The instantiated unit behind a provider (a dependency instantiated earlier in the same load included). */
  unitOf(provider: Provider): LoadedUnit | undefined;
  /** Makes a unit's exports reachable by the units instantiated after it, or withdraws them. */
  setProvider(provider: Provider, unit: LoadedUnit | undefined): void;
  tracing(level: number): boolean;
  trace(level: number, message: string): void;
  /** Calls guest code of a unit (the fault supervisor). */
  invoke(unit: LoadedUnit, entryPoint: string, command: ActiveCommand | undefined): number;
  /** A module's init hook failed (mod_dso.c logs it where it happens). */
  initFailed(module: string): void;
}

/** A unit whose init hook (or AssemblyScript top level, or replayed directive) failed. */
export class InitError extends DsoError {
  readonly unitKind: UnitKind;

  constructor(unitKind: UnitKind, message: string, cause: unknown, details: readonly string[]) {
    super(ErrorCodes.INIT_FAILED, message, { cause, details });
    this.unitKind = unitKind;
  }
}

/** Why guest code failed, in a line. */
export function describeTrap(error: unknown): string {
  if (isDsoError(error)) return error.message;
  if (error instanceof RangeError && /call stack/i.test(error.message)) return "stack overflow";
  if (error instanceof Error) return error.message;
  return String(error);
}

interface Linked {
  readonly imports: WebAssembly.Imports;
  readonly memory: WebAssembly.Memory | undefined;
  readonly dependencies: Set<LoadedUnit>;
}

/** The import object of one instance: host symbols bound to its own state, providers' exports as they are now. */
function linkImports(
  context: InstanceContext,
  name: string,
  bindings: readonly Binding[],
  importer: ImporterState,
  sandbox: SandboxImports,
): Linked {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  let memory: WebAssembly.Memory | undefined;
  const dependencies = new Set<LoadedUnit>();
  for (const binding of bindings) {
    const namespace = (imports[binding.import.module] ??= {});
    if ("hostMemory" in binding) {
      memory = context.memories.acquire(binding.hostMemory);
      namespace[binding.import.name] = memory;
      continue;
    }
    const { definition } = binding;
    if (definition.provider === WASI_PROVIDER) {
      sandbox.wasi ??= createWasi({
        preopens: context.policy(name).preopens,
        memory: () => {
          if (sandbox.memory === undefined)
            throw new DsoError(ErrorCodes.GUEST_TRAP, `${name} has no memory for WASI to use`);
          return sandbox.memory;
        },
        log: (stream, text) => context.services.log(name, 0, `${stream}: ${text}`),
      });
      namespace[binding.import.name] = sandbox.wasi.imports[definition.name] as WebAssembly.ImportValue;
      continue;
    }
    if (definition.provider.kind === "host") {
      const symbol = HOST_SYMBOLS.get(definition.name);
      if (symbol === undefined) throw new Error(`host symbol '${definition.name}' vanished`);
      namespace[binding.import.name] = symbol.bind(importer, context.services);
      continue;
    }
    const provider = context.unitOf(definition.provider);
    if (provider === undefined) throw new Error(`provider ${definition.provider.name} is not instantiated`);
    dependencies.add(provider);
    namespace[binding.import.name] = provider.instance.exports[definition.name] as WebAssembly.ImportValue;
    if (context.tracing(9)) context.trace(9, `binding '${definition.name}' of ${name} to ${provider.name}`);
  }
  return { imports, memory, dependencies };
}

function startInstance(
  name: string,
  compiled: WebAssembly.Module,
  shape: ModuleShape,
  linked: Linked,
  importer: ImporterState,
  policy: UnitPolicy,
): WebAssembly.Instance {
  try {
    // A start function is guest code too: it runs under the unit's CPU budget. Without one, no guest code runs here.
    const instantiate = (): WebAssembly.Instance => new WebAssembly.Instance(compiled, linked.imports);
    const instance =
      policy.cpuBudgetMs > 0 && shape.hasStartFunction ? callGuarded(instantiate, policy.cpuBudgetMs) : instantiate();
    importer.strings = guestStrings(instance, linked.memory, shape.staticData);
    return instance;
  } catch (cause) {
    // Only a start function runs guest code here; any other failure is the engine refusing the module.
    const trapped = shape.hasStartFunction && (cause instanceof WebAssembly.RuntimeError || isDsoError(cause));
    throw new DsoError(
      trapped ? (isDsoError(cause) ? cause.code : ErrorCodes.GUEST_TRAP) : ErrorCodes.INSTANTIATE,
      `${name}: ${trapped ? "start function failed" : "cannot be instantiated"}: ${describeTrap(cause)}`,
      { cause },
    );
  }
}

/** Runs a fresh instance's code in order: AssemblyScript's top level, the directives it was configured with, its init hook. */
function initialize(context: InstanceContext, unit: LoadedUnit): void {
  const initialize = unit.instance.exports._initialize;
  if (typeof initialize === "function") context.invoke(unit, "_initialize", undefined);
  // Each directive handler records its line again (onDirective): replayed from a copy, the list stays as it was.
  for (const argv of unit.directives.splice(0)) {
    const handler = unit.engineModule?.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
    handler?.run(new DirectiveCall(argv), { file: "", line: 0, first: false });
  }
  unit.engineModule?.init?.();
}

/** Instantiates and initializes a planned unit; it is registered as a provider, not yet committed to the engine. */
function instantiate(
  context: InstanceContext,
  planned: PlannedUnit,
  bindings: readonly Binding[],
  needs: readonly CapabilityNeed[],
  loadedAt: Date,
): LoadedUnit {
  const importer: ImporterState = { name: planned.name, features: [], help: [], strings: undefined };
  const sandbox: SandboxImports = {};
  const linked = linkImports(context, planned.name, bindings, importer, sandbox);
  const definitions = publicDefinitions(planned);
  const instance = startInstance(planned.name, planned.compiled, planned.shape, linked, importer, planned.policy);
  const { memory, dependencies } = linked;
  sandbox.memory =
    memory ?? (instance.exports.memory instanceof WebAssembly.Memory ? instance.exports.memory : undefined);
  const unit: LoadedUnit = {
    kind: planned.kind,
    name: planned.name,
    namespace: planned.namespace,
    file: planned.file,
    hash: planned.hash,
    size: planned.size,
    shape: planned.shape,
    compiled: planned.compiled,
    policy: planned.policy,
    provider: planned.provider,
    explicit: planned.explicit,
    loadedAt,
    state: LINKED,
    instance,
    memory,
    importer,
    sandbox,
    bindings,
    publicDefinitions: entersGlobalScope(planned) ? definitions : [],
    publicSymbols: definitions.map((d) => d.name),
    dependencies,
    dependents: new Set(),
    needs,
    engineModule: undefined,
    directives: [],
    holders: 0,
    boundBy: 0,
    exportsEscaped: false,
    faults: [],
  };
  context.setProvider(planned.provider, unit);
  unit.engineModule =
    planned.kind === "module"
      ? guestEngineModule({
          name: planned.name,
          shape: planned.shape.exports,
          state: importer,
          invoke: (entryPoint, command) => context.invoke(unit, entryPoint, command),
          onDirective: (argv) => unit.directives.push(argv),
        })
      : undefined;
  try {
    initialize(context, unit);
  } catch (cause) {
    context.setProvider(planned.provider, undefined);
    const message =
      planned.kind === "module"
        ? `module '${planned.name}' failed to initialize`
        : `library '${planned.name}' failed to initialize`;
    if (planned.kind === "module") context.initFailed(planned.name);
    const reason = describeTrap(cause);
    throw new InitError(planned.kind, message, cause, reason === message ? [] : [message, reason]);
  }
  return unit;
}

/** A faulted unit's fresh instance: its state reset, linked again to the same bindings, configured and initialized again. */
export function reinstantiate(context: InstanceContext, unit: LoadedUnit): void {
  unit.importer.features.length = 0;
  unit.importer.help.length = 0;
  unit.importer.strings?.release();
  unit.importer.strings = undefined;
  unit.sandbox.wasi?.close();
  delete unit.sandbox.wasi;
  const linked = linkImports(context, unit.name, unit.bindings, unit.importer, unit.sandbox);
  unit.instance = startInstance(unit.name, unit.compiled, unit.shape, linked, unit.importer, unit.policy);
  unit.memory = linked.memory;
  const exported = unit.instance.exports.memory;
  unit.sandbox.memory = linked.memory ?? (exported instanceof WebAssembly.Memory ? exported : undefined);
  unit.state = LINKED;
  initialize(context, unit);
}

/**
 * Instantiates a plan's units, dependencies first. When one fails, the ones
 * already made are undone (their unload hooks run, newest first) and nothing
 * of the plan stays reachable: the host is as it was.
 */
export function instantiatePlan(
  context: InstanceContext,
  plan: Plan,
  unloadHook: (unit: LoadedUnit) => void,
  loadedAt: Date,
): LoadedUnit[] {
  const created: LoadedUnit[] = [];
  try {
    for (const unit of plan.order)
      created.push(instantiate(context, unit, plan.bindings.get(unit) ?? [], plan.needs.get(unit) ?? [], loadedAt));
  } catch (error) {
    for (const unit of created.reverse()) unloadHook(unit);
    for (const unit of plan.order) context.setProvider(unit.provider, undefined);
    throw error;
  }
  return created;
}
