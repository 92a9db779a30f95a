/**
 * V8 heap settings for a process that loads and unloads modules for a long
 * time: dsod sets them at start-up, and an embedding program may do the same.
 *
 * V8 grows its young generation (up to 2 x 16 MB on Node 20) when much of
 * what it allocates survives a scavenge, and never gives it back. A wasm
 * Instance, and what it references, outlives scavenges: V8 frees it only in a
 * full collection (with --trace-gc, most of what an insmod/rmmod churn
 * allocates survives each scavenge). Under churn V8 therefore grew the young
 * generation to its maximum, and each scavenge copied thousands of dead
 * instances. Keeping the young generation at its initial size (1 MB
 * semi-spaces) measured faster on this workload (insmod+rmmod and FTP dispatch
 * through a guest alike) and keeps RSS flat: bench/ records both, and the
 * README's performance section has the figures.
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
