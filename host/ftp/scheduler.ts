/**
 * Fair queueing of FTP commands between sessions.
 *
 * proftpd forks a process per session, and the kernel's scheduler shares the
 * CPU between them. dsod serves every session on one thread, so a session
 * whose commands each run a 200 ms handler, pipelined 20 deep, would hold the
 * daemon for 4 s while everyone else waited (issue #12). This scheduler
 * decides, command by command, which session goes next:
 *
 * - One command per grant, a slice of grants per turn. A session asks for
 *   its turn (`request()`, or `await turn()`) before each queued command. A
 *   request is granted at once when no other waits and the event loop has
 *   waited for I/O since the last grant (it had nothing else to do: whatever
 *   had arrived was read): a command read by an idle daemon starts without
 *   delay. Any other waits for the next turn of the event loop, after the
 *   loop has polled the sockets, so a command that arrived meanwhile
 *   competes. A turn grants waiting commands one after the other, each to the
 *   session that goes first at that moment, until the turn's slice of the
 *   daemon's time (TURN_SLICE_MS) is used: a session's pipelined commands
 *   are interleaved with everyone else's, however its caller chains them
 *   (synchronously, or in promise continuations: a command granted to a
 *   promise runs after its turn, where the slice cannot measure it, so it
 *   ends the turn). A session that is alone (nothing else waits, in the
 *   list or in the round) has its next request granted at once while the
 *   slice lasts and it is within its allowance, so a lone pipeline runs as
 *   one batch. The slice plays the kernel scheduler's timeslice in proftpd's
 *   process-per-session model: one grant per turn cost a turn of the loop (a
 *   poll of every socket) per command and held 50 pipelining sessions to
 *   about 40% of what the loop serves without a scheduler, while a command
 *   that uses the whole slice (a heavy handler) still ends its turn alone.
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

/** How long one turn of the loop grants commands before it lets the loop poll again (the daemon's default). */
export const TURN_SLICE_MS = 2;

/** Usage decays by e every this many ms: usage reads as ms used per second, recently. */
export const USAGE_TIME_CONSTANT_MS = 1000;

export interface SchedulerOptions {
  /** SessionCPUShare: ms per second a session may use; 0 for no allowance. DEFAULT_SESSION_CPU_SHARE_MS when absent. */
  readonly shareMs?: number;
  /** How long a turn grants commands, in ms of `now`; TURN_SLICE_MS when absent, 0 for one command per turn. */
  readonly sliceMs?: number;
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
  /**
   * ln(value) + at / USAGE_TIME_CONSTANT_MS: every usage decays by the same
   * factor over the same time, so this orders sessions by their usage at any
   * later instant without decaying each one.
   */
  rank: number;
}

/** A waiting command; granted entries are kept for the next request (#free), so a pipelined command allocates none. */
interface Waiting<Session> {
  session: Session;
  seq: number;
  onTurn: () => void;
  /** The session's usage rank when the round that holds the entry was drawn up (#takeRound). */
  rank: number;
}

const GRANTED: Promise<void> = Promise.resolve();

/** Decay computed in floating point lands a hair above the share at the instant it should meet it. */
const SHARE_SLACK = 1 + 1e-9;

function rankOf(value: number, at: number): number {
  return Math.log(value) + at / USAGE_TIME_CONSTANT_MS;
}

/** Least usage first, then the earliest. */
function goesFirst<Session>(a: Waiting<Session>, b: Waiting<Session>): number {
  return a.rank === b.rank ? a.seq - b.seq : a.rank < b.rank ? -1 : 1;
}

