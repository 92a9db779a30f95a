import { describe, expect, it } from "vitest";
import { SymbolScope } from "../../../host/linker/scope.js";
import type { Definition, Provider } from "../../../host/linker/scope.js";
import type { ExternType } from "../../../host/wasm/types.js";

const VOID: ExternType = { kind: "func", type: { params: [], results: [] } };
const I32_I32: ExternType = { kind: "func", type: { params: ["i32"], results: ["i32"] } };

const host: Provider = { kind: "host", name: "host", seq: 0 };
const libA: Provider = { kind: "library", name: "liba", seq: 5 };
const libB: Provider = { kind: "library", name: "libb", seq: 9 };
const modX: Provider = { kind: "module", name: "mod_x.c", seq: 1 };
const modY: Provider = { kind: "module", name: "mod_y.c", seq: 2 };
const modZ: Provider = { kind: "module", name: "mod_z.c", seq: 3 };

function def(name: string, provider: Provider, type: ExternType = VOID): Definition {
  return { name, type, provider };
}

/** Provider names of every definition of `name`, in scope order. */
function order(scope: SymbolScope, name: string): string[] {
  const found = scope.lookup(name);
  return found === undefined ? [] : [found.winner, ...found.shadowed].map((d) => d.provider.name);
}

describe("SymbolScope", () => {
  it("finds a single definition with nothing shadowed", () => {
    const scope = new SymbolScope();
    expect(scope.add([def("f", modX, I32_I32)])).toEqual([]);
    expect(scope.lookup("f")).toEqual({ winner: def("f", modX, I32_I32), shadowed: [] });
    expect(scope.first("f")).toEqual(def("f", modX, I32_I32));
    expect(scope.lookup("g")).toBeUndefined();
    expect(scope.first("g")).toBeUndefined();
    expect(scope.size).toBe(1);
  });

  it("puts the host first, even when it is added last", () => {
    const scope = new SymbolScope();
    scope.add([def("pr_log_debug", modX)]);
    scope.add([def("pr_log_debug", libA)]);
    const events = scope.add([def("pr_log_debug", host)]);
    expect(order(scope, "pr_log_debug")).toEqual(["host", "liba", "mod_x.c"]);
    // The host displaced the library, which had displaced mod_x.c.
    expect(events).toEqual([{ name: "pr_log_debug", winner: host, shadowed: libA }]);
  });

  it("puts libraries before modules regardless of load time", () => {
    const scope = new SymbolScope();
    // mod_x.c (seq 1) was loaded before liba (seq 5), yet liba wins.
    scope.add([def("math_add", modX)]);
    const events = scope.add([def("math_add", libA)]);
    expect(events).toEqual([{ name: "math_add", winner: libA, shadowed: modX }]);
    expect(scope.first("math_add")?.provider).toBe(libA);
    expect(order(scope, "math_add")).toEqual(["liba", "mod_x.c"]);
  });

  it("orders providers of one kind by load sequence, first definition winning", () => {
    const scope = new SymbolScope();
    expect(scope.add([def("f", modY)])).toEqual([]);
    expect(scope.add([def("f", modZ)])).toEqual([{ name: "f", winner: modY, shadowed: modZ }]);
    // An earlier sequence number added late still goes before the later ones.
    expect(scope.add([def("f", modX)])).toEqual([{ name: "f", winner: modX, shadowed: modY }]);
    expect(order(scope, "f")).toEqual(["mod_x.c", "mod_y.c", "mod_z.c"]);
    scope.add([def("g", libB)]);
    expect(scope.add([def("g", libA)])).toEqual([{ name: "g", winner: libA, shadowed: libB }]);
    expect(order(scope, "g")).toEqual(["liba", "libb"]);
  });

  it("reports one shadow event per shadowed name, in definition order", () => {
    const scope = new SymbolScope();
    scope.add([def("a", modX), def("b", modX), def("only_x", modX)]);
    const events = scope.add([def("b", modY), def("only_y", modY), def("a", modY)]);
    expect(events).toEqual([
      { name: "b", winner: modX, shadowed: modY },
      { name: "a", winner: modX, shadowed: modY },
    ]);
    expect(scope.size).toBe(4);
  });

  it("keeps the winner's type, not the shadowing definition's", () => {
    const scope = new SymbolScope();
    scope.add([def("f", modX, I32_I32)]);
    scope.add([def("f", modY, VOID)]);
    expect(scope.lookup("f")).toEqual({ winner: def("f", modX, I32_I32), shadowed: [def("f", modY, VOID)] });
  });

  it("lets the next definition win when the winner is removed", () => {
    const scope = new SymbolScope();
    scope.add([def("f", modX), def("only_x", modX)]);
    scope.add([def("f", modY)]);
    scope.add([def("f", modZ)]);
    scope.remove(modX, ["f", "only_x"]);
    expect(scope.lookup("f")).toEqual({ winner: def("f", modY), shadowed: [def("f", modZ)] });
    expect(scope.lookup("only_x")).toBeUndefined();
    expect(scope.size).toBe(1);
  });

  it("removing a shadowed definition keeps the winner", () => {
    const scope = new SymbolScope();
    scope.add([def("f", libA)]);
    scope.add([def("f", modX)]);
    scope.remove(modX, ["f"]);
    expect(scope.lookup("f")).toEqual({ winner: def("f", libA), shadowed: [] });
  });

  it("removes by provider identity and ignores names it never had", () => {
    const scope = new SymbolScope();
    scope.add([def("f", modX)]);
    // Same name and seq, but another provider object: a different load of mod_x.c.
    scope.remove({ ...modX }, ["f", "never_defined"]);
    expect(order(scope, "f")).toEqual(["mod_x.c"]);
    scope.remove(modX, ["f"]);
    expect(scope.lookup("f")).toBeUndefined();
    expect(scope.size).toBe(0);
  });

  it("a reloaded provider goes after those loaded since", () => {
    const scope = new SymbolScope();
    scope.add([def("f", modX)]);
    scope.add([def("f", modY)]);
    scope.remove(modX, ["f"]);
    const reloaded: Provider = { kind: "module", name: "mod_x.c", seq: 4 };
    expect(scope.add([def("f", reloaded)])).toEqual([{ name: "f", winner: modY, shadowed: reloaded }]);
    expect(order(scope, "f")).toEqual(["mod_y.c", "mod_x.c"]);
  });
});

