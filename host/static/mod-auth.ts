/**
 * mod_auth.c, compiled in: USER and PASS. Where proftpd asks the auth
 * handler tables of its modules (mod_auth_file.c, mod_auth_unix.c...), this
 * module asks the AuthSource it is built with.
 */
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { EngineModule, HelpEntry, SessionState } from "../modules/module-api.js";
import { booleanParam, checkArgs } from "./directives.js";

export interface AuthSource {
  /** True when `password` is right for `user`; false for a wrong password or an unknown user. */
  authenticate(user: string, password: string): boolean;
}

export interface AuthSettings {
  /** WtmpLog: recorded; dsod writes no wtmp entries. */
  wtmpLog: boolean;
}

/** PR_TUNABLE_LOGIN_MAX: auth_pre_user refuses a longer USER argument. */
const LOGIN_MAX = 256;

/** MaxLoginAttempts' default: the third failed PASS ends the session. */
const MAX_LOGIN_ATTEMPTS = 3;

const LOGIN_INCORRECT = "Login incorrect.";

/** mod_auth.c's auth_init help entries for the commands it implements. */
const HELP: readonly HelpEntry[] = [
  { command: "USER", text: "<sp> username" },
  { command: "PASS", text: "<sp> password" },
];

export interface AuthModule {
  readonly module: EngineModule;
  readonly settings: AuthSettings;
}

export function createAuthModule(source: AuthSource): AuthModule {
  const settings: AuthSettings = { wtmpLog: true };
  const failures = new WeakMap<SessionState, number>();
  const module: EngineModule = {
    name: "mod_auth.c",
    kind: "static",
    commands: [
      {
        command: "USER",
        phase: Phases.CMD,
        run: (cmd, session) => {
          if (cmd.argv.length < 2) {
            cmd.addError("500", "USER: command requires a parameter");
            return HandlerResults.ERROR;
          }
          if (session.user !== undefined) {
            // Bug#4217: USER for the name already logged in succeeds again.
            if (session.user === cmd.arg) {
              cmd.addResponse("230", `User ${session.user} logged in`);
              return HandlerResults.HANDLED;
            }
            cmd.addError("501", "Reauthentication not supported");
            return HandlerResults.ERROR;
          }
          if (cmd.arg.length > LOGIN_MAX) {
            cmd.addError("501", LOGIN_INCORRECT);
            return HandlerResults.ERROR;
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
          if (session.user !== undefined) {
            cmd.addError("503", "You are already logged in");
            return HandlerResults.ERROR;
          }
          const user = session.pendingUser;
          if (user === undefined) {
            cmd.addError("503", "Login with USER first");
            return HandlerResults.ERROR;
          }
          if (source.authenticate(user, cmd.arg)) {
            session.user = user;
            session.pendingUser = undefined;
            cmd.addResponse("230", `User ${user} logged in`);
            return HandlerResults.HANDLED;
          }
          // The user name stays, so the client may send PASS again, as in proftpd.
          const count = (failures.get(session) ?? 0) + 1;
          failures.set(session, count);
          if (count >= MAX_LOGIN_ATTEMPTS) session.closing = true;
          cmd.addError("530", LOGIN_INCORRECT);
          return HandlerResults.ERROR;
        },
      },
    ],
    siteCommands: [],
    directives: [
      {
        name: "WtmpLog",
        run: (d) => {
          checkArgs(d, 1);
          settings.wtmpLog = booleanParam(d, 1);
        },
      },
    ],
    features: [],
    help: HELP,
  };
  return { module, settings };
}
