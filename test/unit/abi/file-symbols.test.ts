// The host symbols that show a guest the session's files and transfers
// (pr_session_cwd, pr_cmd_path, pr_xfer_*), bound as the linker binds them and
// called with hand-built commands: values, the documented "" / -1 for what is
// missing, f64 past 2^31, and a trap outside a handler.
import { describe, expect, it } from "vitest";
import { HOST_SYMBOLS, hostSymbolType } from "../../../host/abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../../../host/abi/host-symbols.js";
import type { GuestStrings } from "../../../host/abi/guest-memory.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { DirectiveCall } from "../../../host/modules/directive-call.js";
import type { TransferInfo } from "../../../host/modules/module-api.js";
import { formatFuncType } from "../../../host/wasm/types.js";
import { testCommand } from "../../helpers/session.js";

/** Guest strings as a table: `create` hands out indexes, `read` looks them up. */
function stringTable(): GuestStrings & { readonly values: string[] } {
  const values: string[] = [];
  return {
    values,
    read: (ptr) => values[ptr] ?? "",
    create: (value) => values.push(value) - 1,
    release: () => {},
  };
}

/** Calls host symbol `name` as a guest would, with `command` (or none) being handled. */
function call(name: string, command: ActiveCommand | undefined): unknown {
  const symbol = HOST_SYMBOLS.get(name);
  if (symbol === undefined) throw new Error(`no host symbol ${name}`);
  const strings = stringTable();
  const importer: ImporterState = { name: "mod_x.c", features: [], help: [], strings };
  const services: HostServices = { log: () => {}, trace: () => {}, activeCommand: () => command };
  const result = symbol.bind(importer, services)();
  return symbol.result === "string" ? strings.read(result as number) : result;
}

function command(
  fields: Partial<Pick<ActiveCommand, "cwd" | "path" | "transfer">>,
  argv = ["STOR", "a.bin"],
): ActiveCommand {
  return { ...testCommand(argv, {}, "demo"), ...fields };
}

const UPLOAD: TransferInfo = { direction: "upload", bytes: 1234, fileSize: 5234, durationMs: 17, complete: true };

describe("the file and transfer host symbols", () => {
  it("have the documented signatures and capabilities", () => {
    const table = [
      "pr_session_cwd",
      "pr_cmd_path",
      "pr_xfer_direction",
      "pr_xfer_bytes",
      "pr_xfer_file_size",
      "pr_xfer_duration_ms",
      "pr_xfer_complete",
    ].map((name) => {
      const symbol = HOST_SYMBOLS.get(name);
      return symbol === undefined
        ? `${name}: missing`
        : `${name}: ${formatFuncType(hostSymbolType(symbol))} ${symbol.capability}`;
    });
    expect(table).toEqual([
      "pr_session_cwd: func () -> i32 command",
      "pr_cmd_path: func () -> i32 command",
      "pr_xfer_direction: func () -> i32 transfer",
      "pr_xfer_bytes: func () -> f64 transfer",
      "pr_xfer_file_size: func () -> f64 transfer",
      "pr_xfer_duration_ms: func () -> f64 transfer",
      "pr_xfer_complete: func () -> i32 transfer",
    ]);
  });

  it("give the working directory and the command's path inside the jail", () => {
    const cmd = command({ cwd: "/pub/incoming", path: "/pub/incoming/a.bin" });
    expect(call("pr_session_cwd", cmd)).toBe("/pub/incoming");
    expect(call("pr_cmd_path", cmd)).toBe("/pub/incoming/a.bin");
  });

  it("give an empty path for a command that names none, and an empty cwd for a directive", () => {
    expect(call("pr_cmd_path", command({ cwd: "/", path: undefined }, ["NOOP"]))).toBe("");
    const directive = new DirectiveCall(["UploadFilterDeny", "*.exe"]);
    expect(call("pr_session_cwd", directive)).toBe("");
    expect(call("pr_cmd_path", directive)).toBe("");
  });

  it("give what a transfer moved, once the command carries it", () => {
    const cmd = command({ cwd: "/", path: "/a.bin", transfer: UPLOAD });
    expect(
      ["pr_xfer_direction", "pr_xfer_bytes", "pr_xfer_file_size", "pr_xfer_duration_ms", "pr_xfer_complete"].map((n) =>
        call(n, cmd),
      ),
    ).toEqual(["upload", 1234, 5234, 17, 1]);
    const aborted = command(
      { transfer: { direction: "download", bytes: 10, fileSize: 99, durationMs: 0, complete: false } },
      ["RETR", "a.bin"],
    );
    expect(call("pr_xfer_direction", aborted)).toBe("download");
    expect(call("pr_xfer_complete", aborted)).toBe(0);
  });

  it("pass sizes beyond 2^31 and 2^32 exactly (f64)", () => {
    const big = command({ transfer: { ...UPLOAD, bytes: 2 ** 31 + 1, fileSize: 6_000_000_007 } });
    expect(call("pr_xfer_bytes", big)).toBe(2147483649);
    expect(call("pr_xfer_file_size", big)).toBe(6000000007);
  });

  it("answer -1 (and an empty direction) for a command without a transfer", () => {
    const cmd = command({ cwd: "/", path: "/a.bin" });
    expect(
      ["pr_xfer_direction", "pr_xfer_bytes", "pr_xfer_file_size", "pr_xfer_duration_ms", "pr_xfer_complete"].map((n) =>
        call(n, cmd),
      ),
    ).toEqual(["", -1, -1, -1, -1]);
  });

  it("trap when called outside a command or directive handler", () => {
    for (const name of ["pr_session_cwd", "pr_cmd_path", "pr_xfer_bytes", "pr_xfer_complete"]) {
      let caught: unknown;
      try {
        call(name, undefined);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(DsoError);
      expect((caught as DsoError).code).toBe(ErrorCodes.GUEST_TRAP);
      expect((caught as DsoError).message).toBe(`'${name}' called outside a command or directive handler`);
    }
  });
});
