/**
 * The node:vm fallback of callGuarded (no watchdog addon): forced here with
 * WASM_DSO_DISABLE_ADDONS=watchdog, set before host/sandbox/watchdog.ts loads
 * the addon. The same semantics as the addon's, except that budgets are
 * wall-clock time.
 */
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const saved = vi.hoisted(() => {
  const previous = process.env.WASM_DSO_DISABLE_ADDONS;
  process.env.WASM_DSO_DISABLE_ADDONS = "watchdog";
  return previous;
});

import { DsoError, ErrorCodes } from "../../../host/errors.js";
import {
  VM_INTERRUPT_CODE,
  callGuarded,
  threadCpuTimeMs,
  watchdogMode,
  watchdogNotice,
  watchdogStats,
  watchdogUnavailable,
} from "../../../host/sandbox/watchdog.js";
import { busyWait, compileGuests, instantiateGuest, thrown } from "./guests.js";
import type { Guest } from "./guests.js";

let guestModule: WebAssembly.Module;
let startLoopModule: WebAssembly.Module;

function instantiate(): Guest {
  return instantiateGuest(guestModule);
}

beforeAll(async () => {
  ({ guestModule, startLoopModule } = await compileGuests());
});

afterAll(() => {
  if (saved === undefined) delete process.env.WASM_DSO_DISABLE_ADDONS;
  else process.env.WASM_DSO_DISABLE_ADDONS = saved;
});

function expectInterrupt(error: unknown, budgetMs: number): asserts error is DsoError {
  expect(error).toBeInstanceOf(DsoError);
  expect((error as DsoError).code).toBe(ErrorCodes.INTERRUPTED);
  expect((error as DsoError).message).toBe(
    `guest call ran past its ${budgetMs} ms CPU budget, counted in wall-clock time (node:vm), and was interrupted`,
  );
  expect(((error as DsoError).cause as { code?: unknown }).code).toBe(VM_INTERRUPT_CODE);
}

