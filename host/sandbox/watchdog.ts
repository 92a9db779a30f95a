/*
 * CPU budget for synchronous guest calls, in CPU time, enforced by V8 itself.
 *
 * Guests run on the daemon's main thread, so a guest stuck in a loop would
 * stall every session. V8 checks for interrupts at every wasm loop header and
 * function entry anyway, so the native addon (native/watchdog.cc, on
 * Node-API: one build for every Node line, built by node-gyp from
 * binding.gyp at the package root) asks V8 to terminate the call from a
 * persistent watchdog thread when its budget runs out: the guest pays nothing
 * per iteration, unlike fuel counters (1.3x measured on CPU-bound guests),
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
 * Without the addon (not built: no compiler at install; turned off with
 * WASM_DSO_DISABLE_ADDONS=watchdog; or a Node that does not export the V8
 * functions it needs), guarded calls run under node:vm's `timeout`, Node's own
 * watchdog: budgets are then wall-clock time and a call costs ~30-50 µs
 * (docs/security.md, "Without the addon"). DSOD_WATCHDOG=native refuses that
 * fallback: a module with a CPU budget is then refused instead.
 *
 * What an interrupt leaves behind: nothing is rolled back. The instance's
 * memory and globals are as the guest left them mid-loop (an AssemblyScript
 * heap may be mid-allocation, its free lists half updated), so the caller decides whether
 * the instance is still fit to call — the fault policy's job, not this one's.
 */
import vm from "node:vm";
import { DsoError, ErrorCodes } from "../errors.js";
import { loadNativeAddon } from "../system/package.js";

/** The default budget of one guest call, as in the sandbox's CPU limit. */
export const DEFAULT_BUDGET_MS = 250;

/** `code` of the plain Error the addon throws for an interrupt (before callGuarded turns it into a DsoError). */
export const NATIVE_INTERRUPT_CODE = "ERR_GUEST_INTERRUPTED";

/** `code` of the error node:vm throws when its timeout ends a call (the fallback's interrupt). */
export const VM_INTERRUPT_CODE = "ERR_SCRIPT_EXECUTION_TIMEOUT";

/** Set to `native`, budgets are enforced by the addon or not at all (no node:vm fallback). Read here only. */
export const WATCHDOG_ENV = "DSOD_WATCHDOG";

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

/** How this process enforces budgets: the addon, or node:vm and why. */
export type WatchdogMode = { readonly kind: "native" } | { readonly kind: "vm"; readonly reason: string };

