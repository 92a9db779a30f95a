// mod_ban: proftpd's mod_ban (contrib/mod_ban.c) as a guest module. Ban lists
// that every session sees, kept in the shared store (docs/host-abi.md, "The
// shared store") where proftpd keeps them in the BanTable's shared memory:
//
//   ModuleCapabilities mod_ban.c session
//   LoadModule mod_ban.c
//   BanEngine on
//   BanOnEvent MaxLoginAttempts 3/00:10:00 01:00:00
//   BanMessage "Host %a has been banned"
//   BanControlsACLs ban,permit allow user root
//
// A banned host is refused in sess_init, before the greeting, with
// `530 <BanMessage>` (ban_sess_init); a banned user at USER, with the
// BanMessage and `530 Login incorrect.` (ban_pre_pass), the session staying
// open. A BanOnEvent rule that reaches its count bans the host, sends the
// BanMessage and ends the session with pr_session_disconnect (ban_handle_event):
// the failed PASS that reached MaxLoginAttempts' count, the connection that
// reached ClientConnectRate's. `dsoctl ban user|host NAME...`, `dsoctl ban
// info [-v] [-e]` and `dsoctl permit user|host NAME...|*` answer with mod_ban's
// words. docs/directives.md (mod_ban.c) says where it differs from proftpd's.
import {
  API_VERSION,
  CTRLS_GENERIC_ERROR,
  CTRLS_OK,
  DECLINED,
  ERROR,
  HANDLED,
  OK,
  SHARED_OK,
  argc,
  argv,
  ctrlsRegister,
  ctrlsReply,
  ctrlsSetAcls,
  directiveError,
  disconnectSession,
  log,
  now,
  replyError,
  sessionRemoteAddress,
  sessionUser,
  sharedGet,
  sharedSet,
  sharedVersion,
} from "./sdk";

export const ban_module: i32 = API_VERSION;

/** MOD_BAN_VERSION: how mod_ban names itself in its log lines and answers. */
const VERSION = "mod_ban/0.7";
const BANS_KEY = "bans";
const EVENTS_KEY = "events";
const MAX_LOGIN_ATTEMPTS = "MaxLoginAttempts";
const CLIENT_CONNECT_RATE = "ClientConnectRate";
/**
 * The debug level of what proftpd writes to the BanLog alone, and of its
 * DEBUG3 lines; `Login denied` lines are pr_log_pri's, always shown.
 */
const BAN_LOG: i32 = 3;

let engine = false;
let banMessage = "";

/** A BanOnEvent rule: `max` events within `windowMs` ban the source for `durationMs`. */
class Rule {
  constructor(
    public event: string,
    public max: i32,
    public windowMs: f64,
    public durationMs: f64,
    public mesg: string,
  ) {}
}

let rules: Rule[] = [];

/** One entry of the ban list (struct ban_entry); `expires` 0 is never. */
class Ban {
  constructor(
    public type: string,
    public name: string,
    public expires: f64,
    public reason: string,
    public mesg: string,
  ) {}
}

/** One entry of the event list (struct ban_event_entry): `count` of `max` since `start`. */
class BanEvent {
  constructor(
    public event: string,
    public src: string,
    public count: i32,
    public max: i32,
    public start: f64,
    public windowMs: f64,
  ) {}
}

// The two lists live in two shared entries, one record a line, fields split by tabs.

function clean(text: string): string {
  return text.replaceAll("\t", " ").replaceAll("\n", " ");
}

function records(key: string): string[][] {
  const text = sharedGet(key);
  const out: string[][] = [];
  if (text.length == 0) return out;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) out.push(lines[i].split("\t"));
  return out;
}

function readBans(): Ban[] {
  const out: Ban[] = [];
  const rows = records(BANS_KEY);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    out.push(new Ban(r[0], r[1], parseFloat(r[2]), r[3], r[4]));
  }
  return out;
}

function readEvents(): BanEvent[] {
  const out: BanEvent[] = [];
  const rows = records(EVENTS_KEY);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    out.push(new BanEvent(r[0], r[1], I32.parseInt(r[2]), I32.parseInt(r[3]), parseFloat(r[4]), parseFloat(r[5])));
  }
  return out;
}

