/**
 * The host's exported symbol table: the single definition of every symbol a
 * guest can import from the `env` namespace, with its wasm type, the capability
 * it belongs to and its implementation. The guest SDK declares the same symbols
 * (guest-modules/sdk/host.ts); test/unit/abi/sdk-abi.test.ts compiles the SDK and
 * checks its imports against this table, and docs/host-abi.md describes it.
 *
 * Like the symbols of proftpd's own executable, these are searched first when a
 * guest's imports are resolved (mod_dso.c dlopens with RTLD_GLOBAL).
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { applyModuleAcls, defaultResolver, describeControl } from "../controls/module-controls.js";
import type { ModuleControls } from "../controls/module-controls.js";
import type { IdResolver } from "../system/accounts.js";
import type { FuncType, ValueType } from "../wasm/types.js";
import type { GuestStrings } from "./guest-memory.js";
import type { SharedScope } from "./shared-store.js";

/** `string` is an i32 pointer to an AssemblyScript string in the caller's memory. */
export type AbiType = "i32" | "i64" | "f64" | "string";

/** Named groups of host symbols; a module may import only from the capabilities it holds. */
export const Capabilities = {
  core: "core",
  log: "log",
  command: "command",
  response: "response",
  register: "register",
  session: "session",
  /** What a data transfer moved (pr_xfer_*), for POST_CMD/LOG_CMD handlers. */
  transfer: "transfer",
  /** WASI (wasi_snapshot_preview1), confined to the directories the config names. */
  filesystem: "filesystem",
} as const;

export type Capability = (typeof Capabilities)[keyof typeof Capabilities];

/** What a transfer moved, for POST_CMD/LOG_CMD handlers of RETR, STOR, STOU, APPE, LIST, NLST, MLSD. */
export interface TransferInfo {
  readonly direction: "upload" | "download";
  /** Bytes sent or received on the data connection. */
  readonly bytes: number;
  /** The file's size once the transfer ended (for a listing: the bytes of the listing). */
  readonly fileSize: number;
  readonly durationMs: number;
  /** True when the transfer completed (226); false when aborted or failed. */
  readonly complete: boolean;
}

/** What a handler can see of the command (or directive) being dispatched. */
export interface ActiveCommand {
  /** The command or directive name, `argv[0]`. */
  readonly name: string;
  /** Everything after the name, as the client sent it. */
  readonly arg: string;
  readonly argv: readonly string[];
  /** The logged-in user, if any. */
  readonly user: string | undefined;
  /** The client's address (proftpd's session.c->remote_addr); unset for a directive or a control. */
  readonly remoteAddress?: string;
  /** The session's working directory as the user sees it inside the jail; undefined for a directive. */
  readonly cwd: string | undefined;
  /**
   * The file or directory the command names, as an absolute path the user sees
   * inside the jail (never a host path); undefined for commands that name none.
   * Handlers that decide the name themselves (STOU) set it.
   */
  path: string | undefined;
  /** What the transfer moved, set before POST_CMD/LOG_CMD of a command with a data transfer. */
  transfer: TransferInfo | undefined;
  /** A control request's only (host/controls/module-controls.ts): a line of the control's answer. */
  addControlResponse?(line: string): void;
  /**
   * pr_session_disconnect: the session ends once the replies of this command
   * (or of sess_init) have been sent. Absent outside a session (a directive, a
   * control action). `details` is proftpd's core.disconnect-details, which
   * only a LogFormat's %E shows; dsod has no %E, so nothing records it yet.
   */
  disconnect?(details: string): void;
  addResponse(code: string, message: string): void;
  addError(code: string, message: string): void;
}

/** The services host symbols need from whoever embeds the host (the daemon, or a library user). */
export interface HostServices {
  log(importer: string, level: number, message: string): void;
  trace(importer: string, channel: string, level: number, message: string): void;
  activeCommand(): ActiveCommand | undefined;
  /** Name-to-id look-ups for a module's controls ACLs; the system's accounts when absent. */
  readonly accounts?: IdResolver;
  /**
   * The shared store's scope of `importer`, bounded by its memory cap
   * (shared-store.ts). A host embedded without a store leaves it out: the
   * pr_shared_* symbols then trap.
   */
  sharedData?(importer: string): SharedScope;
  /** The host's clock, in milliseconds since the epoch, for pr_time_now; Date.now when absent. */
  now?(): number;
}

