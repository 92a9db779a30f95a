// Control actions a module registers, as proftpd's modules do (mod_ban's
// `ban`, mod_ctrls_admin's `status`): export `ctrl_<action>` (lower case) and
// `dsoctl <action> args...` runs it. docs/host-abi.md ("Control actions").
//
//   export function module_init(): i32 { ctrlsRegister("hello", "say hello"); return OK; }
//   export function conf_HelloControlsACLs(): i32 { return ctrlsSetAcls(); }
//   export function ctrl_hello(): i32 {
//     if (argc() < 2) { ctrlsReply("missing parameters"); return CTRLS_WRONG_PARAMETERS; }
//     ctrlsReply("hello " + argv(1));
//     return CTRLS_OK;
//   }
//
// The host checks the action's ACL before the export runs: a denied client
// gets `access denied` and the guest is never called.
import { pr_ctrls_add_response, pr_ctrls_register, pr_ctrls_set_module_acls } from "./host";

/** What a control returns: its answer's status (proftpd's PR_CTRLS_STATUS_*), which dsoctl's exit code tells. */
export const CTRLS_OK: i32 = 0;
export const CTRLS_GENERIC_ERROR: i32 = -1;
export const CTRLS_WRONG_PARAMETERS: i32 = -3;
export const CTRLS_SUBJECT_NOT_FOUND: i32 = -4;
export const CTRLS_OPERATION_DENIED: i32 = -5;

/**
 * Says what `dsoctl help` shows for `ctrl_<action>`; call it from
 * module_init. Returns -1 when the module exports no `ctrl_<action>`.
 */
export function ctrlsRegister(action: string, description: string): i32 {
  return pr_ctrls_register(action, description);
}

/**
 * From the module's ACL directive (`conf_XControlsACLs`, written
 * `XControlsACLs actions|all allow|deny user|group list`): applies it to the
 * module's controls and returns what the directive handler returns, ERROR
 * with proftpd's reason when the directive is wrong.
 */
export function ctrlsSetAcls(): i32 {
  return pr_ctrls_set_module_acls();
}

/** Adds a line to the control's answer (`dsoctl: <line>`). Word `i` of the request is argv(i); 0 is the action. */
export function ctrlsReply(line: string): void {
  pr_ctrls_add_response(line);
}
