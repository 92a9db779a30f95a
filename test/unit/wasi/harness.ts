/**
 * Calls the WASI imports the way a guest would: arguments are pointers into a
 * real WebAssembly.Memory that the test fills itself. And a throwaway directory
 * tree with a root to preopen and an "outside" the guest must never reach.
 */
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createWasi } from "../../../host/wasi/wasi.js";
import type { Wasi, WasiPreopen } from "../../../host/wasi/wasi.js";
import {
  FILE_RIGHTS_READ,
  FILE_RIGHTS_WRITE,
  DIR_RIGHTS_READ,
  DIR_RIGHTS_WRITE,
  Rights,
} from "../../../host/wasi/errno.js";

export const READ = FILE_RIGHTS_READ;
export const READ_WRITE = FILE_RIGHTS_READ | FILE_RIGHTS_WRITE;
export const DIR_ALL = DIR_RIGHTS_READ | DIR_RIGHTS_WRITE;
export { Rights };

/** Guest fds of the preopens `makeHarness` sets up, in order. */
export const DATA = 3;
export const RO = 4;
export const SCRATCH = 5;

export interface Tree {
  readonly base: string;
  readonly root: string;
  readonly ro: string;
  readonly scratch: string;
  readonly outside: string;
  remove(): void;
}

/**
 * base/
 *   root/      preopen /data (writable): file.txt, sub/inner.txt, and the traps below
 *   ro/        preopen /ro (read-only): ro.txt, dir/
 *   scratch/   preopen /scratch (writable)
 *   outside/   secret.txt, secret2.txt, inner.txt: never reachable
 */
export function makeTree(): Tree {
  const base = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-wasi-"));
  const root = path.join(base, "root");
  const ro = path.join(base, "ro");
  const scratch = path.join(base, "scratch");
  const outside = path.join(base, "outside");
  for (const dir of [root, ro, scratch, outside, path.join(root, "sub"), path.join(ro, "dir")]) mkdirSync(dir);
  writeFileSync(path.join(root, "file.txt"), "hello");
  writeFileSync(path.join(root, "sub", "inner.txt"), "inner");
  writeFileSync(path.join(ro, "ro.txt"), "read only");
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  writeFileSync(path.join(outside, "secret2.txt"), "secret2");
  writeFileSync(path.join(outside, "inner.txt"), "outside inner");
  // Symlink traps inside the root.
  symlinkSync("/etc", path.join(root, "etc"));
  symlinkSync("../outside", path.join(root, "out"));
  symlinkSync("c2", path.join(root, "c1"));
  symlinkSync("../outside/secret.txt", path.join(root, "c2"));
  symlinkSync("file.txt", path.join(root, "inlink"));
  symlinkSync("sub/../sub", path.join(root, "subl"));
  // A second name, inside the root, for a file outside it.
  linkSync(path.join(outside, "secret2.txt"), path.join(root, "hard.txt"));
  return { base, root, ro, scratch, outside, remove: () => rmSync(base, { recursive: true, force: true }) };
}

export class Harness {
  readonly memory = new WebAssembly.Memory({ initial: 2 });
  readonly logs: Array<{ stream: string; text: string }> = [];
  readonly wasi: Wasi;
  private heap = 1024;

  constructor(tree: Tree, extra: { args?: string[]; env?: Record<string, string> } = {}) {
    const preopens: WasiPreopen[] = [
      { guestPath: "/data", hostPath: tree.root, writable: true },
      { guestPath: "/ro", hostPath: tree.ro, writable: false },
      { guestPath: "/scratch", hostPath: tree.scratch, writable: true },
    ];
    this.wasi = createWasi({
      preopens,
      memory: () => this.memory,
      log: (stream, text) => this.logs.push({ stream, text }),
      ...extra,
    });
  }

  get size(): number {
    return this.memory.buffer.byteLength;
  }

  call(name: string, ...args: Array<number | bigint>): number {
    const fn = this.wasi.imports[name] as ((...a: Array<number | bigint>) => number) | undefined;
    if (fn === undefined) throw new Error(`no import ${name}`);
    return fn(...args);
  }

  alloc(size: number, align = 8): number {
    this.heap = Math.ceil(this.heap / align) * align;
    const ptr = this.heap;
    this.heap += size;
    return ptr;
  }

