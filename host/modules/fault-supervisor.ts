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
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { callGuarded } from "../sandbox/watchdog.js";
import { describeTrap } from "./instantiate.js";
import type { LoaderEvent } from "./loader-events.js";
import type { UnitPolicy } from "./policy.js";
import type { SessionInstances } from "./session-instances.js";
import { isFaulted } from "./unit.js";
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

  constructor(context: FaultContext) {
    this.#context = context;
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
    const policy = unit.policy.fault;
    const faults = [...unit.faults.filter((t) => now - t < policy.windowMs), now];
    if (policy.action === "reload" && faults.length < policy.maxFaults) {
      unit.faults = faults;
      instances.fault(own, now + backoff(faults.length));
      return;
    }
    instances.fault(own, Number.POSITIVE_INFINITY);
    // The template never trapped; it is taken out as the policy says, with the fault counted once.
    this.#onFault(unit, now);
  }

  #onFault(unit: LoadedUnit, now = this.#context.now()): void {
    const policy = unit.policy.fault;
    unit.faults = [...unit.faults.filter((t) => now - t < policy.windowMs), now];
    if (unit.state.kind === "detached") {
      // Out of the engine already: never re-instantiated.
      unit.state = { kind: "detached", faulted: true };
      return;
    }
    const crashLoop = unit.faults.length >= policy.maxFaults;
    if (policy.action === "reload" && !crashLoop) {
      // Exponential backoff between reloads: 100 ms, 200 ms, ... capped at 30 s.
      unit.state = {
        kind: "faulted",
        retryAt: now + backoff(unit.faults.length),
      };
      return;
    }
    unit.state = { kind: "faulted", retryAt: undefined };
    if (unit.kind !== "module") return;
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
      windowMs: policy.windowMs,
    });
    this.#context.detach(unit);
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
