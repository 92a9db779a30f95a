import { describe, expect, it } from "vitest";
import { ConfigRunner } from "../../../host/config/config-runner.js";
import { ConfigError } from "../../../host/config/lexer.js";
import type { DirectiveContext, EngineModule } from "../../../host/modules/module-api.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import type { CoreSettings } from "../../../host/static/mod-core.js";

const MAIN = "/etc/dsod.conf";

interface Run {
  readonly core: CoreSettings;
  /** The DirectiveContext each call of the `Probe` directive saw. */
  readonly probes: DirectiveContext[];
}

/**
 * Runs `main` (and `files` for Include) with mod_core.c and a module whose
 * `Probe` records its context; with `probeAllowAll`, its `AllowAll` shadows
 * mod_core.c's (it is loaded later), so a probe can stand inside <Limit> too.
 */
function run(main: string, files: Record<string, string> = {}, probeAllowAll = false): Run {
  const core = createCoreModule([]);
  const probes: DirectiveContext[] = [];
  const probe: EngineModule = {
    name: "mod_probe.c",
    kind: "static",
    commands: [],
    siteCommands: [],
    features: [],
    help: [],
    directives: (probeAllowAll ? ["Probe", "AllowAll"] : ["Probe"]).map((name) => ({
      name,
      run: (_d: unknown, context: DirectiveContext) => void probes.push(context),
    })),
  };
  const texts = new Map(Object.entries({ [MAIN]: main, ...files }));
  const runner = new ConfigRunner({
    source: {
      read: (file) => {
        const text = texts.get(file);
        if (text === undefined) throw Object.assign(new Error("missing"), { code: "ENOENT" });
        return text;
      },
      expand: (pattern) => [pattern],
    },
    env: {},
    modules: () => [core.module, probe],
    isLoaded: (name) => name === "mod_core.c" || name === "mod_probe.c",
    log: () => {},
  });
  runner.run(MAIN);
  return { core: core.settings, probes };
}

function failure(main: string, files: Record<string, string> = {}): ConfigError {
  try {
    run(main, files);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

/** What dsod prints after `Fatal: `. */
function fatal(main: string, files: Record<string, string> = {}): string {
  const error = failure(main, files);
  return error.line > 0 ? error.proftpdText() : error.message;
}

describe("ConfigRunner: sections must nest and close", () => {
  it("refuses a used <IfModule> left open, at the line that opened it", () => {
    expect(fatal("ServerName a\n<IfModule mod_core.c>\n  ServerName b\n")).toBe(
      "<IfModule>: unclosed <IfModule> context on line 2 of '/etc/dsod.conf'",
    );
  });

  it("refuses a skipped <IfModule> left open, at the last line, as proftpd does", () => {
    expect(fatal("<IfModule mod_nope.c>\n  ServerName b\nPort 21\n")).toBe(
      "<IfModule>: unclosed <IfModule> context on line 3 of '/etc/dsod.conf'",
    );
  });

  it("refuses a stray </IfModule>, in the words proftpd uses for other stray closing tags", () => {
    expect(fatal("ServerName a\n</IfModule>\n")).toBe(
      "</IfModule>: directive not allowed in server config context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<IfModule mod_core.c>\n</IfModule>\n</IfModule>\n")).toBe(
      "</IfModule>: directive not allowed in server config context on line 3 of '/etc/dsod.conf'",
    );
  });

  it("refuses a stray </Limit> and </Directory> as proftpd's CHECK_CONF does", () => {
    expect(fatal("</Limit>\n")).toBe(
      "</Limit>: directive not allowed in server config context on line 1 of '/etc/dsod.conf'",
    );
    expect(fatal("<Directory /srv>\n</Limit>\n</Directory>\n")).toBe(
      "</Limit>: directive not allowed in <Directory> context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<Limit READ>\n</Directory>\n</Limit>\n")).toBe(
      "</Directory>: directive not allowed in <Limit> context on line 2 of '/etc/dsod.conf'",
    );
  });

  it("refuses a stray </VirtualHost>, and takes its tags in any case", () => {
    expect(fatal("</VirtualHost>\n")).toBe(
      "</VirtualHost>: directive not allowed in server config context on line 1 of '/etc/dsod.conf'",
    );
    expect(() => run("<virtualhost 10.0.0.1>\n</VIRTUALHOST>\n<global>\n</Global>\n")).not.toThrow();
    expect(fatal("<Global>\n</VirtualHost>\n</Global>\n")).toBe(
      "</VirtualHost>: directive not allowed in <Global> context on line 2 of '/etc/dsod.conf'",
    );
  });

  it("refuses an <IfModule> that a closing tag of its enclosing section cuts short", () => {
    expect(fatal("<Limit READ>\n<IfModule mod_core.c>\nDenyAll\n</Limit>\n</IfModule>\n")).toBe(
      "<IfModule>: unclosed <IfModule> context on line 4 of '/etc/dsod.conf'",
    );
    expect(fatal("<IfModule mod_core.c>\n<Limit READ>\n</IfModule>\n</Limit>\n")).toBe(
      "</IfModule>: directive not allowed in <Limit> context on line 3 of '/etc/dsod.conf'",
    );
  });

  it("refuses a <Limit> or <Directory> left open with main.c's words, naming where it opened", () => {
    const error = failure("ServerName a\n<Directory /srv>\n<Limit READ>\nDenyAll\n</Limit>\n");
    expect(error.message).toBe("error processing configuration file '/etc/dsod.conf': unclosed configuration section");
    expect(error.line).toBe(0);
    expect(error.details).toEqual(["<Directory> opened on line 2 of '/etc/dsod.conf' is not closed"]);
  });

  it("lets a section open in one file and close in the file that included it", () => {
    const { core } = run("Include /etc/limit.conf\n  DenyAll\n</Limit>\n", { "/etc/limit.conf": "<Limit WRITE>\n" });
    expect(core.limits.server).toMatchObject([
      { commands: ["WRITE"], denyAll: true, file: "/etc/limit.conf", line: 1 },
    ]);
  });

  it("accepts an Include and an <IfModule> inside <Limit>, as proftpd does", () => {
    const { core } = run("<Limit READ>\n<IfModule mod_core.c>\nInclude /etc/deny.conf\n</IfModule>\n</Limit>\n", {
      "/etc/deny.conf": "DenyUser bob\n",
    });
    expect(core.limits.server[0]?.denyUser).toEqual([{ combine: "or", names: ["bob"] }]);
  });
});

