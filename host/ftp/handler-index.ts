/**
 * A module set's command handlers, indexed by phase and command once per set,
 * as proftpd stashes every cmdtab entry by name when a module loads
 * (src/stash.c's pr_stash_add_symbol) so that `_dispatch` looks a command up
 * instead of walking every module. A session keeps its module set for its
 * whole life, so the index is built on the set's first command and kept while
 * the set lives.
 */
import { Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, Phase } from "../modules/module-api.js";

/** A handler and the module it belongs to (named in fault reports). */
export interface HandlerEntry {
  readonly module: EngineModule;
  readonly handler: CommandHandler;
}

/** proftpd's C_ANY: a handler registered for `*` sees every command (mod_log's LOG_CMD, mod_tls's checks). */
export const ANY_COMMAND = "*";

const NONE: readonly HandlerEntry[] = [];

/** A command's handlers in every phase, in dispatch order. */
export type PhaseHandlers = Readonly<Record<Phase, readonly HandlerEntry[]>>;

interface PhaseTable {
  /** Per command: its own handlers and the `*` ones, in dispatch order. */
  readonly byCommand: Map<string, HandlerEntry[]>;
  /** The `*` handlers alone, for a command no handler names. */
  readonly any: HandlerEntry[];
}

export class HandlerIndex {
  readonly #phases = new Map<Phase, PhaseTable>();
  /** Per command some handler names: its handlers in every phase. Only those: a client's names are not kept. */
  readonly #commands = new Map<string, PhaseHandlers>();
  /** Any other command's: the `*` handlers alone. */
  readonly #unnamed: PhaseHandlers;

  /**
   * Dispatch order is the newest module first and, within a module, its
   * handlers as it lists them; a `*` handler keeps its place among the named
   * ones.
   */
  constructor(modules: readonly EngineModule[]) {
    const ordered: HandlerEntry[] = [];
    for (let m = modules.length - 1; m >= 0; m--) {
      const module = modules[m] as EngineModule;
      for (const handler of module.commands) ordered.push({ module, handler });
    }
    // Every named command gets its list first, so that a `*` handler listed before the command's own is in it too.
    for (const { handler } of ordered) {
      const table = this.#table(handler.phase);
      if (handler.command !== ANY_COMMAND && !table.byCommand.has(handler.command)) {
        table.byCommand.set(handler.command, []);
      }
    }
    for (const entry of ordered) {
      const table = this.#table(entry.handler.phase);
      if (entry.handler.command === ANY_COMMAND) {
        table.any.push(entry);
        for (const list of table.byCommand.values()) list.push(entry);
      } else {
        table.byCommand.get(entry.handler.command)?.push(entry);
      }
    }
    const phasesOf = (command: string): PhaseHandlers => ({
      [Phases.PRE_CMD]: this.handlers(Phases.PRE_CMD, command),
      [Phases.CMD]: this.handlers(Phases.CMD, command),
      [Phases.POST_CMD]: this.handlers(Phases.POST_CMD, command),
      [Phases.POST_CMD_ERR]: this.handlers(Phases.POST_CMD_ERR, command),
      [Phases.LOG_CMD]: this.handlers(Phases.LOG_CMD, command),
      [Phases.LOG_CMD_ERR]: this.handlers(Phases.LOG_CMD_ERR, command),
    });
    for (const { handler } of ordered) {
      if (handler.command !== ANY_COMMAND && !this.#commands.has(handler.command)) {
        this.#commands.set(handler.command, phasesOf(handler.command));
      }
    }
    // `*` is never a key of byCommand: its look-up gives each phase's `*` handlers alone.
    this.#unnamed = phasesOf(ANY_COMMAND);
  }

  /** The handlers `command` runs through, phase by phase: one look-up per command rather than one per phase. */
  forCommand(command: string): PhaseHandlers {
    return this.#commands.get(command) ?? this.#unnamed;
  }

  /** The handlers a command runs through in a phase, in order; never copied. */
  handlers(phase: Phase, command: string): readonly HandlerEntry[] {
    const table = this.#phases.get(phase);
    if (table === undefined) return NONE;
    return table.byCommand.get(command) ?? table.any;
  }

  #table(phase: Phase): PhaseTable {
    let table = this.#phases.get(phase);
    if (table === undefined) {
      table = { byCommand: new Map(), any: [] };
      this.#phases.set(phase, table);
    }
    return table;
  }
}

/** One index per module set: a session's `modules` array is the set's own, never rebuilt while the set lives. */
const indexes = new WeakMap<readonly EngineModule[], HandlerIndex>();

export function handlerIndex(modules: readonly EngineModule[]): HandlerIndex {
  let index = indexes.get(modules);
  if (index === undefined) {
    index = new HandlerIndex(modules);
    indexes.set(modules, index);
  }
  return index;
}
