import { once } from "node:events";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { ActiveCommand } from "../../../host/abi/host-symbols.js";
import { isDsoError } from "../../../host/errors.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { DataConnectionError } from "../../../host/data/data-channel.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { CommandHandler, EngineModule, SessionState } from "../../../host/modules/module-api.js";
import type { LogPriority } from "../../../host/modules/module-host.js";
import { createCompiledInModules } from "../../../host/static/index.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import { createTlsModule } from "../../../host/static/mod-tls.js";
import type { TlsModule } from "../../../host/static/mod-tls.js";
import { DataTlsLog } from "../../../host/static/tls-data.js";
import { REPO_ROOT } from "../../helpers/paths.js";
import type { RecordingControl } from "../../helpers/session.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";

const CERT = path.join(REPO_ROOT, "test", "fixtures", "tls", "cert.pem");
const KEY = path.join(REPO_ROOT, "test", "fixtures", "tls", "key.pem");

const dir = mkdtempSync(path.join(tmpdir(), "dsod-mod-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function directive(argv: readonly string[]): ActiveCommand {
  return testCommand(argv);
}

function apply(tlsModule: TlsModule, line: string): void {
  const argv = line.split(" ");
  const handler = tlsModule.module.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  handler.run(directive(argv), { file: "/etc/dsod.conf", line: 7, first: false });
}

function refusal(tlsModule: TlsModule, line: string): string {
  try {
    apply(tlsModule, line);
  } catch (error) {
    if (isDsoError(error) && error.code === "DSO_ERR_CONFIG") return error.message;
    throw error;
  }
  throw new Error(`${line} was accepted`);
}

/** Stand-ins for the modules that own USER, PASS, LIST and NOOP: enough to see mod_tls.c's PRE_CMD act. */
function stubModule(): EngineModule {
  const cmd = (command: string, run: CommandHandler["run"]): CommandHandler => ({ command, phase: Phases.CMD, run });
  return {
    name: "mod_stub.c",
    kind: "static",
    commands: [
      cmd("USER", (c) => (c.addResponse("331", `Password required for ${c.arg}`), HandlerResults.HANDLED)),
      cmd("PASS", (c, session) => {
        session.user = "demo";
        c.addResponse("230", "User demo logged in");
        return HandlerResults.HANDLED;
      }),
      cmd("NOOP", (c) => (c.addResponse("200", "NOOP command successful"), HandlerResults.HANDLED)),
      cmd("LIST", (c) => (c.addResponse("226", "Transfer complete"), HandlerResults.HANDLED)),
    ],
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
}

interface Fixture {
  readonly tls: TlsModule;
  readonly session: SessionState;
  readonly control: RecordingControl;
  readonly log: [LogPriority, string][];
  send(text: string): string[];
}

function fixture(config: readonly string[], options: { loggedIn?: boolean; withTls?: boolean } = {}): Fixture {
  const log: [LogPriority, string][] = [];
  const tlsModule = createTlsModule({ log: (priority, message) => log.push([priority, message]) });
  for (const line of config) apply(tlsModule, line);
  tlsModule.postParse();
  const modules = [createCoreModule([]).module, stubModule(), ...(options.withTls === false ? [] : [tlsModule.module])];
  const session = testSession(modules, options.loggedIn === true ? "demo" : undefined);
  const control = session.control as RecordingControl;
  return {
    tls: tlsModule,
    session,
    control,
    log,
    send: (text) => {
      const line = parseCommandLine(text);
      if (line === undefined) throw new Error(`no command in '${text}'`);
      return [...settled(dispatchCommand(session, line)).lines];
    },
  };
}

const ENGINE = ["TLSEngine on", `TLSRSACertificateFile ${CERT}`, `TLSRSACertificateKeyFile ${KEY}`];

describe("mod_tls.c among the compiled-in modules", () => {
  it("comes last, after the extra modules (mod_dso.c, mod_ctrls.c)", () => {
    const extra: EngineModule = {
      name: "mod_ctrls.c",
      kind: "static",
      commands: [],
      siteCommands: [],
      directives: [],
      features: [],
      help: [],
    };
    const compiled = createCompiledInModules({ extra: [extra] });
    expect(compiled.modules.map((m) => m.name).slice(-2)).toEqual(["mod_ctrls.c", "mod_tls.c"]);
    expect(compiled.tls.module).toBe(compiled.modules.at(-1));
  });
});

describe("FEAT and HELP", () => {
  it("list AUTH TLS, CCC, PBSZ, PROT only while TLSEngine is on", () => {
    const tlsLines = (lines: string[]): string[] =>
      lines.filter((l) => [" AUTH TLS", " CCC", " PBSZ", " PROT"].includes(l));
    const off = fixture([]);
    expect(off.tls.module.features).toEqual([]);
    expect(tlsLines(off.send("FEAT"))).toEqual([]);
    expect(off.tls.module.help).toEqual([]);
    const on = fixture(ENGINE);
    expect(on.tls.module.features).toEqual(["AUTH TLS", "CCC", "PBSZ", "PROT"]);
    expect(tlsLines(on.send("FEAT"))).toEqual([" AUTH TLS", " CCC", " PBSZ", " PROT"]);
    expect(on.tls.module.help.map((h) => `${h.command} ${h.text}`)).toEqual([
      "AUTH <sp> base64-data",
      "PBSZ <sp> protection buffer size",
      "PROT <sp> protection code",
    ]);
  });
});

describe("the directives", () => {
  it("refuse bad values in proftpd's words", () => {
    const m = createTlsModule();
    expect(refusal(m, "TLSEngine maybe")).toBe("expected Boolean parameter");
    expect(refusal(m, "TLSEngine")).toBe("missing parameters");
    expect(refusal(m, "TLSRSACertificateFile cert.pem")).toBe("parameter must be an absolute path");
    expect(refusal(m, "TLSRSACertificateKeyFile key.pem")).toBe("parameter must be an absolute path");
    expect(refusal(m, "TLSCertificateChainFile chain.pem")).toBe("parameter must be an absolute path");
    expect(refusal(m, `TLSRSACertificateFile ${dir}/none.pem`)).toBe(
      `'${dir}/none.pem' does not exist or does not contain a certificate`,
    );
    expect(refusal(m, `TLSRSACertificateFile ${KEY}`)).toBe(
      `'${KEY}' does not exist or does not contain a certificate`,
    );
    expect(refusal(m, `TLSRSACertificateKeyFile ${dir}/none.pem`)).toBe(
      `unable to use '${dir}/none.pem': No such file or directory`,
    );
    expect(refusal(m, `TLSCertificateChainFile ${KEY}`)).toBe(
      `unable to use '${KEY}': file contained no certificate data`,
    );
    expect(refusal(m, "TLSProtocol TLSv1.1")).toBe(
      "TLSv1.1 is not supported: Node.js's OpenSSL negotiates only TLSv1.2 and TLSv1.3 at its default security level",
    );
    expect(refusal(m, "TLSProtocol ALL -TLSv1.2 -TLSv1.3")).toBe(
      "no protocol left that Node.js supports (TLSv1.2, TLSv1.3)",
    );
    expect(refusal(m, "TLSRequired sometimes")).toBe("bad parameter");
    expect(refusal(m, "TLSOptions AllowPerUser")).toBe(
      "TLSOption 'AllowPerUser' is not supported by dsod: per-user TLSRequired is not supported",
    );
    expect(m.settings).toEqual(createTlsModule().settings);
  });

  it("refuse a key that is not the certificate's, at whichever directive completes the pair", () => {
    const other = path.join(dir, "other-key.pem");
    writeFileSync(
      other,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }),
    );
    const certFirst = createTlsModule();
    apply(certFirst, `TLSRSACertificateFile ${CERT}`);
    expect(refusal(certFirst, `TLSRSACertificateKeyFile ${other}`)).toBe(
      `error checking key from TLSRSACertificateKeyFile '${other}': key values mismatch`,
    );
    const keyFirst = createTlsModule();
    apply(keyFirst, `TLSRSACertificateKeyFile ${other}`);
    expect(refusal(keyFirst, `TLSRSACertificateFile ${CERT}`)).toBe(
      `error checking key from TLSRSACertificateKeyFile '${other}': key values mismatch`,
    );
  });

  it("record what they set; TLSOptions add up", () => {
    const m = createTlsModule();
    for (const line of [
      ...ENGINE,
      `TLSCertificateChainFile ${CERT}`,
      "TLSProtocol TLSv1.3",
      "TLSRequired auth+!data",
      "TLSOptions NoSessionReuseRequired",
    ])
      apply(m, line);
    apply(m, "TLSEngine on");
    expect(m.settings.engine).toBe(true);
    expect(m.settings.certificate?.path).toBe(CERT);
    expect(m.settings.key?.path).toBe(KEY);
    expect(m.settings.chain?.path).toBe(CERT);
    expect([...m.settings.protocols]).toEqual(["TLSv1.3"]);
    expect(m.settings.required).toEqual({ ctrl: 0, data: -1, auth: 1 });
    expect(m.settings.options).toEqual({ noSessionReuseRequired: true });
  });

  it("are checked together once the config is read: a certificate needs its key and a key its certificate", () => {
    const certOnly = createTlsModule();
    apply(certOnly, "TLSEngine on");
    apply(certOnly, `TLSRSACertificateFile ${CERT}`);
    expect(() => certOnly.postParse()).toThrow(
      `mod_tls/2.9.2: TLSRSACertificateFile '${CERT}' has no key: TLSRSACertificateKeyFile is not set`,
    );
    const keyOnly = createTlsModule();
    apply(keyOnly, "TLSEngine on");
    apply(keyOnly, `TLSRSACertificateKeyFile ${KEY}`);
    expect(() => keyOnly.postParse()).toThrow(
      `mod_tls/2.9.2: TLSRSACertificateKeyFile '${KEY}' has no certificate: TLSRSACertificateFile is not set`,
    );
    // With TLSEngine off, nothing of mod_tls.c is used, so nothing is checked.
    const off = createTlsModule();
    apply(off, `TLSRSACertificateFile ${CERT}`);
    expect(() => off.postParse()).not.toThrow();
  });
});

