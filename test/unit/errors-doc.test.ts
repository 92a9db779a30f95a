// fastify's test/internals/errors.test.js, for our codes: every code in
// ErrorCodes is documented in docs/errors.md with the errno it carries, the
// doc lists no code that does not exist, and every code is asserted by a test.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ERRNO_OF_CODE, ErrorCodes } from "../../host/errors.js";
import { DOCS_DIR, REPO_ROOT } from "../helpers/paths.js";

interface Row {
  readonly code: string;
  readonly errno: string;
  readonly meaning: string;
  readonly whatToDo: string;
}

/** The rows of the `| Code | errno | Meaning | What to do |` table. */
function documentedRows(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const header = lines.findIndex((l) => /^\|\s*Code\s*\|\s*errno\s*\|\s*Meaning\s*\|\s*What to do\s*\|\s*$/.test(l));
  if (header < 0) throw new Error("docs/errors.md has no | Code | errno | Meaning | What to do | table");
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    // Cells may contain `\|`-free inline code only; split on the column bars.
    const cells = line
      .slice(1, line.endsWith("|") ? -1 : undefined)
      .split("|")
      .map((c) => c.trim());
    const [code = "", errno = "", meaning = "", whatToDo = ""] = cells;
    rows.push({ code: code.replace(/^`(.*)`$/, "$1"), errno, meaning, whatToDo });
  }
  return rows;
}

const markdown = readFileSync(path.join(DOCS_DIR, "errors.md"), "utf8");
const rows = documentedRows(markdown);
const codes: readonly string[] = Object.values(ErrorCodes);

describe("docs/errors.md", () => {
  it("has a table separator under its header", () => {
    expect(markdown).toMatch(/\| Code \| errno \| Meaning \| What to do \|\n\| --- \| --- \| --- \| --- \|\n/);
  });

  it("documents every error code", () => {
    const documented = new Set(rows.map((r) => r.code));
    expect(codes.filter((c) => !documented.has(c))).toEqual([]);
  });

  it("documents no code that does not exist", () => {
    expect(rows.map((r) => r.code).filter((c) => !codes.includes(c))).toEqual([]);
  });

  it("has exactly one row per code", () => {
    expect(rows.map((r) => r.code).sort()).toEqual([...codes].sort());
  });

  it("says what each code means and what to do, in four columns", () => {
    for (const row of rows) {
      expect(row.meaning, row.code).not.toBe("");
      expect(row.whatToDo, row.code).not.toBe("");
    }
    expect(rows.every((r) => markdown.includes(`| \`${r.code}\` | ${r.errno} | ${r.meaning} | ${r.whatToDo} |`))).toBe(
      true,
    );
  });

  it("gives each code the errno it carries (ERRNO_OF_CODE), or none", () => {
    // `ENOENT`, or — (with an aside after it for a code that sets one only sometimes).
    const documented = rows.map((r) => [
      r.code,
      /^`(E[A-Z]+)`$/.exec(r.errno)?.[1] ?? (r.errno.startsWith("—") ? undefined : r.errno),
    ]);
    const actual = codes.map((code) => [code, ERRNO_OF_CODE[code as keyof typeof ERRNO_OF_CODE]]);
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(actual));
  });

  it("has every code asserted by a test other than this one", () => {
    const testDir = path.join(REPO_ROOT, "test");
    const sources = (readdirSync(testDir, { recursive: true }) as string[])
      .filter((file) => file.endsWith(".ts") && !file.endsWith("errors-doc.test.ts"))
      .map((file) => readFileSync(path.join(testDir, file), "utf8"))
      .join("\n");
    const keys = Object.entries(ErrorCodes);
    const unasserted = keys
      .filter(([key, code]) => !sources.includes(`ErrorCodes.${key}`) && !sources.includes(code))
      .map(([, code]) => code);
    expect(unasserted).toEqual([]);
  });
});