/** Per-instance state that host symbols bound to that instance read and write. */
export interface ImporterState {
  readonly name: string;
  readonly features: string[];
  readonly help: Array<{ readonly command: string; readonly text: string }>;
  /** Set once the instance exists; host symbols called earlier (from a start function) fail cleanly. */
  strings: GuestStrings | undefined;
  /** A module's controls (its `ctrl_<action>` exports), set when the module is built from its exports. */
  controls?: ModuleControls;
}

export interface HostSymbol {
  readonly name: string;
  readonly capability: Capability;
  readonly params: readonly AbiType[];
  readonly result: AbiType | "nil";
  readonly doc: string;
  bind(importer: ImporterState, services: HostServices): (...args: never[]) => unknown;
}

function wasmType(type: AbiType): ValueType {
  return type === "string" ? "i32" : type;
}

export function hostSymbolType(symbol: HostSymbol): FuncType {
  return {
    params: symbol.params.map(wasmType),
    results: symbol.result === "nil" ? [] : [wasmType(symbol.result)],
  };
}

function stringsOf(importer: ImporterState, symbol: string): GuestStrings {
  if (importer.strings === undefined) {
    throw new DsoError(
      ErrorCodes.GUEST_STRING,
      `host symbol '${symbol}' called before the instance was ready (from a start function)`,
    );
  }
  return importer.strings;
}

function readString(importer: ImporterState, symbol: string, ptr: number): string {
  try {
    return stringsOf(importer, symbol).read(ptr);
  } catch (cause) {
    throw new DsoError(ErrorCodes.GUEST_STRING, `invalid string passed to '${symbol}' (pointer ${ptr})`, {
      cause,
    });
  }
}

function activeCommand(services: HostServices, symbol: string): ActiveCommand {
  const command = services.activeCommand();
  if (command === undefined) {
    throw new DsoError(ErrorCodes.GUEST_TRAP, `'${symbol}' called outside a command or directive handler`);
  }
  return command;
}

/** The transfer of the command being handled, or undefined before it ended or for a command without one. */
function transferOf(services: HostServices, symbol: string): TransferInfo | undefined {
  return activeCommand(services, symbol).transfer;
}

/** A string symbol that reads one optional field of the command: "" when it is unset. */
function commandString(
  name: string,
  capability: Capability,
  doc: string,
  read: (command: ActiveCommand) => string | undefined,
): HostSymbol {
  return {
    name,
    capability,
    params: [],
    result: "string",
    doc,
    bind: (importer, services) => () => stringsOf(importer, name).create(read(activeCommand(services, name)) ?? ""),
  };
}

/** A number of the transfer as f64 (sizes pass 2^31); -1 when the command has no transfer. */
function transferNumber(name: string, doc: string, read: (transfer: TransferInfo) => number): HostSymbol {
  return {
    name,
    capability: "transfer",
    params: [],
    result: "f64",
    doc,
    bind: (_importer, services) => () => {
      const transfer = transferOf(services, name);
      return transfer === undefined ? -1 : read(transfer);
    },
  };
}

/** The caller's scope of the shared store, looked up on first use and kept for the instance's life. */
function sharedScopeOf(importer: ImporterState, services: HostServices, symbol: string): () => SharedScope {
  let scope: SharedScope | undefined;
  return () => {
    if (scope !== undefined) return scope;
    if (services.sharedData === undefined) {
      throw new DsoError(ErrorCodes.GUEST_TRAP, `'${symbol}' called in a host without a shared store`);
    }
    scope = services.sharedData(importer.name);
    return scope;
  };
}

/**
 * The shared store (shared-store.ts), after proxy-wasm's get/set_shared_data.
 * In `core`: each unit reaches only its own scope, so there is nothing to grant
 * (proxy-wasm grants none either); a scope shared across modules would need a
 * capability of its own.
 */
