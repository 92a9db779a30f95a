/**
 * mod_dso's directives for issue #12's limits: ModuleLoadLimits and
 * SessionCPUShare, run as the config reader runs them.
 */
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { DEFAULT_SESSION_CPU_SHARE_MS } from "../../../host/ftp/scheduler.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { MAX_SESSION_WORKERS, createDsoModule, parseSessionWorkers } from "../../../host/static/mod-dso/index.js";
import { DEFAULT_LOAD_LIMITS } from "../../../host/wasm/limits.js";
import { silentCommand } from "../../helpers/session.js";

function dso(): ReturnType<typeof createDsoModule> {
  return createDsoModule({
    host: () => {
      throw new Error("the limit directives never reach the host");
    },
    accounts: { uidOf: () => undefined, gidOf: () => undefined },
    log: () => {},
  });
}

/** Runs `line` (split on spaces) through the directive of that name; returns the error text, if any. */
function run(module: ReturnType<typeof createDsoModule>, line: string): string | undefined {
  const argv = line.split(" ");
  const handler = module.module.directives.find((d) => d.name === argv[0]);
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  try {
    handler.run(silentCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    expect(error.code).toBe(ErrorCodes.CONFIG);
    return error.message;
  }
  return undefined;
}

describe("ModuleLoadLimits", () => {
  it("sets one or several limits for a unit, keywords in any case, byte limits with a suffix", () => {
    const module = dso();
    expect(run(module, "ModuleLoadLimits mod_x.c Functions 200000 datAbytes 2M BinarySize 1G")).toBeUndefined();
    expect(run(module, "ModuleLoadLimits * tables 4")).toBeUndefined();
    expect(module.settings.policies.resolve("mod_x.c").loadLimits).toEqual({
      ...DEFAULT_LOAD_LIMITS,
      functions: 200_000,
      dataBytes: 2 * 1024 * 1024,
      binarySize: 1024 ** 3,
      tables: 4,
    });
    expect(module.settings.policies.resolve("libfoo").loadLimits).toEqual({ ...DEFAULT_LOAD_LIMITS, tables: 4 });
  });

  it("refuses a line with any bad pair, setting none of it", () => {
    const module = dso();
    expect(run(module, "ModuleLoadLimits mod_x.c Globals 7 Imports 10")).toBe(
      "unknown load limit 'Imports' (known: BinarySize, Functions, Globals, Tables, TableElements, ElementSegments, DataBytes)",
    );
    expect(module.settings.policies.resolve("mod_x.c").loadLimits).toBe(DEFAULT_LOAD_LIMITS);
  });

  it("checks its parameters", () => {
    const module = dso();
    expect(run(module, "ModuleLoadLimits mod_x.c Functions")).toBe("missing parameters");
    expect(run(module, "ModuleLoadLimits mod_x.c Functions 10 Globals")).toBe("load limit 'Globals' has no value");
    expect(run(module, "ModuleLoadLimits mod/x Functions 10")).toBe(
      "'mod/x' names no module or library (use mod_x.c, a library name such as libfoo, or *)",
    );
    expect(run(module, "ModuleLoadLimits mod_x.c Functions 10K")).toBe("invalid Functions '10K' (a number)");
    expect(run(module, "ModuleLoadLimits mod_x.c Functions -1")).toBe("invalid Functions '-1' (a number)");
    expect(run(module, "ModuleLoadLimits mod_x.c DataBytes lots")).toBe(
      "invalid DataBytes 'lots' (a number of bytes with an optional K, M or G suffix)",
    );
    expect(run(module, "ModuleLoadLimits mod_x.c TableElements 10000001")).toBe(
      "TableElements '10000001' is over V8's own limit of 10000000",
    );
    expect(run(module, "ModuleLoadLimits mod_x.c BinarySize 2G")).toBe(
      "BinarySize '2G' is over V8's own limit of 1073741824",
    );
    expect(run(module, "ModuleLoadLimits mod_x.c TableElements 10000000")).toBeUndefined();
    expect(run(module, "ModuleLoadLimits mod_x.c Functions 0")).toBeUndefined();
  });
});

describe("SessionCPUShare", () => {
  it("defaults to 250 ms per second and takes 1 to 1000, or off", () => {
    const module = dso();
    expect(module.settings.sessionCpuShareMs).toBe(DEFAULT_SESSION_CPU_SHARE_MS);
    expect(DEFAULT_SESSION_CPU_SHARE_MS).toBe(250);
    expect(run(module, "SessionCPUShare 100")).toBeUndefined();
    expect(module.settings.sessionCpuShareMs).toBe(100);
    expect(run(module, "SessionCPUShare Off")).toBeUndefined();
    expect(module.settings.sessionCpuShareMs).toBe(0);
    expect(run(module, "SessionCPUShare 1000")).toBeUndefined();
    expect(module.settings.sessionCpuShareMs).toBe(1000);
  });

  it("refuses anything else", () => {
    const module = dso();
    for (const value of ["0", "1001", "fast", "-5", "2.5", "010"]) {
      expect(run(module, `SessionCPUShare ${value}`)).toBe(
        `invalid CPU share '${value}' (milliseconds per second, 1 to 1000, or off)`,
      );
    }
    expect(run(module, "SessionCPUShare")).toBe("missing parameters");
    expect(module.settings.sessionCpuShareMs).toBe(DEFAULT_SESSION_CPU_SHARE_MS);
  });
});

describe("SessionWorkers", () => {
  it("is auto by default (one worker per CPU) and takes off, auto or 1 to 256, in any case", () => {
    const module = dso();
    expect(module.settings.sessionWorkers).toBe(Math.min(availableParallelism(), MAX_SESSION_WORKERS));
    expect(run(module, "SessionWorkers 2")).toBeUndefined();
    expect(module.settings.sessionWorkers).toBe(2);
    expect(run(module, "SessionWorkers 256")).toBeUndefined();
    expect(module.settings.sessionWorkers).toBe(256);
    expect(run(module, "SessionWorkers OFF")).toBeUndefined();
    expect(module.settings.sessionWorkers).toBeUndefined();
    expect(run(module, "SessionWorkers Auto")).toBeUndefined();
    expect(module.settings.sessionWorkers).toBeGreaterThanOrEqual(1);
  });

  it("makes auto the CPUs the process may use, at most 256", () => {
    expect(parseSessionWorkers("auto", () => 6)).toBe(6);
    expect(parseSessionWorkers("auto", () => 1024)).toBe(MAX_SESSION_WORKERS);
    expect(MAX_SESSION_WORKERS).toBe(256);
  });

  it("refuses anything else, keeping what was set", () => {
    const module = dso();
    expect(run(module, "SessionWorkers 4")).toBeUndefined();
    for (const value of ["0", "257", "-1", "02", "2.5", "on", "many"]) {
      expect(run(module, `SessionWorkers ${value}`)).toBe(`invalid worker count '${value}' (1 to 256, auto or off)`);
    }
    expect(run(module, "SessionWorkers")).toBe("missing parameters");
    expect(module.settings.sessionWorkers).toBe(4);
  });
});

describe("ModuleMemoryTotal and ModuleInstances", () => {
  function withHost(): { module: ReturnType<typeof createDsoModule>; host: ModuleHost } {
    const host = new ModuleHost({ modulePath: "/nonexistent" });
    const module = createDsoModule({
      host: () => host,
      accounts: { uidOf: () => undefined, gidOf: () => undefined },
      log: () => {},
    });
    return { module, host };
  }

  it("bounds the daemon's guest memory with a size (K, M, G or T), or lifts the bound with none", () => {
    const { module, host } = withHost();
    expect(run(module, "ModuleMemoryTotal 64K")).toBeUndefined();
    // No guest loaded: a session needs nothing of the bound.
    expect(host.acquireModules().instances?.reservedBytes).toBe(0);
    expect(run(module, "ModuleMemoryTotal 2g")).toBeUndefined();
    expect(run(module, "ModuleMemoryTotal none")).toBeUndefined();
    expect(run(module, "ModuleMemoryTotal 1.5G")).toBe(
      "invalid size '1.5G' (a number of bytes with an optional K, M, G or T suffix, or none)",
    );
    expect(run(module, "ModuleMemoryTotal 1000")).toBe("size '1000' is out of range (64K or more)");
    // proftpd's CHECK_ARGS: too few is refused, as for every mod_dso directive.
    expect(run(module, "ModuleMemoryTotal")).toBe("missing parameters");
  });

  it("sets how sessions get their instances, in any case, and refuses anything else", () => {
    const { module, host } = withHost();
    expect(host.sessionInstances).toBe("snapshot");
    expect(run(module, "ModuleInstances Replay")).toBeUndefined();
    expect(host.sessionInstances).toBe("replay");
    expect(run(module, "ModuleInstances shared")).toBeUndefined();
    expect(host.sessionInstances).toBe("shared");
    expect(run(module, "ModuleInstances fork")).toBe("invalid value 'fork' (snapshot, replay or shared)");
    expect(host.sessionInstances).toBe("shared");
  });
});
