/**
 * mod_auth.c, compiled in: USER and PASS, and the login that sets up where
 * the user lives (setup_env): the account from the AuthSource, the
 * filesystem jail (DefaultRoot), the working directory, and the limits on
 * who may log in (MaxLoginAttempts, MaxClients, MaxClientsPerHost,
 * MaxClientsPerUser). Where proftpd asks the auth handler tables of its
 * modules (mod_auth_file.c, mod_auth_unix.c...), this module asks the
 * AuthSource it is built with. Every failed login is logged with proftpd's
 * words, so that log watchers (fail2ban's proftpd filter) see them.
 */
import { realpath } from "node:fs/promises";
import type { ActiveCommand } from "../abi/host-symbols.js";
import type { AuthUser } from "../auth/auth-user-file.js";
import { messageOf } from "../errors.js";
import type { SessionFilesystem, SessionFsOptions } from "../fs/session-fs.js";
import { countClients, limitReply } from "../ftp/scoreboard.js";
import type { ConnectionLimit, Scoreboard } from "../ftp/scoreboard.js";
import { sessionLabel } from "../ftp/session.js";
import { errnoOf, strerror } from "../ftp/strerror.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  DirectiveHandler,
  EngineModule,
  HandlerResult,
  HelpEntry,
  SessionAccount,
  SessionState,
} from "../modules/module-api.js";
import type { LogPriority } from "../modules/module-host.js";
import { booleanParam, checkArgs, directiveError, param } from "../config/directives.js";
import { parseDuration } from "./mod-core.js";

export interface AuthSource {
  /** pr_auth_getpwnam: the account of that name, or undefined. */
  lookup(user: string): AuthUser | undefined;
  /** pr_auth_check: true when `password` is the account's (a Promise when the hash runs off the event loop). */
  check(account: AuthUser, password: string): boolean | Promise<boolean>;
}

/** DefaultRoot: the directory (`~` for the user's home) and the group expression that selects who it applies to. */
export interface DefaultRoot {
  readonly dir: string;
  /** pr_expr_eval_group_and: every name a group of the user's, every `!name` not one. */
  readonly groups: readonly string[];
}

export interface AuthSettings {
  /** WtmpLog: recorded; dsod writes no wtmp records, and says so when it is on. */
  wtmpLog: boolean;
  /** MaxLoginAttempts: the failed PASS that ends the session; 0 ("none") never. */
  maxLoginAttempts: number;
  /** MaxClients: logged-in sessions. */
  maxClients: ConnectionLimit | undefined;
  /** MaxClientsPerHost: logged-in sessions from one address. */
  maxClientsPerHost: ConnectionLimit | undefined;
  /** MaxClientsPerUser: sessions logged in as one user. */
  maxClientsPerUser: ConnectionLimit | undefined;
  /** MaxConnectionsPerHost: sessions from one address, logged in or not; the FTP listener checks it before the greeting. */
  maxConnectionsPerHost: ConnectionLimit | undefined;
  /** TimeoutLogin in seconds: from connect to login; 0 never. */
  timeoutLogin: number;
  /** TimeoutSession in seconds: from login to the end; 0 never. */
  timeoutSession: number;
  /** DefaultRoot directives in config order; the first that applies to the user wins. */
  defaultRoots: DefaultRoot[];
}

export function defaultAuthSettings(): AuthSettings {
  return {
    wtmpLog: true,
    maxLoginAttempts: MAX_LOGIN_ATTEMPTS,
    maxClients: undefined,
    maxClientsPerHost: undefined,
    maxClientsPerUser: undefined,
    maxConnectionsPerHost: undefined,
    // PR_TUNABLE_TIMEOUTLOGIN
    timeoutLogin: 300,
    timeoutSession: 0,
    defaultRoots: [],
  };
}

