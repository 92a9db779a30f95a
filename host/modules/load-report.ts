/**
 * What a refused load reports, as data: the loader events to publish and the
 * `dso` trace lines to write, in order. Every refused load leaves its reason
 * in the log, whether LoadModule, insmod or a SIGHUP's re-read asked for it,
 * as mod_dso.c's dso_load_module logs its own failures; every failure also
 * leaves its level-1 line in the trace log (`Trace dso:1`), as
 * dso_load_module's. Pure: the request and the error in, the steps out.
 */
import { ErrorCodes, isDsoError } from "../errors.js";
import { dsoDebug } from "./dso-debug.js";
import type { LoaderEvent } from "./loader-events.js";
import type { ModuleName } from "./module-name.js";
import { LinkError } from "./planner.js";

/** One step of a report: an event to publish, or a line for the `dso` trace channel at its level. */
export type ReportStep = { readonly event: LoaderEvent } | { readonly trace: number; readonly message: string };

/**
 * The steps for a module load refused with `error`. A wrong API version and a
 * module's failed init were reported where they were found, in proftpd's
 * words; link problems and a missing module symbol were traced there.
 */
export function refusalReport(parsed: ModuleName, requested: string, stemPath: string, error: unknown): ReportStep[] {
  if (!isDsoError(error)) {
    return [
      { event: { kind: "load-refused", module: parsed.name, error } },
      { trace: 1, message: `unable to load '${parsed.name}': ${String(error)}` },
    ];
  }
  if (error.code === ErrorCodes.MODULE_NOT_FOUND) {
    // No file, so proftpd looks for the module in the executable, and does not find it there either.
    return [
      { event: { kind: "no-file", requested, stemPath } },
      { trace: 7, message: `looking for symbol '${parsed.symbol}' in loaded module` },
      { event: { kind: "no-symbol", symbol: parsed.symbol } },
      { trace: 1, message: dsoDebug.noSymbol(parsed.symbol).text },
    ];
  }
  const tracedAtSource = error instanceof LinkError || error.code === ErrorCodes.NO_MODULE_SYMBOL;
  return [
    { event: { kind: "load-refused", module: parsed.name, error } },
    ...(tracedAtSource ? [] : error.lines.map((message) => ({ trace: 1, message }))),
  ];
}