const sharedSymbols: readonly HostSymbol[] = [
  {
    name: "pr_shared_get",
    capability: "core",
    params: ["string"],
    result: "string",
    doc: "The value the module's shared store holds under `key`, or an empty string when there is none.",
    bind: (importer, services) => {
      const scope = sharedScopeOf(importer, services, "pr_shared_get");
      return (key: number) => {
        const entry = scope().get(readString(importer, "pr_shared_get", key));
        return stringsOf(importer, "pr_shared_get").create(entry?.value ?? "");
      };
    },
  },
  {
    name: "pr_shared_version",
    capability: "core",
    params: ["string"],
    result: "f64",
    doc: "The version of the entry under `key` (proxy-wasm's `cas`), 0 when there is none; never reused once written.",
    bind: (importer, services) => {
      const scope = sharedScopeOf(importer, services, "pr_shared_version");
      return (key: number) => scope().get(readString(importer, "pr_shared_version", key))?.version ?? 0;
    },
  },
  {
    name: "pr_shared_set",
    capability: "core",
    params: ["string", "string", "f64"],
    result: "i32",
    doc: "Writes `value` under `key` if its version is `cas` (-1: any, 0: none yet); a SHARED_* result code.",
    bind: (importer, services) => {
      const scope = sharedScopeOf(importer, services, "pr_shared_set");
      return (key: number, value: number, cas: number) =>
        scope().set(readString(importer, "pr_shared_set", key), readString(importer, "pr_shared_set", value), cas);
    },
  },
  {
    name: "pr_shared_delete",
    capability: "core",
    params: ["string", "f64"],
    result: "i32",
    doc: "Removes the entry under `key` if its version is `cas` (-1: any); a SHARED_* result code.",
    bind: (importer, services) => {
      const scope = sharedScopeOf(importer, services, "pr_shared_delete");
      return (key: number, cas: number) => scope().delete(readString(importer, "pr_shared_delete", key), cas);
    },
  },
  {
    name: "pr_shared_add",
    capability: "core",
    params: ["string", "f64"],
    result: "f64",
    doc: "Adds `delta` to the counter under `key` (absent counts as 0) in one step and returns its new value; NaN when refused.",
    bind: (importer, services) => {
      const scope = sharedScopeOf(importer, services, "pr_shared_add");
      return (key: number, delta: number) => scope().add(readString(importer, "pr_shared_add", key), delta).value;
    },
  },
];

/** The shared store's symbols: a unit importing one has its scope's bound carved out of its memory cap. */
export const SHARED_DATA_SYMBOLS: ReadonlySet<string> = new Set(sharedSymbols.map((s) => s.name));

function controlsOf(importer: ImporterState, symbol: string): ModuleControls {
  if (importer.controls === undefined) {
    throw new DsoError(ErrorCodes.GUEST_TRAP, `'${symbol}' called by ${importer.name}, which is no module`);
  }
  return importer.controls;
}

/**
 * A module's controls (host/controls/module-controls.ts), after src/ctrls.c:
 * described from module_init, guarded by the module's own ACL directive,
 * answered from its `ctrl_<action>` exports.
 */
const controlsSymbols: readonly HostSymbol[] = [
  {
    name: "pr_ctrls_register",
    capability: "register",
    params: ["string", "string"],
    result: "i32",
    doc:
      "proftpd's pr_ctrls_register(action, desc): what `dsoctl help` says of the module's `ctrl_<action>`; " +
      "0, or -1 when the module exports no `ctrl_<action>`.",
    bind: (importer) => (action: number, description: number) =>
      describeControl(
        controlsOf(importer, "pr_ctrls_register"),
        readString(importer, "pr_ctrls_register", action),
        readString(importer, "pr_ctrls_register", description),
      )
        ? 0
        : -1,
  },
  {
    name: "pr_ctrls_set_module_acls",
    capability: "register",
    params: [],
    result: "i32",
    doc:
      "proftpd's pr_ctrls_set_module_acls, from the module's ACL directive " +
      "(`XControlsACLs actions|all allow|deny user|group list`): applies it to the module's controls; " +
      "0, or -1 with proftpd's reason added to the directive.",
    bind: (importer, services) => () => {
      const directive = activeCommand(services, "pr_ctrls_set_module_acls");
      const controls = controlsOf(importer, "pr_ctrls_set_module_acls");
      try {
        applyModuleAcls(controls, directive.argv.slice(1), services.accounts ?? defaultResolver());
      } catch (error) {
        if (!(error instanceof DsoError) || error.code !== ErrorCodes.CONFIG) throw error;
        directive.addError("", error.message);
        return -1;
      }
      return 0;
    },
  },
  {
    name: "pr_ctrls_add_response",
    capability: "response",
    params: ["string"],
    result: "nil",
    doc:
      "proftpd's pr_ctrls_add_response(ctrl, msg): " +
      "a line of the answer of the control action being handled (`dsoctl: msg`).",
    bind: (importer, services) => (msg: number) => {
      const request = activeCommand(services, "pr_ctrls_add_response");
      if (request.addControlResponse === undefined) {
        throw new DsoError(ErrorCodes.GUEST_TRAP, "'pr_ctrls_add_response' called outside a control action");
      }
      request.addControlResponse(readString(importer, "pr_ctrls_add_response", msg));
    },
  },
];