export class FairScheduler<Session> {
  #shareMs: number;
  readonly #sliceMs: number;
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
  readonly #free: Array<Waiting<Session>> = [];
  /** The round #grantSlice is granting (#takeRound); one list, refilled each round. */
  readonly #round: Array<Waiting<Session>> = [];
  #seq = 0;
  /** The loop's idle time at the last grant: until the loop has waited for I/O again, another request waits for a turn. */
  #idleAtGrant = Number.NaN;
  /** A call of #nextTurn is deferred to the next turn. */
  #deferred = false;
  /** When the pending wake-up for a session over its allowance fires (Infinity: none pending). */
  #wakeAt = Infinity;
  readonly #onNextTurn = (): void => this.#nextTurn();
  /** The last now() reading; NaN while a grant has taken none. */
  #lastReading = Number.NaN;
  /** When the turn's slice began, and how many commands of the round being granted are still to go. */
  #sliceStart = 0;
  #roundLeft = 0;
  /** #grantSlice is granting: the loop has not polled since the last grant. */
  #granting = false;
  /** The last grant's command runs after the turn (turn()'s promise): the slice ends with it. */
  #grantedLater = false;
  /** Called once the turn of grants that is running, or the next one, has ended (atTurnEnd). */
  readonly #turnEnd: Array<() => void> = [];

