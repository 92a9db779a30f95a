/**
 * The loader reports as data on node:diagnostics_channel; mod_dso's lines are
 * worded from those events (dso-log.ts), and only there.
 */
import diagnostics from "node:diagnostics_channel";
import { afterEach, describe, expect, it } from "vitest";
import { dsoLogLines } from "../../../host/modules/dso-log.js";
import { InitError } from "../../../host/modules/instantiate.js";
import { LOADER_CHANNEL } from "../../../host/modules/loader-events.js";
import type { LoaderEvent, LoaderMessage } from "../../../host/modules/loader-events.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";

const subscribed: Array<(message: unknown) => void> = [];

/** The events `host` publishes from now on (other hosts' are not its). */
function eventsOf(host: ModuleHost): LoaderEvent[] {
  const events: LoaderEvent[] = [];
  const listener = (message: unknown): void => {
    const { host: from, event } = message as LoaderMessage;
    if (from === host) events.push(event);
  };
  diagnostics.subscribe(LOADER_CHANNEL, listener);
  subscribed.push(listener);
  return events;
}

afterEach(() => {
  for (const listener of subscribed.splice(0)) diagnostics.unsubscribe(LOADER_CHANNEL, listener);
});

describe("loader events", () => {
  it("are published on the channel by a host without a log sink", () => {
    const host = new ModuleHost({ modulePath: LIBEXEC_DIR });
    const events = eventsOf(new ModuleHost({ modulePath: LIBEXEC_DIR }));
    const own = eventsOf(host);
    host.loadModule("mod_test.c");
    expect(() => host.loadModule("mod_test.c")).toThrow();
    expect(() => host.loadModule("mod_nothere.c")).toThrow();
    expect(own).toEqual([
      { kind: "debug", line: { level: 7, text: "loading 'mod_test.c'" } },
      { kind: "debug", line: { level: 7, text: "loading 'mod_test.c'" } },
      { kind: "already-loaded", module: "mod_test.c" },
      { kind: "debug", line: { level: 7, text: "loading 'mod_nothere.c'" } },
      { kind: "no-file", requested: "mod_nothere.c", stemPath: `${LIBEXEC_DIR}/mod_nothere` },
      { kind: "no-symbol", symbol: "nothere_module" },
    ]);
    expect(events).toEqual([]);
    host.close();
  });

  it("are worded as mod_dso.c's lines, debug lines up to the debug level", () => {
    const noFile: LoaderEvent = { kind: "no-file", requested: "mod_x.c", stemPath: "/m/mod_x" };
    expect(dsoLogLines(noFile, 0)).toEqual([
      { priority: "notice", message: "mod_dso/0.5: unable to load 'mod_x.c'; check to see if '/m/mod_x.wasm' exists" },
    ]);
    expect(dsoLogLines(noFile, 3).map((l) => l.message)).toEqual([
      "mod_dso/0.5: unable to dlopen 'mod_x.c': file not found (No such file or directory)",
      "mod_dso/0.5: unable to load 'mod_x.c'; check to see if '/m/mod_x.wasm' exists",
      "mod_dso/0.5: defaulting to 'self' for symbol resolution",
    ]);
    expect(dsoLogLines({ kind: "wrong-api-version", module: "mod_x.c", found: 0x10, expected: 0x20 }, 0)).toEqual([
      { priority: "error", message: "mod_dso/0.5: module 'mod_x.c' has wrong API version (0x10), must be 0x20" },
    ]);
    expect(
      dsoLogLines({ kind: "fault-unloaded", unit: "mod_x.c", crashLoop: true, faults: 5, windowMs: 60_000 }, 0),
    ).toEqual([{ priority: "error", message: "mod_x.c: unloaded after 5 faults within 60 s" }]);
  });

  it("word a refusal's lines, leaving out what was logged where it was found", () => {
    const initFailed = new InitError("module", "module 'mod_x.c' failed to initialize", undefined, [
      "module 'mod_x.c' failed to initialize",
      "mod_x.c: fault in module_init: unreachable",
    ]);
    expect(dsoLogLines({ kind: "load-refused", module: "mod_x.c", error: initFailed }, 0)).toEqual([
      { priority: "notice", message: "mod_dso/0.5: mod_x.c: fault in module_init: unreachable" },
    ]);
    expect(dsoLogLines({ kind: "load-refused", module: "mod_x.c", error: new Error("odd") }, 0)).toEqual([
      { priority: "notice", message: "mod_dso/0.5: unable to load 'mod_x.c': Error: odd" },
    ]);
  });
});
