/**
 * Password checks off the event loop (mod_auth_file.c `authfile_chkpass`:
 * `strcmp(crypt(cleartext, stored), stored) == 0`). A login costs a hash of
 * milliseconds; run on dsod's one event loop it would stall every other
 * session for that long, so the hash runs elsewhere:
 * - the crypt addon (host/auth/native/crypt.c): the system's crypt_r(3) on
 *   the addon's own two threads at nice +10, as fast as proftpd's own check
 *   on an idle machine, and behind the sessions being served on a busy one;
 * - without it, the JavaScript crypt(3) of crypt.ts in a few worker threads
 *   (slower, but still off the loop), which dsod announces once at start.
 * Either way the stored hash is compared here, in constant time.
 */
import { timingSafeEqual } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { loadNativeAddon } from "../system/package.js";
import type { CryptAnswer, CryptRequest } from "./crypt-worker.js";

/** crypt(3) with the hash computed elsewhere: the hash, or null where crypt(3) fails. */
export type AsyncCrypt = (password: string, setting: string) => Promise<string | null>;

/** The schemes ftpasswd writes (crypt.ts); DES, bcrypt, yescrypt and locked entries are refused before any hash. */
const SCHEMES = ["$1$", "$5$", "$6$"] as const;

/** At most this many worker threads: logins are rare next to commands, and each worker holds a V8 heap. */
const MAX_WORKERS = 4;

/** The worker pool's size for this machine: one per CPU the process may use, 1 to MAX_WORKERS. */
export function workerPoolSize(parallelism: number = availableParallelism()): number {
  return Math.max(1, Math.min(parallelism, MAX_WORKERS));
}

/** The worker script, next to this file once compiled (dist/host/auth). */
export const CRYPT_WORKER_SCRIPT = new URL("./crypt-worker.js", import.meta.url);

interface PoolWorker {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve: (hash: string | null) => void; reject: (error: Error) => void }>;
}

/** The JavaScript crypt(3) in `size` worker threads, each request to the least busy one. */
export class CryptWorkerPool {
  readonly #script: URL;
  readonly #workers: PoolWorker[] = [];
  readonly #ready: Promise<void>;
  #nextId = 0;
  #closed = false;

