/**
 * The addons' list is one fact in three places: binding.gyp's targets, the
 * scripts that build them (scripts/native-addons.mjs) and package.json's
 * `files`, which must ship their sources so that an install can build them.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT as ROOT } from "../../helpers/paths.js";

interface Target {
  readonly target_name: string;
  readonly sources: readonly string[];
}

const { ADDONS, ADDON_SOURCES } = (await import(path.join(ROOT, "scripts", "native-addons.mjs"))) as {
  ADDONS: readonly string[];
  ADDON_SOURCES: Readonly<Record<string, string>>;
};
const targets = (JSON.parse(readFileSync(path.join(ROOT, "binding.gyp"), "utf8")) as { targets: Target[] }).targets;
const files = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { files: string[] }).files;

describe("the native addons", () => {
  it("are binding.gyp's targets, each with its sources in the folder the scripts name", () => {
    expect(targets.map((t) => t.target_name).sort()).toEqual([...ADDONS].sort());
    for (const target of targets) {
      const folder = ADDON_SOURCES[target.target_name];
      for (const source of target.sources) expect(path.dirname(source)).toBe(folder);
    }
  });

  it("ship their sources and binding.gyp in the package", () => {
    expect(files).toContain("binding.gyp");
    for (const folder of Object.values(ADDON_SOURCES)) expect(files).toContain(folder);
  });
});
