// The wasm-dso SDK: everything a module author imports. A module is one file:
//
//   import { API_VERSION, HANDLED, reply } from "./sdk";    // or "wasm-dso/guest-modules/sdk"
//   export const hello_module: i32 = API_VERSION;           // mod_hello.c -> hello_module
//   export function cmd_HELLO(): i32 { reply("200", "Hello"); return HANDLED; }
//
// README.md beside this file: how to build a module outside this repository
// (its asconfig.json extends this folder's), the export names the host looks
// for, and what state a module's globals share: today one instance of a
// module serves every session, so a global is shared by all of them.
import {
  pr_cmd_arg,
  pr_cmd_argc,
  pr_cmd_argv,
  pr_cmd_path,
  pr_feat_add,
  pr_help_add,
  pr_log_debug,
  pr_response_add,
  pr_response_add_err,
  pr_session_cwd,
  pr_session_disconnect,
  pr_session_remote_addr,
  pr_session_user,
  pr_time_now,
  pr_trace_msg,
  pr_xfer_bytes,
  pr_xfer_complete,
  pr_xfer_direction,
  pr_xfer_duration_ms,
  pr_xfer_file_size,
} from "./host";

import { ERROR } from "./constants";

export { API_VERSION, DECLINED, ERROR, HANDLED, OK } from "./constants";
export {
  CTRLS_GENERIC_ERROR,
  CTRLS_OK,
  CTRLS_OPERATION_DENIED,
  CTRLS_SUBJECT_NOT_FOUND,
  CTRLS_WRONG_PARAMETERS,
  ctrlsRegister,
  ctrlsReply,
  ctrlsSetAcls,
} from "./controls";
export {
  SHARED_ABSENT,
  SHARED_ANY_VERSION,
  SHARED_BAD_ARGUMENT,
  SHARED_CAS_MISMATCH,
  SHARED_NOT_FOUND,
  SHARED_OK,
  SHARED_PARSE_FAILURE,
  SHARED_TOO_LARGE,
} from "./constants";
export { sharedAdd, sharedDelete, sharedGet, sharedSet, sharedVersion } from "./shared";

/** A line in the daemon's log at debug `level` (0 shows always). */
export function log(msg: string, level: i32 = 0): void {
  pr_log_debug(level, msg);
}

/** A line in the TraceLog on `channel` when `Trace channel:N` has N >= level. */
export function traceMsg(channel: string, level: i32, msg: string): void {
  pr_trace_msg(channel, level, msg);
}

/** Adds a reply line (`200 Hello`) to the command being handled. */
export function reply(code: string, msg: string): void {
  pr_response_add(code, msg);
}

/**
 * Adds an error reply line (`550 No such file`) to the command being handled;
 * then return ERROR. From a PRE_CMD handler this refuses the command before
 * any other module acts: the client gets these lines (any code, `553` too).
 */
export function replyError(code: string, msg: string): void {
  pr_response_add_err(code, msg);
}

/** Refuses a directive: dsod reports `Directive: msg on line N of 'file'`. */
export function directiveError(msg: string): i32 {
  pr_response_add_err("", msg);
  return ERROR;
}

/** The argument of the command or directive: everything after its name. */
export function arg(): string {
  return pr_cmd_arg();
}

/** The number of words of the command or directive, its name included. */
export function argc(): i32 {
  return pr_cmd_argc();
}

/** Word `index` of the command or directive; 0 is its name. */
export function argv(index: i32): string {
  return pr_cmd_argv(index);
}

/** Adds a line to the FEAT reply; call it from module_init. */
export function addFeature(feat: string): void {
  pr_feat_add(feat);
}

/** Describes a command for HELP; call it from module_init. */
export function addHelp(command: string, text: string): void {
  pr_help_add(command, text);
}

/** The user the session logged in as, or "" (needs the `session` capability). */
export function sessionUser(): string {
  return pr_session_user();
}

/**
 * The client's address (`127.0.0.1`), in sess_init and every command handler
 * (needs the `session` capability); "" for a directive or a control action.
 */
export function sessionRemoteAddress(): string {
  return pr_session_remote_addr();
}

/**
 * proftpd's pr_session_disconnect: the session ends once the replies of this
 * command (or of sess_init) have been sent; the handler itself runs on to its
 * end, so return right after. Needs the `session` capability; traps in a
 * directive or a control action.
 */
export function disconnectSession(details: string = ""): void {
  pr_session_disconnect(details);
}

/** Milliseconds since the epoch. */
export function now(): f64 {
  return pr_time_now();
}

/**
 * The file or directory the command names, as an absolute path inside the
 * session's jail (`/docs/a.txt`), or "" when it names none.
 */
export function cmdPath(): string {
  return pr_cmd_path();
}

/** The last component of `path` (`a.txt` of `/docs/a.txt`); "" for `/`. */
export function baseName(path: string): string {
  return path.substring(path.lastIndexOf("/") + 1);
}

/** The session's working directory inside its jail (`/up`), or "" for a directive. */
export function sessionCwd(): string {
  return pr_session_cwd();
}

/**
 * What a data transfer moved, read in POST_CMD/LOG_CMD (and their _ERR phases)
 * of RETR, STOR, STOU, APPE, LIST, NLST and MLSD (needs the `transfer`
 * capability). Numbers are f64 because sizes pass 2^31; -1 means the command
 * has no transfer.
 */
export function xferBytes(): f64 {
  return pr_xfer_bytes();
}

export function xferFileSize(): f64 {
  return pr_xfer_file_size();
}

export function xferDurationMs(): f64 {
  return pr_xfer_duration_ms();
}

/** `upload`, `download`, or "" without a transfer. */
export function xferDirection(): string {
  return pr_xfer_direction();
}

/** 1 when the transfer completed (226), 0 when aborted or failed, -1 without a transfer. */
export function xferComplete(): i32 {
  return pr_xfer_complete();
}
