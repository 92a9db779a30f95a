/**
 * mod_facts.c's MLSD, MLST, MFMT and OPTS MLST over a real directory,
 * through dispatch, with the exact fact lines.
 */
import { lstatSync, statSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { timeVal } from "../../../host/fs/facts.js";
import { fileSession, GID, UID } from "./file-session.js";
import type { FileSession } from "./file-session.js";

let t: FileSession;

beforeEach(async () => {
  t = await fileSession();
});

afterEach(async () => {
  await t.close();
});

function hex(value: number): string {
  return value.toString(16).toUpperCase();
}

/**
 * The facts of `rel` (below the root) as mod_facts.c writes them by default;
 * `perm`, `type` and the shown `name` are the test's to state.
 */
function facts(rel: string, type: string, perm: string, name: string): string {
  const host = path.join(t.root, rel);
  const own = lstatSync(host);
  const target = statSync(host);
  const size = own.isDirectory() ? "" : `size=${own.size};`;
  return (
    `modify=${timeVal(own.mtimeMs)};perm=${perm};${size}type=${type};unique=${hex(target.dev)}U${hex(target.ino)};` +
    `UNIX.group=${own.gid};UNIX.groupname=staff;UNIX.mode=0${(own.mode & 0o7777).toString(8)};UNIX.owner=${own.uid};` +
    `UNIX.ownername=alice; ${name}`
  );
}

function listed(): string[] {
  const last = t.sent.at(-1);
  if (last === undefined) throw new Error("nothing was sent");
  return last.text.slice(0, -2).split("\r\n");
}

describe("MLSD", () => {
  it("describes . (cdir), .. (pdir) and every entry it can, dotfiles included, symlinks as such", async () => {
    expect(await t.send("MLSD")).toEqual(["226 Transfer complete"]);
    expect(t.sent[0]).toMatchObject({ what: "MLSD", ascii: false });
    expect(listed()).toEqual([
      facts(".", "cdir", "flcdmpe", "."),
      facts(".", "pdir", "flcdmpe", ".."),
      facts(".hidden", "file", "adfrw", ".hidden"),
      facts("file.txt", "file", "adfrw", "file.txt"),
      facts("ln", "OS.unix=symlink", "adfrw", "ln"),
      facts("run.sh", "file", "adfrw", "run.sh"),
      facts("sub", "dir", "flcdmpe", "sub"),
      facts("subl", "OS.unix=symlink", "adfrw", "subl"),
    ]);
    expect(listed()[2]).toContain(`UNIX.group=${GID};UNIX.groupname=staff;UNIX.mode=0600;UNIX.owner=${UID};`);
    expect(listed()[6]).toMatch(/^modify=20230105183000;perm=flcdmpe;type=dir;/);
  });

  it("lists a named directory, as its entries' names", async () => {
    t.session.transferType = "A";
    await t.send("MLSD subl");
    expect(t.sent[0]).toMatchObject({ what: "MLSD", ascii: true });
    expect(listed()).toEqual([
      facts("sub", "cdir", "flcdmpe", "."),
      facts(".", "pdir", "flcdmpe", ".."),
      facts("sub/inner.txt", "file", "adfrw", "inner.txt"),
    ]);
    expect(t.paths).toEqual(["/subl"]);
  });

  it("refuses what is not a directory, or not there", async () => {
    expect(await t.send("MLSD file.txt")).toEqual(["550 'file.txt' is not a directory"]);
    expect(await t.send("MLSD nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("MLSD out")).toEqual(["550 out: No such file or directory"]);
    expect(t.sent).toEqual([]);
  });
});

describe("MLST", () => {
  it("describes one path on the control connection, by its full path", async () => {
    expect(await t.send("MLST file.txt")).toEqual([
      "250-Start of list for file.txt",
      ` ${facts("file.txt", "file", "adfrw", "/file.txt")}`,
      "250 End of list",
    ]);
    expect(await t.send("MLST")).toEqual([
      "250-Start of list for /",
      ` ${facts(".", "dir", "flcdmpe", "/")}`,
      "250 End of list",
    ]);
    await t.send("CWD sub");
    expect(await t.send("MLST ../sub/./inner.txt")).toEqual([
      "250-Start of list for ../sub/./inner.txt",
      ` ${facts("sub/inner.txt", "file", "adfrw", "/sub/inner.txt")}`,
      "250 End of list",
    ]);
  });

  it("types a symlink by its target, as ShowSymlinks is not set for MLST", async () => {
    expect(await t.send("MLST ln")).toEqual([
      "250-Start of list for ln",
      ` ${facts("ln", "file", "adfrw", "/ln")}`,
      "250 End of list",
    ]);
    expect(await t.send("MLST subl")).toEqual([
      "250-Start of list for subl",
      ` ${facts("subl", "dir", "adfrw", "/subl")}`,
      "250 End of list",
    ]);
  });

  it("cannot list what is not there or leads out", async () => {
    expect(await t.send("MLST nothere")).toEqual(["550 'nothere' cannot be listed"]);
    expect(await t.send("MLST dangling")).toEqual(["550 'dangling' cannot be listed"]);
    expect(await t.send("MLST out")).toEqual(["550 'out' cannot be listed"]);
  });

  it("shows only the facts OPTS MLST selected, for this session", async () => {
    expect(await t.send("OPTS MLST type;size;")).toEqual(["200 MLST OPTS type;size;"]);
    expect(await t.send("MLST file.txt")).toEqual([
      "250-Start of list for file.txt",
      " size=5;type=file; /file.txt",
      "250 End of list",
    ]);
    expect(await t.send("OPTS MLST")).toEqual(["200 MLST OPTS"]);
    expect(await t.send("MLST file.txt")).toEqual(["250-Start of list for file.txt", "  /file.txt", "250 End of list"]);
    expect(await t.send("OPTS MLST a; b;")).toEqual(["501 'OPTS MLST' not understood"]);
  });
});

describe("MFMT", () => {
  it("sets the modification time and says which", async () => {
    expect(await t.send("MFMT 20200102030405 file.txt")).toEqual(["213 Modify=20200102030405; file.txt"]);
    expect(statSync(path.join(t.root, "file.txt")).mtimeMs).toBe(Date.UTC(2020, 0, 2, 3, 4, 5));
    expect(await t.send("MFMT 20210102030405.999 sub/inner.txt")).toEqual(["213 Modify=20210102030405; sub/inner.txt"]);
    expect(statSync(path.join(t.root, "sub", "inner.txt")).mtimeMs).toBe(Date.UTC(2021, 0, 2, 3, 4, 5));
    expect(t.paths).toEqual(["/file.txt", "/sub/inner.txt"]);
  });

  it("refuses bad timestamps with 501, missing files and ways out with 550", async () => {
    expect(await t.send("MFMT 2020 file.txt")).toEqual(["501 2020: Invalid argument"]);
    expect(await t.send("MFMT 19000101000000 file.txt")).toEqual(["501 file.txt: Invalid argument"]);
    expect(await t.send("MFMT 20200102030405 nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("MFMT 20200102030405 out/secret.txt")).toEqual([
      "550 out/secret.txt: No such file or directory",
    ]);
    expect(await t.send("MFMT 20200102030405")).toEqual(["501 Invalid number of parameters"]);
    expect(statSync(path.join(t.outside, "secret.txt")).mtimeMs).not.toBe(Date.UTC(2020, 0, 2, 3, 4, 5));
  });
});

describe("FEAT", () => {
  it("lists what mod_core.c and mod_facts.c provide, sorted", async () => {
    expect(await t.send("FEAT")).toEqual([
      "211-Features:",
      " EPRT",
      " EPSV",
      " MDTM",
      " MFMT",
      " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;",
      " SIZE",
      " TVFS",
      " UTF8",
      "211 End",
    ]);
  });
});
