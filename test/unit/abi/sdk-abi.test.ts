// The guest SDK (guest-modules/sdk/host.ts), the host's symbol table
// (host/abi/host-symbols.ts) and docs/host-abi.md describe one ABI three times.
// dist/sdk/host.wasm is the SDK's declarations compiled alone, so its imports
// are exactly what the SDK declares; these tests keep all three equal.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { HOST_MEMORY_SYMBOL, HOST_SYMBOLS, hostSymbolType } from "../../../host/abi/host-symbols.js";
import { GLOBAL_NAMESPACE } from "../../../host/linker/resolve.js";
import { DEFAULT_MEMORY_CAP_PAGES } from "../../../host/modules/policy.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { formatExternType, formatFuncType } from "../../../host/wasm/types.js";
import { DOCS_DIR, SDK_DIR } from "../../helpers/paths.js";

/** AssemblyScript's own imports: the host provides them, but the SDK does not declare them. */
const ASSEMBLYSCRIPT_IMPORTS = ["abort", "trace", "seed"];

const sdk = readModuleShape(readFileSync(path.join(SDK_DIR, "host.wasm")));
const sdkFunctions = sdk.imports.filter((i) => !(i.name === HOST_MEMORY_SYMBOL && i.type.kind === "memory"));

describe("the SDK's imports", () => {
  it("are all from the env namespace", () => {
    expect(sdk.imports.filter((i) => i.module !== GLOBAL_NAMESPACE).map((i) => `${i.module}.${i.name}`)).toEqual([]);
  });

  it("name only host symbols", () => {
    expect(sdkFunctions.map((i) => i.name).filter((name) => !HOST_SYMBOLS.has(name))).toEqual([]);
  });

  it("have exactly the host symbols' types", () => {
    const mismatches = sdkFunctions.flatMap((i) => {
      const symbol = HOST_SYMBOLS.get(i.name);
      if (symbol === undefined) return [];
      const expected = formatFuncType(hostSymbolType(symbol));
      const actual = formatExternType(i.type);
      return actual === expected ? [] : [`${i.name}: SDK imports ${actual}, host defines ${expected}`];
    });
    expect(mismatches).toEqual([]);
  });

  it("cover every host symbol except AssemblyScript's own abort, trace and seed", () => {
    const declared = new Set(sdkFunctions.map((i) => i.name));
    const expected = [...HOST_SYMBOLS.keys()].filter((name) => !ASSEMBLYSCRIPT_IMPORTS.includes(name));
    expect(expected.filter((name) => !declared.has(name))).toEqual([]);
    // Sanity: the check has something to check.
    expect(expected.length).toBeGreaterThanOrEqual(18);
  });

  it("import the memory as env.memory, unshared and within the host's cap", () => {
    const memories = sdk.imports.filter((i) => i.type.kind === "memory");
    expect(memories.map((i) => `${i.module}.${i.name}`)).toEqual([`${GLOBAL_NAMESPACE}.${HOST_MEMORY_SYMBOL}`]);
    const [memory] = memories;
    if (memory?.type.kind !== "memory") throw new Error("no memory import");
    expect(memory.type.limits.shared).toBe(false);
    expect(memory.type.limits.min).toBeLessThanOrEqual(DEFAULT_MEMORY_CAP_PAGES);
  });

  it("are declared once each", () => {
    const names = sdk.imports.map((i) => i.name);
    expect(names.filter((n, index) => names.indexOf(n) !== index)).toEqual([]);
  });
});

describe("HOST_SYMBOLS", () => {
  it("are all functions of the documented ABI types", () => {
    for (const [key, symbol] of HOST_SYMBOLS) {
      expect(symbol.name, "keyed by its own name").toBe(key);
      for (const t of [...symbol.params, symbol.result]) expect(["i32", "i64", "f64", "string", "nil"]).toContain(t);
    }
    expect([...HOST_SYMBOLS.keys()]).not.toContain(HOST_MEMORY_SYMBOL);
  });
});

describe("docs/host-abi.md", () => {
  const markdown = readFileSync(path.join(DOCS_DIR, "host-abi.md"), "utf8");

  /** The host symbol table's rows by symbol name, cells split on unescaped bars. */
  function rows(): Map<string, string[]> {
    const found = new Map<string, string[]>();
    for (const line of markdown.split("\n")) {
      if (!line.startsWith("| `")) continue;
      const cells = line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      const name = /^`([^`]+)`$/.exec(cells[0] ?? "")?.[1];
      if (name !== undefined && HOST_SYMBOLS.has(name)) found.set(name, cells);
    }
    return found;
  }

  it("lists every host symbol as `name` in a table row", () => {
    const table = rows();
    expect([...HOST_SYMBOLS.keys()].filter((name) => !table.has(name))).toEqual([]);
  });

  it("gives each symbol's wasm signature and capability as the host defines them", () => {
    const table = rows();
    const wrong = [...HOST_SYMBOLS.values()].flatMap((symbol) => {
      const cells = table.get(symbol.name);
      if (cells === undefined) return [];
      const signature = `\`${formatFuncType(hostSymbolType(symbol))}\``;
      return cells[1] === signature && cells[3] === symbol.capability
        ? []
        : [`${symbol.name}: documented ${cells[1]} / ${cells[3]}, defined ${signature} / ${symbol.capability}`];
    });
    expect(wrong).toEqual([]);
  });

  it("documents env.memory", () => {
    expect(markdown).toContain("`env.memory`");
  });
});
