/**
 * How host/sandbox/watchdog.ts picks its engine from what loading the addon
 * gave and from DSOD_WATCHDOG: the addon made to fail here, as on a machine
 * where it was not built (no compiler at install) or where Node lacks one of
 * the V8 functions it calls.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type * as ErrorsModule from "../../../host/errors.js";
import type * as WatchdogModule from "../../../host/sandbox/watchdog.js";
import type * as PackageModule from "../../../host/system/package.js";

type Loaded = { addon: unknown } | { file: string; reason: unknown; message: string };

/** A fresh copy of the watchdog module (it decides once per process), on an addon load that gives `loaded`. */
async function watchdogWith(
  setting: string | undefined,
  loaded: Loaded,
): Promise<{
  watchdog: typeof WatchdogModule;
  errors: typeof ErrorsModule;
  loads: () => number;
}> {
  vi.resetModules();
  let loads = 0;
  vi.doMock("../../../host/system/package.js", async (original) => ({
    ...(await original<typeof PackageModule>()),
    loadNativeAddon: () => {
      loads++;
      return loaded;
    },
  }));
  vi.stubEnv("DSOD_WATCHDOG", setting);
  return {
    watchdog: await import("../../../host/sandbox/watchdog.js"),
    errors: await import("../../../host/errors.js"),
    loads: () => loads,
  };
}

const FILE = "/pkg/build/Release/watchdog.node";
const NOT_BUILT: Loaded = {
  file: FILE,
  reason: new Error("not built"),
  message: `unable to load ${FILE} (run \`npm rebuild\`)`,
};

afterEach(() => {
  vi.doUnmock("../../../host/system/package.js");
  vi.unstubAllEnvs();
});

describe("the watchdog's engine", () => {
  it("falls back to node:vm when the addon was not built, says why, and still enforces budgets", async () => {
    const { watchdog, errors } = await watchdogWith(undefined, NOT_BUILT);
    expect(watchdog.watchdogMode()).toEqual({ kind: "vm", reason: `unable to load ${FILE} (run \`npm rebuild\`)` });
    expect(watchdog.watchdogNotice()).toBe(
      `CPU budgets enforced in wall-clock time by node:vm (unable to load ${FILE} (run \`npm rebuild\`))`,
    );
    expect(watchdog.watchdogUnavailable()).toBeUndefined();
    expect(watchdog.callGuarded(() => 42, 250)).toBe(42);
    let error: unknown;
    try {
      watchdog.callGuarded(() => {
        for (;;);
      }, 20);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(errors.DsoError);
    expect((error as InstanceType<typeof errors.DsoError>).code).toBe(errors.ErrorCodes.INTERRUPTED);
  });

  it("falls back the same way from an addon without callGuarded", async () => {
    const { watchdog } = await watchdogWith(undefined, { addon: {} });
    expect(watchdog.watchdogMode()).toEqual({ kind: "vm", reason: "the watchdog addon has no callGuarded" });
  });

  it("DSOD_WATCHDOG=native refuses budgets without the addon (DSO_ERR_SANDBOX), and announces no degraded mode", async () => {
    const { watchdog, errors } = await watchdogWith("native", NOT_BUILT);
    const missing = watchdog.watchdogUnavailable();
    expect(missing).toBeInstanceOf(errors.DsoError);
    expect(missing?.code).toBe(errors.ErrorCodes.SANDBOX);
    expect(missing?.message).toBe(
      `cannot enforce guest CPU budgets (DSOD_WATCHDOG=native): unable to load ${FILE} (run \`npm rebuild\`)`,
    );
    expect(watchdog.watchdogNotice()).toBeUndefined();
    let thrown: unknown;
    try {
      watchdog.callGuarded(() => 1, 250);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBe(missing);
  });

  it("decides once: the addon is loaded on first use only", async () => {
    const { watchdog, loads } = await watchdogWith(undefined, { addon: {} });
    watchdog.watchdogMode();
    watchdog.callGuarded(() => 1, 250);
    watchdog.threadCpuTimeMs();
    expect(loads()).toBe(1);
  });
});
