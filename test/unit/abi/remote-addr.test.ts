// pr_session_remote_addr and the session sess_init sees (host/ftp/session-init-call.ts):
// the client's address in sess_init, "" for a directive, a trap outside any handler,
// and the lines a refusing sess_init adds, in order, for the server to send before closing.
import { describe, expect, it } from "vitest";
import { HOST_SYMBOLS, hostSymbolType } from "../../../host/abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../../../host/abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { SessionInitCall } from "../../../host/ftp/session-init-call.js";
import { DirectiveCall } from "../../../host/modules/directive-call.js";
import { formatFuncType } from "../../../host/wasm/types.js";

/** Calls pr_session_remote_addr as a guest would, with `command` (or none) active; guest strings as a table. */
function remoteAddr(command: ActiveCommand | undefined): string {
  const symbol = HOST_SYMBOLS.get("pr_session_remote_addr");
  if (symbol === undefined) throw new Error("no host symbol pr_session_remote_addr");
  const values: string[] = [];
  const strings = {
    read: (ptr: number) => values[ptr] ?? "",
    create: (v: string) => values.push(v) - 1,
    release: () => {},
  };
  const importer: ImporterState = { name: "mod_ban.c", features: [], help: [], strings };
  const services: HostServices = { log: () => {}, trace: () => {}, activeCommand: () => command };
  return values[symbol.bind(importer, services)() as number] ?? "";
}

describe("pr_session_remote_addr", () => {
  it("is a session symbol returning a string", () => {
    const symbol = HOST_SYMBOLS.get("pr_session_remote_addr");
    expect(symbol && `${formatFuncType(hostSymbolType(symbol))} ${symbol.capability}`).toBe("func () -> i32 session");
  });

  it("gives the client's address in sess_init, and nothing for a directive", () => {
    expect(remoteAddr(new SessionInitCall("192.0.2.7"))).toBe("192.0.2.7");
    expect(remoteAddr(new DirectiveCall(["BanEngine", "on"]))).toBe("");
  });

  it("traps outside a handler", () => {
    expect(() => remoteAddr(undefined)).toThrow(DsoError);
    expect(() => remoteAddr(undefined)).toThrow(expect.objectContaining({ code: ErrorCodes.GUEST_TRAP }));
  });
});

describe("the session sess_init sees", () => {
  it("keeps the reply lines modules add, in order, as `code text`", () => {
    const session = new SessionInitCall("127.0.0.1");
    session.addError("530", "Host 127.0.0.1 has been banned");
    session.addResponse("421", "Try later");
    expect(session.lines).toEqual(["530 Host 127.0.0.1 has been banned", "421 Try later"]);
    expect([session.name, session.argv, session.user, session.cwd]).toEqual(["", [], undefined, undefined]);
  });
});