export interface AuthModuleOptions {
  readonly source: AuthSource;
  /** The sessions now open, for the MaxClients checks. */
  readonly scoreboard: Scoreboard;
  /** SessionFilesystem.open: the jail a session's paths are resolved in. */
  readonly openFilesystem: (root: string, options: SessionFsOptions) => Promise<SessionFilesystem>;
  /** The Umask settings new sessions get (mod_core.c's Umask). */
  readonly umask: () => Pick<SessionFsOptions, "umask" | "dirUmask">;
  /**
   * pr_auth_gid2name: the group's name, undefined when the system has none for
   * the id; a Promise when the system must be asked (PASS then waits for it).
   */
  readonly groupName: (gid: number) => string | undefined | Promise<string | undefined>;
  /** The server's port, for the `... to address:port` of failed-login lines. */
  readonly serverPort: () => number;
  /** login_check_limits: whether <Limit LOGIN> lets the account in; everyone unless given. */
  readonly loginAllowed?: (account: SessionAccount) => boolean;
  readonly log: (priority: LogPriority, message: string) => void;
}

/** PR_TUNABLE_LOGIN_MAX: auth_pre_user refuses a longer USER argument. */
const LOGIN_MAX = 256;

/** MaxLoginAttempts' default: the third failed PASS ends the session. */
const MAX_LOGIN_ATTEMPTS = 3;

const LOGIN_INCORRECT = "Login incorrect.";

/** The default replies of mod_auth.c's limits, `%m` standing for the count. */
export const LIMIT_MESSAGES = {
  MaxClients: "Sorry, the maximum number of allowed clients (%m) are already connected.",
  MaxClientsPerHost: "Sorry, the maximum number of clients (%m) from your host are already connected.",
  MaxClientsPerUser: "Sorry, the maximum number of clients (%m) for this user are already connected.",
  MaxConnectionsPerHost: "Sorry, the maximum number of connections (%m) for your host are already connected.",
} as const;

/** mod_auth.c's auth_init help entries for the commands it implements. */
const HELP: readonly HelpEntry[] = [
  { command: "USER", text: "<sp> username" },
  { command: "PASS", text: "<sp> password" },
];

export interface AuthModule {
  readonly module: EngineModule;
  readonly settings: AuthSettings;
  /** Whether the session's last PASS compared a password (the user exists): mod_delay.c learns from those only. */
  readonly passwordChecked: (session: SessionState) => boolean;
}

/** Each logged-in session's jail root; one map for every generation, as a session outlives a SIGHUP. */
const jails = new WeakMap<SessionState, string>();

/** The host directory a logged-in session's jail is rooted at (DefaultRoot's real path, else `/`): what <Limit> paths are matched against. */
export function sessionJailRoot(session: SessionState): string {
  return jails.get(session) ?? "/";
}

/** set_maxclients and its siblings: `max|none ["message"]`. */
function limitParam(d: ActiveCommand, message: string): ConnectionLimit {
  if (d.argv.length < 2 || d.argv.length > 3) throw directiveError("wrong number of parameters");
  const text = param(d, 1);
  let max = 0;
  if (text.toLowerCase() !== "none") {
    max = /^[0-9]+$/.test(text) ? Number(text) : 0;
    if (max < 1) throw directiveError("parameter must be 'none' or a number greater than 0");
  }
  return { max, message: d.argv[2] ?? message };
}

function timeoutParam(d: ActiveCommand): number {
  checkArgs(d, 1);
  const seconds = parseDuration(param(d, 1));
  if (seconds === undefined) throw directiveError(`error parsing timeout value '${param(d, 1)}': Invalid argument`);
  return seconds;
}

/** add_defaultroot's checks; the trailing `/` it appends is left out (paths are resolved with realpath). */
function defaultRootParam(d: ActiveCommand): DefaultRoot {
  if (d.argv.length < 2) throw directiveError("syntax: DefaultRoot <directory> [<group-expression>]");
  const dir = param(d, 1);
  if (!dir.startsWith("/") && !dir.startsWith("~")) throw directiveError(`(${dir}) absolute pathname required`);
  if (dir.includes("*")) throw directiveError(`(${dir}) wildcards not allowed in pathname`);
  // pr_expr_create: the remaining words, each a comma-separated list.
  const groups = d.argv.slice(2).flatMap((word) => word.split(",").filter((name) => name !== ""));
  return { dir, groups };
}

/** pr_expr_eval_group_and over the user's groups. */
export function groupsMatch(expression: readonly string[], groups: readonly string[]): boolean {
  return expression.every((name) => (name.startsWith("!") ? !groups.includes(name.slice(1)) : groups.includes(name)));
}

