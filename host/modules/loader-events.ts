/**
 * What the module host reports as it loads, runs and unloads units: events as
 * data, never log lines. They are published on node:diagnostics_channel
 * (docs/architecture.md, "Loader events") for any observer, and a host given a
 * `log` sink turns them into mod_dso's lines with dso-log.ts.
 */
import diagnostics from "node:diagnostics_channel";
import type { DebugLine } from "./dso-debug.js";
import type { HandlerNameProblem } from "./handler-names.js";

/** The channel every ModuleHost publishes its events on, as `{ host, event }`. */
export const LOADER_CHANNEL = "wasm-dso:module-host";

export type LoaderEvent =
  /** One of mod_dso.c's pr_log_debug lines (dso-debug.ts), at its debug level. */
  | { readonly kind: "debug"; readonly line: DebugLine }
  /** dso_load_module found no file: it falls back to the executable ('self'). */
  | { readonly kind: "no-file"; readonly requested: string; readonly stemPath: string }
  /** ...and the executable has no such module either. */
  | { readonly kind: "no-symbol"; readonly symbol: string }
  /** A load refused; `error` says why (a DsoError, with `lines`). */
  | { readonly kind: "load-refused"; readonly module: string; readonly error: unknown }
  | { readonly kind: "already-loaded"; readonly module: string }
  /** A module's API version is older than the host's, found while planning (a needed module's too). */
  | { readonly kind: "wrong-api-version"; readonly module: string; readonly found: number; readonly expected: number }
  /** A module's init hook failed or trapped. */
  | { readonly kind: "init-failed"; readonly module: string }
  /** Guest code trapped or was interrupted. */
  | { readonly kind: "fault"; readonly unit: string; readonly entryPoint: string; readonly reason: string }
  | { readonly kind: "reinstantiating"; readonly unit: string }
  /** A faulted module left the engine: after one fault (its policy says unload), or a crash loop. */
  | {
      readonly kind: "fault-unloaded";
      readonly unit: string;
      readonly crashLoop: boolean;
      readonly faults: number;
      readonly windowMs: number;
    }
  /** A faulted module stays disabled: other modules are bound to it. */
  | { readonly kind: "fault-disabled"; readonly unit: string; readonly dependents: readonly string[] }
  | { readonly kind: "unload-hook-failed"; readonly unit: string; readonly reason: string }
  /** A loaded module exports names that look like handlers but break the naming rule (handler-names.ts). */
  | { readonly kind: "handler-names"; readonly module: string; readonly problems: readonly HandlerNameProblem[] };

export interface LoaderMessage {
  /** The ModuleHost that published it. */
  readonly host: object;
  readonly event: LoaderEvent;
}

const channel = diagnostics.channel(LOADER_CHANNEL);

/** Publishes one event of `host`; free when nobody subscribes. */
export function publishLoaderEvent(host: object, event: LoaderEvent): void {
  if (channel.hasSubscribers) channel.publish({ host, event } satisfies LoaderMessage);
}
