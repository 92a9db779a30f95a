/**
 * mod_delay.c with mod_auth.c: a failed login is answered after the same
 * time whether the user exists or not, with a timer (other sessions go on),
 * and the DelayTable learns only from PASS commands that checked a password.
 * Time is a FakeClock; a password check "takes" CHECK_MS of it.
 */
import { describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import type { AuthUser } from "../../../host/auth/auth-user-file.js";
import { isDsoError } from "../../../host/errors.js";
import type { SessionFilesystem } from "../../../host/fs/session-fs.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { DispatchResult } from "../../../host/ftp/dispatch.js";
import { Scoreboard } from "../../../host/ftp/scoreboard.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { EngineModule, SessionState } from "../../../host/modules/module-api.js";
import { createAuthModule } from "../../../host/static/mod-auth.js";
import type { AuthSource } from "../../../host/static/mod-auth.js";
import {
  DELAY_MAX_MS,
  DELAY_NVALUES,
  DELAY_SESSION_VALUES,
  DelayRow,
  createDelayModule,
  failedLoginWait,
  parseDelayDuration,
} from "../../../host/static/mod-delay.js";
import { RecordingControl, testCommand, testSession } from "../../helpers/session.js";
import { FakeClock } from "../ftp/data-helpers.js";

const CHECK_MS = 30;

function directive(argv: readonly string[]): ActiveCommand {
  return testCommand(argv);
}

const noop: EngineModule = {
  name: "mod_noop.c",
  kind: "static",
  commands: [
    {
      command: "NOOP",
      phase: Phases.CMD,
      run: (cmd) => {
        cmd.addResponse("200", "NOOP command successful");
        return HandlerResults.HANDLED;
      },
    },
  ],
  siteCommands: [],
  directives: [],
  features: [],
  help: [],
};

function setup() {
  const clock = new FakeClock();
  const demo: AuthUser = {
    name: "demo",
    hash: "",
    uid: 1000,
    gid: 1000,
    gecos: "",
    home: "/tmp",
    shell: "/bin/false",
    line: 1,
  };
  // A password check costs CHECK_MS, as SHA-crypt costs real time.
  const source: AuthSource = {
    lookup: (user) => (user === "demo" ? demo : undefined),
    check: (_account, password) => {
      clock.advance(CHECK_MS);
      return password === "demo";
    },
  };
  const logs: string[] = [];
  const auth = createAuthModule({
    source,
    scoreboard: new Scoreboard(),
    // A jail that opens at once, so that only the clock measures a login.
    openFilesystem: async () =>
      ({ realRoot: "/", enter: async (path: string) => path, close: async () => {} }) as unknown as SessionFilesystem,
    umask: () => ({ umask: 0o022 }),
    groupName: () => undefined,
    serverPort: () => 21,
    log: (_priority, message) => logs.push(message),
  });
  const delay = createDelayModule({
    passwordChecked: auth.passwordChecked,
    clock,
    random: () => 0.5,
    log: (_p, m) => logs.push(m),
  });
  auth.settings.maxLoginAttempts = 0;
  const session = (id: number, secure = false): SessionState => {
    const control = new RecordingControl();
    control.secure = secure;
    return testSession([noop, auth.module, delay.module], undefined, { id, control });
  };
  const dispatch = (state: SessionState, text: string): DispatchResult | Promise<DispatchResult> => {
    const line = parseCommandLine(text);
    if (line === undefined) throw new Error(text);
    return dispatchCommand(state, line);
  };
  /** Sends PASS and returns how long (in clock time) its reply took, moving the clock 0.5 ms at a time. */
  const timePass = async (state: SessionState, password: string): Promise<number> => {
    const start = clock.now();
    const result = dispatch(state, `PASS ${password}`);
    if (!(result instanceof Promise)) return clock.now() - start;
    let done = false;
    void result.then(() => (done = true));
    for (let steps = 0; ; steps++) {
      for (let i = 0; i < 50; i++) await Promise.resolve();
      if (done) break;
      if (steps > 100_000) throw new Error("PASS never answered");
      clock.advance(0.5);
    }
    return clock.now() - start;
  };
  const apply = (...argv: string[]): void => {
    const handler = delay.module.directives.find((d) => d.name === argv[0]);
    if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
    handler.run(directive(argv), { file: "/etc/dsod.conf", line: 4, first: false });
  };
  const refusal = (...argv: string[]): string => {
    try {
      apply(...argv);
    } catch (error) {
      if (isDsoError(error)) return error.message;
      throw error;
    }
    throw new Error(`${argv.join(" ")} was accepted`);
  };
  return { clock, delay, auth, session, dispatch, timePass, apply, refusal, logs };
}

describe("the DelayTable's pure parts", () => {
  it("picks delay_get_median's ((n + 1) / 2)th smallest value, and keeps the last 256", () => {
    const row = new DelayRow();
    expect(row.median()).toBeUndefined();
    for (const value of [40, 10, 30]) row.add(value);
    expect(row.median()).toBe(30);
    row.add(20);
    expect(row.median()).toBe(20);
    for (let i = 0; i < DELAY_NVALUES; i++) row.add(1000);
    expect(row.size).toBe(DELAY_NVALUES);
    expect(row.median()).toBe(1000);
    row.add(DELAY_MAX_MS * 10);
    expect(row.median()).toBe(1000);
  });

  it("waits for what the interval lacks of the median, plus up to half the median at random", () => {
    expect(failedLoginWait(100, 0, 0)).toBe(100);
    expect(failedLoginWait(100, 0, 0.5)).toBe(125);
    expect(failedLoginWait(100, 100, 0.5)).toBe(25);
    expect(failedLoginWait(100, 400, 0.99)).toBe(49.5);
    expect(failedLoginWait(DELAY_MAX_MS, 0, 0.9)).toBe(DELAY_MAX_MS);
  });

  it("parses delays as delay_str_get_duration_ms", () => {
    expect(parseDelayDuration("01:02.500")).toBe(62_500);
    expect(parseDelayDuration("250ms")).toBe(250);
    expect(parseDelayDuration("2s")).toBe(2000);
    expect(parseDelayDuration("3sec")).toBe(3000);
    expect(parseDelayDuration("1500")).toBe(1500);
    expect(parseDelayDuration("soon")).toBeUndefined();
  });
});

describe("mod_delay.c on failed logins", () => {
  it("answers an unknown user after the same time as a known user with a wrong password", async () => {
    const { delay, session, dispatch, timePass } = setup();
    delay.seed(CHECK_MS);
    const state = session(1);
    await dispatch(state, "USER demo");
    const known = await timePass(state, "wrong");
    await dispatch(state, "USER ghost");
    const unknown = await timePass(state, "wrong");
    // CHECK_MS (the median) and half of it times random() 0.5: 37.5 ms either way.
    expect(known).toBe(37.5);
    expect(unknown).toBe(37.5);
  });

  it("waits with a timer: another session is answered meanwhile", async () => {
    const { delay, session, dispatch } = setup();
    delay.seed(CHECK_MS);
    const a = session(1);
    const b = session(2);
    await dispatch(a, "USER ghost");
    const waiting = dispatch(a, "PASS x");
    expect(waiting).toBeInstanceOf(Promise);
    const other = dispatch(b, "NOOP");
    expect(other).not.toBeInstanceOf(Promise);
    expect((other as DispatchResult).lines).toEqual(["200 NOOP command successful"]);
  });

  it("learns only from PASS commands that checked a password, at most 16 from one session", async () => {
    const { delay, session, dispatch, timePass } = setup();
    const state = session(1);
    await dispatch(state, "USER ghost");
    await timePass(state, "x");
    expect(delay.row("ftp").size).toBe(0);
    for (let i = 0; i < DELAY_SESSION_VALUES + 4; i++) {
      await dispatch(state, "USER demo");
      await timePass(state, "wrong");
    }
    expect(delay.row("ftp").size).toBe(DELAY_SESSION_VALUES);
    expect(delay.row("ftp").median()).toBe(CHECK_MS);
    expect(delay.row("ftps").size).toBe(0);
    const secure = session(2, true);
    await dispatch(secure, "USER demo");
    await timePass(secure, "wrong");
    expect(delay.row("ftps").size).toBe(1);
  });

  it("does not delay a successful login, unless DelayOnEvent PASS says so", async () => {
    const plain = setup();
    plain.delay.seed(1000);
    const state = plain.session(1);
    await plain.dispatch(state, "USER demo");
    expect(await plain.timePass(state, "demo")).toBe(CHECK_MS);

    const minimum = setup();
    minimum.apply("DelayOnEvent", "PASS", "100ms");
    const other = minimum.session(1);
    await minimum.dispatch(other, "USER demo");
    expect(await minimum.timePass(other, "demo")).toBe(CHECK_MS + 100);
  });

  it("is off with DelayEngine off; DelayTable none keeps only DelayOnEvent's minimum", async () => {
    const off = setup();
    off.delay.seed(1000);
    off.apply("DelayEngine", "off");
    const state = off.session(1);
    await off.dispatch(state, "USER ghost");
    expect(off.dispatch(state, "PASS x")).not.toBeInstanceOf(Promise);

    const none = setup();
    none.delay.seed(1000);
    none.apply("DelayTable", "none");
    none.apply("DelayOnEvent", "FailedLogin", "0:00.250");
    const other = none.session(1);
    await none.dispatch(other, "USER ghost");
    expect(await none.timePass(other, "x")).toBe(250);
  });

  it("takes its directives with proftpd's texts; a table file is accepted for compatibility only", () => {
    const { apply, refusal, logs, delay } = setup();
    apply("DelayTable", "/var/run/proftpd.delay");
    expect(delay.settings.table).toBe(true);
    expect(logs).toEqual([
      "DelayTable on line 4 of '/etc/dsod.conf' is accepted for compatibility only: dsod keeps the table in memory, not in '/var/run/proftpd.delay'",
    ]);
    expect(refusal("DelayTable", "run/delay")).toBe("must be an absolute path");
    expect(refusal("DelayEngine", "maybe")).toBe("expected Boolean parameter");
    expect(refusal("DelayOnEvent", "LOGIN", "1s")).toBe("unknown/unsupported event: LOGIN");
    expect(refusal("DelayOnEvent", "USER", "soon")).toBe("error parsing delay parameter 'soon': Invalid argument");
    expect(refusal("DelayOnEvent", "USER")).toBe("missing parameters");
    expect(refusal("DelayControlsACLs", "all", "allow", "user", "root")).toBe(
      "is not supported: dsod has no delay control actions (proftpd's ftpdctl delay info|reset)",
    );
  });
});