/**
 * get_default_root: the first DefaultRoot whose group expression the user
 * matches, as written and with `~` (or `~user`) interpolated as
 * pr_fs_interpolate does; undefined when none applies or it is `/`, the
 * whole filesystem.
 */
export function defaultRootFor(
  roots: readonly DefaultRoot[],
  groups: readonly string[],
  home: string,
  homeOf: (user: string) => string | undefined,
): { readonly written: string; readonly path: string } | undefined {
  const chosen = roots.find((root) => groupsMatch(root.groups, groups));
  if (chosen === undefined) return undefined;
  let dir = chosen.dir;
  if (dir.startsWith("~")) {
    const slash = dir.indexOf("/");
    const name = slash < 0 ? dir.slice(1) : dir.slice(1, slash);
    const base = name === "" ? home : homeOf(name);
    // An unknown ~user stays as written: opening it fails and the login is refused, as chroot(2) fails in proftpd.
    if (base !== undefined) dir = `${base}${slash < 0 ? "" : dir.slice(slash)}`;
  }
  const path = dir.replace(/\/+$/, "");
  return path === "" ? undefined : { written: chosen.dir, path };
}

/** Where `home` is inside a jail rooted at `root` (both real paths): `/` for the root itself or anything outside it. */
export function homeInJail(root: string, home: string): string {
  if (home === root) return "/";
  return home.startsWith(`${root}/`) ? home.slice(root.length) : "/";
}

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

function errorText(error: unknown): string {
  const errno = errnoOf(error);
  return errno === undefined ? messageOf(error) : strerror(errno);
}

