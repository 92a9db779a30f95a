/**
 * The sessions now open, as proftpd's ScoreboardFile lists its session
 * processes: what MaxConnectionsPerHost, MaxClients, MaxClientsPerHost and
 * MaxClientsPerUser count. dsod's sessions live in one process, so the
 * scoreboard is this set, never a file.
 */

/** A Max* limit: the count (0 for none) and the reply text, `%m` standing for the count. */
export interface ConnectionLimit {
  readonly max: number;
  readonly message: string;
}

/** A limit's reply with its count in place of `%m`, as sreplace() writes it. */
export function limitReply(limit: ConnectionLimit): string {
  return limit.message.replaceAll("%m", String(limit.max));
}

/** What a scoreboard entry records of a session (pr_scoreboard_entry_t's client address and user). */
export interface ScoreEntry {
  readonly remoteAddress: string;
  /** undefined until the session has logged in: proftpd's `(none)`. */
  readonly user: string | undefined;
}

export class Scoreboard {
  readonly #entries = new Set<ScoreEntry>();

  add(entry: ScoreEntry): void {
    this.#entries.add(entry);
  }

  delete(entry: ScoreEntry): void {
    this.#entries.delete(entry);
  }

  /**
   * `entry`'s user was just set (a login). Nothing to do here, where entries
   * are read live; a session worker's scoreboard tells the primary, so that
   * other workers count the login (host/cluster/cluster-scoreboard.ts).
   */
  changed(_entry: ScoreEntry): void {}

  entries(): Iterable<ScoreEntry> {
    return this.#entries;
  }
}

/**
 * auth_scan_scoreboard's count for MaxConnectionsPerHost: every session from
 * `address`, logged in or not, the new one included (it is on the scoreboard
 * by then).
 */
export function connectionsFrom(entries: Iterable<ScoreEntry>, address: string): number {
  let count = 0;
  for (const entry of entries) if (entry.remoteAddress === address) count++;
  return count;
}

export interface ClientCounts {
  /** Logged-in sessions (MaxClients). */
  readonly clients: number;
  /** Logged-in sessions from the client's address (MaxClientsPerHost). */
  readonly fromHost: number;
  /** Sessions logged in as the user (MaxClientsPerUser). */
  readonly forUser: number;
}

/**
 * auth_count_scoreboard: only logged-in sessions count, "as per the
 * documentation". `self` is the session logging in as `user`: proftpd's own
 * entry already names the user at that point, so it is counted as logged in.
 */
export function countClients(entries: Iterable<ScoreEntry>, self: ScoreEntry, user: string): ClientCounts {
  let clients = 1;
  let fromHost = 1;
  let forUser = 1;
  for (const entry of entries) {
    if (entry === self || entry.user === undefined) continue;
    clients++;
    if (entry.remoteAddress === self.remoteAddress) fromHost++;
    if (entry.user === user) forUser++;
  }
  return { clients, fromHost, forUser };
}
