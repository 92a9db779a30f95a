/**
 * One host's guest instances taking another's state (instance-states.ts), as a
 * session worker started late takes the primary's reference instances': two
 * ModuleHosts load the same WAT module, one changes its globals and memory,
 * the other adopts the state through the wire form the init request carries
 * (JSON both ways), and every global and memory word is read back exactly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { asWireStates, fromWireState, toWireState } from "../../../host/cluster/wire-state.js";
import { ErrorCodes } from "../../../host/errors.js";
import type { UnitInstanceState } from "../../../host/modules/instance-states.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { dsoFailure } from "../../helpers/failure.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

const PAGE = 65_536;

/**
 * mod_state.c: an i32, an i64 and an f64 global and the memory the host gives
 * it; `bump` changes all of them and grows the memory a page (a word in the
 * new page too), `scribble` writes a word `bump` never writes.
 */
function stateModule(extra = ""): string {
  return `(module
    (import "env" "memory" (memory 1 4))
    (global (export "state_module") i32 (i32.const 0x20))
    (global $i (mut i32) (i32.const 1))
    (global $l (mut i64) (i64.const 1))
    (global $f (mut f64) (f64.const 1))
    ${extra}
    (func (export "bump")
      (global.set $i (i32.add (global.get $i) (i32.const 41)))
      (global.set $l (i64.const 0x123456789abcdef0))
      (global.set $f (f64.const -0))
      (i32.store (i32.const 4096) (i32.const 77))
      (drop (memory.grow (i32.const 1)))
      (i32.store (i32.const ${PAGE + 8}) (i32.const 88)))
    (func (export "scribble") (i32.store (i32.const 20000) (i32.const 99)))
    (func (export "peek_i") (result i32) (global.get $i))
    (func (export "peek_l") (result i64) (global.get $l))
    (func (export "peek_f") (result f64) (global.get $f))
    (func (export "peek_m") (param i32) (result i32) (i32.load (local.get 0)))
    (func (export "pages") (result i32) (memory.size)))`;
}

let dir: string;
/** The same module under the same name, with one export more: another binary. */
let otherDir: string;
const hosts: ModuleHost[] = [];

beforeAll(async () => {
  dir = writeModuleDir({ "mod_state.wasm": await wat(stateModule()) });
  otherDir = writeModuleDir({ "mod_state.wasm": await wat(stateModule(`(func (export "more"))`)) });
});

afterEach(() => {
  for (const host of hosts.splice(0)) host.close();
});

afterAll(() => removeModuleDirs());

function loaded(modulePath = dir): ModuleHost {
  const host = new ModuleHost({ modulePath });
  hosts.push(host);
  host.loadModule("mod_state.c");
  return host;
}

function call(host: ModuleHost, name: string, ...args: number[]): unknown {
  const fn = host.dlsym(name);
  if (typeof fn !== "function") throw new Error(`${name} is not a function`);
  return (fn as (...values: number[]) => unknown)(...args);
}

/** What the instance holds: its globals, the words bump and scribble write, and its size. */
function observed(host: ModuleHost): unknown[] {
  return [
    call(host, "peek_i"),
    call(host, "peek_l"),
    Object.is(call(host, "peek_f"), -0) ? "-0" : call(host, "peek_f"),
    call(host, "peek_m", 4096),
    call(host, "peek_m", 20000),
    call(host, "pages"),
  ];
}

/** `host`'s states as a worker receives them: through toWireState, JSON and back. */
function crossed(host: ModuleHost): UnitInstanceState[] {
  const sent: unknown = JSON.parse(JSON.stringify(host.instanceStates().map(toWireState)));
  return asWireStates(sent).map(fromWireState);
}

describe("a host adopting another's instance states", () => {
  it("takes every global (i32, i64, f64 -0) and memory word exactly, a grown page included, and zeroes the rest", () => {
    const source = loaded();
    call(source, "bump");
    const target = loaded();
    call(target, "scribble");
    expect(observed(target)).toEqual([1, 1n, 1, 0, 99, 1]);

    target.adoptInstanceStates(crossed(source));
    expect(observed(target)).toEqual([42, 0x123456789abcdef0n, "-0", 77, 0, 2]);
    expect(observed(target)).toEqual(observed(source));
    expect(call(target, "peek_m", PAGE + 8)).toBe(88);
    expect(target.instanceStates().map(toWireState)).toEqual(source.instanceStates().map(toWireState));
  });

  it("refuses the state of another binary under the same name, naming both hashes, and changes nothing", () => {
    const source = loaded();
    call(source, "bump");
    const target = loaded(otherDir);
    call(target, "scribble");
    const before = observed(target);
    const states = crossed(source);
    const refusal = dsoFailure(() => target.adoptInstanceStates(states));
    expect(refusal.code).toBe(ErrorCodes.INSTANCE_STATE);
    expect(refusal.message).toMatch(
      /^module 'mod_state\.c' cannot take the state given: its binary here has SHA-256 [0-9a-f]{64}, the state is of [0-9a-f]{64} \(was its file replaced\?\)$/,
    );
    expect(observed(target)).toEqual(before);
  });

  it("checks every state before it restores any: one for a module not loaded here refuses them all", () => {
    const source = loaded();
    call(source, "bump");
    const target = loaded();
    const before = observed(target);
    const states = crossed(source);
    const stray = { ...(states[0] as UnitInstanceState), name: "mod_gone.c" };
    expect(() => target.adoptInstanceStates([...states, stray])).toThrow(
      "module 'mod_gone.c' cannot take the state given: it is not loaded here",
    );
    expect(observed(target)).toEqual(before);
  });

  it("refuses a state whose memory lies past its own pages, or whose globals are not the instance's", () => {
    const source = loaded();
    const target = loaded();
    const [state] = crossed(source) as [UnitInstanceState];
    const past = { ...state, snapshot: { ...state.snapshot, chunks: [{ offset: PAGE, bytes: new Uint8Array(4) }] } };
    expect(() => target.adoptInstanceStates([past])).toThrow(
      `module 'mod_state.c' cannot take the state given: its memory at ${PAGE} lies past the state's 1 pages`,
    );
    const short = { ...state, snapshot: { ...state.snapshot, globals: [1] } };
    expect(() => target.adoptInstanceStates([short])).toThrow(
      "module 'mod_state.c' cannot take the state given: the state has 1 globals, the instance 3",
    );
  });
});
