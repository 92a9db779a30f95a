/**
 * The WASI functions other than the path boundary: memory checks, stdio,
 * descriptors, directory listing, preopen names, clocks, random, args/environ,
 * proc_exit, the ENOSYS set and the import types; plus a WAT guest that uses
 * the imports for real.
 */
import { fstatSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDsoError, ErrorCodes } from "../../../host/errors.js";
import { E, OFlags, Rights } from "../../../host/wasi/errno.js";
import { createWasi, WASI_UNSUPPORTED, WasiExit } from "../../../host/wasi/wasi.js";
import { wat } from "../../helpers/wat.js";
import { DATA, Harness, makeTree, READ, READ_WRITE, RO } from "./harness.js";
import type { Tree } from "./harness.js";
import type { WasiPreopen } from "../../../host/wasi/wasi.js";

let tree: Tree;
let h: Harness;

beforeEach(() => {
  tree = makeTree();
  h = new Harness(tree, { args: ["mod_x", "héllo"], env: { A: "1", LANG: "C" } });
});

afterEach(() => {
  h.wasi.close();
  tree.remove();
});

describe("guest pointers", () => {
  it("answers EFAULT for ranges past the end of memory, without side effects", () => {
    const end = h.size;
    const out = h.alloc(4);
    // iovec table itself out of bounds
    expect(h.call("fd_write", 1, end - 4, 1, out)).toBe(E.FAULT);
    // iovec pointing past the end
    const iov = h.alloc(8);
    new DataView(h.memory.buffer).setUint32(iov, end - 2, true);
    new DataView(h.memory.buffer).setUint32(iov + 4, 10, true);
    expect(h.call("fd_write", 1, iov, 1, out)).toBe(E.FAULT);
    // pointers are u32: a "negative" i32 is a huge address
    expect(h.call("fd_write", 1, -8, 1, out)).toBe(E.FAULT);
    // an iovec count that overflows 32 bits when multiplied
    expect(h.call("fd_read", DATA + 100, iov, 0x2000_0001, out)).toBe(E.BADF);
    expect(h.call("fd_write", 1, iov, 0x2000_0001, out)).toBe(E.FAULT);
    // path and result pointers
    expect(h.call("path_open", DATA, 0, end - 2, 10, 0, READ, READ, 0, out)).toBe(E.FAULT);
    const [p, l] = h.str("file.txt");
    expect(h.call("path_open", DATA, 0, p, l, 0, READ, READ, 0, end)).toBe(E.FAULT);
    expect(h.call("args_sizes_get", end, out)).toBe(E.FAULT);
    expect(h.call("clock_time_get", 0, 0n, end - 7)).toBe(E.FAULT);
    expect(h.call("random_get", end - 1, 2)).toBe(E.FAULT);
    expect(h.call("fd_prestat_dir_name", DATA, end - 1, 5)).toBe(E.FAULT);
    expect(h.call("fd_readdir", DATA, end - 1, 100, 0n, out)).toBe(E.FAULT);
    expect(h.call("path_filestat_get", DATA, 0, p, l, end - 63)).toBe(E.FAULT);
    expect(h.logs).toEqual([]);
  });

  it("does not consume file data when the result pointer is bad", () => {
    const fd = h.open(DATA, "file.txt").fd;
    const buf = h.alloc(16);
    const iov = h.alloc(8);
    new DataView(h.memory.buffer).setUint32(iov, buf, true);
    new DataView(h.memory.buffer).setUint32(iov + 4, 16, true);
    expect(h.call("fd_read", fd, iov, 1, h.size)).toBe(E.FAULT);
    expect(h.read(fd).text).toBe("hello");
  });

  it("uses the memory as it is at each call (memory.grow replaces the buffer)", () => {
    const end = h.size;
    h.memory.grow(1);
    const [p, l] = h.str("x\n");
    const iov = end + 16;
    new DataView(h.memory.buffer).setUint32(iov, p, true);
    new DataView(h.memory.buffer).setUint32(iov + 4, l, true);
    expect(h.call("fd_write", 1, iov, 1, end + 32)).toBe(E.SUCCESS);
    expect(h.u32(end + 32)).toBe(2);
  });
});

