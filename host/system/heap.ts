/**
 * V8 heap settings for a process that loads and unloads modules for a long
 * time: dsod sets them at start-up, and an embedding program may do the same.
 *
 * V8 grows its young generation (up to 32 MB on Node 20 and 22, 64 MB on
 * Node 24, as v8.getHeapSpaceStatistics() reports new_space) when much of
 * what it allocates survives a scavenge, and keeps it (Node 22 and 24 give it
 * back only to a memory-reducing GC, when idle or short of memory). A wasm
 * Instance, and what it references, outlives scavenges: V8 frees it only in a
 * full collection (with --trace-gc, most of what an insmod/rmmod churn
 * allocates survives each scavenge). Under churn V8 therefore grew the young
 * generation to its maximum, and each scavenge copied thousands of dead
 * instances. Keeping the young generation at the size it has when dsod starts
 * (2-4 MB, as V8 left it while the host's modules loaded; V8 14, on Node 26,
 * still takes it to 4 MB) measured faster on this workload (insmod+rmmod and
 * FTP dispatch through a guest alike) and keeps RSS flat: bench/ records both,
 * and the README's performance section has the figures.
 */
import v8 from "node:v8";

/**
 * The flags, as `node` would take them. `--semi-space-growth-factor` is read
 * each time V8 considers growing the young generation, so unlike
 * `--max-semi-space-size` it takes effect after start-up too.
 */
export const MODULE_HOST_V8_FLAGS = ["--semi-space-growth-factor=1"] as const;

/** Applies MODULE_HOST_V8_FLAGS to this process; call it before loading modules. */
export function tuneHeapForModuleChurn(): void {
  for (const flag of MODULE_HOST_V8_FLAGS) v8.setFlagsFromString(flag);
}
