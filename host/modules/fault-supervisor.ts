/**
 * Every call into guest code goes through here. A trap (or an interrupt) is
 * contained: the call fails with a DsoError naming module, entry point and
 * reason, the fault is reported, and the instance, which may be half-way through
 * a change of its memory, is never called again: per its fault policy it is
 * re-instantiated (after a backoff that doubles with each fault) or unloaded,
 * and a crash loop unloads it.
 *
 * Time comes from an injected clock, so backoffs and crash-loop windows are
 * tested without waiting.
 *
 * With session workers (issue 15) a module's faults are counted for the whole
 * daemon by the primary (host/cluster/fault-sync.ts, with countFault below):
 * a host told to escalate reports each fault of a module there and never takes
 * a module out on its own; the primary unloads it everywhere.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { callGuarded } from "../sandbox/watchdog.js";
import { describeTrap } from "./instantiate.js";
import type { LoaderEvent } from "./loader-events.js";
import type { FaultPolicy, UnitPolicy } from "./policy.js";
import type { SessionInstances } from "./session-instances.js";
import { isDetached, isFaulted } from "./unit.js";
import type { LoadedUnit, SessionUnit } from "./unit.js";

/** The first reload waits this long; each further fault doubles it, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;

/** A handler kept by an embedder past rmmod: its instance's memory may belong to another module now. */
function refuseFinalized(unit: LoadedUnit, entryPoint: string): void {
  if (unit.state.kind === "finalized") {
    throw new DsoError(ErrorCodes.NOT_LOADED, `${unit.name}: unloaded (${entryPoint} not called)`);
  }
}

/** The wait before the `faults`-th reload. */
function backoff(faults: number): number {
  return Math.min(FIRST_BACKOFF_MS * 2 ** (faults - 1), MAX_BACKOFF_MS);
}

/** One more fault of a unit: its faults within the policy's window, this one last, and what the policy says. */
export interface FaultCount {
  readonly faults: number[];
  /** FAULTS faults within SECONDS. */
  readonly crashLoop: boolean;
  /** The unit is taken out: ModuleFaultPolicy unload, or a crash loop. */
  readonly unload: boolean;
}

/** Counts a fault at `now` against the unit's earlier fault times (ModuleFaultPolicy); pure. */
export function countFault(earlier: readonly number[], now: number, policy: FaultPolicy): FaultCount {
  const faults = [...earlier.filter((t) => now - t < policy.windowMs), now];
  const crashLoop = faults.length >= policy.maxFaults;
  return { faults, crashLoop, unload: policy.action === "unload" || crashLoop };
}

/** A module's fault as a host that escalates reports it: enough for the primary to count it as this host would. */
export interface ModuleFault {
  readonly unit: string;
  /** In the daemon's instance of the module (a control, a directive, `ModuleInstances shared`), or a session's own. */
  readonly kind: "template" | "session";
  /** When it faulted, by the host's clock. */
  readonly at: number;
  readonly policy: FaultPolicy;
}

export interface FaultContext {
  /** Milliseconds, monotonic enough for backoffs (Date.now in production). */
  now(): number;
  /** A faulted unit's fresh instance (instantiate.ts reinstantiate). */
  reinstantiate(unit: LoadedUnit): void;
  /** Guest code is about to run in the daemon's instance of `unit`: a snapshot of it sessions fork from is stale. */
  templateRan(unit: LoadedUnit): void;
  /** Takes a unit out of the engine, as rmmod does. */
  detach(unit: LoadedUnit): void;
  /** What happened, as data (loader-events.ts). */
  report(event: LoaderEvent): void;
}

export class FaultSupervisor {
  readonly #context: FaultContext;
  /**
   * The command of the innermost handler running now: what host symbols see.
   * Each call keeps the one it replaced and puts it back, so nested calls
   * keep their stack on the call stack; an interrupt, which skips the finally
   * blocks of the inner calls it unwinds (sandbox/watchdog.ts), leaves nothing
   * stale once the outermost call's finally has run.
   */
  #activeCommand: ActiveCommand | undefined;
  /** Where a module's faults are counted when not here (session workers); undefined in one process. */
  #escalate: ((fault: ModuleFault) => void) | undefined;

  constructor(context: FaultContext) {
    this.#context = context;
  }

  /**
   * From now on each fault of a module is reported to `report`, which decides
   * for the whole daemon; here a module the policy takes out is only disabled.
   */
  escalateTo(report: (fault: ModuleFault) => void): void {
    this.#escalate = report;
  }

  /** The command host symbols act on (pr_cmd_arg, pr_response_add...). */
  activeCommand(): ActiveCommand | undefined {
    return this.#activeCommand;
  }

  /** Calls `entryPoint` of the unit's instance under its CPU budget, with `command` active. */
  invoke(unit: LoadedUnit, entryPoint: string, command: ActiveCommand | undefined): number {
    refuseFinalized(unit, entryPoint);
    if (isFaulted(unit)) this.#retry(unit, entryPoint);
    // Guest code runs in the daemon's instance: the state sessions fork from changes (snapshot.ts).
    this.#context.templateRan(unit);
    try {
      // Looked up after a possible re-instantiation: never a function of the faulted instance.
      return this.#call(unit.instance, unit.policy, entryPoint, command);
    } catch (cause) {
      throw this.#fault(unit, entryPoint, cause, () => this.#onFault(unit));
    }
  }

