/**
 * mod_xfer.c's settings and the directives that set them (AllowOverwrite,
 * HiddenStores, TimeoutNoTransfer, ...), with proftpd 1.3.8's complaints.
 */
import type { DirectiveHandler } from "../modules/module-api.js";
import { checkArgs, directiveError, param, parseBoolean } from "../config/directives.js";
import { parseDuration } from "./mod-core.js";

export interface XferSettings {
  /** AllowOverwrite: off by default, so STOR (and STOU, see below) never replaces a file. */
  allowOverwrite: boolean;
  /** AllowRetrieveRestart: on by default. */
  allowRetrieveRestart: boolean;
  /** AllowStoreRestart: off by default (REST before STOR, and APPE to an existing file). */
  allowStoreRestart: boolean;
  /** DeleteAbortedStores: unset by default, which keeps a partial STOR but removes a partial HiddenStores file. */
  deleteAbortedStores: boolean | undefined;
  /** HiddenStores: uploads go to `<prefix><name><suffix>` and are renamed when complete. */
  hiddenStores: { readonly prefix: string; readonly suffix: string } | undefined;
  /** DefaultTransferMode: the TYPE a session has after login unless it sent TYPE before. */
  defaultTransferMode: "ascii" | "binary";
  /** StoreUniquePrefix: STOU's names start with it (`ftp`). */
  storeUniquePrefix: string;
  /** TimeoutNoTransfer in seconds; unset (the default in 1.3.8) arms no timer, 0 neither. */
  timeoutNoTransfer: number | undefined;
  /** TimeoutStalled in seconds, PR_TUNABLE_TIMEOUTSTALLED; 0 never. */
  timeoutStalled: number;
}

export function defaultXferSettings(): XferSettings {
  return {
    allowOverwrite: false,
    allowRetrieveRestart: true,
    allowStoreRestart: false,
    deleteAbortedStores: undefined,
    hiddenStores: undefined,
    defaultTransferMode: "ascii",
    storeUniquePrefix: "ftp",
    timeoutNoTransfer: undefined,
    timeoutStalled: 3600,
  };
}

/**
 * HiddenStores' arguments (set_hiddenstores): on|off, or a prefix (with dots
 * added unless it has them or a suffix follows), and a suffix.
 */
export function parseHiddenStores(args: readonly string[]): XferSettings["hiddenStores"] {
  const [first = "", suffix] = args;
  const dotted = first.startsWith(".") && first.endsWith(".");
  const enabled = dotted ? undefined : parseBoolean(first);
  if (enabled === false) return undefined;
  if (enabled === true) return { prefix: ".in.", suffix: "." };
  const addPeriods = !dotted && suffix === undefined;
  return { prefix: addPeriods ? `.${first}.` : first, suffix: suffix ?? "." };
}

/** mod_xfer.c's directives, setting `settings`. */
export function xferDirectives(settings: XferSettings): DirectiveHandler[] {
  /** The boolean directives differ in one letter of their complaint. */
  const flag = (name: string, complaint: string, set: (value: boolean) => void): DirectiveHandler => ({
    name,
    run: (d) => {
      checkArgs(d, 1);
      const value = parseBoolean(param(d, 1));
      if (value === undefined) throw directiveError(complaint);
      set(value);
    },
  });
  const timeout = (name: string, set: (seconds: number) => void): DirectiveHandler => ({
    name,
    run: (d) => {
      checkArgs(d, 1);
      const seconds = parseDuration(param(d, 1));
      if (seconds === undefined) throw directiveError(`error parsing timeout value '${param(d, 1)}': Invalid argument`);
      set(seconds);
    },
  });
  return [
    flag("AllowOverwrite", "expected boolean parameter", (v) => (settings.allowOverwrite = v)),
    flag("AllowRetrieveRestart", "expected boolean parameter", (v) => (settings.allowRetrieveRestart = v)),
    flag("AllowStoreRestart", "expected boolean parameter", (v) => (settings.allowStoreRestart = v)),
    {
      name: "DefaultTransferMode",
      run: (d) => {
        checkArgs(d, 1);
        const mode = param(d, 1).toLowerCase();
        if (mode !== "ascii" && mode !== "binary") throw directiveError("parameter must be 'ascii' or 'binary'");
        settings.defaultTransferMode = mode;
      },
    },
    flag("DeleteAbortedStores", "expected Boolean parameter", (v) => (settings.deleteAbortedStores = v)),
    {
      name: "HiddenStores",
      run: (d) => {
        checkArgs(d, 1);
        settings.hiddenStores = parseHiddenStores(d.argv.slice(1, 3));
      },
    },
    {
      name: "StoreUniquePrefix",
      run: (d) => {
        checkArgs(d, 1);
        const prefix = param(d, 1);
        if (prefix.includes("/")) throw directiveError(`no slashes allowed in prefix: '${prefix}'`);
        settings.storeUniquePrefix = prefix;
      },
    },
    timeout("TimeoutNoTransfer", (s) => (settings.timeoutNoTransfer = s)),
    timeout("TimeoutStalled", (s) => (settings.timeoutStalled = s)),
  ];
}
