/**
 * What a new session's own instances start from (ModuleInstances snapshot or
 * replay, session-instances.ts): the state of the daemon's instance of each
 * unit, taken or reused, and the error a session gets when its instance
 * cannot be made. Used by ModuleHost.acquireModules.
 */
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import { describeTrap } from "./instantiate.js";
import { dataSegmentsEnd, stateMemory, takeSnapshot } from "./snapshot.js";
import type { InstanceSnapshot } from "./snapshot.js";
import type { SessionInstancesMode } from "./types.js";
import { isFaulted } from "./unit.js";
import type { LoadedUnit } from "./unit.js";

/** The bytes of a unit's linear memory now. */
export function memoryBytes(unit: LoadedUnit): number {
  return stateMemory(unit.instance, unit.memory, unit.instanceState)?.buffer.byteLength ?? 0;
}

/** The state of an instance of `unit` (the daemon's, or a session's) as a new instance would take it. */
export function snapshotOf(
  unit: LoadedUnit,
  instance: WebAssembly.Instance,
  imported: WebAssembly.Memory | undefined,
): InstanceSnapshot {
  const layout = unit.instanceState;
  const dataEnd = dataSegmentsEnd(unit.shape.staticData, unit.shape.dataBytes);
  return takeSnapshot(instance, stateMemory(instance, imported, layout), layout, dataEnd);
}

/** Guest code runs in the daemon's instance of `unit`: its snapshot and its providers' (it may call them) are stale. */
export function forgetSnapshots(unit: LoadedUnit): void {
  unit.snapshot = undefined;
  for (const dependency of unit.dependencies) forgetSnapshots(dependency);
}

/** Why a session could not get its instance of `name`, as the error its command fails with. */
export function sessionInstanceError(name: string, cause: unknown): DsoError {
  if (isDsoError(cause)) return cause;
  if (cause instanceof RangeError && !/call stack/i.test(cause.message)) {
    return new DsoError(ErrorCodes.MEMORY_TOTAL, `${name}: no memory for the session's instance: ${cause.message}`, {
      cause,
    });
  }
  return new DsoError(ErrorCodes.INIT_FAILED, `module '${name}' failed to initialize: ${describeTrap(cause)}`, {
    cause,
  });
}

/**
 * A unit's state as the session forks it, its providers' first: the daemon's
 * instance as it is now (a cached snapshot while no guest code ran in it
 * since), or none where the instance is initialized again: `replay`, a
 * binary whose state JavaScript cannot copy, an instance that faulted.
 */
export function forkState(
  unit: LoadedUnit,
  forks: Map<LoadedUnit, InstanceSnapshot | undefined>,
  mode: SessionInstancesMode,
): void {
  if (forks.has(unit)) return;
  for (const dependency of unit.dependencies) forkState(dependency, forks, mode);
  if (mode === "replay" || unit.instanceState.unsnapshotable !== undefined || isFaulted(unit)) {
    forks.set(unit, undefined);
    return;
  }
  // dlsym handed its exports out: code outside the host may have changed it since any snapshot.
  const cached = unit.exportsEscaped ? undefined : unit.snapshot;
  const state = cached ?? snapshotOf(unit, unit.instance, unit.memory);
  if (!unit.exportsEscaped) unit.snapshot = state;
  forks.set(unit, state);
}
