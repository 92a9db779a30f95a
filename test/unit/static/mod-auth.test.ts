/**
 * mod_auth.c: USER and PASS with proftpd's replies and log lines, the login
 * that sets up the account, the filesystem jail (DefaultRoot) and the working
 * directory, MaxLoginAttempts and the MaxClients limits, and its directives.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { cryptHash } from "../../../host/auth/crypt.js";
import { isDsoError } from "../../../host/errors.js";
import { SessionFilesystem } from "../../../host/fs/session-fs.js";
import type { SessionFsOptions } from "../../../host/fs/session-fs.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import { Scoreboard } from "../../../host/ftp/scoreboard.js";
import type { SessionState } from "../../../host/modules/module-api.js";
import { AuthUserFile } from "../../../host/static/mod-auth-file.js";
import {
  createAuthModule,
  defaultRootFor,
  groupsMatch,
  homeInJail,
  sessionJailRoot,
} from "../../../host/static/mod-auth.js";
import type { AuthModuleOptions } from "../../../host/static/mod-auth.js";
import { RecordingControl, testCommand, testSession } from "../../helpers/session.js";

const base = realpathSync(mkdtempSync(path.join(tmpdir(), "dsod-auth-")));
for (const dir of ["demo", "jail/jailed", "homes/ann/pub"]) mkdirSync(path.join(base, dir), { recursive: true });
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** MD5-crypt hashes: the check is what mod_auth_file.c does, and quick. */
const hash = (password: string): string => cryptHash(password, "md5", "saltsalt");
const USERS = [
  `demo:${hash("demo")}:1000:1000::${base}/demo:/bin/false`,
  `jailed:${hash("pw")}:1003:1003::${base}/jail/jailed:/bin/false`,
  `ann:${hash("pw")}:1004:1000::${base}/homes/ann:/bin/false`,
  `nohome:${hash("pw")}:1001:1001::${base}/missing:/bin/false`,
  `empty:${hash("pw")}:1002:1002:::/bin/false`,
  `root:${hash("pw")}:0:0::/root:/bin/sh`,
].join("\n");

interface Opened {
  readonly root: string;
  readonly options: SessionFsOptions;
  closed: boolean;
}

function directive(argv: readonly string[]): ActiveCommand {
  return testCommand(argv);
}