  bytes(data: Uint8Array): [number, number] {
    const ptr = this.alloc(data.length || 1);
    new Uint8Array(this.memory.buffer, ptr, data.length).set(data);
    return [ptr, data.length];
  }

  str(text: string): [number, number] {
    return this.bytes(new TextEncoder().encode(text));
  }

  u32(ptr: number): number {
    return new DataView(this.memory.buffer).getUint32(ptr, true);
  }

  u64(ptr: number): bigint {
    return new DataView(this.memory.buffer).getBigUint64(ptr, true);
  }

  text(ptr: number, len: number): string {
    return new TextDecoder().decode(new Uint8Array(this.memory.buffer, ptr, len));
  }

  open(
    dirfd: number,
    guestPath: string,
    options: { oflags?: number; rights?: bigint; follow?: boolean; fdflags?: number } = {},
  ): { errno: number; fd: number } {
    const [ptr, len] = this.str(guestPath);
    const out = this.alloc(4);
    const errno = this.call(
      "path_open",
      dirfd,
      options.follow === true ? 1 : 0,
      ptr,
      len,
      options.oflags ?? 0,
      options.rights ?? READ,
      options.rights ?? READ,
      options.fdflags ?? 0,
      out,
    );
    return { errno, fd: errno === 0 ? this.u32(out) : -1 };
  }

  /** One iovec of `size` bytes. */
  read(fd: number, size = 256): { errno: number; text: string } {
    const buf = this.alloc(size);
    const iov = this.alloc(8);
    const view = new DataView(this.memory.buffer);
    view.setUint32(iov, buf, true);
    view.setUint32(iov + 4, size, true);
    const out = this.alloc(4);
    const errno = this.call("fd_read", fd, iov, 1, out);
    return { errno, text: errno === 0 ? this.text(buf, this.u32(out)) : "" };
  }

  /** Writes `parts` as separate ciovecs in one call. */
  write(fd: number, ...parts: string[]): { errno: number; written: number } {
    const iovs = this.alloc(8 * parts.length);
    const view = new DataView(this.memory.buffer);
    parts.forEach((part, i) => {
      const [ptr, len] = this.str(part);
      view.setUint32(iovs + i * 8, ptr, true);
      view.setUint32(iovs + i * 8 + 4, len, true);
    });
    const out = this.alloc(4);
    const errno = this.call("fd_write", fd, iovs, parts.length, out);
    return { errno, written: errno === 0 ? this.u32(out) : -1 };
  }

  /** A path-taking function with `(fd, path_ptr, path_len)`. */
  pathCall(name: string, dirfd: number, guestPath: string): number {
    const [ptr, len] = this.str(guestPath);
    return this.call(name, dirfd, ptr, len);
  }

  rename(fromFd: number, from: string, toFd: number, to: string): number {
    const [a, al] = this.str(from);
    const [b, bl] = this.str(to);
    return this.call("path_rename", fromFd, a, al, toFd, b, bl);
  }

  /** path_filestat_get: `{ errno, filetype, size, nlink }`. */
  stat(
    dirfd: number,
    guestPath: string,
    follow = false,
  ): { errno: number; filetype: number; size: bigint; nlink: bigint } {
    const [ptr, len] = this.str(guestPath);
    const out = this.alloc(64);
    const errno = this.call("path_filestat_get", dirfd, follow ? 1 : 0, ptr, len, out);
    return {
      errno,
      filetype: new DataView(this.memory.buffer).getUint8(out + 16),
      size: this.u64(out + 32),
      nlink: this.u64(out + 24),
    };
  }

  /** fd_readdir into a buffer of `size` bytes from `cookie`: the raw names and bytes used. */
  readdir(fd: number, size = 4096, cookie = 0n): { errno: number; used: number; names: string[]; cookies: bigint[] } {
    const buf = this.alloc(size);
    const out = this.alloc(4);
    const errno = this.call("fd_readdir", fd, buf, size, cookie, out);
    const used = errno === 0 ? this.u32(out) : 0;
    const names: string[] = [];
    const cookies: bigint[] = [];
    const view = new DataView(this.memory.buffer);
    let at = 0;
    while (at + 24 <= used) {
      const namlen = view.getUint32(buf + at + 16, true);
      if (at + 24 + namlen > used) break; // truncated last entry
      cookies.push(view.getBigUint64(buf + at, true));
      names.push(this.text(buf + at + 24, namlen));
      at += 24 + namlen;
    }
    return { errno, used, names, cookies };
  }
}
