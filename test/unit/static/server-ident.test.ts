import { describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { createCoreModule, serverFqdn } from "../../../host/static/mod-core.js";
import type { CoreModule } from "../../../host/static/mod-core.js";
import { DEFAULT_SERVER_IDENT, greetingLine } from "../../../host/static/server-ident.js";
import type { GreetingContext } from "../../../host/static/server-ident.js";
import { testCommand } from "../../helpers/session.js";

const CONTEXT: GreetingContext = {
  serverName: "ftp example",
  serverFqdn: "ftp.example.org",
  version: "0.1.0",
  localAddress: "192.0.2.7",
};

function directive(core: CoreModule, argv: string[]): string | undefined {
  const handler = core.module.directives.find((d) => d.name === argv[0]);
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  try {
    handler.run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
    return undefined;
  } catch (error) {
    if (isDsoError(error)) return error.message;
    throw error;
  }
}

describe("the greeting (pr_session_send_banner)", () => {
  it("says dsod's name in proftpd's default shape", () => {
    expect(greetingLine(DEFAULT_SERVER_IDENT, CONTEXT)).toBe("220 dsod Server (ftp example) [192.0.2.7]");
  });

  it("says only the address with ServerIdent off", () => {
    expect(greetingLine({ on: false }, CONTEXT)).toBe("220 192.0.2.7 FTP server ready");
  });

  it("sends the text of ServerIdent on, with %L, %V, %v and %{version} replaced wherever they occur", () => {
    const ident = { on: true, text: "%v at %L (%V), dsod %{version}; %L again, %x kept" } as const;
    expect(greetingLine(ident, CONTEXT)).toBe(
      "220 ftp example at 192.0.2.7 (ftp.example.org), dsod 0.1.0; 192.0.2.7 again, %x kept",
    );
  });

  it("shows MasqueradeAddress in place of the local address when it is an address, the local address for a host name", () => {
    expect(greetingLine(DEFAULT_SERVER_IDENT, { ...CONTEXT, masqueradeAddress: "203.0.113.9" })).toBe(
      "220 dsod Server (ftp example) [203.0.113.9]",
    );
    expect(greetingLine({ on: false }, { ...CONTEXT, masqueradeAddress: "ftp.example.org" })).toBe(
      "220 192.0.2.7 FTP server ready",
    );
  });
});

describe("ServerIdent (set_serverident)", () => {
  it("records on, on with a text, and off; any Boolean spelling", () => {
    const core = createCoreModule([]);
    expect(core.settings.serverIdent).toEqual({ on: true, text: undefined });
    expect(directive(core, ["ServerIdent", "on", "Welcome to %v"])).toBeUndefined();
    expect(core.settings.serverIdent).toEqual({ on: true, text: "Welcome to %v" });
    expect(directive(core, ["ServerIdent", "no"])).toBeUndefined();
    expect(core.settings.serverIdent).toEqual({ on: false });
    expect(directive(core, ["ServerIdent", "off", "ignored when off"])).toBeUndefined();
    expect(core.settings.serverIdent).toEqual({ on: false });
    expect(directive(core, ["ServerIdent", "On"])).toBeUndefined();
    expect(core.settings.serverIdent).toEqual({ on: true, text: undefined });
  });

  it("refuses a wrong count and a non-Boolean with proftpd's texts", () => {
    const core = createCoreModule([]);
    expect(directive(core, ["ServerIdent"])).toBe("wrong number of parameters");
    expect(directive(core, ["ServerIdent", "on", "a", "b"])).toBe("wrong number of parameters");
    expect(directive(core, ["ServerIdent", "maybe"])).toBe("expected Boolean parameter");
    expect(core.settings.serverIdent).toEqual({ on: true, text: undefined });
  });

  it("names a loopback or unset DefaultAddress localhost for %V, any other address itself", () => {
    const core = createCoreModule([]);
    expect(serverFqdn(core.settings)).toBe("localhost");
    directive(core, ["DefaultAddress", "127.0.0.1"]);
    expect(serverFqdn(core.settings)).toBe("localhost");
    directive(core, ["DefaultAddress", "192.0.2.7"]);
    expect(serverFqdn(core.settings)).toBe("192.0.2.7");
  });
});
