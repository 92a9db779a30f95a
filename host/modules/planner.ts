/**
 * The load planner (wasmtime's `Linker::instantiate_pre`): given the unit to
 * load, it finds every binary the load needs (the unit and, like DT_NEEDED,
 * every library or module its imports name that is not loaded yet), checks
 * each one, and resolves every import of all of them, before anything runs.
 *
 * Pure over its source: binaries, policies, the loaded units and the global
 * scope all come from the injected PlanSource, so the planner reads no file,
 * hashes nothing and reads no clock. It returns the units in instantiation
 * order (dependencies first) with their bindings, or throws a DsoError.
 */
import path from "node:path";
import { Capabilities, HOST_SYMBOLS } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import type { ErrorCode } from "../errors.js";
import { capabilityNeeds, capabilityProblems } from "../linker/capabilities.js";
import type { CapabilityBinding, CapabilityNeed } from "../linker/capabilities.js";
import { linkErrorCode, problemLine } from "../linker/problems.js";
import type { LinkProblem } from "../linker/problems.js";
import { GLOBAL_NAMESPACE, resolveImports } from "../linker/resolve.js";
import type { Binding } from "../linker/resolve.js";
import { SymbolScope } from "../linker/scope.js";
import type { Definition, Provider } from "../linker/scope.js";
import { WASI_TYPES } from "../wasi/wasi.js";
import type { ExportEntry, ExternType, ModuleShape } from "../wasm/types.js";
import { checkGuestAbi } from "./guest-abi.js";
import { isProtocolExport, isRuntimeExport, protocolProblems } from "./guest-module.js";
import { shareMemoryCap } from "./memory-cap.js";
import { MODULE_API_VERSION } from "./module-api.js";
import type { BinaryRequest, CompiledBinary } from "./module-compiler.js";
import { isLibraryNamespace, moduleNameOfNamespace, parseModuleName } from "./module-name.js";
import type { UnitPolicy } from "./policy.js";
import type { UnitIdentity, UnitKind } from "./types.js";

export const HOST_PROVIDER: Provider = { kind: "host", name: "host", seq: 0 };

/**
 * WASI preview1 is provided by the host, never loaded as a library. It needs
 * the `filesystem` capability, and reaches only the unit's ModuleFilesystem
 * directories (none by default), through host/wasi's checked paths.
 */
export const WASI_NAMESPACE = "wasi_snapshot_preview1";
export const WASI_PROVIDER: Provider = { kind: "host", name: "wasi", seq: 0 };

/** A unit to plan: what to call it, where its binary is, and whether it was asked for or needed. */
export interface UnitRequest extends BinaryRequest {
  readonly namespace: string;
}

/** A loaded unit, as later loads link against it. */
export interface LinkedProvider {
  readonly shape: ModuleShape;
  readonly provider: Provider;
  /** The capabilities it uses, directly or through its providers. */
  readonly needs: readonly CapabilityNeed[];
}

/** Everything the planner knows of the world, injected. */
export interface PlanSource {
  /** Where needed modules and libraries are looked for (ModulePath, as it is now). */
  modulePath(): string;
  policy(unit: string): UnitPolicy;
  /** Opens, checks and compiles a unit's binary (module-compiler.ts); throws a DsoError. */
  open(request: UnitRequest, policy: UnitPolicy): CompiledBinary;
  isCompiledIn(name: string): boolean;
  loadedNamespace(namespace: string): LinkedProvider | undefined;
  loadedProvider(provider: Provider): LinkedProvider | undefined;
  /** The winning definition of a name in the global scope of loaded units. */
  lookupGlobal(name: string): Definition | undefined;
  /** Why a unit with a CPU budget cannot be sandboxed (the watchdog is not built), if it cannot. */
  sandboxProblem(): DsoError | undefined;
  /** A fresh load sequence number for a new provider. */
  nextSeq(): number;
  trace(level: number, message: string): void;
  /** A module with a wrong API version, refused where it was found (mod_dso.c logs it there). */
  wrongApiVersion(module: string, found: number, expected: number): void;
}

/** A load refused at link time: every problem of the load, as data and as lines. */
export class LinkError extends DsoError {
  readonly problems: readonly LinkProblem[];

  constructor(code: ErrorCode, problems: readonly LinkProblem[], lines: readonly string[]) {
    super(code, lines.join("; "), { details: lines });
    this.problems = problems;
  }
}