function whole(n: f64): string {
  return (<i64>n).toString();
}

/**
 * Writes the lists back if no other session wrote them since `version` was
 * read. Host calls of one handler run without another session's in between,
 * so this holds in practice; a mismatch is logged, never a silent loss.
 */
function writeBans(bans: Ban[], version: f64): void {
  const lines: string[] = [];
  for (let i = 0; i < bans.length; i++) {
    const b = bans[i];
    lines.push([b.type, b.name, whole(b.expires), clean(b.reason), clean(b.mesg)].join("\t"));
  }
  if (sharedSet(BANS_KEY, lines.join("\n"), version) != SHARED_OK) log(VERSION + ": error updating the ban list");
}

function writeEvents(events: BanEvent[], version: f64): void {
  const lines: string[] = [];
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    lines.push([e.event, e.src, e.count.toString(), e.max.toString(), whole(e.start), whole(e.windowMs)].join("\t"));
  }
  if (sharedSet(EVENTS_KEY, lines.join("\n"), version) != SHARED_OK) log(VERSION + ": error updating the ban events");
}

/** ban_list_expire: drops the bans whose time is up. */
function expireBans(): void {
  const version = sharedVersion(BANS_KEY);
  const bans = readBans();
  const t = now();
  const kept: Ban[] = [];
  for (let i = 0; i < bans.length; i++) {
    const b = bans[i];
    if (b.expires == 0 || b.expires > t) kept.push(b);
    else log(VERSION + ": ban for " + b.type + " '" + b.name + "' has expired", BAN_LOG);
  }
  if (kept.length != bans.length) writeBans(kept, version);
}

function findBan(bans: Ban[], type: string, name: string): i32 {
  for (let i = 0; i < bans.length; i++) if (bans[i].type == type && bans[i].name == name) return i;
  return -1;
}

/** ban_list_add, unless it is there already; false when it was. */
function addBan(type: string, name: string, reason: string, durationMs: f64, mesg: string): bool {
  const version = sharedVersion(BANS_KEY);
  const bans = readBans();
  if (findBan(bans, type, name) >= 0) return false;
  bans.push(new Ban(type, name, durationMs == 0 ? 0 : now() + durationMs, reason, mesg));
  writeBans(bans, version);
  return true;
}

/** ban_list_remove: one name, or every ban of `type` when `name` is "*"; false when none was there. */
function removeBans(type: string, name: string): bool {
  const version = sharedVersion(BANS_KEY);
  const bans = readBans();
  const kept: Ban[] = [];
  for (let i = 0; i < bans.length; i++) {
    if (bans[i].type != type || (name != "*" && bans[i].name != name)) kept.push(bans[i]);
  }
  if (kept.length == bans.length) return false;
  writeBans(kept, version);
  return true;
}

/** The ban on `name`, after expiry, or null. */
function activeBan(type: string, name: string): Ban | null {
  expireBans();
  const bans = readBans();
  const at = findBan(bans, type, name);
  return at < 0 ? null : bans[at];
}

/** pr_strtime, in UTC: `Sat Dec  5 00:28:05 2026`. */
function strtime(ms: f64): string {
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const d = new Date(<i64>ms);
  const day = d.getUTCDate().toString().padStart(2, " ");
  const time =
    d.getUTCHours().toString().padStart(2, "0") +
    ":" +
    d.getUTCMinutes().toString().padStart(2, "0") +
    ":" +
    d.getUTCSeconds().toString().padStart(2, "0");
  const year = d.getUTCFullYear().toString();
  return days[d.getUTCDay()] + " " + months[d.getUTCMonth()] + " " + day + " " + time + " " + year;
}

/**
 * ban_handle_event for a host: counts the event, and once it reaches the
 * rule's count within its window, bans the host for the rule's duration.
 * True when this event banned it.
 */
