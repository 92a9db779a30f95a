/**
 * The module host: mod_dso's loader and proftpd's module registry in one.
 *
 * A load reads every binary it needs (the module and, like DT_NEEDED, every
 * library or module its imports name that is not loaded yet), validates and
 * resolves every import of all of them, and only then instantiates them,
 * dependencies first, and runs their init hooks. Any failure leaves the host
 * exactly as it was: nothing is registered until everything has succeeded.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import path from "node:path";
import { guestStrings } from "../abi/guest-memory.js";
import { Capabilities, HOST_SYMBOLS, hostSymbolType } from "../abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../abi/host-symbols.js";
import { DsoError, Errno, ErrorCodes, isDsoError } from "../errors.js";
import { capabilityNeeds, capabilityProblems } from "../linker/capabilities.js";
import type { CapabilityBinding, CapabilityNeed } from "../linker/capabilities.js";
import { GLOBAL_NAMESPACE, resolveImports } from "../linker/resolve.js";
import type { Binding } from "../linker/resolve.js";
import { SymbolScope } from "../linker/scope.js";
import type { Definition, Provider, ShadowEvent } from "../linker/scope.js";
import { readModuleShape } from "../wasm/reader.js";
import { loadLimitProblem, overLimitText } from "../wasm/limits.js";
import type { LoadLimits } from "../wasm/limits.js";
import { formatExternType } from "../wasm/types.js";
import type { ExportEntry, ExternType, ModuleShape } from "../wasm/types.js";
import { callGuarded, watchdogUnavailable } from "../sandbox/watchdog.js";
import { createWasi, WASI_TYPES } from "../wasi/wasi.js";
import type { Wasi } from "../wasi/wasi.js";
import { guestEngineModule, isProtocolExport, isRuntimeExport, protocolProblems } from "./guest-module.js";
import { DirectiveCall } from "./directive-call.js";
import { MODULE_API_VERSION } from "./module-api.js";
import { readModuleFile, realModulePath } from "./module-file.js";
import { shareMemoryCap } from "./memory-cap.js";
import { checkGuestAbi } from "./guest-abi.js";
import { MemoryPool } from "./memory-pool.js";
import type { MemoryLimits } from "./memory-pool.js";
import { DEFAULT_POLICY } from "./policy.js";
import type { UnitPolicy } from "./policy.js";
import type { EngineModule } from "./module-api.js";
import { isLibraryNamespace, moduleNameOfNamespace, parseModuleName, parseUnloadName } from "./module-name.js";
import type { ModuleName } from "./module-name.js";
import { LOADED_LEVEL, dsoDebug } from "./dso-debug.js";
import type { DebugLine } from "./dso-debug.js";

/** mod_dso's version string, as proftpd prefixes its log lines (`mod_dso/0.5: ...`). */
export const MOD_DSO_VERSION = "mod_dso/0.5";

export type LogPriority = "error" | "notice" | "info" | "debug";

/** The trace log (`TraceLog` + `Trace dso:N`): channels with levels. */
export interface Tracer {
  level(channel: string): number;
  write(channel: string, level: number, message: string): void;
}

export interface ModuleHostOptions {
  /** Where `mod_x.c` is found as `mod_x.wasm`, and needed libraries as `libfoo.wasm`. */
  modulePath: string;
  /** Modules built into the host, in `dsod -l` order; they are loaded first and always win. */
  compiledIn?: readonly EngineModule[];
  /** Modules rmmod refuses to remove (`mod_dso.c`: mod_dso.c refuses to unload itself). */
  protectedModules?: readonly string[];
  /** Limits and capabilities per module or library name; DEFAULT_POLICY for all when absent. */
  policy?: (unit: string) => UnitPolicy;
  /** mod_dso's log lines (`mod_dso/0.5: module 'mod_x.c' already loaded`). */
  log?: (priority: LogPriority, message: string) => void;
  tracer?: Tracer;
  /** Where guests' pr_log_debug lines go; defaults to `log` at debug priority. */
  guestLog?: (importer: string, level: number, message: string) => void;
  /** mod_dso's own pr_log_debug lines up to this level go to `log` at debug priority (`dsod -d N`); none when 0 or absent. */
  debugLevel?: number;
}

type UnitKind = "library" | "module";

interface Unit {
  readonly kind: UnitKind;
  readonly name: string;
  readonly namespace: string;
  readonly file: string;
  readonly hash: string;
  readonly size: number;
  readonly shape: ModuleShape;
  readonly provider: Provider;
  readonly explicit: boolean;
  readonly loadedAt: Date;
  readonly compiled: WebAssembly.Module;
  readonly policy: UnitPolicy;
  /** Replaced when the unit is re-instantiated after a fault. */
  instance: WebAssembly.Instance;
  memory: WebAssembly.Memory | undefined;
  readonly state: ImporterState;
  readonly sandbox: SandboxImports;
  readonly bindings: readonly Binding[];
  /** What the unit put in the global scope (nothing for a needed library). */
  readonly publicDefinitions: readonly Definition[];
  /** Its exports other than the protocol's and the runtime's, shown by lsmod -v. */
  readonly publicSymbols: readonly string[];
  readonly dependencies: ReadonlySet<Unit>;
  readonly dependents: Set<Unit>;
  /** The capabilities it uses, directly or through its providers (checked against its grant). */
  readonly needs: readonly CapabilityNeed[];
  engineModule: EngineModule | undefined;
  /** The directives applied to it (argv), replayed when it is re-instantiated. */
  readonly directives: Array<readonly string[]>;
  holders: number;
  /** Instances bound to its exports that may still run (committed, not finalized): a DT_NEEDED reference count. */
  boundBy: number;
  detached: boolean;
  /** Released: its instance is never called again. */
  finalized: boolean;
  /** An export was handed out by dlsym: code outside the host may still call the instance. */
  exportsEscaped: boolean;
  /** Trapped or interrupted: never called again as it is. */
  faulted: boolean;
  /** When its recent faults happened (ms), for the crash-loop limit. */
  faults: number[];
  /** When a faulted unit may be re-instantiated; undefined when it never will. */
  retryAt: number | undefined;
}

/** Sandbox imports bound to one instance (WASI). */
interface SandboxImports {
  wasi?: Wasi;
  /** The memory WASI reads and writes: the imported one, or the one the instance exports. */
  memory?: WebAssembly.Memory | undefined;
}

interface PlannedUnit {
  readonly kind: UnitKind;
  readonly name: string;
  readonly namespace: string;
  readonly file: string;
  readonly hash: string;
  readonly size: number;
  readonly shape: ModuleShape;
  readonly compiled: WebAssembly.Module;
  readonly explicit: boolean;
  readonly provider: Provider;
  readonly moduleSymbol: string | undefined;
  /** Resolved once per load: the hot path never looks a policy up. */
  readonly policy: UnitPolicy;
  /** Pages its memory may grow to: its cap less its tables' maxima. */
  readonly memoryPages: number;
}