describe("stdio", () => {
  it("sends fd 1 and 2 to log, one call per line", () => {
    expect(h.write(1, "hello ", "wor")).toEqual({ errno: 0, written: 9 });
    expect(h.logs).toEqual([]);
    h.write(1, "ld\nsecond\nthi");
    h.write(2, "oops\n");
    expect(h.logs).toEqual([
      { stream: "stdout", text: "hello world" },
      { stream: "stdout", text: "second" },
      { stream: "stderr", text: "oops" },
    ]);
    h.wasi.close();
    expect(h.logs.at(-1)).toEqual({ stream: "stdout", text: "thi" });
  });

  it("keeps UTF-8 sequences split across writes whole", () => {
    const bytes = new TextEncoder().encode("é\n");
    const [a] = h.bytes(bytes.subarray(0, 1));
    const [b] = h.bytes(bytes.subarray(1));
    const iovs = h.alloc(16);
    const view = new DataView(h.memory.buffer);
    view.setUint32(iovs, a, true);
    view.setUint32(iovs + 4, 1, true);
    view.setUint32(iovs + 8, b, true);
    view.setUint32(iovs + 12, 2, true);
    expect(h.call("fd_write", 1, iovs, 2, h.alloc(4))).toBe(E.SUCCESS);
    expect(h.logs).toEqual([{ stream: "stdout", text: "é" }]);
  });

  it("reads end of file from stdin and refuses writing to it", () => {
    expect(h.read(0)).toEqual({ errno: 0, text: "" });
    expect(h.write(0, "x").errno).toBe(E.NOTCAPABLE);
    expect(h.read(1).errno).toBe(E.NOTCAPABLE);
  });

  it("reports stdio as character devices", () => {
    const out = h.alloc(24);
    expect(h.call("fd_fdstat_get", 1, out)).toBe(E.SUCCESS);
    expect(new DataView(h.memory.buffer).getUint8(out)).toBe(2);
    expect(h.u64(out + 8)).toBe(Rights.FD_WRITE);
  });
});

