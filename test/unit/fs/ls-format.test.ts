/**
 * mod_ls.c's listing format and option parsing, exactly: listfile()'s
 * `%s %3d %-8s %-8s %s %s %2d %s %s` line, parse_list_opts(), the dotfile and
 * unsafe-symlink rules, outputfiles()'s sorting, glob(3) matching.
 */
import { describe, expect, it } from "vitest";
import {
  byteOrder,
  cleanPath,
  dateColumns,
  globMatch,
  hiddenByDot,
  joinName,
  listLine,
  modeString,
  NO_FLAGS,
  NUMERIC_OWNERS,
  parseListOptions,
  sizeColumn,
  skipFirstOptionWord,
  sortForOutput,
  unsafeSymlink,
} from "../../../host/fs/ls-format.js";
import type { ListEntry, ListFlags, OwnerNames } from "../../../host/fs/ls-format.js";
import type { FileInfo } from "../../../host/fs/session-fs.js";

const NOW = Date.UTC(2024, 5, 15, 12, 0, 0);
const RECENT = Date.UTC(2024, 2, 5, 9, 7, 30);
const OLD = Date.UTC(2023, 0, 5, 18, 30, 0);

const owners: OwnerNames = {
  userName: (uid) => (uid === 1000 ? "alice" : uid === 1001 ? "averyverylongname" : String(uid)),
  groupName: (gid) => (gid === 100 ? "users" : String(gid)),
};

function info(overrides: Partial<FileInfo> = {}): FileInfo {
  return {
    name: "file.txt",
    type: "file",
    size: 5,
    mode: 0o100644,
    nlink: 1,
    uid: 1000,
    gid: 100,
    mtimeMs: RECENT,
    ctimeMs: RECENT,
    ino: 1,
    dev: 1,
    ...overrides,
  };
}

const LONG: ListFlags = { ...NO_FLAGS, long: true };

function line(entry: ListEntry, flags: ListFlags = LONG): string | undefined {
  return listLine(entry, flags, owners, NOW);
}

describe("the long format", () => {
  it("writes mode, links, owner, group, size, date and name in listfile's columns", () => {
    expect(line({ name: "file.txt", info: info() })).toBe(
      "-rw-r--r--   1 alice    users           5 Mar  5 09:07 file.txt",
    );
    expect(line({ name: "sub", info: info({ type: "dir", mode: 0o40755, nlink: 12, size: 4096, mtimeMs: OLD }) })).toBe(
      "drwxr-xr-x  12 alice    users        4096 Jan  5  2023 sub",
    );
    expect(line({ name: "big", info: info({ uid: 1001, gid: 5, size: 123456789012 }) })).toBe(
      "-rw-r--r--   1 averyverylongname 5        123456789012 Mar  5 09:07 big",
    );
  });

  it("shows a symlink's target after an arrow", () => {
    expect(line({ name: "ln", info: info({ type: "symlink", mode: 0o120777, size: 8, linkTarget: "file.txt" }) })).toBe(
      "lrwxrwxrwx   1 alice    users           8 Mar  5 09:07 ln -> file.txt",
    );
  });

  it("shows ids under -n, whatever the names", () => {
    expect(listLine({ name: "f", info: info() }, { ...LONG, numeric: true }, owners, NOW)).toBe(
      "-rw-r--r--   1 1000     100             5 Mar  5 09:07 f",
    );
    expect(listLine({ name: "f", info: info({ uid: 7 }) }, LONG, NUMERIC_OWNERS, NOW)).toBe(
      "-rw-r--r--   1 7        100             5 Mar  5 09:07 f",
    );
  });

  it("adds -F's suffix: / for directories, * for executables, a symlink's by its target", () => {
    const classify = { ...LONG, classify: true };
    expect(line({ name: "sub", info: info({ type: "dir", mode: 0o40755 }) }, classify)).toMatch(/ sub\/$/);
    expect(line({ name: "run", info: info({ mode: 0o100750 }) }, classify)).toMatch(/ run\*$/);
    const link = info({ type: "symlink", mode: 0o120777, linkTarget: "sub" });
    expect(line({ name: "ln", info: link, target: info({ type: "dir", mode: 0o40755 }) }, classify)).toMatch(
      / ln -> sub\/$/,
    );
    expect(line({ name: "ln", info: link }, classify)).toMatch(/ ln -> sub$/);
    expect(line({ name: "ln", info: link }, { ...NO_FLAGS, classify: true })).toBe("ln@");
  });

  it("lists names alone without -l, files, directories and symlinks only", () => {
    expect(line({ name: "file.txt", info: info() }, NO_FLAGS)).toBe("file.txt");
    expect(line({ name: "fifo", info: info({ type: "other", mode: 0o10644 }) }, NO_FLAGS)).toBeUndefined();
    expect(line({ name: "fifo", info: info({ type: "other", mode: 0o10644 }) })).toMatch(/^prw-r--r-- /);
  });

  it("writes every mode bit as ls does", () => {
    expect(modeString(0o100644)).toBe("-rw-r--r--");
    expect(modeString(0o40755)).toBe("drwxr-xr-x");
    expect(modeString(0o120777)).toBe("lrwxrwxrwx");
    expect(modeString(0o104755)).toBe("-rwsr-xr-x");
    expect(modeString(0o104644)).toBe("-rwSr--r--");
    expect(modeString(0o102755)).toBe("-rwxr-sr-x");
    expect(modeString(0o102745)).toBe("-rwxr-Sr-x");
    expect(modeString(0o41777)).toBe("drwxrwxrwt");
    expect(modeString(0o41776)).toBe("drwxrwxrwT");
    expect(modeString(0o10600)).toBe("prw-------");
    expect(modeString(0o140755)).toBe("srwxr-xr-x");
    expect(modeString(0o20666)).toBe("crw-rw-rw-");
    expect(modeString(0o60660)).toBe("brw-rw----");
  });

  it("pads sizes to 8 columns, or under -h writes k, M, G from 1000 bytes on", () => {
    expect(sizeColumn(5, false)).toBe("       5");
    expect(sizeColumn(123456789, false)).toBe("123456789");
    expect(sizeColumn(999, true)).toBe("     999");
    expect(sizeColumn(1000, true)).toBe(" 1000.0");
    expect(sizeColumn(1536, true)).toBe("    1.5k");
    expect(sizeColumn(1048576, true)).toBe("    1.0M");
    expect(sizeColumn(5 * 1024 ** 3, true)).toBe("    5.0G");
  });

  it("shows the time within six months (180 days), the year before, in UTC", () => {
    expect(dateColumns(RECENT, NOW)).toBe("Mar  5 09:07");
    expect(dateColumns(OLD, NOW)).toBe("Jan  5  2023");
    const sixMonths = 180 * 24 * 3600 * 1000;
    expect(dateColumns(NOW - sixMonths, NOW)).toBe("Dec 18 12:00");
    expect(dateColumns(NOW - sixMonths - 1000, NOW)).toBe("Dec 18  2023");
    expect(dateColumns(Date.UTC(2025, 0, 1), NOW)).toBe("Jan  1 00:00");
    expect(dateColumns(Date.UTC(2024, 9, 31, 23, 59, 59, 999), Date.UTC(2024, 10, 1))).toBe("Oct 31 23:59");
  });
});