describe("AUTH", () => {
  it("starts TLS after `234 AUTH TLS successful`, with a context of the session's own", () => {
    const f = fixture(ENGINE);
    expect(f.send("AUTH TLS")).toEqual(["234 AUTH TLS successful"]);
    expect(f.control.tlsOptions).toBeInstanceOf(Object);
    expect(f.session.data.protection).toBe("C");
    expect(f.session.data.secure).toBeUndefined();
    const other = fixture(ENGINE);
    other.send("AUTH TLS");
    expect(other.control.tlsOptions).not.toBe(f.control.tlsOptions);
    expect(f.log).toEqual([["debug", "mod_tls/2.9.2: TLS/TLS-C requested, starting TLS handshake"]]);
  });

  it("names the mechanism as sent, upper-cased; AUTH SSL and TLS-P also protect the data connections", () => {
    expect(fixture(ENGINE).send("AUTH tls-c")).toEqual(["234 AUTH TLS-C successful"]);
    for (const mechanism of ["SSL", "tls-p"]) {
      const f = fixture(ENGINE);
      expect(f.send(`AUTH ${mechanism}`)).toEqual([`234 AUTH ${mechanism.toUpperCase()} successful`]);
      expect(f.session.data.protection).toBe("P");
      expect(f.session.data.secure).toBeTypeOf("function");
    }
  });

  it("refuses as proftpd does", () => {
    const f = fixture(ENGINE);
    expect(f.send("AUTH")).toEqual(["504 AUTH requires at least one argument"]);
    expect(f.send("AUTH GSSAPI")).toEqual(["500 'AUTH' not understood"]);
    expect(f.control.tlsOptions).toBeUndefined();
    expect(f.send("AUTH TLS")).toEqual(["234 AUTH TLS successful"]);
    expect(f.send("AUTH TLS")).toEqual(["503 Unwilling to accept second AUTH"]);
    expect(fixture(ENGINE, { loggedIn: true }).send("AUTH TLS")).toEqual([
      "534 Unwilling to accept security parameters",
    ]);
    expect(fixture(["TLSEngine on"]).send("AUTH TLS")).toEqual(["431 Necessary security resource unavailable"]);
    expect(fixture([...ENGINE.slice(1)]).send("AUTH TLS")).toEqual(["500 'AUTH' not understood"]);
    expect(fixture(ENGINE, { withTls: false }).send("AUTH TLS")).toEqual(["500 'AUTH' not understood"]);
  });
});

