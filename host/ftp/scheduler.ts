/**
 * Fair queueing of FTP commands between sessions.
 *
 * proftpd forks a process per session, and the kernel's scheduler shares the
 * CPU between them. dsod serves every session on one thread, so a session
 * whose commands each run a 200 ms handler, pipelined 20 deep, would hold the
 * daemon for 4 s while everyone else waited (issue #12). This scheduler
 * decides, command by command, which session goes next:
 *
 * - One command per turn. A session asks for its turn (`request()`, or
 *   `await turn()`) before each queued command. A request is granted at once
 *   when no other waits and the event loop has waited for I/O since the last
 *   grant (it had nothing else to do: whatever had arrived was read): a
 *   command read by an idle daemon starts without delay. Any other waits, and
 *   one waiting command is granted per turn of the event loop, on the turn
 *   after the loop has polled the sockets, so a command that arrived
 *   meanwhile competes for it: a session's pipelined commands are taken one
 *   per turn, interleaved with everyone else's, however its caller chains
 *   them (synchronously, or in promise continuations).
 * - The session that used the least of the daemon recently goes first, then
 *   the one whose command arrived first. Each session's usage is the time its
 *   commands held the daemon's thread (what its caller charges), decaying
 *   exponentially with a time constant of one second, so it reads as the ms
 *   per second the session has been using (a session steadily using r ms per
 *   second converges to r). A heavy session's next command thus waits behind
 *   every lighter session's, and a bystander waits about one command of the
 *   heavy ones at most.
 * - Each session has an allowance (SessionCPUShare, ms per second): a session
 *   whose usage is over it waits, even on an idle daemon, until its usage has
 *   decayed back to it, so one session never takes more than its share of the
 *   daemon for long. A share of 0 turns the allowance off: sessions are then
 *   only ordered, and a lone heavy session runs flat out.
 *
 * Only the start of a command is scheduled: what it awaits afterwards (a
 * transfer) interleaves with other sessions as before.
 *
 * Pure: the clocks and the hooks into the event loop are injected
 * (performance.now, performance.nodeTiming.idleTime, setImmediate and
 * setTimeout in the daemon), so tests drive it turn by turn and the order it
 * grants is exact.
 */

/** Default SessionCPUShare: a quarter of the daemon's thread, as the default ModuleCPULimit of one call, per second. */
export const DEFAULT_SESSION_CPU_SHARE_MS = 250;

/** Usage decays by e every this many ms: usage reads as ms used per second, recently. */
export const USAGE_TIME_CONSTANT_MS = 1000;

export interface SchedulerOptions {
  /** SessionCPUShare: ms per second a session may use; 0 for no allowance. DEFAULT_SESSION_CPU_SHARE_MS when absent. */
  readonly shareMs?: number;
  /** A monotonic clock in ms (performance.now). */
  readonly now: () => number;
  /** How long the event loop has waited for I/O in all (performance.nodeTiming.idleTime): it grows only while the loop has nothing to do. */
  readonly idleTime: () => number;
  /** Calls `next` on the next turn of the event loop, after the loop has polled for I/O (setImmediate). */
  readonly defer: (next: () => void) => void;
  /** Calls `wake` in `ms` ms (setTimeout): when a session over its allowance may go again. */
  readonly later: (ms: number, wake: () => void) => void;
}

interface Usage {
  /** ms, decayed to `at`. */
  value: number;
  at: number;
}

interface Waiting<Session> {
  readonly session: Session;
  readonly seq: number;
  readonly onTurn: () => void;
}

const GRANTED: Promise<void> = Promise.resolve();

/** Decay computed in floating point lands a hair above the share at the instant it should meet it. */
const SHARE_SLACK = 1 + 1e-9;

export class FairScheduler<Session> {
  #shareMs: number;
  readonly #now: () => number;
  readonly #idleTime: () => number;
  readonly #defer: (next: () => void) => void;
  readonly #later: (ms: number, wake: () => void) => void;
  readonly #usage = new Map<Session, Usage>();
  /**
   * Every session's waiting commands, in no particular order (each has its
   * arrival number): a flat list whose entries are swapped out when granted,
   * so a grant allocates nothing (a Map of per-session queues reallocated its
   * table as sessions came and went, on every pipelined command).
   */
  readonly #waiting: Array<Waiting<Session>> = [];
  #seq = 0;
  /** The loop's idle time at the last grant: until the loop has waited for I/O again, another request waits for a turn. */
  #idleAtGrant = Number.NaN;
  /** A call of #nextTurn is deferred to the next turn. */
  #deferred = false;
  /** When the pending wake-up for a session over its allowance fires (Infinity: none pending). */
  #wakeAt = Infinity;
  readonly #onNextTurn = (): void => this.#nextTurn();

  constructor(options: SchedulerOptions) {
    this.#shareMs = options.shareMs ?? DEFAULT_SESSION_CPU_SHARE_MS;
    this.#now = options.now;
    this.#idleTime = options.idleTime;
    this.#defer = options.defer;
    this.#later = options.later;
  }

