/**
 * The log and trace lines of a process that repeats a module-set change
 * another process has already made and reported: a session worker
 * (host/cluster/worker-modules.ts) builds the configuration, replays insmod
 * and rmmod, and unloads at SIGHUP and shutdown exactly as the primary's
 * reference host did, which logged and traced each of those steps once, as
 * proftpd's master does. The worker's copies of those lines are held while
 * it repeats the change, then dropped when it succeeds; when it fails, the
 * failure is this worker's alone (the primary's own attempt succeeded), so
 * its lines are written for the operator to see why.
 *
 * Sessions' lines always pass: a change runs synchronously, so no session
 * code runs while lines are held.
 */
import type { DaemonLog } from "./generation.js";

export class HeldLines {
  /** The writes held while a change is repeated; undefined when none is. */
  #held: (() => void)[] | undefined;

  /** Runs `write` now, or holds it while a change is repeated. */
  pass(write: () => void): void {
    if (this.#held === undefined) write();
    else this.#held.push(write);
  }

  /** `log`, its lines held while a change is repeated. */
  log(log: DaemonLog): DaemonLog {
    return (priority, message) => this.pass(() => log(priority, message));
  }

  /**
   * Runs `change`, a repeat of what another process logged and traced: its
   * lines are dropped when it returns, written (then the error rethrown)
   * when it throws.
   */
  repeat<T>(change: () => T): T {
    if (this.#held !== undefined) return change();
    const held: (() => void)[] = [];
    this.#held = held;
    try {
      const result = change();
      this.#held = undefined;
      return result;
    } catch (error) {
      this.#held = undefined;
      for (const write of held) write();
      throw error;
    }
  }
}