describe("PBSZ and PROT", () => {
  it("are not understood before AUTH (mod_tls.c declines them)", () => {
    const f = fixture(ENGINE);
    expect(f.send("PBSZ 0")).toEqual(["500 'PBSZ' not understood"]);
    expect(f.send("PROT P")).toEqual(["500 'PROT' not understood"]);
    expect(f.session.data.protection).toBe("C");
  });

  it("answer with proftpd's texts after AUTH", () => {
    const f = fixture(ENGINE);
    f.send("AUTH TLS");
    expect(f.send("PBSZ 0")).toEqual(["200 PBSZ 0 successful"]);
    expect(f.send("PBSZ 16384")).toEqual(["200 PBSZ=0 successful"]);
    expect(f.send("PBSZ")).toEqual(["501 Invalid number of parameters"]);
    expect(f.send("PROT P")).toEqual(["200 Protection set to Private"]);
    expect(f.session.data.protection).toBe("P");
    expect(f.session.data.secure).toBeTypeOf("function");
    expect(f.send("PROT C")).toEqual(["200 Protection set to Clear"]);
    expect(f.session.data.protection).toBe("C");
    expect(f.session.data.secure).toBeUndefined();
    expect(f.send("PROT S")).toEqual(["536 PROT S unsupported"]);
    expect(f.send("PROT E")).toEqual(["536 PROT E unsupported"]);
    expect(f.send("PROT p")).toEqual(["504 PROT p unsupported"]);
    expect(f.send("PROT X")).toEqual(["504 PROT X unsupported"]);
    expect(f.send("PROT")).toEqual(["501 Invalid number of parameters"]);
    expect(f.send("PROT P C")).toEqual(["501 Invalid number of parameters"]);
    expect(f.session.data.protection).toBe("C");
  });

  it("PROT follows TLSRequired's data setting", () => {
    const data = fixture([...ENGINE, "TLSRequired data"]);
    data.send("AUTH TLS");
    expect(data.send("PROT C")).toEqual(["534 Unwilling to accept security parameters"]);
    expect(data.send("PROT P")).toEqual(["200 Protection set to Private"]);
    const notData = fixture([...ENGINE, "TLSRequired !data"]);
    notData.send("AUTH TLS");
    expect(notData.send("PROT P")).toEqual(["534 Unwilling to accept security parameters"]);
    expect(notData.session.data.protection).toBe("C");
    expect(notData.send("PROT C")).toEqual(["200 Protection set to Clear"]);
  });
});