describe("ConfigRunner: directives in sections", () => {
  it("refuses a directive that a <Limit> does not take, with proftpd's CHECK_CONF words", () => {
    expect(fatal("<Limit READ>\n  ServerName x\n</Limit>\n")).toBe(
      "ServerName: directive not allowed in <Limit> context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<Directory /srv>\n  Port 21\n</Directory>\n")).toBe(
      "Port: directive not allowed in <Directory> context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<Limit READ>\n  <Limit WRITE>\n</Limit>\n")).toBe(
      "<Limit>: directive not allowed in <Limit> context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<Directory /a>\n<Directory /a/b>\n")).toBe(
      "<Directory>: directive not allowed in <Directory> context on line 2 of '/etc/dsod.conf'",
    );
  });

  it("still refuses everything inside the sections dsod does not serve", () => {
    expect(fatal("<VirtualHost 10.0.0.1>\n<Limit READ>\n")).toBe(
      "<Limit>: directive not allowed in <VirtualHost> context on line 2 of '/etc/dsod.conf'",
    );
    expect(fatal("<Global>\nServerName x\n</Global>\n")).toBe(
      "ServerName: directive not allowed in <Global> context on line 2 of '/etc/dsod.conf'",
    );
  });

  it("tells a handler the sections around it, outermost first, without <IfModule>", () => {
    const { probes } = run(
      "Probe\n<Directory /srv/*>\n<IfModule mod_core.c>\n<Limit READ WRITE>\nAllowAll\n</Limit>\n</IfModule>\n</Directory>\n",
      {},
      true,
    );
    expect(probes.map((p) => p.sections)).toEqual([
      [],
      [
        { name: "<Directory>", args: ["/srv/*"], file: MAIN, line: 2 },
        { name: "<Limit>", args: ["READ", "WRITE"], file: MAIN, line: 4 },
      ],
    ]);
  });

  it("names an unknown opening tag with its '>', as proftpd's parser completes it", () => {
    expect(fatal("<Bogus x>\n</Bogus>\n")).toBe(
      "unknown configuration directive '<Bogus>' on line 1 of '/etc/dsod.conf'",
    );
  });
});

