// State shared on purpose (docs/host-abi.md, "The shared store"): a key-value
// store every session of the daemon sees, with compare-and-swap, after
// proxy-wasm's get/set_shared_data, and counters with an atomic add. A module
// sees only its own entries; they outlive its instances (a fault's reset, an
// rmmod then insmod). Module globals are no place for what sessions share.
//
//   const version = sharedVersion("motd");               // 0: no entry yet
//   if (sharedSet("motd", "hello", version) == SHARED_CAS_MISMATCH) {
//     // another session wrote it since: read sharedGet("motd") again
//   }
//   const fails = sharedAdd("fails:" + host);            // a counter, in one step
import { pr_shared_add, pr_shared_delete, pr_shared_get, pr_shared_set, pr_shared_version } from "./host";

import { SHARED_ANY_VERSION } from "./constants";

/** The value under `key`, or "" when there is none (sharedVersion tells the two apart). */
export function sharedGet(key: string): string {
  return pr_shared_get(key);
}

/** The version of the entry under `key`, to pass to sharedSet or sharedDelete; 0 when there is none. */
export function sharedVersion(key: string): f64 {
  return pr_shared_version(key);
}

/**
 * Writes `value` under `key` if the entry's version is still `cas`:
 * SHARED_ANY_VERSION (the default) writes anyway, SHARED_ABSENT only if there
 * is no entry yet. Returns SHARED_OK, SHARED_CAS_MISMATCH (read the entry
 * again and retry), SHARED_TOO_LARGE or SHARED_BAD_ARGUMENT.
 */
export function sharedSet(key: string, value: string, cas: f64 = SHARED_ANY_VERSION): i32 {
  return pr_shared_set(key, value, cas);
}

/** Removes the entry under `key` if its version is still `cas`: SHARED_OK, SHARED_NOT_FOUND or SHARED_CAS_MISMATCH. */
export function sharedDelete(key: string, cas: f64 = SHARED_ANY_VERSION): i32 {
  return pr_shared_delete(key, cas);
}

/**
 * Adds `delta` to the counter under `key` in one step (an absent key counts
 * from 0) and returns its new value; sharedGet reads it as a decimal string.
 * NaN when refused: the entry holds something else than a number, or the
 * module's shared data is full. Nothing changed then.
 */
export function sharedAdd(key: string, delta: f64 = 1): f64 {
  return pr_shared_add(key, delta);
}
