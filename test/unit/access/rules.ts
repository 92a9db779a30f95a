/**
 * LimitRules from config text, recorded by mod_core.c's real directives
 * through the config runner, so the tests read like the configs they stand for.
 */
import type { LimitRules, LimitSubject } from "../../../host/access/limit.js";
import { ConfigRunner } from "../../../host/config/config-runner.js";
import { createCoreModule } from "../../../host/static/mod-core.js";

export function rulesFrom(...lines: string[]): LimitRules {
  const core = createCoreModule([]);
  const runner = new ConfigRunner({
    source: { read: () => `${lines.join("\n")}\n`, expand: (pattern) => [pattern] },
    env: {},
    modules: () => [core.module],
    isLoaded: () => true,
    log: () => {},
  });
  runner.run("/etc/dsod.conf");
  return core.settings.limits;
}

/** Logged-in users: name, groups (primary first), home. */
export const bob: LimitSubject = { user: "bob", groups: ["bob", "staff"], home: "/home/bob" };
export const alice: LimitSubject = { user: "alice", groups: ["alice", "ops"], home: "/home/alice" };
export const carol: LimitSubject = { user: "carol", groups: ["carol", "staff", "ops"], home: "/home/carol" };
/** Before login: proftpd knows no user and no groups. */
export const anonymous: LimitSubject = { user: undefined, groups: undefined, home: undefined };
