/**
 * User and group lookups for the controls ACLs, ControlsLog lines and logins.
 * Node has no getpwnam, so ask `getent` (which goes through NSS, like
 * proftpd's pr_auth_name2uid would via getpwnam), and read /etc/passwd and
 * /etc/group only where getent cannot run. The synchronous look-ups are for
 * config parsing, before the daemon serves anyone; what runs while it serves
 * (a controls connection's peer, a login's group) uses the asynchronous ones,
 * which never stop the event loop. Answers are cached, a bounded number of
 * them, and "no such account" only for a while, so an account added later is
 * found.
 */
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** Name-to-id lookups, as pr_auth_name2uid/name2gid: undefined when unknown. */
export interface IdResolver {
  uidOf(name: string): number | undefined;
  gidOf(name: string): number | undefined;
}

export interface AccountResolver extends IdResolver {
  /** The user name for logging; the number itself when unknown, as pr_auth_uid2name. */
  userName(uid: number): string;
  /** The group name for logging; the number itself when unknown, as pr_auth_gid2name. */
  groupName(gid: number): string;
}

export interface AccountEntry {
  readonly name: string;
  readonly id: number;
  /** passwd(5) only: the primary group's id (group(5) lines have the members there). */
  readonly gid?: number;
}

export interface SystemAccountsOptions {
  /** The getent program, or null to use the files only. */
  readonly getent?: string | null;
  readonly passwdFile?: string;
  readonly groupFile?: string;
  /** The clock "not found" answers expire by, in milliseconds; Date.now unless given. */
  readonly now?: () => number;
  /** How many answers are kept in each direction (name to id, id to name); the least recently used go first. */
  readonly cacheSize?: number;
  /** How long a "not found" answer is kept, in milliseconds. */
  readonly negativeTtlMs?: number;
}

/** Enough for every account a busy daemon's peers and logins name, small enough to stay cheap. */
export const DEFAULT_ACCOUNT_CACHE_SIZE = 1024;
/** An account created while the daemon runs is found within a minute. */
export const DEFAULT_NEGATIVE_TTL_MS = 60_000;

type Database = "passwd" | "group";

const DIGITS = /^[0-9]+$/;
/** getent's "key not found" exit status; anything else means it could not answer. */
const GETENT_NOT_FOUND = 2;
const GETENT_TIMEOUT_MS = 5000;

/**
 * Reads one `name:password:id:...` line, the shape shared by passwd(5) and
 * group(5) and by getent's output. NIS compat lines (`+`, `-`) and comments
 * are not entries.
 */
export function parseAccountLine(line: string): AccountEntry | undefined {
  const [name, , idText, gidText] = line.split(":");
  if (name === undefined || name === "" || idText === undefined || !DIGITS.test(idText)) {
    return undefined;
  }
  if (name.startsWith("#") || name.startsWith("+") || name.startsWith("-")) {
    return undefined;
  }
  return gidText !== undefined && DIGITS.test(gidText)
    ? { name, id: Number(idText), gid: Number(gidText) }
    : { name, id: Number(idText) };
}

export function parseAccountFile(text: string): AccountEntry[] {
  return text.split("\n").flatMap((line) => parseAccountLine(line) ?? []);
}

/** A kept answer; `expires` is Infinity for an account that was found. */
interface Answer<T> {
  readonly value: T;
  readonly expires: number;
}

/** Answers by key, least recently used first, at most `size` of them. */
class AnswerCache<T> {
  readonly #answers = new Map<string, Answer<T>>();
  readonly #size: number;

  constructor(size: number) {
    this.#size = size;
  }

  get(key: string, now: number): Answer<T> | undefined {
    const answer = this.#answers.get(key);
    if (answer === undefined) return undefined;
    this.#answers.delete(key);
    if (answer.expires <= now) return undefined;
    this.#answers.set(key, answer);
    return answer;
  }

  set(key: string, answer: Answer<T>): void {
    this.#answers.delete(key);
    this.#answers.set(key, answer);
    if (this.#answers.size > this.#size) this.#answers.delete(this.#answers.keys().next().value as string);
  }
}

export class SystemAccounts implements AccountResolver {
  readonly #getent: string | null;
  readonly #files: Readonly<Record<Database, string>>;
  readonly #now: () => number;
  readonly #negativeTtlMs: number;
  readonly #byName: AnswerCache<number | undefined>;
  readonly #byId: AnswerCache<string>;
  /** Asynchronous look-ups under way, so that peers of one uid arriving together start one getent. */
  readonly #pending = new Map<string, Promise<string>>();

  constructor(options: SystemAccountsOptions = {}) {
    this.#getent = options.getent === undefined ? "getent" : options.getent;
    this.#files = {
      passwd: options.passwdFile ?? "/etc/passwd",
      group: options.groupFile ?? "/etc/group",
    };
    this.#now = options.now ?? Date.now;
    this.#negativeTtlMs = options.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS;
    const size = options.cacheSize ?? DEFAULT_ACCOUNT_CACHE_SIZE;
    this.#byName = new AnswerCache(size);
    this.#byId = new AnswerCache(size);
  }

  uidOf(name: string): number | undefined {
    return this.#idOf("passwd", name);
  }