describe("file descriptors", () => {
  it("seeks, tells, preads and pwrites", () => {
    const fd = h.open(DATA, "file.txt", { rights: READ_WRITE }).fd;
    const out = h.alloc(8);
    expect(h.call("fd_seek", fd, 2n, 0, out)).toBe(E.SUCCESS);
    expect(h.u64(out)).toBe(2n);
    expect(h.read(fd).text).toBe("llo");
    expect(h.call("fd_tell", fd, out)).toBe(E.SUCCESS);
    expect(h.u64(out)).toBe(5n);
    expect(h.call("fd_seek", fd, -1n, 2, out)).toBe(E.SUCCESS);
    expect(h.u64(out)).toBe(4n);
    expect(h.call("fd_seek", fd, -10n, 1, out)).toBe(E.INVAL);
    expect(h.call("fd_seek", fd, 0n, 7, out)).toBe(E.INVAL);

    const [p, l] = h.str("J");
    const iov = h.alloc(8);
    new DataView(h.memory.buffer).setUint32(iov, p, true);
    new DataView(h.memory.buffer).setUint32(iov + 4, l, true);
    expect(h.call("fd_pwrite", fd, iov, 1, 0n, out)).toBe(E.SUCCESS);
    expect(readFileSync(path.join(tree.root, "file.txt"), "utf8")).toBe("Jello");
    const buf = h.alloc(8);
    new DataView(h.memory.buffer).setUint32(iov, buf, true);
    new DataView(h.memory.buffer).setUint32(iov + 4, 3, true);
    expect(h.call("fd_pread", fd, iov, 1, 1n, out)).toBe(E.SUCCESS);
    expect(h.text(buf, h.u32(out))).toBe("ell");
    // pread/pwrite leave the offset alone
    expect(h.call("fd_tell", fd, out)).toBe(E.SUCCESS);
    expect(h.u64(out)).toBe(4n);
    // stdio cannot seek
    expect(h.call("fd_seek", 1, 0n, 0, out)).toBe(E.SPIPE);
  });

  it("answers EBADF for unknown and closed fds, and after close()", () => {
    const fd = h.open(DATA, "file.txt").fd;
    expect(h.call("fd_close", fd)).toBe(E.SUCCESS);
    expect(h.call("fd_close", fd)).toBe(E.BADF);
    expect(h.read(fd).errno).toBe(E.BADF);
    expect(h.read(12345).errno).toBe(E.BADF);
    expect(h.open(999, "file.txt").errno).toBe(E.BADF);
    h.wasi.close();
    expect(h.open(DATA, "file.txt").errno).toBe(E.BADF);
    expect(h.write(1, "late\n").errno).toBe(E.BADF);
  });

  it("answers ENOTDIR for path calls on a file fd and EISDIR for reads on a directory", () => {
    const file = h.open(DATA, "file.txt").fd;
    expect(h.open(file, "x").errno).toBe(E.NOTDIR);
    expect(h.read(DATA).errno).toBe(E.ISDIR);
    expect(h.open(DATA, "file.txt", { oflags: OFlags.DIRECTORY }).errno).toBe(E.NOTDIR);
  });

  it("reports fdstat and filestat", () => {
    const fd = h.open(DATA, "file.txt").fd;
    const out = h.alloc(64);
    expect(h.call("fd_fdstat_get", fd, out)).toBe(E.SUCCESS);
    expect(new DataView(h.memory.buffer).getUint8(out)).toBe(4);
    expect(h.u64(out + 8) & Rights.FD_WRITE).toBe(0n);
    expect(h.u64(out + 8) & Rights.FD_READ).toBe(Rights.FD_READ);
    expect(h.call("fd_filestat_get", fd, out)).toBe(E.SUCCESS);
    expect(new DataView(h.memory.buffer).getUint8(out + 16)).toBe(4);
    expect(h.u64(out + 24)).toBe(1n);
    expect(h.u64(out + 32)).toBe(5n);
    expect(h.u64(out + 48)).toBeGreaterThan(0n);
    expect(h.call("fd_fdstat_get", RO, out)).toBe(E.SUCCESS);
    expect(new DataView(h.memory.buffer).getUint8(out)).toBe(3);
    expect(h.u64(out + 8) & Rights.PATH_CREATE_FILE).toBe(0n);
    expect(h.u64(out + 16) & Rights.FD_WRITE).toBe(0n);
    expect(h.call("fd_fdstat_get", DATA, out)).toBe(E.SUCCESS);
    expect(h.u64(out + 8) & Rights.PATH_CREATE_FILE).toBe(Rights.PATH_CREATE_FILE);
  });

  it("refuses fd_fdstat_set_flags", () => {
    const fd = h.open(DATA, "file.txt").fd;
    expect(h.call("fd_fdstat_set_flags", fd, 1)).toBe(E.NOTCAPABLE);
    expect(h.call("fd_fdstat_set_flags", 999, 1)).toBe(E.BADF);
  });

  it("caps the number of open fds", () => {
    let last = 0;
    for (let i = 0; i < 1100; i++) {
      last = h.open(DATA, "file.txt").errno;
      if (last !== 0) break;
    }
    expect(last).toBe(E.MFILE);
  });
});

