/**
 * The planner over an injected source: no files, no hashes, no clock. Binaries
 * are inline WAT, compiled here; the source says which are "on disk", what is
 * loaded, and records what the planner asked for and traced.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { HOST_SYMBOLS, hostSymbolType } from "../../../host/abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import type { Definition, Provider } from "../../../host/linker/scope.js";
import type { CompiledBinary } from "../../../host/modules/module-compiler.js";
import { HOST_PROVIDER, LinkError, planLoad } from "../../../host/modules/planner.js";
import type { LinkedProvider, PlanSource, PlannedUnit, UnitRequest } from "../../../host/modules/planner.js";
import { DEFAULT_POLICY } from "../../../host/modules/policy.js";
import type { UnitPolicy } from "../../../host/modules/policy.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { wat } from "../../helpers/wat.js";

const API = "(i32.const 0x20)";
const binaries = new Map<string, CompiledBinary>();

async function binary(file: string, text: string): Promise<void> {
  const bytes = await wat(text);
  binaries.set(file, {
    compiled: new WebAssembly.Module(bytes),
    shape: readModuleShape(bytes),
    size: bytes.byteLength,
    hash: file,
    instanceState: { globals: [], memory: undefined, start: undefined, unsnapshotable: undefined },
  });
}

beforeAll(async () => {
  await binary(
    "/m/mod_a.wasm",
    `(module (import "libb" "b" (func (result i32))) (global (export "a_module") i32 ${API}))`,
  );
  await binary(
    "/m/libb.wasm",
    `(module (import "libc" "c" (func (result i32))) (func (export "b") (result i32) i32.const 2))`,
  );
  await binary("/m/libc.wasm", `(module (func (export "c") (result i32) i32.const 3))`);
  await binary("/m/mod_cyc.wasm", `(module (import "mod_cyd" "d" (func)) (global (export "cyc_module") i32 ${API}))`);
  await binary(
    "/m/mod_cyd.wasm",
    `(module (import "mod_cyc" "c" (func)) (func (export "d")) (global (export "cyd_module") i32 ${API}))`,
  );
  await binary(
    "/m/mod_mixed.wasm",
    `(module
    (import "env" "memory" (memory 1 1))
    (import "env" "pr_session_user" (func (result i32)))
    (import "env" "nowhere" (func))
    (import "libgone" "g" (func))
    (func (export "__new") (param i32 i32) (result i32) i32.const 0)
    (global (export "mixed_module") i32 ${API}))`,
  );
});

interface Recorded {
  readonly source: PlanSource;
  readonly opened: string[];
  readonly trace: string[];
}

function source(
  loaded: ReadonlyMap<string, LinkedProvider> = new Map(),
  policy: UnitPolicy = DEFAULT_POLICY,
): Recorded {
  const opened: string[] = [];
  const trace: string[] = [];
  let seq = 0;
  return {
    opened,
    trace,
    source: {
      modulePath: () => "/m",
      policy: () => policy,
      open: (request: UnitRequest) => {
        opened.push(request.file);
        const found = binaries.get(request.file);
        if (found === undefined) throw new DsoError(ErrorCodes.MODULE_NOT_FOUND, "absent");
        return found;
      },
      isCompiledIn: (name) => name === "mod_core.c",
      loadedNamespace: (namespace) => loaded.get(namespace),
      loadedProvider: (provider: Provider) => [...loaded.values()].find((l) => l.provider === provider),
      lookupGlobal: (name): Definition | undefined => {
        const symbol = HOST_SYMBOLS.get(name);
        return symbol === undefined
          ? undefined
          : { name, type: { kind: "func", type: hostSymbolType(symbol) }, provider: HOST_PROVIDER };
      },
      sandboxProblem: () => undefined,
      nextSeq: () => ++seq,
      trace: (level, message) => trace.push(`${level}: ${message}`),
      wrongApiVersion: () => {},
    },
  };
}

const modA: UnitRequest = {
  kind: "module",
  name: "mod_a.c",
  namespace: "mod_a",
  file: "/m/mod_a.wasm",
  explicit: true,
};

describe("planLoad", () => {
  it("orders the needed libraries before their dependents, and binds each import to its provider", () => {
    const { source: src, opened, trace } = source();
    const plan = planLoad(modA, src);
    expect(plan.order.map((u) => `${u.name} ${u.explicit ? "asked" : "needed"} seq ${u.provider.seq}`)).toEqual([
      "libc needed seq 1",
      "libb needed seq 2",
      "mod_a.c asked seq 3",
    ]);
    expect(opened).toEqual(["/m/mod_a.wasm", "/m/libb.wasm", "/m/libc.wasm"]);
    const [libc, libb, a] = plan.order;
    const bound = (unit: PlannedUnit | undefined): string[] =>
      (unit === undefined ? [] : (plan.bindings.get(unit) ?? [])).map((b) =>
        "definition" in b ? `${b.import.name} -> ${b.definition.provider.name}` : "",
      );
    expect(bound(a)).toEqual(["b -> libb"]);
    expect(bound(libb)).toEqual(["c -> libc"]);
    expect(libc?.provider.name).toBe("libc");
    expect(trace).toEqual([
      "7: looking for symbol 'a_module' in loaded module",
      "5: loading library '/m/libb.wasm' needed by mod_a.c",
      "5: loading library '/m/libc.wasm' needed by libb",
    ]);
  });

  it("links to a library already loaded instead of planning it again", () => {
    const libb = binaries.get("/m/libb.wasm");
    if (libb === undefined) throw new Error("libb was not built");
    const loaded = new Map([
      ["libb", { shape: libb.shape, provider: { kind: "library" as const, name: "libb", seq: 9 }, needs: [] }],
    ]);
    const { source: src, opened } = source(loaded);
    expect(planLoad(modA, src).order.map((u) => u.name)).toEqual(["mod_a.c"]);
    expect(opened).toEqual(["/m/mod_a.wasm"]);
  });

  it("refuses a cycle of needed modules, naming the chain", () => {
    const request: UnitRequest = {
      kind: "module",
      name: "mod_cyc.c",
      namespace: "mod_cyc",
      file: "/m/mod_cyc.wasm",
      explicit: true,
    };
    expect(() => planLoad(request, source().source)).toThrow(
      expect.objectContaining({
        code: ErrorCodes.DEPENDENCY_CYCLE,
        message: "dependency cycle: mod_cyc.c -> mod_cyd.c -> mod_cyc.c",
      }),
    );
  });

  it("reports every problem of the load together, as data, and decides the code from it", () => {
    const request: UnitRequest = {
      kind: "module",
      name: "mod_mixed.c",
      namespace: "mod_mixed",
      file: "/m/mod_mixed.wasm",
      explicit: true,
    };
    let error: unknown;
    try {
      planLoad(request, source().source);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(LinkError);
    const link = error as LinkError;
    expect(link.problems.map((p) => p.kind)).toEqual([
      "needed-failed",
      "undefined-symbol",
      "undefined-symbol",
      "capability",
    ]);
    expect(link.code).toBe(ErrorCodes.LINK);
    expect(link.lines).toEqual([
      "mod_mixed.c: needed library 'libgone': absent",
      "mod_mixed.c: undefined symbol 'nowhere' (func () -> nil)",
      "mod_mixed.c: undefined symbol 'g' in libgone (func () -> nil)",
      "mod_mixed.c: symbol 'pr_session_user' needs capability 'session', which mod_mixed.c is not granted",
    ]);
  });
});