interface Plan {
  readonly order: PlannedUnit[];
  readonly byNamespace: Map<string, PlannedUnit>;
  readonly visiting: Set<string>;
  readonly problems: string[];
}

/** One binding of an import, as `lsmod -v` and `lookup` show it. */
export interface BindingInfo {
  readonly namespace: string;
  readonly symbol: string;
  readonly provider: string;
  readonly type: string;
}

export interface LoadedUnitInfo {
  readonly name: string;
  readonly kind: "static" | "dso" | "library";
  readonly file?: string;
  readonly sha256?: string;
  readonly size?: number;
  readonly memoryBytes?: number;
  readonly loadedAt?: Date;
  /** False for a dependency loaded because another module needed it. */
  readonly explicit: boolean;
  readonly exports: readonly string[];
  readonly bindings: readonly BindingInfo[];
  readonly dependents: readonly string[];
  readonly sessions: number;
}

export interface SymbolInfo {
  readonly symbol: string;
  readonly provider: string;
  readonly providerKind: Provider["kind"];
  readonly type: string;
  readonly shadowed: ReadonlyArray<{ readonly provider: string; readonly type: string }>;
}

/** A session's view of the engine: the module set it started with, kept until release. */
export interface ModuleSet {
  readonly modules: readonly EngineModule[];
  release(): void;
}

const HOST_PROVIDER: Provider = { kind: "host", name: "host", seq: 0 };

/**
 * Compiled modules kept for reloading: enough for every module of a large
 * configuration to be rmmod'ed and insmod'ed again without recompiling, while
 * a daemon that loads many rebuilt versions does not keep them all.
 */
const COMPILED_CACHE_SIZE = 256;

interface CompiledEntry {
  readonly compiled: WebAssembly.Module;
  readonly shape: ModuleShape;
  /** The binary's size in bytes. */
  readonly size: number;
}

/**
 * WASI preview1 is provided by the host, never loaded as a library. It needs
 * the `filesystem` capability, and reaches only the unit's ModuleFilesystem
 * directories (none by default), through host/wasi's checked paths.
 */
const WASI_NAMESPACE = "wasi_snapshot_preview1";
const WASI_PROVIDER: Provider = { kind: "host", name: "wasi", seq: 0 };

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The limits of the memory the host gave a unit, if its binary imports one. */
function hostMemoryLimits(bindings: readonly Binding[]): MemoryLimits | undefined {
  for (const binding of bindings) if ("hostMemory" in binding) return binding.hostMemory;
  return undefined;
}

function describeTrap(error: unknown): string {
  if (isDsoError(error)) return error.message;
  if (error instanceof RangeError && /call stack/i.test(error.message)) return "stack overflow";
  if (error instanceof Error) return error.message;
  return String(error);
}

export class ModuleHost {
  #modulePath: string;
  readonly #compiledIn: ReadonlyMap<string, EngineModule>;
  readonly #protected: ReadonlySet<string>;
  readonly #policy: (unit: string) => UnitPolicy;
  readonly #log: (priority: LogPriority, message: string) => void;
  readonly #tracer: Tracer | undefined;
  readonly #debugLevel: number;
  readonly #services: HostServices;
  readonly #scope = new SymbolScope();
  /** Compiled modules by content hash, least recently used first; bounded so rebuilt modules do not pile up. */
  readonly #compiled = new Map<string, CompiledEntry>();
  /** Content hashes by file identity: a file unchanged since it was read is not read and hashed again. */
  readonly #hashByIdentity = new Map<string, string>();
  /** The module path's real path, resolved when the module path is set. */
  #modulePathReal: string | undefined;
  readonly #units = new Map<string, Unit>();
  readonly #byNamespace = new Map<string, Unit>();
  readonly #byProvider = new Map<Provider, Unit>();
  /** Engine order: compiled-in modules first, then loaded ones, oldest first (lsmod order). */
  #engine: EngineModule[];
  #seq = 0;
  readonly #activeCommands: ActiveCommand[] = [];
  readonly #memories = new MemoryPool();

  constructor(options: ModuleHostOptions) {
    this.#modulePath = options.modulePath;
    this.#compiledIn = new Map((options.compiledIn ?? []).map((m) => [m.name, m]));
    this.#protected = new Set(options.protectedModules ?? []);
    this.#policy = options.policy ?? (() => DEFAULT_POLICY);
    this.#log = options.log ?? (() => {});
    this.#tracer = options.tracer;
    this.#debugLevel = options.debugLevel ?? 0;
    const guestLog = options.guestLog ?? ((importer, _level, message) => this.#log("debug", `${importer}: ${message}`));
    this.#services = {
      log: guestLog,
      trace: (_importer, channel, level, message) => this.#trace(channel, level, message),
      activeCommand: () => this.#activeCommands.at(-1),
    };
    for (const symbol of HOST_SYMBOLS.values()) {
      this.#scope.add([{ name: symbol.name, type: { kind: "func", type: hostSymbolType(symbol) }, provider: HOST_PROVIDER }]);
    }
    this.#engine = [...this.#compiledIn.values()];
    for (const module of this.#engine) module.init?.();
  }

  /** Where later loads look (ModulePath affects only the loads after it, as in mod_dso.c). */
  get modulePath(): string {
    return this.#modulePath;
  }

  /** ModulePath: checks on the directory are the directive's; the host only remembers it. */
  setModulePath(directory: string): void {
    this.#modulePath = directory;
    this.#modulePathReal = undefined;
  }

  #traceOn(level: number): boolean {
    return this.#tracer !== undefined && this.#tracer.level("dso") >= level;
  }

  #trace(channel: string, level: number, message: string): void {
    if (this.#tracer !== undefined && this.#tracer.level(channel) >= level) this.#tracer.write(channel, level, message);
  }

  /** One of mod_dso.c's pr_log_debug lines, shown up to the host's debug level. */
  #debug(line: DebugLine): void {
    if (line.level <= this.#debugLevel) this.#log("debug", `${MOD_DSO_VERSION}: ${line.text}`);
  }

  /** dso_load_module's DEBUG7 line once a module's file is open, with its modification time. */
  #debugLoaded(stem: string, file: string | undefined): void {
    if (file === undefined || this.#debugLevel < LOADED_LEVEL) return;
    let modified: Date;
    try {
      modified = statSync(file).mtime;
    } catch {
      // proftpd prints the line only when stat() succeeds.
      return;
    }
    this.#debug(dsoDebug.loaded(stem, file, modified));
  }

