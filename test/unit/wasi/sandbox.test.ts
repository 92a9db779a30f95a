/**
 * The filesystem boundary: whatever path a guest passes, nothing outside the
 * preopened directory is opened, created, changed or removed, and read-only
 * preopens stay unchanged.
 */
import { execFileSync } from "node:child_process";
import {
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { E, OFlags } from "../../../host/wasi/errno.js";
import { SandboxRoot } from "../../../host/wasi/sandbox-fs.js";
import { DATA, DIR_ALL, Harness, makeTree, READ, READ_WRITE, RO, SCRATCH } from "./harness.js";
import type { Tree } from "./harness.js";

/** node:fs cannot make FIFOs; coreutils can. */
const hasMkfifo = (() => {
  try {
    execFileSync("mkfifo", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

let tree: Tree;
let h: Harness;

beforeEach(() => {
  tree = makeTree();
  h = new Harness(tree);
});

afterEach(() => {
  h.wasi.close();
  tree.remove();
});

function outsideUnchanged(): void {
  expect(readdirSync(tree.outside).sort()).toEqual(["inner.txt", "secret.txt", "secret2.txt"]);
  expect(readFileSync(path.join(tree.outside, "secret.txt"), "utf8")).toBe("secret");
  expect(readFileSync(path.join(tree.outside, "secret2.txt"), "utf8")).toBe("secret2");
}

describe("inside a writable preopen", () => {
  it("opens and reads a file", () => {
    const { errno, fd } = h.open(DATA, "file.txt");
    expect(errno).toBe(E.SUCCESS);
    expect(h.read(fd)).toEqual({ errno: 0, text: "hello" });
    expect(h.read(fd)).toEqual({ errno: 0, text: "" });
  });

  it("resolves `.`, `..` that stay inside, and subdirectories", () => {
    expect(h.read(h.open(DATA, "./sub/../sub/./inner.txt").fd).text).toBe("inner");
    const sub = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY, rights: READ | (1n << 13n) });
    expect(sub.errno).toBe(E.SUCCESS);
    // `..` from an opened subdirectory may go back up to the root, not beyond.
    expect(h.read(h.open(sub.fd, "../file.txt").fd).text).toBe("hello");
    expect(h.open(sub.fd, "../../outside/secret.txt").errno).toBe(E.NOTCAPABLE);
  });

  it("creates, writes, truncates and appends", () => {
    const created = h.open(DATA, "new.txt", { oflags: OFlags.CREAT | OFlags.EXCL, rights: READ_WRITE });
    expect(created.errno).toBe(E.SUCCESS);
    expect(h.write(created.fd, "ab", "c\n")).toEqual({ errno: 0, written: 4 });
    expect(h.call("fd_close", created.fd)).toBe(E.SUCCESS);
    expect(readFileSync(path.join(tree.root, "new.txt"), "utf8")).toBe("abc\n");
    // EXCL on an existing file.
    expect(h.open(DATA, "new.txt", { oflags: OFlags.CREAT | OFlags.EXCL, rights: READ_WRITE }).errno).toBe(E.EXIST);

    const appended = h.open(DATA, "new.txt", { rights: READ_WRITE, fdflags: 1 });
    expect(h.write(appended.fd, "more").errno).toBe(E.SUCCESS);
    expect(readFileSync(path.join(tree.root, "new.txt"), "utf8")).toBe("abc\nmore");

    const truncated = h.open(DATA, "new.txt", { oflags: OFlags.TRUNC, rights: READ_WRITE });
    expect(truncated.errno).toBe(E.SUCCESS);
    expect(readFileSync(path.join(tree.root, "new.txt"), "utf8")).toBe("");
  });

  it("makes, renames and removes entries", () => {
    expect(h.pathCall("path_create_directory", DATA, "made")).toBe(E.SUCCESS);
    expect(h.pathCall("path_create_directory", DATA, "made")).toBe(E.EXIST);
    expect(h.rename(DATA, "file.txt", DATA, "made/moved.txt")).toBe(E.SUCCESS);
    expect(readFileSync(path.join(tree.root, "made", "moved.txt"), "utf8")).toBe("hello");
    expect(h.pathCall("path_remove_directory", DATA, "made")).toBe(E.NOTEMPTY);
    expect(h.pathCall("path_unlink_file", DATA, "made")).toBe(E.ISDIR);
    expect(h.pathCall("path_unlink_file", DATA, "made/moved.txt")).toBe(E.SUCCESS);
    expect(h.pathCall("path_remove_directory", DATA, "made")).toBe(E.SUCCESS);
    expect(existsSync(path.join(tree.root, "made"))).toBe(false);
    expect(h.pathCall("path_unlink_file", DATA, "nope")).toBe(E.NOENT);
  });

  it("unlinks a symlink itself, never its target", () => {
    expect(h.pathCall("path_unlink_file", DATA, "c2")).toBe(E.SUCCESS);
    expect(h.pathCall("path_unlink_file", DATA, "out")).toBe(E.SUCCESS);
    outsideUnchanged();
  });

  it("refuses renames between preopens and of the root itself", () => {
    expect(h.rename(DATA, "file.txt", SCRATCH, "file.txt")).toBe(E.XDEV);
    expect(h.rename(DATA, ".", DATA, "x")).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_remove_directory", DATA, ".")).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_remove_directory", DATA, "sub/..")).toBe(E.NOTCAPABLE);
  });
});

describe("read-only preopen", () => {
  it("reads", () => {
    expect(h.read(h.open(RO, "ro.txt").fd).text).toBe("read only");
  });

  it("refuses create, write, truncate, append, unlink, rename, mkdir and rmdir", () => {
    expect(h.open(RO, "new.txt", { oflags: OFlags.CREAT }).errno).toBe(E.NOTCAPABLE);
    expect(h.open(RO, "ro.txt", { rights: READ_WRITE }).errno).toBe(E.NOTCAPABLE);
    expect(h.open(RO, "ro.txt", { oflags: OFlags.TRUNC }).errno).toBe(E.NOTCAPABLE);
    expect(h.open(RO, "ro.txt", { fdflags: 1 }).errno).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_unlink_file", RO, "ro.txt")).toBe(E.NOTCAPABLE);
    expect(h.rename(RO, "ro.txt", RO, "renamed.txt")).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_create_directory", RO, "newdir")).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_remove_directory", RO, "dir")).toBe(E.NOTCAPABLE);
    // A read-only fd cannot be written even if the guest tries.
    const fd = h.open(RO, "ro.txt").fd;
    expect(h.write(fd, "x").errno).toBe(E.NOTCAPABLE);
    expect(readdirSync(tree.ro).sort()).toEqual(["dir", "ro.txt"]);
    expect(readFileSync(path.join(tree.ro, "ro.txt"), "utf8")).toBe("read only");
  });

  it("gives subdirectories opened from it no write rights either", () => {
    // Asks for every directory right, including create/unlink/rename: the preopen's inheriting rights cut them.
    const dir = h.open(RO, "dir", { oflags: OFlags.DIRECTORY, rights: READ | DIR_ALL });
    expect(dir.errno).toBe(E.SUCCESS);
    expect(h.open(dir.fd, "x", { oflags: OFlags.CREAT }).errno).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_create_directory", dir.fd, "x")).toBe(E.NOTCAPABLE);
  });
});