describe("callGuarded (node:vm fallback, WASM_DSO_DISABLE_ADDONS=watchdog)", () => {
  it("says it is in the fallback, and why; guarded calls run, the addon's counters do not", () => {
    const reason = "the watchdog addon is disabled by WASM_DSO_DISABLE_ADDONS";
    expect(watchdogMode()).toEqual({ kind: "vm", reason });
    expect(watchdogNotice()).toBe(`CPU budgets enforced in wall-clock time by node:vm (${reason})`);
    expect(watchdogUnavailable()).toBeUndefined();
    const error = thrown(() => watchdogStats());
    expect(error).toBeInstanceOf(DsoError);
    expect((error as DsoError).code).toBe(ErrorCodes.SANDBOX);
    // The process's CPU time stands in for the thread's.
    expect(threadCpuTimeMs()).toBeGreaterThan(0);
  });

  it("returns the value of a call that ends within budget", () => {
    const { exports } = instantiate();
    expect(callGuarded(() => exports.add(40, 2), 250)).toBe(42);
    expect(callGuarded(() => "not a number", 250)).toBe("not a number");
    expect(callGuarded(() => undefined, 250)).toBeUndefined();
  });

  it("interrupts an infinite wasm loop once its budget has passed in wall-clock time", () => {
    const { exports } = instantiate();
    const start = performance.now();
    expectInterrupt(
      thrown(() => callGuarded(() => exports.spin(), 50)),
      50,
    );
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(49);
    expect(exports.counter()).toBeGreaterThan(0);
    // JS runs on normally, and the instance stays callable.
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) sum += i;
    expect(sum).toBe(499_999_500_000);
    expect(callGuarded(() => exports.count(1000), 250)).toBe(1000);
  });

  it("counts time the thread spends blocked: unlike the addon's CPU budget, a pause past the budget interrupts", () => {
    const { exports, host } = instantiate();
    const cell = new Int32Array(new SharedArrayBuffer(4));
    host.impl = (): number => {
      Atomics.wait(cell, 0, 0, 100);
      busyWait(10);
      return 41;
    };
    expectInterrupt(
      thrown(() => callGuarded(() => exports.callHost(), 50)),
      50,
    );
  });

  it("rounds a fractional budget up to vm's whole milliseconds instead of refusing it", () => {
    expect(callGuarded(() => 1, 250.5)).toBe(1);
    expectInterrupt(
      thrown(() => callGuarded(() => busyWait(1_000), 0.5)),
      0.5,
    );
  });

  it("interrupts a JS loop and a start function that never returns", () => {
    expectInterrupt(
      thrown(() =>
        callGuarded(() => {
          for (;;) busyWait(1);
        }, 30),
      ),
      30,
    );
    expectInterrupt(
      thrown(() => callGuarded(() => new WebAssembly.Instance(startLoopModule, {}), 50)),
      50,
    );
  });

  it("propagates what fn throws unchanged: the same object, its stack untouched; a trap; a stack overflow", () => {
    const original = new TypeError("host import failed");
    const stack = original.stack;
    expect(
      thrown(() =>
        callGuarded(() => {
          throw original;
        }, 250),
      ),
    ).toBe(original);
    expect(original.stack).toBe(stack);
    expect(
      thrown(() =>
        callGuarded(() => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- a guest's host call may throw any value
          throw 7;
        }, 250),
      ),
    ).toBe(7);
    const { exports } = instantiate();
    expect(thrown(() => callGuarded(() => exports.trap(), 250))).toBeInstanceOf(WebAssembly.RuntimeError);
    const overflow = thrown(() => callGuarded(() => exports.recurse(0), 10_000));
    expect(overflow).toBeInstanceOf(RangeError);
    expect(overflow).not.toBeInstanceOf(DsoError);
  });

  it("rejects a non-function fn and an invalid budget as the addon does", () => {
    expect(thrown(() => callGuarded(42 as unknown as () => number, 250))).toBeInstanceOf(TypeError);
    for (const budget of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(thrown(() => callGuarded(() => 1, budget))).toBeInstanceOf(RangeError);
    }
    expect(thrown(() => callGuarded(() => 1, "250" as unknown as number))).toBeInstanceOf(TypeError);
  });

  it("does not take a timeout of node:vm nested inside a guarded call for its own", () => {
    const context = vm.createContext({});
    const error = thrown(() =>
      callGuarded((): unknown => vm.runInContext("for (;;) {}", context, { timeout: 20 }), 5_000),
    );
    expect(error).not.toBeInstanceOf(DsoError);
    expect((error as { code?: unknown }).code).toBe(VM_INTERRUPT_CODE);
    expect(callGuarded(() => 3, 250)).toBe(3);
  });

  describe("nesting (guest -> host import -> guarded guest call)", () => {
    it("lets the outermost deadline rule, and the interrupt is uncatchable in the host frames between", () => {
      const outer = instantiate();
      const inner = instantiate();
      let innerCatchRan = false;
      let innerFinallyRan = false;
      outer.host.impl = () => {
        try {
          return callGuarded(() => {
            inner.exports.spin();
            return 0;
          }, 10_000);
        } catch {
          innerCatchRan = true;
          return -1;
        } finally {
          innerFinallyRan = true;
        }
      };
      // The interrupt names the outer 50 ms budget and no host frame caught it: the inner 10 s budget did not rule.
      expectInterrupt(
        thrown(() => callGuarded(() => outer.exports.callHost(), 50)),
        50,
      );
      expect(innerCatchRan).toBe(false);
      expect(innerFinallyRan).toBe(false);
      // The next outermost call is guarded again (the nesting depth was reset), not run bare.
      expectInterrupt(
        thrown(() => callGuarded(() => busyWait(300), 20)),
        20,
      );
      expect(callGuarded(() => outer.exports.add(1, 2) + inner.exports.add(3, 4), 250)).toBe(10);
    });

    it("ignores a shorter inner budget, and propagates an inner exception unchanged", () => {
      const outer = instantiate();
      outer.host.impl = () => callGuarded(() => (busyWait(60), 41), 10);
      expect(callGuarded(() => outer.exports.callHost(), 2_000)).toBe(42);
      const original = new Error("inner host failure");
      outer.host.impl = () =>
        callGuarded(() => {
          throw original;
        }, 250);
      expect(thrown(() => callGuarded(() => outer.exports.callHost(), 250))).toBe(original);
      expect(callGuarded(() => 5, 250)).toBe(5);
    });
  });
});