describe("preopens", () => {
  it("describes each preopen and nothing else", () => {
    const out = h.alloc(8);
    expect(h.call("fd_prestat_get", DATA, out)).toBe(E.SUCCESS);
    expect(new DataView(h.memory.buffer).getUint8(out)).toBe(0);
    expect(h.u32(out + 4)).toBe(5);
    const name = h.alloc(5);
    expect(h.call("fd_prestat_dir_name", DATA, name, 5)).toBe(E.SUCCESS);
    expect(h.text(name, 5)).toBe("/data");
    expect(h.call("fd_prestat_dir_name", DATA, name, 4)).toBe(E.NAMETOOLONG);
    expect(h.call("fd_prestat_get", RO, out)).toBe(E.SUCCESS);
    expect(h.u32(out + 4)).toBe(3);
    // wasi-libc stops scanning at the first EBADF
    expect(h.call("fd_prestat_get", 6, out)).toBe(E.BADF);
    expect(h.call("fd_prestat_get", 1, out)).toBe(E.BADF);
    const sub = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY }).fd;
    expect(h.call("fd_prestat_get", sub, out)).toBe(E.BADF);
  });

  it("refuses preopens that are not absolute or not directories", () => {
    const base = { memory: () => h.memory, log: () => {} };
    expect(() =>
      createWasi({ ...base, preopens: [{ guestPath: "/x", hostPath: "relative", writable: false }] }),
    ).toThrow(expect.objectContaining({ code: ErrorCodes.NOT_ABSOLUTE }));
    expect(() =>
      createWasi({
        ...base,
        preopens: [{ guestPath: "/x", hostPath: path.join(tree.root, "file.txt"), writable: false }],
      }),
    ).toThrow(expect.objectContaining({ code: ErrorCodes.FILE }));
  });
});

describe("inherited preopens (a session's instance forked from the daemon's)", () => {
  const preopensOf = (t: Tree, writable = true): WasiPreopen[] => [
    { guestPath: "/data", hostPath: t.root, writable },
    { guestPath: "/ro", hostPath: t.ro, writable: false },
    { guestPath: "/scratch", hostPath: t.scratch, writable: true },
  ];

  it("uses the parent's open directories, not their paths, and closes them with their last holder", () => {
    const child = createWasi({ preopens: preopensOf(tree), memory: () => h.memory, log: () => {}, inherit: h.wasi });
    expect(child.roots).toEqual(h.wasi.roots);
    expect(child.roots.every((root, i) => root === h.wasi.roots[i])).toBe(true);
    const rootFd = child.roots[0]?.rootFd ?? -1;
    h.wasi.close();
    // Still open for the child: it reads a file through the directory it inherited.
    const [pathPtr, pathLen] = h.str("file.txt");
    const fdOut = h.alloc(4);
    const open = child.imports.path_open as (...args: Array<number | bigint>) => number;
    expect(open(DATA, 0, pathPtr, pathLen, 0, READ, READ, 0, fdOut)).toBe(E.SUCCESS);
    expect(fstatSync(rootFd).isDirectory()).toBe(true);
    child.close();
    expect(() => fstatSync(rootFd)).toThrow(expect.objectContaining({ code: "EBADF" }));
  });

  it("opens a preopen again when it is not the parent's (another guest path or other rights)", () => {
    const child = createWasi({
      preopens: preopensOf(tree, false),
      memory: () => h.memory,
      log: () => {},
      inherit: h.wasi,
    });
    expect(child.roots[0]).not.toBe(h.wasi.roots[0]);
    expect(child.roots[1]).toBe(h.wasi.roots[1]);
    child.close();
    // The parent's own directories are still open.
    expect(fstatSync(h.wasi.roots[1]?.rootFd ?? -1).isDirectory()).toBe(true);
  });
});

describe("fd_readdir", () => {
  it("lists a directory with types and resumes from a cookie", () => {
    const all = h.readdir(DATA);
    expect(all.errno).toBe(E.SUCCESS);
    expect(all.names).toEqual(["c1", "c2", "etc", "file.txt", "hard.txt", "inlink", "out", "sub", "subl"]);
    expect(all.cookies).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    // End of directory: fewer bytes than the buffer.
    expect(all.used).toBeLessThan(4096);
    const rest = h.readdir(DATA, 4096, 7n);
    expect(rest.names).toEqual(["sub", "subl"]);
    expect(h.readdir(DATA, 4096, 99n)).toMatchObject({ errno: 0, used: 0 });
  });

  it("fills a small buffer completely, cutting the last entry", () => {
    const small = h.readdir(DATA, 40);
    expect(small.used).toBe(40);
    expect(small.names).toEqual(["c1"]);
  });

  it("reports entry types", () => {
    const fd = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY, rights: READ | Rights.FD_READDIR }).fd;
    const buf = h.alloc(256);
    const out = h.alloc(4);
    expect(h.call("fd_readdir", fd, buf, 256, 0n, out)).toBe(E.SUCCESS);
    const view = new DataView(h.memory.buffer);
    expect(view.getUint8(buf + 20)).toBe(4);
    expect(view.getBigUint64(buf + 8, true)).toBeGreaterThan(0n);
    expect(h.text(buf + 24, view.getUint32(buf + 16, true))).toBe("inner.txt");
    // Without FD_READDIR the same directory cannot be listed.
    const blind = h.open(DATA, "sub", { oflags: OFlags.DIRECTORY, rights: Rights.PATH_OPEN }).fd;
    expect(h.call("fd_readdir", blind, buf, 256, 0n, out)).toBe(E.NOTCAPABLE);
  });
});

