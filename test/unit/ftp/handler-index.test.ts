import { describe, expect, it } from "vitest";
import { ANY_COMMAND, HandlerIndex, handlerIndex } from "../../../host/ftp/handler-index.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { CommandHandler, EngineModule, Phase } from "../../../host/modules/module-api.js";

function handler(command: string, phase: Phase): CommandHandler {
  return { command, phase, run: () => HandlerResults.DECLINED };
}

function module(name: string, commands: CommandHandler[]): EngineModule {
  return { name, kind: "static", commands, siteCommands: [], directives: [], features: [], help: [] };
}

/** `module:command` for each handler the index gives, in order. */
function names(index: HandlerIndex, phase: Phase, command: string): string[] {
  return index.handlers(phase, command).map((e) => `${e.module.name}:${e.handler.command}`);
}

describe("HandlerIndex", () => {
  const older = module("mod_a.c", [
    handler("RETR", Phases.CMD),
    handler(ANY_COMMAND, Phases.CMD),
    handler("NOOP", Phases.CMD),
  ]);
  const newer = module("mod_b.c", [
    handler(ANY_COMMAND, Phases.CMD),
    handler("NOOP", Phases.CMD),
    handler("NOOP", Phases.LOG_CMD),
  ]);
  const index = new HandlerIndex([older, newer]);

  it("lists a command's handlers newest module first, `*` handlers in their place", () => {
    expect(names(index, Phases.CMD, "NOOP")).toEqual(["mod_b.c:*", "mod_b.c:NOOP", "mod_a.c:*", "mod_a.c:NOOP"]);
    expect(names(index, Phases.CMD, "RETR")).toEqual(["mod_b.c:*", "mod_a.c:RETR", "mod_a.c:*"]);
  });

  it("gives a command no handler names the `*` handlers of the phase alone", () => {
    expect(names(index, Phases.CMD, "STOR")).toEqual(["mod_b.c:*", "mod_a.c:*"]);
  });

  it("keeps the phases apart, and has nothing for a phase no handler registers", () => {
    expect(names(index, Phases.LOG_CMD, "NOOP")).toEqual(["mod_b.c:NOOP"]);
    expect(names(index, Phases.LOG_CMD, "RETR")).toEqual([]);
    expect(names(index, Phases.PRE_CMD, "NOOP")).toEqual([]);
  });

  it("gives a command's lists of every phase at once, the same lists as one phase at a time", () => {
    const phases = Object.values(Phases);
    for (const command of ["NOOP", "RETR", "STOR"]) {
      const all = index.forCommand(command);
      for (const phase of phases) expect(all[phase]).toBe(index.handlers(phase, command));
    }
    // Names no handler has share one record: what clients send is not kept.
    expect(index.forCommand("STOR")).toBe(index.forCommand("X".repeat(500)));
    expect(index.forCommand("NOOP")).not.toBe(index.forCommand("STOR"));
  });

  it("builds one index per module set, kept while the set lives", () => {
    const set = [older, newer];
    expect(handlerIndex(set)).toBe(handlerIndex(set));
    expect(handlerIndex([older, newer])).not.toBe(handlerIndex(set));
  });
});