export interface PlannedUnit extends UnitIdentity {
  readonly moduleSymbol: string | undefined;
  /** Resolved once per load: the hot path never looks a policy up. */
  readonly policy: UnitPolicy;
  /** Pages its memory may grow to: its cap less its tables' maxima. */
  readonly memoryPages: number;
}

/** A resolved load: the units in instantiation order, each with its bindings and capability needs. */
export interface Plan {
  readonly order: readonly PlannedUnit[];
  readonly bindings: ReadonlyMap<PlannedUnit, readonly Binding[]>;
  readonly needs: ReadonlyMap<PlannedUnit, readonly CapabilityNeed[]>;
}

interface Planning {
  readonly source: PlanSource;
  readonly order: PlannedUnit[];
  readonly byNamespace: Map<string, PlannedUnit>;
  readonly visiting: Set<string>;
  readonly problems: LinkProblem[];
}

/** Plans and resolves the load of `root`; a unit that cannot be linked fails the whole load. */
export function planLoad(root: UnitRequest, source: PlanSource): Plan {
  const planning: Planning = { source, order: [], byNamespace: new Map(), visiting: new Set(), problems: [] };
  planUnit(planning, root, [root.kind === "module" ? root.name : root.file]);
  return resolvePlan(planning);
}

const exportTypeCache = new WeakMap<ModuleShape, ReadonlyMap<string, ExternType>>();

/** A shape's exports by name, built once: direct binding looks names up per import. */
function exportTypes(shape: ModuleShape): ReadonlyMap<string, ExternType> {
  let types = exportTypeCache.get(shape);
  if (types === undefined) {
    types = new Map(shape.exports.map((e) => [e.name, e.type]));
    exportTypeCache.set(shape, types);
  }
  return types;
}

/** Checks one binary, then plans whatever its imports name (DT_NEEDED). */
function planUnit(planning: Planning, unit: UnitRequest, chain: readonly string[]): void {
  const { source } = planning;
  const policy = source.policy(unit.name);
  const { compiled, shape, size, hash, instanceState } = source.open(unit, policy);
  checkGuestAbi(unit.name, shape);
  const { memoryPages } = shareMemoryCap(unit.name, shape, policy.memoryCapPages);
  let moduleSymbol: string | undefined;
  if (unit.kind === "module") {
    moduleSymbol = parseModuleName(unit.name).symbol;
    checkModuleSymbol(source, unit.name, moduleSymbol, shape);
    const problems = protocolProblems(unit.name, shape.exports);
    if (problems.length > 0) {
      throw new DsoError(ErrorCodes.BAD_MODULE, problems.join("; "), { details: problems });
    }
  }
  planning.visiting.add(unit.namespace);
  for (const namespace of neededNamespaces(shape)) {
    if (source.loadedNamespace(namespace) !== undefined || planning.byNamespace.has(namespace)) continue;
    if (planning.visiting.has(namespace)) {
      const cycle = [...chain, moduleNameOfNamespace(namespace) ?? namespace].join(" -> ");
      throw new DsoError(ErrorCodes.DEPENDENCY_CYCLE, `dependency cycle: ${cycle}`);
    }
    planNeeded(planning, namespace, unit.name, chain);
  }
  planning.visiting.delete(unit.namespace);
  if (policy.cpuBudgetMs > 0) {
    const missing = source.sandboxProblem();
    if (missing !== undefined) throw missing;
  }
  // Spelled out: an object spread here was a tenth of a warm insmod (V8's generic clone path).
  const planned: PlannedUnit = {
    kind: unit.kind,
    name: unit.name,
    namespace: unit.namespace,
    file: unit.file,
    explicit: unit.explicit,
    policy,
    memoryPages,
    hash,
    size,
    shape,
    compiled,
    instanceState,
    moduleSymbol,
    provider: { kind: unit.kind, name: unit.name, seq: source.nextSeq() },
  };
  planning.order.push(planned);
  planning.byNamespace.set(unit.namespace, planned);
}

const neededCache = new WeakMap<ModuleShape, readonly string[]>();

/** The libraries and modules a binary's imports name (its DT_NEEDED list), read once per compiled module. */
function neededNamespaces(shape: ModuleShape): readonly string[] {
  let needed = neededCache.get(shape);
  if (needed === undefined) {
    const named = shape.imports
      .filter((i) => i.module !== GLOBAL_NAMESPACE && i.module !== WASI_NAMESPACE)
      .map((i) => i.module);
    needed = [...new Set(named)];
    neededCache.set(shape, needed);
  }
  return needed;
}