describe("options", () => {
  const parse = (arg: string, command: "LIST" | "NLST" | "STAT" = "LIST", initial: ListFlags = LONG) =>
    parseListOptions(arg, command, initial);

  it("takes leading -words as options and the rest as the path", () => {
    expect(parse("-la")).toEqual({ flags: { ...LONG, all: true }, rest: "" });
    expect(parse("-l -a foo")).toEqual({ flags: { ...LONG, all: true }, rest: "foo" });
    expect(parse("-l-a  x").flags.all).toBe(true);
    expect(parse("  -a dir")).toEqual({ flags: { ...LONG, all: true }, rest: "dir" });
    expect(parse("foo bar")).toEqual({ flags: LONG, rest: "foo bar" });
    expect(parse("  dir")).toEqual({ flags: LONG, rest: "  dir" });
  });

  it("keeps a path's leading space after two spaces, as parse_list_opts steps over one", () => {
    expect(parse("-l  foo").rest).toBe(" foo");
    expect(parse("-a? x").rest).toBe(" x");
  });

  it("ignores letters it does not act on, and some letters per command", () => {
    expect(parse("-RCcLuBZz9").flags).toEqual(LONG);
    expect(parse("-1").flags).toEqual({ ...NO_FLAGS, one: true });
    expect(parse("-1l").flags).toEqual(LONG);
    expect(parse("-lFhn", "NLST", NO_FLAGS).flags).toEqual(NO_FLAGS);
    expect(parse("-1", "NLST", NO_FLAGS).flags).toEqual({ ...NO_FLAGS, one: true });
    expect(parse("-1", "STAT").flags).toEqual(LONG);
    expect(parse("-tU").flags).toEqual({ ...LONG, unsorted: true });
    expect(parse("-dAFhnrSt").flags).toEqual({
      ...LONG,
      directory: true,
      almostAll: true,
      classify: true,
      human: true,
      numeric: true,
      reverse: true,
      bySize: true,
      byTime: true,
    });
  });

  it("skips STAT's first option word", () => {
    expect(skipFirstOptionWord("-la  dir x")).toBe("dir x");
    expect(skipFirstOptionWord("  dir")).toBe("dir");
    expect(skipFirstOptionWord("-la")).toBe("");
  });
});

