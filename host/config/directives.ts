/**
 * Argument checks shared by the compiled-in modules' directives, with the
 * texts of proftpd's include/dirtree.h macros and src/str.c helpers.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../errors.js";

/** A refused directive: the config executor reports `Directive: text on line N of 'file'`. */
export function directiveError(text: string): DsoError {
  return new DsoError(ErrorCodes.CONFIG, text);
}

/** CHECK_ARGS(cmd, n): at least `n` parameters; extra ones are ignored, as in proftpd. */
export function checkArgs(directive: ActiveCommand, count: number): void {
  if (directive.argv.length - 1 < count) throw directiveError("missing parameters");
}

/** The directive's parameter `index` (1-based); call checkArgs first. */
export function param(directive: ActiveCommand, index: number): string {
  return directive.argv[index] ?? "";
}

const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ["on", true],
  ["off", false],
  ["yes", true],
  ["no", false],
  ["true", true],
  ["false", false],
  ["1", true],
  ["0", false],
]);

/** pr_str_is_boolean: on|off, yes|no, true|false, 1|0, in any case; undefined for anything else. */
export function parseBoolean(text: string): boolean | undefined {
  return BOOLEANS.get(text.toLowerCase());
}

/** get_boolean / pr_str_is_boolean: on|off, yes|no, true|false, 1|0, in any case. */
export function booleanParam(directive: ActiveCommand, index: number): boolean {
  const value = parseBoolean(param(directive, index));
  if (value === undefined) throw directiveError("expected Boolean parameter");
  return value;
}
