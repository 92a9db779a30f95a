/**
 * What the sandbox allows each module or library: proftpd runs modules with the
 * full rights of the process; dsod gives each one limits and capabilities,
 * set by directives (docs/security.md) and looked up by unit name.
 */
import { Capabilities } from "../abi/host-symbols.js";
import type { Capability } from "../abi/host-symbols.js";
import { DEFAULT_LOAD_LIMITS } from "../wasm/limits.js";
import type { LoadLimitName, LoadLimits } from "../wasm/limits.js";

/** What happens to a module whose instance trapped or was interrupted. */
export type FaultAction = "reload" | "unload";

export interface FaultPolicy {
  readonly action: FaultAction;
  /** After this many faults within `windowMs`, a reloading module is unloaded instead (crash loop). */
  readonly maxFaults: number;
  readonly windowMs: number;
}

export interface Preopen {
  /** The directory as the guest sees it (`/data`). */
  readonly guestPath: string;
  readonly hostPath: string;
  readonly writable: boolean;
}

export interface UnitPolicy {
  /** The unit's memory cap in 64 KiB pages: its linear memory and its tables' maxima together (memory-cap.ts). */
  readonly memoryCapPages: number;
  /** CPU time (the calling thread's, not wall-clock time) one call into the guest may use, in ms; 0 turns the limit off. */
  readonly cpuBudgetMs: number;
  /** What its binary may declare (ModuleLoadLimits), checked before it is compiled. */
  readonly loadLimits: LoadLimits;
  readonly capabilities: ReadonlySet<Capability>;
  readonly fault: FaultPolicy;
  /** Directories the unit may reach through WASI; none unless granted. */
  readonly preopens: readonly Preopen[];
  /** The SHA-256 the file must have, when pinned. */
  readonly sha256: string | undefined;
}

/** 16 MiB. */
export const DEFAULT_MEMORY_CAP_PAGES = 256;
/** Well under a second: a handler that runs this long is stuck or hostile. */
export const DEFAULT_CPU_BUDGET_MS = 250;

/** What every unit may import without a grant. `session` and `filesystem` must be granted. */
export const DEFAULT_CAPABILITIES: ReadonlySet<Capability> = new Set([
  Capabilities.core,
  Capabilities.log,
  Capabilities.command,
  Capabilities.response,
  Capabilities.register,
]);

export const DEFAULT_FAULT_POLICY: FaultPolicy = { action: "reload", maxFaults: 5, windowMs: 60_000 };

export const DEFAULT_POLICY: UnitPolicy = {
  memoryCapPages: DEFAULT_MEMORY_CAP_PAGES,
  cpuBudgetMs: DEFAULT_CPU_BUDGET_MS,
  loadLimits: DEFAULT_LOAD_LIMITS,
  capabilities: DEFAULT_CAPABILITIES,
  fault: DEFAULT_FAULT_POLICY,
  preopens: [],
  sha256: undefined,
};

/** Settings made for one unit name or for all (`*`); unset fields fall back to `*`, then to the defaults. */
interface PolicySettings {
  memoryCapPages?: number;
  cpuBudgetMs?: number;
  loadLimits?: Partial<Record<LoadLimitName, number>>;
  grants?: Set<Capability>;
  fault?: FaultPolicy;
  preopens?: Preopen[];
  sha256?: string;
}

/**
 * The policies the config sets, by unit name (`mod_x.c`, `libfoo`) or for every
 * unit (`*`). Specific settings win over `*`; capability grants add up.
 */
export class PolicyTable {
  readonly #settings = new Map<string, PolicySettings>();

  #entry(name: string): PolicySettings {
    let entry = this.#settings.get(name);
    if (entry === undefined) {
      entry = {};
      this.#settings.set(name, entry);
    }
    return entry;
  }

  setMemoryCap(name: string, pages: number): void {
    this.#entry(name).memoryCapPages = pages;
  }

  setCpuBudget(name: string, ms: number): void {
    this.#entry(name).cpuBudgetMs = ms;
  }

  setLoadLimit(name: string, limit: LoadLimitName, value: number): void {
    const entry = this.#entry(name);
    entry.loadLimits = { ...entry.loadLimits, [limit]: value };
  }

  grant(name: string, capabilities: readonly Capability[]): void {
    const entry = this.#entry(name);
    entry.grants = new Set([...(entry.grants ?? []), ...capabilities]);
  }

  setFaultPolicy(name: string, fault: FaultPolicy): void {
    this.#entry(name).fault = fault;
  }

  addPreopen(name: string, preopen: Preopen): void {
    const entry = this.#entry(name);
    entry.preopens = [...(entry.preopens ?? []), preopen];
  }

  pin(name: string, sha256: string): void {
    this.#entry(name).sha256 = sha256;
  }

  resolve(name: string): UnitPolicy {
    const all = this.#settings.get("*") ?? {};
    const own = this.#settings.get(name) ?? {};
    return {
      memoryCapPages: own.memoryCapPages ?? all.memoryCapPages ?? DEFAULT_POLICY.memoryCapPages,
      cpuBudgetMs: own.cpuBudgetMs ?? all.cpuBudgetMs ?? DEFAULT_POLICY.cpuBudgetMs,
      loadLimits:
        own.loadLimits === undefined && all.loadLimits === undefined
          ? DEFAULT_LOAD_LIMITS
          : { ...DEFAULT_LOAD_LIMITS, ...all.loadLimits, ...own.loadLimits },
      capabilities: new Set([...DEFAULT_CAPABILITIES, ...(all.grants ?? []), ...(own.grants ?? [])]),
      fault: own.fault ?? all.fault ?? DEFAULT_POLICY.fault,
      preopens: [...(all.preopens ?? []), ...(own.preopens ?? [])],
      // A pin names one file's content: it never applies to every unit.
      sha256: own.sha256,
    };
  }
}