describe("what is left out", () => {
  it("hides dotfiles unless -a, or -A for all but . and ..", () => {
    expect(hiddenByDot(".x", NO_FLAGS)).toBe(true);
    expect(hiddenByDot("x", NO_FLAGS)).toBe(false);
    expect(hiddenByDot(".x", { ...NO_FLAGS, almostAll: true })).toBe(false);
    expect(hiddenByDot("..", { ...NO_FLAGS, almostAll: true })).toBe(true);
    expect(hiddenByDot("..", { ...NO_FLAGS, all: true })).toBe(false);
  });

  it("leaves out symlinks to the listed directory or above it (Bug#3719)", () => {
    expect(unsafeSymlink(".", "/d")).toBe(true);
    expect(unsafeSymlink("..", "/d")).toBe(true);
    expect(unsafeSymlink("./", "/d")).toBe(true);
    expect(unsafeSymlink("../", "/d")).toBe(true);
    expect(unsafeSymlink("..//", "/a/b")).toBe(true);
    expect(unsafeSymlink("../../", "/a/b")).toBe(true);
    expect(unsafeSymlink("./x", "/a")).toBe(false);
    expect(unsafeSymlink("../c", "/a/b")).toBe(false);
    expect(unsafeSymlink("..x.", "/a")).toBe(false);
    expect(unsafeSymlink("/etc", "/a")).toBe(false);
  });
});

describe("order", () => {
  const a = { name: "a", info: info({ size: 1, mtimeMs: OLD }) };
  const b = { name: "b", info: info({ size: 3, mtimeMs: RECENT }) };
  const c = { name: "c", info: info({ size: 2, mtimeMs: RECENT + 500 }) };

  it("sorts newest first under -t, largest first under -S, reversed by -r, and keeps ties in order", () => {
    const names = (flags: ListFlags) => sortForOutput([a, b, c], flags).map((e) => e.name);
    expect(names(NO_FLAGS)).toEqual(["a", "b", "c"]);
    expect(names({ ...NO_FLAGS, byTime: true })).toEqual(["b", "c", "a"]);
    expect(names({ ...NO_FLAGS, byTime: true, reverse: true })).toEqual(["a", "b", "c"]);
    expect(names({ ...NO_FLAGS, bySize: true })).toEqual(["b", "c", "a"]);
    expect(names({ ...NO_FLAGS, bySize: true, reverse: true })).toEqual(["a", "c", "b"]);
  });

  it("compares names byte by byte, as strcmp", () => {
    expect(["z", "é", "b", "B", ".x", "-"].sort(byteOrder)).toEqual(["-", ".x", "B", "b", "z", "é"]);
    // U+FFFD is EF BF BD in UTF-8, U+1F600 F0 9F 98 80: a surrogate pair sorts last.
    expect(["\u{1F600}", "\uFFFD", "ab", "a"].sort(byteOrder)).toEqual(["a", "ab", "\uFFFD", "\u{1F600}"]);
    expect(byteOrder("same", "same")).toBe(0);
  });
});

describe("paths", () => {
  it("matches glob patterns as glob(3) does, dotfiles only by a leading dot", () => {
    expect(globMatch("*.txt", "a.txt")).toBe(true);
    expect(globMatch("*.txt", ".h.txt")).toBe(false);
    expect(globMatch(".*", ".h")).toBe(true);
    expect(globMatch("a?c", "abc")).toBe(true);
    expect(globMatch("a?c", "ac")).toBe(false);
    expect(globMatch("[ab]*", "b1")).toBe(true);
    expect(globMatch("[!ab]*", "b1")).toBe(false);
    expect(globMatch("[^ab]*", "c1")).toBe(true);
    expect(globMatch("[a-c]x", "bx")).toBe(true);
    expect(globMatch("\\*", "*")).toBe(true);
    expect(globMatch("\\*", "a")).toBe(false);
    expect(globMatch("[", "[")).toBe(true);
    expect(globMatch("a.(b)+", "a.(b)+")).toBe(true);
  });

  it("cleans NLST's target as pr_fs_clean_path", () => {
    expect(cleanPath("./sub/")).toBe("sub");
    expect(cleanPath("a/../b")).toBe("b");
    expect(cleanPath("../x")).toBe("../x");
    expect(cleanPath("/a/../..")).toBe("/");
    expect(cleanPath("//x//")).toBe("/x");
    expect(cleanPath("")).toBe(".");
  });

  it("joins a directory and a name without doubling the slash", () => {
    expect(joinName("sub", "a")).toBe("sub/a");
    expect(joinName("/", "a")).toBe("/a");
  });
});