export function createAuthModule(options: AuthModuleOptions): AuthModule {
  const { source, log } = options;
  const settings = defaultAuthSettings();
  const failures = new WeakMap<SessionState, number>();
  const checked = new WeakMap<SessionState, boolean>();

  const sessionLog = (priority: LogPriority, session: SessionState, message: string): void =>
    log(priority, `${sessionLabel(session)}: ${message}`);

  /** A wrong password or an unknown user: 530, and the session ends at MaxLoginAttempts (auth_pass). */
  const failed = (cmd: ActiveCommand, session: SessionState): HandlerResult => {
    const count = (failures.get(session) ?? 0) + 1;
    failures.set(session, count);
    const max = settings.maxLoginAttempts;
    if (max > 0 && count >= max) {
      sessionLog("notice", session, `Maximum login attempts (${max}) exceeded, connection refused`);
      session.closing = true;
    }
    // auth_err_pass forgets the USER name: another try starts with USER again.
    session.pendingUser = undefined;
    return refuse(cmd, "530", LOGIN_INCORRECT);
  };

  /** setup_env's failures after the password was right: `530 Login incorrect.` and pr_session_end. */
  const ended = (cmd: ActiveCommand, session: SessionState, ...lines: string[]): HandlerResult => {
    for (const line of lines) sessionLog("notice", session, line);
    session.closing = true;
    return refuse(cmd, "530", LOGIN_INCORRECT);
  };

  /** auth_count_scoreboard's checks, in its order: the limit the login would break, if any. */
  const brokenLimit = (session: SessionState, user: string): readonly [string, ConnectionLimit] | undefined => {
    const limits = [settings.maxClientsPerHost, settings.maxClientsPerUser, settings.maxClients];
    // No limit set, nothing to count: in a session worker the count is a round trip to the primary.
    if (!limits.some((limit) => limit !== undefined && limit.max > 0)) return undefined;
    const counts = countClients(options.scoreboard.entries(), session, user);
    const checks: ReadonlyArray<readonly [string, ConnectionLimit | undefined, number]> = [
      ["MaxClientsPerHost", settings.maxClientsPerHost, counts.fromHost],
      ["MaxClientsPerUser", settings.maxClientsPerUser, counts.forUser],
      ["MaxClients", settings.maxClients, counts.clients],
    ];
    for (const [name, limit, count] of checks) {
      if (limit !== undefined && limit.max > 0 && count > limit.max) return [name, limit];
    }
    return undefined;
  };

  /**
   * The rest of setup_env once the password is right: the jail (DefaultRoot,
   * else `/`), the working directory (the home), the client limits; then the
   * session is logged in.
   */
  const login = async (
    cmd: ActiveCommand,
    session: SessionState,
    entry: AuthUser,
    account: SessionAccount,
  ): Promise<HandlerResult> => {
    const user = entry.name;
    if (entry.home === "") return ended(cmd, session, `error: user ${user} home directory is NULL or ""`);
    const fsOptions: SessionFsOptions = { ...options.umask(), owner: { uid: entry.uid, gid: entry.gid } };
    const root = defaultRootFor(settings.defaultRoots, account.groups, entry.home, (name) => source.lookup(name)?.home);
    let fs: SessionFilesystem;
    let cwd: string;
    let jail = "/";
    if (root === undefined) {
      fs = await options.openFilesystem("/", fsOptions);
      try {
        cwd = await fs.enter(entry.home);
      } catch (error) {
        await fs.close();
        return ended(cmd, session, `${user} chdir("${entry.home}") failed: ${errorText(error)}`);
      }
    } else {
      try {
        // The filesystem resolves the root as it opens it (SessionFilesystem.open); fs.realRoot is the jail.
        fs = await options.openFilesystem(root.path, fsOptions);
      } catch (error) {
        return ended(
          cmd,
          session,
          `notice: unable to use DefaultRoot '${root.written}' [resolved to '${root.path}']: ${errorText(error)}`,
          "error: unable to set DefaultRoot directory",
        );
      }
      jail = fs.realRoot;
      // `DefaultRoot ~` jails the user in the home: its real path is the root's, already resolved.
      const realHome = entry.home === root.path ? jail : await realpath(entry.home).catch(() => entry.home);
      // A home outside the jail, or one that cannot be entered, puts the user at the jail's root.
      const home = homeInJail(jail, realHome);
      cwd = await fs.enter(home).catch(() => "/");
    }
    // The client may have gone while the filesystem was opened; and only now is the count certain.
    const broken = session.closing ? undefined : brokenLimit(session, user);
    if (session.closing || broken !== undefined) {
      await fs.close();
      if (broken === undefined) return refuse(cmd, "530", LOGIN_INCORRECT);
      const [name, limit] = broken;
      sessionLog("notice", session, `Connection refused (${name} ${limit.max})`);
      session.closing = true;
      return refuse(cmd, "530", limitReply(limit));
    }
    session.user = user;
    options.scoreboard.changed(session);
    session.account = account;
    session.fs = fs;
    session.cwd = cwd;
    session.home = cwd;
    session.pendingUser = undefined;
    jails.set(session, jail);
    // An upload running when the client goes still removes or renames its file before the jail closes.
    session.control.onClose(() => void session.data.whenIdle().then(() => fs.close()));
    sessionLog("info", session, `USER ${user}: Login successful.`);
    cmd.addResponse("230", `User ${user} logged in`);
    return HandlerResults.HANDLED;
  };

  const directives: DirectiveHandler[] = [
    {
      name: "WtmpLog",
      run: (d, context) => {
        checkArgs(d, 1);
        settings.wtmpLog = booleanParam(d, 1);
        if (settings.wtmpLog) {
          log(
            "notice",
            `WtmpLog on line ${context.line} of '${context.file}' is accepted for compatibility only: dsod writes no wtmp records`,
          );
        }
      },
    },
    {
      name: "MaxLoginAttempts",
      run: (d) => {
        checkArgs(d, 1);
        const text = param(d, 1);
        if (text.toLowerCase() === "none") {
          settings.maxLoginAttempts = 0;
          return;
        }
        const max = /^[0-9]+$/.test(text) ? Number(text) : 0;
        if (max < 1) throw directiveError("parameter must be 'none' or a number greater than 0");
        settings.maxLoginAttempts = max;
      },
    },
    { name: "MaxClients", run: (d) => void (settings.maxClients = limitParam(d, LIMIT_MESSAGES.MaxClients)) },
    {
      name: "MaxClientsPerHost",
      run: (d) => void (settings.maxClientsPerHost = limitParam(d, LIMIT_MESSAGES.MaxClientsPerHost)),
    },
    {
      name: "MaxClientsPerUser",
      run: (d) => void (settings.maxClientsPerUser = limitParam(d, LIMIT_MESSAGES.MaxClientsPerUser)),
    },
    {
      name: "MaxConnectionsPerHost",
      run: (d) => void (settings.maxConnectionsPerHost = limitParam(d, LIMIT_MESSAGES.MaxConnectionsPerHost)),
    },
    { name: "TimeoutLogin", run: (d) => void (settings.timeoutLogin = timeoutParam(d)) },
    {
      name: "TimeoutSession",
      run: (d) => {
        // set_timeoutsession: 1 or 3 parameters.
        if (d.argv.length !== 2 && d.argv.length !== 4) throw directiveError("missing parameters");
        if (d.argv.length === 4)
          throw directiveError("a timeout for a user, group or class is not supported by dsod; give the seconds alone");
        settings.timeoutSession = timeoutParam(d);
      },
    },
    { name: "DefaultRoot", run: (d) => void settings.defaultRoots.push(defaultRootParam(d)) },
  ];

  /** The rest of PASS once the account's primary group is named: <Limit LOGIN>, the password, then the login. */
  const authenticate = (
    cmd: ActiveCommand,
    session: SessionState,
    user: string,
    entry: AuthUser,
    primary: string | undefined,
  ): HandlerResult | Promise<HandlerResult> => {
    const account: SessionAccount = {
      name: entry.name,
      uid: entry.uid,
      gid: entry.gid,
      home: entry.home,
      groups: primary === undefined ? [] : [primary],
    };
    if (options.loginAllowed?.(account) === false) {
      sessionLog("notice", session, `USER ${user} (Login failed): Limit access denies login`);
      return failed(cmd, session);
    }
    checked.set(session, true);
    const verdict = (passed: boolean): HandlerResult | Promise<HandlerResult> => {
      if (!passed) {
        sessionLog("notice", session, `USER ${user} (Login failed): Incorrect password`);
        return failed(cmd, session);
      }
      return login(cmd, session, entry, account);
    };
    const passed = source.check(entry, cmd.arg);
    return passed instanceof Promise ? passed.then(verdict) : verdict(passed);
  };

  const module: EngineModule = {
    name: "mod_auth.c",
    kind: "static",
    commands: [
      {
        command: "USER",
        phase: Phases.CMD,
        run: (cmd, session) => {
          if (cmd.argv.length < 2) return refuse(cmd, "500", "USER: command requires a parameter");
          if (session.user !== undefined) {
            // Bug#4217: USER for the name already logged in succeeds again.
            if (session.user === cmd.arg) {
              cmd.addResponse("230", `User ${session.user} logged in`);
              return HandlerResults.HANDLED;
            }
            return refuse(cmd, "501", "Reauthentication not supported");
          }
          if (cmd.arg.length > LOGIN_MAX) {
            sessionLog("notice", session, `USER ${cmd.arg} (Login failed): maximum USER length exceeded`);
            return refuse(cmd, "501", LOGIN_INCORRECT);
          }
          session.pendingUser = cmd.arg;
          cmd.addResponse("331", `Password required for ${cmd.argv[1] ?? ""}`);
          return HandlerResults.HANDLED;
        },
      },
      {
        command: "PASS",
        phase: Phases.CMD,
        run: (cmd, session) => {
          if (session.user !== undefined) return refuse(cmd, "503", "You are already logged in");
          const user = session.pendingUser;
          if (user === undefined) return refuse(cmd, "503", "Login with USER first");
          checked.set(session, false);
          const entry = source.lookup(user);
          if (entry === undefined) {
            const port = options.serverPort();
            sessionLog(
              "notice",
              session,
              `USER ${user}: no such user found from ${session.remoteAddress} [${session.remoteAddress}] to ${session.localAddress}:${port}`,
            );
            return failed(cmd, session);
          }
          if (entry.uid === 0) {
            // setup_env refuses uid 0 unless RootLogin is on; dsod has no RootLogin.
            sessionLog("notice", session, "SECURITY VIOLATION: Root login attempted");
            return failed(cmd, session);
          }
          const primary = options.groupName(entry.gid);
          return primary instanceof Promise
            ? primary.then((group) => authenticate(cmd, session, user, entry, group))
            : authenticate(cmd, session, user, entry, primary);
        },
      },
    ],
    siteCommands: [],
    directives,
    features: [],
    help: HELP,
  };
  return { module, settings, passwordChecked: (session) => checked.get(session) === true };
}
