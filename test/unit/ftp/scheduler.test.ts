/**
 * The fair-queueing scheduler, driven turn by turn: a manual clock, a manual
 * idle counter and a manual event loop. `turn()` runs what was deferred to
 * the turn, then lets granted commands run (their promise continuations);
 * with nothing deferred, the loop waits for I/O (its idle time grows) until
 * the first timer, which it fires. `waitForIo()` is the loop waiting for the
 * next command to arrive.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_SESSION_CPU_SHARE_MS,
  FairScheduler,
  TURN_SLICE_MS,
  USAGE_TIME_CONSTANT_MS,
} from "../../../host/ftp/scheduler.js";

class Loop {
  now = 0;
  idle = 0;
  #deferred: Array<() => void> = [];
  #timers: Array<{ at: number; wake: () => void }> = [];
  readonly defer = (next: () => void): void => {
    this.#deferred.push(next);
  };
  readonly later = (ms: number, wake: () => void): void => {
    this.#timers.push({ at: this.now + ms, wake });
  };

  async turn(): Promise<void> {
    if (this.#deferred.length === 0) {
      this.idle++;
      this.#timers.sort((a, b) => a.at - b.at);
      const timer = this.#timers.shift();
      if (timer !== undefined) {
        this.now = Math.max(this.now, timer.at);
        timer.wake();
      }
    }
    const due = this.#deferred.splice(0);
    for (const next of due) next();
    await settle();
  }

  waitForIo(): void {
    this.idle++;
  }

  get pending(): number {
    return this.#deferred.length + this.#timers.length;
  }
}

/** Lets every promise continuation that is ready run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

interface Setup {
  readonly loop: Loop;
  readonly scheduler: FairScheduler<string>;
  readonly granted: string[];
  /** Asks for a turn for `session`; `label` goes into `granted` when it comes. Returns whether it came at once. */
  readonly submit: (session: string, label?: string) => boolean;
}

function setup(shareMs?: number, sliceMs?: number): Setup {
  const loop = new Loop();
  const scheduler = new FairScheduler<string>({
    now: () => loop.now,
    idleTime: () => loop.idle,
    defer: loop.defer,
    later: loop.later,
    ...(shareMs !== undefined && { shareMs }),
    ...(sliceMs !== undefined && { sliceMs }),
  });
  const granted: string[] = [];
  const submit = (session: string, label = session): boolean => {
    const now = scheduler.request(session, () => granted.push(label));
    if (now) granted.push(label);
    return now;
  };
  return { loop, scheduler, granted, submit };
}

/**
 * `session` pipelining `count` commands of `costMs` each, as session.ts runs
 * them: synchronously in the grant, timed with the scheduler's clock (the
 * slice counts from those readings), charged, then asking for the next.
 */
function pipeline(setup: Setup, session: string, count: number, costMs: number): void {
  const { loop, scheduler, granted } = setup;
  let sent = 0;
  const run = (): void => {
    for (;;) {
      sent++;
      granted.push(`${session}${sent}`);
      const started = scheduler.now();
      loop.now += costMs;
      const ended = scheduler.now();
      scheduler.charge(session, ended - started, ended);
      if (sent === count || !scheduler.request(session, run)) return;
    }
  };
  if (scheduler.request(session, run)) run();
}

describe("FairScheduler: one command per grant", () => {
  it("starts a command at once when the loop had waited for it; a second before the loop waits again takes a turn", async () => {
    // A slice of 0: one grant per turn, to see each.
    const { loop, granted, submit } = setup(undefined, 0);
    expect(submit("a", "a1")).toBe(true);
    expect(submit("a", "a2")).toBe(false);
    expect(submit("b", "b1")).toBe(false);
    expect(granted).toEqual(["a1"]);
    await loop.turn();
    expect(granted).toEqual(["a1", "a2"]);
    await loop.turn();
    expect(granted).toEqual(["a1", "a2", "b1"]);
    // Nothing waits and nothing more is deferred; a command arriving after the loop waited starts at once.
    expect(loop.pending).toBe(0);
    loop.waitForIo();
    expect(submit("b", "b2")).toBe(true);
    // Without the loop waiting in between, even a lone session's next command takes a turn.
    expect(submit("b", "b3")).toBe(false);
    await loop.turn();
    expect(granted).toEqual(["a1", "a2", "b1", "b2", "b3"]);
  });

  it("takes a session's commands chained in promise continuations one per turn too", async () => {
    const { loop, scheduler } = setup();
    const granted: string[] = [];
    // A pipelining session whose commands each end in a promise continuation, never returning to the loop by itself.
    const run = async (session: string, count: number): Promise<void> => {
      for (let i = 1; i <= count; i++) {
        await scheduler.turn(session);
        granted.push(`${session}${i}`);
      }
    };
    const a = run("a", 3);
    await settle();
    expect(granted).toEqual(["a1"]);
    const b = run("b", 3);
    for (let i = 0; i < 6; i++) await loop.turn();
    await Promise.all([a, b]);
    expect(granted).toEqual(["a1", "a2", "b1", "a3", "b2", "b3"]);
  });

  it("interleaves sessions of equal usage in the order their commands arrived", async () => {
    const { loop, granted, submit, scheduler } = setup();
    submit("a", "a1");
    for (const label of ["a2", "a3"]) submit("a", label);
    submit("b", "b1");
    submit("c", "c1");
    submit("a", "a4");
    expect(scheduler.waiting).toBe(5);
    for (let i = 0; i < 5; i++) await loop.turn();
    expect(granted).toEqual(["a1", "a2", "a3", "b1", "c1", "a4"]);
  });
});

