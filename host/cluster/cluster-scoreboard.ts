/**
 * The scoreboard across session workers, for the counts mod_auth makes at a
 * login (MaxClients, MaxClientsPerHost, MaxClientsPerUser): proftpd reads them
 * from its ScoreboardFile, which every session process writes; here each
 * worker tells the primary of its sessions (IPC event "score" when one is
 * added, logs in or ends) and, at a check, asks it for the other workers'
 * entries over the sync channel: the count must be known before the handler
 * returns. A worker's own entries are its live session states, read as they are.
 *
 * The primary's listener counts connections (MaxConnectionsPerHost) on its
 * own scoreboard at accept time; this one is about users.
 */
import { Scoreboard } from "../ftp/scoreboard.js";
import type { ScoreEntry } from "../ftp/scoreboard.js";
import type { BodyHandler, IpcPeer } from "./ipc.js";
import type { SyncChannel } from "./sync-channel.js";

/** The IPC event a worker sends for each change of its entries. */
export const SCORE_EVENT = "score";
/** The sync call for the other workers' entries. */
export const SCOREBOARD_CALL = "scoreboard";

/** One change of a worker's entries, as it crosses; `id` is the worker's number for the entry. */
export interface ScoreEvent {
  readonly op: "add" | "changed" | "delete";
  readonly id: number;
  readonly remoteAddress: string;
  readonly user?: string;
}

/** The sync call's body: who asks, so that its own entries are left out. */
export interface ScoreboardQuery {
  readonly worker: number;
}

/** An entry as it crosses: JSON leaves `user` out until the session has logged in. */
interface WireEntry {
  readonly remoteAddress: string;
  readonly user?: string;
}

function wireEntry(entry: ScoreEntry): WireEntry {
  return { remoteAddress: entry.remoteAddress, ...(entry.user !== undefined && { user: entry.user }) };
}

function scoreEntry(wire: WireEntry): ScoreEntry {
  return { remoteAddress: wire.remoteAddress, user: wire.user };
}

/** A session worker's scoreboard: its own sessions, plus the other workers' as the primary knows them. */
export class WorkerScoreboard extends Scoreboard {
  readonly #peer: Pick<IpcPeer, "event">;
  readonly #channel: Pick<SyncChannel, "call">;
  readonly #index: number;
  readonly #ids = new Map<ScoreEntry, number>();
  #nextId = 1;

  constructor(peer: Pick<IpcPeer, "event">, channel: Pick<SyncChannel, "call">, index: number) {
    super();
    this.#peer = peer;
    this.#channel = channel;
    this.#index = index;
  }

  override add(entry: ScoreEntry): void {
    super.add(entry);
    if (this.#ids.has(entry)) return;
    const id = this.#nextId++;
    this.#ids.set(entry, id);
    this.#tell("add", id, entry);
  }

  override changed(entry: ScoreEntry): void {
    const id = this.#ids.get(entry);
    if (id !== undefined) this.#tell("changed", id, entry);
  }

  override delete(entry: ScoreEntry): void {
    super.delete(entry);
    const id = this.#ids.get(entry);
    if (id === undefined) return;
    this.#ids.delete(entry);
    this.#tell("delete", id, entry);
  }

  /** This worker's entries (the session states themselves), then the other workers'. */
  override entries(): Iterable<ScoreEntry> {
    const query: ScoreboardQuery = { worker: this.#index };
    const others = this.#channel.call(SCOREBOARD_CALL, query) as WireEntry[];
    return [...super.entries(), ...others.map(scoreEntry)];
  }

  #tell(op: ScoreEvent["op"], id: number, entry: ScoreEntry): void {
    const event: ScoreEvent = { op, id, ...wireEntry(entry) };
    this.#peer.event(SCORE_EVENT, event);
  }
}

/** The primary's record of every worker's entries, fed by their "score" events. */
export class ScoreboardService {
  readonly #workers = new Map<number, Map<number, WireEntry>>();

  /** Applies one worker's event; anything that is not a ScoreEvent is ignored. */
  onEvent(workerIndex: number, body: unknown): void {
    if (!isScoreEvent(body)) return;
    const entries = this.#workers.get(workerIndex) ?? new Map<number, WireEntry>();
    this.#workers.set(workerIndex, entries);
    if (body.op === "delete") entries.delete(body.id);
    else if (body.op === "add" || entries.has(body.id)) entries.set(body.id, wireEntry(scoreEntry(body)));
    if (entries.size === 0) this.#workers.delete(workerIndex);
  }

  /** A worker is gone: its sessions with it. */
  dropWorker(index: number): void {
    this.#workers.delete(index);
  }

  /** Every worker's entries but `worker`'s, in worker order. */
  others(worker: number): ScoreEntry[] {
    return [...this.#workers]
      .filter(([index]) => index !== worker)
      .sort(([a], [b]) => a - b)
      .flatMap(([, entries]) => [...entries.values()].map(scoreEntry));
  }

  /** For serveSyncChannel: the "scoreboard" call. */
  handlers(): Readonly<Record<string, BodyHandler<unknown>>> {
    return {
      [SCOREBOARD_CALL]: (query: ScoreboardQuery): WireEntry[] => this.others(query.worker).map(wireEntry),
    };
  }
}

function isScoreEvent(body: unknown): body is ScoreEvent {
  if (typeof body !== "object" || body === null) return false;
  const { op, id, remoteAddress, user } = body as Record<string, unknown>;
  return (
    (op === "add" || op === "changed" || op === "delete") &&
    typeof id === "number" &&
    typeof remoteAddress === "string" &&
    (user === undefined || typeof user === "string")
  );
}
