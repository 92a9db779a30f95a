import { describe, expect, it } from "vitest";
import { DEATH_WINDOW_MS, RESTART_SPACING_MS, RestartLimiter, leastLoaded } from "../../../host/cluster/worker-pool.js";

describe("leastLoaded", () => {
  it("picks the serving worker with the fewest sessions, the first of equals", () => {
    expect(
      leastLoaded([
        { sessions: 3, serving: true },
        { sessions: 2, serving: true },
        { sessions: 2, serving: true },
      ]),
    ).toBe(1);
    expect(
      leastLoaded([
        { sessions: 0, serving: true },
        { sessions: 0, serving: true },
      ]),
    ).toBe(0);
  });

  it("passes over workers that do not serve, and finds none when none serves", () => {
    expect(
      leastLoaded([
        { sessions: 0, serving: false },
        { sessions: 5, serving: true },
      ]),
    ).toBe(1);
    expect(leastLoaded([{ sessions: 0, serving: false }])).toBeUndefined();
    expect(leastLoaded([])).toBeUndefined();
  });
});

describe("RestartLimiter", () => {
  function limiter(): { clock: { now: number }; limit: RestartLimiter } {
    const clock = { now: 1_000_000 };
    return { clock, limit: new RestartLimiter(() => clock.now) };
  }

  it("replaces at once for the first two deaths within 10 s", () => {
    const { clock, limit } = limiter();
    limit.started(1);
    clock.now += 100;
    expect(limit.died(1)).toBe(0);
    limit.started(1);
    clock.now += 100;
    expect(limit.died(1)).toBe(0);
  });

  it("from the third death within 10 s on, starts an index at most once a second", () => {
    const { clock, limit } = limiter();
    for (let death = 0; death < 2; death++) {
      limit.started(1);
      clock.now += 100;
      limit.died(1);
    }
    limit.started(1);
    clock.now += 100;
    expect(limit.died(1)).toBe(RESTART_SPACING_MS - 100);
    limit.started(1);
    clock.now += RESTART_SPACING_MS + 1;
    expect(limit.died(1)).toBe(0);
  });

  it("counts each index on its own", () => {
    const { clock, limit } = limiter();
    for (let death = 0; death < 3; death++) {
      limit.started(1);
      clock.now += 10;
      limit.died(1);
    }
    limit.started(2);
    clock.now += 10;
    expect(limit.died(2)).toBe(0);
    limit.started(1);
    clock.now += 10;
    expect(limit.died(1)).toBe(RESTART_SPACING_MS - 10);
  });

  it("forgets deaths older than 10 s", () => {
    const { clock, limit } = limiter();
    for (let death = 0; death < 2; death++) {
      limit.started(1);
      clock.now += 10;
      limit.died(1);
    }
    clock.now += DEATH_WINDOW_MS;
    limit.started(1);
    clock.now += 10;
    expect(limit.died(1)).toBe(0);
  });
});
