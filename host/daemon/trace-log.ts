/**
 * The trace log: `TraceLog FILE` and `Trace channel:level ...` (proftpd's
 * src/trace.c). Only what runs after both directives is traced, as in proftpd.
 */
import { appendFileSync } from "node:fs";
import { DsoError, ErrorCodes } from "../errors.js";
import type { DirectiveHandler } from "../modules/module-api.js";
import type { Tracer } from "../modules/module-host.js";
import { formatTraceLine, parseTraceSpec } from "../log/log-format.js";
import type { HeldLines } from "./held-lines.js";

/** `Trace DEFAULT:N` sets every channel without a level of its own. */
const DEFAULT_CHANNEL = "DEFAULT";

export class TraceLog implements Tracer {
  #file: string | undefined;
  readonly #levels = new Map<string, number>();
  /** A session worker's: the lines of the module-set changes it repeats after the primary are held (held-lines.ts). */
  readonly #gate: HeldLines | undefined;

  constructor(gate?: HeldLines) {
    this.#gate = gate;
  }

  level(channel: string): number {
    if (this.#file === undefined) return 0;
    return this.#levels.get(channel) ?? this.#levels.get(DEFAULT_CHANNEL) ?? 0;
  }

  write(channel: string, level: number, message: string): void {
    const file = this.#file;
    if (file === undefined) return;
    const line = `${formatTraceLine(new Date(), process.pid, channel, level, message)}\n`;
    if (this.#gate === undefined) appendFileSync(file, line);
    else this.#gate.pass(() => appendFileSync(file, line));
  }

  /** The TraceLog and Trace directives, for mod_core's conftab. */
  directives(): DirectiveHandler[] {
    return [
      {
        name: "TraceLog",
        run: (directive) => {
          const file = directive.argv[1];
          if (file === undefined) throw new DsoError(ErrorCodes.CONFIG, "missing parameters");
          if (!file.startsWith("/")) throw new DsoError(ErrorCodes.CONFIG, "must be an absolute path");
          this.#file = file;
        },
      },
      {
        name: "Trace",
        run: (directive) => {
          const specs = directive.argv.slice(1);
          if (specs.length === 0) throw new DsoError(ErrorCodes.CONFIG, "missing parameters");
          for (const spec of specs) {
            const parsed = parseTraceSpec(spec);
            if (parsed === undefined) {
              throw new DsoError(ErrorCodes.CONFIG, `badly formatted parameter '${spec}' (expected channel:level)`);
            }
            this.#levels.set(parsed.channel, parsed.level);
          }
        },
      },
    ];
  }
}
