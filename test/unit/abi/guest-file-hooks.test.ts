// The two example guest modules on file commands, loaded through a real
// ModuleHost and driven by the real dispatcher: mod_upload_filter refuses
// uploads in PRE_CMD with its own 553 reply, and mod_xfer_stats reads the
// transfer symbols in LOG_CMD and answers SITE XFERSTATS. A compiled-in stand-in
// for mod_xfer.c plays the transfers (real ones are covered by the integration
// tests): it answers 226 and sets ActiveCommand.transfer as the real one does.
import { afterEach, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { commandPath } from "../../../host/ftp/command-path.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { DispatchResult } from "../../../host/ftp/dispatch.js";
import { DirectiveCall } from "../../../host/modules/directive-call.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type {
  CommandHandler,
  DirectiveContext,
  EngineModule,
  SessionState,
  TransferInfo,
} from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import { PolicyTable } from "../../../host/modules/policy.js";
import { LIBEXEC_DIR } from "../../helpers/paths.js";
import { settled, testSession } from "../../helpers/session.js";

const CONTEXT: DirectiveContext = { file: "/etc/dsod.conf", line: 7, first: false };

interface Rig {
  readonly host: ModuleHost;
  /** Guest log lines at or below `debugLevel`, as `mod_x.c: message`. */
  readonly logs: string[];
  /** The commands the stand-in mod_xfer.c's CMD handlers ran. */
  readonly ran: string[];
  /** The transfer the stand-in reports for the next command, by command name. */
  readonly transfers: Map<string, TransferInfo>;
  readonly xfer: EngineModule;
}

const hosts: ModuleHost[] = [];
afterEach(() => {
  for (const host of hosts.splice(0)) host.close();
});

