/**
 * The master's privileges with session workers (host/system/privileges.ts):
 * relinquishPrivileges and withRootPrivileges against a fake process that
 * keeps real, effective and saved ids and refuses what Linux refuses, so a
 * wrong order of the switches fails here as it would in dsod.
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import type * as PrivilegesModule from "../../../host/system/privileges.js";
import type { EffectiveIds, Identity } from "../../../host/system/privileges.js";

type Privileges = typeof PrivilegesModule;

const NOBODY: Identity = { user: "nobody", uid: 65534, group: "nogroup", gid: 65534 };

function eperm(call: string): Error {
  return Object.assign(new Error(`${call}: EPERM, Operation not permitted`), { code: "EPERM" });
}

/** A process's ids as Linux keeps them: only an effective root changes groups, or ids to what it holds in none. */
class FakeIds implements EffectiveIds {
  uid = { real: 0, effective: 0, saved: 0 };
  gid = { real: 0, effective: 0, saved: 0 };
  groups = [0];
  readonly calls: string[] = [];
  /** The effective uid seteuid leaves, when it should not be the one asked for. */
  ignoreSeteuid = false;

  constructor(uid = 0) {
    this.uid = { real: uid, effective: uid, saved: uid };
  }

  getuid(): number {
    return this.uid.real;
  }
  geteuid(): number {
    return this.uid.effective;
  }
  getegid(): number {
    return this.gid.effective;
  }
  setgroups(groups: number[]): void {
    this.calls.push(`setgroups(${groups.join(",")})`);
    if (this.uid.effective !== 0) throw eperm("setgroups");
    this.groups = groups;
  }
  setgid(id: number): void {
    this.calls.push(`setgid(${id})`);
    if (this.uid.effective !== 0) throw eperm("setgid");
    this.gid = { real: id, effective: id, saved: id };
  }
  setuid(id: number): void {
    this.calls.push(`setuid(${id})`);
    if (this.uid.effective !== 0) throw eperm("setuid");
    this.uid = { real: id, effective: id, saved: id };
  }
  setegid(id: number): void {
    this.calls.push(`setegid(${id})`);
    if (this.uid.effective !== 0 && id !== this.gid.real && id !== this.gid.saved) throw eperm("setegid");
    this.gid.effective = id;
  }
  seteuid(id: number): void {
    this.calls.push(`seteuid(${id})`);
    if (this.uid.effective !== 0 && id !== this.uid.real && id !== this.uid.saved) throw eperm("seteuid");
    if (!this.ignoreSeteuid) this.uid.effective = id;
  }
}

let privileges: Privileges;

beforeEach(async () => {
  // The switch is process-wide state: each test starts from a process that has not switched.
  vi.resetModules();
  privileges = await import("../../../host/system/privileges.js");
});

describe("relinquishPrivileges", () => {
  it("drops the groups, then sets the effective gid and uid, keeping root as the real and saved ids", () => {
    const ids = new FakeIds();
    privileges.relinquishPrivileges(NOBODY, ids);
    expect(ids.calls).toEqual(["setgroups()", "setegid(65534)", "seteuid(65534)"]);
    expect(ids.uid).toEqual({ real: 0, effective: 65534, saved: 0 });
    expect(ids.gid).toEqual({ real: 0, effective: 65534, saved: 0 });
    expect(ids.groups).toEqual([]);
    // Module files are then checked against User as in a dsod that gave root up for good.
    expect(privileges.switchedIdentity()).toEqual(NOBODY);
  });

  it("refuses without root, in proftpd's words, and changes nothing", () => {
    const ids = new FakeIds(500);
    expect(() => privileges.relinquishPrivileges(NOBODY, ids)).toThrow("unable to set UID to nobody, current UID: 500");
    expect(ids.calls).toEqual([]);
    expect(privileges.switchedIdentity()).toBeUndefined();
  });

  it("says so when the effective uid is not the one set", () => {
    const ids = new FakeIds();
    ids.ignoreSeteuid = true;
    expect(() => privileges.relinquishPrivileges(NOBODY, ids)).toThrow("unable to set UID to nobody, current UID: 0");
  });
});

describe("withRootPrivileges", () => {
  it("only runs what it is given before any relinquishPrivileges", () => {
    expect(privileges.withRootPrivileges(() => 7)).toBe(7);
  });

  it("runs as root, the uid taken back first, and relinquishes again, the gid first", () => {
    const ids = new FakeIds();
    privileges.relinquishPrivileges(NOBODY, ids);
    ids.calls.length = 0;
    const inside = privileges.withRootPrivileges(() => [ids.geteuid(), ids.getegid()]);
    expect(inside).toEqual([0, 0]);
    expect(ids.calls).toEqual(["seteuid(0)", "setegid(0)", "setegid(65534)", "seteuid(65534)"]);
    expect(ids.uid).toEqual({ real: 0, effective: 65534, saved: 0 });
    expect(ids.gid).toEqual({ real: 0, effective: 65534, saved: 0 });
  });

  it("relinquishes again when what it runs throws", () => {
    const ids = new FakeIds();
    privileges.relinquishPrivileges(NOBODY, ids);
    expect(() =>
      privileges.withRootPrivileges(() => {
        throw new Error("fork failed");
      }),
    ).toThrow("fork failed");
    expect([ids.geteuid(), ids.getegid()]).toEqual([65534, 65534]);
  });

  it("keeps root until a promise settles, and an inner run does not give it up early", async () => {
    const ids = new FakeIds();
    privileges.relinquishPrivileges(NOBODY, ids);
    let settle: () => void = () => {};
    const running = privileges.withRootPrivileges(
      () =>
        new Promise<void>((_resolve, reject) => {
          settle = () => reject(new Error("unlink failed"));
        }),
    );
    privileges.withRootPrivileges(() => undefined);
    expect(ids.geteuid()).toBe(0);
    settle();
    await expect(running).rejects.toThrow("unlink failed");
    expect([ids.geteuid(), ids.getegid()]).toEqual([65534, 65534]);
  });
});
