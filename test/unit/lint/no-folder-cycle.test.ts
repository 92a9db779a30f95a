import path from "node:path";
import { RuleTester } from "eslint";
import { describe, expect, it } from "vitest";
import rule, { closingEdges } from "../../../eslint-rules/no-folder-cycle.js";
import { REPO_ROOT } from "../../helpers/paths.js";

RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

const TREE = path.join(REPO_ROOT, "test/fixtures/lint/folder-cycle");
const options = [{ root: path.join(TREE, "host") }];
const file = (name: string): string => path.join(TREE, "host", name);
const source = (...imports: string[]): string =>
  imports.map((from, i) => `import * as m${i} from "${from}";\n`).join("");

const tester = new RuleTester({ languageOptions: { ecmaVersion: 2023, sourceType: "module" } });

describe("no-folder-cycle", () => {
  tester.run("no-folder-cycle", rule, {
    valid: [
      // a → b is kept: the cycle a → b → c → a is blamed on its last edge by name, c → a.
      { filename: file("a/one.js"), code: source("../b/two.js"), options },
      // d → e has two imports against e → d's one: the lighter edge is blamed.
      { filename: file("d/four.js"), code: source("../e/five.js"), options },
      // The root's own files belong to no folder.
      { filename: file("index.js"), code: source("./a/one.js", "./c/three.js"), options },
      // Within a folder, and to packages: no edge.
      { filename: file("a/other.js"), code: source("./one.js", "node:fs", "eslint"), options },
      // The linted text counts, not the file on disk: without its import, c closes nothing.
      { filename: file("c/three.js"), code: "export const c = 1;\n", options },
    ],
    invalid: [
      {
        filename: file("c/three.js"),
        code: source("../a/one.js"),
        options,
        errors: [{ message: "Import from a/ closes a folder cycle: c → a → b → c.", line: 1, column: 21 }],
      },
      {
        filename: file("e/five.js"),
        code: source("../d/four.js"),
        options,
        errors: [{ message: "Import from d/ closes a folder cycle: e → d → e." }],
      },
      {
        // A new import in the edited file (a re-export): b → a now closes a → b → a.
        filename: file("b/two.js"),
        code: `${source("../c/three.js")}export { a } from "../a/one.js";\n`,
        options,
        errors: [{ message: "Import from a/ closes a folder cycle: b → a → b.", line: 2 }],
      },
      {
        filename: file("b/two.js"),
        code: `${source("../c/three.js")}await import("../a/one.js");\n`,
        options,
        errors: [{ message: "Import from a/ closes a folder cycle: b → a → b.", line: 2 }],
      },
    ],
  });

  it("keeps the heavier edges and blames the lightest edge of each cycle", () => {
    const closing = closingEdges([
      { from: "daemon", to: "controls", count: 3 },
      { from: "controls", to: "daemon", count: 1 },
      { from: "controls", to: "system", count: 3 },
      { from: "system", to: "controls", count: 1 },
      { from: "daemon", to: "system", count: 9 },
    ]);
    expect([...closing]).toEqual([
      ["controls\0daemon", ["controls", "daemon", "controls"]],
      ["system\0controls", ["system", "controls", "system"]],
    ]);
    expect(closingEdges([{ from: "a", to: "b", count: 1 }]).size).toBe(0);
  });
});
