/**
 * The state of a host's guest instances, as another host of the same module
 * set takes it over: a session worker started after the primary's reference
 * host ran guest code (a module's control action, which changes the
 * instance's own globals and memory) builds its set from the config file and
 * the journal, then adopts the reference's state, so that it serves what the
 * workers started before it serve. proftpd's session processes all inherit
 * their state from the master the same way, by fork.
 *
 * A state is the unit's snapshot (snapshot.ts) with its name and the SHA-256
 * of its binary: it is only restored into an instance of the same binary.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { forgetSnapshots, snapshotOf } from "./session-fork.js";
import { restoreSnapshot, stateMemory } from "./snapshot.js";
import type { InstanceSnapshot } from "./snapshot.js";
import { isDetached, isFaulted } from "./unit.js";
import type { LoadedUnit } from "./unit.js";

const PAGE_BYTES = 65_536;

/** One guest unit's instance state, for a host with the same binary loaded under the same name. */
export interface UnitInstanceState {
  readonly name: string;
  /** SHA-256 of the unit's binary, hex. */
  readonly hash: string;
  readonly snapshot: InstanceSnapshot;
}

/**
 * The state of each unit whose state a snapshot can copy, in the units'
 * order. A faulted unit's instance is left out: the other host keeps its own.
 */
export function takeUnitStates(units: readonly LoadedUnit[]): UnitInstanceState[] {
  return units
    .filter((unit) => !isDetached(unit) && !isFaulted(unit) && unit.instanceState.unsnapshotable === undefined)
    .map((unit) => ({ name: unit.name, hash: unit.hash, snapshot: snapshotOf(unit, unit.instance, unit.memory) }));
}

function refuse(name: string, why: string): DsoError {
  return new DsoError(ErrorCodes.INSTANCE_STATE, `module '${name}' cannot take the state given: ${why}`);
}

/** Why `state` cannot be restored into `unit`'s instance, or undefined when it can. */
function mismatch(unit: LoadedUnit | undefined, state: UnitInstanceState): string | undefined {
  if (unit === undefined || isDetached(unit)) return "it is not loaded here";
  if (unit.hash !== state.hash) {
    return `its binary here has SHA-256 ${unit.hash}, the state is of ${state.hash} (was its file replaced?)`;
  }
  if (isFaulted(unit)) return "its instance here faulted";
  const { snapshot } = state;
  if (snapshot.globals.length !== unit.instanceState.globals.length) {
    return `the state has ${snapshot.globals.length} globals, the instance ${unit.instanceState.globals.length}`;
  }
  const limit = snapshot.pages * PAGE_BYTES;
  for (const chunk of snapshot.chunks) {
    if (chunk.offset + chunk.bytes.byteLength > limit) {
      return `its memory at ${chunk.offset} lies past the state's ${snapshot.pages} pages`;
    }
  }
  const memory = stateMemory(unit.instance, unit.memory, unit.instanceState);
  if (memory === undefined && snapshot.pages > 0) return "the state has memory, the instance none";
  return undefined;
}

/**
 * Makes each named unit's instance a copy of its state, without running guest
 * code. Every state is checked against its unit, and every memory grown to
 * its state's size, before any is restored, so a refusal
 * (DSO_ERR_INSTANCE_STATE: not loaded, another binary, a faulted instance, a
 * state that does not fit, a memory that may not grow that far) leaves every
 * instance as it was, at most with zeroed pages added. Units without a state
 * keep theirs.
 */
export function adoptUnitStates(
  unitOf: (name: string) => LoadedUnit | undefined,
  states: readonly UnitInstanceState[],
): void {
  const targets = states.map((state) => {
    const unit = unitOf(state.name);
    const why = mismatch(unit, state);
    if (unit === undefined || why !== undefined) throw refuse(state.name, why ?? "it is not loaded here");
    return { unit, state, memory: stateMemory(unit.instance, unit.memory, unit.instanceState) };
  });
  for (const { unit, state, memory } of targets) {
    const pages = memory === undefined ? 0 : memory.buffer.byteLength / PAGE_BYTES;
    if (memory === undefined || state.snapshot.pages <= pages) continue;
    try {
      memory.grow(state.snapshot.pages - pages);
    } catch (cause) {
      // Its memory's maximum (MemoryLimit) is lower here than where the state was taken.
      throw refuse(unit.name, `its memory cannot grow to ${state.snapshot.pages} pages: ${(cause as Error).message}`);
    }
  }
  for (const { unit, state, memory } of targets) {
    // A snapshot lists the blocks that are not zero in its memory: the others must be zero here too.
    if (memory !== undefined) new Uint8Array(memory.buffer).fill(0);
    restoreSnapshot(unit.instance, memory, unit.instanceState, state.snapshot);
    forgetSnapshots(unit);
  }
}
