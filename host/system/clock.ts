/**
 * Time as the data connection and transfers use it (TimeoutStalled,
 * TimeoutNoTransfer, the wait for a data connection, transfer durations):
 * injected, so tests move time on by hand instead of sleeping.
 */
export interface Clock {
  /** Milliseconds, only compared with each other. */
  now(): number;
  /** Runs `run` once after `ms`; returns the function that cancels it. */
  schedule(ms: number, run: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  schedule(ms, run) {
    const timer = setTimeout(run, ms);
    // A pending timeout must never keep the daemon (or a test run) alive on its own.
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Fires `expired` once nothing has been `touch`ed for `limitMs` (proftpd's
 * PR_TIMER_STALLED, reset by every read and write). Activity only records a
 * time; the one timer re-arms itself for what is left when it fires early.
 */
export class InactivityTimer {
  readonly #clock: Clock;
  readonly #limitMs: number;
  readonly #expired: () => void;
  #last: number;
  #cancel: (() => void) | undefined;

  constructor(clock: Clock, limitMs: number, expired: () => void) {
    this.#clock = clock;
    this.#limitMs = limitMs;
    this.#expired = expired;
    this.#last = clock.now();
    if (limitMs > 0) this.#arm(limitMs);
  }

  touch(): void {
    this.#last = this.#clock.now();
  }

  stop(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }

  #arm(ms: number): void {
    this.#cancel = this.#clock.schedule(ms, () => {
      const idle = this.#clock.now() - this.#last;
      if (idle >= this.#limitMs) {
        this.#cancel = undefined;
        this.#expired();
      } else {
        this.#arm(this.#limitMs - idle);
      }
    });
  }
}