  /** dso_load_module when there is no file: libltdl's failure, its NOTICE, and the fall back to the executable ('self'). */
  #noFile(requested: string, stemPath: string): void {
    this.#debug(dsoDebug.noFile(requested));
    this.#log("notice", `${MOD_DSO_VERSION}: unable to load '${requested}'; check to see if '${stemPath}.wasm' exists`);
    this.#debug(dsoDebug.self);
  }

  /** True when a module of that name is in the engine (`<IfModule>`'s test). */
  isLoaded(name: string): boolean {
    return this.#engine.some((m) => m.name === name);
  }

  /** The engine's modules in load order, oldest first. */
  engineModules(): readonly EngineModule[] {
    return this.#engine;
  }

  /** Names of the modules in the engine, in lsmod order. */
  listModules(): string[] {
    return this.#engine.map((m) => m.name);
  }

  /** `LoadModule` / `insmod`: loads `mod_x.c` from the module path, with any needed dependencies. */
  loadModule(requested: string): void {
    const parsed = parseModuleName(requested);
    const { name } = parsed;
    const modulePath = this.#modulePath;
    const stemPath = path.join(modulePath, parsed.stem);
    this.#debug(dsoDebug.loading(requested));
    this.#trace("dso", 5, `loading module '${stemPath}'`);
    const builtIn = this.#compiledIn.get(name);
    if (builtIn !== undefined) {
      // A compiled-in module has no file: proftpd falls back to the executable ('self') and finds it there.
      this.#noFile(requested, stemPath);
      this.#trace("dso", 7, `looking for symbol '${parsed.symbol}' in loaded module`);
      if (this.isLoaded(name)) return this.#alreadyLoaded(name);
      builtIn.init?.();
      this.#engine.push(builtIn);
      this.#trace("dso", 8, `module '${stemPath}' successfully loaded`);
      return;
    }
    if (this.isLoaded(name)) {
      // proftpd opens the file again before it finds the module loaded.
      this.#debugLoaded(parsed.stem, this.#units.get(name)?.file);
      this.#trace("dso", 7, `looking for symbol '${parsed.symbol}' in loaded module`);
      return this.#alreadyLoaded(name);
    }
    const plan = this.#newPlan();
    const file = `${stemPath}.wasm`;
    try {
      this.#planUnit(plan, { kind: "module", name, namespace: parsed.stem, file, explicit: true }, [name]);
      this.#execute(plan);
    } catch (error) {
      this.#logRefusal(parsed, requested, stemPath, error);
      throw error;
    }
    this.#trace("dso", 8, `module '${stemPath}' successfully loaded`);
  }

  /**
   * Every refused load leaves its reason in the log, whether LoadModule,
   * insmod or a SIGHUP's re-read asked for it, as mod_dso.c's dso_load_module
   * logs its own failures. A wrong API version and a module's failed init were
   * logged where they were found, in proftpd's words; only their other lines
   * (the trap that failed the init) are added here. Every failure also leaves
   * its level-1 line in the trace log (`Trace dso:1`), as dso_load_module's.
   */
  #logRefusal(parsed: ModuleName, requested: string, stemPath: string, error: unknown): void {
    if (!isDsoError(error)) {
      this.#log("notice", `${MOD_DSO_VERSION}: unable to load '${parsed.name}': ${String(error)}`);
      this.#trace("dso", 1, `unable to load '${parsed.name}': ${String(error)}`);
      return;
    }
    if (error.code === ErrorCodes.MODULE_NOT_FOUND) {
      // No file, so proftpd looks for the module in the executable, and does not find it there either.
      this.#noFile(requested, stemPath);
      this.#trace("dso", 7, `looking for symbol '${parsed.symbol}' in loaded module`);
      const noSymbol = dsoDebug.noSymbol(parsed.symbol);
      this.#debug(noSymbol);
      this.#trace("dso", 1, noSymbol.text);
      return;
    }
    const loggedAtSource =
      error.code === ErrorCodes.API_VERSION || (error.code === ErrorCodes.INIT_FAILED && error.message.startsWith("module '"));
    // Link problems and a missing module symbol were traced where they were found.
    const tracedAtSource = error.code === ErrorCodes.LINK || error.code === ErrorCodes.CAPABILITY || error.code === ErrorCodes.NO_MODULE_SYMBOL;
    for (const line of error.lines) {
      if (!(loggedAtSource && line === error.message)) this.#log("notice", `${MOD_DSO_VERSION}: ${line}`);
      if (!tracedAtSource) this.#trace("dso", 1, line);
    }
  }

  #alreadyLoaded(name: string): never {
    this.#log("info", `${MOD_DSO_VERSION}: module '${name}' already loaded`);
    this.#trace("dso", 1, `module '${name}' already loaded`);
    throw new DsoError(ErrorCodes.ALREADY_LOADED, `module '${name}' already loaded`, { errno: Errno.EEXIST });
  }

  /** `LoadFile`: loads a library into the global scope, where it stays until the host closes. */
  loadFile(file: string): void {
    if (!path.isAbsolute(file)) {
      throw new DsoError(ErrorCodes.NOT_ABSOLUTE, "must be an absolute path", { errno: Errno.EINVAL });
    }
    const namespace = path.basename(file).replace(/\.wasm$/, "");
    const existing = this.#byNamespace.get(namespace);
    if (existing !== undefined) {
      // proftpd accepts the same LoadFile twice; a different file under a taken name would be ambiguous.
      if (existing.file === file) return;
      throw new DsoError(ErrorCodes.ALREADY_LOADED, `a library named '${namespace}' is already loaded from '${existing.file}'`, {
        errno: Errno.EEXIST,
      });
    }
    // dso_load_file's trace lines.
    this.#trace("dso", 5, `loading file '${file}'`);
    const plan = this.#newPlan();
    try {
      this.#planUnit(plan, { kind: "library", name: namespace, namespace, file, explicit: true }, [file]);
      this.#execute(plan);
    } catch (error) {
      // Beyond dso_load_file, which traces no failure: every refusal has its level-1 line.
      const tracedAtSource = isDsoError(error) && (error.code === ErrorCodes.LINK || error.code === ErrorCodes.CAPABILITY);
      if (!tracedAtSource) for (const line of isDsoError(error) ? error.lines : [String(error)]) this.#trace("dso", 1, line);
      throw error;
    }
    this.#trace("dso", 8, `file '${file}' successfully loaded`);
  }

  /** `rmmod`: removes a module from the engine; a dynamically loaded one is unlinked and released. */
  unloadModule(name: string): void {
    parseUnloadName(name);
    if (this.#protected.has(name)) {
      throw new DsoError(ErrorCodes.PROTECTED, `module '${name}' cannot be unloaded`, { errno: Errno.EPERM });
    }
    const index = this.#engine.findIndex((m) => m.name === name);
    if (index < 0) throw new DsoError(ErrorCodes.NOT_LOADED, `module '${name}' is not loaded`, { errno: Errno.ENOENT });
    const unit = this.#units.get(name);
    if (unit !== undefined && unit.dependents.size > 0) {
      const names = [...unit.dependents].map((d) => d.name).join(", ");
      throw new DsoError(ErrorCodes.HAS_DEPENDENTS, `module '${name}' is needed by ${names}`, { errno: Errno.EBUSY });
    }
    this.#trace("dso", 5, `unloading module '${name}'`);
    if (unit === undefined) {
      // A compiled-in module leaves the engine only; its code stays, as proftpd's lt_dlclose(NULL).
      this.#engine.splice(index, 1);
    } else {
      this.#detach(unit);
    }
    this.#trace("dso", 8, `module '${name}' successfully unloaded`);
  }

  /**
   * ModuleOrder: the engine becomes exactly these modules, in this order; the
   * others leave it (and can come back with insmod, like an rmmod'ed static
   * module). The directive checks its arguments before calling this.
   */
  setModuleOrder(names: readonly string[]): string[] {
    const byName = new Map(this.#engine.map((m) => [m.name, m]));
    const ordered = names.map((name) => {
      const module = byName.get(name);
      if (module === undefined) throw new DsoError(ErrorCodes.NOT_LOADED, `no such module '${name}' loaded`, { errno: Errno.ENOENT });
      return module;
    });
    const removed = this.#engine.filter((m) => !names.includes(m.name));
    for (const module of removed) {
      const unit = this.#units.get(module.name);
      if (unit !== undefined) this.#detach(unit);
    }
    this.#engine = ordered;
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
    for (const module of [...this.#engine].reverse()) {
      const unit = this.#units.get(module.name);
      if (unit === undefined || unit.detached) continue;
      this.#debug(dsoDebug.unloading(module.name));
      this.#trace("dso", 5, `unloading module '${module.name}'`);
      this.#detach(unit, true);
      this.#trace("dso", 8, `module '${module.name}' successfully unloaded`);
    }
    this.close();
  }

  /** Unloads every module newest first, then every library: the host's shutdown. */
  close(): void {
    for (const module of [...this.#engine].reverse()) {
      const unit = this.#units.get(module.name);
      if (unit !== undefined && !unit.detached) this.#detach(unit, true);
    }
    for (const unit of [...this.#units.values()].reverse()) this.#detach(unit, true);
  }

  /** A snapshot of the engine for a new session; the units stay alive until `release()`. */
  acquireModules(): ModuleSet {
    const modules = [...this.#engine];
    const held = modules.flatMap((m) => {
      const unit = this.#units.get(m.name);
      return unit === undefined ? [] : [unit];
    });
    for (const unit of held) unit.holders++;
    let released = false;
    return {
      modules,
      release: () => {
        if (released) return;
        released = true;
        for (const unit of held) {
          unit.holders--;
          this.#finalizeWhenUnused(unit);
        }
      },
    };
  }

  /** Runs a handler with `command` as the one host symbols see (pr_response_add, pr_cmd_arg...). */
  withCommand<T>(command: ActiveCommand, run: () => T): T {
    this.#activeCommands.push(command);
    try {
      return run();
    } finally {
      this.#activeCommands.pop();
    }
  }

  /** Where `symbol` resolves in the global scope, with the definitions it shadows. */
  lookup(symbol: string): SymbolInfo | undefined {
    const found = this.#scope.lookup(symbol);
    if (found === undefined) return undefined;
    return {
      symbol,
      provider: found.winner.provider.name,
      providerKind: found.winner.provider.kind,
      type: formatExternType(found.winner.type),
      shadowed: found.shadowed.map((d) => ({ provider: d.provider.name, type: formatExternType(d.type) })),
    };
  }

  /**
   * ld.so's dlsym(RTLD_DEFAULT, name): the winning wasm definition of `symbol`
   * in the global scope (an exported function, global, memory or table), or
   * undefined. Host symbols have no single address: they are bound per importer.
   */
  dlsym(symbol: string): WebAssembly.ExportValue | undefined {
    const definition = this.#scope.first(symbol);
    if (definition === undefined) return undefined;
    const unit = this.#byProvider.get(definition.provider);
    if (unit === undefined) return undefined;
    // The caller may keep it past rmmod: the instance's memory must then never be recycled.
    unit.exportsEscaped = true;
    return unit.instance.exports[symbol];
  }

  /** Number of names in the global scope. */
  get scopeSize(): number {
    return this.#scope.size;
  }

  /** Details of every module in the engine (lsmod -v), then of every library. */
  describe(): LoadedUnitInfo[] {
    const modules = this.#engine.map((m) => {
      const unit = this.#units.get(m.name);
      return unit === undefined
        ? { name: m.name, kind: "static" as const, explicit: true, exports: [], bindings: [], dependents: [], sessions: 0 }
        : this.#unitInfo(unit);
    });
    const libraries = [...this.#units.values()].filter((u) => u.kind === "library").map((u) => this.#unitInfo(u));
    return [...modules, ...libraries];
  }

  #unitInfo(unit: Unit): LoadedUnitInfo {
    return {
      name: unit.name,
      kind: unit.kind === "library" ? "library" : "dso",
      file: unit.file,
      sha256: unit.hash,
      size: unit.size,
      memoryBytes: unit.memory?.buffer.byteLength ?? 0,
      loadedAt: unit.loadedAt,
      explicit: unit.explicit,
      exports: unit.publicSymbols,
      bindings: unit.bindings.map((b) => ({
        namespace: b.import.module,
        symbol: b.import.name,
        provider: "definition" in b ? b.definition.provider.name : "host",
        type: formatExternType(b.import.type),
      })),
      dependents: [...unit.dependents].map((d) => d.name),
      sessions: unit.holders,
    };
  }

  readonly #exportTypeCache = new WeakMap<ModuleShape, ReadonlyMap<string, ExternType>>();

  /** A shape's exports by name, built once: direct binding looks names up per import. */
  #exportTypes(shape: ModuleShape): ReadonlyMap<string, ExternType> {
    let types = this.#exportTypeCache.get(shape);
    if (types === undefined) {
      types = new Map(shape.exports.map((e) => [e.name, e.type]));
      this.#exportTypeCache.set(shape, types);
    }
    return types;
  }

  #newPlan(): Plan {
    return { order: [], byNamespace: new Map(), visiting: new Set(), problems: [] };
  }

  /**
   * Reads a unit's file safely (module-file.ts) and checks its integrity pin.
   * Returns no bytes when the file is unchanged since its content was compiled.
   * A file over its BinarySize limit is refused unread, and a fresh binary's
   * sections are checked against the other load limits before it is hashed:
   * a bomb costs a stat and a read, not a hash and a compile.
   */
  #readBinary(unit: { name: string; file: string; explicit: boolean; kind: UnitKind }, policy: UnitPolicy): {
    bytes: Uint8Array<ArrayBuffer> | undefined;
    hash: string;
    shape: ModuleShape | undefined;
  } {
    // LoadFile names its file itself; everything else comes from the module path and must stay in it.
    const fromModulePath = !(unit.kind === "library" && unit.explicit);
    const within = fromModulePath ? (this.#modulePathReal ??= realModulePath(this.#modulePath)) : undefined;
    const known = (identity: string): boolean => {
      const hash = this.#hashByIdentity.get(identity);
      return hash !== undefined && this.#compiled.has(hash);
    };
    const limit = policy.loadLimits.binarySize;
    const refuseSize = (size: number): DsoError | undefined =>
      size > limit ? new DsoError(ErrorCodes.LOAD_LIMIT, `${unit.name}: ${overLimitText("binarySize", size, limit)}`) : undefined;
    const file = readModuleFile(unit.file, { uid: process.geteuid?.() ?? 0, known, refuseSize, ...(within !== undefined && { within }) });
    const bytes = file.bytes;
    const shape = bytes === undefined ? undefined : this.#readShape(unit.name, unit.file, bytes, policy.loadLimits);
    const hash = bytes === undefined ? (this.#hashByIdentity.get(file.identity) as string) : sha256(bytes);
    if (bytes !== undefined) this.#hashByIdentity.set(file.identity, hash);
    const pinned = policy.sha256;
    if (pinned !== undefined && pinned !== hash) {
      throw new DsoError(ErrorCodes.INTEGRITY, `'${unit.file}' has SHA-256 ${hash}, but ${unit.name} is pinned to ${pinned}`, {
        errno: Errno.EACCES,
      });
    }
    return { bytes, hash, shape };
  }

  /** The binary's shape, read within `limits`: a refusal names the unit, a malformed binary its file. */
  #readShape(name: string, file: string, bytes: Uint8Array, limits: LoadLimits): ModuleShape {
    try {
      return readModuleShape(bytes, limits);
    } catch (cause) {
      if (isDsoError(cause) && cause.code === ErrorCodes.LOAD_LIMIT) throw new DsoError(cause.code, `${name}: ${cause.message}`, { cause });
      throw isDsoError(cause)
        ? new DsoError(cause.code, `'${file}': ${cause.message}`, { cause })
        : new DsoError(ErrorCodes.BAD_WASM, `'${file}': not a WebAssembly binary`, { cause });
    }
  }

  /**
   * Compiles a binary whose shape was read, unless its content is compiled
   * already. A cached compile is checked against `limits` again, since they
   * may differ between the units that load it.
   */
  #compile(
    name: string,
    file: string,
    read: { bytes: Uint8Array<ArrayBuffer> | undefined; hash: string; shape: ModuleShape | undefined },
    limits: LoadLimits,
  ): CompiledEntry {
    const cached = this.#compiled.get(read.hash);
    if (cached !== undefined) {
      // Most recently used goes last.
      this.#compiled.delete(read.hash);
      this.#compiled.set(read.hash, cached);
      const over = loadLimitProblem(cached.shape.footprint, limits);
      if (over !== undefined) throw new DsoError(ErrorCodes.LOAD_LIMIT, `${name}: ${over}`);
      return cached;
    }
    const { bytes, shape } = read;
    if (bytes === undefined || shape === undefined) throw new Error(`'${file}': compiled module ${read.hash} left the cache`);
    let compiled: WebAssembly.Module;
    try {
      compiled = new WebAssembly.Module(bytes);
    } catch (cause) {
      throw new DsoError(ErrorCodes.BAD_WASM, `'${file}': ${(cause as Error).message}`, { cause });
    }
    const entry = { compiled, shape, size: bytes.byteLength };
    this.#compiled.set(read.hash, entry);
    if (this.#compiled.size > COMPILED_CACHE_SIZE) {
      const oldest = this.#compiled.keys().next().value as string;
      this.#compiled.delete(oldest);
    }
    return entry;
  }

  /** Reads, compiles and checks one binary, then plans whatever its imports name (DT_NEEDED). */
  #planUnit(
    plan: Plan,
    unit: { kind: UnitKind; name: string; namespace: string; file: string; explicit: boolean },
    chain: readonly string[],
  ): void {
    const policy = this.#policy(unit.name);
    const read = this.#readBinary(unit, policy);
    if (unit.kind === "module" && unit.explicit) this.#debugLoaded(unit.namespace, unit.file);
    const { compiled, shape, size } = this.#compile(unit.name, unit.file, read, policy.loadLimits);
    checkGuestAbi(unit.name, shape);
    const { memoryPages } = shareMemoryCap(unit.name, shape, policy.memoryCapPages);
    let moduleSymbol: string | undefined;
    if (unit.kind === "module") {
      moduleSymbol = parseModuleName(unit.name).symbol;
      this.#checkModuleSymbol(unit.name, moduleSymbol, shape);
      const problems = protocolProblems(unit.name, shape.exports);
      if (problems.length > 0) {
        throw new DsoError(ErrorCodes.BAD_MODULE, problems.join("; "), { details: problems });
      }
    }
    plan.visiting.add(unit.namespace);
    for (const namespace of this.#neededNamespaces(shape)) {
      if (this.#byNamespace.has(namespace) || plan.byNamespace.has(namespace)) continue;
      if (plan.visiting.has(namespace)) {
        throw new DsoError(ErrorCodes.DEPENDENCY_CYCLE, `dependency cycle: ${[...chain, moduleNameOfNamespace(namespace) ?? namespace].join(" -> ")}`);
      }
      this.#planNeeded(plan, namespace, unit.name, chain);
    }
    plan.visiting.delete(unit.namespace);
    if (policy.cpuBudgetMs > 0) {
      const missing = watchdogUnavailable();
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
      hash: read.hash,
      size,
      shape,
      compiled,
      moduleSymbol,
      provider: { kind: unit.kind, name: unit.name, seq: ++this.#seq },
    };
    plan.order.push(planned);
    plan.byNamespace.set(unit.namespace, planned);
  }

  readonly #neededCache = new WeakMap<ModuleShape, readonly string[]>();

  /** The libraries and modules a binary's imports name (its DT_NEEDED list), read once per compiled module. */
  #neededNamespaces(shape: ModuleShape): readonly string[] {
    let needed = this.#neededCache.get(shape);
    if (needed === undefined) {
      needed = [
        ...new Set(shape.imports.filter((i) => i.module !== GLOBAL_NAMESPACE && i.module !== WASI_NAMESPACE).map((i) => i.module)),
      ];
      this.#neededCache.set(shape, needed);
    }
    return needed;
  }

  #planNeeded(plan: Plan, namespace: string, neededBy: string, chain: readonly string[]): void {
    const moduleName = moduleNameOfNamespace(namespace);
    if (moduleName !== undefined) {
      if (this.#compiledIn.has(moduleName)) {
        plan.problems.push(`${neededBy}: needed module '${moduleName}' is compiled in and exports no symbols`);
        return;
      }
      const stem = moduleName.slice(0, -2);
      const file = path.join(this.#modulePath, `${stem}.wasm`);
      this.#trace("dso", 5, `loading module '${path.join(this.#modulePath, stem)}' needed by ${neededBy}`);
      this.#planNeededUnit(plan, { kind: "module", name: moduleName, namespace, file, explicit: false }, neededBy, chain);
      return;
    }
    if (!isLibraryNamespace(namespace)) {
      plan.problems.push(`${neededBy}: import namespace '${namespace}' names no library or module`);
      return;
    }
    const file = path.join(this.#modulePath, `${namespace}.wasm`);
    this.#trace("dso", 5, `loading library '${file}' needed by ${neededBy}`);
    this.#planNeededUnit(plan, { kind: "library", name: namespace, namespace, file, explicit: false }, neededBy, chain);
  }

  #planNeededUnit(
    plan: Plan,
    unit: { kind: UnitKind; name: string; namespace: string; file: string; explicit: boolean },
    neededBy: string,
    chain: readonly string[],
  ): void {
    try {
      this.#planUnit(plan, unit, [...chain, unit.name]);
    } catch (error) {
      if (!isDsoError(error) || error.code === ErrorCodes.DEPENDENCY_CYCLE) throw error;
      plan.problems.push(...error.lines.map((line) => `${neededBy}: needed ${unit.kind} '${unit.name}': ${line}`));
    }
  }

  #checkModuleSymbol(name: string, symbol: string, shape: ModuleShape): void {
    this.#trace("dso", 7, `looking for symbol '${symbol}' in loaded module`);
    const entry = shape.exports.find((e) => e.name === symbol);
    if (entry === undefined || entry.type.kind !== "global" || typeof entry.constValue !== "number") {
      this.#trace("dso", 1, `unable to find module symbol '${symbol}' in '${name}'`);
      throw new DsoError(ErrorCodes.NO_MODULE_SYMBOL, `unable to find module symbol '${symbol}' in '${name}'`, {
        errno: Errno.ENOENT,
      });
    }
    if (entry.constValue < MODULE_API_VERSION) {
      const hex = (n: number): string => `0x${n.toString(16)}`;
      const message = `module '${name}' has wrong API version (${hex(entry.constValue)}), must be ${hex(MODULE_API_VERSION)}`;
      this.#log("error", `${MOD_DSO_VERSION}: ${message}`);
      throw new DsoError(ErrorCodes.API_VERSION, message, { errno: Errno.EACCES });
    }
  }

  readonly #publicExportCache = new WeakMap<ModuleShape, Map<string, readonly ExportEntry[]>>();

  /** The exports a unit puts in the global scope: all but the module protocol's and the runtime's. */
  #publicDefinitions(unit: PlannedUnit): Definition[] {
    // Classified once per compiled module and module symbol: a reload does not re-run the name rules.
    let bySymbol = this.#publicExportCache.get(unit.shape);
    if (bySymbol === undefined) {
      bySymbol = new Map();
      this.#publicExportCache.set(unit.shape, bySymbol);
    }
    const key = unit.kind === "module" ? (unit.moduleSymbol ?? "") : "\0library";
    let exports = bySymbol.get(key);
    if (exports === undefined) {
      exports = unit.shape.exports.filter((e) =>
        unit.kind === "module" ? !isProtocolExport(e.name, unit.moduleSymbol) : !isRuntimeExport(e.name),
      );
      bySymbol.set(key, exports);
    }
    return exports.map((e) => ({ name: e.name, type: e.type, provider: unit.provider }));
  }

  /**
   * Modules and LoadFile libraries enter the global scope. A library loaded only
   * because an import names it stays local to its dependents (RTLD_LOCAL): a
   * dependency never changes which definition other modules see.
   */
  #entersGlobalScope(unit: { kind: UnitKind; explicit: boolean }): boolean {
    return unit.kind === "module" || unit.explicit;
  }

  #execute(plan: Plan): void {
    const pendingScope = new SymbolScope();
    const problems = [...plan.problems];
    const plannedNeeds = new Map<Provider, readonly CapabilityNeed[]>();
    const resolved = new Map<PlannedUnit, readonly Binding[]>();
    for (const unit of plan.order) {
      const { policy } = unit;
      const result = resolveImports(unit.name, unit.shape.imports, {
        memoryCapPages: unit.memoryPages,
        lookupGlobal: (name) => this.#scope.first(name) ?? pendingScope.first(name),
        lookupDirect: (namespace, name) => {
          if (namespace === WASI_NAMESPACE) {
            const wasi = WASI_TYPES[name];
            return wasi === undefined ? undefined : { name, type: { kind: "func", type: wasi }, provider: WASI_PROVIDER };
          }
          const target = plan.byNamespace.get(namespace) ?? this.#byNamespace.get(namespace);
          const type = target === undefined ? undefined : this.#exportTypes(target.shape).get(name);
          return target === undefined || type === undefined ? undefined : { name, type, provider: target.provider };
        },
      });
      problems.push(...result.problems);
      resolved.set(unit, result.bindings);
      const needs = capabilityNeeds(result.bindings.map((b) => this.#capabilityBinding(b, plannedNeeds)));
      plannedNeeds.set(unit.provider, needs);
      problems.push(...capabilityProblems(unit.name, needs, policy.capabilities));
      // Pending modules rank after every loaded one, so the loaded scope is searched first.
      if (unit.kind === "module") pendingScope.add(this.#publicDefinitions(unit));
    }
    if (problems.length > 0) {
      for (const line of problems) this.#trace("dso", 1, line);
      const onlyCapabilities = problems.every((line) => line.includes("needs capability"));
      throw new DsoError(onlyCapabilities ? ErrorCodes.CAPABILITY : ErrorCodes.LINK, problems.join("; "), { details: problems });
    }
    const created: Unit[] = [];
    try {
      for (const unit of plan.order) created.push(this.#instantiate(unit, resolved.get(unit) ?? [], plannedNeeds.get(unit.provider) ?? []));
    } catch (error) {
      for (const unit of created.reverse()) this.#runUnloadHook(unit);
      for (const unit of plan.order) this.#byProvider.delete(unit.provider);
      throw error;
    }
    for (const unit of created) this.#commit(unit);
  }

  #capabilityBinding(binding: Binding, plannedNeeds: ReadonlyMap<Provider, readonly CapabilityNeed[]>): CapabilityBinding {
    if ("hostMemory" in binding) return { importName: binding.import.name, hostCapability: undefined, provider: undefined };
    const { definition } = binding;
    if (definition.provider === WASI_PROVIDER) {
      return { importName: binding.import.name, hostCapability: Capabilities.filesystem, provider: undefined };
    }
    if (definition.provider.kind === "host") {
      return { importName: binding.import.name, hostCapability: HOST_SYMBOLS.get(definition.name)?.capability, provider: undefined };
    }
    const needs = plannedNeeds.get(definition.provider) ?? this.#byProvider.get(definition.provider)?.needs ?? [];
    return { importName: binding.import.name, hostCapability: undefined, provider: { name: definition.provider.name, needs } };
  }

  /** The import object of one instance: host symbols bound to its own state, providers' exports as they are now. */
  #linkImports(
    name: string,
    bindings: readonly Binding[],
    state: ImporterState,
    sandbox: SandboxImports,
  ): { imports: WebAssembly.Imports; memory: WebAssembly.Memory | undefined; dependencies: Set<Unit> } {
    const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
    let memory: WebAssembly.Memory | undefined;
    const dependencies = new Set<Unit>();
    for (const binding of bindings) {
      const namespace = (imports[binding.import.module] ??= {});
      if ("hostMemory" in binding) {
        memory = this.#memories.acquire(binding.hostMemory);
        namespace[binding.import.name] = memory;
        continue;
      }
      const { definition } = binding;
      if (definition.provider === WASI_PROVIDER) {
        sandbox.wasi ??= createWasi({
          preopens: this.#policy(name).preopens,
          memory: () => {
            if (sandbox.memory === undefined) throw new DsoError(ErrorCodes.GUEST_TRAP, `${name} has no memory for WASI to use`);
            return sandbox.memory;
          },
          log: (stream, text) => this.#services.log(name, 0, `${stream}: ${text}`),
        });
        namespace[binding.import.name] = sandbox.wasi.imports[definition.name] as WebAssembly.ImportValue;
        continue;
      }
      if (definition.provider.kind === "host") {
        const symbol = HOST_SYMBOLS.get(definition.name);
        if (symbol === undefined) throw new Error(`host symbol '${definition.name}' vanished`);
        namespace[binding.import.name] = symbol.bind(state, this.#services) as WebAssembly.ImportValue;
        continue;
      }
      const provider = this.#byProvider.get(definition.provider);
      if (provider === undefined) throw new Error(`provider ${definition.provider.name} is not instantiated`);
      dependencies.add(provider);
      namespace[binding.import.name] = provider.instance.exports[definition.name] as WebAssembly.ImportValue;
      if (this.#traceOn(9)) this.#trace("dso", 9, `binding '${definition.name}' of ${name} to ${provider.name}`);
    }
    return { imports, memory, dependencies };
  }

  #startInstance(
    name: string,
    compiled: WebAssembly.Module,
    shape: ModuleShape,
    imports: WebAssembly.Imports,
    memory: WebAssembly.Memory | undefined,
    state: ImporterState,
    policy: UnitPolicy,
  ): WebAssembly.Instance {
    try {
      // A start function is guest code too: it runs under the unit's CPU budget. Without one, no guest code runs here.
      const instantiate = (): WebAssembly.Instance => new WebAssembly.Instance(compiled, imports);
      const instance = policy.cpuBudgetMs > 0 && shape.hasStartFunction ? callGuarded(instantiate, policy.cpuBudgetMs) : instantiate();
      state.strings = guestStrings(instance, memory, shape.staticData);
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
  #initialize(unit: Unit): void {
    const initialize = unit.instance.exports._initialize;
    if (typeof initialize === "function") this.#invoke(unit, "_initialize", undefined);
    for (const argv of unit.directives) {
      const handler = unit.engineModule?.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
      handler?.run(new DirectiveCall(argv), { file: "", line: 0, first: false });
    }
    unit.engineModule?.init?.();
  }

  #instantiate(planned: PlannedUnit, bindings: readonly Binding[], needs: readonly CapabilityNeed[]): Unit {
    const state: ImporterState = { name: planned.name, features: [], help: [], strings: undefined };
    const sandbox: SandboxImports = {};
    const { imports, memory, dependencies } = this.#linkImports(planned.name, bindings, state, sandbox);
    const publicDefinitions = this.#publicDefinitions(planned);
    const instance = this.#startInstance(planned.name, planned.compiled, planned.shape, imports, memory, state, planned.policy);
    sandbox.memory = memory ?? (instance.exports.memory instanceof WebAssembly.Memory ? instance.exports.memory : undefined);
    const unit: Unit = {
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
      loadedAt: new Date(),
      instance,
      memory,
      state,
      sandbox,
      bindings,
      publicDefinitions: this.#entersGlobalScope(planned) ? publicDefinitions : [],
      publicSymbols: publicDefinitions.map((d) => d.name),
      dependencies,
      dependents: new Set(),
      needs,
      engineModule: undefined,
      directives: [],
      holders: 0,
      boundBy: 0,
      detached: false,
      finalized: false,
      exportsEscaped: false,
      faulted: false,
      faults: [],
      retryAt: undefined,
    };
    this.#byProvider.set(planned.provider, unit);
    unit.engineModule =
      planned.kind === "module"
        ? guestEngineModule({
            name: planned.name,
            shape: planned.shape.exports,
            state,
            invoke: (entryPoint, command) => this.#invoke(unit, entryPoint, command),
            onDirective: (argv) => unit.directives.push(argv),
          })
        : undefined;
    try {
      this.#initialize(unit);
    } catch (cause) {
      this.#byProvider.delete(planned.provider);
      const message =
        planned.kind === "module" ? `module '${planned.name}' failed to initialize` : `library '${planned.name}' failed to initialize`;
      if (planned.kind === "module") this.#log("error", `${MOD_DSO_VERSION}: ${message}`);
      const reason = describeTrap(cause);
      throw new DsoError(ErrorCodes.INIT_FAILED, message, {
        errno: Errno.EPERM,
        cause,
        details: reason === message ? [] : [message, reason],
      });
    }
    return unit;
  }

  /**
   * Calls guest code. A trap (or an interrupt) is contained: the call fails with
   * a DsoError naming module, entry point and reason, the fault is logged, and
   * the instance, which may be half-way through a change of its memory, is never
   * called again: per its fault policy it is re-instantiated (after a backoff
   * that doubles with each fault) or unloaded, and a crash loop unloads it.
   */
  #invoke(unit: Unit, entryPoint: string, command: ActiveCommand | undefined): number {
    if (unit.finalized) {
      // A handler kept by an embedder past rmmod: its instance's memory may belong to another module now.
      throw new DsoError(ErrorCodes.NOT_LOADED, `${unit.name}: unloaded (${entryPoint} not called)`, { errno: Errno.ENOENT });
    }
    if (unit.faulted) this.#retry(unit, entryPoint);
    // Looked up after a possible re-instantiation: never a function of the faulted instance.
    const fn = unit.instance.exports[entryPoint] as () => number;
    const budget = unit.policy.cpuBudgetMs;
    if (command !== undefined) this.#activeCommands.push(command);
    try {
      // The native watchdog interrupts V8 itself past the budget: guests pay nothing per iteration.
      return budget > 0 ? callGuarded(fn, budget) : fn();
    } catch (cause) {
      const code = isDsoError(cause) ? cause.code : ErrorCodes.GUEST_TRAP;
      const reason = describeTrap(cause);
      this.#log("error", `${unit.name}: fault in ${entryPoint}: ${reason}`);
      this.#onFault(unit);
      throw new DsoError(code, `${unit.name}: fault in ${entryPoint}: ${reason}`, { cause });
    } finally {
      if (command !== undefined) this.#activeCommands.pop();
    }
  }

  #onFault(unit: Unit): void {
    unit.faulted = true;
    const now = Date.now();
    const policy = unit.policy.fault;
    unit.faults = [...unit.faults.filter((t) => now - t < policy.windowMs), now];
    const crashLoop = unit.faults.length >= policy.maxFaults;
    if (policy.action === "unload" || crashLoop) {
      unit.retryAt = undefined;
      if (unit.detached || unit.kind !== "module") return;
      if (unit.dependents.size > 0) {
        this.#log("error", `${unit.name}: disabled: other modules are bound to it (${[...unit.dependents].map((d) => d.name).join(", ")})`);
        return;
      }
      const why = crashLoop ? `${unit.faults.length} faults within ${policy.windowMs / 1000} s` : "a fault (ModuleFaultPolicy unload)";
      this.#log("error", `${unit.name}: unloaded after ${why}`);
      this.#detach(unit);
      return;
    }
    // Exponential backoff between reloads: 100 ms, 200 ms, ... capped at 30 s.
    unit.retryAt = now + Math.min(100 * 2 ** (unit.faults.length - 1), 30_000);
  }

  /** Re-instantiates a faulted unit when its backoff has passed; otherwise the call is refused. */
  #retry(unit: Unit, entryPoint: string): void {
    const now = Date.now();
    const reloadable = unit.retryAt !== undefined && !unit.detached && unit.dependents.size === 0;
    if (!reloadable || now < (unit.retryAt ?? Infinity)) {
      const when = reloadable ? `, retried in ${unit.retryAt! - now} ms` : "";
      throw new DsoError(ErrorCodes.DISABLED, `${unit.name}: disabled after a fault (${entryPoint} not called${when})`);
    }
    this.#log("notice", `${unit.name}: re-instantiating after a fault`);
    unit.state.features.length = 0;
    unit.state.help.length = 0;
    unit.state.strings?.release();
    unit.state.strings = undefined;
    unit.sandbox.wasi?.close();
    delete unit.sandbox.wasi;
    const { imports, memory } = this.#linkImports(unit.name, unit.bindings, unit.state, unit.sandbox);
    unit.instance = this.#startInstance(unit.name, unit.compiled, unit.shape, imports, memory, unit.state, unit.policy);
    unit.memory = memory;
    const exported = unit.instance.exports.memory;
    unit.sandbox.memory = memory ?? (exported instanceof WebAssembly.Memory ? exported : undefined);
    unit.faulted = false;
    unit.retryAt = undefined;
    this.#initialize(unit);
  }

  #commit(unit: Unit): void {
    this.#units.set(unit.name, unit);
    this.#byNamespace.set(unit.namespace, unit);
    for (const dependency of unit.dependencies) {
      dependency.dependents.add(unit);
      dependency.boundBy++;
    }
    for (const event of this.#scope.add(unit.publicDefinitions)) this.#reportShadow(event);
    if (unit.engineModule !== undefined) this.#engine.push(unit.engineModule);
  }

  #reportShadow(event: ShadowEvent): void {
    this.#trace("dso", 7, `symbol '${event.name}' of ${event.shadowed.name} is shadowed by ${event.winner.name} (first definition wins)`);
  }

  #detach(unit: Unit, closing = false): void {
    if (unit.detached) return;
    unit.detached = true;
    this.#engine = this.#engine.filter((m) => m !== unit.engineModule);
    this.#scope.remove(unit.provider, unit.publicDefinitions.map((d) => d.name));
    this.#units.delete(unit.name);
    this.#byNamespace.delete(unit.namespace);
    for (const dependency of unit.dependencies) {
      dependency.dependents.delete(unit);
      // A needed dependency goes with its last dependent, like a DT_NEEDED library at dlclose.
      if (!closing && !dependency.explicit && dependency.dependents.size === 0) {
        this.#trace("dso", 5, `unloading ${dependency.kind} '${dependency.name}', no longer needed`);
        this.#detach(dependency);
      }
    }
    this.#finalizeWhenUnused(unit, closing);
  }

  /**
   * A detached unit is finalized once nothing can run it: no session holds it
   * and no instance bound to its exports can still run (a session may hold a
   * dependent that rmmod already detached).
   */
  #finalizeWhenUnused(unit: Unit, closing = false): void {
    if (unit.detached && !unit.finalized && unit.holders === 0 && unit.boundBy === 0) this.#finalize(unit, closing);
  }

  #finalize(unit: Unit, closing: boolean): void {
    this.#byProvider.delete(unit.provider);
    this.#runUnloadHook(unit);
    unit.finalized = true;
    unit.sandbox.wasi?.close();
    unit.state.strings?.release();
    // Nothing can run the instance now (no session holds it, no module is bound to it), unless dlsym gave it away.
    const limits = hostMemoryLimits(unit.bindings);
    if (!closing && !unit.exportsEscaped && unit.memory !== undefined && limits !== undefined) {
      this.#memories.release(unit.memory, limits);
    }
    for (const dependency of unit.dependencies) {
      dependency.boundBy--;
      this.#finalizeWhenUnused(dependency, closing);
    }
  }

  #runUnloadHook(unit: Unit): void {
    if (unit.faulted) return;
    try {
      unit.engineModule?.unload?.();
    } catch (error) {
      this.#log("error", `${unit.name}: unload hook failed: ${describeTrap(error)}`);
    }
  }
}
