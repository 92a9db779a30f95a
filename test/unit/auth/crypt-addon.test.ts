/**
 * The crypt addon's own threads (host/auth/native/crypt.c): named `dso-crypt`,
 * at nice +10 where every other thread keeps the process's nice value, many
 * checks at once each answered, and a threadsafe function that keeps the event
 * loop alive only while a check is pending, in the main thread as in a Worker.
 */
import { spawn } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { crypt } from "../../../host/auth/crypt.js";
import { PasswordChecker } from "../../../host/auth/password-check.js";
import type { AsyncCrypt } from "../../../host/auth/password-check.js";
import { loadNativeAddon } from "../../../host/system/package.js";
import { REPO_ROOT } from "../../helpers/paths.js";

const loaded = loadNativeAddon("crypt");
const addon = "addon" in loaded ? (loaded.addon as { crypt: AsyncCrypt }) : undefined;
const missing = addon === undefined || process.platform !== "linux";

/** The addon's crypt, in tests that run only when it loaded. */
function nativeCrypt(password: string, setting: string): Promise<string | null> {
  if (addon === undefined) throw new Error("the crypt addon is not loaded");
  return addon.crypt(password, setting);
}

/** The built addon, as a child process loads it. */
const ADDON_FILE = path.join(REPO_ROOT, "build", "Release", "crypt.node");

/** A thread's name and nice value, from /proc/self/task/<tid>/{comm,stat}. */
async function thread(dir: string): Promise<{ name: string; nice: number }> {
  const [comm, stat] = await Promise.all([readFile(`${dir}/comm`, "utf8"), readFile(`${dir}/stat`, "utf8")]);
  // stat is `pid (comm) state ...`: comm may hold spaces and parentheses, so fields count from the last ")".
  // nice is field 19; the field after ") " is field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { name: comm.trim(), nice: Number(fields[19 - 3]) };
}

async function threads(): Promise<{ name: string; nice: number }[]> {
  const tids = await readdir("/proc/self/task");
  return Promise.all(tids.map((tid) => thread(`/proc/self/task/${tid}`)));
}

const children: ReturnType<typeof spawn>[] = [];

interface Exit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `script` in a fresh `node -e` until it exits (no timer: a child that never exits fails the test's timeout). */
function runNode(script: string): Promise<Exit> {
  const child = spawn(process.execPath, ["-e", script]);
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** The child's line that loads the addon. */
const FILE = JSON.stringify(ADDON_FILE);
const LOAD = `const addon = require("node:module").createRequire(${FILE})(${FILE});`;

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill();
});

describe("the crypt addon's threads", () => {
  it.skipIf(missing)("are named dso-crypt, at nice +10; libuv's pool and every other thread keep theirs", async () => {
    expect(await nativeCrypt("x", "$6$abc")).toBe(crypt("x", "$6$abc"));
    // readFile runs in libuv's pool, so its threads exist by now.
    const all = await threads();
    const base = (await thread("/proc/self")).nice;
    const own = all.filter((t) => t.name === "dso-crypt");
    expect(own.length).toBeGreaterThanOrEqual(1);
    expect(own.length).toBeLessThanOrEqual(2);
    expect(own.map((t) => t.nice)).toEqual(own.map(() => Math.min(base + 10, 19)));
    const others = all.filter((t) => t.name !== "dso-crypt");
    expect(others.filter((t) => t.nice !== base)).toEqual([]);
  });

  it.skipIf(missing)("answer 20 checks at once, right and wrong passwords mixed, each as crypt(3) does", async () => {
    const checker = PasswordChecker.select();
    expect(checker.mode).toEqual({ kind: "native" });
    const stored = Array.from({ length: 20 }, (_, i) => crypt(`pw${i}`, `$${[1, 5, 6][i % 3]}$salt${i}`) ?? "");
    const tried = stored.map((_, i) => (i % 2 === 0 ? `pw${i}` : `pw${i + 1}`));
    const answers = await Promise.all(stored.map((hash, i) => checker.verify(tried[i] ?? "", hash)));
    expect(answers).toEqual(stored.map((_, i) => i % 2 === 0));
    const hashes = await Promise.all(stored.map((hash, i) => nativeCrypt(tried[i] ?? "", hash)));
    expect(hashes).toEqual(stored.map((hash, i) => crypt(tried[i] ?? "", hash)));
  });

  it.skipIf(missing)("keep a process alive while a check is pending, and not after", async () => {
    // The answer is written (the loop lived until it came), then the process ends by itself.
    const result = await runNode(`${LOAD} addon.crypt("x", "$6$abc").then((hash) => process.stdout.write(hash));`);
    expect(result).toEqual({ code: 0, signal: null, stdout: crypt("x", "$6$abc"), stderr: "" });
  });

  it.skipIf(missing)("stop with a Worker that checked a password and is terminated with checks queued", async () => {
    const worker = `
      ${LOAD}
      addon.crypt("w", "$5$abc").then((hash) => {
        for (let i = 0; i < 20; i++) addon.crypt("slow", "$6$rounds=100000$slow");
        require("node:worker_threads").parentPort.postMessage(hash);
      });`;
    const main = `
      ${LOAD}
      const w = new (require("node:worker_threads").Worker)(${JSON.stringify(worker)}, { eval: true });
      w.once("message", async (hash) => {
        const code = await w.terminate();
        process.stdout.write(hash + " " + code + " " + (await addon.crypt("m", "$1$abc")));
      });`;
    const result = await runNode(main);
    const expected = `${crypt("w", "$5$abc")} 1 ${crypt("m", "$1$abc")}`;
    expect(result).toEqual({ code: 0, signal: null, stdout: expected, stderr: "" });
  });
});
