// The SDK's named results and API version (guest-modules/sdk/constants.ts)
// and the host's (host/modules/module-api.ts) are one protocol written twice,
// in AssemblyScript and in TypeScript. dist/sdk/constants.wasm is the SDK's
// constants compiled alone, each an exported global; these tests keep the two
// equal.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ABSENT_VERSION, ANY_VERSION, SharedResults } from "../../../host/abi/shared-store.js";
import { HandlerResults, MODULE_API_VERSION } from "../../../host/modules/module-api.js";
import { SDK_DIR } from "../../helpers/paths.js";

const module = new WebAssembly.Module(readFileSync(path.join(SDK_DIR, "constants.wasm")));
const { exports } = new WebAssembly.Instance(module, {
  env: { memory: new WebAssembly.Memory({ initial: 1 }), abort: () => {} },
});

function constant(name: string): unknown {
  const value = exports[name];
  return value instanceof WebAssembly.Global ? value.value : value;
}

describe("the SDK's constants", () => {
  it("are exactly API_VERSION, DECLINED, HANDLED, ERROR, OK and the SHARED_* ones, so a new one is checked here too", () => {
    const globals = WebAssembly.Module.exports(module).filter((e) => e.kind === "global" && !e.name.startsWith("__"));
    const shared = [
      ...Object.keys(SharedResults).map((name) => `SHARED_${name}`),
      "SHARED_ABSENT",
      "SHARED_ANY_VERSION",
    ];
    expect(globals.map((e) => e.name).sort()).toEqual(
      ["API_VERSION", "DECLINED", "ERROR", "HANDLED", "OK", ...shared].sort(),
    );
  });

  it("give the shared store's result codes and versions as the host defines them", () => {
    for (const [name, value] of Object.entries(SharedResults)) expect(constant(`SHARED_${name}`), name).toBe(value);
    expect(constant("SHARED_ANY_VERSION")).toBe(ANY_VERSION);
    expect(constant("SHARED_ABSENT")).toBe(ABSENT_VERSION);
  });

  it("give the host's module API version", () => {
    expect(constant("API_VERSION")).toBe(MODULE_API_VERSION);
  });

  it("give the host's handler results", () => {
    expect(constant("DECLINED")).toBe(HandlerResults.DECLINED);
    expect(constant("HANDLED")).toBe(HandlerResults.HANDLED);
    expect(constant("ERROR")).toBe(HandlerResults.ERROR);
  });

  it("give hooks an OK the host accepts (module_init fails below 0) and an ERROR it refuses", () => {
    expect(constant("OK")).toBe(0);
    expect(constant("ERROR")).toBeLessThan(0);
  });
});
