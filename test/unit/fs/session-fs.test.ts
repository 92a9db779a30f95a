/**
 * The session jail: what a user names is resolved inside the root, symlinks
 * leading out are refused with EACCES, a component swapped for a symlink
 * mid-operation opens nothing outside, and nothing outside is ever changed.
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsError, fsErrorReply, SessionFilesystem } from "../../../host/fs/session-fs.js";
import type { SessionFsOptions } from "../../../host/fs/session-fs.js";

const isRoot = process.getuid?.() === 0;

const hasMkfifo = (() => {
  try {
    execFileSync("mkfifo", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

let base: string;
let root: string;
let outside: string;
const opened: SessionFilesystem[] = [];

/**
 * root/            file.txt "hello", sub/inner.txt "inner", a/b/
 *   inlink -> file.txt, subl -> sub, out -> <outside>, outfile -> <outside>/secret.txt,
 *   up -> ../outside, dangling -> nowhere, loop1 <-> loop2
 * outside/         secret.txt "secret"
 */
beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), "dsod-jail-"));
  root = path.join(base, "root");
  outside = path.join(base, "outside");
  mkdirSync(path.join(root, "sub"), { recursive: true });
  mkdirSync(path.join(root, "a", "b"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(root, "file.txt"), "hello");
  writeFileSync(path.join(root, "sub", "inner.txt"), "inner");
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  symlinkSync("file.txt", path.join(root, "inlink"));
  symlinkSync("sub", path.join(root, "subl"));
  symlinkSync(outside, path.join(root, "out"));
  symlinkSync(path.join(outside, "secret.txt"), path.join(root, "outfile"));
  symlinkSync("../outside", path.join(root, "up"));
  symlinkSync("nowhere", path.join(root, "dangling"));
  symlinkSync("loop2", path.join(root, "loop1"));
  symlinkSync("loop1", path.join(root, "loop2"));
});

afterEach(async () => {
  for (const fs of opened.splice(0)) await fs.close();
  rmSync(base, { recursive: true, force: true });
});

async function jail(options: Partial<SessionFsOptions> = {}): Promise<SessionFilesystem> {
  const fs = await SessionFilesystem.open(root, { umask: 0o022, ...options });
  opened.push(fs);
  return fs;
}

function outsideUnchanged(): void {
  expect(readdirSync(outside)).toEqual(["secret.txt"]);
  expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe("secret");
  expect(statSync(path.join(outside, "secret.txt")).mode & 0o7777).toBe(0o644);
}

