/**
 * A corpus of hostile guests and configs tried against the real daemon: each
 * gets a clear error (never a stack trace), and afterwards dsod still serves
 * FTP and controls.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataBomb, importBomb } from "../../bench/wasm-encoder.js";
import { wat } from "../helpers/wat.js";
import { FtpControl } from "./helpers/ftp-client.js";
import {
  LIBEXEC,
  RunningDsod,
  baseConfig,
  dsoctl,
  logMessages,
  runDsod,
  tempDir,
  writeConfig,
} from "./helpers/dsod.js";

const API = "(i32.const 32)";

let mods: string;
let daemon: RunningDsod;
const good = readFileSync(`${LIBEXEC}/mod_test.wasm`);

beforeAll(async () => {
  const dir = tempDir();
  mods = path.join(dir, "mods");
  mkdirSync(mods);
  chmodSync(mods, 0o755);
  const files: Record<string, Uint8Array> = {
    "mod_empty.wasm": new Uint8Array(),
    "mod_elf.wasm": Buffer.from("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00", "latin1"),
    "mod_text.wasm": Buffer.from("#!/bin/sh\nrm -rf /\n"),
    "mod_trunc8.wasm": good.subarray(0, 8),
    "mod_trunchalf.wasm": good.subarray(0, good.length >> 1),
    "mod_trunclast.wasm": good.subarray(0, good.length - 1),
    "mod_bomb.wasm": importBomb("mod_bomb", 100_000),
    // Larger than its memory, within the DataBytes load limit: the engine refuses it at instantiation.
    "mod_bigdata.wasm": dataBomb("mod_bigdata", 2 * 1024 * 1024, "active", 1),
    "mod_hugemem.wasm": dataBomb("mod_hugemem", 16, "active", 60_000),
    "mod_badptr.wasm": await wat(`(module
      (import "env" "memory" (memory 1))
      (import "env" "pr_response_add" (func $reply (param i32 i32)))
      (global (export "badptr_module") i32 ${API})
      (export "memory" (memory 0))
      (func (export "site_BADPTR") (result i32) (call $reply (i32.const -16) (i32.const 7)) (i32.const 1)))`),
    "mod_arith.wasm": await wat(`(module
      (import "env" "memory" (memory 1))
      (global (export "arith_module") i32 ${API})
      (global $zero (mut i32) (i32.const 0))
      (func (export "site_DIV") (result i32) (i32.div_s (i32.const 1) (global.get $zero)))
      (func (export "site_OOB") (result i32) (i32.load (i32.const -16))))`),
    "mod_startloop.wasm": await wat(`(module
      (global (export "startloop_module") i32 ${API})
      (func $forever (loop $l (br $l)))
      (start $forever))`),
  };
  // Corrupted copies: bytes flipped at fixed, spread-out places in a real guest.
  for (const at of [9, 20, 100, 400, 1000, 2000, 4000]) {
    const copy = Buffer.from(good);
    copy[at] = (copy[at] ?? 0) ^ 0xff;
    files[`mod_flip${at}.wasm`] = copy;
  }
  for (const [file, bytes] of Object.entries(files)) writeFileSync(path.join(mods, file), bytes);
  const config = writeConfig(dir, [baseConfig(dir), `ModulePath ${mods}`, "ModuleCPULimit * 500"].join("\n"));
  daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
}, 60_000);

afterAll(async () => {
  await daemon.stop();
});

async function expectServing(): Promise<void> {
  const { client } = await FtpControl.connect(daemon.port);
  try {
    await client.login();
    expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
  } finally {
    client.close();
  }
  const lsmod = await dsoctl(["-s", daemon.socket, "lsmod"]);
  expect(lsmod.stdout.split("\n")[0]).toBe("dsoctl: Loaded Modules:");
}

describe("hostile guests through insmod", () => {
  it.each([
    ["mod_empty.c", "'MODS/mod_empty.wasm': not a WebAssembly binary (bad magic number)"],
    ["mod_elf.c", "'MODS/mod_elf.wasm': not a WebAssembly binary (bad magic number)"],
    ["mod_text.c", "'MODS/mod_text.wasm': not a WebAssembly binary (bad magic number)"],
    // A bare header is a valid, empty module: it lacks its module symbol (proftpd's ENOENT).
    [
      "mod_trunc8.c",
      "No such file or directory\ndsoctl:   the file was found, but it does not export 'trunc8_module' (the module's API version)",
    ],
  ])("%s is refused with a clear line", async (module, reason) => {
    const result = await dsoctl(["-s", daemon.socket, "insmod", module]);
    expect(result.stdout).toBe(`dsoctl: error loading '${module}': ${reason.replace("MODS", mods)}\n`);
    expect(result.status).toBe(3);
    await expectServing();
  });

  it("refuses truncated and corrupted binaries without a stack trace", async () => {
    for (const module of [
      "mod_trunchalf.c",
      "mod_trunclast.c",
      "mod_flip9.c",
      "mod_flip20.c",
      "mod_flip100.c",
      "mod_flip400.c",
      "mod_flip1000.c",
      "mod_flip2000.c",
      "mod_flip4000.c",
    ]) {
      const result = await dsoctl(["-s", daemon.socket, "insmod", module]);
      // A flipped byte may land where it changes nothing that matters; then the module loads and is removed again.
      if (result.status === 0) {
        expect((await dsoctl(["-s", daemon.socket, "rmmod", module])).status).toBe(0);
        continue;
      }
      expect(result.stdout).toMatch(new RegExp(`^dsoctl: error loading '${module.replace(".", "\\.")}': .+\\n`));
      expect(result.stdout).not.toMatch(/\n\s+at /);
    }
    expect(daemon.stderr).not.toMatch(/\n\s+at /);
    await expectServing();
  });

  it("links an import bomb of 100,000 imports only to report what is undefined", async () => {
    const result = await dsoctl(["-s", daemon.socket, "insmod", "mod_bomb.c"]);
    expect(result.status).toBe(3);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe("dsoctl: error loading 'mod_bomb.c': mod_bomb.c: undefined symbol 'sym_0' (func () -> nil)");
    expect(lines).toHaveLength(1024);
    expect(lines.at(-1)).toBe("dsoctl: (98977 more lines not shown: a response holds at most 1024 lines)");
    await expectServing();
  });

  it("refuses data segments larger than memory and memories over the cap", async () => {
    const big = await dsoctl(["-s", daemon.socket, "insmod", "mod_bigdata.c"]);
    expect(big.stdout).toMatch(
      /^dsoctl: error loading 'mod_bigdata\.c': mod_bigdata\.c: cannot be instantiated: .*data segment.*out of bounds/,
    );
    const huge = await dsoctl(["-s", daemon.socket, "insmod", "mod_hugemem.c"]);
    expect(huge.stdout).toBe(
      "dsoctl: error loading 'mod_hugemem.c': mod_hugemem.c: memory needs 60000 pages, over its cap of 256 pages\n",
    );
    await expectServing();
  });

  it("interrupts a start function that never returns", async () => {
    const result = await dsoctl(["-s", daemon.socket, "insmod", "mod_startloop.c"]);
    expect(result.stdout).toBe(
      "dsoctl: error loading 'mod_startloop.c': mod_startloop.c: start function failed: guest call ran past its 500 ms CPU budget and was interrupted\n",
    );
    await expectServing();
  });

  it("contains a division by zero and an out-of-bounds access", async () => {
    expect((await dsoctl(["-s", daemon.socket, "insmod", "mod_arith.c"])).stdout).toBe(
      "dsoctl: 'mod_arith.c' loaded\n",
    );
    const { client } = await FtpControl.connect(daemon.port);
    try {
      await client.login();
      expect(await client.send("SITE DIV")).toEqual(["451 Requested action aborted: local error in processing."]);
      // The instance is re-instantiated after its backoff before the next call runs.
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(await client.send("SITE OOB")).toEqual(["451 Requested action aborted: local error in processing."]);
    } finally {
      client.close();
    }
    const log = logMessages(daemon.stderr).join("\n");
    expect(log).toMatch(/mod_arith\.c: fault in site_DIV: divide by zero/);
    expect(log).toMatch(/mod_arith\.c: fault in site_OOB: memory access out of bounds/);
    await expectServing();
  });

  it("contains a handler that passes a pointer outside its memory", async () => {
    expect((await dsoctl(["-s", daemon.socket, "insmod", "mod_badptr.c"])).stdout).toBe(
      "dsoctl: 'mod_badptr.c' loaded\n",
    );
    const { client } = await FtpControl.connect(daemon.port);
    try {
      await client.login();
      expect(await client.send("SITE BADPTR")).toEqual(["451 Requested action aborted: local error in processing."]);
      expect(await client.send("NOOP")).toEqual(["200 NOOP command successful"]);
    } finally {
      client.close();
    }
    expect(logMessages(daemon.stderr).join("\n")).toMatch(
      /mod_badptr\.c: fault in site_BADPTR: invalid string passed to 'pr_response_add' \(pointer -16\)/,
    );
    await expectServing();
  });
});

describe("hostile configs", () => {
  function check(text: string | Buffer): { status: number | null; stderr: string } {
    const dir = tempDir();
    const file = path.join(dir, "dsod.conf");
    writeFileSync(file, text);
    const result = runDsod(["-t", "-c", file]);
    return { status: result.status, stderr: result.stderr };
  }

  it.each([
    ["binary garbage", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256))],
    ["a 4 MB line", `ServerName ${"x".repeat(4 * 1024 * 1024)}\nBogus`],
    ["NUL bytes", "ServerName a\0b\nLoadModule mod_\0test.c\n"],
    ["an unterminated quote", 'ServerName "never closed\nLoadModule mod_nope.c\n'],
    ["10,000 nested false sections", `${"<IfModule mod_nope.c>\n".repeat(10_000)}${"</IfModule>\n".repeat(9_999)}`],
  ])("%s gets a Fatal line and exit 1, never a stack trace", (_label, text) => {
    const result = check(text);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/Fatal: /);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it("an Include loop is stopped with a clear error", () => {
    const dir = tempDir();
    const file = path.join(dir, "loop.conf");
    writeFileSync(file, `Include ${file}\n`);
    const result = runDsod(["-t", "-c", file]);
    expect(result.status).toBe(1);
    expect(logMessages(result.stderr)).toEqual([
      `Fatal: Include: too many levels of Include (64), an Include loop? on line 1 of '${file}'`,
    ]);
  });
});
