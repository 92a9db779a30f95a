import { afterEach, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { cryptHash } from "../../../host/auth/crypt.js";
import { isDsoError } from "../../../host/errors.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import { siteHandler } from "../../../host/modules/guest-module.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type {
  CommandHandler,
  DirectiveHandler,
  EngineModule,
  HelpEntry,
  SessionState,
} from "../../../host/modules/module-api.js";
import { createCompiledInModules } from "../../../host/static/index.js";
import type { CompiledInModules } from "../../../host/static/index.js";
import { helpTable } from "../../../host/static/mod-core.js";
import { RecordingControl, settled, testCommand, testSession } from "../../helpers/session.js";

function directive(argv: readonly string[]): ActiveCommand {
  return testCommand(argv);
}

function apply(compiled: CompiledInModules, argv: string[]): void {
  const name = (argv[0] ?? "").toLowerCase();
  const handler: DirectiveHandler | undefined = compiled.modules
    .flatMap((m) => m.directives)
    .find((d) => d.name.toLowerCase() === name);
  if (handler === undefined) throw new Error(`no handler for ${argv[0]}`);
  handler.run(directive(argv), { file: "/etc/dsod.conf", line: 14, first: false });
}

function refusal(compiled: CompiledInModules, argv: string[]): string {
  try {
    apply(compiled, argv);
  } catch (error) {
    if (isDsoError(error)) return error.message;
    throw error;
  }
  throw new Error(`${argv.join(" ")} was accepted`);
}

/** A guest-like module: TEST with help and a feature, and SITE HELLO through its own SITE handler. */
const helloSite: CommandHandler[] = [
  {
    command: "HELLO",
    phase: Phases.CMD,
    run: (cmd) => {
      cmd.addResponse("200", `SITE HELLO: hello, ${cmd.argv[2] ?? "world"}`);
      return HandlerResults.HANDLED;
    },
  },
];
const guestHelp: HelpEntry[] = [
  { command: "TEST", text: "[<sp> text]" },
  { command: "HELLO", text: "[<sp> name]" },
];
const guest: EngineModule = {
  name: "mod_test.c",
  kind: "dso",
  commands: [
    {
      command: "TEST",
      phase: Phases.CMD,
      run: (cmd) => {
        cmd.addResponse("200", `Hello: ${cmd.arg}`);
        return HandlerResults.HANDLED;
      },
    },
    siteHandler(helloSite, guestHelp),
  ],
  siteCommands: helloSite,
  directives: [],
  features: ["TEST", "MDTM"],
  help: guestHelp,
};

/** Sessions set up by a test, ended after it: a login opens a filesystem that only the session's end closes. */
const opened: SessionState[] = [];
afterEach(() => {
  for (const { control } of opened.splice(0)) if (control instanceof RecordingControl) control.close();
});

function setup(modules: EngineModule[] = []) {
  const compiled = createCompiledInModules();
  compiled.authFile.setPath("/etc/dsod.passwd");
  compiled.authFile.load(`demo:${cryptHash("demo", "sha512", "saltsalt")}:1000:1000::/tmp:/bin/false\n`);
  const state: SessionState = testSession([...compiled.modules, ...modules], undefined, { id: 7 });
  opened.push(state);
  const send = async (text: string): Promise<readonly string[]> => {
    const line = parseCommandLine(text);
    if (line === undefined) throw new Error(text);
    return (await dispatchCommand(state, line)).lines;
  };
  return { compiled, state, send };
}

describe("createCompiledInModules", () => {
  it("lists the modules in proftpd's -l order, with extra ones after mod_facts.c", () => {
    const extra: EngineModule = { ...guest, name: "mod_dso.c", kind: "static" };
    expect(createCompiledInModules({ extra: [extra] }).modules.map((m) => m.name)).toEqual([
      "mod_core.c",
      "mod_xfer.c",
      "mod_auth_file.c",
      "mod_auth.c",
      "mod_ls.c",
      "mod_site.c",
      "mod_delay.c",
      "mod_facts.c",
      "mod_dso.c",
      "mod_tls.c",
    ]);
  });

  it("adds the daemon's core directives to mod_core.c", () => {
    const traceLog: DirectiveHandler = { name: "TraceLog", run: () => {} };
    const core = createCompiledInModules({ coreDirectives: [traceLog] }).modules[0];
    expect(core?.directives.at(-1)).toBe(traceLog);
  });
});

describe("mod_core.c directives", () => {
  it("records the base config proftpd 1.3.8's behaviour was observed with", () => {
    const compiled = createCompiledInModules();
    for (const line of [
      ["ServerType", "standalone"],
      ["ServerName", "dso-ref"],
      ["DefaultAddress", "127.0.0.1"],
      ["Port", "2121"],
      ["UseIPv6", "off"],
      ["User", "nobody"],
      ["Group", "nogroup"],
      ["PidFile", "/tmp/w/proftpd.pid"],
      ["ScoreboardFile", "/tmp/w/proftpd.scoreboard"],
      ["WtmpLog", "off"],
      ["ServerAdmin", "ftp@example.org"],
      ["TimeoutIdle", "00:01:30"],
    ]) {
      apply(compiled, line);
    }
    expect(compiled.core).toMatchObject({
      serverType: "standalone",
      serverName: "dso-ref",
      serverAdmin: "ftp@example.org",
      defaultAddress: "127.0.0.1",
      port: 2121,
      useIPv6: false,
      user: "nobody",
      group: "nogroup",
      pidFile: "/tmp/w/proftpd.pid",
      scoreboardFile: "/tmp/w/proftpd.scoreboard",
      timeoutIdle: 90,
    });
    expect(compiled.auth).toMatchObject({ wtmpLog: false });
  });

  it("refuses bad values with proftpd's texts", () => {
    const compiled = createCompiledInModules();
    expect(refusal(compiled, ["ServerName"])).toBe("missing parameters");
    expect(refusal(compiled, ["ServerType", "forking"])).toBe("type must be either 'inetd' or 'standalone'");
    expect(refusal(compiled, ["ServerType", "inetd"])).toBe("type 'inetd' is not supported; dsod runs standalone only");
    expect(refusal(compiled, ["DefaultAddress"])).toBe("wrong number of parameters");
    expect(refusal(compiled, ["Port", "65536"])).toBe("value must be between 0 and 65535");
    expect(refusal(compiled, ["Port", "ftp"])).toBe("value must be between 0 and 65535");
    expect(refusal(compiled, ["UseIPv6", "maybe"])).toBe("expected Boolean parameter");
    expect(refusal(compiled, ["PidFile", "run/x.pid"])).toBe("unable to set PidFile 'run/x.pid': Invalid argument");
    expect(refusal(compiled, ["ScoreboardFile", "sb"])).toBe("unable to use 'sb': Invalid argument");
    expect(refusal(compiled, ["TimeoutIdle", "soon"])).toBe("error parsing timeout value 'soon': Invalid argument");
  });
});

describe("mod_auth_file.c AuthUserFile", () => {
  it("takes an absolute path and refuses a relative one as proftpd does", () => {
    const compiled = createCompiledInModules();
    apply(compiled, ["AuthUserFile", "/etc/dsod.passwd"]);
    expect(compiled.authFile.path).toBe("/etc/dsod.passwd");
    expect(refusal(compiled, ["authuserfile", "dsod.passwd"])).toBe(
      "unable to use relative path for authuserfile 'dsod.passwd'.",
    );
    expect(refusal(compiled, ["AuthUserFile"])).toBe("wrong number of parameters");
    expect(refusal(compiled, ["AuthUserFile", "/a", "/b"])).toBe("wrong number of parameters");
  });
});

describe("mod_core.c commands", () => {
  it("answers NOOP, SYST and QUIT before login", async () => {
    const { send, state } = setup();
    expect(await send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await send("SYST")).toEqual(["215 UNIX Type: L8"]);
    expect(await send("QUIT")).toEqual(["221 Goodbye."]);
    expect(state.closing).toBe(true);
  });

  it("lists the session's commands in HELP, 8 to a line, padded to 8 columns", async () => {
    const { send } = setup([guest]);
    expect(await send("HELP")).toEqual([
      "214-The following commands are recognized (* =>'s unimplemented):",
      " CWD     XCWD    CDUP    XCUP    QUIT    PORT    PASV    EPRT    ",
      " EPSV    ALLO    RNFR    RNTO    DELE    MDTM    RMD     XRMD    ",
      " MKD     XMKD    PWD     XPWD    SIZE    SYST    HELP    NOOP    ",
      " FEAT    OPTS    TYPE    STRU    MODE    RETR    STOR    STOU    ",
      " APPE    REST    ABOR    USER    PASS    LIST    NLST    STAT    ",
      " SITE    MLSD    MLST    TEST    ",
      "214 Direct comments to root@localhost",
    ]);
    expect(await send("help test")).toEqual(["214 Syntax: TEST [<sp> text]"]);
    expect(await send("HELP HELLO")).toEqual(["502 Unknown command 'HELLO'"]);
  });

  it("cuts names to 8 columns in the HELP table", () => {
    expect(helpTable(["A", "LONGCOMMAND"])).toEqual(["A       LONGCOMM"]);
  });

  it("lists features sorted, or says there are none", async () => {
    expect(await setup([guest]).send("FEAT")).toEqual([
      "211-Features:",
      " EPRT",
      " EPSV",
      " MDTM",
      " MFMT",
      " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;",
      " REST STREAM",
      " SIZE",
      " TEST",
      " TVFS",
      " UTF8",
      "211 End",
    ]);
    const { compiled, state } = setup();
    const featureless = { ...state, modules: compiled.modules.map((m) => ({ ...m, features: [] })) };
    const line = parseCommandLine("FEAT");
    if (line === undefined) throw new Error("FEAT");
    expect(settled(dispatchCommand(featureless, line)).lines).toEqual(["211 No features supported"]);
    expect(await setup().send("FEAT x")).toEqual(["501 Invalid number of parameters"]);
  });

  it("names ServerAdmin at the end of HELP when set", async () => {
    const { compiled, send } = setup();
    apply(compiled, ["ServerAdmin", "ops@example.org"]);
    expect((await send("HELP")).at(-1)).toBe("214 Direct comments to ops@example.org");
  });
});

describe("mod_site.c", () => {
  it("runs a module's SITE subcommand after login, and refuses it before", async () => {
    const { send } = setup([guest]);
    expect(await send("SITE HELLO bob")).toEqual(["530 Please login with USER and PASS"]);
    await send("USER demo");
    await send("PASS demo");
    expect(await send("site hello bob")).toEqual(["200 SITE HELLO: hello, bob"]);
    expect(await send("SITE NOPE x")).toEqual(["500 'SITE NOPE' not understood"]);
    expect(await send("SITE")).toEqual(["500 'SITE' requires parameters"]);
  });

  it("lists every SITE subcommand of the session with its syntax, newest module first, in SITE HELP", async () => {
    const { send } = setup([guest]);
    expect(await send("SITE HELP")).toEqual([
      "214-The following SITE commands are recognized (* =>'s unimplemented)",
      " HELLO [<sp> name]",
      " HELP",
      " CHMOD",
      "214 Direct comments to root@localhost",
    ]);
    expect(await send("SITE HELP hello")).toEqual([
      "214-The following SITE commands are recognized (* =>'s unimplemented)",
      " Syntax: SITE HELLO [<sp> name]",
      "214 Direct comments to root@localhost",
    ]);
    expect(await send("SITE HELP HELP")).toEqual([
      "214-The following SITE commands are recognized (* =>'s unimplemented)",
      " HELLO [<sp> name]",
      " Syntax: SITE HELP [<sp> site-command]",
      "214 Direct comments to root@localhost",
    ]);
    expect(await send("SITE HELP bogus")).toEqual(["502 Unknown command 'SITE HELP bogus'"]);
  });

  it("lets a newer module's DECLINED pass a SITE subcommand on to an older one", async () => {
    const seen: string[] = [];
    const decliner: EngineModule = {
      ...guest,
      name: "mod_decline.c",
      commands: [
        siteHandler(
          [
            {
              command: "HELLO",
              phase: Phases.CMD,
              run: () => {
                seen.push("decliner");
                return HandlerResults.DECLINED;
              },
            },
          ],
          [],
        ),
      ],
    };
    const { send } = setup([guest, decliner]);
    await send("USER demo");
    await send("PASS demo");
    expect(await send("SITE HELLO ann")).toEqual(["200 SITE HELLO: hello, ann"]);
    expect(seen).toEqual(["decliner"]);
  });

  it("answers `500 'SITE' not understood` once mod_site.c is gone", async () => {
    const { send, state } = setup();
    const withoutSite: SessionState = { ...state, modules: state.modules.filter((m) => m.name !== "mod_site.c") };
    const line = parseCommandLine("SITE HELP");
    if (line === undefined) throw new Error("no command");
    expect(await send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(settled(dispatchCommand(withoutSite, line)).lines).toEqual(["500 'SITE' not understood"]);
  });
});
