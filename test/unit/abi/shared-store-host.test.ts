/**
 * The shared store inside a real ModuleHost, with the SDK-built guest
 * test/fixtures/guests/mod_shared.ts: the host gives each module the bound
 * its policy's memory cap makes, and the entries outlive the module's
 * instance (a fault's reset under an injected clock, an unload then a load).
 * Through the daemon and two FTP sessions: test/integration/shared-store.test.ts.
 */
import { describe, expect, it } from "vitest";
import { sharedDataBytes } from "../../../host/abi/shared-store.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import type { ModuleHostOptions } from "../../../host/modules/module-host.js";
import { FIXTURES_DIR } from "../../helpers/paths.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";

function sharedHost(options: Partial<ModuleHostOptions> = {}): ModuleHost {
  const host = new ModuleHost({ modulePath: FIXTURES_DIR, ...options });
  host.loadModule("mod_shared.c");
  return host;
}

/** `SITE X ...` through mod_shared.c's CMD handler, as a session would run it: its reply lines. */
function site(host: ModuleHost, ...words: string[]): string[] {
  const module = host.engineModules().find((m) => m.name === "mod_shared.c");
  const handler = module?.siteCommands.find((h) => h.command === words[0] && h.phase === "CMD");
  if (handler === undefined) throw new Error(`mod_shared.c has no SITE ${words[0]}`);
  const replies: string[] = [];
  const command = testCommand(["SITE", ...words], {
    addResponse: (code, message) => replies.push(`${code} ${message}`),
  });
  settled(handler.run(command, testSession(host.engineModules(), undefined)));
  return replies;
}

function errorCode(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof DsoError) return error.code;
    throw error;
  }
  throw new Error("expected a DsoError");
}

describe("the shared store in the module host", () => {
  it("bounds a module's scope by a sixteenth of its memory cap", () => {
    const host = sharedHost({ policy: () => ({ ...DEFAULT_POLICY, memoryCapPages: 32 }) });
    expect(sharedDataBytes(32)).toBe(131_072);
    // 64 + 2 * (1 + 65_000) = 130_066 bytes fit; 66_000 characters (132_066 bytes) do not.
    expect(site(host, "SHBIG", "k", "66000")).toEqual(["200 SITE SHBIG: SHARED_TOO_LARGE"]);
    expect(site(host, "SHBIG", "k", "65000")).toEqual(["200 SITE SHBIG: SHARED_OK"]);
    expect(site(host, "SHBIG", "j", "1000")).toEqual(["200 SITE SHBIG: SHARED_TOO_LARGE"]);
    host.close();
  });

  it("keeps a module's entries through a fault's reset", () => {
    let now = 1_000_000;
    const host = sharedHost({ clock: () => now });
    expect(site(host, "SHSET", "kept", "any", "1")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(site(host, "SHADD", "hits", "2")).toEqual(["200 SITE SHADD: 2"]);
    expect(errorCode(() => site(host, "SHTRAP"))).toBe(ErrorCodes.GUEST_TRAP);
    now += 100;
    expect(site(host, "SHGET", "kept")).toEqual(["200 SITE SHGET: kept=1 version 1"]);
    expect(site(host, "SHADD", "hits", "1")).toEqual(["200 SITE SHADD: 3"]);
    host.close();
  });

  it("keeps a module's entries through an unload and a load of the same name", () => {
    const host = sharedHost();
    expect(site(host, "SHSET", "kept", "0", "yes")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    host.unloadModule("mod_shared.c");
    host.loadModule("mod_shared.c");
    expect(site(host, "SHGET", "kept")).toEqual(["200 SITE SHGET: kept=yes version 1"]);
    host.close();
  });

  it("gives each ModuleHost a store of its own", () => {
    const first = sharedHost();
    const second = sharedHost();
    site(first, "SHSET", "k", "any", "v");
    expect(site(second, "SHGET", "k")).toEqual(["200 SITE SHGET: k absent"]);
    first.close();
    second.close();
  });
});