/** mod_xfer.c as dispatch sees it: CMD handlers that "transfer" and set the command's TransferInfo. */
function standInXfer(ran: string[], transfers: Map<string, TransferInfo>): EngineModule {
  const handler = (command: string): CommandHandler => ({
    command,
    phase: Phases.CMD,
    run: (cmd: ActiveCommand) => {
      ran.push(`${cmd.name} ${cmd.path ?? "-"}`);
      // STOU's handler picks the name, and says so through ActiveCommand.path.
      if (command === "STOU") cmd.path = "/up/ftpA1b2C3";
      const transfer = transfers.get(command);
      if (transfer === undefined) {
        cmd.addResponse("250", "Rename successful");
        return HandlerResults.HANDLED;
      }
      cmd.transfer = transfer;
      if (!transfer.complete) {
        cmd.addError("426", "Transfer aborted. Data connection closed.");
        return HandlerResults.ERROR;
      }
      cmd.addResponse("226", "Transfer complete");
      return HandlerResults.HANDLED;
    },
  });
  return {
    name: "mod_xfer.c",
    kind: "static",
    commands: ["STOR", "STOU", "APPE", "RETR", "RNTO"].map(handler),
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
}

function rig(debugLevel = 10): Rig {
  const policies = new PolicyTable();
  policies.grant("mod_xfer_stats.c", ["session", "transfer"]);
  const logs: string[] = [];
  const host = new ModuleHost({
    modulePath: LIBEXEC_DIR,
    policy: (unit) => policies.resolve(unit),
    guestLog: (importer, level, message) => {
      if (level <= debugLevel) logs.push(`${importer}: ${message}`);
    },
  });
  hosts.push(host);
  host.loadModule("mod_upload_filter.c");
  host.loadModule("mod_xfer_stats.c");
  const ran: string[] = [];
  const transfers = new Map<string, TransferInfo>();
  return { host, logs, ran, transfers, xfer: standInXfer(ran, transfers) };
}

function guest(host: ModuleHost, name: string): EngineModule {
  const found = host.engineModules().find((m) => m.name === name);
  if (found === undefined) throw new Error(`${name} is not loaded`);
  return found;
}

/** Applies a config line to the module that owns the directive; returns the guest's refusal reasons. */
function configure(host: ModuleHost, argv: readonly string[]): string[] {
  const directive = new DirectiveCall(argv);
  const handler = guest(host, "mod_upload_filter.c").directives.find((d) => d.name === argv[0]);
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  try {
    handler.run(directive, CONTEXT);
  } catch (error) {
    if (!(error instanceof DsoError) || error.code !== ErrorCodes.CONFIG) throw error;
  }
  return directive.errors;
}

/** A logged-in session of the stand-in mod_xfer.c and the guests (newest, so their handlers run first), in `cwd`. */
function session(r: Rig, user = "demo", cwd = "/up"): SessionState {
  return testSession([r.xfer, ...r.host.engineModules()], user, { cwd });
}

/** Dispatches `text` as the FTP server does, with ActiveCommand.path from the session's cwd. */
function send(state: SessionState, text: string): DispatchResult {
  const line = parseCommandLine(text);
  if (line === undefined) throw new Error(`no command in '${text}'`);
  return settled(dispatchCommand(state, line, { pathOf: (s, l) => commandPath({ cwd: s.cwd, home: "/" }, l) }));
}

/** SITE XFERSTATS as mod_site.c runs a guest's subcommand for `user`. */
function xferStats(r: Rig, user: string): string[] {
  const replies: string[] = [];
  const cmd: ActiveCommand = {
    name: "SITE",
    arg: "XFERSTATS",
    argv: ["SITE", "XFERSTATS"],
    user,
    cwd: "/",
    path: undefined,
    transfer: undefined,
    addResponse: (code, message) => replies.push(`${code} ${message}`),
    addError: (code, message) => replies.push(`error ${code} ${message}`),
  };
  const handler = guest(r.host, "mod_xfer_stats.c").siteCommands.find((h) => h.command === "XFERSTATS");
  if (handler === undefined) throw new Error("no SITE XFERSTATS");
  expect(handler.run(cmd, session(r, user))).toBe(HandlerResults.HANDLED);
  return replies;
}

const upload = (bytes: number, complete = true): TransferInfo => ({
  direction: "upload",
  bytes,
  fileSize: bytes,
  durationMs: 12,
  complete,
});
const download = (bytes: number, complete = true): TransferInfo => ({
  direction: "download",
  bytes,
  fileSize: bytes,
  durationMs: 3,
  complete,
});

describe("mod_upload_filter", () => {
  it("registers UploadFilterDeny and PRE_CMD handlers for STOR, APPE and RNTO only", () => {
    const m = guest(rig().host, "mod_upload_filter.c");
    expect(m.directives.map((d) => d.name)).toEqual(["UploadFilterDeny"]);
    expect(m.commands.map((c) => `${c.command}:${c.phase}`).sort()).toEqual([
      "APPE:PRE_CMD",
      "RNTO:PRE_CMD",
      "STOR:PRE_CMD",
    ]);
  });

  it("refuses a STOR whose name matches in PRE_CMD with 553, before mod_xfer.c runs, and logs it", () => {
    const r = rig(0);
    expect(configure(r.host, ["UploadFilterDeny", "*.exe", "*.bat"])).toEqual([]);
    r.transfers.set("STOR", upload(10));
    const state = session(r);
    expect(send(state, "STOR setup.exe")).toEqual({ lines: ["553 setup.exe: Forbidden filename"], ok: false });
    expect(send(state, "STOR ../bin/run.bat")).toEqual({
      lines: ["553 ../bin/run.bat: Forbidden filename"],
      ok: false,
    });
    expect(r.ran).toEqual([]);
    expect(r.logs).toEqual([
      "mod_upload_filter.c: 'STOR /up/setup.exe' denied by UploadFilterDeny '*.exe'",
      "mod_upload_filter.c: 'STOR /bin/run.bat' denied by UploadFilterDeny '*.bat'",
    ]);
    expect(send(state, "STOR notes.txt")).toEqual({ lines: ["226 Transfer complete"], ok: true });
    expect(r.ran).toEqual(["STOR /up/notes.txt"]);
  });

  it("matches the last path component only, case-sensitively unless [NC] is given", () => {
    const r = rig(0);
    r.transfers.set("APPE", upload(1));
    configure(r.host, ["UploadFilterDeny", "*.exe"]);
    const state = session(r);
    expect(send(state, "APPE SETUP.EXE").lines).toEqual(["226 Transfer complete"]);
    // A directory named like a pattern does not refuse the file in it.
    expect(send(state, "APPE tools.exe/readme").lines).toEqual(["226 Transfer complete"]);
    expect(configure(r.host, ["UploadFilterDeny", "*.exe", "[NC]"])).toEqual([]);
    expect(send(state, "APPE SETUP.EXE")).toEqual({ lines: ["553 SETUP.EXE: Forbidden filename"], ok: false });
    expect(configure(r.host, ["UploadFilterDeny", "*.EXE", "[nocase]"])).toEqual([]);
    expect(send(state, "APPE setup.Exe").lines).toEqual(["553 setup.Exe: Forbidden filename"]);
    // The log names the pattern as configured.
    expect(r.logs).toEqual([
      "mod_upload_filter.c: 'APPE /up/SETUP.EXE' denied by UploadFilterDeny '*.exe'",
      "mod_upload_filter.c: 'APPE /up/setup.Exe' denied by UploadFilterDeny '*.EXE'",
    ]);
  });

  it("refuses RNTO onto a matching name and lets others through", () => {
    const r = rig();
    configure(r.host, ["UploadFilterDeny", ".ht*"]);
    const state = session(r);
    expect(send(state, "RNTO .htaccess")).toEqual({ lines: ["553 .htaccess: Forbidden filename"], ok: false });
    expect(send(state, "RNTO htaccess.txt")).toEqual({ lines: ["250 Rename successful"], ok: true });
    expect(r.ran).toEqual(["RNTO /up/htaccess.txt"]);
  });

  it("leaves STOU alone: the server picks its name after PRE_CMD", () => {
    const r = rig();
    r.transfers.set("STOU", upload(5));
    configure(r.host, ["UploadFilterDeny", "*"]);
    expect(send(session(r), "STOU")).toEqual({ lines: ["226 Transfer complete"], ok: true });
  });

  it("reads globs as fnmatch(3) does: ?, classes, ranges, negation and escapes", () => {
    const r = rig();
    r.transfers.set("STOR", upload(1));
    const state = session(r);
    const cases: Array<[string, string, boolean]> = [
      ["file?.txt", "file1.txt", true],
      ["file?.txt", "file12.txt", false],
      ["log[0-9][0-9]", "log42", true],
      ["log[0-9][0-9]", "log4x", false],
      ["[!a-m]*", "zeta", true],
      ["[!a-m]*", "alpha", false],
      ["[^a-m]*", "alpha", false],
      ["[]x]", "]", true],
      ["\\*", "*", true],
      ["\\*", "a", false],
      ["[abc", "[abc", true],
      ["a*b*c", "aXXbYYc", true],
      ["a*b*c", "aXXbYY", false],
      ["*", "anything", true],
    ];
    const outcomes = cases.map(([pattern, name]) => {
      configure(r.host, ["UploadFilterDeny", pattern]);
      return [pattern, name, send(state, `STOR ${name}`).lines[0]?.startsWith("553") ?? false];
    });
    expect(outcomes).toEqual(cases);
  });

  it("matches a hostile name against a many-star pattern without exponential backtracking, inside the CPU budget", () => {
    const r = rig();
    r.transfers.set("STOR", upload(1));
    configure(r.host, ["UploadFilterDeny", "*a*a*a*a*a*a*a*a*a*a*b"]);
    const name = "a".repeat(4000);
    expect(send(session(r), `STOR ${name}`).lines).toEqual(["226 Transfer complete"]);
    expect(send(session(r), `STOR ${name}b`).lines).toEqual([`553 ${name}b: Forbidden filename`]);
  });

  it("refuses bad UploadFilterDeny lines with reasons", () => {
    const { host } = rig();
    expect(configure(host, ["UploadFilterDeny"])).toEqual(["wrong number of parameters"]);
    expect(configure(host, ["UploadFilterDeny", "[NC]"])).toEqual(["wrong number of parameters"]);
    expect(configure(host, ["UploadFilterDeny", "bin/*.exe"])).toEqual([
      "pattern 'bin/*.exe' must not contain '/': it matches the file name only",
    ]);
  });
});

describe("mod_xfer_stats", () => {
  it("registers HELP for SITE XFERSTATS and LOG_CMD / LOG_CMD_ERR handlers of the transfer commands", () => {
    const m = guest(rig().host, "mod_xfer_stats.c");
    expect(m.help).toEqual([{ command: "XFERSTATS", text: "(show your bytes up and down)" }]);
    expect(m.siteCommands.map((c) => c.command)).toEqual(["XFERSTATS"]);
    expect(m.commands.map((c) => `${c.command}:${c.phase}`).sort()).toEqual(
      [...["APPE", "RETR", "STOR", "STOU"].flatMap((c) => [`${c}:LOG_CMD`, `${c}:LOG_CMD_ERR`]), "SITE:CMD"].sort(),
    );
  });

  it("is refused without the session and transfer capabilities", () => {
    const host = new ModuleHost({ modulePath: LIBEXEC_DIR });
    hosts.push(host);
    let caught: unknown;
    try {
      host.loadModule("mod_xfer_stats.c");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DsoError);
    expect((caught as DsoError).code).toBe(ErrorCodes.CAPABILITY);
    expect([...(caught as DsoError).lines].sort()).toEqual(
      [
        "pr_session_user",
        "pr_xfer_bytes",
        "pr_xfer_complete",
        "pr_xfer_direction",
        "pr_xfer_duration_ms",
        "pr_xfer_file_size",
      ].map(
        (symbol) =>
          `mod_xfer_stats.c: symbol '${symbol}' needs capability '${symbol === "pr_session_user" ? "session" : "transfer"}', which mod_xfer_stats.c is not granted`,
      ),
    );
  });

  it("answers zero totals before any transfer", () => {
    expect(xferStats(rig(), "demo")).toEqual(["200 demo: 0 bytes up in 0 files, 0 bytes down in 0 files"]);
  });

  it("counts each user's bytes up and down from the transfer symbols, files only when complete", () => {
    const r = rig(5);
    const demo = session(r, "demo");
    r.transfers.set("STOR", upload(1000));
    expect(send(demo, "STOR a.bin").lines).toEqual(["226 Transfer complete"]);
    r.transfers.set("RETR", download(500));
    expect(send(demo, "RETR a.bin").lines).toEqual(["226 Transfer complete"]);
    // An aborted upload moved 300 bytes: they count, the file does not.
    r.transfers.set("APPE", upload(300, false));
    expect(send(demo, "APPE a.bin")).toEqual({ lines: ["426 Transfer aborted. Data connection closed."], ok: false });
    r.transfers.set("STOU", upload(7));
    expect(send(demo, "STOU").lines).toEqual(["226 Transfer complete"]);
    // Another user's transfers are kept apart.
    r.transfers.set("RETR", download(64));
    expect(send(session(r, "alice", "/"), "RETR pub/b.bin").lines).toEqual(["226 Transfer complete"]);

    expect(xferStats(r, "demo")).toEqual(["200 demo: 1307 bytes up in 2 files, 500 bytes down in 1 file"]);
    expect(xferStats(r, "alice")).toEqual(["200 alice: 0 bytes up in 0 files, 64 bytes down in 1 file"]);
    expect(r.logs).toEqual([
      "mod_xfer_stats.c: demo: STOR /up/a.bin: 1000 bytes upload in 12 ms, file size 1000, complete",
      "mod_xfer_stats.c: demo: RETR /up/a.bin: 500 bytes download in 3 ms, file size 500, complete",
      "mod_xfer_stats.c: demo: APPE /up/a.bin: 300 bytes upload in 12 ms, file size 300, incomplete",
      "mod_xfer_stats.c: demo: STOU /up/ftpA1b2C3: 7 bytes upload in 12 ms, file size 7, complete",
      "mod_xfer_stats.c: alice: RETR /pub/b.bin: 64 bytes download in 3 ms, file size 64, complete",
    ]);
  });

  it("adds sizes past 2^32 exactly", () => {
    const r = rig();
    const demo = session(r);
    r.transfers.set("STOR", upload(5_000_000_000));
    send(demo, "STOR big.iso");
    send(demo, "STOR big.iso");
    expect(xferStats(r, "demo")).toEqual(["200 demo: 10000000000 bytes up in 2 files, 0 bytes down in 0 files"]);
  });

  it("ignores a filtered upload: it never transferred", () => {
    const r = rig();
    configure(r.host, ["UploadFilterDeny", "*.exe"]);
    r.transfers.set("STOR", upload(99));
    expect(send(session(r), "STOR x.exe").lines).toEqual(["553 x.exe: Forbidden filename"]);
    expect(xferStats(r, "demo")).toEqual(["200 demo: 0 bytes up in 0 files, 0 bytes down in 0 files"]);
  });
});
