/**
 * The scoreboard across session workers, for the counts mod_auth makes at a
 * login (MaxClients, MaxClientsPerHost, MaxClientsPerUser): proftpd reads them
 * from its ScoreboardFile, which every session process writes; here the
 * primary keeps every worker's sessions: it adds one when it hands the
 * connection off (it knows the session id and the address), a worker tells it
 * of a login (IPC event "score"), and the worker's `closed` event ends the
 * entry; so one event a session crosses besides `closed`. At a check a worker
 * asks the primary for the other workers' entries over the sync channel: the
 * count must be known before the handler returns. A worker's own entries are
 * its live session states, read as they are.
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

/** A login in a worker, as it crosses: `id` is the session's, the one the primary handed off. */
export interface ScoreEvent {
  readonly id: number;
  readonly user: string;
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

/** The session id of an entry that is a session's state (SessionState.id); undefined for anything else. */
function sessionIdOf(entry: ScoreEntry): number | undefined {
  const id = (entry as { readonly id?: unknown }).id;
  return typeof id === "number" ? id : undefined;
}

/** A session worker's scoreboard: its own sessions, plus the other workers' as the primary knows them. */
export class WorkerScoreboard extends Scoreboard {
  readonly #peer: Pick<IpcPeer, "event">;
  readonly #channel: Pick<SyncChannel, "call">;
  readonly #index: number;
  readonly #own = new Set<ScoreEntry>();

  constructor(peer: Pick<IpcPeer, "event">, channel: Pick<SyncChannel, "call">, index: number) {
    super();
    this.#peer = peer;
    this.#channel = channel;
    this.#index = index;
  }

  // The primary added the entry at the hand-off and drops it at the session's `closed`: nothing crosses here.
  override add(entry: ScoreEntry): void {
    super.add(entry);
    this.#own.add(entry);
  }

  override changed(entry: ScoreEntry): void {
    const id = sessionIdOf(entry);
    if (id === undefined || entry.user === undefined || !this.#own.has(entry)) return;
    const event: ScoreEvent = { id, user: entry.user };
    this.#peer.event(SCORE_EVENT, event);
  }

  override delete(entry: ScoreEntry): void {
    super.delete(entry);
    this.#own.delete(entry);
  }

  /** This worker's entries (the session states themselves), then the other workers'. */
  override entries(): Iterable<ScoreEntry> {
    const query: ScoreboardQuery = { worker: this.#index };
    const others = this.#channel.call(SCOREBOARD_CALL, query) as WireEntry[];
    return [...super.entries(), ...others.map(scoreEntry)];
  }
}

/** The primary's record of every worker's entries, by session id: hand-offs, "score" events, `closed`. */
export class ScoreboardService {
  readonly #workers = new Map<number, Map<number, WireEntry>>();

  /** Session `id` from `remoteAddress` was handed to worker `workerIndex`: on the board, not logged in. */
  started(workerIndex: number, id: number, remoteAddress: string): void {
    const entries = this.#workers.get(workerIndex) ?? new Map<number, WireEntry>();
    this.#workers.set(workerIndex, entries);
    entries.set(id, { remoteAddress });
  }

  /** Applies one worker's login event; anything that is not a ScoreEvent, or names no session of it, is ignored. */
  onEvent(workerIndex: number, body: unknown): void {
    if (!isScoreEvent(body)) return;
    const entries = this.#workers.get(workerIndex);
    const entry = entries?.get(body.id);
    if (entry !== undefined) entries?.set(body.id, { ...entry, user: body.user });
  }

  /** Worker `workerIndex` says session `id` has closed. */
  closed(workerIndex: number, id: number): void {
    const entries = this.#workers.get(workerIndex);
    entries?.delete(id);
    if (entries?.size === 0) this.#workers.delete(workerIndex);
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
  const { id, user } = body as Record<string, unknown>;
  return typeof id === "number" && typeof user === "string";
}