  constructor(options: SchedulerOptions) {
    this.#shareMs = options.shareMs ?? DEFAULT_SESSION_CPU_SHARE_MS;
    this.#sliceMs = options.sliceMs ?? TURN_SLICE_MS;
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
    if (this.#granting) {
      // The loop has not polled since the turn began. A session alone with commands to run keeps going while the
      // slice lasts (nothing else waits to go before it), within its allowance; any other request waits.
      const alone = this.#waiting.length === 0 && this.#roundLeft === 0;
      const now = this.#lastReading;
      if (alone && now - this.#sliceStart < this.#sliceMs && this.#eligibleAt(session) <= now) return true;
    } else if (this.#waiting.length === 0) {
      const idle = this.#idleTime();
      if (idle !== this.#idleAtGrant) {
        const eligibleAt = this.#eligibleAt(session);
        if (eligibleAt === -Infinity || eligibleAt <= this.#now()) {
          this.#idleAtGrant = idle;
          return true;
        }
      }
    }
    const entry = this.#free.pop();
    if (entry === undefined) {
      this.#waiting.push({ session, seq: this.#seq++, onTurn, rank: 0 });
    } else {
      entry.session = session;
      entry.seq = this.#seq++;
      entry.onTurn = onTurn;
      this.#waiting.push(entry);
    }
    this.#deferNextTurn();
    return false;
  }

  /**
   * Calls `done` once the turn of grants now running has ended, or the next
   * one when none runs: a session that waits for a grant writes the replies
   * it holds then, one write per turn, not one per command and not only once
   * its whole pipeline has had its turns (the client would wait for them).
   * A request that waits always has a turn coming, so `done` always runs.
   */
  atTurnEnd(done: () => void): void {
    this.#turnEnd.push(done);
  }

  /** A new SessionCPUShare (a SIGHUP's): applies from the next request on, to every session. */
  setShare(ms: number): void {
    this.#shareMs = ms;
    this.#deferNextTurn();
  }

  /**
   * `request()` for async code: resolves when `session` may start its next
   * command. Such a command runs after the turn that granted it, where the
   * slice cannot see what it costs: it ends its turn, one per turn.
   */
  turn(session: Session): Promise<void> {
    // Replaced before onTurn can run: it never runs within request().
    let grant = (): void => {};
    if (this.request(session, () => grant())) return GRANTED;
    return new Promise((resolve) => {
      grant = () => {
        this.#grantedLater = true;
        resolve();
      };
    });
  }

  /**
   * The scheduler's clock, to time the commands it grants with: a turn's
   * slice counts from the last reading taken during a grant, so a command
   * timed with it costs no reading of its own.
   */
  now(): number {
    const now = this.#now();
    this.#lastReading = now;
    return now;
  }

  /** Adds `ms`, the time a command of `session` held the daemon's thread until `at` (now), to its usage. */
  charge(session: Session, ms: number, at?: number): void {
    if (!(ms > 0)) return;
    const now = at ?? this.#now();
    const usage = this.#usage.get(session);
    if (usage === undefined) {
      this.#usage.set(session, { value: ms, at: now, rank: rankOf(ms, now) });
      return;
    }
    usage.value = this.#decayed(usage, now) + ms;
    usage.at = now;
    usage.rank = rankOf(usage.value, now);
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
    const eligibleAt = this.#eligibleAt(session);
    return eligibleAt !== -Infinity && eligibleAt > this.#now();
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
    return this.#eligibleAtOf(this.#usage.get(session));
  }

  #eligibleAtOf(usage: Usage | undefined): number {
    if (this.#shareMs === 0 || usage === undefined || usage.value <= this.#shareMs * SHARE_SLACK) return -Infinity;
    return usage.at + USAGE_TIME_CONSTANT_MS * Math.log(usage.value / this.#shareMs);
  }

  #deferNextTurn(): void {
    if (this.#deferred) return;
    this.#deferred = true;
    this.#defer(this.#onNextTurn);
  }

  /**
   * A new turn of the loop: grants the waiting command that goes first, then
   * the next that goes first (a command granted synchronously has run and
   * been charged by then, and its session may wait again), until the slice is
   * used or nothing waits within its allowance; what still waits looks again
   * on the next turn. When every waiting session is over its allowance, looks
   * again when the first of them is back within it.
   */
  #nextTurn(): void {
    // Requests made during the slice wait for the turn deferred at its end, if one is needed then.
    this.#deferred = true;
    this.#granting = true;
    const more = this.#grantSlice();
    this.#granting = false;
    this.#deferred = false;
    if (more) this.#deferNextTurn();
    const turnEnd = this.#turnEnd;
    // By index: a callback may register again (for the next turn).
    const ending = turnEnd.length;
    for (let i = 0; i < ending; i++) (turnEnd[i] as () => void)();
    turnEnd.splice(0, ending);
  }

  /**
   * Grants in rounds: every waiting command within its allowance, least
   * usage first, then the earliest; commands asked for during a round wait
   * for the next one, drawn up with the usage their sessions have by then.
   * What the slice leaves of a round waits for the next turn. True when
   * commands within their allowance wait for it.
   */
  #grantSlice(): boolean {
    const start = this.#now();
    this.#sliceStart = start;
    // The loop does not poll during the slice: its idle time stays what it is now.
    const idle = this.#idleTime();
    let now = start;
    for (;;) {
      const round = this.#takeRound(now);
      if (round.length === 0) {
        this.#wakeWhenEligible(now);
        return false;
      }
      for (let i = 0; i < round.length; i++) {
        this.#idleAtGrant = idle;
        this.#grantedLater = false;
        this.#lastReading = Number.NaN;
        this.#roundLeft = round.length - i - 1;
        this.#grant(round[i] as Waiting<Session>);
        now = Number.isNaN(this.#lastReading) ? this.#now() : this.#lastReading;
        const sliceUsed = this.#grantedLater || now - start >= this.#sliceMs;
        if (sliceUsed && i + 1 < round.length) {
          for (let rest = i + 1; rest < round.length; rest++) this.#waiting.push(round[rest] as Waiting<Session>);
          return true;
        }
      }
      if (this.#grantedLater || now - start >= this.#sliceMs) return this.#waiting.length > 0;
    }
  }

  /** Calls `entry`'s onTurn, the entry kept for a later request first (onTurn may make one). */
  #grant(entry: Waiting<Session>): void {
    const onTurn = entry.onTurn;
    this.#free.push(entry);
    onTurn();
  }

  /** Takes the waiting commands within their allowance off the list, in the order they go. */
  #takeRound(now: number): Array<Waiting<Session>> {
    const round = this.#round;
    round.length = 0;
    const waiting = this.#waiting;
    let kept = 0;
    for (const entry of waiting) {
      const usage = this.#usage.get(entry.session);
      if (this.#eligibleAtOf(usage) > now) {
        waiting[kept++] = entry;
        continue;
      }
      entry.rank = usage === undefined ? -Infinity : usage.rank;
      round.push(entry);
    }
    waiting.length = kept;
    return round.sort(goesFirst);
  }

  /** Takes `entry` off the list: the last entry moves into its place. */
  #remove(entry: Waiting<Session>): void {
    const waiting = this.#waiting;
    const last = waiting.pop() as Waiting<Session>;
    if (last !== entry) waiting[waiting.indexOf(entry)] = last;
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
