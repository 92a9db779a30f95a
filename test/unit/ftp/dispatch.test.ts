import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { CONTINUATION, ResponseList, dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { HandlerFault } from "../../../host/ftp/dispatch.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type {
  CommandHandler,
  EngineModule,
  HandlerResult,
  Phase,
  SessionState,
} from "../../../host/modules/module-api.js";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { settled, testSession } from "../../helpers/session.js";

type Run = (cmd: ActiveCommand, session: SessionState) => HandlerResult;

function handler(command: string, phase: Phase, run: Run): CommandHandler {
  return { command, phase, run };
}

function fakeModule(name: string, commands: CommandHandler[]): EngineModule {
  return { name, kind: "dso", commands, siteCommands: [], directives: [], features: [], help: [] };
}

function session(modules: EngineModule[], loggedIn = true): SessionState {
  return testSession(modules, loggedIn ? "demo" : undefined);
}

function run(state: SessionState, text: string, faults: HandlerFault[] = []) {
  const line = parseCommandLine(text);
  if (line === undefined) throw new Error(`no command in '${text}'`);
  return settled(dispatchCommand(state, line, { onFault: (fault) => faults.push(fault) }));
}

/** A handler that records its call in `trace` and answers `result`, adding `reply` when given. */
function traced(
  trace: string[],
  label: string,
  command: string,
  phase: Phase,
  result: HandlerResult,
  reply?: [string, string],
): CommandHandler {
  return handler(command, phase, (cmd) => {
    trace.push(label);
    if (reply !== undefined) {
      if (result === HandlerResults.ERROR) cmd.addError(...reply);
      else cmd.addResponse(...reply);
    }
    return result;
  });
}

describe("ResponseList", () => {
  it("writes a single line as `code text`", () => {
    const list = new ResponseList();
    list.add("200", "NOOP command successful");
    expect(list.lines()).toEqual(["200 NOOP command successful"]);
  });

  it("writes continuation lines with a leading space and ends with the opening code", () => {
    const list = new ResponseList();
    list.add("211", "Features:");
    list.add(CONTINUATION, "TEST");
    list.add(CONTINUATION, "End");
    expect(list.lines()).toEqual(["211-Features:", " TEST", "211 End"]);
  });

  it("keeps lines sorted by code, stable within a code, as pr_response_add inserts them", () => {
    const list = new ResponseList();
    list.add("230", "b");
    list.add("200", "a");
    list.add("230", "c");
    expect(list.lines()).toEqual(["200 a", "230-b", "230 c"]);
  });

  it("gives pending continuation lines the code of the next coded line", () => {
    const list = new ResponseList();
    list.add("214", "header");
    list.add(CONTINUATION, "HELLO");
    list.add("214", "footer");
    expect(list.lines()).toEqual(["214-header", " HELLO", "214 footer"]);
  });

  it("sends nothing for continuation lines that never got a code", () => {
    const list = new ResponseList();
    list.add(CONTINUATION, "orphan");
    expect(list.lines()).toEqual([]);
  });
});

