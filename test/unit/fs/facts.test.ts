/**
 * RFC 3659 facts as mod_facts.c writes them: facts_mlinfo_fmt's line,
 * facts_mlinfo_get's type and perm, the FEAT line, OPTS MLST, and MFMT's
 * timestamp reading.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_FACTS,
  factsLine,
  haveAccess,
  mlstFeature,
  optsMlst,
  parseTimeVal,
  R_OK,
  timeVal,
  W_OK,
  X_OK,
} from "../../../host/fs/facts.js";
import type { FactsIdentity } from "../../../host/fs/facts.js";
import type { FileInfo } from "../../../host/fs/session-fs.js";

const MTIME = Date.UTC(2024, 2, 5, 9, 7, 30, 750);

const alice: FactsIdentity = { uid: 1000, gid: 100, gids: [200], user: "alice", group: "users" };
const root: FactsIdentity = { uid: 0, gid: 0, gids: [], user: "root", group: "root" };

function info(overrides: Partial<FileInfo> = {}): FileInfo {
  return {
    name: "file.txt",
    type: "file",
    size: 5,
    mode: 0o100644,
    nlink: 1,
    uid: 1000,
    gid: 100,
    mtimeMs: MTIME,
    ctimeMs: MTIME,
    ino: 0x1234,
    dev: 0x801,
    ...overrides,
  };
}

const MLSD = { cdir: true, showSymlinks: true };
const MLST = { cdir: false, showSymlinks: false };

describe("the facts line", () => {
  it("writes every default fact in mod_facts.c's order, then a space and the path", () => {
    expect(factsLine({ info: info(), name: "file.txt", path: "file.txt" }, DEFAULT_FACTS, alice, MLSD)).toBe(
      "modify=20240305090730;perm=adfrw;size=5;type=file;unique=801U1234;UNIX.group=100;UNIX.groupname=users;" +
        "UNIX.mode=0644;UNIX.owner=1000;UNIX.ownername=alice; file.txt",
    );
  });

  it("gives directories no size, and cdir/pdir for . and .. in MLSD only", () => {
    const dir = info({ type: "dir", mode: 0o40755, uid: 0, gid: 0, size: 4096 });
    expect(factsLine({ info: dir, name: "sub", path: "sub" }, DEFAULT_FACTS, alice, MLSD)).toBe(
      "modify=20240305090730;perm=fle;type=dir;unique=801U1234;UNIX.group=0;UNIX.groupname=users;" +
        "UNIX.mode=0755;UNIX.owner=0;UNIX.ownername=alice; sub",
    );
    const type = (name: string, options = MLSD) =>
      /type=([^;]*);/.exec(factsLine({ info: dir, name, path: name }, DEFAULT_FACTS, alice, options))?.[1];
    expect(type(".")).toBe("cdir");
    expect(type("..")).toBe("pdir");
    expect(type(".", MLST)).toBe("dir");
  });

  it("describes a symlink by its own lstat, its target's unique and access, and its type per ShowSymlinks", () => {
    const link = info({ type: "symlink", mode: 0o120777, size: 3, ino: 0x99 });
    const target = info({ type: "dir", mode: 0o40700, uid: 1000, ino: 0x42 });
    const entry = { info: link, target, name: "ln", path: "ln" };
    expect(factsLine(entry, DEFAULT_FACTS, alice, MLSD)).toBe(
      "modify=20240305090730;perm=adfrw;size=3;type=OS.unix=symlink;unique=801U42;UNIX.group=100;UNIX.groupname=users;" +
        "UNIX.mode=0777;UNIX.owner=1000;UNIX.ownername=alice; ln",
    );
    expect(factsLine(entry, new Set(["type"]), alice, MLST)).toBe("type=dir; ln");
    expect(factsLine({ ...entry, target: info() }, new Set(["type"]), alice, MLST)).toBe("type=file; ln");
  });

  it("names the session's user and group, spaces as underscores, whoever owns the file", () => {
    const who = { ...alice, user: "Jane Doe", group: "domain users" };
    expect(
      factsLine(
        { info: info({ uid: 7, gid: 8 }), name: "f", path: "f" },
        new Set(["UNIX.ownername", "UNIX.groupname", "UNIX.owner"]),
        who,
        MLSD,
      ),
    ).toBe("UNIX.groupname=domain_users;UNIX.owner=7;UNIX.ownername=Jane_Doe; f");
  });

  it("writes the mode in octal with a leading 0, special bits included", () => {
    const mode = (value: number) =>
      factsLine({ info: info({ mode: value }), name: "f", path: "f" }, new Set(["UNIX.mode"]), alice, MLSD);
    expect(mode(0o100000)).toBe("UNIX.mode=00; f");
    expect(mode(0o104755)).toBe("UNIX.mode=04755; f");
  });

  it("shows only the selected facts", () => {
    expect(factsLine({ info: info(), name: "f", path: "/d/f" }, new Set(), alice, MLSD)).toBe(" /d/f");
    expect(factsLine({ info: info(), name: "f", path: "f" }, new Set(["size", "modify"]), alice, MLSD)).toBe(
      "modify=20240305090730;size=5; f",
    );
  });
});

describe("perm", () => {
  const perm = (file: FileInfo, who: FactsIdentity) =>
    /perm=([^;]*);/.exec(factsLine({ info: file, name: "x", path: "x" }, new Set(["perm"]), who, MLSD))?.[1];

  it("checks access as pr_fs_have_access: owner, group (primary or supplementary), other; root reads and writes all", () => {
    expect(perm(info({ mode: 0o100600, uid: 1 }), alice)).toBe("dfr");
    expect(perm(info({ mode: 0o100640, uid: 1, gid: 100 }), alice)).toBe("adfr");
    expect(perm(info({ mode: 0o100660, uid: 1, gid: 200 }), alice)).toBe("adfrw");
    expect(perm(info({ mode: 0o100602, uid: 1 }), alice)).toBe("dfrw");
    expect(perm(info({ mode: 0o100000, uid: 1 }), root)).toBe("adfrw");
    expect(perm(info({ type: "dir", mode: 0o40000, uid: 1 }), root)).toBe("flcdmp");
    expect(perm(info({ type: "dir", mode: 0o40701, uid: 1 }), root)).toBe("flcdmpe");
    expect(perm(info({ type: "dir", mode: 0o40770, uid: 1, gid: 100 }), alice)).toBe("flcdmpe");
    expect(perm(info({ type: "dir", mode: 0o40300 }), alice)).toBe("cdmpe");
  });

  it("counts the other bits even for the owner, as proftpd's mask does", () => {
    expect(haveAccess(info({ mode: 0o100004 }), R_OK, alice)).toBe(true);
    expect(haveAccess(info({ mode: 0o100400, uid: 5 }), R_OK, alice)).toBe(false);
    expect(haveAccess(info({ mode: 0o100020, uid: 5, gid: 200 }), W_OK, alice)).toBe(true);
    expect(haveAccess(info({ mode: 0o100644, uid: 0 }), X_OK, root)).toBe(false);
  });
});

describe("FEAT and OPTS MLST", () => {
  it("advertises every fact with a star when shown", () => {
    expect(mlstFeature(DEFAULT_FACTS)).toBe(
      "MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;",
    );
    expect(mlstFeature(new Set(["size", "type"]))).toBe(
      "MLST modify;perm;size*;type*;unique;UNIX.group;UNIX.groupname;UNIX.mode;UNIX.owner;UNIX.ownername;",
    );
  });

  it("selects the facts named with a `;` after them, in any case, and says which", () => {
    expect(optsMlst(["size;Type;bogus;unique"])).toEqual({
      selected: new Set(["size", "type"]),
      reply: "MLST OPTS size;type;",
    });
    expect(optsMlst(["UNIX.MODE;"])).toEqual({ selected: new Set(["UNIX.mode"]), reply: "MLST OPTS UNIX.mode;" });
    expect(optsMlst(["bogus;"])).toEqual({ selected: new Set(), reply: "MLST OPTS " });
    expect(optsMlst([])).toEqual({ selected: new Set(), reply: "MLST OPTS" });
    expect(optsMlst(["size;", "type;"])).toBeUndefined();
  });
});

describe("timestamps", () => {
  it("writes gmtime as YYYYMMDDhhmmss", () => {
    expect(timeVal(MTIME)).toBe("20240305090730");
    expect(timeVal(Date.UTC(1999, 11, 31, 23, 59, 59, 999))).toBe("19991231235959");
  });

  it("reads MFMT's timestamp field by field, with proftpd's bounds", () => {
    expect(parseTimeVal("20240305090730")).toEqual(new Date(Date.UTC(2024, 2, 5, 9, 7, 30)));
    expect(parseTimeVal("20240101240000")).toEqual(new Date(Date.UTC(2024, 0, 2)));
    expect(parseTimeVal("20240101000061")).toEqual(new Date(Date.UTC(2024, 0, 1, 0, 1, 1)));
    expect(parseTimeVal("20240231000000")).toEqual(new Date(Date.UTC(2024, 2, 2)));
    expect(parseTimeVal("19691231235959")).toBeUndefined();
    expect(parseTimeVal("20241305000000")).toBeUndefined();
    expect(parseTimeVal("20240100000000")).toBeUndefined();
    expect(parseTimeVal("20240101250000")).toBeUndefined();
    expect(parseTimeVal("20240101006100")).toBeUndefined();
    expect(parseTimeVal("20240101000062")).toBeUndefined();
    expect(parseTimeVal("2024ab01000000")).toBeUndefined();
  });
});