  /**
   * Asks for `session`'s next command to start. True: it may start now.
   * False: `onTurn` is called, once, on the turn of the loop when it may; the
   * command starts then. The synchronous form keeps a command that starts at
   * once free of any promise.
   */
  request(session: Session, onTurn: () => void): boolean {
    if (this.#waiting.length === 0) {
      const idle = this.#idleTime();
      const eligibleAt = idle === this.#idleAtGrant ? Infinity : this.#eligibleAt(session);
      if (eligibleAt === -Infinity || eligibleAt <= this.#now()) {
        this.#idleAtGrant = idle;
        return true;
      }
    }
    this.#waiting.push({ session, seq: this.#seq++, onTurn });
    this.#deferNextTurn();
    return false;
  }

  /** A new SessionCPUShare (a SIGHUP's): applies from the next request on, to every session. */
  setShare(ms: number): void {
    this.#shareMs = ms;
    this.#deferNextTurn();
  }

  /** `request()` for async code: resolves when `session` may start its next command. */
  turn(session: Session): Promise<void> {
    // Replaced before onTurn can run: it never runs within request().
    let grant = (): void => {};
    if (this.request(session, () => grant())) return GRANTED;
    return new Promise((resolve) => {
      grant = resolve;
    });
  }

  /** Adds `ms`, the time a command of `session` held the daemon's thread, to its usage. */
  charge(session: Session, ms: number): void {
    if (!(ms > 0)) return;
    const now = this.#now();
    const usage = this.#usage.get(session);
    if (usage === undefined) {
      this.#usage.set(session, { value: ms, at: now });
      return;
    }
    usage.value = this.#decayed(usage, now) + ms;
    usage.at = now;
  }

  /** A session that ended: its usage is dropped and its waiting turns are granted at once, so its loop can see it closed. */
  forget(session: Session): void {
    this.#usage.delete(session);
    const granted = this.#waiting.filter((entry) => entry.session === session).sort((a, b) => a.seq - b.seq);
    for (const entry of granted) this.#remove(entry);
    for (const entry of granted) entry.onTurn();
  }

  /**
   * True when `session` is over its allowance now: its next turn waits for
   * its usage to decay, not only for the next turn of the loop.
   */
  throttled(session: Session): boolean {
    return this.#eligibleAt(session) > this.#now();
  }

  /** `session`'s recent usage now, in ms (about the ms per second it has been using). */
  usage(session: Session): number {
    const usage = this.#usage.get(session);
    return usage === undefined ? 0 : this.#decayed(usage, this.#now());
  }

  /** Commands waiting for their turn, over all sessions. */
  get waiting(): number {
    return this.#waiting.length;
  }

  #decayed(usage: Usage, now: number): number {
    const elapsed = now - usage.at;
    return elapsed > 0 ? usage.value * Math.exp(-elapsed / USAGE_TIME_CONSTANT_MS) : usage.value;
  }

  /** When `session`'s usage is back within its allowance (-Infinity when it has none or never was over). */
  #eligibleAt(session: Session): number {
    const usage = this.#usage.get(session);
    if (this.#shareMs === 0 || usage === undefined || usage.value <= this.#shareMs * SHARE_SLACK) return -Infinity;
    return usage.at + USAGE_TIME_CONSTANT_MS * Math.log(usage.value / this.#shareMs);
  }

  #deferNextTurn(): void {
    if (this.#deferred) return;
    this.#deferred = true;
    this.#defer(this.#onNextTurn);
  }

  /**
   * A new turn of the loop: grants the waiting command that goes first, if
   * any, and looks again on the next turn; when every waiting session is over
   * its allowance, looks again when the first of them is back within it.
   */
  #nextTurn(): void {
    this.#deferred = false;
    const now = this.#now();
    const entry = this.#pick(now);
    if (entry === undefined) {
      this.#wakeWhenEligible(now);
      return;
    }
    this.#remove(entry);
    this.#idleAtGrant = this.#idleTime();
    if (this.#waiting.length > 0) this.#deferNextTurn();
    entry.onTurn();
  }

  /** Takes `entry` off the list: the last entry moves into its place. */
  #remove(entry: Waiting<Session>): void {
    const waiting = this.#waiting;
    const last = waiting.pop() as Waiting<Session>;
    if (last !== entry) waiting[waiting.indexOf(entry)] = last;
  }

  /**
   * Among waiting sessions within their allowance: the least usage, then the
   * earliest command; a session's own commands thus go in arrival order.
   */
  #pick(now: number): Waiting<Session> | undefined {
    let best: Waiting<Session> | undefined;
    let bestUsage = 0;
    for (const entry of this.#waiting) {
      if (this.#eligibleAt(entry.session) > now) continue;
      const recorded = this.#usage.get(entry.session);
      const usage = recorded === undefined ? 0 : this.#decayed(recorded, now);
      if (best === undefined || usage < bestUsage || (usage === bestUsage && entry.seq < best.seq)) {
        best = entry;
        bestUsage = usage;
      }
    }
    return best;
  }

  #wakeWhenEligible(now: number): void {
    let due = Infinity;
    for (const entry of this.#waiting) due = Math.min(due, this.#eligibleAt(entry.session));
    if (due === Infinity || due >= this.#wakeAt) return;
    this.#wakeAt = due;
    this.#later(Math.max(0, due - now), () => {
      if (this.#wakeAt === due) this.#wakeAt = Infinity;
      this.#deferNextTurn();
    });
  }
}