  /**
   * Calls `entryPoint` in the session's own instance of the unit, made on
   * first use. A trap faults that instance only, to be made again from the
   * session's fork after its backoff; the fault still counts against the
   * module's crash-loop limit, which unloads it for every session.
   */
  invokeIn(
    instances: SessionInstances,
    unit: LoadedUnit,
    entryPoint: string,
    command: ActiveCommand | undefined,
  ): number {
    refuseFinalized(unit, entryPoint);
    if (isFaulted(unit) && (unit.state.kind !== "faulted" || unit.state.retryAt === undefined)) {
      throw new DsoError(ErrorCodes.DISABLED, `${unit.name}: disabled after a fault (${entryPoint} not called)`);
    }
    const own = instances.instanceOf(unit, entryPoint);
    try {
      return this.#call(own.instance, unit.policy, entryPoint, command);
    } catch (cause) {
      throw this.#fault(unit, entryPoint, cause, () => this.#onSessionFault(instances, own));
    }
  }

  /** Runs guest code of a session's instance with `command` active; a trap is the caller's to handle. */
  run(own: SessionUnit, entryPoint: string, command: ActiveCommand | undefined): number {
    return this.#call(own.instance, own.template.policy, entryPoint, command);
  }

  #call(instance: WebAssembly.Instance, policy: UnitPolicy, entryPoint: string, command: ActiveCommand | undefined) {
    const fn = instance.exports[entryPoint] as () => number;
    const budget = policy.cpuBudgetMs;
    const outer = this.#activeCommand;
    if (command !== undefined) this.#activeCommand = command;
    try {
      // The native watchdog interrupts V8 itself past the budget: guests pay nothing per iteration.
      return budget > 0 ? callGuarded(fn, budget) : fn();
    } finally {
      this.#activeCommand = outer;
    }
  }

  /** A trap or an interrupt: reported, acted on, and turned into the DsoError the caller throws. */
  #fault(unit: LoadedUnit, entryPoint: string, cause: unknown, act: () => void): DsoError {
    const code = isDsoError(cause) ? cause.code : ErrorCodes.GUEST_TRAP;
    const reason = describeTrap(cause);
    this.#context.report({ kind: "fault", unit: unit.name, entryPoint, reason });
    act();
    return new DsoError(code, `${unit.name}: fault in ${entryPoint}: ${reason}`, { cause });
  }

  /** Counts a session instance's fault against its module; a crash loop (or the unload policy) acts module-wide. */
  #onSessionFault(instances: SessionInstances, own: SessionUnit): void {
    const unit = own.template;
    const now = this.#context.now();
    const count = countFault(unit.faults, now, unit.policy.fault);
    if (!count.unload) {
      unit.faults = count.faults;
      instances.fault(own, now + backoff(count.faults.length));
      this.#report(unit, "session", now);
      return;
    }
    instances.fault(own, Number.POSITIVE_INFINITY);
    // The template never trapped; it is taken out as the policy says, with the fault counted once.
    this.#onFault(unit, now, "session");
  }

  #onFault(unit: LoadedUnit, now = this.#context.now(), kind: ModuleFault["kind"] = "template"): void {
    const { faults, crashLoop, unload } = countFault(unit.faults, now, unit.policy.fault);
    unit.faults = faults;
    if (unit.state.kind === "detached") {
      // Out of the engine already: never re-instantiated.
      unit.state = { kind: "detached", faulted: true };
      return;
    }
    // Exponential backoff between reloads: 100 ms, 200 ms, ... capped at 30 s.
    unit.state = { kind: "faulted", retryAt: unload ? undefined : now + backoff(unit.faults.length) };
    this.#report(unit, kind, now);
    if (!unload) return;
    // The primary decides for every worker: one that unloaded on its own would serve another module set.
    if (unit.kind !== "module" || this.#escalate !== undefined) return;
    if (unit.dependents.size > 0) {
      this.#context.report({
        kind: "fault-disabled",
        unit: unit.name,
        dependents: [...unit.dependents].map((d) => d.name),
      });
      return;
    }
    this.#context.report({
      kind: "fault-unloaded",
      unit: unit.name,
      crashLoop,
      faults: unit.faults.length,
      windowMs: unit.policy.fault.windowMs,
    });
    this.#context.detach(unit);
  }

  /** Tells the daemon-wide count of a module's fault (session workers); a module rmmod took out is not counted. */
  #report(unit: LoadedUnit, kind: ModuleFault["kind"], at: number): void {
    if (this.#escalate === undefined || unit.kind !== "module" || isDetached(unit)) return;
    this.#escalate({ unit: unit.name, kind, at, policy: unit.policy.fault });
  }

  /** Re-instantiates a faulted unit when its backoff has passed; otherwise the call is refused. */
  #retry(unit: LoadedUnit, entryPoint: string): void {
    const now = this.#context.now();
    const { state } = unit;
    const retryAt = state.kind === "faulted" && unit.dependents.size === 0 ? state.retryAt : undefined;
    if (retryAt === undefined || now < retryAt) {
      const when = retryAt === undefined ? "" : `, retried in ${retryAt - now} ms`;
      throw new DsoError(ErrorCodes.DISABLED, `${unit.name}: disabled after a fault (${entryPoint} not called${when})`);
    }
    this.#context.report({ kind: "reinstantiating", unit: unit.name });
    this.#context.reinstantiate(unit);
  }
}
