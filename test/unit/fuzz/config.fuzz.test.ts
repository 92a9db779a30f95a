import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigRunner } from "../../../host/config/config-runner.js";
import { ConfigError } from "../../../host/config/lexer.js";
import type { EngineModule } from "../../../host/modules/module-api.js";
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, report } from "./fuzz-settings.js";

/** Pieces of proftpd.conf syntax, assembled at random into whole files. */
const token = fc.constantFrom(
  "ServerName",
  "LoadModule",
  "Include",
  "<IfModule",
  "<IfModule !mod_a.c>",
  "</IfModule>",
  "<VirtualHost x>",
  "</VirtualHost>",
  "mod_a.c",
  '"quoted words"',
  '"unterminated',
  "\\",
  "\\\n",
  "#",
  "%{env:HOME}",
  "%{env:",
  ">",
  "<",
  " ",
  "\t",
  "\n",
  "\r\n",
  "\0",
  "é",
  "x".repeat(50),
);
const configText = fc.array(token, { maxLength: 60 }).map((parts) => parts.join(""));

/** A module with a few directives that accept anything, and one that refuses. */
const module: EngineModule = {
  name: "mod_a.c",
  kind: "static",
  commands: [],
  siteCommands: [],
  features: [],
  help: [],
  directives: [
    { name: "ServerName", run: () => {} },
    { name: "LoadModule", run: () => {} },
    {
      name: "Refuse",
      run: () => {
        throw new ConfigError("refused", "x", 1);
      },
    },
  ],
};

describe("fuzz: the config parser", () => {
  it(
    "runs a config or throws a ConfigError naming file and line, and nothing else",
    () => {
      let inputs = 0;
      let crashes = 0;
      const property = fc.property(configText, fc.array(configText, { maxLength: 2 }), (main, included) => {
        inputs++;
        const files = new Map<string, string>([
          ["/main.conf", main],
          ...included.map((text, i) => [`/inc${i}.conf`, text] as [string, string]),
        ]);
        const runner = new ConfigRunner({
          source: {
            read: (file) => {
              const text = files.get(file);
              if (text === undefined) throw Object.assign(new Error("missing"), { code: "ENOENT" });
              return text;
            },
            expand: (pattern) => [pattern],
          },
          env: { HOME: "/root" },
          modules: () => [module],
          isLoaded: (name) => name === "mod_a.c",
          log: () => {},
        });
        try {
          runner.run("/main.conf");
        } catch (error) {
          if (!(error instanceof ConfigError) || error.line < 0) {
            crashes++;
            return false;
          }
        }
        return true;
      });
      try {
        fc.assert(property, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED });
      } finally {
        report("config", inputs, crashes);
      }
      expect(crashes).toBe(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