describe("CCC", () => {
  it("needs a login and AUTH, and clears the control connection's protection", () => {
    expect(fixture(ENGINE).send("CCC")).toEqual(["530 Please login with USER and PASS"]);
    const f = fixture(ENGINE, { loggedIn: true });
    expect(f.send("CCC")).toEqual(["500 'CCC' not understood"]);
    const secured = fixture(ENGINE);
    secured.send("AUTH TLS");
    secured.send("USER demo");
    secured.send("PASS demo");
    expect(secured.send("PROT P")).toEqual(["200 Protection set to Private"]);
    expect(secured.send("CCC")).toEqual(["200 Clearing control channel protection"]);
    expect(secured.control.tlsCleared).toBe(true);
    expect(secured.log.at(-1)).toEqual(["info", "mod_tls/2.9.2: received CCC, clearing control channel protection"]);
    // The data connections keep their protection; PBSZ, CCC and AUTH now meet proftpd's refusals.
    expect(secured.session.data.protection).toBe("P");
    expect(secured.send("PBSZ 0")).toEqual(["503 PBSZ not allowed on insecure control connection"]);
    expect(secured.send("CCC")).toEqual(["533 CCC not allowed on insecure control connection"]);
    expect(secured.send("AUTH TLS")).toEqual(["534 Unwilling to accept security parameters"]);
    expect(secured.send("PROT C")).toEqual(["200 Protection set to Clear"]);
  });

  it("is refused while TLSRequired covers the control channel", () => {
    const required = fixture([...ENGINE, "TLSRequired ctrl"]);
    required.send("AUTH TLS");
    required.send("USER demo");
    required.send("PASS demo");
    expect(required.send("CCC")).toEqual(["534 Unwilling to accept security parameters"]);
    expect(required.control.tlsCleared).toBe(false);
    expect(required.log.at(-1)).toEqual([
      "info",
      "mod_tls/2.9.2: CCC: unwilling to accept security parameters: TLSRequired setting does not allow for unprotected control channel",
    ]);
  });
});