describe("SymbolScope tables (a module entered whole)", () => {
  function table(...entries: Array<[string, ExternType]>): ReadonlyMap<string, ExternType> {
    return new Map(entries);
  }

  it("searches a table where its provider stands in scope order", () => {
    const scope = new SymbolScope();
    scope.addTable(modY, table(["f", VOID], ["only_y", I32_I32]), false);
    scope.add([def("f", libA)]);
    scope.addTable(modX, table(["f", I32_I32]), false);
    expect(order(scope, "f")).toEqual(["liba", "mod_x.c", "mod_y.c"]);
    expect(scope.lookup("f")).toEqual({ winner: def("f", libA), shadowed: [def("f", modX, I32_I32), def("f", modY)] });
    expect(scope.first("only_y")).toEqual(def("only_y", modY, I32_I32));
    expect(scope.first("g")).toBeUndefined();
    expect(scope.size).toBe(2);
  });

  it("reports who shadows whom only when asked, as add() does", () => {
    const scope = new SymbolScope();
    scope.add([def("f", modY)]);
    expect(scope.addTable(modZ, table(["f", VOID], ["g", VOID]), false)).toEqual([]);
    expect(scope.addTable(modX, table(["g", VOID], ["f", VOID]), true)).toEqual([
      { name: "g", winner: modX, shadowed: modZ },
      { name: "f", winner: modX, shadowed: modY },
    ]);
    // A library added by name after the tables displaces their winner.
    expect(scope.add([def("f", libA)])).toEqual([{ name: "f", winner: libA, shadowed: modX }]);
  });

  it("ranks definitions added by name among the tables by provider", () => {
    const scope = new SymbolScope();
    scope.addTable(modX, table(["g", VOID]), false);
    scope.addTable(modZ, table(["f", VOID]), false);
    scope.add([def("f", modY, I32_I32)]);
    expect(scope.first("f")).toEqual(def("f", modY, I32_I32));
    expect(order(scope, "f")).toEqual(["mod_y.c", "mod_z.c"]);
  });

  it("lets the next definition win when a table is removed, by provider identity", () => {
    const scope = new SymbolScope();
    scope.addTable(modX, table(["f", VOID], ["only_x", VOID]), false);
    scope.addTable(modY, table(["f", I32_I32]), false);
    scope.removeTable({ ...modX });
    expect(order(scope, "f")).toEqual(["mod_x.c", "mod_y.c"]);
    scope.removeTable(modX);
    expect(scope.lookup("f")).toEqual({ winner: def("f", modY, I32_I32), shadowed: [] });
    expect(scope.lookup("only_x")).toBeUndefined();
    expect(scope.size).toBe(1);
  });

  it("answers every lookup as the same modules added name by name would", () => {
    const names = ["a", "b", "c", "d"];
    const providers = [host, libA, libB, modX, modY, modZ];
    // Every provider defines a different subset of the names (bit i of a mask: names[i]).
    const masks = [0b0001, 0b0110, 0b1010, 0b1011, 0b0111, 0b1101];
    const byName = new SymbolScope();
    const withTables = new SymbolScope();
    const events: Array<[unknown, unknown]> = [];
    // Add in an order that is not scope order, then remove modY.
    for (const index of [4, 0, 3, 2, 5, 1]) {
      const provider = providers[index] as Provider;
      const defined = names.filter((_, bit) => ((masks[index] as number) >> bit) & 1);
      const definitions = defined.map((name) => def(name, provider));
      const expected = byName.add(definitions);
      const found =
        provider.kind === "module"
          ? withTables.addTable(provider, table(...defined.map((name): [string, ExternType] => [name, VOID])), true)
          : withTables.add(definitions);
      events.push([found, expected]);
    }
    byName.remove(modY, names);
    withTables.removeTable(modY);
    for (const [found, expected] of events) expect(found).toEqual(expected);
    for (const name of [...names, "unknown"]) {
      expect(withTables.lookup(name)).toEqual(byName.lookup(name));
      expect(withTables.first(name)).toEqual(byName.first(name));
    }
    expect(withTables.size).toBe(byName.size);
  });
});
