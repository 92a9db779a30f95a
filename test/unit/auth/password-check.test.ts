import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crypt, cryptHash, verifyCrypt } from "../../../host/auth/crypt.js";
import { CryptWorkerPool, PasswordChecker, workerPoolSize } from "../../../host/auth/password-check.js";
import type { AsyncCrypt } from "../../../host/auth/password-check.js";
import { DISABLE_ADDONS_ENV, loadNativeAddon } from "../../../host/system/package.js";

/**
 * The worker script as Node runs it: vitest runs the TypeScript sources, which
 * a worker thread cannot load, so crypt.ts and crypt-worker.ts are transpiled
 * into a directory of their own, as tsc puts them side by side in dist/.
 */
function transpileWorker(dir: string): URL {
  writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
  for (const name of ["crypt", "crypt-worker"]) {
    const source = readFileSync(new URL(`../../../host/auth/${name}.ts`, import.meta.url), "utf8");
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    writeFileSync(path.join(dir, `${name}.js`), outputText);
  }
  return pathToFileURL(path.join(dir, "crypt-worker.js"));
}

/** [password, setting]: each scheme, rounds (clamped, default, explicit), long and UTF-8 keys, long salts. */
const CASES: readonly (readonly [string, string])[] = [
  ["demo", "$1$abcdefgh"],
  ["", "$1$x"],
  ["p\u00e4ssw\u00f6rd \u{1F511}", "$1$toolongsaltstring"],
  ["Hello world!", "$5$saltstring"],
  ["a".repeat(100), "$5$rounds=1000$roundsatmin"],
  ["a short string", "$5$rounds=12345$asaltof16chars.."],
  ["Hello world!", "$6$saltstring"],
  ["x".repeat(300), "$6$rounds=1000$toolongsaltstringtoolong"],
  ["we have a short salt string but not a short password", "$6$rounds=7777$short"],
  ["s3cret", "$6$rounds=5000$abc"],
];

/** Hashes every check must refuse, as verifyCrypt refuses them: other schemes, locked, empty, malformed. */
const REFUSED: readonly string[] = [
  "abJnggxhB/yWI", // DES, the same password
  "$2b$10$abcdefghijklmnopqrstuu5Zfx3w0v7Wm9c7fW3sJ7kYVKx1m9pQe",
  "$y$j9T$abcdefgh$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM",
  "!$6$saltstring$abc",
  "*",
  "",
  "$6$rounds=-5$salt$abc",
  "$6$sa!t$abc",
];

/** Both checkers give verifyCrypt's answer for each case, the right password and two wrong ones. */
async function expectSameAnswers(checker: PasswordChecker): Promise<void> {
  // [tried, stored, expected], checked all at once: the checker's threads share them, as logins at once do.
  const cases: [string, string, boolean][] = [];
  for (const [password, setting] of CASES) {
    const stored = crypt(password, setting) ?? "";
    for (const tried of [password, `${password}!`, password.slice(1)]) {
      cases.push([tried, stored, verifyCrypt(tried, stored)]);
    }
    cases.push([password, stored, true]);
  }
  for (const stored of REFUSED) cases.push(["ab", stored, false]);
  // crypt(3) stops at a NUL: "s3cret\0anything" must not pass for "s3cret".
  cases.push(["s3cret\u0000x", cryptHash("s3cret", "sha256", "abc"), false]);
  const answers = await Promise.all(cases.map(([tried, stored]) => checker.verify(tried, stored)));
  expect(answers.map((answer, i) => [cases[i]?.[0], cases[i]?.[1], answer])).toEqual(cases);
}