describe("FairScheduler: a turn's slice", () => {
  it(`grants one command after another, least usage first, until ${TURN_SLICE_MS} ms have been used`, async () => {
    const context = setup();
    const { loop, granted } = context;
    // 0.5 ms commands: a1 starts at once; b and c have used nothing, so they go before a's second.
    for (const session of ["a", "b", "c"]) pipeline(context, session, 6, 0.5);
    expect(granted).toEqual(["a1"]);
    await loop.turn();
    // b1, c1, a2 were one round; the next round goes by the usage each has then, and the slice ends at 2 ms.
    expect(granted).toEqual(["a1", "b1", "c1", "a2", "b2"]);
    const perTurn: number[] = [];
    while (loop.pending > 0) {
      const before = granted.length;
      await loop.turn();
      perTurn.push(granted.length - before);
    }
    expect(perTurn).toEqual([4, 4, 4, 1]);
    expect(granted.filter((label) => label.startsWith("c"))).toEqual(["c1", "c2", "c3", "c4", "c5", "c6"]);
  });

  it("grants at once, during a slice, the next request of a session with nobody else waiting", async () => {
    const { loop, scheduler } = setup();
    const answers: boolean[] = [];
    // Each command reads the clock as session.ts does; the slice counts from those readings.
    // A session with three more commands: each granted at once runs the next itself, as #pump's loop does.
    let left = 3;
    const ask = (): void => {
      while (left > 0) {
        left--;
        scheduler.now();
        const now = scheduler.request("a", ask);
        answers.push(now);
        if (!now) return;
      }
    };
    expect(scheduler.request("a", () => {})).toBe(true);
    expect(scheduler.request("a", ask)).toBe(false);
    await loop.turn();
    // Alone, and the slice not used (the clock stands still here): the turn's one grant runs all three.
    expect(answers).toEqual([true, true, true]);
    answers.length = 0;
    const other = setup();
    expect(other.scheduler.request("a", () => {})).toBe(true);
    other.scheduler.request("a", () => {
      other.scheduler.now();
      answers.push(other.scheduler.request("a", () => {}));
    });
    other.scheduler.request("b", () => {});
    await other.loop.turn();
    // b waits in the same round: a's next request waits for the next one.
    expect(answers).toEqual([false]);
  });

  it("does not let a session that is alone run on past its allowance within the slice", async () => {
    // A share of 1 ms per second: the third 0.5 ms command takes the session over it.
    const context = setup(1);
    const { loop, granted, scheduler } = context;
    pipeline(context, "a", 4, 0.5);
    await loop.turn();
    expect(granted).toEqual(["a1", "a2", "a3"]);
    expect(scheduler.throttled("a")).toBe(true);
    // It goes on once its usage has decayed back to the share (the loop sleeps until then).
    while (loop.pending > 0) await loop.turn();
    expect(granted).toEqual(["a1", "a2", "a3", "a4"]);
  });

  it("lets a session that is alone run its pipelined commands on for the slice, without a turn each", async () => {
    const context = setup();
    const { loop, granted } = context;
    pipeline(context, "a", 10, 0.5);
    expect(granted).toEqual(["a1"]);
    const perTurn: number[] = [];
    while (loop.pending > 0) {
      const before = granted.length;
      await loop.turn();
      perTurn.push(granted.length - before);
    }
    // Each turn's first grant, then the requests made during it, granted at once until 2 ms have gone.
    expect(perTurn).toEqual([4, 4, 1]);
    expect(granted).toHaveLength(10);
  });

  it("ends a turn with a command that uses the whole slice", async () => {
    const context = setup();
    const { loop, granted } = context;
    pipeline(context, "x", 3, 5);
    pipeline(context, "y", 3, 5);
    expect(granted).toEqual(["x1"]);
    for (const expected of [["y1"], ["x2"], ["y2"], ["x3"], ["y3"]]) {
      const before = granted.length;
      await loop.turn();
      expect(granted.slice(before)).toEqual(expected);
    }
    expect(loop.pending).toBe(0);
  });

  it("calls what waits for the end of a turn once the turn's grants are done, or at the next turn", async () => {
    const context = setup();
    const { loop, scheduler, granted } = context;
    const ends: string[] = [];
    pipeline(context, "a", 3, 0.5);
    scheduler.atTurnEnd(() => ends.push(`end after ${granted.join(",")}`));
    expect(ends).toEqual([]);
    await loop.turn();
    expect(ends).toEqual(["end after a1,a2,a3"]);
  });
});