function handleEvent(rule: Rule, src: string): bool {
  const version = sharedVersion(EVENTS_KEY);
  const t = now();
  const events: BanEvent[] = [];
  const all = readEvents();
  // ban_event_list_expire: a window that ended starts over.
  for (let i = 0; i < all.length; i++) if (all[i].start + all[i].windowMs > t) events.push(all[i]);
  let entry: BanEvent | null = null;
  for (let i = 0; i < events.length; i++) if (events[i].event == rule.event && events[i].src == src) entry = events[i];
  if (entry == null) {
    entry = new BanEvent(rule.event, src, 0, rule.max, t, rule.windowMs);
    events.push(entry);
  }
  if (entry.count < entry.max) entry.count++;
  writeEvents(events, version);
  if (entry.count < entry.max) return false;
  const reason = rule.event + " autoban at " + strtime(t);
  if (!addBan("host", src, reason, rule.durationMs, rule.mesg)) {
    const counts = entry.count.toString() + " curr, " + entry.max.toString() + " max";
    log(VERSION + ": updated count for " + rule.event + " event entry: " + counts, BAN_LOG);
    return false;
  }
  log(VERSION + ": added " + rule.event + "-triggered autoban for host '" + src + "'", BAN_LOG);
  return true;
}

function ruleFor(event: string): Rule | null {
  for (let i = 0; i < rules.length; i++) if (rules[i].event == event) return rules[i];
  return null;
}

/** ban_send_mesg: the rule's message or BanMessage, with %a, %c and %u filled in, as `530 text`. */
function sendMesg(user: string, ruleMesg: string, address: string): void {
  const mesg = ruleMesg.length > 0 ? ruleMesg : banMessage;
  if (mesg.length == 0) return;
  // dsod has no <Class>: %c is proftpd's word for a session without one.
  replyError("530", mesg.replaceAll("%c", "(none)").replaceAll("%a", address).replaceAll("%u", user));
}

// Directives

/** BanEngine on|off (get_boolean's words). */
export function conf_BanEngine(): i32 {
  if (argc() != 2) return directiveError("wrong number of parameters");
  const word = argv(1).toLowerCase();
  if (word == "on" || word == "yes" || word == "true" || word == "1") engine = true;
  else if (word == "off" || word == "no" || word == "false" || word == "0") engine = false;
  else return directiveError("expected Boolean parameter");
  return HANDLED;
}

/** BanMessage mesg */
export function conf_BanMessage(): i32 {
  if (argc() != 2) return directiveError("wrong number of parameters");
  banMessage = argv(1);
  return HANDLED;
}

/** ban_parse_timestr: `hh:mm:ss` in milliseconds, or -1. */
function parseTime(text: string): f64 {
  const parts = text.split(":");
  if (parts.length != 3) return -1;
  let seconds: f64 = 0;
  for (let i = 0; i < 3; i++) {
    const part = parts[i];
    if (part.length < 1 || part.length > 2) return -1;
    for (let c = 0; c < part.length; c++) if (part.charCodeAt(c) < 0x30 || part.charCodeAt(c) > 0x39) return -1;
    seconds = seconds * 60 + <f64>I32.parseInt(part);
  }
  return seconds * 1000;
}

/** BanOnEvent event N/hh:mm:ss hh:mm:ss [mesg], for the events a guest can see. */
export function conf_BanOnEvent(): i32 {
  if (argc() < 4 || argc() > 5) return directiveError("wrong number of parameters");
  const freq = argv(2);
  const slash = freq.indexOf("/");
  if (slash < 0) return directiveError("badly formatted freq parameter: '" + freq + "'");
  const max = I32.parseInt(freq.substring(0, slash));
  if (max < 1) return directiveError("freq occurrences must be greater than 0");
  const windowMs = parseTime(freq.substring(slash + 1));
  if (windowMs < 0) return directiveError("badly formatted freq parameter: '" + freq + "'");
  if (windowMs == 0) return directiveError("freq parameter cannot be '00:00:00'");
  const durationMs = parseTime(argv(3));
  if (durationMs < 0) return directiveError("badly formatted duration parameter: '" + argv(3) + "'");
  if (durationMs == 0) return directiveError("duration parameter cannot be '00:00:00'");
  let event = "";
  const name = argv(1).toLowerCase();
  if (name == MAX_LOGIN_ATTEMPTS.toLowerCase()) event = MAX_LOGIN_ATTEMPTS;
  else if (name == CLIENT_CONNECT_RATE.toLowerCase()) event = CLIENT_CONNECT_RATE;
  else return directiveError("unsupported event: '" + argv(1) + "' (supported: MaxLoginAttempts, ClientConnectRate)");
  const kept: Rule[] = [];
  for (let i = 0; i < rules.length; i++) if (rules[i].event != event) kept.push(rules[i]);
  kept.push(new Rule(event, max, windowMs, durationMs, argc() == 5 ? argv(4) : ""));
  rules = kept;
  return HANDLED;
}