function planNeeded(planning: Planning, namespace: string, neededBy: string, chain: readonly string[]): void {
  const { source } = planning;
  const moduleName = moduleNameOfNamespace(namespace);
  if (moduleName !== undefined) {
    if (source.isCompiledIn(moduleName)) {
      planning.problems.push({ kind: "needed-compiled-in", importer: neededBy, module: moduleName });
      return;
    }
    const stem = moduleName.slice(0, -2);
    const file = path.join(source.modulePath(), `${stem}.wasm`);
    source.trace(5, `loading module '${path.join(source.modulePath(), stem)}' needed by ${neededBy}`);
    planNeededUnit(planning, { kind: "module", name: moduleName, namespace, file, explicit: false }, neededBy, chain);
    return;
  }
  if (!isLibraryNamespace(namespace)) {
    planning.problems.push({ kind: "bad-namespace", importer: neededBy, namespace });
    return;
  }
  const file = path.join(source.modulePath(), `${namespace}.wasm`);
  source.trace(5, `loading library '${file}' needed by ${neededBy}`);
  planNeededUnit(planning, { kind: "library", name: namespace, namespace, file, explicit: false }, neededBy, chain);
}

function planNeededUnit(planning: Planning, unit: UnitRequest, neededBy: string, chain: readonly string[]): void {
  try {
    planUnit(planning, unit, [...chain, unit.name]);
  } catch (error) {
    if (!isDsoError(error) || error.code === ErrorCodes.DEPENDENCY_CYCLE) throw error;
    const { code } = error;
    for (const line of error.lines) {
      planning.problems.push({
        kind: "needed-failed",
        importer: neededBy,
        unitKind: unit.kind,
        unit: unit.name,
        code,
        line,
      });
    }
  }
}

/** `0x20`, as mod_dso.c prints an API version. */
function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** The API version refusal, in mod_dso.c's words (dso_load_module): the error's message and its log line. */
export function wrongApiVersionText(module: string, found: number, expected: number): string {
  return `module '${module}' has wrong API version (${hex(found)}), must be ${hex(expected)}`;
}

function checkModuleSymbol(source: PlanSource, name: string, symbol: string, shape: ModuleShape): void {
  source.trace(7, `looking for symbol '${symbol}' in loaded module`);
  const entry = shape.exports.find((e) => e.name === symbol);
  if (entry === undefined || entry.type.kind !== "global" || typeof entry.constValue !== "number") {
    source.trace(1, `unable to find module symbol '${symbol}' in '${name}'`);
    throw new DsoError(ErrorCodes.NO_MODULE_SYMBOL, `unable to find module symbol '${symbol}' in '${name}'`);
  }
  if (entry.constValue < MODULE_API_VERSION) {
    source.wrongApiVersion(name, entry.constValue, MODULE_API_VERSION);
    throw new DsoError(ErrorCodes.API_VERSION, wrongApiVersionText(name, entry.constValue, MODULE_API_VERSION));
  }
}

const publicExportCache = new WeakMap<ModuleShape, Map<string, readonly ExportEntry[]>>();

/**
 * The exports a unit puts in the global scope: all but the module protocol's
 * and the runtime's. Classified once per compiled module and module symbol,
 * and the same array each time, so that what is derived from it can be
 * cached too: a reload does not re-run the name rules.
 */
export function publicExports(
  unit: { readonly kind: UnitKind; readonly shape: ModuleShape },
  moduleSymbol: string | undefined,
): readonly ExportEntry[] {
  let bySymbol = publicExportCache.get(unit.shape);
  if (bySymbol === undefined) {
    bySymbol = new Map();
    publicExportCache.set(unit.shape, bySymbol);
  }
  const key = unit.kind === "module" ? (moduleSymbol ?? "") : "\0library";
  let exports = bySymbol.get(key);
  if (exports === undefined) {
    exports = unit.shape.exports.filter((e) =>
      unit.kind === "module" ? !isProtocolExport(e.name, moduleSymbol) : !isRuntimeExport(e.name),
    );
    bySymbol.set(key, exports);
  }
  return exports;
}

const publicTypeCache = new WeakMap<readonly ExportEntry[], ReadonlyMap<string, ExternType>>();

