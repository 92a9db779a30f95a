/**
 * A module's faults counted for the whole daemon (issue 15): one module set
 * means that a module its ModuleFaultPolicy unloads is unloaded in every
 * worker, and that a crash loop spread over sessions on several workers is
 * still a crash loop.
 *
 * Every worker's host (and the primary's reference host, whose instances run
 * the guest controls) reports each fault of a module instead of acting on it
 * alone (ModuleHost.reportFaultsTo): a worker over the synchronous channel, as
 * a `fault` call. The primary counts them with the fault supervisor's own rule
 * (countFault) and, when the policy says so, unloads the module everywhere the
 * way rmmod does (module-sync.ts, two phases, the journal), then logs the line
 * one process logs for it, once.
 *
 * A worker's report says where it stood in the module changes (its
 * generation, and how many of that generation's journaled changes it had
 * applied): a fault reported while an rmmod, an insmod or a SIGHUP was being
 * committed may come from the module's old copy, and counts only if no change
 * of that module, and no SIGHUP, came since.
 */
import type { DaemonLog } from "../daemon/generation.js";
import { ErrorCodes, isDsoError, messageOf } from "../errors.js";
import { dsoLogLines } from "../modules/dso-log.js";
import { countFault } from "../modules/fault-supervisor.js";
import type { ModuleFault } from "../modules/fault-supervisor.js";
import type { LoaderEvent } from "../modules/loader-events.js";
import type { ModuleHost } from "../modules/module-host.js";
import type { SyncChannel } from "./sync-channel.js";

/** Where a host stood in the module changes: its generation, and how many of that generation's changes it applied. */
export interface ChangePosition {
  readonly generation: number;
  readonly applied: number;
}

/** What the policy decided for a module: the fault-unloaded event one process reports. */
export type FaultUnload = Extract<LoaderEvent, { kind: "fault-unloaded" }>;

/** The faults of every module, by name, within their policies' windows. */
export class FaultCounts {
  readonly #faults = new Map<string, readonly number[]>();

  /** Counts one fault; what to do when the module's policy takes it out, else undefined. */
  record(fault: ModuleFault): FaultUnload | undefined {
    const count = countFault(this.#faults.get(fault.unit) ?? [], fault.at, fault.policy);
    if (!count.unload) {
      this.#faults.set(fault.unit, count.faults);
      return undefined;
    }
    // It leaves the engine: loaded again, it starts with no faults, as a new unit does in one process.
    this.#faults.delete(fault.unit);
    return {
      kind: "fault-unloaded",
      unit: fault.unit,
      crashLoop: count.crashLoop,
      faults: count.faults.length,
      windowMs: fault.policy.windowMs,
    };
  }

  /** The module was loaded or unloaded: a new unit, or none, with no faults yet. */
  forget(name: string): void {
    this.#faults.delete(name);
  }