  constructor(script: URL, size: number) {
    this.#script = script;
    const starts: Promise<void>[] = [];
    for (let i = 0; i < size; i++) starts.push(this.#spawn());
    this.#ready = Promise.all(starts).then(() => undefined);
    // A pool no one waits on must not fail the process with an unhandled rejection; callers see it in their checks.
    this.#ready.catch(() => {});
  }

  /** Resolves once every worker has loaded its script (so privileges may drop), rejects if one cannot. */
  ready(): Promise<void> {
    return this.#ready;
  }

  crypt(password: string, setting: string): Promise<string | null> {
    const target = this.#workers.reduce<PoolWorker | undefined>(
      (best, w) => (best === undefined || w.pending.size < best.pending.size ? w : best),
      undefined,
    );
    if (target === undefined) return Promise.reject(new Error("password check workers: none running"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (target.pending.size === 0) target.worker.ref();
      target.pending.set(id, { resolve, reject });
      const request: CryptRequest = { id, password, setting };
      target.worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.splice(0).map((w) => w.worker.terminate()));
  }

  #spawn(): Promise<void> {
    const worker = new Worker(this.#script);
    const entry: PoolWorker = { worker, pending: new Map() };
    this.#workers.push(entry);
    let loaded = false;
    return new Promise<void>((resolve, reject) => {
      worker.on("message", (message: CryptAnswer | "ready") => {
        if (message === "ready") {
          loaded = true;
          // Idle, a worker must not keep the process alive; loading, it must (ready() is awaited).
          if (entry.pending.size === 0) worker.unref();
          resolve();
          return;
        }
        const job = entry.pending.get(message.id);
        entry.pending.delete(message.id);
        if (entry.pending.size === 0 && loaded) worker.unref();
        job?.resolve(message.hash);
      });
      let gone = false;
      const stopped = (why: string) => {
        // "error" is followed by "exit": one replacement, not two.
        if (gone) return;
        gone = true;
        const at = this.#workers.indexOf(entry);
        if (at >= 0) this.#workers.splice(at, 1);
        const error = new Error(`password check worker stopped: ${why}`);
        for (const job of entry.pending.values()) job.reject(error);
        entry.pending.clear();
        reject(error);
        // A worker that had loaded died of something else: replace it. One that never loaded would fail again.
        if (loaded && !this.#closed) this.#spawn().catch(() => {});
      };
      worker.on("error", (error) => stopped(error.message));
      worker.on("exit", (code) => stopped(`exit code ${code}`));
    });
  }
}

/** How password checks run: the crypt addon, or the worker pool with the reason the addon is missing. */
export type PasswordCheckMode =
  { readonly kind: "native" } | { readonly kind: "workers"; readonly size: number; readonly reason: string };

function isCryptAddon(value: unknown): value is { crypt: AsyncCrypt } {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, "crypt") === "function";
}

/** The stored hash against the computed one, in constant time (the length follows from the scheme and salt). */
function sameHash(computed: string | null, stored: string): boolean {
  if (computed === null) return false;
  const expected = Buffer.from(stored, "utf8");
  const actual = Buffer.from(computed, "utf8");
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export class PasswordChecker {
  readonly mode: PasswordCheckMode;
  readonly #crypt: AsyncCrypt;
  readonly #pool: CryptWorkerPool | undefined;

  private constructor(mode: PasswordCheckMode, crypt: AsyncCrypt, pool?: CryptWorkerPool) {
    this.mode = mode;
    this.#crypt = crypt;
    this.#pool = pool;
  }

  /** The crypt addon when it loads (WASM_DSO_DISABLE_ADDONS=crypt refuses it), else a worker pool running `script`. */
  static select(script: URL = CRYPT_WORKER_SCRIPT, size: number = workerPoolSize()): PasswordChecker {
    const loaded = loadNativeAddon("crypt");
    if ("addon" in loaded && isCryptAddon(loaded.addon)) {
      const addon = loaded.addon;
      return new PasswordChecker({ kind: "native" }, (password, setting) => addon.crypt(password, setting));
    }
    const reason = "message" in loaded ? loaded.message : "the crypt addon has no crypt";
    const pool = new CryptWorkerPool(script, size);
    return new PasswordChecker({ kind: "workers", size, reason }, (p, s) => pool.crypt(p, s), pool);
  }

  /**
   * True when `password` hashes to `hash`, as crypt.ts's verifyCrypt answers,
   * computed off the event loop. A NUL in the password is refused: crypt(3)
   * would stop at it, so a prefix of the password would pass.
   */
  async verify(password: string, hash: string): Promise<boolean> {
    if (!SCHEMES.some((scheme) => hash.startsWith(scheme)) || password.includes("\u0000")) return false;
    return sameHash(await this.#crypt(password, hash), hash);
  }

  /** Resolves once the checker can run with dropped privileges (its workers have loaded their script). */
  ready(): Promise<void> {
    return this.#pool?.ready() ?? Promise.resolve();
  }

  /** What dsod says once at start when checks run degraded (after `mod_auth_file/1.0: `); undefined with the addon. */
  notice(): string | undefined {
    if (this.mode.kind === "native") return undefined;
    return `password checks run in ${this.mode.size} JavaScript worker threads (${this.mode.reason})`;
  }

  async close(): Promise<void> {
    await this.#pool?.close();
  }
}

let current: PasswordChecker | undefined;

/** The process's checker, chosen on first use. */
export function passwordChecker(): PasswordChecker {
  current ??= PasswordChecker.select();
  return current;
}