/** How many setImmediate turns the event loop makes while `work` is pending. */
async function turnsDuring(work: Promise<unknown>): Promise<number> {
  let turns = 0;
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  const spin = new Promise<void>((resolve) => {
    const turn = () => {
      if (done) return resolve();
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
  });
  await Promise.all([settled, spin]);
  return turns;
}

/** A SHA-512-crypt hash of many rounds: about a second of hashing in JavaScript. */
const SLOW = crypt("slow", "$6$rounds=200000$slowsalt") ?? "";

describe("the crypt addon (crypt_r on its own threads)", () => {
  const loaded = loadNativeAddon("crypt");
  const addon = "addon" in loaded ? (loaded.addon as { crypt: AsyncCrypt }) : undefined;

  it("is built and loads", () => {
    expect("message" in loaded ? loaded.message : "loaded").toBe("loaded");
  });

  it("hashes $1$, $5$ and $6$ exactly as the JavaScript crypt(3)", async () => {
    for (const [password, setting] of CASES) {
      expect(await addon?.crypt(password, setting), setting).toBe(crypt(password, setting));
    }
  });

  it("refuses rounds below 1000, which Drepper's spec clamps (libxcrypt's choice); no such hash verifies", async () => {
    expect(await addon?.crypt("x", "$5$rounds=10$roundstoolow")).toBeNull();
    const clamped = crypt("x", "$5$rounds=10$roundstoolow") ?? "";
    expect(clamped.startsWith("$5$rounds=1000$roundstoolow$")).toBe(true);
    expect(await PasswordChecker.select().verify("x", clamped.replace("=1000$", "=10$"))).toBe(false);
  });

  it("answers every check as verifyCrypt does", async () => {
    const checker = PasswordChecker.select();
    expect(checker.mode).toEqual({ kind: "native" });
    expect(checker.notice()).toBeUndefined();
    await expectSameAnswers(checker);
  });

  it("keeps the event loop turning during a long check", async () => {
    const checker = PasswordChecker.select();
    expect(await turnsDuring(checker.verify("slow", SLOW).then((ok) => expect(ok).toBe(true)))).toBeGreaterThan(100);
  });
});

describe("the worker-thread fallback (WASM_DSO_DISABLE_ADDONS=crypt)", () => {
  let dir = "";
  let checker: PasswordChecker;
  const saved = process.env[DISABLE_ADDONS_ENV];

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "crypt-worker-"));
    process.env[DISABLE_ADDONS_ENV] = "watchdog, crypt";
    checker = PasswordChecker.select(transpileWorker(dir), 2);
  });

  afterAll(async () => {
    await checker.close();
    if (saved === undefined) Reflect.deleteProperty(process.env, DISABLE_ADDONS_ENV);
    else process.env[DISABLE_ADDONS_ENV] = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs the JavaScript crypt(3) in worker threads, and says so once", async () => {
    await checker.ready();
    expect(checker.mode.kind).toBe("workers");
    expect(checker.notice()).toBe(
      "password checks run in 2 JavaScript worker threads (the crypt addon is disabled by WASM_DSO_DISABLE_ADDONS)",
    );
  });

  it("answers every check as verifyCrypt does", async () => {
    await expectSameAnswers(checker);
  });

  it("keeps the event loop turning during a long check", async () => {
    expect(await turnsDuring(checker.verify("slow", SLOW).then((ok) => expect(ok).toBe(true)))).toBeGreaterThan(100);
  });

  it("spreads checks over its workers, and refuses them once closed", async () => {
    const pool = new CryptWorkerPool(transpileWorker(dir), 2);
    await pool.ready();
    const answers = await Promise.all([pool.crypt("a", "$1$ab"), pool.crypt("b", "$5$ab"), pool.crypt("c", "$6$ab")]);
    expect(answers).toEqual([crypt("a", "$1$ab"), crypt("b", "$5$ab"), crypt("c", "$6$ab")]);
    await pool.close();
    await expect(pool.crypt("a", "$1$ab")).rejects.toThrow("password check workers: none running");
  });

  it("fails the checks of a worker that dies, and replaces it", async () => {
    // A worker script that exits on the password "die", else answers as crypt-worker.ts does.
    transpileWorker(dir);
    const dying = path.join(dir, "dying-worker.js");
    writeFileSync(
      dying,
      `import { parentPort } from "node:worker_threads";
       import { crypt } from "./crypt.js";
       parentPort.on("message", ({ id, password, setting }) => {
         if (password === "die") process.exit(3);
         parentPort.postMessage({ id, hash: crypt(password, setting) });
       });
       parentPort.postMessage("ready");`,
    );
    const pool = new CryptWorkerPool(pathToFileURL(dying), 1);
    await pool.ready();
    await expect(pool.crypt("die", "$1$ab")).rejects.toThrow("password check worker stopped: exit code 3");
    expect(await pool.crypt("a", "$1$ab")).toBe(crypt("a", "$1$ab"));
    await pool.close();
  });
});

describe("workerPoolSize", () => {
  it("is one worker per CPU, 1 to 4", () => {
    expect([0, 1, 2, 3, 4, 64].map((n) => workerPoolSize(n))).toEqual([1, 1, 2, 3, 4, 4]);
  });
});