  /** A new configuration generation: new units, no faults yet. */
  clear(): void {
    this.#faults.clear();
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/** The body of a worker's `fault` call. */
export function asModuleFault(body: unknown): ModuleFault {
  const policy = isRecord(body) ? body.policy : undefined;
  if (
    isRecord(body) &&
    typeof body.unit === "string" &&
    (body.kind === "template" || body.kind === "session") &&
    isTime(body.at) &&
    isRecord(policy) &&
    (policy.action === "reload" || policy.action === "unload") &&
    isTime(policy.maxFaults) &&
    isTime(policy.windowMs)
  ) {
    const { action, maxFaults, windowMs } = policy;
    return { unit: body.unit, kind: body.kind, at: body.at, policy: { action, maxFaults, windowMs } };
  }
  throw new Error("malformed fault on the session worker channel");
}

/** Where the report of a fault says the worker stood (reportFaults). */
export function asChangePosition(body: unknown): ChangePosition {
  const position = isRecord(body) ? body.position : undefined;
  if (isRecord(position) && isTime(position.generation) && isTime(position.applied)) {
    return { generation: position.generation, applied: position.applied };
  }
  throw new Error("malformed fault position on the session worker channel");
}

/** A worker's reporter: each fault of a module, told to the primary with where the worker stood (`position`). */
export function reportFaults(
  channel: Pick<SyncChannel, "call">,
  position: () => ChangePosition,
): (fault: ModuleFault) => void {
  return (fault) => {
    try {
      channel.call("fault", { ...fault, position: position() });
    } catch (error) {
      // The primary is gone: this worker ends with its channel, and nobody is left to count for.
      if (!isDsoError(error) || error.code !== ErrorCodes.WORKER_GONE) throw error;
    }
  };
}

export interface FaultSyncOptions {
  /** The current generation's reference host: what lsmod lists, and who knows a module's dependents. */
  readonly reference: () => ModuleHost;
  /** rmmod's two-phase path, for the unload a fault decided (ClusterModules.unloadModule). */
  readonly unload: (name: string, options: { fault: true }) => Promise<void>;
  /** Disables a module in every host when it cannot be unloaded (ClusterModules.disableModule). */
  readonly disable: (name: string) => Promise<void>;
  /** The primary's position in the module changes (ClusterModules.position). */
  readonly position: () => ChangePosition;
  readonly log: DaemonLog;
  readonly debugLevel: number;
}

/** The primary's side: counts the reported faults and unloads a module everywhere when its policy says so. */
export class FaultSync {
  readonly #options: FaultSyncOptions;
  readonly #counts = new FaultCounts();
  /** Per module changed in this generation: the number of its changes applied once its last change was. */
  readonly #changedAt = new Map<string, number>();

  constructor(options: FaultSyncOptions) {
    this.#options = options;
  }

  /** The synchronous channel's handler for a worker's `fault` call. */
  handlers(): Readonly<Record<string, (body: unknown) => null>> {
    return {
      fault: (body) => {
        void this.record(asModuleFault(body), asChangePosition(body));
        return null;
      },
    };
  }

  /**
   * Counts a fault of the reference host or of a worker (`at`: where the
   * worker stood); settles once what it decided is done and logged. A
   * worker's fault from before the module's last change, or from another
   * generation, is not counted: it came from a copy that is gone.
   */
  record(fault: ModuleFault, at?: ChangePosition): Promise<void> {
    if (at !== undefined && this.#stale(fault.unit, at)) return Promise.resolve();
    const verdict = this.#counts.record(fault);
    return verdict === undefined ? Promise.resolve() : this.#unload(verdict);
  }

  /** insmod, rmmod or a disable everywhere, just journaled: faults of the module's unit before it no longer count. */
  changed(name: string): void {
    this.#counts.forget(name);
    this.#changedAt.set(name, this.#options.position().applied);
  }

  /** A SIGHUP every worker committed: the faults of the old generation's units no longer count. */
  reloaded(): void {
    this.#counts.clear();
    this.#changedAt.clear();
  }

  #stale(unit: string, at: ChangePosition): boolean {
    return at.generation !== this.#options.position().generation || at.applied < (this.#changedAt.get(unit) ?? 0);
  }

  async #unload(verdict: FaultUnload): Promise<void> {
    const { unit } = verdict;
    try {
      await this.#options.unload(unit, { fault: true });
    } catch (error) {
      await this.#refused(unit, error);
      return;
    }
    // Logged once the module is out everywhere: whoever reads the line finds it gone from lsmod and new sessions.
    this.#emit(verdict);
  }

  /** As one process: a module others are bound to stays disabled, in every worker, and the log says so. */
  async #refused(unit: string, error: unknown): Promise<void> {
    const code = isDsoError(error) ? error.code : undefined;
    // Taken out already: by an earlier fault's unload, reported before it was done, or by rmmod.
    if (code === ErrorCodes.NOT_LOADED) return;
    if (code === ErrorCodes.HAS_DEPENDENTS) {
      try {
        await this.#options.disable(unit);
      } catch (failure) {
        this.#options.log("error", `${unit}: not disabled after its faults: ${messageOf(failure)}`);
        return;
      }
      const units = this.#options.reference().describe();
      const dependents = units.find((info) => info.name === unit)?.dependents ?? [];
      this.#emit({ kind: "fault-disabled", unit, dependents });
      return;
    }
    this.#options.log("error", `${unit}: not unloaded after its faults: ${messageOf(error)}`);
  }

  #emit(event: LoaderEvent): void {
    for (const { priority, message } of dsoLogLines(event, this.#options.debugLevel)) {
      this.#options.log(priority, message);
    }
  }
}