const symbols: readonly HostSymbol[] = [
  {
    name: "abort",
    capability: "core",
    params: ["string", "string", "i32", "i32"],
    result: "nil",
    doc: "AssemblyScript's abort(): traps the caller with its message, file, line and column.",
    bind: (importer) => (msg: number, file: number, line: number, column: number) => {
      const text = msg === 0 ? "abort" : readString(importer, "abort", msg);
      const where = file === 0 ? "" : ` at ${readString(importer, "abort", file)}:${line}:${column}`;
      throw new DsoError(ErrorCodes.GUEST_TRAP, `abort: ${text}${where}`);
    },
  },
  {
    name: "trace",
    capability: "core",
    params: ["string", "i32", "f64", "f64", "f64", "f64", "f64"],
    result: "nil",
    doc: "AssemblyScript's trace(): logs a message and up to five numbers at debug level 9.",
    bind:
      (importer, services) =>
      (msg: number, count: number, ...values: number[]) => {
        const numbers = values.slice(0, Math.max(0, Math.min(count, 5)));
        const text = readString(importer, "trace", msg);
        services.log(
          importer.name,
          9,
          numbers.length === 0 ? `trace: ${text}` : `trace: ${text} ${numbers.join(", ")}`,
        );
      },
  },
  {
    name: "seed",
    capability: "core",
    params: [],
    result: "f64",
    doc: "AssemblyScript's seed() for Math.random: a fresh random seed.",
    bind: () => () => Math.random() * Number.MAX_SAFE_INTEGER,
  },
  {
    name: "pr_time_now",
    capability: "core",
    params: [],
    result: "f64",
    doc: "Milliseconds since the epoch, by the host's clock.",
    bind: (_importer, services) => () => services.now?.() ?? Date.now(),
  },
  {
    name: "pr_log_debug",
    capability: "log",
    params: ["i32", "string"],
    result: "nil",
    doc: "proftpd's pr_log_debug(level, msg): a line in the daemon's log when its debug level is at least `level`.",
    bind: (importer, services) => (level: number, msg: number) => {
      services.log(importer.name, level, readString(importer, "pr_log_debug", msg));
    },
  },
  {
    name: "pr_trace_msg",
    capability: "log",
    params: ["string", "i32", "string"],
    result: "nil",
    doc: "proftpd's pr_trace_msg(channel, level, msg): a line in the TraceLog when `Trace channel:N` has N >= level.",
    bind: (importer, services) => (channel: number, level: number, msg: number) => {
      services.trace(
        importer.name,
        readString(importer, "pr_trace_msg", channel),
        level,
        readString(importer, "pr_trace_msg", msg),
      );
    },
  },
  {
    name: "pr_cmd_arg",
    capability: "command",
    params: [],
    result: "string",
    doc: "The argument of the command being handled (everything after its name), or of the directive.",
    bind: (importer, services) => () =>
      stringsOf(importer, "pr_cmd_arg").create(activeCommand(services, "pr_cmd_arg").arg),
  },
  {
    name: "pr_cmd_argc",
    capability: "command",
    params: [],
    result: "i32",
    doc: "The number of words of the command or directive, its name included.",
    bind: (_importer, services) => () => activeCommand(services, "pr_cmd_argc").argv.length,
  },
  {
    name: "pr_cmd_argv",
    capability: "command",
    params: ["i32"],
    result: "string",
    doc: "Word `i` of the command or directive (0 is its name); an empty string past the end.",
    bind: (importer, services) => (index: number) =>
      stringsOf(importer, "pr_cmd_argv").create(activeCommand(services, "pr_cmd_argv").argv[index] ?? ""),
  },
  {
    name: "pr_response_add",
    capability: "response",
    params: ["string", "string"],
    result: "nil",
    doc: "proftpd's pr_response_add(code, msg): a reply line sent when the command completes.",
    bind: (importer, services) => (code: number, msg: number) => {
      activeCommand(services, "pr_response_add").addResponse(
        readString(importer, "pr_response_add", code),
        readString(importer, "pr_response_add", msg),
      );
    },
  },
  {
    name: "pr_response_add_err",
    capability: "response",
    params: ["string", "string"],
    result: "nil",
    doc: "proftpd's pr_response_add_err(code, msg): an error reply line sent when the command fails.",
    bind: (importer, services) => (code: number, msg: number) => {
      activeCommand(services, "pr_response_add_err").addError(
        readString(importer, "pr_response_add_err", code),
        readString(importer, "pr_response_add_err", msg),
      );
    },
  },
  {
    name: "pr_feat_add",
    capability: "register",
    params: ["string"],
    result: "nil",
    doc: "proftpd's pr_feat_add(feat): a line the module adds to the FEAT reply.",
    bind: (importer) => (feat: number) => {
      importer.features.push(readString(importer, "pr_feat_add", feat));
    },
  },
  {
    name: "pr_help_add",
    capability: "register",
    params: ["string", "string"],
    result: "nil",
    doc: "proftpd's pr_help_add(cmd, syntax): how HELP describes a command the module provides.",
    bind: (importer) => (command: number, text: number) => {
      importer.help.push({
        command: readString(importer, "pr_help_add", command).toUpperCase(),
        text: readString(importer, "pr_help_add", text),
      });
    },
  },
  {
    name: "pr_session_user",
    capability: "session",
    params: [],
    result: "string",
    doc: "The name the session logged in as, or an empty string before login.",
    bind: (importer, services) => () =>
      stringsOf(importer, "pr_session_user").create(activeCommand(services, "pr_session_user").user ?? ""),
  },
  commandString(
    "pr_session_remote_addr",
    "session",
    "The client's address (proftpd's session.c->remote_addr) in sess_init and command handlers; empty elsewhere.",
    (command) => command.remoteAddress,
  ),
  {
    name: "pr_session_disconnect",
    capability: "session",
    params: ["string"],
    result: "nil",
    doc:
      "proftpd's pr_session_disconnect(m, reason, details): the session ends once the replies of the command " +
      "being handled (or of sess_init) have been sent.",
    bind: (importer, services) => (details: number) => {
      const command = activeCommand(services, "pr_session_disconnect");
      if (command.disconnect === undefined) {
        throw new DsoError(ErrorCodes.GUEST_TRAP, "'pr_session_disconnect' called outside a session");
      }
      command.disconnect(readString(importer, "pr_session_disconnect", details));
    },
  },
  // In `command`, not `session`: pr_cmd_path of PWD, or of any relative name, shows it anyway.
  commandString(
    "pr_session_cwd",
    "command",
    "proftpd's pr_fs_getvwd(): the session's working directory as the user sees it inside the jail; an empty string for a directive.",
    (command) => command.cwd,
  ),
  commandString(
    "pr_cmd_path",
    "command",
    "The file or directory the command names, as an absolute path inside the jail (never a host path); an empty string when it names none.",
    (command) => command.path,
  ),
  commandString(
    "pr_xfer_direction",
    "transfer",
    "`upload` or `download` in POST_CMD/LOG_CMD (and their _ERR phases) of a command that transferred data; an empty string otherwise.",
    (command) => command.transfer?.direction,
  ),
  transferNumber(
    "pr_xfer_bytes",
    "The bytes the transfer moved over the data connection; -1 without a transfer.",
    (transfer) => transfer.bytes,
  ),
  transferNumber(
    "pr_xfer_file_size",
    "The file's size once the transfer ended (a listing's size for LIST/NLST/MLSD); -1 without a transfer.",
    (transfer) => transfer.fileSize,
  ),
  transferNumber(
    "pr_xfer_duration_ms",
    "How long the transfer took, in milliseconds; -1 without a transfer.",
    (transfer) => transfer.durationMs,
  ),
  {
    name: "pr_xfer_complete",
    capability: "transfer",
    params: [],
    result: "i32",
    doc: "1 when the transfer completed (226), 0 when it was aborted or failed; -1 without a transfer.",
    bind: (_importer, services) => () => {
      const transfer = transferOf(services, "pr_xfer_complete");
      if (transfer === undefined) return -1;
      return transfer.complete ? 1 : 0;
    },
  },
  ...sharedSymbols,
  ...controlsSymbols,
];

/** The host symbols by name, in the order docs/host-abi.md lists them. */
export const HOST_SYMBOLS: ReadonlyMap<string, HostSymbol> = new Map(symbols.map((s) => [s.name, s]));

/**
 * `env.memory` is not a shared symbol: every importer gets a memory of its own,
 * made by the host with the importer's memory cap as its maximum, so the host
 * owns the limit (mod_dso has no equivalent; ld.so shares one address space).
 */
export const HOST_MEMORY_SYMBOL = "memory";
