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
import { isFaulted } from "./unit.js";
import type { LoadedUnit } from "./unit.js";

/** The first reload waits this long; each further fault doubles it, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;

export interface FaultContext {
  /** Milliseconds, monotonic enough for backoffs (Date.now in production). */
  now(): number;
  /** A faulted unit's fresh instance (instantiate.ts reinstantiate). */
  reinstantiate(unit: LoadedUnit): void;
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
    if (unit.state.kind === "finalized") {
      // A handler kept by an embedder past rmmod: its instance's memory may belong to another module now.
      throw new DsoError(ErrorCodes.NOT_LOADED, `${unit.name}: unloaded (${entryPoint} not called)`);
    }
    if (isFaulted(unit)) this.#retry(unit, entryPoint);
    // Looked up after a possible re-instantiation: never a function of the faulted instance.
    const fn = unit.instance.exports[entryPoint] as () => number;
    const budget = unit.policy.cpuBudgetMs;
    const outer = this.#activeCommand;
    if (command !== undefined) this.#activeCommand = command;
    try {
      // The native watchdog interrupts V8 itself past the budget: guests pay nothing per iteration.
      return budget > 0 ? callGuarded(fn, budget) : fn();
    } catch (cause) {
      const code = isDsoError(cause) ? cause.code : ErrorCodes.GUEST_TRAP;
      const reason = describeTrap(cause);
      this.#context.report({ kind: "fault", unit: unit.name, entryPoint, reason });
      this.#onFault(unit);
      throw new DsoError(code, `${unit.name}: fault in ${entryPoint}: ${reason}`, { cause });
    } finally {
      this.#activeCommand = outer;
    }
  }

  #onFault(unit: LoadedUnit): void {
    const now = this.#context.now();
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
        retryAt: now + Math.min(FIRST_BACKOFF_MS * 2 ** (unit.faults.length - 1), MAX_BACKOFF_MS),
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