describe("FairScheduler: the session that used the least goes first", () => {
  it("delays a heavy session's commands behind light ones", async () => {
    const { loop, granted, submit, scheduler } = setup();
    // heavy ran one 200 ms command (within its 250 ms share); light1 and light2 spent 1 ms each.
    scheduler.charge("heavy", 200);
    scheduler.charge("light1", 1);
    scheduler.charge("light2", 1);
    // The first command after the loop waited starts at once, whoever sends it.
    expect(submit("heavy", "h1")).toBe(true);
    submit("heavy", "h2");
    submit("heavy", "h3");
    submit("light1", "l1");
    submit("light2", "l2");
    for (let i = 0; i < 4; i++) await loop.turn();
    expect(granted).toEqual(["h1", "l1", "l2", "h2", "h3"]);
  });

  it("orders waiting sessions by least usage, then by arrival", async () => {
    const { loop, granted, submit, scheduler } = setup(0);
    scheduler.charge("x", 300);
    scheduler.charge("y", 200);
    scheduler.charge("z", 200);
    scheduler.charge("w", 50);
    submit("x");
    submit("x", "x2");
    submit("z");
    submit("y");
    submit("w");
    submit("v");
    for (let i = 0; i < 5; i++) await loop.turn();
    expect(granted).toEqual(["x", "v", "w", "z", "y", "x2"]);
  });

  it("five sessions pipelining 200 ms commands keep a bystander's NOOP within one command of them", async () => {
    const { loop, scheduler } = setup();
    const waits: number[] = [];
    const done: string[] = [];
    const heavy = async (session: string): Promise<void> => {
      for (let i = 0; i < 20; i++) {
        await scheduler.turn(session);
        // The command runs synchronously on the loop: time passes, and it is charged.
        loop.now += 200;
        scheduler.charge(session, 200);
      }
      done.push(session);
    };
    const sessions = ["h1", "h2", "h3", "h4", "h5"].map((s) => heavy(s));
    let turns = 0;
    while (done.length < 5) {
      // Every 3rd turn, once each heavy session has run (before, all have spent nothing and go by arrival),
      // a NOOP arrives from the bystander; it costs nothing measurable.
      if (turns > 5 && turns % 3 === 1) {
        const sent = loop.now;
        void scheduler.turn("bystander").then(() => waits.push(loop.now - sent));
      }
      await loop.turn();
      turns++;
    }
    await Promise.all(sessions);
    expect(waits.length).toBeGreaterThan(30);
    // It waits for the one heavy command that was running when it arrived, never for more.
    expect(Math.max(...waits)).toBeLessThanOrEqual(200);
  });
});