describe("clocks, random, args, environ", () => {
  it("reads realtime and monotonic clocks", () => {
    const out = h.alloc(8);
    const before = BigInt(Date.now()) * 1_000_000n;
    expect(h.call("clock_time_get", 0, 1000n, out)).toBe(E.SUCCESS);
    const now = h.u64(out);
    expect(now).toBeGreaterThanOrEqual(before - 2_000_000n);
    expect(now).toBeLessThanOrEqual(BigInt(Date.now()) * 1_000_000n + 2_000_000n);
    expect(h.call("clock_time_get", 1, 0n, out)).toBe(E.SUCCESS);
    const m1 = h.u64(out);
    expect(h.call("clock_time_get", 1, 0n, out)).toBe(E.SUCCESS);
    expect(h.u64(out)).toBeGreaterThanOrEqual(m1);
    expect(h.call("clock_time_get", 2, 0n, out)).toBe(E.SUCCESS);
    expect(h.call("clock_time_get", 3, 0n, out)).toBe(E.INVAL);
    for (const id of [0, 1, 2]) {
      expect(h.call("clock_res_get", id, out)).toBe(E.SUCCESS);
      expect(h.u64(out)).toBeGreaterThan(0n);
    }
    expect(h.call("clock_res_get", 42, out)).toBe(E.INVAL);
  });

  it("fills random bytes", () => {
    const buf = h.alloc(256);
    expect(h.call("random_get", buf, 256)).toBe(E.SUCCESS);
    const bytes = new Uint8Array(h.memory.buffer, buf, 256);
    expect(new Set(bytes).size).toBeGreaterThan(32);
    expect(h.call("random_get", buf, 0)).toBe(E.SUCCESS);
  });

  it("passes args and environ as NUL-terminated strings", () => {
    const count = h.alloc(4);
    const size = h.alloc(4);
    expect(h.call("args_sizes_get", count, size)).toBe(E.SUCCESS);
    expect(h.u32(count)).toBe(2);
    expect(h.u32(size)).toBe(6 + 7);
    const argv = h.alloc(8);
    const buf = h.alloc(13);
    expect(h.call("args_get", argv, buf)).toBe(E.SUCCESS);
    expect(h.u32(argv)).toBe(buf);
    expect(h.text(h.u32(argv + 4), 6)).toBe("héllo");
    expect(h.text(buf, 13)).toBe("mod_x\0héllo\0");

    expect(h.call("environ_sizes_get", count, size)).toBe(E.SUCCESS);
    expect(h.u32(count)).toBe(2);
    const environ = h.alloc(8);
    const envBuf = h.alloc(h.u32(size));
    expect(h.call("environ_get", environ, envBuf)).toBe(E.SUCCESS);
    expect(h.text(envBuf, 11)).toBe("A=1\0LANG=C\0");
  });

  it("refuses args containing NUL when configured", () => {
    expect(() => createWasi({ preopens: [], memory: () => h.memory, log: () => {}, args: ["a\0b"] })).toThrow(
      expect.objectContaining({ code: ErrorCodes.CONFIG }),
    );
  });

  it("yields", () => {
    expect(h.call("sched_yield")).toBe(E.SUCCESS);
  });
});