async function text(fs: SessionFilesystem, file: string): Promise<string> {
  const { handle } = await fs.openRead(file);
  try {
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

function refusal(errno: string, escape = false): object {
  return expect.objectContaining({ errno, escape }) as object;
}

describe("inside the root", () => {
  it("names paths as the user sees them: `..` stops at `/`, `~` is the root", async () => {
    const fs = await jail();
    expect(fs.resolve("/sub", "inner.txt")).toBe("/sub/inner.txt");
    expect(fs.resolve("/sub", "../../../etc/passwd")).toBe("/etc/passwd");
    expect(fs.resolve("/sub", "/a//./b/")).toBe("/a/b");
    expect(fs.resolve("/sub", "~/x")).toBe("/x");
    expect(fs.resolve("/sub", "")).toBe("/sub");
  });

  it("stats files, directories and the root, following symlinks that stay inside", async () => {
    const fs = await jail();
    expect(await fs.stat("/file.txt")).toMatchObject({ name: "file.txt", type: "file", size: 5 });
    expect(await fs.stat("/")).toMatchObject({ name: "/", type: "dir" });
    expect(await fs.stat("/inlink")).toMatchObject({ name: "inlink", type: "file", size: 5 });
    expect(await fs.stat("/subl/inner.txt")).toMatchObject({ name: "inner.txt", type: "file", size: 5 });
    expect(await fs.lstat("/inlink")).toMatchObject({ name: "inlink", type: "symlink", linkTarget: "file.txt" });
    expect(await fs.lstat("/dangling")).toMatchObject({ type: "symlink", linkTarget: "nowhere" });
    await expect(fs.stat("/dangling")).rejects.toEqual(refusal("ENOENT"));
    await expect(fs.stat("/nothere")).rejects.toEqual(refusal("ENOENT"));
    await expect(fs.stat("/file.txt/x")).rejects.toEqual(refusal("ENOTDIR"));
    await expect(fs.stat("/loop1")).rejects.toEqual(refusal("ELOOP"));
    await expect(fs.stat("/loop1")).rejects.toThrow("Too many levels of symbolic links");
  });

  it("lists a directory's entries by lstat, without `.` and `..`", async () => {
    const fs = await jail();
    const entries = await fs.list("/");
    expect(entries.map((e) => e.name)).toEqual([
      "a",
      "dangling",
      "file.txt",
      "inlink",
      "loop1",
      "loop2",
      "out",
      "outfile",
      "sub",
      "subl",
      "up",
    ]);
    expect(entries.find((e) => e.name === "out")).toMatchObject({ type: "symlink", linkTarget: outside });
    expect((await fs.list("/subl")).map((e) => e.name)).toEqual(["inner.txt"]);
    await expect(fs.list("/file.txt")).rejects.toEqual(refusal("ENOTDIR"));
  });

  it("enters directories by their real path", async () => {
    const fs = await jail();
    expect(await fs.enter("/subl")).toBe("/sub");
    expect(await fs.enter("/")).toBe("/");
    await expect(fs.enter("/file.txt")).rejects.toEqual(refusal("ENOTDIR"));
    await expect(fs.enter("/nothere")).rejects.toEqual(refusal("ENOENT"));
  });

  it("reads regular files only", async () => {
    const fs = await jail();
    expect(await text(fs, "/file.txt")).toBe("hello");
    expect(await text(fs, "/inlink")).toBe("hello");
    const { handle, size } = await fs.openRead("/sub/inner.txt", 2);
    expect(size).toBe(5);
    await handle.close();
    await expect(fs.openRead("/sub")).rejects.toEqual(refusal("EISDIR"));
    await expect(fs.openRead("/file.txt", -1)).rejects.toEqual(refusal("EINVAL"));
  });

  it.skipIf(!hasMkfifo)("refuses a FIFO without waiting for a writer", async () => {
    execFileSync("mkfifo", [path.join(root, "fifo")]);
    const fs = await jail();
    await expect(fs.openRead("/fifo")).rejects.toEqual(refusal("EINVAL"));
  });

  it("creates files with the Umask's mode whatever the daemon's own umask, truncates, appends and restarts", async () => {
    const fs = await jail({ umask: 0o027 });
    const created = await fs.openWrite("/new.txt");
    await created.write("abcdef");
    await created.close();
    expect(statSync(path.join(root, "new.txt")).mode & 0o777).toBe(0o640);

    const restarted = await fs.openWrite("/new.txt", { start: 2 });
    await restarted.write("XY", 0, "utf8");
    await restarted.close();
    expect(readFileSync(path.join(root, "new.txt"), "utf8")).toBe("XYcdef");

    const appended = await fs.openWrite("/new.txt", { append: true });
    await appended.write("!");
    await appended.close();
    expect(readFileSync(path.join(root, "new.txt"), "utf8")).toBe("XYcdef!");

    const truncated = await fs.openWrite("/new.txt");
    await truncated.close();
    expect(readFileSync(path.join(root, "new.txt"), "utf8")).toBe("");

    await expect(fs.openWrite("/new.txt", { exclusive: true })).rejects.toEqual(refusal("EEXIST"));
    await expect(fs.openWrite("/sub")).rejects.toEqual(refusal("EISDIR"));
    await expect(fs.openWrite("/nodir/x.txt")).rejects.toEqual(refusal("ENOENT"));
  });

  it("makes directories with the directory umask", async () => {
    const fs = await jail({ umask: 0o022, dirUmask: 0o077 });
    await fs.mkdir("/made");
    expect(statSync(path.join(root, "made")).mode & 0o777).toBe(0o700);
    await expect(fs.mkdir("/made")).rejects.toEqual(refusal("EEXIST"));
    await expect(fs.mkdir("/")).rejects.toEqual(refusal("EEXIST"));
    await expect(fs.mkdir("/inlink")).rejects.toEqual(refusal("EEXIST"));
  });

  it.skipIf(!isRoot)("gives what it creates to the owner when running as root", async () => {
    const fs = await jail({ owner: { uid: 4321, gid: 4322 } });
    await (await fs.openWrite("/owned.txt")).close();
    await fs.mkdir("/owned");
    for (const name of ["owned.txt", "owned"]) {
      expect(statSync(path.join(root, name))).toMatchObject({ uid: 4321, gid: 4322 });
    }
  });

  it.skipIf(!isRoot)("refuses chmod and times on files the owner does not own, as the kernel would", async () => {
    const fs = await jail({ owner: { uid: 4321, gid: 4322 } });
    await expect(fs.chmod("/file.txt", 0o600)).rejects.toEqual(refusal("EPERM"));
    await expect(fs.setMtime("/file.txt", new Date(0))).rejects.toEqual(refusal("EPERM"));
    await (await fs.openWrite("/mine.txt")).close();
    await fs.chmod("/mine.txt", 0o600);
    expect(statSync(path.join(root, "mine.txt")).mode & 0o777).toBe(0o600);
  });

  it("removes, renames, changes modes and times", async () => {
    const fs = await jail();
    await fs.rename("/file.txt", "/sub/moved.txt");
    expect(readFileSync(path.join(root, "sub", "moved.txt"), "utf8")).toBe("hello");
    await fs.chmod("/sub/moved.txt", 0o100604);
    expect(statSync(path.join(root, "sub", "moved.txt")).mode & 0o7777).toBe(0o604);
    await fs.setMtime("/sub/moved.txt", new Date(Date.UTC(2020, 0, 2, 3, 4, 5)));
    expect(statSync(path.join(root, "sub", "moved.txt")).mtimeMs).toBe(Date.UTC(2020, 0, 2, 3, 4, 5));
    await expect(fs.rmdir("/sub")).rejects.toEqual(refusal("ENOTEMPTY"));
    await expect(fs.unlink("/sub")).rejects.toEqual(refusal("EISDIR"));
    await expect(fs.rmdir("/sub/moved.txt")).rejects.toEqual(refusal("ENOTDIR"));
    await fs.unlink("/sub/moved.txt");
    await fs.unlink("/sub/inner.txt");
    await fs.rmdir("/sub");
    expect(existsSync(path.join(root, "sub"))).toBe(false);
    await expect(fs.unlink("/nothere")).rejects.toEqual(refusal("ENOENT"));
    await expect(fs.rmdir("/")).rejects.toEqual(refusal("EBUSY"));
    await expect(fs.rename("/", "/x")).rejects.toEqual(refusal("EBUSY"));
    expect(await fs.freeSpace("/")).toBeGreaterThan(0);
  });

  it("removes and renames a symlink itself, never its target", async () => {
    const fs = await jail();
    await fs.rename("/dangling", "/still-dangling");
    expect(lstatSync(path.join(root, "still-dangling")).isSymbolicLink()).toBe(true);
    await fs.unlink("/inlink");
    await fs.unlink("/out");
    await fs.unlink("/outfile");
    expect(readFileSync(path.join(root, "file.txt"), "utf8")).toBe("hello");
    outsideUnchanged();
  });
});

describe("escapes", () => {
  it("keeps `..` and absolute host paths inside the root", async () => {
    const fs = await jail();
    await expect(fs.stat("/../outside/secret.txt")).rejects.toEqual(refusal("ENOENT"));
    await expect(fs.stat(`${outside}/secret.txt`)).rejects.toEqual(refusal("ENOENT"));
    await (await fs.openWrite("/../../made.txt")).close();
    expect(existsSync(path.join(root, "made.txt"))).toBe(true);
    expect(existsSync(path.join(base, "made.txt"))).toBe(false);
  });

  it("refuses symlinks leading out with ENOENT (a dangling link under chroot), whatever the operation", async () => {
    const fs = await jail();
    const escapes: Array<() => Promise<unknown>> = [
      () => fs.stat("/out"),
      () => fs.stat("/out/secret.txt"),
      () => fs.stat("/outfile"),
      () => fs.stat("/up/secret.txt"),
      () => fs.lstat("/out/secret.txt"),
      () => fs.list("/out"),
      () => fs.enter("/out"),
      () => fs.openRead("/outfile"),
      () => fs.openRead("/up/secret.txt"),
      () => fs.openWrite("/outfile"),
      () => fs.openWrite("/out/planted.txt"),
      () => fs.mkdir("/out/made"),
      () => fs.rmdir("/out/x"),
      () => fs.unlink("/out/secret.txt"),
      () => fs.rename("/out/secret.txt", "/stolen.txt"),
      () => fs.rename("/file.txt", "/out/planted.txt"),
      () => fs.chmod("/outfile", 0o777),
      () => fs.setMtime("/out/secret.txt", new Date(0)),
      () => fs.freeSpace("/out"),
    ];
    for (const attempt of escapes) await expect(attempt()).rejects.toEqual(refusal("ENOENT", true));
    expect(existsSync(path.join(root, "stolen.txt"))).toBe(false);
    outsideUnchanged();
  });

  it("refuses NUL, over-long names and over-long paths", async () => {
    const fs = await jail();
    await expect(fs.stat("/file.txt\0/../../outside")).rejects.toEqual(refusal("EINVAL"));
    await expect(fs.openWrite("/a\0b")).rejects.toEqual(refusal("EINVAL"));
    await expect(fs.mkdir(`/${"n".repeat(256)}`)).rejects.toEqual(refusal("ENAMETOOLONG"));
    await expect(fs.mkdir(`/${"é".repeat(128)}`)).rejects.toEqual(refusal("ENAMETOOLONG"));
    await expect(fs.stat(`/${"d/".repeat(2048)}`)).rejects.toEqual(refusal("ENAMETOOLONG"));
    await fs.mkdir(`/${"n".repeat(255)}`);
    expect(readdirSync(root)).toContain("n".repeat(255));
  });

  it("opens nothing outside when a parent is swapped for a symlink after the check", async () => {
    let swap: (() => void) | undefined;
    const fs = await jail({ beforeOpen: () => swap?.() });
    const swapOnce = (dir: string): void => {
      swap = () => {
        swap = undefined;
        renameSync(path.join(root, dir), path.join(root, `${dir}.old`));
        symlinkSync(outside, path.join(root, dir));
      };
    };
    // The same name outside: a path-based open or unlink would reach it.
    writeFileSync(path.join(outside, "inner.txt"), "outside");
    swapOnce("sub");
    await expect(fs.openRead("/sub/inner.txt")).rejects.toEqual(refusal("ENOTDIR"));
    rmSync(path.join(root, "sub"));
    renameSync(path.join(root, "sub.old"), path.join(root, "sub"));

    swapOnce("sub");
    await expect(fs.unlink("/sub/inner.txt")).rejects.toEqual(refusal("ENOTDIR"));
    expect(readFileSync(path.join(outside, "inner.txt"), "utf8")).toBe("outside");
    rmSync(path.join(outside, "inner.txt"));

    // A grandparent: the kernel follows it, the opened parent's real place gives it away.
    mkdirSync(path.join(outside, "b"));
    swapOnce("a");
    await expect(fs.openWrite("/a/b/new.txt")).rejects.toEqual(refusal("ENOENT", true));
    expect(existsSync(path.join(outside, "b", "new.txt"))).toBe(false);
    expect(existsSync(path.join(root, "a.old", "b", "new.txt"))).toBe(false);
    rmSync(path.join(outside, "b"), { recursive: true });
    outsideUnchanged();
  });

  it("never follows a last component swapped for a symlink (chmod through an O_PATH handle)", async () => {
    let swap: (() => void) | undefined;
    const fs = await jail({ beforeOpen: () => swap?.() });
    swap = () => {
      swap = undefined;
      renameSync(path.join(root, "file.txt"), path.join(root, "file.old"));
      symlinkSync(path.join(outside, "secret.txt"), path.join(root, "file.txt"));
    };
    await expect(fs.chmod("/file.txt", 0o777)).rejects.toEqual(refusal("ENOTSUP"));
    outsideUnchanged();
  });
});

describe("replies", () => {
  it("says `<path as typed>: <strerror>`, cut at a NUL", () => {
    expect(fsErrorReply("nothere", new FsError("ENOENT", "No such file or directory"))).toEqual({
      code: "550",
      message: "nothere: No such file or directory",
    });
    expect(fsErrorReply("a\0b", new FsError("EINVAL", "Invalid argument"), "450")).toEqual({
      code: "450",
      message: "a: Invalid argument",
    });
    const bug = new TypeError("not a file error");
    expect(() => fsErrorReply("x", bug)).toThrow(bug);
  });

  it("is jailed at the root's real path when it is opened through a symlink, and refuses a root that is a file", async () => {
    symlinkSync(root, path.join(base, "via"));
    const fs = await SessionFilesystem.open(path.join(base, "via"), { umask: 0o022 });
    opened.push(fs);
    expect(fs.realRoot).toBe(realpathSync(root));
    expect(await fs.enter("/sub")).toBe("/sub");
    const file = await SessionFilesystem.open(path.join(root, "file.txt"), { umask: 0o022 }).catch((e: unknown) => e);
    expect(file).toEqual(refusal("ENOTDIR"));
  });

  it("never shows node's messages or host paths", async () => {
    const fs = await jail();
    const error = await fs.openRead("/nothere/x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FsError);
    expect((error as FsError).message).toBe("No such file or directory");
    const failed = await SessionFilesystem.open(path.join(base, "missing"), { umask: 0o022 }).catch((e: unknown) => e);
    expect(failed).toEqual(refusal("ENOENT"));
    expect((failed as Error).message).not.toContain(base);
  });
});