/** BanControlsACLs actions|all allow|deny user|group list */
export function conf_BanControlsACLs(): i32 {
  return ctrlsSetAcls();
}

// Hooks and handlers

export function module_init(): i32 {
  ctrlsRegister("ban", "ban a class, host, or user from using the daemon");
  ctrlsRegister("permit", "allow a banned class, host or user to use the daemon");
  return OK;
}

/** ban_sess_init: a banned host is told BanMessage and refused before the greeting. */
export function sess_init(): i32 {
  if (!engine) return OK;
  const address = sessionRemoteAddress();
  const ban = activeBan("host", address);
  if (ban != null) {
    log(VERSION + ": Login denied: host '" + address + "' banned");
    sendMesg("(none)", ban.mesg, address);
    return ERROR;
  }
  const rule = ruleFor(CLIENT_CONNECT_RATE);
  if (rule != null && handleEvent(rule, address)) {
    endSession(address);
    // proftpd's pr_session_disconnect never returns: ERROR keeps the other modules' sess_init from running too.
    return ERROR;
  }
  return OK;
}

/** ban_handle_event's end of a session that reached an autoban: the BanMessage (never the rule's), then the end. */
function endSession(address: string): void {
  log(VERSION + ": autoban threshold reached, ending session", BAN_LOG);
  sendMesg("(none)", "", address);
  disconnectSession();
}

/**
 * A session whose host was banned after it connected: proftpd's ban_list_add
 * ends it then (ban_disconnect_host signals its process); a guest cannot
 * reach another session, so it ends at its next login command instead.
 */
function refuseBannedHost(): bool {
  const address = sessionRemoteAddress();
  const ban = activeBan("host", address);
  if (ban == null) return false;
  log(VERSION + ": Login denied: host '" + address + "' banned");
  sendMesg("(none)", ban.mesg, address);
  replyError("530", "Login incorrect.");
  disconnectSession();
  return true;
}

/** ban_pre_pass's user check, made at USER, where a guest sees the name. */
export function pre_cmd_USER(): i32 {
  if (!engine) return DECLINED;
  if (refuseBannedHost()) return ERROR;
  const user = argv(1);
  const ban = activeBan("user", user);
  if (ban == null) return DECLINED;
  log(VERSION + ": Login denied: user '" + user + "' banned");
  sendMesg(user, ban.mesg, sessionRemoteAddress());
  replyError("530", "Login incorrect.");
  return ERROR;
}

export function pre_cmd_PASS(): i32 {
  if (!engine) return DECLINED;
  return refuseBannedHost() ? ERROR : DECLINED;
}

/**
 * A failed login: the MaxLoginAttempts rule counts it for the client's host,
 * and the one that reaches the count ends the session after its
 * `530 Login incorrect.` and the BanMessage (ban_maxloginattempts_ev).
 */
export function log_cmd_err_PASS(): i32 {
  if (!engine) return DECLINED;
  const rule = ruleFor(MAX_LOGIN_ATTEMPTS);
  const address = sessionRemoteAddress();
  if (rule != null && handleEvent(rule, address)) endSession(address);
  return DECLINED;
}

// Controls

/** An IPv4 or IPv6 address as written; the guest cannot resolve names as pr_netaddr_get_addr does. */
function isAddress(text: string): bool {
  if (text.length == 0) return false;
  let dots = 0;
  let colons = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x2e) dots++;
    else if (c == 0x3a) colons++;
    else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) return false;
  }
  return dots == 3 || colons >= 2;
}

function requester(): string {
  return "requested by '" + sessionUser() + "' on " + strtime(now());
}