describe("dispatchCommand", () => {
  it("runs CMD handlers newest module first; DECLINED passes on, the first HANDLED ends the phase", () => {
    const trace: string[] = [];
    const oldest = fakeModule("mod_a.c", [
      traced(trace, "a", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "from a"]),
    ]);
    const middle = fakeModule("mod_b.c", [
      traced(trace, "b", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "from b"]),
    ]);
    const newest = fakeModule("mod_c.c", [traced(trace, "c", "X", Phases.CMD, HandlerResults.DECLINED)]);
    const result = run(session([oldest, middle, newest]), "X");
    expect(trace).toEqual(["c", "b"]);
    expect(result).toEqual({ lines: ["200 from b"], ok: true });
  });

  it("runs PRE_CMD, CMD, POST_CMD, LOG_CMD in order on success, and sends the success list", () => {
    const trace: string[] = [];
    const module = fakeModule("mod_a.c", [
      traced(trace, "log", "X", Phases.LOG_CMD, HandlerResults.DECLINED),
      traced(trace, "post", "X", Phases.POST_CMD, HandlerResults.DECLINED, ["200", "post"]),
      traced(trace, "cmd", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "cmd"]),
      traced(trace, "pre", "X", Phases.PRE_CMD, HandlerResults.DECLINED),
      traced(trace, "post-err", "X", Phases.POST_CMD_ERR, HandlerResults.DECLINED),
      traced(trace, "log-err", "X", Phases.LOG_CMD_ERR, HandlerResults.DECLINED),
    ]);
    const result = run(session([module]), "X");
    expect(trace).toEqual(["pre", "cmd", "post", "log"]);
    expect(result.lines).toEqual(["200-cmd", "200 post"]);
  });

  it("on a CMD ERROR runs POST_CMD_ERR and LOG_CMD_ERR and sends only the error list", () => {
    const trace: string[] = [];
    const module = fakeModule("mod_a.c", [
      handler("X", Phases.CMD, (cmd) => {
        trace.push("cmd");
        cmd.addResponse("200", "never sent");
        cmd.addError("550", "refused");
        return HandlerResults.ERROR;
      }),
      traced(trace, "post", "X", Phases.POST_CMD, HandlerResults.DECLINED),
      traced(trace, "post-err", "X", Phases.POST_CMD_ERR, HandlerResults.DECLINED),
      traced(trace, "log-err", "X", Phases.LOG_CMD_ERR, HandlerResults.DECLINED),
    ]);
    expect(run(session([module]), "X")).toEqual({ lines: ["550 refused"], ok: false });
    expect(trace).toEqual(["cmd", "post-err", "log-err"]);
  });

  it("aborts the command on a PRE_CMD ERROR: no CMD, then POST_CMD_ERR and LOG_CMD_ERR", () => {
    const trace: string[] = [];
    const module = fakeModule("mod_a.c", [
      traced(trace, "pre", "X", Phases.PRE_CMD, HandlerResults.ERROR, ["550", "denied early"]),
      traced(trace, "cmd", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "ran"]),
      traced(trace, "post-err", "X", Phases.POST_CMD_ERR, HandlerResults.DECLINED),
      traced(trace, "log-err", "X", Phases.LOG_CMD_ERR, HandlerResults.DECLINED),
    ]);
    expect(run(session([module]), "X")).toEqual({ lines: ["550 denied early"], ok: false });
    expect(trace).toEqual(["pre", "post-err", "log-err"]);
  });

  it("a PRE_CMD HANDLED only ends PRE_CMD; CMD still runs", () => {
    const trace: string[] = [];
    const older = fakeModule("mod_a.c", [traced(trace, "pre-a", "X", Phases.PRE_CMD, HandlerResults.DECLINED)]);
    const newer = fakeModule("mod_b.c", [
      traced(trace, "pre-b", "X", Phases.PRE_CMD, HandlerResults.HANDLED),
      traced(trace, "cmd-b", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "ok"]),
    ]);
    expect(run(session([older, newer]), "X").lines).toEqual(["200 ok"]);
    expect(trace).toEqual(["pre-b", "cmd-b"]);
  });

  it("runs every LOG_CMD handler even after an ERROR (Bug#3633), but stops POST_CMD at one", () => {
    const trace: string[] = [];
    const older = fakeModule("mod_a.c", [
      traced(trace, "post-a", "X", Phases.POST_CMD, HandlerResults.DECLINED),
      traced(trace, "log-a", "X", Phases.LOG_CMD, HandlerResults.DECLINED),
    ]);
    const newer = fakeModule("mod_b.c", [
      traced(trace, "cmd-b", "X", Phases.CMD, HandlerResults.HANDLED, ["200", "ok"]),
      traced(trace, "post-b", "X", Phases.POST_CMD, HandlerResults.ERROR),
      traced(trace, "log-b", "X", Phases.LOG_CMD, HandlerResults.ERROR),
    ]);
    expect(run(session([older, newer]), "X").lines).toEqual(["200 ok"]);
    expect(trace).toEqual(["cmd-b", "post-b", "log-b", "log-a"]);
  });

  it("answers `500 'X' not understood` when no CMD handler exists, or all decline", () => {
    const trace: string[] = [];
    const module = fakeModule("mod_a.c", [
      traced(trace, "decline", "Y", Phases.CMD, HandlerResults.DECLINED),
      traced(trace, "log-err", "FOO", Phases.LOG_CMD_ERR, HandlerResults.DECLINED),
    ]);
    expect(run(session([module]), "foo bar")).toEqual({ lines: ["500 'FOO' not understood"], ok: false });
    expect(run(session([module]), "Y")).toEqual({ lines: ["500 'Y' not understood"], ok: false });
    expect(run(session([module]), "A_B")).toEqual({ lines: ["500 'A B' not understood"], ok: false });
    expect(trace).toEqual(["log-err", "decline"]);
  });

  it("before login answers 530 for commands that need it, without calling their handlers", () => {
    const trace: string[] = [];
    const module = fakeModule("mod_a.c", [
      traced(trace, "pre", "TEST", Phases.PRE_CMD, HandlerResults.DECLINED),
      traced(trace, "cmd", "TEST", Phases.CMD, HandlerResults.HANDLED, ["200", "ran"]),
      traced(trace, "log-err", "TEST", Phases.LOG_CMD_ERR, HandlerResults.DECLINED),
      traced(trace, "noop", "NOOP", Phases.CMD, HandlerResults.HANDLED, ["200", "NOOP command successful"]),
    ]);
    const state = session([module], false);
    expect(run(state, "TEST hi")).toEqual({ lines: ["530 Please login with USER and PASS"], ok: false });
    expect(trace).toEqual([]);
    expect(run(state, "NOOP").lines).toEqual(["200 NOOP command successful"]);
    // An unknown command is not understood, logged in or not.
    expect(run(state, "FOO").lines).toEqual(["500 'FOO' not understood"]);
  });

  it("turns a throwing handler into a 451 naming no internals, reports the fault, and goes on", () => {
    const trace: string[] = [];
    const faults: HandlerFault[] = [];
    const trap = new DsoError(ErrorCodes.GUEST_TRAP, "mod_trap.c: fault in cmd_X: unreachable");
    const module = fakeModule("mod_trap.c", [
      handler("X", Phases.CMD, (cmd) => {
        cmd.addError("550", "half-way");
        throw trap;
      }),
      traced(trace, "post-err", "X", Phases.POST_CMD_ERR, HandlerResults.DECLINED),
      traced(trace, "noop", "NOOP", Phases.CMD, HandlerResults.HANDLED, ["200", "NOOP command successful"]),
    ]);
    const state = session([module]);
    expect(run(state, "X", faults)).toEqual({
      lines: ["451 Requested action aborted: local error in processing."],
      ok: false,
    });
    expect(faults).toEqual([{ session: 1, module: "mod_trap.c", phase: Phases.CMD, command: "X", error: trap }]);
    expect(trace).toEqual(["post-err"]);
    expect(run(state, "NOOP", faults).lines).toEqual(["200 NOOP command successful"]);
  });

  it("a throwing LOG_CMD handler is reported and the reply stands", () => {
    const faults: HandlerFault[] = [];
    const module = fakeModule("mod_a.c", [
      handler("X", Phases.CMD, (cmd) => {
        cmd.addResponse("200", "done");
        return HandlerResults.HANDLED;
      }),
      handler("X", Phases.LOG_CMD, () => {
        throw new Error("log failed");
      }),
    ]);
    expect(run(session([module]), "X", faults).lines).toEqual(["200 done"]);
    expect(faults.map((f) => f.phase)).toEqual([Phases.LOG_CMD]);
  });

  it("lets handlers see the command and the session", () => {
    const seen: Array<{ name: string; arg: string; argv: readonly string[]; user: string | undefined; id: number }> =
      [];
    const module = fakeModule("mod_a.c", [
      handler("TEST", Phases.CMD, (cmd, state) => {
        seen.push({ name: cmd.name, arg: cmd.arg, argv: cmd.argv, user: cmd.user, id: state.id });
        cmd.addResponse("200", "ok");
        return HandlerResults.HANDLED;
      }),
    ]);
    run(session([module]), "test a b");
    expect(seen).toEqual([{ name: "TEST", arg: "a b", argv: ["test", "a", "b"], user: "demo", id: 1 }]);
  });
});

describe("a handler whose reply lines do not match its result", () => {
  it("still gets its error lines out when it returns HANDLED", () => {
    const module = fakeModule("mod_x.c", [
      handler("MIX", Phases.CMD, (cmd) => {
        cmd.addError("550", "no such thing");
        return HandlerResults.HANDLED;
      }),
    ]);
    expect(run(session([module]), "MIX")).toEqual({ lines: ["550 no such thing"], ok: true });
  });

  it("still gets its reply lines out when it returns ERROR", () => {
    const module = fakeModule("mod_x.c", [
      handler("MIX", Phases.CMD, (cmd) => {
        cmd.addResponse("200", "said anyway");
        return HandlerResults.ERROR;
      }),
    ]);
    expect(run(session([module]), "MIX")).toEqual({ lines: ["200 said anyway"], ok: false });
  });
});
