/**
 * User and group lookups for the controls ACLs and ControlsLog lines. Node
 * has no getpwnam, so ask `getent` (which goes through NSS, like proftpd's
 * pr_auth_name2uid would via getpwnam), and read /etc/passwd and /etc/group
 * only where getent cannot run. Results are cached: ACL names are resolved
 * once at config load, peer ids once per connection for logging.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { IdResolver } from "../controls/acl.js";

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
}

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
  return gidText !== undefined && DIGITS.test(gidText) ? { name, id: Number(idText), gid: Number(gidText) } : { name, id: Number(idText) };
}

export function parseAccountFile(text: string): AccountEntry[] {
  return text.split("\n").flatMap((line) => parseAccountLine(line) ?? []);
}

export class SystemAccounts implements AccountResolver {
  readonly #getent: string | null;
  readonly #files: Readonly<Record<Database, string>>;
  readonly #byName = new Map<string, number | undefined>();
  readonly #byId = new Map<string, string>();

  constructor(options: SystemAccountsOptions = {}) {
    this.#getent = options.getent === undefined ? "getent" : options.getent;
    this.#files = {
      passwd: options.passwdFile ?? "/etc/passwd",
      group: options.groupFile ?? "/etc/group",
    };
  }

  uidOf(name: string): number | undefined {
    return this.#idOf("passwd", name);
  }

  /** The user's primary group id (passwd's fourth field), for `User` without `Group`. */
  primaryGidOf(name: string): number | undefined {
    if (name === "" || name.includes(":") || name.includes("\n")) return undefined;
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

  #idOf(db: Database, name: string): number | undefined {
    const key = `${db}:${name}`;
    if (this.#byName.has(key)) {
      return this.#byName.get(key);
    }
    // getent takes an all-digit key for an id, but proftpd resolves names
    // only (`allow user 0` matches nobody), so such keys go to the files.
    const found =
      name === "" || name.includes(":") || name.includes("\n")
        ? undefined
        : DIGITS.test(name)
          ? this.#fromFile(db, (entry) => entry.name === name)?.id
          : this.#lookup(db, name, (entry) => entry.name === name)?.id;
    this.#byName.set(key, found);
    return found;
  }

  #nameOf(db: Database, id: number): string {
    const key = `${db}:${id}`;
    const cached = this.#byId.get(key);
    if (cached !== undefined) {
      return cached;
    }
    const name = Number.isSafeInteger(id) && id >= 0
      ? (this.#lookup(db, String(id), (entry) => entry.id === id)?.name ?? String(id))
      : String(id);
    this.#byId.set(key, name);
    return name;
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