describe("escapes", () => {
  it("refuses `..` above the root", () => {
    expect(h.open(DATA, "../outside/secret.txt").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "sub/../../outside/secret.txt").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "..").errno).toBe(E.NOTCAPABLE);
    expect(h.stat(DATA, "../outside/secret.txt").errno).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_create_directory", DATA, "../made")).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "../new.txt", { oflags: OFlags.CREAT, rights: READ_WRITE }).errno).toBe(E.NOTCAPABLE);
    expect(existsSync(path.join(tree.base, "made"))).toBe(false);
    expect(existsSync(path.join(tree.base, "new.txt"))).toBe(false);
  });

  it("refuses absolute paths", () => {
    expect(h.open(DATA, "/etc/passwd").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, `${tree.outside}/secret.txt`).errno).toBe(E.NOTCAPABLE);
    expect(h.stat(DATA, "/etc/passwd").errno).toBe(E.NOTCAPABLE);
  });

  it("refuses a symlink to /etc, in the middle of a path or at its end", () => {
    expect(h.open(DATA, "etc/passwd").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "etc/passwd", { follow: true }).errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "etc", { follow: true, oflags: OFlags.DIRECTORY }).errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "etc/", {}).errno).toBe(E.NOTCAPABLE);
    expect(h.stat(DATA, "etc/passwd").errno).toBe(E.NOTCAPABLE);
    expect(h.stat(DATA, "etc", true).errno).toBe(E.NOTCAPABLE);
  });

  it("refuses writes through a symlinked directory leading outside", () => {
    expect(h.open(DATA, "out/evil.txt", { oflags: OFlags.CREAT, rights: READ_WRITE }).errno).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_create_directory", DATA, "out/evil")).toBe(E.NOTCAPABLE);
    expect(h.pathCall("path_unlink_file", DATA, "out/secret.txt")).toBe(E.NOTCAPABLE);
    expect(h.rename(DATA, "out/secret.txt", DATA, "stolen.txt")).toBe(E.NOTCAPABLE);
    expect(h.rename(DATA, "file.txt", DATA, "out/planted.txt")).toBe(E.NOTCAPABLE);
    outsideUnchanged();
  });

  it("refuses a symlink chain that ends outside", () => {
    expect(h.open(DATA, "c1", { follow: true }).errno).toBe(E.NOTCAPABLE);
    expect(h.stat(DATA, "c1", true).errno).toBe(E.NOTCAPABLE);
  });

  it("refuses a final symlink without LOOKUP_SYMLINK_FOLLOW (like O_NOFOLLOW)", () => {
    expect(h.open(DATA, "c1").errno).toBe(E.LOOP);
    expect(h.open(DATA, "inlink").errno).toBe(E.LOOP);
    // ...but reports it as a symlink without following it.
    expect(h.stat(DATA, "c1").filetype).toBe(7);
  });

  it("follows a symlink to a file inside with LOOKUP_SYMLINK_FOLLOW", () => {
    const { errno, fd } = h.open(DATA, "inlink", { follow: true });
    expect(errno).toBe(E.SUCCESS);
    expect(h.read(fd).text).toBe("hello");
    expect(h.read(h.open(DATA, "subl/inner.txt").fd).text).toBe("inner");
    expect(h.stat(DATA, "inlink", true)).toMatchObject({ errno: 0, filetype: 4, size: 5n });
  });

  it("refuses a hard link to a file outside (any regular file with several links)", () => {
    expect(h.open(DATA, "hard.txt").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "hard.txt", { oflags: OFlags.TRUNC, rights: READ_WRITE }).errno).toBe(E.NOTCAPABLE);
    // The refused open must not have truncated it.
    outsideUnchanged();
  });

  it("keeps a directory fd on its directory when the path it was opened by becomes a symlink", () => {
    const sub = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY, rights: READ | (1n << 13n) });
    expect(sub.errno).toBe(E.SUCCESS);
    renameSync(path.join(tree.root, "sub"), path.join(tree.root, "sub.old"));
    symlinkSync(tree.outside, path.join(tree.root, "sub"));
    // Like openat(): the fd still names the original directory (now sub.old), never the symlink's target.
    expect(h.read(h.open(sub.fd, "inner.txt").fd).text).toBe("inner");
    expect(h.open(sub.fd, "secret.txt").errno).toBe(E.NOENT);
    expect(h.open(DATA, "sub/secret.txt").errno).toBe(E.NOTCAPABLE);
  });

  it("refuses a directory fd whose directory was moved out of the root", () => {
    const sub = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY, rights: READ | (1n << 13n) });
    renameSync(path.join(tree.root, "sub"), path.join(tree.outside, "moved"));
    expect(h.open(sub.fd, "inner.txt").errno).toBe(E.NOTCAPABLE);
    expect(h.stat(sub.fd, "inner.txt").errno).toBe(E.NOTCAPABLE);
  });

  it("refuses NUL in a path", () => {
    expect(h.open(DATA, "file.txt\0../../etc/passwd").errno).toBe(E.INVAL);
    expect(h.pathCall("path_create_directory", DATA, "a\0b")).toBe(E.INVAL);
  });

  it("refuses paths that are not UTF-8", () => {
    const [ptr, len] = h.bytes(new Uint8Array([0x66, 0xff, 0x66]));
    const out = h.alloc(4);
    expect(h.call("path_open", DATA, 0, ptr, len, 0, READ, READ, 0, out)).toBe(E.ILSEQ);
  });

  it.skipIf(!hasMkfifo)("refuses a FIFO inside the root (opening one could block the daemon)", () => {
    execFileSync("mkfifo", [path.join(tree.root, "fifo")]);
    expect(h.open(DATA, "fifo").errno).toBe(E.NOTCAPABLE);
    expect(h.open(DATA, "fifo", { rights: READ_WRITE }).errno).toBe(E.NOTCAPABLE);
  });
});

