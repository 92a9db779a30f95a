// The numbers of the module protocol, as the host defines them: the API
// version (host/modules/module-api.ts MODULE_API_VERSION) and what handlers,
// hooks and directive handlers return (HandlerResults there). build.mjs
// compiles this file alone into dist/sdk/constants.wasm, where each constant
// is an exported global; test/unit/abi/sdk-constants.test.ts checks them
// against the host's, so the two cannot drift apart.

/** proftpd's PR_MODULE_API_VERSION; export it as `NAME_module`. */
export const API_VERSION: i32 = 0x20;

/** A handler passes the command on: the next module's handler runs (proftpd's PR_DECLINED). */
export const DECLINED: i32 = 0;

/** A handler has done the command: the phase ends (proftpd's PR_HANDLED). */
export const HANDLED: i32 = 1;

/**
 * A handler failed the command (proftpd's PR_ERROR): add the error reply with
 * `replyError` first. From `module_init` it refuses the load; from
 * `sess_init` it ends the session before the greeting; from a `conf_X`
 * handler it refuses the directive (`directiveError` returns it).
 */
export const ERROR: i32 = -1;

/** What `module_init`, `sess_init` and `conf_X` return when all went well; any value >= 0 does. */
export const OK: i32 = 0;

// What the shared store's writes return (host/abi/shared-store.ts SharedResults):
// proxy-wasm's WasmResult numbers where it has one.

/** The write was done. */
export const SHARED_OK: i32 = 0;

/** There is no entry under the key. */
export const SHARED_NOT_FOUND: i32 = 1;

/** An empty key, or a version that is neither -1, 0 nor one the store gave. */
export const SHARED_BAD_ARGUMENT: i32 = 2;

/** An add to an entry whose value is not a number. */
export const SHARED_PARSE_FAILURE: i32 = 4;

/** The entry's version is no longer the one given: another session wrote it first; read it again. */
export const SHARED_CAS_MISMATCH: i32 = 8;

/** The write would take the module's shared data past its bound (a sixteenth of its memory cap). */
export const SHARED_TOO_LARGE: i32 = 13;

/** The version that writes whatever the entry's version (host's ANY_VERSION). */
export const SHARED_ANY_VERSION: f64 = -1;

/** The version of an absent key: a write with it creates the entry only if nobody did (host's ABSENT_VERSION). */
export const SHARED_ABSENT: f64 = 0;
