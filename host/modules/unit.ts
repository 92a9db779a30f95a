/**
 * A loaded unit (module or library): its compiled code, its instance (wasmtime's
 * `Instance` in its `Store`), its links to other units, and its lifecycle.
 *
 * The lifecycle is one explicit state:
 *
 *   linked ──fault──▶ faulted ──retry──▶ linked
 *     │                  │
 *     └──────detach──────┴──▶ detached ──nothing holds it──▶ finalized
 *
 * `linked`: in the engine (or being instantiated) and callable. `faulted`: it
 * trapped or was interrupted; it is re-instantiated at `retryAt`, or never
 * when that is undefined. `detached`: out of the engine and the scope (rmmod),
 * but sessions that hold it may still call it unless it faulted. `finalized`:
 * released; its instance is never called again.
 */
import type { ImporterState } from "../abi/host-symbols.js";
import type { CapabilityNeed } from "../linker/capabilities.js";
import type { Binding } from "../linker/resolve.js";
import type { Definition } from "../linker/scope.js";
import type { Wasi } from "../wasi/wasi.js";
import { formatExternType } from "../wasm/types.js";
import type { EngineModule } from "./module-api.js";
import type { UnitPolicy } from "./policy.js";
import type { InstanceSnapshot } from "./snapshot.js";
import type { LoadedUnitInfo, UnitIdentity } from "./types.js";

export type UnitState =
  | { readonly kind: "linked" }
  | { readonly kind: "faulted"; readonly retryAt: number | undefined }
  | { readonly kind: "detached"; readonly faulted: boolean }
  | { readonly kind: "finalized" };

export const LINKED: UnitState = { kind: "linked" };

/** Sandbox imports bound to one instance (WASI). */
export interface SandboxImports {
  wasi?: Wasi;
  /** The memory WASI reads and writes: the imported one, or the one the instance exports. */
  memory?: WebAssembly.Memory | undefined;
}

export interface LoadedUnit extends UnitIdentity {
  readonly loadedAt: Date;
  readonly policy: UnitPolicy;
  state: UnitState;
  /** Replaced when the unit is re-instantiated after a fault. */
  instance: WebAssembly.Instance;
  memory: WebAssembly.Memory | undefined;
  /** What host symbols know of the instance (its features, help, strings). */
  readonly importer: ImporterState;
  readonly sandbox: SandboxImports;
  readonly bindings: readonly Binding[];
  /** What the unit put in the global scope (nothing for a needed library). */
  readonly publicDefinitions: readonly Definition[];
  /** Its exports other than the protocol's and the runtime's, shown by lsmod -v. */
  readonly publicSymbols: readonly string[];
  readonly dependencies: ReadonlySet<LoadedUnit>;
  readonly dependents: Set<LoadedUnit>;
  /** The capabilities it uses, directly or through its providers (checked against its grant). */
  readonly needs: readonly CapabilityNeed[];
  engineModule: EngineModule | undefined;
  /** The directives applied to it (argv), replayed when it is re-instantiated. */
  readonly directives: Array<readonly string[]>;
  holders: number;
  /** Instances bound to its exports that may still run (not finalized): a DT_NEEDED reference count. */
  boundBy: number;
  /** An export was handed out by dlsym: code outside the host may still call the instance. */
  exportsEscaped: boolean;
  /** When its recent faults happened (ms), in any session, for the crash-loop limit. */
  faults: number[];
  /**
   * Its instance's state as sessions fork it (snapshot.ts), kept while no guest
   * code runs in the instance: the next session after a control, a directive
   * or a re-instantiation takes a new one.
   */
  snapshot: InstanceSnapshot | undefined;
}

/** A session's own instance of a loaded unit (session-instances.ts): what proftpd's session process holds. */
export interface SessionUnit {
  readonly template: LoadedUnit;
  readonly instance: WebAssembly.Instance;
  /** The memory the host gave it (from the pool), if its binary imports one. */
  readonly memory: WebAssembly.Memory | undefined;
  readonly importer: ImporterState;
  readonly sandbox: SandboxImports;
  /** Set once it trapped: when it may be made again from the session's fork (infinite: never). */
  retryAt: number | undefined;
}

/** Out of the engine: rmmod'ed, or released. */
export function isDetached(unit: LoadedUnit): boolean {
  return unit.state.kind === "detached" || unit.state.kind === "finalized";
}

/** Trapped or interrupted: never called again as it is. */
export function isFaulted(unit: LoadedUnit): boolean {
  return unit.state.kind === "faulted" || (unit.state.kind === "detached" && unit.state.faulted);
}

/** rmmod's transition: a faulted unit stays faulted (never re-instantiated once out of the engine). */
export function detachedState(unit: LoadedUnit): UnitState {
  return { kind: "detached", faulted: isFaulted(unit) };
}

/** The unit as `lsmod -v` shows it. */
export function unitInfo(unit: LoadedUnit): LoadedUnitInfo {
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