  /** The user's primary group id (passwd's fourth field), for `User` without `Group`. */
  primaryGidOf(name: string): number | undefined {
    if (!usableName(name)) return undefined;
    const match = (entry: AccountEntry): boolean => entry.name === name;
    return (DIGITS.test(name) ? this.#fromFile("passwd", match) : this.#lookup("passwd", name, match))?.gid;
  }

  gidOf(name: string): number | undefined {
    return this.#idOf("group", name);
  }

  userName(uid: number): string {
    return this.#nameOf("passwd", uid);
  }

  groupName(gid: number): string {
    return this.#nameOf("group", gid);
  }

  /** userName, without blocking: getent runs as a child process and the files are read asynchronously. */
  lookupUserName(uid: number): Promise<string> {
    return this.#nameOfAsync("passwd", uid);
  }

  /** groupName, without blocking. */
  lookupGroupName(gid: number): Promise<string> {
    return this.#nameOfAsync("group", gid);
  }

  #idOf(db: Database, name: string): number | undefined {
    const key = `${db}:${name}`;
    const cached = this.#byName.get(key, this.#now());
    if (cached !== undefined) return cached.value;
    // getent takes an all-digit key for an id, but proftpd resolves names
    // only (`allow user 0` matches nobody), so such keys go to the files.
    const found = !usableName(name)
      ? undefined
      : DIGITS.test(name)
        ? this.#fromFile(db, (entry) => entry.name === name)?.id
        : this.#lookup(db, name, (entry) => entry.name === name)?.id;
    this.#byName.set(key, this.#answer(found, found !== undefined));
    return found;
  }

  #nameOf(db: Database, id: number): string {
    const key = `${db}:${id}`;
    const cached = this.#byId.get(key, this.#now());
    if (cached !== undefined) return cached.value;
    const entry = validId(id) ? this.#lookup(db, String(id), (e) => e.id === id) : undefined;
    return this.#keepName(key, id, entry);
  }

  #nameOfAsync(db: Database, id: number): Promise<string> {
    const key = `${db}:${id}`;
    const cached = this.#byId.get(key, this.#now());
    if (cached !== undefined) return Promise.resolve(cached.value);
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      const lookup = validId(id) ? this.#lookupAsync(db, String(id), (e) => e.id === id) : Promise.resolve(undefined);
      pending = lookup.then((entry) => {
        this.#pending.delete(key);
        return this.#keepName(key, id, entry);
      });
      this.#pending.set(key, pending);
    }
    return pending;
  }

  /** pr_auth_uid2name's answer: the name, or the number itself when the system has none. */
  #keepName(key: string, id: number, entry: AccountEntry | undefined): string {
    const name = entry?.name ?? String(id);
    this.#byId.set(key, this.#answer(name, entry !== undefined));
    return name;
  }

  #answer<T>(value: T, found: boolean): Answer<T> {
    return { value, expires: found ? Infinity : this.#now() + this.#negativeTtlMs };
  }

  #lookup(db: Database, key: string, match: (entry: AccountEntry) => boolean): AccountEntry | undefined {
    const answer = this.#getentLookup(db, key);
    return answer === "unavailable" ? this.#fromFile(db, match) : answer;
  }

  #getentLookup(db: Database, key: string): AccountEntry | undefined | "unavailable" {
    if (this.#getent === null) {
      return "unavailable";
    }
    try {
      // `--` so that a name starting with `-` is not taken for an option.
      const out = execFileSync(this.#getent, ["--", db, key], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: GETENT_TIMEOUT_MS,
      });
      return parseAccountLine(out.split("\n")[0] ?? "");
    } catch (error) {
      const status: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "status") : undefined;
      return status === GETENT_NOT_FOUND ? undefined : "unavailable";
    }
  }

  async #lookupAsync(
    db: Database,
    key: string,
    match: (entry: AccountEntry) => boolean,
  ): Promise<AccountEntry | undefined> {
    const answer = await this.#getentAsync(db, key);
    if (answer !== "unavailable") return answer;
    let text: string;
    try {
      text = await readFile(this.#files[db], "utf8");
    } catch {
      return undefined;
    }
    return parseAccountFile(text).find(match);
  }

  #getentAsync(db: Database, key: string): Promise<AccountEntry | undefined | "unavailable"> {
    const getent = this.#getent;
    if (getent === null) return Promise.resolve("unavailable");
    return new Promise((resolve) => {
      const options = { encoding: "utf8", timeout: GETENT_TIMEOUT_MS } as const;
      execFile(getent, ["--", db, key], options, (error, stdout) => {
        if (error === null) resolve(parseAccountLine(stdout.split("\n")[0] ?? ""));
        // A number is getent's exit status; a string (ENOENT) means it could not run.
        else resolve(error.code === GETENT_NOT_FOUND ? undefined : "unavailable");
      });
    });
  }

  #fromFile(db: Database, match: (entry: AccountEntry) => boolean): AccountEntry | undefined {
    let text: string;
    try {
      text = readFileSync(this.#files[db], "utf8");
    } catch {
      return undefined;
    }
    return parseAccountFile(text).find(match);
  }
}

/** Names with `:` or a newline would be read as another field or line of getent's answer. */
function usableName(name: string): boolean {
  return name !== "" && !name.includes(":") && !name.includes("\n");
}

function validId(id: number): boolean {
  return Number.isSafeInteger(id) && id >= 0;
}
