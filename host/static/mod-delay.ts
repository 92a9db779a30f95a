/**
 * mod_delay.c, compiled in: a failed login is answered after the same time
 * whether the user exists or not, so the time of the reply does not tell an
 * attacker which names are real. As proftpd's mod_delay, it learns how long
 * PASS takes (the DelayTable, a row of the last 256 intervals per protocol,
 * at most 16 from any one session), and a failed PASS that was quicker than
 * the median waits for the rest, plus a random part.
 *
 * Where dsod differs, it is to make that promise hold:
 * - only PASS commands that compared a password are learnt (an unknown user's
 *   instant failures would drag the median down to nothing), and the table
 *   starts with one timed check (seed) so the first failures are covered;
 * - the random part is drawn from the median, not from the shortfall, so it is
 *   the same for a known user (no shortfall) and an unknown one;
 * - the wait is a timer: other sessions are served meanwhile (proftpd's
 *   select(2) blocks only its own session process).
 * USER is not timed: it answers every name alike, so it has nothing to hide.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { systemClock } from "../system/clock.js";
import type { Clock } from "../system/clock.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { CommandHandler, EngineModule, HandlerResult, Phase, SessionState } from "../modules/module-api.js";
import type { LogPriority } from "../modules/module-host.js";
import { booleanParam, checkArgs, directiveError, param } from "../config/directives.js";

/** DELAY_NVALUES: intervals kept per row. */
export const DELAY_NVALUES = 256;

/** DELAY_NVALUES / DELAY_SESS_NVALUES: what one session may add, so one client cannot poison the table. */
export const DELAY_SESSION_VALUES = 16;

/** DELAY_MAX_DELAY_USECS, in ms: no wait is longer. */
export const DELAY_MAX_MS = 1_800_000;

/** One DelayTable row: the last intervals, oldest first (delay_table_add_interval). */
export class DelayRow {
  readonly #values: number[] = [];