describe("proc_exit, ENOSYS and types", () => {
  it("throws WasiExit with the code, after flushing output", () => {
    h.write(1, "partial");
    let thrown: unknown;
    try {
      h.call("proc_exit", 3);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(WasiExit);
    expect((thrown as WasiExit).exitCode).toBe(3);
    expect(isDsoError(thrown) && thrown.code).toBe(ErrorCodes.GUEST_TRAP);
    expect(h.logs).toEqual([{ stream: "stdout", text: "partial" }]);
  });

  it("answers ENOSYS for everything not implemented", () => {
    for (const name of WASI_UNSUPPORTED) {
      expect(h.wasi.types[name], name).toBeDefined();
      expect(h.call(name, 0, 0, 0, 0, 0, 0, 0), name).toBe(E.NOSYS);
    }
    expect(WASI_UNSUPPORTED).toContain("path_symlink");
    expect(WASI_UNSUPPORTED).toContain("path_link");
  });

  it("declares the witx signatures", () => {
    expect(h.wasi.types["path_open"]).toEqual({
      params: ["i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"],
      results: ["i32"],
    });
    expect(h.wasi.types["fd_seek"]).toEqual({ params: ["i32", "i64", "i32", "i32"], results: ["i32"] });
    expect(h.wasi.types["proc_exit"]).toEqual({ params: ["i32"], results: [] });
    expect(h.wasi.types["sched_yield"]).toEqual({ params: [], results: ["i32"] });
    expect(Object.keys(h.wasi.types).sort()).toEqual(Object.keys(h.wasi.imports).sort());
    expect(Object.keys(h.wasi.imports)).toHaveLength(46);
  });
});

describe("a WAT guest", () => {
  const guest = `
    (module
      (import "wasi_snapshot_preview1" "path_open"
        (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      ;; cat(path_ptr, path_len): opens the path in preopen 3, writes its content to stdout;
      ;; returns the first errno (path_open's as is, fd_read's + 1000).
      (func (export "cat") (param $path i32) (param $len i32) (result i32)
        (local $err i32)
        (local.set $err
          (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
            (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 100)))
        (if (local.get $err) (then (return (local.get $err))))
        (i32.store (i32.const 200) (i32.const 1024))
        (i32.store (i32.const 204) (i32.const 1024))
        (local.set $err
          (call $fd_read (i32.load (i32.const 100)) (i32.const 200) (i32.const 1) (i32.const 208)))
        (if (local.get $err) (then (return (i32.add (i32.const 1000) (local.get $err)))))
        (i32.store (i32.const 204) (i32.load (i32.const 208)))
        (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 212))))`;

  it("reads a file in its preopen and writes it to stdout; cannot read outside", async () => {
    const module = await WebAssembly.compile(await wat(guest));
    let memory: WebAssembly.Memory | undefined;
    const logs: string[] = [];
    const wasi = createWasi({
      preopens: [{ guestPath: "/data", hostPath: tree.root, writable: false }],
      memory: () => memory ?? new WebAssembly.Memory({ initial: 0 }),
      log: (stream, text) => logs.push(`${stream}: ${text}`),
    });
    try {
      const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.imports });
      const exports = instance.exports as { memory: WebAssembly.Memory; cat(ptr: number, len: number): number };
      memory = exports.memory;
      const put = (text: string): [number, number] => {
        const bytes = new TextEncoder().encode(text);
        new Uint8Array(exports.memory.buffer, 16, bytes.length).set(bytes);
        return [16, bytes.length];
      };
      expect(exports.cat(...put("sub/inner.txt"))).toBe(0);
      expect(exports.cat(...put("file.txt"))).toBe(0);
      expect(exports.cat(...put("../outside/secret.txt"))).toBe(E.NOTCAPABLE);
      expect(exports.cat(...put("out/secret.txt"))).toBe(E.NOTCAPABLE);
      wasi.close();
      expect(logs).toEqual(["stdout: innerhello"]);
    } finally {
      wasi.close();
    }
  });
});