function setup(overrides: Partial<AuthModuleOptions> = {}) {
  const source = new AuthUserFile();
  source.setPath("/etc/dsod.passwd");
  source.load(`${USERS}\n`);
  const logs: string[] = [];
  const opened: Opened[] = [];
  const scoreboard = new Scoreboard();
  const auth = createAuthModule({
    source,
    scoreboard,
    openFilesystem: async (root, options) => {
      const fs = await SessionFilesystem.open(root, options);
      const record: Opened = { root, options, closed: false };
      opened.push(record);
      const close = fs.close.bind(fs);
      fs.close = async () => {
        record.closed = true;
        await close();
      };
      return fs;
    },
    umask: () => ({ umask: 0o027 }),
    groupName: (gid) => (gid === 1000 ? "users" : undefined),
    serverPort: () => 2121,
    log: (_priority, message) => logs.push(message),
    ...overrides,
  });
  const control = new RecordingControl();
  const state: SessionState = testSession([auth.module], undefined, { control });
  scoreboard.add(state);
  const send = async (text: string): Promise<readonly string[]> => {
    const line = parseCommandLine(text);
    if (line === undefined) throw new Error(text);
    return (await dispatchCommand(state, line)).lines;
  };
  const apply = (...argv: string[]): void => {
    const handler = auth.module.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
    if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
    handler.run(directive(argv), { file: "/etc/dsod.conf", line: 9, first: false });
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
  const login = async (user: string, password: string): Promise<readonly string[]> => {
    await send(`USER ${user}`);
    return send(`PASS ${password}`);
  };
  return { auth, state, send, apply, refusal, login, logs, opened, scoreboard, control };
}

const at = (message: string): string => `session 1 (127.0.0.1[127.0.0.1]): ${message}`;

describe("mod_auth.c USER and PASS", () => {
  it("logs in with proftpd's replies", async () => {
    const { send, state, logs } = setup();
    expect(await send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(state.pendingUser).toBe("demo");
    expect(await send("PASS demo")).toEqual(["230 User demo logged in"]);
    expect(state.user).toBe("demo");
    expect(state.pendingUser).toBeUndefined();
    expect(await send("PASS demo")).toEqual(["503 You are already logged in"]);
    expect(await send("USER demo")).toEqual(["230 User demo logged in"]);
    expect(await send("USER other")).toEqual(["501 Reauthentication not supported"]);
    expect(logs).toEqual([at("USER demo: Login successful.")]);
  });

  it("refuses PASS before USER, USER without a name, and a too long one (logged)", async () => {
    const { send, state, logs } = setup();
    expect(await send("PASS demo")).toEqual(["503 Login with USER first"]);
    expect(await send("USER")).toEqual(["500 USER: command requires a parameter"]);
    expect(await send(`USER ${"x".repeat(257)}`)).toEqual(["501 Login incorrect."]);
    expect(logs).toEqual([at(`USER ${"x".repeat(257)} (Login failed): maximum USER length exceeded`)]);
    expect(state.user).toBeUndefined();
  });

  it("logs a wrong password and an unknown user in proftpd's words, both answered 530", async () => {
    const { login, logs, auth, state } = setup();
    expect(await login("demo", "wrong")).toEqual(["530 Login incorrect."]);
    expect(auth.passwordChecked(state)).toBe(true);
    expect(await login("ghost", "demo")).toEqual(["530 Login incorrect."]);
    expect(auth.passwordChecked(state)).toBe(false);
    expect(logs).toEqual([
      at("USER demo (Login failed): Incorrect password"),
      at("USER ghost: no such user found from 127.0.0.1 [127.0.0.1] to 127.0.0.1:2121"),
    ]);
  });

  it("refuses uid 0, as proftpd without RootLogin", async () => {
    const { login, logs, state } = setup();
    expect(await login("root", "pw")).toEqual(["530 Login incorrect."]);
    expect(logs).toEqual([at("SECURITY VIOLATION: Root login attempted")]);
    expect(state.user).toBeUndefined();
  });

  it("forgets the USER name after a failed PASS, as auth_err_pass does", async () => {
    const { send, login } = setup();
    expect(await login("demo", "wrong")).toEqual(["530 Login incorrect."]);
    expect(await send("PASS demo")).toEqual(["503 Login with USER first"]);
    expect(await login("demo", "demo")).toEqual(["230 User demo logged in"]);
  });

  it("ends the session at the third failed PASS by default, logging MaxLoginAttempts", async () => {
    const { login, state, logs } = setup();
    expect(await login("demo", "a")).toEqual(["530 Login incorrect."]);
    expect(await login("demo", "b")).toEqual(["530 Login incorrect."]);
    expect(state.closing).toBe(false);
    expect(await login("demo", "c")).toEqual(["530 Login incorrect."]);
    expect(state.closing).toBe(true);
    expect(logs.at(-1)).toBe(at("Maximum login attempts (3) exceeded, connection refused"));
  });

  it("counts unknown users and refused logins alike, up to MaxLoginAttempts N or none", async () => {
    const one = setup();
    one.apply("MaxLoginAttempts", "1");
    expect(await one.login("ghost", "x")).toEqual(["530 Login incorrect."]);
    expect(one.state.closing).toBe(true);
    expect(one.logs.at(-1)).toBe(at("Maximum login attempts (1) exceeded, connection refused"));

    const none = setup();
    none.apply("MaxLoginAttempts", "none");
    for (let i = 0; i < 5; i++) await none.login("demo", "wrong");
    expect(none.state.closing).toBe(false);
  });

  it("refuses whom <Limit LOGIN> denies before checking the password, logged and counted", async () => {
    const { login, logs, auth, state } = setup({ loginAllowed: (account) => account.name !== "demo" });
    expect(await login("demo", "demo")).toEqual(["530 Login incorrect."]);
    expect(auth.passwordChecked(state)).toBe(false);
    expect(logs).toEqual([at("USER demo (Login failed): Limit access denies login")]);
  });
});

describe("mod_auth.c login: where the user lives", () => {
  it("without DefaultRoot: the whole filesystem, the home as working directory, files owned by the account", async () => {
    const { login, state, opened } = setup();
    await login("demo", "demo");
    expect(state.account).toEqual({ name: "demo", uid: 1000, gid: 1000, home: `${base}/demo`, groups: ["users"] });
    expect(opened.map((o) => [o.root, o.options])).toEqual([["/", { umask: 0o027, owner: { uid: 1000, gid: 1000 } }]]);
    expect(state.cwd).toBe(`${base}/demo`);
    expect(state.home).toBe(`${base}/demo`);
    expect(sessionJailRoot(state)).toBe("/");
    expect(await state.fs?.stat(state.cwd)).toMatchObject({ type: "dir" });
  });

  it("DefaultRoot ~ jails the session in the home: working directory and home are /", async () => {
    const { apply, login, state, opened } = setup();
    apply("DefaultRoot", "~");
    await login("demo", "demo");
    expect(opened[0]?.root).toBe(`${base}/demo`);
    expect(state.cwd).toBe("/");
    expect(state.home).toBe("/");
    expect(sessionJailRoot(state)).toBe(`${base}/demo`);
  });

  it("DefaultRoot /path puts a home inside it at its path in the jail; ~/sub is interpolated", async () => {
    const jailed = setup();
    jailed.apply("DefaultRoot", `${base}/jail`);
    await jailed.login("jailed", "pw");
    expect(jailed.opened[0]?.root).toBe(`${base}/jail`);
    expect(jailed.state.cwd).toBe("/jailed");
    expect(jailed.state.home).toBe("/jailed");

    const sub = setup();
    sub.apply("DefaultRoot", "~/pub");
    await sub.login("ann", "pw");
    expect(sub.opened[0]?.root).toBe(`${base}/homes/ann/pub`);
    // The home is outside the jail: the session starts at its root.
    expect(sub.state.cwd).toBe("/");
  });

  it("takes the first DefaultRoot whose group expression the user matches", async () => {
    const { apply, login, state, opened } = setup();
    apply("DefaultRoot", `${base}/jail`, "!users");
    apply("DefaultRoot", "~", "users");
    await login("demo", "demo");
    expect(opened[0]?.root).toBe(`${base}/demo`);
    expect(state.cwd).toBe("/");
  });

  it("ends the session when the home cannot be entered: 530, proftpd's chdir log line", async () => {
    const { login, state, logs, opened } = setup();
    expect(await login("nohome", "pw")).toEqual(["530 Login incorrect."]);
    expect(state.user).toBeUndefined();
    expect(state.closing).toBe(true);
    expect(logs).toEqual([at(`nohome chdir("${base}/missing") failed: No such file or directory`)]);
    expect(opened[0]?.closed).toBe(true);
  });

  it("ends the session for an empty home, and for a DefaultRoot that does not exist", async () => {
    const empty = setup();
    expect(await empty.login("empty", "pw")).toEqual(["530 Login incorrect."]);
    expect(empty.state.closing).toBe(true);
    expect(empty.logs).toEqual([at('error: user empty home directory is NULL or ""')]);

    const missing = setup();
    missing.apply("DefaultRoot", "~/nothere");
    expect(await missing.login("demo", "demo")).toEqual(["530 Login incorrect."]);
    expect(missing.state.closing).toBe(true);
    expect(missing.logs).toEqual([
      at(
        `notice: unable to use DefaultRoot '~/nothere' [resolved to '${base}/demo/nothere']: No such file or directory`,
      ),
      at("error: unable to set DefaultRoot directory"),
    ]);
  });

  it("closes the session's filesystem when the session ends", async () => {
    const { login, control, opened } = setup();
    await login("demo", "demo");
    expect(opened[0]?.closed).toBe(false);
    for (const cleanup of control.cleanups) cleanup();
    await new Promise((resolve) => setImmediate(resolve));
    expect(opened[0]?.closed).toBe(true);
  });
});

describe("mod_auth.c MaxClients, MaxClientsPerHost, MaxClientsPerUser", () => {
  it("refuses the login that would pass MaxClientsPerHost with its 530, logs it and ends the session", async () => {
    const { apply, login, state, logs, scoreboard, opened } = setup();
    scoreboard.add({ remoteAddress: "127.0.0.1", user: "ann" });
    apply("MaxClientsPerHost", "1");
    expect(await login("demo", "demo")).toEqual([
      "530 Sorry, the maximum number of clients (1) from your host are already connected.",
    ]);
    expect(state.user).toBeUndefined();
    expect(state.closing).toBe(true);
    expect(logs).toEqual([at("Connection refused (MaxClientsPerHost 1)")]);
    expect(opened[0]?.closed).toBe(true);
  });

  it("counts only logged-in sessions, and takes a message of its own with %m", async () => {
    const { apply, login, state, scoreboard } = setup();
    scoreboard.add({ remoteAddress: "10.0.0.9", user: undefined });
    scoreboard.add({ remoteAddress: "10.0.0.9", user: "demo" });
    apply("MaxClients", "2");
    apply("MaxClientsPerUser", "1", "only %m session for you");
    expect(await login("demo", "demo")).toEqual(["530 only 1 session for you"]);
    expect(state.closing).toBe(true);
  });

  it("reads the scoreboard only when a limit is set (a session worker's read is a round trip)", async () => {
    const { apply, login, scoreboard } = setup();
    let reads = 0;
    const entries = scoreboard.entries.bind(scoreboard);
    scoreboard.entries = () => {
      reads++;
      return entries();
    };
    apply("MaxClients", "none");
    expect(await login("demo", "demo")).toEqual(["230 User demo logged in"]);
    expect(reads).toBe(0);
    const limited = setup();
    limited.apply("MaxClientsPerUser", "3");
    const limitedEntries = limited.scoreboard.entries.bind(limited.scoreboard);
    let limitedReads = 0;
    limited.scoreboard.entries = () => {
      limitedReads++;
      return limitedEntries();
    };
    expect(await limited.login("demo", "demo")).toEqual(["230 User demo logged in"]);
    expect(limitedReads).toBe(1);
  });

  it("lets the login in while under the limits", async () => {
    const { apply, login, state, scoreboard } = setup();
    scoreboard.add({ remoteAddress: "10.0.0.9", user: "ann" });
    apply("MaxClients", "2");
    apply("MaxClientsPerUser", "none");
    expect(await login("demo", "demo")).toEqual(["230 User demo logged in"]);
    expect(state.user).toBe("demo");
  });
});

describe("mod_auth.c directives", () => {
  it("records the limits and timeouts", () => {
    const { apply, auth } = setup();
    apply("MaxClients", "10", "too many (%m)");
    apply("MaxConnectionsPerHost", "4");
    apply("TimeoutLogin", "00:02:00");
    apply("TimeoutSession", "3600");
    apply("MaxLoginAttempts", "5");
    expect(auth.settings).toMatchObject({
      maxClients: { max: 10, message: "too many (%m)" },
      maxConnectionsPerHost: {
        max: 4,
        message: "Sorry, the maximum number of connections (%m) for your host are already connected.",
      },
      timeoutLogin: 120,
      timeoutSession: 3600,
      maxLoginAttempts: 5,
    });
  });

  it("refuses bad values with proftpd's texts, and what dsod does not support", () => {
    const { refusal } = setup();
    expect(refusal("MaxClients")).toBe("wrong number of parameters");
    expect(refusal("MaxClientsPerHost", "0")).toBe("parameter must be 'none' or a number greater than 0");
    expect(refusal("MaxClientsPerUser", "1", "a", "b")).toBe("wrong number of parameters");
    expect(refusal("MaxLoginAttempts", "three")).toBe("parameter must be 'none' or a number greater than 0");
    expect(refusal("TimeoutLogin", "soon")).toBe("error parsing timeout value 'soon': Invalid argument");
    expect(refusal("TimeoutSession", "60", "user")).toBe("missing parameters");
    expect(refusal("TimeoutSession", "60", "user", "ann")).toBe(
      "a timeout for a user, group or class is not supported by dsod; give the seconds alone",
    );
    expect(refusal("DefaultRoot")).toBe("syntax: DefaultRoot <directory> [<group-expression>]");
    expect(refusal("DefaultRoot", "srv/ftp")).toBe("(srv/ftp) absolute pathname required");
    expect(refusal("DefaultRoot", "/srv/*")).toBe("(/srv/*) wildcards not allowed in pathname");
  });

  it("says WtmpLog on is accepted for compatibility only; off needs no word", () => {
    const { apply, logs } = setup();
    apply("WtmpLog", "off");
    expect(logs).toEqual([]);
    apply("WtmpLog", "on");
    expect(logs).toEqual([
      "WtmpLog on line 9 of '/etc/dsod.conf' is accepted for compatibility only: dsod writes no wtmp records",
    ]);
  });
});

describe("DefaultRoot's pure parts", () => {
  it("evaluates a group expression as pr_expr_eval_group_and", () => {
    expect(groupsMatch([], [])).toBe(true);
    expect(groupsMatch(["ftp", "!staff"], ["ftp"])).toBe(true);
    expect(groupsMatch(["ftp", "!staff"], ["ftp", "staff"])).toBe(false);
    expect(groupsMatch(["ftp"], ["users"])).toBe(false);
  });

  it("interpolates ~, ~/sub and ~user; / is no jail", () => {
    const homeOf = (user: string): string | undefined => (user === "bob" ? "/home/bob" : undefined);
    const roots = (dir: string) => [{ dir, groups: [] }];
    expect(defaultRootFor(roots("~"), [], "/home/ann", homeOf)).toEqual({ written: "~", path: "/home/ann" });
    expect(defaultRootFor(roots("~/pub/"), [], "/home/ann", homeOf)).toEqual({
      written: "~/pub/",
      path: "/home/ann/pub",
    });
    expect(defaultRootFor(roots("~bob/ftp"), [], "/home/ann", homeOf)).toEqual({
      written: "~bob/ftp",
      path: "/home/bob/ftp",
    });
    expect(defaultRootFor(roots("~eve"), [], "/home/ann", homeOf)).toEqual({ written: "~eve", path: "~eve" });
    expect(defaultRootFor(roots("/"), [], "/home/ann", homeOf)).toBeUndefined();
    expect(defaultRootFor([], [], "/home/ann", homeOf)).toBeUndefined();
  });

  it("places a home inside the jail, or at its root", () => {
    expect(homeInJail("/srv/ftp", "/srv/ftp")).toBe("/");
    expect(homeInJail("/srv/ftp", "/srv/ftp/ann")).toBe("/ann");
    expect(homeInJail("/srv/ftp", "/srv/ftpx/ann")).toBe("/");
    expect(homeInJail("/srv/ftp", "/home/ann")).toBe("/");
  });
});