  add(intervalMs: number): void {
    this.#values.push(Math.min(intervalMs, DELAY_MAX_MS));
    if (this.#values.length > DELAY_NVALUES) this.#values.shift();
  }

  get size(): number {
    return this.#values.length;
  }

  /** delay_get_median's pick, the ((n + 1) / 2)th smallest; undefined for an empty row. */
  median(): number | undefined {
    if (this.#values.length === 0) return undefined;
    const sorted = [...this.#values].sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length + 1) / 2) - 1];
  }
}

/**
 * How long a failed PASS waits once its handlers are done: what it lacks of
 * the median, plus up to half the median at random (`random` in [0, 1)).
 */
export function failedLoginWait(median: number, intervalMs: number, random: number): number {
  return Math.min(DELAY_MAX_MS, Math.max(0, median - intervalMs) + (median / 2) * random);
}

/** delay_str_get_duration_ms: `MM:SS.mmm`, `Nms`, `Ns`/`Nsec`, or bare milliseconds. */
export function parseDelayDuration(text: string): number | undefined {
  const clock = /^([0-9]{1,2}):([0-9]{1,2})\.([0-9]{1,4})$/.exec(text);
  if (clock !== null) return Number(clock[1]) * 60_000 + Number(clock[2]) * 1000 + Number(clock[3]);
  const ms = /^([0-9]+)ms$/i.exec(text);
  if (ms !== null) return Number(ms[1]);
  const seconds = /^([0-9]+)(s|sec)$/i.exec(text);
  if (seconds !== null) return Number(seconds[1]) * 1000;
  return /^[0-9]+$/.test(text) ? Number(text) : undefined;
}

export interface DelaySettings {
  /** DelayEngine: on by default, as proftpd's. */
  engine: boolean;
  /** DelayTable: false for `none` (no learning; only DelayOnEvent waits). */
  table: boolean;
  /** DelayOnEvent: minimum waits in ms. */
  onEvent: { user: number; pass: number; failedLogin: number };
}

export interface DelayModuleOptions {
  /** Whether the session's last PASS compared a password (mod_auth.c knows). */
  readonly passwordChecked: (session: SessionState) => boolean;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly log?: (priority: LogPriority, message: string) => void;
}

export interface DelayModule {
  readonly module: EngineModule;
  readonly settings: DelaySettings;
  /** Adds one interval to every protocol's PASS row: the time a password check takes, measured at startup. */
  seed(intervalMs: number): void;
  /** The PASS row for a protocol (`ftp`, `ftps`), for tests and the daemon's log. */
  row(protocol: string): DelayRow;
}

/** pr_session_get_protocol(0): what mod_delay keys its rows by. */
function protocolOf(session: SessionState): string {
  return session.control.secure ? "ftps" : "ftp";
}

export function createDelayModule(options: DelayModuleOptions): DelayModule {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const settings: DelaySettings = { engine: true, table: true, onEvent: { user: 0, pass: 0, failedLogin: 0 } };
  const rows = new Map<string, DelayRow>([
    ["ftp", new DelayRow()],
    ["ftps", new DelayRow()],
  ]);
  const row = (protocol: string): DelayRow => {
    let found = rows.get(protocol);
    if (found === undefined) {
      found = new DelayRow();
      rows.set(protocol, found);
    }
    return found;
  };
  /** When each session's PASS arrived (delay_pre_pass), and how many intervals each session added. */
  const started = new WeakMap<SessionState, number>();
  const added = new WeakMap<SessionState, number>();

  const wait = (ms: number): HandlerResult | Promise<HandlerResult> => {
    if (ms <= 0) return HandlerResults.DECLINED;
    return new Promise((resolve) => clock.schedule(ms, () => resolve(HandlerResults.DECLINED)));
  };

  /** delay_post_pass: learn the interval of a PASS that checked a password; a failure waits for the median. */
  const afterPass =
    (failed: boolean) =>
    (_cmd: ActiveCommand, session: SessionState): HandlerResult | Promise<HandlerResult> => {
      const start = started.get(session);
      if (!settings.engine || start === undefined) return HandlerResults.DECLINED;
      started.delete(session);
      const interval = clock.now() - start;
      let ms = 0;
      if (settings.table) {
        const passRow = row(protocolOf(session));
        const count = added.get(session) ?? 0;
        if (options.passwordChecked(session) && count < DELAY_SESSION_VALUES) {
          passRow.add(interval);
          added.set(session, count + 1);
        }
        // Only a failure waits: a login that succeeded does not sort the row.
        const median = failed ? passRow.median() : undefined;
        if (median !== undefined) ms = failedLoginWait(median, interval, random());
      }
      const minimum = Math.max(settings.onEvent.pass, failed ? settings.onEvent.failedLogin : 0);
      return wait(Math.max(ms, minimum));
    };

  const on = (command: string, phase: Phase, run: CommandHandler["run"]): CommandHandler => ({ command, phase, run });

  const commands: CommandHandler[] = [
    on("PASS", Phases.PRE_CMD, (_cmd, session) => {
      // delay_post_pass skips a session already logged in ("authenticated").
      if (settings.engine && session.user === undefined) started.set(session, clock.now());
      return HandlerResults.DECLINED;
    }),
    on("PASS", Phases.POST_CMD, afterPass(false)),
    on("PASS", Phases.POST_CMD_ERR, afterPass(true)),
    on("USER", Phases.LOG_CMD, () => (settings.engine ? wait(settings.onEvent.user) : HandlerResults.DECLINED)),
    on("USER", Phases.LOG_CMD_ERR, () => (settings.engine ? wait(settings.onEvent.user) : HandlerResults.DECLINED)),
  ];

  const module: EngineModule = {
    name: "mod_delay.c",
    kind: "static",
    commands,
    siteCommands: [],
    directives: [
      {
        name: "DelayEngine",
        run: (d) => {
          checkArgs(d, 1);
          settings.engine = booleanParam(d, 1);
        },
      },
      {
        name: "DelayTable",
        run: (d, context) => {
          checkArgs(d, 1);
          const table = param(d, 1);
          if (table.toLowerCase() === "none") {
            settings.table = false;
            return;
          }
          if (!table.startsWith("/")) throw directiveError("must be an absolute path");
          settings.table = true;
          options.log?.(
            "notice",
            `DelayTable on line ${context.line} of '${context.file}' is accepted for compatibility only: dsod keeps the table in memory, not in '${table}'`,
          );
        },
      },
      {
        name: "DelayOnEvent",
        run: (d) => {
          checkArgs(d, 2);
          const event = param(d, 1);
          const keys: Readonly<Record<string, keyof DelaySettings["onEvent"]>> = {
            USER: "user",
            PASS: "pass",
            FailedLogin: "failedLogin",
          };
          const key = keys[event];
          if (key === undefined) throw directiveError(`unknown/unsupported event: ${event}`);
          const ms = parseDelayDuration(param(d, 2));
          if (ms === undefined)
            throw directiveError(`error parsing delay parameter '${param(d, 2)}': Invalid argument`);
          settings.onEvent[key] = Math.min(ms, DELAY_MAX_MS);
        },
      },
      {
        name: "DelayControlsACLs",
        run: () => {
          throw directiveError(
            "is not supported: dsod has no delay control actions (proftpd's ftpdctl delay info|reset)",
          );
        },
      },
    ],
    features: [],
    help: [],
  };
  return {
    module,
    settings,
    seed: (intervalMs) => {
      for (const each of rows.values()) each.add(intervalMs);
    },
    row,
  };
}
