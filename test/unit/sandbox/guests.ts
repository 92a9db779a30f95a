/**
 * The guests both watchdog test files guard (the addon's and node:vm's), and
 * the helpers their tests share.
 */
import { expect } from "vitest";
import { wat } from "../../helpers/wat.js";

/**
 * `spin` never returns (the shape the watchdog exists for); `count` runs a
 * loop of n iterations (a call of tunable length); `add` is the trivial export;
 * `recurse` overflows the stack; `trap` traps; `host` calls out to the
 * importer (for nesting through a host function, as the linker wires it).
 */
export const GUEST_WAT = `(module
  (import "env" "host" (func $host (result i32)))
  (global $g (mut i32) (i32.const 0))
  (func (export "spin")
    (loop $forever
      (global.set $g (i32.add (global.get $g) (i32.const 1)))
      (br $forever)))
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (func $recurse (export "recurse") (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "trap") (unreachable))
  (func (export "callHost") (result i32)
    (i32.add (call $host) (i32.const 1)))
  (func (export "counter") (result i32) (global.get $g)))`;

/** The start function never returns: instantiation itself must be interruptible. */
export const START_LOOP_WAT = `(module
  (func $start (loop $forever (br $forever)))
  (start $start))`;

export interface GuestExports {
  spin(): void;
  count(n: number): number;
  add(a: number, b: number): number;
  recurse(n: number): number;
  trap(): void;
  callHost(): number;
  counter(): number;
}

export interface Guest {
  readonly exports: GuestExports;
  /** What the guest's `env.host` import runs. */
  readonly host: { impl: () => number };
}

export async function compileGuests(): Promise<{
  guestModule: WebAssembly.Module;
  startLoopModule: WebAssembly.Module;
}> {
  return {
    guestModule: new WebAssembly.Module(await wat(GUEST_WAT)),
    startLoopModule: new WebAssembly.Module(await wat(START_LOOP_WAT)),
  };
}

/** A fresh instance whose `env.host` import runs whatever the test sets in `host.impl`. */
export function instantiateGuest(guestModule: WebAssembly.Module): Guest {
  const host = { impl: (): number => 0 };
  const instance = new WebAssembly.Instance(guestModule, { env: { host: () => host.impl() } });
  return { exports: instance.exports as unknown as GuestExports, host };
}

/** Runs `fn` and returns what it threw (failing the test if it returned). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  expect.fail("expected a throw");
}

/** Busy-waits `ms` in JS (interruptible by V8 like wasm: loop back-edges check for interrupts). */
export function busyWait(ms: number): number {
  const until = performance.now() + ms;
  let spins = 0;
  while (performance.now() < until) spins++;
  return spins;
}
