// mod_xfer_stats: counts the bytes each user uploads and downloads, in the
// spirit of mod_quotatab's tallies, and answers `SITE XFERSTATS` with the
// caller's totals:
//
//   200 demo: 1048576 bytes up in 2 files, 4096 bytes down in 1 file
//
// It reads the transfer in LOG_CMD of RETR, STOR, STOU and APPE, and in their
// LOG_CMD_ERR phase too: an aborted or failed transfer still moved bytes, but
// only a completed one counts as a file. Each transfer is also logged at debug
// level 5 (`dsod -d 5`) with its size and duration. Needs `ModuleCapabilities
// mod_xfer_stats.c session,transfer`. Each session has its own instance of
// the module (a forked child's), so the totals live in the shared store, as
// counters every session adds to: they outlive the sessions, an rmmod and a
// SIGHUP.
import {
  API_VERSION,
  DECLINED,
  HANDLED,
  OK,
  addHelp,
  argv,
  cmdPath,
  log,
  reply,
  sessionUser,
  sharedAdd,
  sharedGet,
  xferBytes,
  xferComplete,
  xferDirection,
  xferDurationMs,
  xferFileSize,
} from "./sdk";

export const xfer_stats_module: i32 = API_VERSION;

/** The shared store's key of one of a user's totals: `up:bytes:demo`, `down:files:demo`. */
function key(direction: string, what: string, user: string): string {
  return direction + ":" + what + ":" + user;
}

/** A total as the store keeps it (a decimal string), or "0" before the user's first transfer. */
function total(direction: string, what: string, user: string): string {
  const value = sharedGet(key(direction, what, user));
  return value.length == 0 ? "0" : value;
}

export function module_init(): i32 {
  addHelp("XFERSTATS", "(show your bytes up and down)");
  return OK;
}

/** Adds the command's transfer, if it had one, to the user's totals. */
function record(): i32 {
  const direction = xferDirection();
  const user = sessionUser();
  if (direction.length == 0 || user.length == 0) return DECLINED;
  const bytes = <u64>xferBytes();
  const complete = xferComplete() == 1;
  const side = direction == "upload" ? "up" : "down";
  sharedAdd(key(side, "bytes", user), <f64>bytes);
  if (complete) sharedAdd(key(side, "files", user), 1);
  log(
    user + ": " + argv(0) + " " + cmdPath() + ": " + bytes.toString() + " bytes " + direction + " in " +
      (<i64>xferDurationMs()).toString() + " ms, file size " + (<i64>xferFileSize()).toString() +
      (complete ? ", complete" : ", incomplete"),
    5,
  );
  // DECLINED: older modules' LOG_CMD handlers (a TransferLog) still run after this one.
  return DECLINED;
}

export function log_cmd_RETR(): i32 {
  return record();
}

export function log_cmd_err_RETR(): i32 {
  return record();
}

export function log_cmd_STOR(): i32 {
  return record();
}

export function log_cmd_err_STOR(): i32 {
  return record();
}

export function log_cmd_STOU(): i32 {
  return record();
}

export function log_cmd_err_STOU(): i32 {
  return record();
}

export function log_cmd_APPE(): i32 {
  return record();
}

export function log_cmd_err_APPE(): i32 {
  return record();
}

function files(count: string): string {
  return count + (count == "1" ? " file" : " files");
}

export function site_XFERSTATS(): i32 {
  const user = sessionUser();
  reply(
    "200",
    user + ": " + total("up", "bytes", user) + " bytes up in " + files(total("up", "files", user)) + ", " +
      total("down", "bytes", user) + " bytes down in " + files(total("down", "files", user)),
  );
  return HANDLED;
}