describe("ConfigRunner: the Limit directives record rules", () => {
  it("records server and <Directory> <Limit>s in the order written", () => {
    const { core } = run(
      [
        "<Limit LOGIN>",
        "  Order deny,allow",
        "  Order allow,deny",
        "  AllowUser bob,!eve carol",
        "  AllowGroup OR staff ops",
        "  DenyGroup AND a,b",
        "  DenyUser OR",
        "  DenyAll",
        "</Limit>",
        "<Directory ~/upload/>",
        "  <Limit STOR,DELE MKD>",
        "    AllowAll",
        "  </Limit>",
        "</Directory>",
      ].join("\n"),
    );
    expect(core.limits).toEqual({
      server: [
        {
          commands: ["LOGIN"],
          order: "deny,allow",
          allowAll: false,
          denyAll: true,
          allowUser: [{ combine: "or", names: ["bob", "!eve", "carol"] }],
          denyUser: [{ combine: "or", names: ["OR"] }],
          allowGroup: [{ combine: "or", names: ["staff", "ops"] }],
          denyGroup: [{ combine: "and", names: ["a", "b"] }],
          file: MAIN,
          line: 1,
        },
      ],
      directories: [
        {
          path: "~/upload/",
          file: MAIN,
          line: 10,
          limits: [
            {
              commands: ["STOR", "DELE", "MKD", "XMKD"],
              order: undefined,
              allowAll: true,
              denyAll: false,
              allowUser: [],
              denyUser: [],
              allowGroup: [],
              denyGroup: [],
              file: MAIN,
              line: 11,
            },
          ],
        },
      ],
    });
  });

  it("pairs CDUP, MKD, PWD and RMD with their X-forms either way, but not CWD", () => {
    const { core } = run("<Limit xcup PWD XRMD CWD>\n</Limit>\n");
    expect(core.limits.server[0]?.commands).toEqual(["xcup", "PWD", "XRMD", "CWD", "CDUP", "XPWD", "RMD"]);
  });

  it("defaults AllowGroup and DenyGroup to AND, AllowUser and DenyUser to OR", () => {
    const { core } = run("<Limit ALL>\nAllowGroup a b\nDenyUser c d\n</Limit>\n");
    expect(core.limits.server[0]).toMatchObject({
      allowGroup: [{ combine: "and", names: ["a", "b"] }],
      denyUser: [{ combine: "or", names: ["c", "d"] }],
    });
  });

  it("takes the tags and directives in any case", () => {
    const { core } = run("<directory /srv>\n<limit read>\nDENYALL\n</LIMIT>\n</directory>\n");
    expect(core.limits.directories).toMatchObject([{ path: "/srv", limits: [{ commands: ["read"], denyAll: true }] }]);
  });

  it("joins `Order allow, deny` written as two words", () => {
    expect(run("<Limit ALL>\nOrder allow, deny\n</Limit>\n").core.limits.server[0]?.order).toBe("allow,deny");
  });

  it("refuses each directive with proftpd's texts", () => {
    const cases: Array<[string, string]> = [
      ["<Limit>", "<Limit>: directive requires one or more commands on line 1"],
      ["<Limit READ>\nOrder", "Order: wrong number of parameters on line 2"],
      ["<Limit READ>\nOrder allow deny", "Order: 'allowdeny': invalid argument on line 2"],
      ["Order allow,deny", "Order: directive not allowed in server config context on line 1"],
      ["AllowUser bob", "AllowUser: directive not allowed in server config context on line 1"],
      ["<Limit READ>\nAllowUser", "AllowUser: wrong number of parameters on line 2"],
      ["<Limit READ>\nDenyGroup ,,", "DenyGroup: wrong number of parameters on line 2"],
      [
        "<Limit READ>\nAllowUser regex ^a",
        "AllowUser: the 'regex' parameter is not supported by dsod; list the names on line 2",
      ],
      ["DenyAll", "DenyAll: directive not allowed in server config context on line 1"],
      ["<Limit READ>\nDenyAll x", "DenyAll: wrong number of parameters on line 2"],
      [
        "<Directory /srv>\nDenyAll",
        "DenyAll: not supported directly in <Directory> by dsod; put it inside a <Limit> section on line 2",
      ],
      ["<Limit READ>\n</Limit> x", "</Limit>: wrong number of parameters on line 2"],
      ["<Directory>", "<Directory>: missing parameters on line 1"],
      ["<Directory srv>", "<Directory>: relative path not allowed in non-<Anonymous> sections on line 1"],
      [
        "<Directory ~bob/x>",
        "<Directory>: '~bob/x': '~user' paths are not supported by dsod; write the home directory's path on line 1",
      ],
      [
        "<Directory /srv>\n</Directory>\n<Directory /srv>",
        "<Directory>: <Directory> section already configured for '/srv' on line 3",
      ],
      ["<Directory /srv>\n</Directory> x", "</Directory>: wrong number of parameters on line 2"],
    ];
    for (const [text, message] of cases) {
      expect(fatal(`${text}\n`)).toBe(`${message} of '/etc/dsod.conf'`);
    }
  });
});
