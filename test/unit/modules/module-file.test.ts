import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { fileProblem, readModuleFile, realModulePath } from "../../../host/modules/module-file.js";

let base: string;
let modules: string;
let outside: string;
const uid = process.geteuid?.() ?? 0;

beforeAll(() => {
  base = realpathSync(mkdtempSync(path.join(os.tmpdir(), "wasm-dso-file-")));
  modules = path.join(base, "modules");
  outside = path.join(base, "outside");
  mkdirSync(modules);
  mkdirSync(path.join(modules, "builds"));
  mkdirSync(outside);
  writeFileSync(path.join(modules, "mod_plain.wasm"), "plain");
  writeFileSync(path.join(modules, "builds", "mod_v2.wasm"), "v2");
  writeFileSync(path.join(outside, "mod_evil.wasm"), "evil");
  symlinkSync("builds/mod_v2.wasm", path.join(modules, "mod_inner.wasm"));
  symlinkSync(path.join(outside, "mod_evil.wasm"), path.join(modules, "mod_outer.wasm"));
  symlinkSync("nowhere.wasm", path.join(modules, "mod_dangling.wasm"));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

function read(name: string, known?: (identity: string) => boolean): { bytes: string | undefined; identity: string } {
  const file = readModuleFile(path.join(modules, name), {
    uid,
    within: realModulePath(modules),
    ...(known && { known }),
  });
  return { bytes: file.bytes === undefined ? undefined : Buffer.from(file.bytes).toString(), identity: file.identity };
}

function failure(name: string): DsoError {
  try {
    read(name);
  } catch (error) {
    if (error instanceof DsoError) return error;
    throw error;
  }
  throw new Error(`expected ${name} to be refused`);
}

describe("readModuleFile", () => {
  it("reads a file in the module path", () => {
    expect(read("mod_plain.wasm").bytes).toBe("plain");
  });

  it("does not read again a file whose identity is known, and knows it again after a write", () => {
    const { identity } = read("mod_plain.wasm");
    expect(read("mod_plain.wasm", (seen) => seen === identity).bytes).toBeUndefined();
    writeFileSync(path.join(modules, "mod_plain.wasm"), "plain, rebuilt");
    expect(read("mod_plain.wasm", (seen) => seen === identity).bytes).toBe("plain, rebuilt");
  });

  it("follows a symlink that stays inside the module path", () => {
    expect(read("mod_inner.wasm").bytes).toBe("v2");
  });

  it("refuses a symlink that leads out of the module path, naming where it leads", () => {
    const error = failure("mod_outer.wasm");
    expect(error.code).toBe(ErrorCodes.UNSAFE_FILE);
    expect(error.message).toBe(
      `'${modules}/mod_outer.wasm' leads out of the module path (to '${outside}/mod_evil.wasm')`,
    );
  });

  it("reports a missing file, and a symlink to nothing, as not found", () => {
    expect(failure("mod_missing.wasm").message).toBe(`'${modules}/mod_missing.wasm' does not exist`);
    expect(failure("mod_dangling.wasm").code).toBe(ErrorCodes.MODULE_NOT_FOUND);
  });

  it("refuses a directory in a module's place", () => {
    mkdirSync(path.join(modules, "mod_dir.wasm"), { recursive: true });
    expect(failure("mod_dir.wasm").message).toBe(`'${modules}/mod_dir.wasm' is not a regular file`);
  });
});

describe("fileProblem", () => {
  const stat = (mode: number, owner: number, isFile = true, group = 0) => ({
    mode,
    uid: owner,
    gid: group,
    isFile: () => isFile,
  });

  it("accepts a regular file not writable by others", () => {
    expect(fileProblem(stat(0o644, 0), 0)).toBeUndefined();
    expect(fileProblem(stat(0o664, 1000), 1000)).toBeUndefined();
  });

  it("refuses others' write permission, and for a root daemon a file not owned by root", () => {
    expect(fileProblem(stat(0o666, 0), 0)).toBe("is writable by others");
    expect(fileProblem(stat(0o644, 1000), 0)).toBe("is owned by uid 1000, not by root");
    expect(fileProblem(stat(0o644, 0, false), 0)).toBe("is not a regular file");
  });

  it("refuses, once dsod runs as User/Group, a file that identity owns or may write through its group", () => {
    const nobody = { user: "nobody", uid: 65534, group: "nogroup", gid: 65534 };
    const replaceable = "could be replaced by nobody, the User dsod runs as";
    expect(fileProblem(stat(0o444, 65534), 65534, nobody)).toBe(replaceable);
    expect(fileProblem(stat(0o664, 0, true, 65534), 65534, nobody)).toBe(replaceable);
    expect(fileProblem(stat(0o644, 0, true, 65534), 65534, nobody)).toBeUndefined();
    expect(fileProblem(stat(0o664, 0, true, 0), 65534, nobody)).toBeUndefined();
  });
});