describe("a component swapped for a symlink between the check and the open", () => {
  // These drive SandboxRoot directly: its `beforeOpen` seam runs after the path
  // was resolved and before anything is opened, which is the race window.
  function rootWithSwap(swap: () => void): SandboxRoot {
    let done = false;
    return new SandboxRoot({
      guestPath: "/data",
      hostPath: tree.root,
      writable: true,
      beforeOpen: () => {
        if (done) return;
        done = true;
        swap();
      },
    });
  }

  it("refuses an open whose parent became a symlink to outside", () => {
    const root = rootWithSwap(() => {
      renameSync(path.join(tree.root, "sub"), path.join(tree.root, "sub.old"));
      symlinkSync(tree.outside, path.join(tree.root, "sub"));
    });
    try {
      const resolved = root.resolve([], "sub/inner.txt", false);
      expect(resolved).toEqual({ rel: ["sub", "inner.txt"], kind: "file" });
      // The parent is opened with O_DIRECTORY | O_NOFOLLOW: Linux answers ENOTDIR for the symlink.
      expect(() => root.open(resolved.rel, constants.O_RDONLY, 0)).toThrow(
        expect.objectContaining({ code: "ENOTDIR" }),
      );
    } finally {
      root.close();
    }
  });

  it("refuses an open whose grandparent became a symlink to outside", () => {
    mkdirSync(path.join(tree.root, "a", "b"), { recursive: true });
    writeFileSync(path.join(tree.root, "a", "b", "f.txt"), "inside");
    mkdirSync(path.join(tree.outside, "b"));
    writeFileSync(path.join(tree.outside, "b", "f.txt"), "outside");
    const root = rootWithSwap(() => {
      renameSync(path.join(tree.root, "a"), path.join(tree.root, "a.old"));
      symlinkSync(tree.outside, path.join(tree.root, "a"));
    });
    try {
      const resolved = root.resolve([], "a/b/f.txt", false);
      // `a` is followed by the kernel, but the parent's real location is checked.
      expect(() => root.open(resolved.rel, constants.O_RDONLY, 0)).toThrow(
        expect.objectContaining({ errno: E.NOTCAPABLE }),
      );
    } finally {
      root.close();
    }
  });

  it("creates nothing outside when a grandparent becomes a symlink before a create", () => {
    mkdirSync(path.join(tree.root, "a", "b"), { recursive: true });
    mkdirSync(path.join(tree.outside, "b"));
    const root = rootWithSwap(() => {
      renameSync(path.join(tree.root, "a"), path.join(tree.root, "a.old"));
      symlinkSync(tree.outside, path.join(tree.root, "a"));
    });
    try {
      const create = root.resolve([], "a/b/new.txt", false);
      expect(create.kind).toBe("missing");
      expect(() => root.open(create.rel, constants.O_RDWR | constants.O_CREAT, 0o644)).toThrow(
        expect.objectContaining({ errno: E.NOTCAPABLE }),
      );
      expect(existsSync(path.join(tree.outside, "b", "new.txt"))).toBe(false);
      expect(existsSync(path.join(tree.root, "a.old", "b", "new.txt"))).toBe(false);
    } finally {
      root.close();
    }
  });

  it("refuses an open whose last component became a symlink (O_NOFOLLOW)", () => {
    const root = rootWithSwap(() => {
      renameSync(path.join(tree.root, "file.txt"), path.join(tree.root, "file.old"));
      symlinkSync(path.join(tree.outside, "secret.txt"), path.join(tree.root, "file.txt"));
    });
    try {
      const resolved = root.resolve([], "file.txt", false);
      expect(() => root.open(resolved.rel, constants.O_RDONLY, 0)).toThrow(expect.objectContaining({ code: "ELOOP" }));
    } finally {
      root.close();
    }
  });

  it("keeps mkdir, unlink and rename inside when a parent is swapped", () => {
    const ops: Array<[string, (root: SandboxRoot) => void]> = [
      ["mkdir", (root) => root.atParent(root.resolve([], "a/evil", false).rel, (host) => mkdirSync(host))],
      ["unlink", (root) => root.atParent(root.resolve([], "a/secret.txt", false).rel, (host) => unlinkSync(host))],
      [
        "rename",
        (root) => {
          const from = root.resolve([], "a/secret.txt", false).rel;
          root.atParent(from, (host) => renameSync(host, path.join(tree.root, "stolen.txt")));
        },
      ],
    ];
    for (const [name, op] of ops) {
      rmSync(path.join(tree.root, "a"), { recursive: true, force: true });
      rmSync(path.join(tree.root, "a.old"), { recursive: true, force: true });
      mkdirSync(path.join(tree.root, "a"));
      writeFileSync(path.join(tree.root, "a", "secret.txt"), "decoy");
      const root = rootWithSwap(() => {
        renameSync(path.join(tree.root, "a"), path.join(tree.root, "a.old"));
        symlinkSync(tree.outside, path.join(tree.root, "a"));
      });
      try {
        expect(() => op(root), name).toThrow();
        expect(existsSync(path.join(tree.outside, "evil")), name).toBe(false);
        expect(existsSync(path.join(tree.root, "stolen.txt")), name).toBe(false);
        outsideUnchanged();
      } finally {
        root.close();
      }
    }
  });
});