interface WatchdogAddon {
  callGuarded(fn: () => unknown, budgetMs: number): unknown;
  stats(): WatchdogStats;
  threadCpuTime(): number;
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

type Engine =
  | { readonly kind: "native"; readonly addon: WatchdogAddon }
  | { readonly kind: "vm"; readonly reason: string; readonly missing?: DsoError };

function selectEngine(setting: string | undefined): Engine {
  const loaded = loadNativeAddon("watchdog");
  if ("addon" in loaded && isAddon(loaded.addon)) return { kind: "native", addon: loaded.addon };
  const reason = "message" in loaded ? loaded.message : "the watchdog addon has no callGuarded";
  if (setting !== "native") return { kind: "vm", reason };
  const message = `cannot enforce guest CPU budgets (${WATCHDOG_ENV}=native): ${reason}`;
  const missing = new DsoError(ErrorCodes.SANDBOX, message, { cause: "reason" in loaded ? loaded.reason : undefined });
  return { kind: "vm", reason, missing };
}

let engine: Engine | undefined;

function current(): Engine {
  engine ??= selectEngine(process.env[WATCHDOG_ENV]);
  return engine;
}

/** Native, or node:vm with the reason. */
export function watchdogMode(): WatchdogMode {
  const e = current();
  return e.kind === "native" ? { kind: "native" } : { kind: "vm", reason: e.reason };
}

/**
 * What the daemon says once when budgets are degraded (after its
 * `mod_dso/0.5: ` prefix); undefined with the addon, or when nothing runs
 * degraded because DSOD_WATCHDOG=native refuses the budgets instead.
 */
export function watchdogNotice(): string | undefined {
  const e = current();
  if (e.kind === "native" || e.missing !== undefined) return undefined;
  return `CPU budgets enforced in wall-clock time by node:vm (${e.reason})`;
}

/**
 * Undefined when guarded calls can run (the addon, or its node:vm fallback),
 * else the DsoError every callGuarded would throw (DSOD_WATCHDOG=native
 * without the addon): the loader refuses a module with a CPU budget before
 * any of its code runs, instead of failing at its first call.
 */
export function watchdogUnavailable(): DsoError | undefined {
  const e = current();
  return e.kind === "vm" ? e.missing : undefined;
}

function isNativeInterrupt(error: unknown): error is Error {
  return error instanceof Error && Reflect.get(error, "code") === NATIVE_INTERRUPT_CODE;
}

// --- The node:vm fallback ------------------------------------------------------

/**
 * What the fallback's script reads and writes: fn is set for each outermost
 * call, so no global of the host's holds it. The script catches whatever fn
 * throws and hands it back, so the one error that leaves runInContext with
 * vm's timeout code is this call's own timeout (a node:vm timeout nested
 * inside fn is an exception fn threw); termination is uncatchable.
 */
interface VmBox {
  fn: (() => unknown) | undefined;
  value: unknown;
  threw: boolean;
}

let vmRunner: { readonly script: vm.Script; readonly context: vm.Context; readonly box: VmBox } | undefined;
/** Guarded calls on the stack in the fallback; an interrupt skips every decrement but the outermost call's reset. */
let vmDepth = 0;

/** The addon's argument checks, with its messages, so both engines refuse the same calls the same way. */
function checkArguments(fn: unknown, budgetMs: unknown): void {
  if (typeof fn !== "function") throw new TypeError("callGuarded: fn must be a function");
  if (typeof budgetMs !== "number") throw new TypeError("callGuarded: budgetMs must be a number");
  if (!(budgetMs > 0 && budgetMs <= 2147483647)) {
    throw new RangeError("callGuarded: budgetMs must be > 0 and <= 2147483647");
  }
}

function vmRunnerOnce(): { readonly script: vm.Script; readonly context: vm.Context; readonly box: VmBox } {
  if (vmRunner === undefined) {
    const box: VmBox = { fn: undefined, value: undefined, threw: false };
    const source = "try { box.value = (0, box.fn)(); box.threw = false } catch (e) { box.value = e; box.threw = true }";
    const script = new vm.Script(source, { filename: "dso-watchdog" });
    vmRunner = { script, context: vm.createContext({ box }), box };
  }
  return vmRunner;
}

/**
 * fn() under node:vm's timeout. Nested calls call fn directly: the outermost
 * deadline rules, and Node's watchdog terminates everything down to the
 * outermost script, uncatchably, as the addon does.
 */
function callInVm<T>(fn: () => T, budgetMs: number): T {
  checkArguments(fn, budgetMs);
  if (vmDepth > 0) {
    vmDepth++;
    try {
      return fn();
    } finally {
      vmDepth--;
    }
  }
  const { script, context, box } = vmRunnerOnce();
  box.fn = fn;
  vmDepth = 1;
  try {
    // vm counts whole milliseconds and refuses 0.
    script.runInContext(context, { timeout: Math.ceil(budgetMs), displayErrors: false });
  } catch (error) {
    // vm's Error is of the script's context, not this one's: recognised by its code.
    const code: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "code") : undefined;
    if (code === VM_INTERRUPT_CODE) {
      throw new DsoError(
        ErrorCodes.INTERRUPTED,
        `guest call ran past its ${budgetMs} ms CPU budget, counted in wall-clock time (node:vm), and was interrupted`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    box.fn = undefined;
    vmDepth = 0;
  }
  const { value, threw } = box;
  box.value = undefined;
  if (threw) throw value;
  return value as T;
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
 * Without the addon the same holds in wall-clock time, through node:vm.
 * Throws a DsoError (DSO_ERR_SANDBOX) only with DSOD_WATCHDOG=native and no addon.
 */
export function callGuarded<T>(fn: () => T, budgetMs: number): T {
  const e = current();
  if (e.kind === "vm") {
    if (e.missing !== undefined) throw e.missing;
    return callInVm(fn, budgetMs);
  }
  try {
    return e.addon.callGuarded(fn, budgetMs) as T;
  } catch (error) {
    if (isNativeInterrupt(error)) {
      const message = `guest call ran past its ${budgetMs} ms CPU budget and was interrupted`;
      throw new DsoError(ErrorCodes.INTERRUPTED, message, { cause: error });
    }
    throw error;
  }
}

/**
 * The calling thread's CPU time in ms (user and system), what CPU budgets
 * count: how a session's command is charged (host/ftp/scheduler.ts). Without
 * the addon, the process's CPU time, which also counts V8's and libuv's
 * helper threads.
 */
export function threadCpuTimeMs(): number {
  const e = current();
  if (e.kind === "native") return e.addon.threadCpuTime();
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** The watchdog's counters for this thread; throws a DsoError (DSO_ERR_SANDBOX) when the addon is not in use. */
export function watchdogStats(): WatchdogStats {
  const e = current();
  if (e.kind === "native") return e.addon.stats();
  throw e.missing ?? new DsoError(ErrorCodes.SANDBOX, `no watchdog counters: node:vm enforces budgets (${e.reason})`);
}
