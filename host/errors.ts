/**
 * Every failure the host reports carries a stable `code` (Node core's rule: the
 * message may improve, the code never changes). `docs/errors.md` lists each code;
 * `test/unit/errors-doc.test.ts` keeps that table and this list equal.
 */
export const ErrorCodes = {
  /** The bytes are not a WebAssembly binary, or a section is malformed. */
  BAD_WASM: "DSO_ERR_BAD_WASM",
  /** A module name breaks proftpd's rules (`mod_` prefix, `.c` ending, no path parts). */
  BAD_MODULE_NAME: "DSO_ERR_BAD_MODULE_NAME",
  /** No `mod_x.wasm` (or library file) where the module path says it should be. */
  MODULE_NOT_FOUND: "DSO_ERR_MODULE_NOT_FOUND",
  /** The binary does not export its `NAME_module` symbol. */
  NO_MODULE_SYMBOL: "DSO_ERR_NO_MODULE_SYMBOL",
  /** An export named like a handler or hook has the wrong type (the module protocol is broken). */
  BAD_MODULE: "DSO_ERR_BAD_MODULE",
  /** The binary was built without a compiler option the host ABI needs for the host symbols it imports (importMemory, exportRuntime). */
  ABI: "DSO_ERR_ABI",
  /** The module's API version is older than the host's. */
  API_VERSION: "DSO_ERR_API_VERSION",
  /** The module's init hook failed or trapped. */
  INIT_FAILED: "DSO_ERR_INIT_FAILED",
  /** A module of that name is already loaded (dynamically or compiled in). */
  ALREADY_LOADED: "DSO_ERR_ALREADY_LOADED",
  /** No module of that name is loaded. */
  NOT_LOADED: "DSO_ERR_NOT_LOADED",
  /** Other loaded instances are bound to the module's exports. */
  HAS_DEPENDENTS: "DSO_ERR_HAS_DEPENDENTS",
  /** Imports could not be resolved: undefined symbols or type mismatches. */
  LINK: "DSO_ERR_LINK",
  /** Needed dependencies import from each other in a cycle. */
  DEPENDENCY_CYCLE: "DSO_ERR_DEPENDENCY_CYCLE",
  /** A module or library file is unsafe to load: writable by others, not a regular file, owned by another user, or a symlink out of the module path. */
  UNSAFE_FILE: "DSO_ERR_UNSAFE_FILE",
  /** A file's SHA-256 differs from the one it is pinned to in the config. */
  INTEGRITY: "DSO_ERR_INTEGRITY",
  /** A module imports a host symbol from a capability it was not granted. */
  CAPABILITY: "DSO_ERR_CAPABILITY",
  /** A module's memory or tables break its cap (no maximum, or maxima that do not fit the cap together). */
  MEMORY_LIMIT: "DSO_ERR_MEMORY_LIMIT",
  /**
   * All guest memory of the daemon would pass ModuleMemoryTotal (a new session
   * is refused), or the engine has no memory left for a session's instance.
   */
  MEMORY_TOTAL: "DSO_ERR_MEMORY_TOTAL",
  /** A binary declares more than a load limit allows (functions, globals, tables, table elements, segments, size). */
  LOAD_LIMIT: "DSO_ERR_LOAD_LIMIT",
  /** Guest code ran past its CPU budget and was interrupted. */
  INTERRUPTED: "DSO_ERR_INTERRUPTED",
  /** A sandbox mechanism is missing: the native watchdog that enforces CPU budgets is not built. */
  SANDBOX: "DSO_ERR_SANDBOX",
  /** The module is disabled after faults and not called until its backoff ends (or for good). */
  DISABLED: "DSO_ERR_DISABLED",
  /** A path that must be absolute is relative. */
  NOT_ABSOLUTE: "DSO_ERR_NOT_ABSOLUTE",
  /** A file could not be read (permissions, not a regular file, I/O error). */
  FILE: "DSO_ERR_FILE",
  /** The engine refused to instantiate a module that passed our own checks. */
  INSTANTIATE: "DSO_ERR_INSTANTIATE",
  /** Guest code trapped (unreachable, out of bounds, stack overflow...). */
  GUEST_TRAP: "DSO_ERR_GUEST_TRAP",
  /** A guest passed a pointer that is not a valid string in its memory. */
  GUEST_STRING: "DSO_ERR_GUEST_STRING",
  /** The operation would cut the daemon off its own core (`rmmod mod_dso.c`). */
  PROTECTED: "DSO_ERR_PROTECTED",
  /** A configuration file is invalid; the error names the file and line. */
  CONFIG: "DSO_ERR_CONFIG",
  /** The controls socket cannot be bound: another daemon answers on it, or the path is not a socket. */
  CTRLS_SOCKET: "DSO_ERR_CTRLS_SOCKET",
  /** A controls request or response broke the wire format. */
  CTRLS_PROTOCOL: "DSO_ERR_CTRLS_PROTOCOL",
  /** dsod could not become the User/Group its config names, or that identity could write the module path. */
  PRIVILEGES: "DSO_ERR_PRIVILEGES",
  /** dsod could not listen on its address and port (in use, or not an address of this host). */
  LISTEN: "DSO_ERR_LISTEN",
  /** A session worker (or, seen from a worker, the primary) went away before it answered. */
  WORKER_GONE: "DSO_ERR_WORKER_GONE",
  /** A session worker did not answer a request in time. */
  WORKER_TIMEOUT: "DSO_ERR_WORKER_TIMEOUT",
  /** A session worker failed to start; the message says why. */
  WORKER_START: "DSO_ERR_WORKER_START",
  /** A prepared module load was committed after another change of its host, or used twice: a caller's bug. */
  STALE_LOAD: "DSO_ERR_STALE_LOAD",
  /** A guest instance's state from another host (a session worker's start) does not fit the unit loaded here. */
  INSTANCE_STATE: "DSO_ERR_INSTANCE_STATE",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** proftpd reports each failure with an errno; the controls and LoadModule lines show its text. */
export const Errno = {
  EINVAL: "Invalid argument",
  ENOENT: "No such file or directory",
  EEXIST: "File exists",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EBUSY: "Device or resource busy",
} as const;

export type ErrnoText = (typeof Errno)[keyof typeof Errno];

/**
 * The errno each code carries (the errno column of docs/errors.md): proftpd's
 * for the same failure. A code absent here has none, and shows its message.
 * DSO_ERR_FILE alone adds EACCES where the failure is a permission (module-file.ts).
 */
export const ERRNO_OF_CODE: Readonly<Partial<Record<ErrorCode, keyof typeof Errno>>> = {
  [ErrorCodes.BAD_MODULE_NAME]: "EINVAL",
  [ErrorCodes.MODULE_NOT_FOUND]: "ENOENT",
  [ErrorCodes.NO_MODULE_SYMBOL]: "ENOENT",
  [ErrorCodes.API_VERSION]: "EACCES",
  [ErrorCodes.INIT_FAILED]: "EPERM",
  [ErrorCodes.ALREADY_LOADED]: "EEXIST",
  [ErrorCodes.NOT_LOADED]: "ENOENT",
  [ErrorCodes.HAS_DEPENDENTS]: "EBUSY",
  [ErrorCodes.NOT_ABSOLUTE]: "EINVAL",
  [ErrorCodes.PROTECTED]: "EPERM",
  [ErrorCodes.UNSAFE_FILE]: "EACCES",
  [ErrorCodes.INTEGRITY]: "EACCES",
};

export interface DsoErrorOptions {
  cause?: unknown;
  /**
   * The strerror text proftpd prints for this failure (`error loading module
   * 'mod_x.c': No such file or directory`), where it is not the code's own
   * (ERRNO_OF_CODE): only DSO_ERR_FILE's permission failures set it.
   */
  errno?: ErrnoText;
  /** Extra lines (each link problem on its own line, for instance). */
  details?: readonly string[];
  /**
   * Where a failure made in another process happened (`in worker 2 (pid
   * 4242); no worker changed`): the controls show it as a detail line under
   * the failure's own lines, whatever the code.
   */
  where?: string;
}

export class DsoError extends Error {
  readonly code: ErrorCode;
  readonly errno: ErrnoText | undefined;
  readonly details: readonly string[];
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options: DsoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DsoError";
    this.code = code;
    const own = ERRNO_OF_CODE[code];
    this.errno = options.errno ?? (own === undefined ? undefined : Errno[own]);
    this.details = options.details ?? [];
    this.where = options.where;
  }

  /** What proftpd would print after `error loading 'x': `: the errno text, else our own message. */
  get reason(): string {
    return this.errno ?? this.message;
  }

  /** Every line an operator should see: the detail lines when there are several, else the message. */
  get lines(): readonly string[] {
    return this.details.length > 0 ? this.details : [this.message];
  }
}

/** What a log line or a note says of a failure: an Error's message, or anything else as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True for errors raised by this package (matching on `code`, never on text). */
export function isDsoError(value: unknown): value is DsoError {
  return value instanceof DsoError;
}
