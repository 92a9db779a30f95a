import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { Worker } from "node:worker_threads";
import { beforeAll, describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import {
  DEFAULT_BUDGET_MS,
  NATIVE_INTERRUPT_CODE,
  callGuarded,
  threadCpuTimeMs,
  watchdogMode,
  watchdogNotice,
  watchdogStats,
  watchdogUnavailable,
} from "../../../host/sandbox/watchdog.js";
import { busyWait, compileGuests, instantiateGuest, thrown } from "./guests.js";
import type { Guest } from "./guests.js";
import { withDisarmDelay } from "./native-addon.js";

let guestModule: WebAssembly.Module;
let startLoopModule: WebAssembly.Module;

/** A fresh instance whose `env.host` import runs whatever the test sets in `host.impl`. */
function instantiate(): Guest {
  return instantiateGuest(guestModule);
}

beforeAll(async () => {
  ({ guestModule, startLoopModule } = await compileGuests());
});

function expectInterrupt(error: unknown): asserts error is DsoError {
  expect(error).toBeInstanceOf(DsoError);
  expect((error as DsoError).code).toBe(ErrorCodes.INTERRUPTED);
  expect(((error as DsoError).cause as { code?: unknown }).code).toBe(NATIVE_INTERRUPT_CODE);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe("callGuarded (native watchdog)", () => {
  it("loads the addon", () => {
    expect(watchdogMode()).toEqual({ kind: "native" });
    expect(watchdogNotice()).toBeUndefined();
    expect(watchdogUnavailable()).toBeUndefined();
    expect(DEFAULT_BUDGET_MS).toBe(250);
  });

  it("returns the value of a call that ends within budget", () => {
    const { exports } = instantiate();
    expect(callGuarded(() => exports.add(40, 2), 250)).toBe(42);
    expect(callGuarded(() => "not a number", 250)).toBe("not a number");
    expect(callGuarded(() => undefined, 250)).toBeUndefined();
  });

  it("interrupts an infinite wasm loop near its budget of CPU time", () => {
    const { exports } = instantiate();
    const budget = 100;
    const before = watchdogStats().interrupts;
    const start = threadCpuTimeMs();
    const error = thrown(() => callGuarded(() => exports.spin(), budget));
    const used = threadCpuTimeMs() - start;
    expectInterrupt(error);
    expect(error.message).toContain(`${budget} ms CPU budget`);
    expect(used).toBeGreaterThanOrEqual(budget - 1);
    expect(used).toBeLessThan(budget + 100);
    expect(watchdogStats().interrupts).toBe(before + 1);
    // The loop really ran (it is not an up-front refusal), and left its state as is.
    expect(exports.counter()).toBeGreaterThan(0);
  });

  it("does not count time the thread spends blocked: a guest paused past its budget keeps its result", () => {
    const { exports, host } = instantiate();
    // The host import blocks the thread for 300 ms (as a SIGSTOP or a slow read would) without using CPU.
    const cell = new Int32Array(new SharedArrayBuffer(4));
    host.impl = (): number => {
      Atomics.wait(cell, 0, 0, 300);
      return 41;
    };
    const before = watchdogStats();
    const start = performance.now();
    expect(callGuarded(() => exports.callHost(), 100)).toBe(42);
    expect(performance.now() - start).toBeGreaterThanOrEqual(299);
    const after = watchdogStats();
    expect(after.interrupts).toBe(before.interrupts);
    // The watchdog looked at the CPU clock when 100 ms had passed, found budget left, and looked again.
    expect(after.cpuRechecks).toBeGreaterThan(before.cpuRechecks);
  });

  it("counts CPU used around a pause: a guest that blocks, then spins, is interrupted once it has used its budget", () => {
    const { exports, host } = instantiate();
    const cell = new Int32Array(new SharedArrayBuffer(4));
    host.impl = (): number => {
      Atomics.wait(cell, 0, 0, 150);
      exports.spin();
      return 0;
    };
    const start = threadCpuTimeMs();
    const wall = performance.now();
    expectInterrupt(thrown(() => callGuarded(() => exports.callHost(), 100)));
    const used = threadCpuTimeMs() - start;
    expect(performance.now() - wall).toBeGreaterThanOrEqual(249);
    expect(used).toBeGreaterThanOrEqual(99);
    expect(used).toBeLessThan(200);
  });

  it("reads the thread's CPU time, which grows with work and not with waiting", () => {
    const start = threadCpuTimeMs();
    let spins = 0;
    // Ends only if the clock grows with work.
    while (threadCpuTimeMs() - start < 30) spins++;
    const worked = threadCpuTimeMs();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    expect(threadCpuTimeMs() - worked).toBeLessThan(10);
    expect(spins).toBeGreaterThan(0);
  });

  it("interrupts a JS loop too (host code called by a guest is bounded the same way)", () => {
    const error = thrown(() =>
      callGuarded(() => {
        for (;;) busyWait(1);
      }, 30),
    );
    expectInterrupt(error);
  });

  it("lets a stack overflow in wasm propagate as RangeError, not as an interrupt", () => {
    const { exports } = instantiate();
    const before = watchdogStats().interrupts;
    const error = thrown(() => callGuarded(() => exports.recurse(0), 10_000));
    expect(error).toBeInstanceOf(RangeError);
    expect(error).not.toBeInstanceOf(DsoError);
    expect(watchdogStats().interrupts).toBe(before);
  });

  it("propagates a JS exception from fn unchanged (the same object)", () => {
    const original = new TypeError("host import failed");
    const error = thrown(() =>
      callGuarded(() => {
        throw original;
      }, 250),
    );
    expect(error).toBe(original);
    // A thrown non-Error value too.
    expect(
      thrown(() =>
        callGuarded(() => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- a guest's host call may throw any value
          throw 7;
        }, 250),
      ),
    ).toBe(7);
  });

  it("propagates a wasm trap unchanged", () => {
    const { exports } = instantiate();
    expect(thrown(() => callGuarded(() => exports.trap(), 250))).toBeInstanceOf(WebAssembly.RuntimeError);
  });

  it("leaves JS running normally after an interrupt, and the instance callable", async () => {
    const { exports } = instantiate();
    expectInterrupt(thrown(() => callGuarded(() => exports.spin(), 20)));
    // A following computation, unguarded.
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) sum += i;
    expect(sum).toBe(499_999_500_000);
    // A Promise and a timer.
    await expect(Promise.resolve(5).then((v) => v * 2)).resolves.toBe(10);
    const fired = await new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 5));
    expect(fired).toBe(true);
    // The same WebAssembly.Instance, a different export, guarded and not.
    expect(exports.add(2, 3)).toBe(5);
    expect(callGuarded(() => exports.count(1000), 250)).toBe(1000);
    // And the interrupted export again: interrupted again, not broken.
    expectInterrupt(thrown(() => callGuarded(() => exports.spin(), 20)));
    expect(exports.add(1, 1)).toBe(2);
  });

  it("interrupts an instantiation whose start function never returns", () => {
    // CPU time, not wall-clock time: on a loaded machine the 50 ms of CPU take longer to use.
    const start = threadCpuTimeMs();
    const error = thrown(() => callGuarded(() => new WebAssembly.Instance(startLoopModule, {}), 50));
    expectInterrupt(error);
    expect(threadCpuTimeMs() - start).toBeLessThan(150);
  });

  it("runs a burst of 100k guarded calls without spurious interrupts or a syscall per call", () => {
    const { exports } = instantiate();
    const before = watchdogStats();
    const call = (): number => exports.add(1, 2);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) sum += callGuarded(call, 250);
    expect(sum).toBe(300_000);
    const after = watchdogStats();
    expect(after.interrupts).toBe(before.interrupts);
    expect(after.depth).toBe(0);
    // The watchdog is woken once per burst (or per linger period), not per call.
    expect(after.notifies - before.notifies).toBeLessThan(100);
  });

  it("rejects a non-function fn and an invalid budget", () => {
    expect(thrown(() => callGuarded(42 as unknown as () => number, 250))).toBeInstanceOf(TypeError);
    for (const budget of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(thrown(() => callGuarded(() => 1, budget))).toBeInstanceOf(RangeError);
    }
    expect(thrown(() => callGuarded(() => 1, "250" as unknown as number))).toBeInstanceOf(TypeError);
    // A fractional budget is accepted, not rounded down to an invalid 0.
    expect(callGuarded(() => 1, 250.5)).toBe(1);
    // Under a millisecond too: on a loaded machine the call may well outrun it, so either
    // outcome of a run is fine; what must never happen is a refusal of the budget itself.
    let outcome: unknown;
    try {
      outcome = callGuarded(() => 1, 0.5);
    } catch (error) {
      outcome = error;
    }
    if (outcome !== 1) expectInterrupt(outcome);
  });

  it("does not swallow a timeout of node:vm nested inside a guarded call", () => {
    const context = vm.createContext({});
    const error = thrown(() =>
      callGuarded((): unknown => vm.runInContext("for (;;) {}", context, { timeout: 20 }), 5_000),
    );
    expect((error as { code?: unknown }).code).toBe("ERR_SCRIPT_EXECUTION_TIMEOUT");
    expect(callGuarded(() => 3, 250)).toBe(3);
  });

  describe("nesting (guest -> host import -> guarded guest call)", () => {
    it("lets the outermost deadline rule: the inner call cannot extend it", () => {
      const outer = instantiate();
      const inner = instantiate();
      let innerCatchRan = false;
      let innerFinallyRan = false;
      let depthInside = -1;
      outer.host.impl = () => {
        depthInside = watchdogStats().depth;
        try {
          // A generous inner budget, ignored: the outer one (50 ms) rules.
          return callGuarded(() => {
            inner.exports.spin();
            return 0;
          }, 10_000);
        } catch {
          // Termination is uncatchable: a host function cannot swallow the
          // interrupt and let the outer guest continue.
          innerCatchRan = true;
          return -1;
        } finally {
          innerFinallyRan = true;
        }
      };
      const start = threadCpuTimeMs();
      const error = thrown(() => callGuarded(() => outer.exports.callHost(), 50));
      const used = threadCpuTimeMs() - start;
      expectInterrupt(error);
      expect(error.message).toContain("50 ms");
      expect(used).toBeLessThan(150);
      expect(depthInside).toBe(1);
      expect(innerCatchRan).toBe(false);
      expect(innerFinallyRan).toBe(false);
      expect(watchdogStats().depth).toBe(0);
      // Both instances remain callable.
      expect(callGuarded(() => outer.exports.add(1, 2) + inner.exports.add(3, 4), 250)).toBe(10);
    });

    it("ignores a shorter inner budget: the inner call is bounded by the outer deadline only", () => {
      const outer = instantiate();
      outer.host.impl = () => callGuarded(() => (busyWait(60), 41), 10);
      expect(callGuarded(() => outer.exports.callHost(), 2_000)).toBe(42);
    });

    it("propagates an exception from the inner call through the guest to the outer caller", () => {
      const outer = instantiate();
      const original = new Error("inner host failure");
      outer.host.impl = () =>
        callGuarded(() => {
          throw original;
        }, 250);
      expect(thrown(() => callGuarded(() => outer.exports.callHost(), 250))).toBe(original);
      expect(watchdogStats().depth).toBe(0);
    });
  });

  /**
   * Runs `fn` guarded with a 5 ms budget while the disarm is held back 50 ms,
   * so the budget runs out after fn is done but before the disarm. On a loaded
   * machine fn itself may be descheduled past the budget (a genuine
   * interrupt), so retry until one attempt hits the window.
   */
  function inLateWindow(fn: () => number): { result: unknown; lateFires: number } {
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = watchdogStats();
      const result = withDisarmDelay(50e6, () => {
        try {
          return callGuarded(fn, 5);
        } catch (error) {
          return error;
        }
      });
      const after = watchdogStats();
      expect(after.interrupts).toBe(before.interrupts + 1);
      if (!(result instanceof DsoError)) return { result, lateFires: after.lateFires - before.lateFires };
      expectInterrupt(result);
    }
    return expect.fail("the budget never ran out after fn returned");
  }

  it("cancels a termination requested after fn returned but before the disarm, keeping the result", () => {
    const { exports } = instantiate();
    const { result, lateFires } = inLateWindow(() => exports.add(20, 22));
    expect(result).toBe(42);
    expect(lateFires).toBe(1);
    // A leaked termination would kill this unguarded JS uncatchably.
    let x = 0;
    for (let j = 0; j < 100_000; j++) x += j;
    expect(x).toBe(4_999_950_000);
    expect(callGuarded(() => exports.add(1, 2), 250)).toBe(3);
  });

  it("cancels it the same way when fn threw just before the budget ran out", () => {
    const original = new Error("thrown in time");
    const { result, lateFires } = inLateWindow(() => {
      throw original;
    });
    expect(result).toBe(original);
    expect(lateFires).toBe(1);
    expect(callGuarded(() => 5, 250)).toBe(5);
  });

  it("never leaks a termination into later JS when hammered with budgets close to the call's length", () => {
    const { exports } = instantiate();
    const budgetMs = 1;
    // Warm up to the optimising tier, then find a loop length that takes about the budget.
    for (let i = 0; i < 200; i++) exports.count(10_000);
    let n = 10_000;
    for (;;) {
      const start = performance.now();
      exports.count(n);
      if (performance.now() - start > budgetMs || n > 1 << 30) break;
      n *= 2;
    }
    const before = watchdogStats();
    let returned = 0;
    let interrupted = 0;
    const calls = 600;
    for (let i = 0; i < calls; i++) {
      // From a quarter to twice the calibrated length: the watchdog fires before, during and after the return.
      const len = Math.floor(n * (0.25 + (i % 8) / 4));
      try {
        expect(callGuarded(() => exports.count(len), budgetMs)).toBe(len);
        returned++;
      } catch (error) {
        expectInterrupt(error);
        interrupted++;
      }
      // A leaked termination would kill this unguarded JS (uncatchably, failing the run).
      let x = 0;
      for (let j = 0; j < 200; j++) x += j;
      expect(x).toBe(19_900);
    }
    const after = watchdogStats();
    expect(returned + interrupted).toBe(calls);
    expect(returned).toBeGreaterThan(0);
    expect(interrupted).toBeGreaterThan(0);
    // Every interrupt seen was requested; any other request was cancelled as late.
    expect(after.interrupts - before.interrupts).toBe(interrupted + (after.lateFires - before.lateFires));
  });

  it("lets worker.terminate() end a worker stuck in a guarded call (a foreign termination is not swallowed)", async () => {
    // Loaded directly in the worker: the addon is context-aware, one watchdog per thread.
    const addonPath = fileURLToPath(new URL("../../../build/Release/watchdog.node", import.meta.url));
    const worker = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       const addon = require(workerData);
       parentPort.postMessage(addon.callGuarded(() => 1, 100));
       try {
         addon.callGuarded(() => { parentPort.postMessage("spinning"); for (;;) {} }, 600000);
       } catch (e) { parentPort.postMessage("caught " + e.code); }
       parentPort.postMessage("returned");`,
      { eval: true, workerData: addonPath },
    );
    const messages: unknown[] = [];
    // "spinning" is posted from inside the guarded call, just before its loop.
    await new Promise<void>((resolve) =>
      worker.on("message", (m: unknown) => {
        messages.push(m);
        if (m === "spinning") resolve();
      }),
    );
    // A terminate the guard blocked would never resolve: the test's timeout would end it.
    const code = await worker.terminate();
    expect(code).toBe(1);
    expect(messages).toEqual([1, "spinning"]);
  });
});
