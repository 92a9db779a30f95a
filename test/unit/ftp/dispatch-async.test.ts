import { describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { ANY_COMMAND, dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { DispatchOptions, HandlerFault } from "../../../host/ftp/dispatch.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, Phase } from "../../../host/modules/module-api.js";
import { settled, testSession } from "../../helpers/session.js";

function module(name: string, commands: CommandHandler[]): EngineModule {
  return { name, kind: "static", commands, siteCommands: [], directives: [], features: [], help: [] };
}

function handler(
  command: string,
  phase: Phase,
  run: (cmd: ActiveCommand) => HandlerResult | Promise<HandlerResult>,
): CommandHandler {
  return { command, phase, run };
}

function line(text: string) {
  const parsed = parseCommandLine(text);
  if (parsed === undefined) throw new Error(text);
  return parsed;
}

describe("dispatchCommand with handlers that return a Promise", () => {
  it("waits for an async CMD handler, then runs POST_CMD and LOG_CMD in order", async () => {
    const trace: string[] = [];
    const mod = module("mod_x.c", [
      handler("RETR", Phases.CMD, async (cmd) => {
        trace.push("CMD");
        await Promise.resolve();
        cmd.transfer = { direction: "download", bytes: 5, fileSize: 5, durationMs: 1, complete: true };
        cmd.addResponse("226", "Transfer complete");
        return HandlerResults.HANDLED;
      }),
      handler("RETR", Phases.POST_CMD, (cmd) => {
        trace.push(`POST_CMD ${cmd.transfer?.bytes ?? "none"}`);
        return HandlerResults.DECLINED;
      }),
      handler("RETR", Phases.LOG_CMD, () => {
        trace.push("LOG_CMD");
        return HandlerResults.DECLINED;
      }),
    ]);
    const result = dispatchCommand(testSession([mod], "demo"), line("RETR f"));
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toEqual({ lines: ["226 Transfer complete"], ok: true });
    expect(trace).toEqual(["CMD", "POST_CMD 5", "LOG_CMD"]);
  });

  it("turns a rejected handler Promise into the 451 fault reply and the _ERR phases", async () => {
    const trace: string[] = [];
    const faults: HandlerFault[] = [];
    const failure = new Error("disk on fire");
    const mod = module("mod_x.c", [
      handler("STOR", Phases.CMD, () => Promise.reject(failure)),
      handler("STOR", Phases.LOG_CMD_ERR, () => {
        trace.push("LOG_CMD_ERR");
        return HandlerResults.DECLINED;
      }),
    ]);
    const result = await dispatchCommand(testSession([mod], "demo"), line("STOR f"), {
      onFault: (f) => faults.push(f),
    });
    expect(result).toEqual({ lines: ["451 Requested action aborted: local error in processing."], ok: false });
    expect(trace).toEqual(["LOG_CMD_ERR"]);
    expect(faults).toEqual([{ session: 1, module: "mod_x.c", phase: Phases.CMD, command: "STOR", error: failure }]);
  });

  it("stays synchronous when every handler answers at once", () => {
    const mod = module("mod_x.c", [
      handler("NOOP", Phases.CMD, (cmd) => (cmd.addResponse("200", "ok"), HandlerResults.HANDLED)),
    ]);
    expect(settled(dispatchCommand(testSession([mod], "demo"), line("NOOP")))).toEqual({ lines: ["200 ok"], ok: true });
  });
});

describe("dispatchCommand's C_ANY handlers, authorization and paths", () => {
  it("calls a handler registered for * for every command, in its module's turn", () => {
    const seen: string[] = [];
    const logger = module("mod_log.c", [
      handler(ANY_COMMAND, Phases.LOG_CMD, (cmd) => {
        seen.push(cmd.name);
        return HandlerResults.DECLINED;
      }),
    ]);
    const core = module("mod_core.c", [
      handler("NOOP", Phases.CMD, (cmd) => (cmd.addResponse("200", "ok"), HandlerResults.HANDLED)),
    ]);
    const session = testSession([core, logger], "demo");
    settled(dispatchCommand(session, line("NOOP")));
    settled(dispatchCommand(session, line("NOOP x")));
    expect(seen).toEqual(["NOOP", "NOOP"]);
  });

  it("refuses with the authorizer's reply before PRE_CMD, and still runs the _ERR phases", () => {
    const trace: string[] = [];
    const mod = module("mod_x.c", [
      handler("DELE", Phases.PRE_CMD, () => (trace.push("PRE_CMD"), HandlerResults.DECLINED)),
      handler("DELE", Phases.CMD, () => (trace.push("CMD"), HandlerResults.HANDLED)),
      handler(
        "DELE",
        Phases.LOG_CMD_ERR,
        (cmd) => (trace.push(`LOG_CMD_ERR ${cmd.path ?? ""}`), HandlerResults.DECLINED),
      ),
    ]);
    const options: DispatchOptions = {
      pathOf: () => "/secret/f",
      authorize: (_session, cmd) =>
        cmd.path?.startsWith("/secret") ? { code: "550", message: "f: Permission denied" } : undefined,
    };
    expect(settled(dispatchCommand(testSession([mod], "demo"), line("DELE f"), options))).toEqual({
      lines: ["550 f: Permission denied"],
      ok: false,
    });
    expect(trace).toEqual(["LOG_CMD_ERR /secret/f"]);
  });

  it("answers 530 before login without asking the authorizer", () => {
    let asked = 0;
    const mod = module("mod_x.c", [handler("DELE", Phases.CMD, () => HandlerResults.HANDLED)]);
    const result = settled(
      dispatchCommand(testSession([mod], undefined), line("DELE f"), {
        authorize: () => {
          asked++;
          return undefined;
        },
      }),
    );
    expect(result.lines).toEqual(["530 Please login with USER and PASS"]);
    expect(asked).toBe(0);
  });
});

describe("dispatchCommand before login", () => {
  it("runs a handler that declares requiresAuth false, and answers 530 for the same module's other commands", () => {
    const mod = module("mod_tls.c", [
      {
        ...handler("PBSZ", Phases.CMD, (cmd) => (cmd.addResponse("200", "PBSZ 0 successful"), HandlerResults.HANDLED)),
        requiresAuth: false,
      },
      handler("CCC", Phases.CMD, () => HandlerResults.HANDLED),
    ]);
    const session = testSession([mod], undefined);
    expect(settled(dispatchCommand(session, line("PBSZ 0"))).lines).toEqual(["200 PBSZ 0 successful"]);
    expect(settled(dispatchCommand(session, line("CCC"))).lines).toEqual(["530 Please login with USER and PASS"]);
  });
});

describe("reply lines carry no client CR or LF", () => {
  it("makes a CR or LF in the text a space, so a name cannot forge a second reply line", () => {
    const mod = module("mod_x.c", [
      handler(
        "SIZE",
        Phases.CMD,
        (cmd) => (cmd.addError("550", `${cmd.arg}: No such file or directory`), HandlerResults.ERROR),
      ),
    ]);
    const result = settled(dispatchCommand(testSession([mod], "demo"), line("SIZE a\rb\r230 forged")));
    expect(result.lines).toEqual(["550 a b 230 forged: No such file or directory"]);
  });
});
