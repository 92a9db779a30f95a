/**
 * A module set's command handlers, indexed by phase and command once per set,
 * as proftpd stashes every cmdtab entry by name when a module loads
 * (src/stash.c's pr_stash_add_symbol) so that `_dispatch` looks a command up
 * instead of walking every module. A session keeps its module set for its
 * whole life, so the index is built on the set's first command and kept while
 * the set lives.
 */
import type { CommandHandler, EngineModule, Phase } from "../modules/module-api.js";

/** A handler and the module it belongs to (named in fault reports). */
export interface HandlerEntry {
  readonly module: EngineModule;
  readonly handler: CommandHandler;
}

/** proftpd's C_ANY: a handler registered for `*` sees every command (mod_log's LOG_CMD, mod_tls's checks). */
export const ANY_COMMAND = "*";

const NONE: readonly HandlerEntry[] = [];

interface PhaseTable {
  /** Per command: its own handlers and the `*` ones, in dispatch order. */
  readonly byCommand: Map<string, HandlerEntry[]>;
  /** The `*` handlers alone, for a command no handler names. */
  readonly any: HandlerEntry[];
}

export class HandlerIndex {
  readonly #phases = new Map<Phase, PhaseTable>();

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
