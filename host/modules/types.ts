/**
 * The types the module host shares with the rest of the daemon (sessions,
 * controls, logs): what a loaded unit looks like from outside, and the log
 * and trace sinks the host writes to. host/index.ts re-exports them.
 */
import type { SharedStoreApi } from "../abi/shared-store.js";
import type { Provider } from "../linker/scope.js";
import type { EngineModule } from "./module-api.js";
import type { SessionInstances, SessionMemoryApi } from "./session-instances.js";
import type { UnitPolicy } from "./policy.js";
import type { InstanceStateExports } from "../wasm/instance-state-exports.js";
import type { ModuleShape } from "../wasm/types.js";

/** mod_dso's version string, as proftpd prefixes its log lines (`mod_dso/0.5: ...`). */
export const MOD_DSO_VERSION = "mod_dso/0.5";

export type LogPriority = "error" | "notice" | "info" | "debug";

/** The trace log (`TraceLog` + `Trace dso:N`): channels with levels. */
export interface Tracer {
  level(channel: string): number;
  write(channel: string, level: number, message: string): void;
}

export type UnitKind = "library" | "module";

/** Where a compiled binary's instance state is reachable from JavaScript (its `__dso_` exports). */
export type InstanceStateLayout = Omit<InstanceStateExports, "bytes">;

/**
 * How sessions get instances of guest units (`ModuleInstances`): `snapshot`,
 * each session its own copy of the daemon's instance as it was when the
 * session started (a forked child's memory); `replay`, each session a fresh
 * instance that runs its initialization and directives again; `shared`, one
 * instance for every session.
 */
export type SessionInstancesMode = "snapshot" | "replay" | "shared";

/** What a unit is, from its file, and its place in the scope: what a planned unit and a loaded one share. */
export interface UnitIdentity {
  readonly kind: UnitKind;
  readonly name: string;
  readonly namespace: string;
  readonly file: string;
  /** sha256 of the binary, hex. */
  readonly hash: string;
  readonly size: number;
  readonly shape: ModuleShape;
  /** Compiled from the binary rewritten to expose its instance state, start function stripped. */
  readonly compiled: WebAssembly.Module;
  readonly instanceState: InstanceStateLayout;
  /** Loaded by name (LoadModule, LoadFile, insmod), not only as another unit's DT_NEEDED. */
  readonly explicit: boolean;
  readonly provider: Provider;
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
  /** Sessions that made their own instance of it (ModuleInstances), and the memory those hold. */
  readonly instances?: { readonly count: number; readonly memoryBytes: number };
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
  /** The session's own instances of the set's guest units; absent with `ModuleInstances shared`. */
  readonly instances?: SessionInstances;
  release(): void;
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
  /**
   * The modules' shared data (pr_shared_*), when it must outlive this host:
   * dsod hands each SIGHUP generation the daemon's one store, as proftpd's
   * mod_ban table outlives a restart. A new, empty store when absent.
   */
  sharedStore?: SharedStoreApi;
  /**
   * mod_dso's log lines (`mod_dso/0.5: module 'mod_x.c' already loaded`), worded from the loader's
   * events (dso-log.ts); the events themselves are published on LOADER_CHANNEL whether or not it is set.
   */
  log?: (priority: LogPriority, message: string) => void;
  tracer?: Tracer;
  /** Where guests' pr_log_debug lines go; defaults to `log` at debug priority. */
  guestLog?: (importer: string, level: number, message: string) => void;
  /** mod_dso's own pr_log_debug lines up to this level go to `log` at debug priority (`dsod -d N`); none when 0 or absent. */
  debugLevel?: number;
  /** How sessions get instances of guest units; `snapshot` when absent (ModuleInstances). */
  sessionInstances?: SessionInstancesMode;
  /** ModuleMemoryTotal, in bytes: new sessions that would take guest memory past it are refused; none when absent. */
  memoryTotal?: number;
  /**
   * The open sessions' guest memory, for ModuleMemoryTotal, when it must count
   * the sessions of earlier hosts too: dsod hands every SIGHUP generation the
   * daemon's one account; a session worker, one that counts every worker's. A
   * new SessionMemoryAccount when absent.
   */
  sessionMemory?: SessionMemoryApi;
  /** The clock of fault backoffs, crash-loop windows and guests' pr_time_now, in ms; Date.now when absent. */
  clock?: () => number;
}
