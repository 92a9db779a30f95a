// pr_session_disconnect and pr_time_now on the host's clock, through the built
// mod_ban.c (dist/libexec) in a ModuleHost with an injected clock: a
// ClientConnectRate autoban ends the session with pr_session_disconnect from
// sess_init, lasts its BanOnEvent duration by that clock, and expires when the
// clock passes it, with no waiting.
import { afterEach, describe, expect, it } from "vitest";
import { HOST_SYMBOLS, hostSymbolType } from "../../../host/abi/host-symbols.js";
import type { ActiveCommand, HostServices, ImporterState } from "../../../host/abi/host-symbols.js";
import { ControlRequest, moduleControlsActions } from "../../../host/controls/module-controls.js";
import type { ControlsCaller } from "../../../host/controls/exchange.js";
import { isDsoError, ErrorCodes } from "../../../host/errors.js";
import { SessionInitCall } from "../../../host/ftp/session-init-call.js";
import { DirectiveCall } from "../../../host/modules/directive-call.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { DEFAULT_CAPABILITIES, DEFAULT_POLICY } from "../../../host/modules/policy.js";
import { formatFuncType } from "../../../host/wasm/types.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";

const MODULE = "mod_ban.c";
const root: ControlsCaller = { uid: 0, gid: 0, pid: 1, user: "root", group: "root" };
/** Sat Dec  5 00:00:00 2026 UTC: where the injected clock starts. */
const START = Date.UTC(2026, 11, 5);
let now = START;

const hosts: ModuleHost[] = [];
afterEach(() => {
  for (const host of hosts.splice(0)) for (const name of host.listModules().reverse()) host.unloadModule(name);
});

/** mod_ban.c, granted `session`, configured with `directives` on a host whose clock is `now`. */
function modBan(...directives: string[][]): ModuleHost {
  now = START;
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    clock: () => now,
    policy: () => ({ ...DEFAULT_POLICY, capabilities: new Set([...DEFAULT_CAPABILITIES, "session" as const]) }),
  });
  hosts.push(host);
  host.loadModule(MODULE);
  const handlers = host.engineModules().flatMap((m) => m.directives);
  for (const words of directives) {
    const handler = handlers.find((d) => d.name === words[0]);
    if (handler === undefined) throw new Error(`${MODULE} has no directive ${words[0]}`);
    handler.run(new DirectiveCall(words), { file: "test.conf", line: 1, first: false });
  }
  return host;
}

/** A session from `address` as the daemon starts one: what sess_init sent, and whether it let the session on. */
function connect(host: ModuleHost, address: string): { lines: string[]; refused: boolean; disconnected: boolean } {
  const init = new SessionInitCall(address);
  let refused = false;
  for (const module of host.engineModules()) {
    try {
      module.sessionInit?.(init);
    } catch (error) {
      if (!isDsoError(error) || error.code !== ErrorCodes.INIT_FAILED) throw error;
      refused = true;
    }
  }
  return { lines: init.lines, refused, disconnected: init.disconnected };
}

/** `dsoctl ban args...` answered by the guest's ctrl_ban. */
function ban(host: ModuleHost, ...args: string[]): readonly string[] {
  const action = moduleControlsActions(host.engineModules()).find((a) => a.name === "ban");
  if (action === undefined) throw new Error(`${MODULE} registers no ban control`);
  const answer = action.handler(args, root);
  if (answer instanceof Promise) throw new Error("a guest control answers at once");
  return answer.lines;
}

const RATE = [
  ["BanEngine", "on"],
  ["BanMessage", "Host %a has been banned"],
  ["BanOnEvent", "ClientConnectRate", "2/00:00:05", "00:00:10"],
];

describe("mod_ban.c on the host's clock", () => {
  it("ends the connection that reached ClientConnectRate with pr_session_disconnect, and bans its host", () => {
    const host = modBan(...RATE);
    expect(connect(host, "10.0.0.1")).toEqual({ lines: [], refused: false, disconnected: false });
    expect(connect(host, "10.0.0.1")).toEqual({
      lines: ["530 Host 10.0.0.1 has been banned"],
      refused: true,
      disconnected: true,
    });
    expect(connect(host, "10.0.0.2")).toEqual({ lines: [], refused: false, disconnected: false });
  });

  it("keeps the autoban for its BanOnEvent duration by the injected clock, and lifts it once that passes", () => {
    const host = modBan(...RATE);
    connect(host, "10.0.0.1");
    connect(host, "10.0.0.1");
    expect(ban(host, "info", "-v")).toEqual([
      "Banned Hosts:",
      "  10.0.0.1",
      "    Reason: ClientConnectRate autoban at Sat Dec  5 00:00:00 2026",
      "    Expires: Sat Dec  5 00:00:10 2026 (in 10 seconds)",
    ]);
    now += 9_000;
    // ban_sess_init refuses a banned host with its message, and returns -1 without pr_session_disconnect.
    expect(connect(host, "10.0.0.1")).toEqual({
      lines: ["530 Host 10.0.0.1 has been banned"],
      refused: true,
      disconnected: false,
    });
    expect(ban(host, "info", "-v")).toContain("    Expires: Sat Dec  5 00:00:10 2026 (in 1 seconds)");
    now += 2_000;
    expect(connect(host, "10.0.0.1")).toEqual({ lines: [], refused: false, disconnected: false });
    expect(ban(host, "info")).toEqual(["No bans"]);
  });
});

describe("pr_session_disconnect", () => {
  const symbol = HOST_SYMBOLS.get("pr_session_disconnect");

  /** Calls the symbol as a guest would, with `command` active and `details` as its string. */
  function disconnect(command: ActiveCommand | undefined, details = ""): void {
    if (symbol === undefined) throw new Error("no host symbol pr_session_disconnect");
    const strings = { read: () => details, create: () => 0, release: () => {} };
    const importer: ImporterState = { name: MODULE, features: [], help: [], strings };
    const services: HostServices = { log: () => {}, trace: () => {}, activeCommand: () => command };
    (symbol.bind(importer, services) as (details: number) => void)(1);
  }

  it("is a session symbol taking the details string", () => {
    const described = symbol && `${formatFuncType(hostSymbolType(symbol))} ${symbol.capability}`;
    expect(described).toBe("func (i32) -> nil session");
  });

  it("marks the session sess_init sees as ended", () => {
    const init = new SessionInitCall("192.0.2.7");
    disconnect(init, "Banned");
    expect(init.disconnected).toBe(true);
  });

  it("traps in a directive, a control action, and outside any handler", () => {
    const trap = (command: ActiveCommand | undefined): string => {
      try {
        disconnect(command);
      } catch (error) {
        if (isDsoError(error) && error.code === ErrorCodes.GUEST_TRAP) return error.message;
        throw error;
      }
      throw new Error("no trap");
    };
    expect(trap(new DirectiveCall(["BanEngine", "on"]))).toBe("'pr_session_disconnect' called outside a session");
    expect(trap(new ControlRequest(["ban", "info"], "root"))).toBe("'pr_session_disconnect' called outside a session");
    expect(trap(undefined)).toBe("'pr_session_disconnect' called outside a command or directive handler");
  });
});
