import { describe, expect, it } from "vitest";
import { formatSuggestions, suggestDirectives } from "../../../host/config/suggest.js";

const KNOWN = [
  "LoadFile",
  "LoadModule",
  "ModuleControlsACLs",
  "ModuleOrder",
  "ModulePath",
  "ServerName",
  "ServerType",
  "<IfModule>",
  "Include",
  "Port",
  "User",
  "Group",
  "PidFile",
];

describe("suggestDirectives", () => {
  it("suggests LoadModule for LoadModul (observed with proftpd 1.3.8)", () => {
    expect(suggestDirectives("LoadModul", KNOWN)).toEqual(["LoadModule"]);
  });

  it("ignores ASCII case in both prefix matches and distances", () => {
    expect(suggestDirectives("loadmodul", KNOWN)).toEqual(["LoadModule"]);
    expect(suggestDirectives("SERVRNAME", KNOWN)).toEqual(["ServerName"]);
  });

  it("puts prefix matches first, then orders by distance plus one, up to 7", () => {
    // "modulep" (the name minus its last two bytes) to "<ifmodule>" costs 3 inserts and
    // one substitution (5), to "moduleorder" one substitution and 4 inserts (6).
    expect(suggestDirectives("Modulepat", KNOWN)).toEqual(["ModulePath", "<IfModule>", "ModuleOrder"]);
  });

  it("orders equal scores case-insensitively by bytes", () => {
    // The candidates and scores from proftpd's tests/api/str.c similars_test:
    // fools and FOO are prefix matches (0), odd and bar score 5.
    expect(suggestDirectives("foo", ["fools", "odd", "bar", "FOO"])).toEqual(["FOO", "fools", "bar", "odd"]);
  });

  it("measures the distance without the typed name's last two bytes, as proftpd's does", () => {
    // "Po" leaves an empty string, so each candidate scores its length plus one.
    expect(suggestDirectives("Po", KNOWN)).toEqual(["Port", "User", "Group"]);
    // A wrong last or second-to-last character therefore costs nothing.
    expect(suggestDirectives("LoadModuXY", KNOWN)).toEqual(["LoadModule"]);
  });

  it("scores every candidate 1 for names shorter than two bytes, showing four", () => {
    expect(suggestDirectives("X", KNOWN)).toEqual(["<IfModule>", "Group", "Include", "LoadFile"]);
    expect(suggestDirectives("", ["b", "a", "c", "d", "e"])).toEqual(["a", "b", "c", "d"]);
  });

  it("counts a transposition as free", () => {
    expect(suggestDirectives("ModuelPathXX", ["ModulePath", "ModuleOrder"])).toEqual(["ModulePath"]);
  });

  it("returns nothing when no candidate is close enough", () => {
    expect(suggestDirectives("FrobnicateModules", KNOWN)).toEqual([]);
    expect(suggestDirectives("LoadModul", [])).toEqual([]);
  });

  it("keeps the candidates' spelling and duplicates as given", () => {
    expect(suggestDirectives("include", ["INCLUDE", "Include"])).toEqual(["INCLUDE", "Include"]);
  });

  it("returns nothing for a huge unknown name", () => {
    expect(suggestDirectives("A".repeat(1_000_000), KNOWN)).toEqual([]);
  });
});

describe("formatSuggestions", () => {
  it("puts a single suggestion on the Did you mean line", () => {
    expect(formatSuggestions(["LoadModule"])).toEqual(["Did you mean: LoadModule"]);
  });

  it("lists several suggestions indented by two spaces under Did you mean:", () => {
    expect(formatSuggestions(["ModulePath", "<IfModule>", "ModuleOrder"])).toEqual([
      "Did you mean:",
      "  ModulePath",
      "  <IfModule>",
      "  ModuleOrder",
    ]);
  });

  it("prints nothing without suggestions", () => {
    expect(formatSuggestions([])).toEqual([]);
  });
});