function banInfo(): i32 {
  let verbose = false;
  let showEvents = false;
  for (let i = 2; i < argc(); i++) {
    const opt = argv(i);
    if (opt == "-v") verbose = true;
    else if (opt == "-e") showEvents = true;
    else return refused("unsupported parameter: '" + opt + "'");
  }
  expireBans();
  const bans = readBans();
  if (bans.length == 0) ctrlsReply("No bans");
  const types = ["user", "host"];
  const titles = ["Banned Users:", "Banned Hosts:"];
  let shown = false;
  for (let t = 0; t < types.length; t++) {
    let opened = false;
    for (let i = 0; i < bans.length; i++) {
      const b = bans[i];
      if (b.type != types[t]) continue;
      if (!opened) {
        if (shown) ctrlsReply("");
        ctrlsReply(titles[t]);
        opened = true;
        shown = true;
      }
      ctrlsReply("  " + b.name);
      if (!verbose) continue;
      ctrlsReply("    Reason: " + b.reason);
      if (b.expires == 0) ctrlsReply("    Expires: never");
      else ctrlsReply("    Expires: " + strtime(b.expires) + " (in " + whole((b.expires - now()) / 1000) + " seconds)");
    }
  }
  if (showEvents) {
    ctrlsReply("");
    const t = now();
    const events = readEvents();
    let listed = false;
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (e.start + e.windowMs <= t) continue;
      if (!listed) ctrlsReply("Ban Events:");
      listed = true;
      ctrlsReply("  Event: " + e.event);
      ctrlsReply("  Source: " + e.src);
      ctrlsReply("    Occurrences: " + e.count.toString() + "/" + e.max.toString());
      ctrlsReply("    Entry Expires: " + whole((e.start + e.windowMs - t) / 1000) + " seconds");
    }
    if (!listed) ctrlsReply("No ban events");
  }
  return CTRLS_OK;
}

/** A control's failure: its one answer line, and pr_ctrls' generic error status. */
function refused(message: string): i32 {
  ctrlsReply(message);
  return CTRLS_GENERIC_ERROR;
}

/** ban_handle_ban: `ban user|host NAME...` and `ban info [-v] [-e]`. */
export function ctrl_ban(): i32 {
  if (argc() < 2) return refused("missing parameters");
  if (!engine) return refused(VERSION + " not enabled");
  const type = argv(1);
  if (type == "info") return banInfo();
  if (type != "user" && type != "host") return refused("unknown ban type requested: '" + type + "'");
  if (argc() < 3) return refused("missing parameters");
  expireBans();
  for (let i = 2; i < argc(); i++) {
    const name = argv(i);
    if (type == "host" && !isAddress(name)) {
      ctrlsReply("ban: unknown host '" + name + "'");
      continue;
    }
    if (addBan(type, name, requester(), 0, "")) {
      log(VERSION + ": added '" + name + "' to banned " + type + "s list", BAN_LOG);
      ctrlsReply(type + " " + name + " banned");
    } else {
      ctrlsReply(type + " " + name + " already banned");
    }
  }
  return CTRLS_OK;
}

/** ban_handle_permit: `permit user|host NAME...|*`. */
export function ctrl_permit(): i32 {
  if (argc() < 3) return refused("missing parameters");
  if (!engine) return refused(VERSION + " not enabled");
  const type = argv(1);
  if (type != "user" && type != "host") return refused("unknown ban type requested: '" + type + "'");
  expireBans();
  if (readBans().length == 0) {
    ctrlsReply("permit request unnecessary");
    ctrlsReply("no " + type + "s are banned");
    return CTRLS_OK;
  }
  if (argv(2) == "*") {
    removeBans(type, "*");
    ctrlsReply("all " + type + "s permitted");
    return CTRLS_OK;
  }
  for (let i = 2; i < argc(); i++) {
    const name = argv(i);
    if (removeBans(type, name)) {
      log(VERSION + ": removed '" + name + "' from banned " + type + "s list", BAN_LOG);
      ctrlsReply(type + " '" + name + "' permitted");
    } else {
      ctrlsReply(type + " '" + name + "' not banned");
    }
  }
  return CTRLS_OK;
}
