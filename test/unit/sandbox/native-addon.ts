/**
 * The watchdog addon itself, for tests that reach past host/sandbox/watchdog.ts:
 * the same instance the host uses (Node keeps a loaded addon by its path), so
 * its test-only entry point acts on the host's guarded calls.
 */
import { loadNativeAddon } from "../../../host/system/package.js";

export interface WatchdogAddonForTesting {
  /** Busy-waits `ns` between fn's return and the disarm of every outermost call (0 turns it off). */
  setDisarmDelayForTesting(ns: number): void;
}

export function watchdogAddon(): WatchdogAddonForTesting {
  const loaded = loadNativeAddon("watchdog");
  if ("reason" in loaded) throw new Error(`the watchdog addon does not load: ${String(loaded.reason)}`);
  return loaded.addon as WatchdogAddonForTesting;
}

/** Runs `fn` with the disarm held back `ns` (see setDisarmDelayForTesting), then turns it off. */
export function withDisarmDelay<T>(ns: number, fn: () => T): T {
  const addon = watchdogAddon();
  addon.setDisarmDelayForTesting(ns);
  try {
    return fn();
  } finally {
    addon.setDisarmDelayForTesting(0);
  }
}