describe("TLSRequired", () => {
  it("on: every command but SYST, AUTH, FEAT, HOST, CLNT and QUIT waits for AUTH", () => {
    const f = fixture([...ENGINE, "TLSRequired on"]);
    expect(f.send("USER demo")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(f.log.at(-1)).toEqual([
      "info",
      "mod_tls/2.9.2: SSL/TLS required but absent for authentication, denying USER command",
    ]);
    expect(f.send("NOOP")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(f.log.at(-1)).toEqual([
      "info",
      "mod_tls/2.9.2: SSL/TLS required but absent on control channel, denying NOOP command",
    ]);
    // tls_any is a requires_auth FALSE handler: it answers before the login check does.
    expect(f.send("LIST")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(f.send("SYST")).toEqual(["215 UNIX Type: L8"]);
    expect(f.send("FEAT")[0]).toBe("211-Features:");
    expect(f.send("QUIT")).toEqual(["221 Goodbye."]);
    f.session.closing = false;
    expect(f.send("AUTH TLS")).toEqual(["234 AUTH TLS successful"]);
    expect(f.send("USER demo")).toEqual(["331 Password required for demo"]);
    expect(f.send("PASS demo")).toEqual(["230 User demo logged in"]);
    expect(f.send("LIST")).toEqual(["522 SSL/TLS required on the data channel"]);
    expect(f.send("PROT P")).toEqual(["200 Protection set to Private"]);
    expect(f.send("LIST")).toEqual(["226 Transfer complete"]);
  });

  it("auth: only USER, PASS and ACCT wait for AUTH", () => {
    const f = fixture([...ENGINE, "TLSRequired auth"]);
    expect(f.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(f.send("USER demo")).toEqual(["550 SSL/TLS required on the control channel"]);
    expect(f.log.at(-1)).toEqual([
      "info",
      "mod_tls/2.9.2: SSL/TLS required but absent for authentication, denying USER command",
    ]);
    expect(f.send("PASS demo")).toEqual(["550 SSL/TLS required on the control channel"]);
    f.send("AUTH TLS");
    expect(f.send("USER demo")).toEqual(["331 Password required for demo"]);
  });

  it("data: transfers need PROT P, in the clear or not", () => {
    const f = fixture([...ENGINE, "TLSRequired data"], { loggedIn: true });
    expect(f.send("LIST")).toEqual(["522 SSL/TLS required on the data channel"]);
    expect(f.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(f.log.at(-1)).toEqual([
      "info",
      "mod_tls/2.9.2: SSL/TLS required but absent on data channel, denying LIST command",
    ]);
  });

  it("is not enforced while TLSEngine is off", () => {
    const f = fixture(["TLSRequired on"]);
    expect(f.send("LIST")).toEqual(["530 Please login with USER and PASS"]);
    expect(f.send("USER demo")).toEqual(["331 Password required for demo"]);
  });
});

describe("the data connections under PROT P", () => {
  async function dataAttempt(config: readonly string[]): Promise<{ outcome: string; log: [LogPriority, string][] }> {
    const f = fixture([...ENGINE, ...config]);
    f.send("AUTH TLS");
    f.send("PROT P");
    const secure = f.session.data.secure;
    if (secure === undefined) throw new Error("PROT P set no TLS wrapper");
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => server.close());
    const accepted = once(server, "connection") as Promise<[net.Socket]>;
    // A client without the control connection's session, as Python's ftplib is.
    const client = tls.connect({
      port: (server.address() as net.AddressInfo).port,
      host: "127.0.0.1",
      rejectUnauthorized: false,
    });
    client.on("error", () => {});
    cleanups.push(() => client.destroy());
    const [socket] = await accepted;
    const outcome = await secure(socket).then(
      (duplex) => {
        duplex.destroy();
        return "accepted";
      },
      (error: unknown) => (error instanceof DataConnectionError ? `refused: ${error.errno}` : String(error)),
    );
    return { outcome, log: f.log };
  }

  it("must resume the control connection's TLS session", async () => {
    const { outcome, log } = await dataAttempt([]);
    expect(outcome).toBe("refused: EPERM");
    expect(log.at(-1)).toEqual(["notice", `mod_tls/2.9.2: ${DataTlsLog.NOT_REUSED}`]);
  });

  it("need not with TLSOptions NoSessionReuseRequired", async () => {
    expect((await dataAttempt(["TLSOptions NoSessionReuseRequired"])).outcome).toBe("accepted");
  });
});
