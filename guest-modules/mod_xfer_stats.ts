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
// mod_xfer_stats.c session,transfer`. The totals live in this module's
// instance: they last while it stays loaded and are shared by every session.
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
  xferBytes,
  xferComplete,
  xferDirection,
  xferDurationMs,
  xferFileSize,
} from "./sdk";

export const xfer_stats_module: i32 = API_VERSION;

class Totals {
  bytesUp: u64 = 0;
  filesUp: u64 = 0;
  bytesDown: u64 = 0;
  filesDown: u64 = 0;
}

const byUser = new Map<string, Totals>();

function totalsOf(user: string): Totals {
  if (!byUser.has(user)) byUser.set(user, new Totals());
  return byUser.get(user);
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
  const totals = totalsOf(user);
  const files: u64 = complete ? 1 : 0;
  if (direction == "upload") {
    totals.bytesUp += bytes;
    totals.filesUp += files;
  } else {
    totals.bytesDown += bytes;
    totals.filesDown += files;
  }
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

function files(count: u64): string {
  return count.toString() + (count == 1 ? " file" : " files");
}

export function site_XFERSTATS(): i32 {
  const user = sessionUser();
  const totals = byUser.has(user) ? byUser.get(user) : new Totals();
  reply(
    "200",
    user + ": " + totals.bytesUp.toString() + " bytes up in " + files(totals.filesUp) + ", " +
      totals.bytesDown.toString() + " bytes down in " + files(totals.filesDown),
  );
  return HANDLED;
}