/** publicExports by name, built once per compiled module and module symbol: the table a loaded module enters the scope as. */
export function publicTypes(
  unit: { readonly kind: UnitKind; readonly shape: ModuleShape },
  moduleSymbol: string | undefined,
): ReadonlyMap<string, ExternType> {
  const exports = publicExports(unit, moduleSymbol);
  let types = publicTypeCache.get(exports);
  if (types === undefined) {
    types = new Map(exports.map((e) => [e.name, e.type]));
    publicTypeCache.set(exports, types);
  }
  return types;
}

/** The definitions a unit puts in the global scope (publicExports, as this load's provider's). */
export function publicDefinitions(unit: PlannedUnit): Definition[] {
  return publicExports(unit, unit.moduleSymbol).map((e) => ({ name: e.name, type: e.type, provider: unit.provider }));
}

/**
 * Modules and LoadFile libraries enter the global scope. A library loaded only
 * because an import names it stays local to its dependents (RTLD_LOCAL): a
 * dependency never changes which definition other modules see.
 */
export function entersGlobalScope(unit: { kind: UnitKind; explicit: boolean }): boolean {
  return unit.kind === "module" || unit.explicit;
}

function capabilityBinding(
  source: PlanSource,
  binding: Binding,
  plannedNeeds: ReadonlyMap<Provider, readonly CapabilityNeed[]>,
): CapabilityBinding {
  if ("hostMemory" in binding)
    return { importName: binding.import.name, hostCapability: undefined, provider: undefined };
  const { definition } = binding;
  if (definition.provider === WASI_PROVIDER) {
    return { importName: binding.import.name, hostCapability: Capabilities.filesystem, provider: undefined };
  }
  if (definition.provider.kind === "host") {
    return {
      importName: binding.import.name,
      hostCapability: HOST_SYMBOLS.get(definition.name)?.capability,
      provider: undefined,
    };
  }
  const needs = plannedNeeds.get(definition.provider) ?? source.loadedProvider(definition.provider)?.needs ?? [];
  return {
    importName: binding.import.name,
    hostCapability: undefined,
    provider: { name: definition.provider.name, needs },
  };
}

/** Resolves every planned unit's imports and capabilities; every problem of the load is reported together. */
function resolvePlan(planning: Planning): Plan {
  const { source } = planning;
  const pendingScope = new SymbolScope();
  const problems = [...planning.problems];
  const plannedNeeds = new Map<Provider, readonly CapabilityNeed[]>();
  const bindings = new Map<PlannedUnit, readonly Binding[]>();
  const needsOf = new Map<PlannedUnit, readonly CapabilityNeed[]>();
  for (const unit of planning.order) {
    const result = resolveImports(unit.name, unit.shape.imports, {
      memoryCapPages: unit.memoryPages,
      lookupGlobal: (name) => source.lookupGlobal(name) ?? pendingScope.first(name),
      lookupDirect: (namespace, name) => {
        if (namespace === WASI_NAMESPACE) {
          const wasi = WASI_TYPES[name];
          return wasi === undefined ? undefined : { name, type: { kind: "func", type: wasi }, provider: WASI_PROVIDER };
        }
        const target = planning.byNamespace.get(namespace) ?? source.loadedNamespace(namespace);
        const type = target === undefined ? undefined : exportTypes(target.shape).get(name);
        return target === undefined || type === undefined ? undefined : { name, type, provider: target.provider };
      },
    });
    problems.push(...result.problems);
    bindings.set(unit, result.bindings);
    const needs = capabilityNeeds(result.bindings.map((b) => capabilityBinding(source, b, plannedNeeds)));
    plannedNeeds.set(unit.provider, needs);
    needsOf.set(unit, needs);
    problems.push(...capabilityProblems(unit.name, needs, unit.policy.capabilities));
    // Pending modules rank after every loaded one, so the loaded scope is searched first. The last
    // unit (the one asked for) links nothing after it: its exports need not enter the pending scope.
    if (unit.kind === "module" && unit !== planning.order.at(-1)) pendingScope.add(publicDefinitions(unit));
  }
  if (problems.length > 0) {
    const lines = problems.map(problemLine);
    for (const line of lines) source.trace(1, line);
    throw new LinkError(linkErrorCode(problems), problems, lines);
  }
  return { order: planning.order, bindings, needs: needsOf };
}
