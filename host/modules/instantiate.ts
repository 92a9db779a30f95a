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
import type { Wasi } from "../wasi/wasi.js";
import { DirectiveCall } from "./directive-call.js";
import { guestEngineModule } from "./guest-module.js";
import type { MemoryPool } from "./memory-pool.js";
import { WASI_PROVIDER, entersGlobalScope, publicDefinitions } from "./planner.js";
import type { Plan, PlannedUnit } from "./planner.js";
import type { UnitPolicy } from "./policy.js";
import type { UnitIdentity, UnitKind } from "./types.js";
import { LINKED } from "./unit.js";
import type { LoadedUnit, SandboxImports, SessionUnit } from "./unit.js";
import { restoreSnapshot, stateMemory } from "./snapshot.js";
import type { InstanceSnapshot } from "./snapshot.js";
import type { SessionInstances } from "./session-instances.js";

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
  /** Calls guest code of a unit, in a session's own instance of it when `instances` is given (the fault supervisor). */
  invoke(
    unit: LoadedUnit,
    entryPoint: string,
    command: ActiveCommand | undefined,
    instances?: SessionInstances,
  ): number;
  /** Calls guest code of a session's instance, a failure left to the caller (the fault supervisor). */
  run(own: SessionUnit, entryPoint: string, command: ActiveCommand | undefined): number;
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
  exportsOf: (provider: Provider) => WebAssembly.Exports | undefined = (p) => context.unitOf(p)?.instance.exports,
  inherit?: Wasi,
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
        ...(inherit !== undefined && { inherit }),
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
    const exports = exportsOf(definition.provider);
    if (provider === undefined || exports === undefined)
      throw new Error(`provider ${definition.provider.name} is not instantiated`);
    dependencies.add(provider);
    namespace[binding.import.name] = exports[definition.name] as WebAssembly.ImportValue;
    if (context.tracing(9)) context.trace(9, `binding '${definition.name}' of ${name} to ${provider.name}`);
  }
  return { imports, memory, dependencies };
}

function startInstance(
  name: string,
  compiled: WebAssembly.Module,
  identity: Pick<UnitIdentity, "shape" | "instanceState">,
  linked: Linked,
  importer: ImporterState,
  policy: UnitPolicy,
): WebAssembly.Instance {
  let instance: WebAssembly.Instance;
  try {
    // The binary's start section was made an export (instance-state-exports.ts): instantiating runs no guest code.
    instance = new WebAssembly.Instance(compiled, linked.imports);
  } catch (cause) {
    throw new DsoError(ErrorCodes.INSTANTIATE, `${name}: cannot be instantiated: ${describeTrap(cause)}`, { cause });
  }
  const start = identity.instanceState.start;
  if (start !== undefined) {
    try {
      // The start function is guest code too: it runs under the unit's CPU budget.
      const run = instance.exports[start] as () => void;
      if (policy.cpuBudgetMs > 0) callGuarded(run, policy.cpuBudgetMs);
      else run();
    } catch (cause) {
      throw new DsoError(
        isDsoError(cause) ? cause.code : ErrorCodes.GUEST_TRAP,
        `${name}: start function failed: ${describeTrap(cause)}`,
        { cause },
      );
    }
  }
  importer.strings = guestStrings(instance, linked.memory, identity.shape.staticData);
  return instance;
}

/**
 * Runs a fresh instance's code in load order: AssemblyScript's top level, its
 * init hook, the directives it was configured with.
 */
function initialize(context: InstanceContext, unit: LoadedUnit): void {
  const initialize = unit.instance.exports._initialize;
  if (typeof initialize === "function") context.invoke(unit, "_initialize", undefined);
  // In load order: LoadModule ran module_init, the config's directives came after it.
  unit.engineModule?.init?.();
  // Each directive handler records its line again (onDirective): replayed from a copy, the list stays as it was.
  for (const argv of unit.directives.splice(0)) {
    const handler = unit.engineModule?.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
    handler?.run(new DirectiveCall(argv), { file: "", line: 0, first: false });
  }
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
  const instance = startInstance(planned.name, planned.compiled, planned, linked, importer, planned.policy);
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
    instanceState: planned.instanceState,
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
    snapshot: undefined,
  };
  context.setProvider(planned.provider, unit);
  unit.engineModule =
    planned.kind === "module"
      ? guestEngineModule({
          name: planned.name,
          shape: planned.shape.exports,
          state: importer,
          invoke: (entryPoint, command, instances) => context.invoke(unit, entryPoint, command, instances),
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
  unit.instance = startInstance(unit.name, unit.compiled, unit, linked, unit.importer, unit.policy);
  unit.memory = linked.memory;
  const exported = unit.instance.exports.memory;
  unit.sandbox.memory = linked.memory ?? (exported instanceof WebAssembly.Memory ? exported : undefined);
  unit.state = LINKED;
  unit.snapshot = undefined;
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

/**
 * A session's own instance of a loaded unit (session-instances.ts), linked to
 * the session's instances of its providers through `exportsOf`. Given `state`
 * (the template at the session's fork, or the instance it replaces), it
 * becomes that without running guest code; without one (`replay`, or a binary
 * whose state JavaScript cannot copy) it runs _initialize, module_init
 * and the unit's directives again (load order). What it registers (FEAT, help) is its own:
 * the engine reads the daemon's.
 */
export function instantiateCopy(
  context: InstanceContext,
  template: LoadedUnit,
  state: InstanceSnapshot | undefined,
  exportsOf: (provider: Provider) => WebAssembly.Exports | undefined,
): SessionUnit {
  const importer: ImporterState = {
    name: template.name,
    features: [],
    help: [],
    strings: undefined,
    ...(template.importer.controls !== undefined && { controls: template.importer.controls }),
  };
  const sandbox: SandboxImports = {};
  // Its WASI directories are the daemon's instance's, open since before the privileges were dropped (a fork's fds).
  const inherit = template.sandbox.wasi;
  const linked = linkImports(context, template.name, template.bindings, importer, sandbox, exportsOf, inherit);
  const layout = template.instanceState;
  const instance =
    state === undefined
      ? startInstance(template.name, template.compiled, template, linked, importer, template.policy)
      : new WebAssembly.Instance(template.compiled, linked.imports);
  const memory = stateMemory(instance, linked.memory, layout);
  const exported = instance.exports.memory;
  sandbox.memory = linked.memory ?? (exported instanceof WebAssembly.Memory ? exported : undefined);
  const own: SessionUnit = { template, instance, memory: linked.memory, importer, sandbox, retryAt: undefined };
  if (state !== undefined) {
    restoreSnapshot(instance, memory, layout, state);
    importer.strings = guestStrings(instance, linked.memory, template.shape.staticData);
    return own;
  }
  if (typeof instance.exports._initialize === "function") context.run(own, "_initialize", undefined);
  // In load order, as initialize() replays the daemon's instance: module_init, then the config's directives.
  if (typeof instance.exports.module_init === "function" && context.run(own, "module_init", undefined) < 0) {
    throw new DsoError(ErrorCodes.INIT_FAILED, `module '${template.name}' failed to initialize`);
  }
  for (const argv of template.directives) {
    const name = (argv[0] ?? "").toLowerCase();
    const entry = template.shape.exports.find(
      (e) => e.name.startsWith("conf_") && e.name.slice(5).toLowerCase() === name,
    );
    if (entry !== undefined) context.run(own, entry.name, new DirectiveCall(argv));
  }
  return own;
}
