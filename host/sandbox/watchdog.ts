/*
 * CPU budget for synchronous guest calls, in CPU time, enforced by V8 itself.
 *
 * Guests run on the daemon's main thread, so a guest stuck in a loop would
 * stall every session. V8 checks for interrupts at every wasm loop header and
 * function entry anyway, so the native addon (native/watchdog.cc, built by
 * node-gyp from binding.gyp at the package root) asks V8 to terminate the
 * call from a persistent watchdog thread when its budget runs out: the guest
 * pays nothing per iteration, unlike fuel counters (1.3x measured on CPU-bound guests),
 * and the call pays ~0.3 µs instead of vm `timeout`'s thread per call.
 *
 * The budget is the JS thread's own CPU time (its thread CPU clock), not
 * wall-clock time: a process paused by SIGSTOP, a machine loaded by other
 * processes, garbage collection on V8's helper threads, or a host call
 * blocked in the kernel never use up a guest's budget; a guest that computes
 * does. The watchdog looks at the thread's CPU clock when the budget has
 * passed in wall-clock time (the earliest it can be used up), and again as
 * often as there is budget left.
 *
 * What an interrupt leaves behind: nothing is rolled back. The instance's
 * memory and globals are as the guest left them mid-loop (an AssemblyScript
 * heap may be inconsistent; baselines.md §5), so the caller decides whether
 * the instance is still fit to call — the fault policy's job, not this one's.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { REBUILD_HINT, loadNativeAddon } from "../system/package.js";

/** The default budget of one guest call, as in the sandbox's CPU limit. */
export const DEFAULT_BUDGET_MS = 250;

/** `code` of the plain Error the addon throws for an interrupt (before callGuarded turns it into a DsoError). */
export const NATIVE_INTERRUPT_CODE = "ERR_GUEST_INTERRUPTED";

/** Counters of the watchdog in this thread (worker threads have their own). */
export interface WatchdogStats {
  /** Whether the watchdog thread exists yet (it starts on the first guarded call). */
  readonly threadStarted: boolean;
  /** Terminations requested, including any cancelled because the call returned just in time. */
  readonly interrupts: number;
  /** Times a call had to wake the watchdog thread (a futex syscall): once per burst of calls, not per call. */
  readonly notifies: number;
  /** Requests cancelled because the call had returned (or thrown) on its own just as its budget ran out: it keeps its result. */
  readonly lateFires: number;
  /** Times the watchdog thread woke up. */
  readonly wakeups: number;
  /** Guarded calls on the stack right now. */
  readonly depth: number;
  /** Times a call was past its budget in wall-clock time with CPU budget left (it was paused, preempted or blocked). */
  readonly cpuRechecks: number;
}

interface WatchdogAddon {
  callGuarded(fn: () => unknown, budgetMs: number): unknown;
  stats(): WatchdogStats;
  threadCpuTime(): number;
  setDisarmDelayForTesting(ns: number): void;
}

function isAddon(value: unknown): value is WatchdogAddon {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof Reflect.get(value, "callGuarded") === "function" &&
    typeof Reflect.get(value, "stats") === "function" &&
    typeof Reflect.get(value, "threadCpuTime") === "function"
  );
}

let loaded: WatchdogAddon | DsoError | undefined;

function loadAddon(): WatchdogAddon | DsoError {
  const loaded = loadNativeAddon("watchdog");
  if ("reason" in loaded) {
    return new DsoError(ErrorCodes.SANDBOX, `cannot enforce guest CPU budgets: unable to load ${loaded.file} (${REBUILD_HINT})`, {
      cause: loaded.reason,
    });
  }
  if (!isAddon(loaded.addon)) return new DsoError(ErrorCodes.SANDBOX, "cannot enforce guest CPU budgets: the watchdog addon has no callGuarded");
  return loaded.addon;
}

function addon(): WatchdogAddon {
  loaded ??= loadAddon();
  if (loaded instanceof DsoError) {
    throw loaded;
  }
  return loaded;
}

/**
 * Undefined when the watchdog addon loads, else the DsoError every
 * callGuarded would throw: the loader refuses a module with a CPU budget
 * before any of its code runs, instead of failing at its first call.
 */
export function watchdogUnavailable(): DsoError | undefined {
  loaded ??= loadAddon();
  return loaded instanceof DsoError ? loaded : undefined;
}

function isNativeInterrupt(error: unknown): error is Error {
  return error instanceof Error && Reflect.get(error, "code") === NATIVE_INTERRUPT_CODE;
}

/**
 * Calls `fn()` synchronously and returns its result, interrupting it once it
 * has used `budgetMs` of the thread's CPU time (a positive number, at most
 * 2^31-1); the interrupt throws a DsoError with code DSO_ERR_INTERRUPTED.
 * Anything `fn` throws (a trap, a stack overflow RangeError, a host error)
 * propagates unchanged, the same object.
 *
 * Nesting: when `fn` (through a host import) makes another guarded call, the
 * outermost call's deadline bounds the whole tree and inner budgets are
 * ignored. An interrupt unwinds every guest and host frame up to the
 * outermost call, uncatchably (JS catch/finally blocks in between do not
 * run), and only the outermost call throws the DsoError; so no guest can
 * catch its own interrupt and carry on.
 *
 * Termination requested by someone else (worker.terminate()) is not
 * swallowed: it keeps unwinding. Time spent where V8 does not check for
 * interrupts (a synchronous compile of a huge module, a long native call in a
 * host import) is not cut short; the interrupt lands at the next check.
 *
 * Throws a DsoError (DSO_ERR_INSTANTIATE) if the addon is not built.
 */
export function callGuarded<T>(fn: () => T, budgetMs: number): T {
  const native = addon();
  try {
    return native.callGuarded(fn, budgetMs) as T;
  } catch (error) {
    if (isNativeInterrupt(error)) {
      throw new DsoError(ErrorCodes.INTERRUPTED, `guest call ran past its ${budgetMs} ms CPU budget and was interrupted`, {
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Tests only: busy-waits `ns` between fn's return and the disarm of every
 * outermost call, so a test can make the budget run out in that window (0 turns it off).
 */
export function setDisarmDelayForTesting(ns: number): void {
  addon().setDisarmDelayForTesting(ns);
}

/**
 * The calling thread's CPU time in ms (user and system), what CPU budgets
 * count: how a session's command is charged (host/ftp/scheduler.ts). Without
 * the addon, the process's CPU time, which also counts V8's and libuv's
 * helper threads.
 */
export function threadCpuTimeMs(): number {
  loaded ??= loadAddon();
  if (loaded instanceof DsoError) {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  return loaded.threadCpuTime();
}

/** The watchdog's counters for this thread; throws like callGuarded if the addon is not built. */
export function watchdogStats(): WatchdogStats {
  return addon().stats();
}