describe("FairScheduler: the allowance per second", () => {
  it("holds a lone session over its share until its usage has decayed back to it", async () => {
    const { loop, granted, scheduler } = setup(250);
    const grantedAt: number[] = [];
    const run = async (): Promise<void> => {
      for (let i = 0; i < 4; i++) {
        await scheduler.turn("heavy");
        grantedAt.push(loop.now);
        granted.push(`h${i + 1}`);
        loop.now += 200;
        scheduler.charge("heavy", 200);
      }
    };
    const done = run();
    while (granted.length < 4) await loop.turn();
    await done;
    // h1 at 0 (usage 0), h2 at 200 (usage 200, within 250), then each waits until usage decays to 250.
    const decay = Math.exp(-200 / USAGE_TIME_CONSTANT_MS);
    expect(grantedAt[0]).toBe(0);
    expect(grantedAt[1]).toBe(200);
    expect(grantedAt[2]).toBeCloseTo(400 + USAGE_TIME_CONSTANT_MS * Math.log((200 * decay + 200) / 250), 6);
    // From then on each 200 ms command (charged as it ends) is followed by the wait that brings usage back to 250.
    expect((grantedAt[3] as number) - (grantedAt[2] as number)).toBeCloseTo(
      200 + USAGE_TIME_CONSTANT_MS * Math.log((250 * decay + 200) / 250),
      6,
    );
  });

  it("never holds a session with a share of 0", async () => {
    const { loop, granted, scheduler } = setup(0);
    const run = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await scheduler.turn("heavy");
        granted.push(`h${i + 1}@${loop.now}`);
        loop.now += 500;
        scheduler.charge("heavy", 500);
      }
    };
    const done = run();
    for (let i = 0; i < 3; i++) await loop.turn();
    await done;
    expect(granted).toEqual(["h1@0", "h2@500", "h3@1000"]);
  });

  it("serves others while a session over its share waits, and it goes again when due", async () => {
    const { loop, granted, submit, scheduler } = setup(100);
    scheduler.charge("heavy", 100 * Math.E);
    expect(submit("heavy", "h")).toBe(false);
    expect(submit("light", "l")).toBe(false);
    await loop.turn();
    // The turn found only heavy waiting after l, over its share: it set a timer for when heavy is back within it.
    expect(granted).toEqual(["l"]);
    expect(loop.now).toBe(0);
    // Nothing deferred: the loop sleeps until that timer, one time constant later.
    await loop.turn();
    expect(loop.now).toBeCloseTo(USAGE_TIME_CONSTANT_MS, 6);
    expect(granted).toEqual(["l", "h"]);
  });

  it("takes a new share at once, for sessions already waiting too", async () => {
    const { loop, granted, submit, scheduler } = setup(100);
    scheduler.charge("heavy", 200);
    expect(submit("heavy", "h")).toBe(false);
    await loop.turn();
    expect(granted).toEqual([]);
    scheduler.setShare(300);
    await loop.turn();
    expect(granted).toEqual(["h"]);
    expect(loop.now).toBe(0);
  });

  it("lets a session start at once again once its usage has decayed below its share", () => {
    const { loop, submit, scheduler } = setup();
    scheduler.charge("heavy", 1000);
    expect(submit("heavy", "h0")).toBe(false);
    scheduler.forget("heavy");
    scheduler.charge("heavy", 1000);
    loop.now += USAGE_TIME_CONSTANT_MS * Math.log(1000 / DEFAULT_SESSION_CPU_SHARE_MS) + 1;
    expect(scheduler.usage("heavy")).toBeLessThan(DEFAULT_SESSION_CPU_SHARE_MS);
    loop.waitForIo();
    expect(submit("heavy", "h")).toBe(true);
  });
});

describe("FairScheduler: usage", () => {
  it("decays with a one-second time constant, so it reads as ms per second", () => {
    const { loop, scheduler } = setup();
    scheduler.charge("a", 200);
    expect(scheduler.usage("a")).toBe(200);
    loop.now = USAGE_TIME_CONSTANT_MS;
    expect(scheduler.usage("a")).toBeCloseTo(200 / Math.E, 10);
    scheduler.charge("a", 100);
    expect(scheduler.usage("a")).toBeCloseTo(200 / Math.E + 100, 10);
    loop.now += 2 * USAGE_TIME_CONSTANT_MS;
    expect(scheduler.usage("a")).toBeCloseTo((200 / Math.E + 100) / Math.E ** 2, 10);
    expect(scheduler.usage("never")).toBe(0);
  });

  it("converges to the rate a session steadily uses", () => {
    const { loop, scheduler } = setup();
    // 50 ms every 100 ms: 500 ms per second.
    for (let i = 0; i < 200; i++) {
      scheduler.charge("a", 50);
      loop.now += 100;
    }
    expect(scheduler.usage("a")).toBeGreaterThan(450);
    expect(scheduler.usage("a")).toBeLessThan(550);
  });

  it("ignores charges that are not positive", () => {
    const { scheduler } = setup();
    scheduler.charge("a", 0);
    scheduler.charge("a", -5);
    scheduler.charge("a", Number.NaN);
    expect(scheduler.usage("a")).toBe(0);
  });
});

describe("FairScheduler: forget", () => {
  it("grants a forgotten session's waiting turns at once and drops its usage", async () => {
    const { loop, granted, submit, scheduler } = setup();
    scheduler.charge("gone", 50);
    submit("other", "o1");
    submit("gone", "g1");
    submit("gone", "g2");
    submit("other", "o2");
    scheduler.forget("gone");
    expect(granted).toEqual(["o1", "g1", "g2"]);
    expect(scheduler.usage("gone")).toBe(0);
    expect(scheduler.waiting).toBe(1);
    await loop.turn();
    expect(granted).toEqual(["o1", "g1", "g2", "o2"]);
  });
});
