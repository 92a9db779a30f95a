import { describe, expect, it } from "vitest";
import { DsoError, Errno, ErrorCodes } from "../../../host/errors.js";
import { ConfigError, MAX_ENV_EXPANSION, lexConfig } from "../../../host/config/lexer.js";
import type { ConfigLine } from "../../../host/config/lexer.js";

const FILE = "/etc/dsod.conf";

/** Lexes with no environment and drops `file`, which every line shares. */
function lex(text: string, env: Record<string, string | undefined> = {}): Omit<ConfigLine, "file">[] {
  return lexConfig(text, FILE, env).map(({ line, name, args }) => ({ line, name, args }));
}

function lexError(text: string, env: Record<string, string | undefined> = {}): ConfigError {
  try {
    lexConfig(text, FILE, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("lexConfig: lines, comments, whitespace", () => {
  it("gives one directive per line with its 1-based line number and file", () => {
    expect(lexConfig("ServerType standalone\nLoadModule mod_x.c\n", FILE, {})).toEqual([
      { file: FILE, line: 1, name: "ServerType", args: ["standalone"] },
      { file: FILE, line: 2, name: "LoadModule", args: ["mod_x.c"] },
    ]);
  });

  it("skips blank lines, whole-line comments and surrounding whitespace", () => {
    const text = "\n# a comment\n   \t\n  \t# indented comment\n\t LoadModule \t mod_x.c  \t\n\nPort 21";
    expect(lex(text)).toEqual([
      { line: 5, name: "LoadModule", args: ["mod_x.c"] },
      { line: 7, name: "Port", args: ["21"] },
    ]);
  });

  it("keeps the directive name's case (matching is the parser's job)", () => {
    expect(lex("loadMODULE Mod_X.c")).toEqual([{ line: 1, name: "loadMODULE", args: ["Mod_X.c"] }]);
  });

  it("ends the line at a word starting with # (pr_str_get_word's inline comment)", () => {
    expect(lex("LoadModule mod_x.c # load x\nPort 21 #21\n")).toEqual([
      { line: 1, name: "LoadModule", args: ["mod_x.c"] },
      { line: 2, name: "Port", args: ["21"] },
    ]);
  });

  it("keeps a # inside a word or inside quotes", () => {
    expect(lex('ServerName a#b "#c" d#')).toEqual([{ line: 1, name: "ServerName", args: ["a#b", "#c", "d#"] }]);
  });

  it("splits on tabs, vertical tabs, form feeds and carriage returns but not on non-ASCII spaces", () => {
    expect(lex("A b\tc\vd\fe\rf g\u00a0h")).toEqual([
      { line: 1, name: "A", args: ["b", "c", "d", "e", "f", "g\u00a0h"] },
    ]);
  });

  it("returns nothing for empty or comment-only input", () => {
    expect(lex("")).toEqual([]);
    expect(lex("\n\n# only\n  \n")).toEqual([]);
  });

  it("handles CRLF line endings with the same line numbers", () => {
    expect(lex("# c\r\nServerName x\r\n\r\nPort 21\r\n")).toEqual([
      { line: 2, name: "ServerName", args: ["x"] },
      { line: 4, name: "Port", args: ["21"] },
    ]);
  });

  it("counts a last line that has no newline", () => {
    expect(lex("A\nB 1")).toEqual([
      { line: 1, name: "A", args: [] },
      { line: 2, name: "B", args: ["1"] },
    ]);
  });

  it("does not treat a lone carriage return as a line break", () => {
    expect(lex("A 1\rB 2\n")).toEqual([{ line: 1, name: "A", args: ["1", "B", "2"] }]);
  });
});

describe("lexConfig: backslash continuation", () => {
  it("joins the manual's ModuleOrder example into one directive on its first line", () => {
    const text = [
      "# Make this one the very first things, if you're going to use it.",
      "ModuleOrder \\",
      "  mod_core.c \\",
      "  mod_cap.c \\",
      "  mod_ls.c",
      "ServerName x",
      "",
    ].join("\n");
    expect(lex(text)).toEqual([
      { line: 2, name: "ModuleOrder", args: ["mod_core.c", "mod_cap.c", "mod_ls.c"] },
      { line: 6, name: "ServerName", args: ["x"] },
    ]);
  });

  it("removes only the backslash and newline, adding no separator", () => {
    expect(lex("Load\\\nModule mod_\\\nx.c\n")).toEqual([{ line: 1, name: "LoadModule", args: ["mod_x.c"] }]);
  });

  it("continues across CRLF line endings", () => {
    expect(lex("ModuleOrder \\\r\n  mod_core.c \\\r\n  mod_ls.c\r\nPort 21\r\n")).toEqual([
      { line: 1, name: "ModuleOrder", args: ["mod_core.c", "mod_ls.c"] },
      { line: 4, name: "Port", args: ["21"] },
    ]);
  });

  it("numbers the directive by the physical line holding its first character", () => {
    expect(lex("   \\\n\\\n  LoadModule \\\n mod_x.c\nPort 21\n")).toEqual([
      { line: 3, name: "LoadModule", args: ["mod_x.c"] },
      { line: 5, name: "Port", args: ["21"] },
    ]);
  });

  it("drops a continued comment line inside a continuation (pr_fsio_getline)", () => {
    expect(lex("ModuleOrder \\\n#  mod_cap.c \\\n  mod_ls.c\n")).toEqual([
      { line: 1, name: "ModuleOrder", args: ["mod_ls.c"] },
    ]);
  });

  it("does not let a comment ending in a backslash swallow the next line", () => {
    expect(lex("# disabled: \\\nLoadModule mod_x.c\n")).toEqual([{ line: 2, name: "LoadModule", args: ["mod_x.c"] }]);
  });

  it("ends the directive at an uncontinued comment line inside a continuation", () => {
    expect(lex("ModuleOrder \\\n# note\nmod_ls.c\n")).toEqual([
      { line: 1, name: "ModuleOrder", args: [] },
      { line: 3, name: "mod_ls.c", args: [] },
    ]);
  });

  it("keeps the backslash of a last line without newline", () => {
    expect(lex("Port 21\nA b \\")).toEqual([
      { line: 1, name: "Port", args: ["21"] },
      { line: 2, name: "A", args: ["b", "\\"] },
    ]);
  });

  it("ends a continuation at the end of the file", () => {
    expect(lex("A b \\\n")).toEqual([{ line: 1, name: "A", args: ["b"] }]);
    expect(lex("A b \\\n\\\n")).toEqual([{ line: 1, name: "A", args: ["b"] }]);
  });

  it("continues only on a backslash that is the last character", () => {
    expect(lex("A b\\ \nB\n")).toEqual([
      { line: 1, name: "A", args: ["b\\"] },
      { line: 2, name: "B", args: [] },
    ]);
  });

  it("continues a quoted word onto the next line", () => {
    expect(lex('ServerName "dso \\\nref"\n')).toEqual([{ line: 1, name: "ServerName", args: ["dso ref"] }]);
  });
});

describe("lexConfig: quoting", () => {
  it("groups a double-quoted word containing spaces", () => {
    expect(lex('ServerName "dso ref"  "" x')).toEqual([{ line: 1, name: "ServerName", args: ["dso ref", "", "x"] }]);
  });

  it("reads \\x inside quotes as x", () => {
    expect(lex(String.raw`A "say \"hi\"" "c:\\dir" "\n\t"`)).toEqual([
      { line: 1, name: "A", args: ['say "hi"', "c:\\dir", "nt"] },
    ]);
  });

  it("keeps backslashes and quotes outside a leading quote literally", () => {
    expect(lex(String.raw`A c:\dir\ b"c" d"`)).toEqual([{ line: 1, name: "A", args: ["c:\\dir\\", 'b"c"', 'd"'] }]);
  });

  it("ends a quoted word at its closing quote even without a following space", () => {
    expect(lex('A "a b"c "d"')).toEqual([{ line: 1, name: "A", args: ["a b", "c", "d"] }]);
  });

  it("refuses an unterminated quote, which proftpd silently runs to the end of the line", () => {
    const err = lexError('Port 21\nServerName "dso ref\nPort 21\n');
    expect(err.proftpdText()).toBe("ServerName: unterminated quoted string on line 2 of '/etc/dsod.conf'");
    expect(err.directive).toBe("ServerName");
    expect(err.code).toBe(ErrorCodes.CONFIG);
  });

  it("counts a quote escaped at the end of the line as unterminated", () => {
    expect(lexError('A "abc\\"').message).toBe("A: unterminated quoted string");
    expect(lexError('A "abc\\').message).toBe("A: unterminated quoted string");
  });

  it("names no directive when the name itself is the unterminated word", () => {
    const err = lexError('\n"Server Name x');
    expect(err.proftpdText()).toBe("unterminated quoted string on line 2 of '/etc/dsod.conf'");
    expect(err.directive).toBeUndefined();
  });

  it("reports an unterminated quote on the line the directive starts, across continuations", () => {
    expect(lexError('\nA b \\\n  "c d\n').proftpdText()).toBe(
      "A: unterminated quoted string on line 2 of '/etc/dsod.conf'",
    );
  });

  it("does not take a quote inside a word, an escaped quote inside quotes or a comment for an unterminated one", () => {
    expect(lex('A b"c "x\\"y" # "z')).toEqual([{ line: 1, name: "A", args: ['b"c', 'x"y'] }]);
    expect(lex('# ServerName "x\nA "" ""')).toEqual([{ line: 2, name: "A", args: ["", ""] }]);
  });

  it("allows a quoted directive name", () => {
    expect(lex('"Server Name" x')).toEqual([{ line: 1, name: "Server Name", args: ["x"] }]);
  });
});

describe("lexConfig: %{env:NAME}", () => {
  const env = { MODS: "/opt/mods", NAME: "dso ref", EMPTY: "", DIRECTIVE: "LoadModule", TAG: "<IfModule" };

  it("replaces a variable by its value, anywhere in a word, several times", () => {
    expect(lex("ModulePath %{env:MODS}/x %{env:MODS}%{env:MODS} a%{env:MODS}b", env)).toEqual([
      { line: 1, name: "ModulePath", args: ["/opt/mods/x", "/opt/mods/opt/mods", "a/opt/modsb"] },
    ]);
  });

  it("keeps a value with spaces as one word, since expansion follows word splitting", () => {
    expect(lex('ServerName %{env:NAME} "%{env:NAME}!"', env)).toEqual([
      { line: 1, name: "ServerName", args: ["dso ref", "dso ref!"] },
    ]);
  });

  it("replaces an unset or empty variable by nothing and keeps the (empty) word", () => {
    expect(lex("LoadModule %{env:UNSET} x%{env:EMPTY}y %{env:GONE}", { ...env, GONE: undefined })).toEqual([
      { line: 1, name: "LoadModule", args: ["", "xy", ""] },
    ]);
  });

  it("ignores inherited object properties", () => {
    expect(lex("A %{env:constructor} %{env:toString}", env)).toEqual([{ line: 1, name: "A", args: ["", ""] }]);
  });

  it("leaves the bare word %{env:} and a marker without } as written, but expands an empty name in a longer word", () => {
    expect(lex("A %{env:} %{env:MODS %{env:}x", env)).toEqual([
      { line: 1, name: "A", args: ["%{env:}", "%{env:MODS", "x"] },
    ]);
  });

  it("does not rescan substituted values", () => {
    expect(lex("A %{env:SELF} %{env:NEST}", { SELF: "%{env:SELF}", NEST: "%{env:MODS}", MODS: "m" })).toEqual([
      { line: 1, name: "A", args: ["%{env:SELF}", "%{env:MODS}"] },
    ]);
  });

  it("expands the directive name and then recognises section tags", () => {
    expect(lex("%{env:DIRECTIVE} mod_x.c\n%{env:TAG} mod_y.c>\n", env)).toEqual([
      { line: 1, name: "LoadModule", args: ["mod_x.c"] },
      { line: 2, name: "<IfModule", args: ["mod_y.c"] },
    ]);
  });

  it("rejects expansion beyond MAX_ENV_EXPANSION characters", () => {
    const big = "x".repeat(MAX_ENV_EXPANSION / 4 + 1);
    const err = lexError("Port 21\nA %{env:BIG} %{env:BIG}\nB %{env:BIG}%{env:BIG}\n", { BIG: big });
    expect(err.message).toBe(`environment variable expansion exceeds ${MAX_ENV_EXPANSION} characters`);
    expect(err.line).toBe(3);
  });
});

describe("lexConfig: section tags", () => {
  it("strips the > of an opening tag into name <Name and its arguments", () => {
    expect(lex("<IfModule !mod_x.c>\n</IfModule>\n<VirtualHost 127.0.0.1 ::1>\n</VirtualHost>\n")).toEqual([
      { line: 1, name: "<IfModule", args: ["!mod_x.c"] },
      { line: 2, name: "</IfModule>", args: [] },
      { line: 3, name: "<VirtualHost", args: ["127.0.0.1", "::1"] },
      { line: 4, name: "</VirtualHost>", args: [] },
    ]);
  });

  it("lexes an opening tag without arguments", () => {
    expect(lex("  <Global>\n  </Global>\n")).toEqual([
      { line: 1, name: "<Global", args: [] },
      { line: 2, name: "</Global>", args: [] },
    ]);
  });

  it("drops a separate > word and keeps a > in the middle", () => {
    expect(lex("<IfModule mod_x.c >\n<Global >\n<A b>c d>\n")).toEqual([
      { line: 1, name: "<IfModule", args: ["mod_x.c"] },
      { line: 2, name: "<Global", args: [] },
      { line: 3, name: "<A", args: ["b>c", "d"] },
    ]);
  });

  it("accepts a tag already closed before its arguments, as proftpd does", () => {
    expect(lex("<IfModule> mod_x.c\n<IfModule> mod_y.c>\n")).toEqual([
      { line: 1, name: "<IfModule", args: ["mod_x.c"] },
      { line: 2, name: "<IfModule", args: ["mod_y.c"] },
    ]);
  });

  it("keeps arguments of a closing tag", () => {
    expect(lex("</IfModule foo>\n")).toEqual([{ line: 1, name: "</IfModule>", args: ["foo"] }]);
  });

  it("takes a quoted argument followed by >", () => {
    expect(lex('<IfModule "mod x.c">\n')).toEqual([{ line: 1, name: "<IfModule", args: ["mod x.c"] }]);
  });

  it("keeps a comment after the tag out of the arguments", () => {
    expect(lex("<IfModule mod_x.c> # optional\n")).toEqual([{ line: 1, name: "<IfModule", args: ["mod_x.c"] }]);
  });

  it("numbers a continued tag by its first line", () => {
    expect(lex("Port 21\n<IfModule \\\n  mod_x.c>\n")).toEqual([
      { line: 1, name: "Port", args: ["21"] },
      { line: 2, name: "<IfModule", args: ["mod_x.c"] },
    ]);
  });
});

describe("lexConfig: errors", () => {
  it("reports an opening tag without > as proftpd's unknown directive", () => {
    const err = lexError("Port 21\n\n<IfModule mod_x.c\nLoadModule mod_x.c\n</IfModule>\n");
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(DsoError);
    expect(err.code).toBe(ErrorCodes.CONFIG);
    expect(err.errno).toBeUndefined();
    expect(err.message).toBe("unknown configuration directive '<IfModule'");
    expect(err.file).toBe(FILE);
    expect(err.line).toBe(3);
    expect(err.directive).toBe("<IfModule");
    expect(err.proftpdText()).toBe("unknown configuration directive '<IfModule' on line 3 of '/etc/dsod.conf'");
  });

  it("reports a bare tag and a closing tag without >", () => {
    expect(lexError("<Global\n").proftpdText()).toBe(
      "unknown configuration directive '<Global' on line 1 of '/etc/dsod.conf'",
    );
    expect(lexError("A\n</IfModule x\n").proftpdText()).toBe(
      "unknown configuration directive '</IfModule' on line 2 of '/etc/dsod.conf'",
    );
    expect(lexError("<\n").message).toBe("unknown configuration directive '<'");
  });

  it("reports the first line of a continued malformed tag", () => {
    expect(lexError("A\r\n<VirtualHost \\\r\n 127.0.0.1\r\n").line).toBe(2);
  });
});

describe("ConfigError", () => {
  it("carries file, line, directive and the DsoError options", () => {
    const cause = new Error("stat failed");
    const err = new ConfigError("ModulePath: must be an absolute path", "/w/d1.conf", 14, {
      cause,
      errno: Errno.ENOENT,
      details: ["extra"],
      directive: "ModulePath",
    });
    expect(err.name).toBe("ConfigError");
    expect(err.code).toBe("DSO_ERR_CONFIG");
    expect(err.cause).toBe(cause);
    expect(err.errno).toBe("No such file or directory");
    expect(err.lines).toEqual(["extra"]);
    expect(err.directive).toBe("ModulePath");
    expect(err.proftpdText()).toBe("ModulePath: must be an absolute path on line 14 of '/w/d1.conf'");
  });

  it("has no directive unless given one", () => {
    expect(new ConfigError("x", "f", 1).directive).toBeUndefined();
  });
});

describe("lexConfig: robustness", () => {
  /** A small deterministic generator (mulberry32) so failures reproduce. */
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it("only ever throws ConfigError and numbers lines within the input", () => {
    const alphabet = ["<", ">", "/", '"', "\\", "#", " ", "\t", "\r", "\n", "%{env:", "}", "A", "x", "é", "\0"];
    const next = rng(1);
    const env = { A: "<", x: '"\\\n', "A}": "#" };
    let errors = 0;
    for (let round = 0; round < 3000; round++) {
      const length = Math.floor(next() * 40);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)] ?? "";
      const physicalLines = text.split("\n").length;
      try {
        for (const line of lexConfig(text, FILE, env)) {
          expect(line.line).toBeGreaterThanOrEqual(1);
          expect(line.line).toBeLessThanOrEqual(physicalLines);
        }
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
  });

  // Sizes a quadratic lexer could not get through before the test's timeout (4e10 steps for the first).
  it("lexes 200,000 continued lines and a 1 MB quoted word", () => {
    const lines = 200_000;
    const continued = `ModuleOrder${" \\\n m.c".repeat(lines)}\n`;
    const [directive] = lexConfig(continued, FILE, {});
    expect(directive?.args.length).toBe(lines);
    const longWord = `A "${"\\x".repeat(500_000)}"`;
    expect(lexConfig(longWord, FILE, {})[0]?.args[0]?.length).toBe(500_000);
  });
});
