/**
 * The `status` int of a controls response. proftpd 1.3.8 handlers answer 0
 * or -1 and ftpdctl ignores the value; upstream master (Issue #1114) gives
 * each outcome its own PR_CTRLS_STATUS_* value and ftpdctl exits with its
 * negation. We keep master's values where they are observed (access denied
 * -2, unsupported action -7), so master's ftpdctl exits 2 and 7 against dsod
 * as it would against proftpd, while 1.3.8's ftpdctl still just prints lines.
 *
 * Shared by the server and dsoctl, hence a module of its own with no imports.
 */
export const ControlsStatus = {
  OK: 0,
  /** A handler refused or failed (1.3.8's -1); also a malformed request. */
  FAILED: -1,
  /** The socket ACL or the action's ACL denied the client, or it could not be identified. */
  ACCESS_DENIED: -2,
  /** No handler for the action (`unsupported action requested`). */
  UNSUPPORTED: -7,
  /**
   * ControlsMaxClients connections are already being served. Ours alone:
   * proftpd leaves extra clients queued in listen() until the next tick; we
   * answer at once so that a script can retry (EAGAIN's number).
   */
  BUSY: -11,
} as const;
