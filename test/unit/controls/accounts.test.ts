import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { parseAccountFile, parseAccountLine, SystemAccounts } from "../../../host/system/accounts.js";

const dir = mkdtempSync(join(tmpdir(), "dso-accounts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const passwd = join(dir, "passwd");
const group = join(dir, "group");
writeFileSync(
  passwd,
  [
    "# comment:x:5:5",
    "root:x:0:0:root:/root:/bin/bash",
    "filesonly:x:4242:4243::/nonexistent:/usr/sbin/nologin",
    "123:x:777:777::/:/bin/false",
    "+nisuser:x:900:900::/:",
    "broken:x:notanumber:1::/:",
    "",
  ].join("\n"),
);
writeFileSync(group, ["root:x:0:", "filesgroup:x:4243:filesonly", ""].join("\n"));

describe("account file parsing", () => {
  it("reads passwd(5) and group(5) lines", () => {
    expect(parseAccountLine("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")).toEqual({
      name: "nobody",
      id: 65534,
      gid: 65534,
    });
    expect(parseAccountLine("daemon:x:1:")).toEqual({ name: "daemon", id: 1 });
  });

  it("skips comments, NIS compat lines and malformed ids", () => {
    expect(parseAccountFile("# c:x:1:1\n+nis:x:2:2\n-nis:x:3:3\nbad:x:-1:0\nok:x:4:4\n")).toEqual([
      { name: "ok", id: 4, gid: 4 },
    ]);
  });
});

describe("SystemAccounts with getent (NSS)", () => {
  const accounts = new SystemAccounts({ passwdFile: passwd, groupFile: group });

  it("resolves names to ids and ids to names", () => {
    expect(accounts.uidOf("root")).toBe(0);
    expect(accounts.gidOf("root")).toBe(0);
    expect(accounts.userName(0)).toBe("root");
    expect(accounts.groupName(0)).toBe("root");
  });

  it("takes getent's 'not found' as final and does not read the files", () => {
    expect(accounts.uidOf("filesonly")).toBeUndefined();
    expect(accounts.uidOf("no_such_user_x")).toBeUndefined();
    expect(accounts.uidOf("-x")).toBeUndefined();
  });

  it("never treats a number as an id (`allow user 0` matches nobody)", () => {
    expect(accounts.uidOf("0")).toBeUndefined();
    expect(accounts.gidOf("0")).toBeUndefined();
  });

  it("prints unknown ids as numbers, as pr_auth_uid2name", () => {
    expect(accounts.userName(3_999_999_999)).toBe("3999999999");
    expect(accounts.groupName(3_999_999_999)).toBe("3999999999");
  });
});

describe("SystemAccounts from files only", () => {
  it("reads /etc/passwd-style files when getent is disabled", () => {
    const accounts = new SystemAccounts({ getent: null, passwdFile: passwd, groupFile: group });
    expect(accounts.uidOf("filesonly")).toBe(4242);
    expect(accounts.gidOf("filesgroup")).toBe(4243);
    expect(accounts.userName(4242)).toBe("filesonly");
    expect(accounts.groupName(4243)).toBe("filesgroup");
    expect(accounts.uidOf("nisuser")).toBeUndefined();
    expect(accounts.uidOf("broken")).toBeUndefined();
  });

  it("resolves an all-digit user name by name, not as an id", () => {
    const accounts = new SystemAccounts({ getent: null, passwdFile: passwd, groupFile: group });
    expect(accounts.uidOf("123")).toBe(777);
  });

  it("falls back to the files when getent cannot run", () => {
    const accounts = new SystemAccounts({ getent: join(dir, "no-getent"), passwdFile: passwd, groupFile: group });
    expect(accounts.uidOf("filesonly")).toBe(4242);
    expect(accounts.userName(4242)).toBe("filesonly");
  });

  it("answers undefined when the files are missing", () => {
    const accounts = new SystemAccounts({ getent: null, passwdFile: join(dir, "nope"), groupFile: join(dir, "nope") });
    expect(accounts.uidOf("root")).toBeUndefined();
    expect(accounts.userName(0)).toBe("0");
  });
});

describe("SystemAccounts' asynchronous look-ups", () => {
  /** A getent that writes its arguments to `calls` and knows uid and gid 4242 alone. */
  const calls = join(dir, "calls");
  const countingGetent = join(dir, "counting-getent");
  writeFileSync(
    countingGetent,
    [
      "#!/bin/sh",
      `echo "$2 $3" >> '${calls}'`,
      'if [ "$3" = 4242 ]; then echo "$2user:x:4242:4242::/:/bin/sh"; exit 0; fi',
      "exit 2",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const called = (): string[] => (existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : []);
  let now = 0;
  const clock = { now: () => now };
  beforeEach(() => {
    rmSync(calls, { force: true });
    now = 0;
  });

  it("answer as the synchronous ones do", async () => {
    const accounts = new SystemAccounts({ passwdFile: passwd, groupFile: group });
    expect(await accounts.lookupUserName(0)).toBe("root");
    expect(await accounts.lookupGroupName(0)).toBe("root");
    expect(await accounts.lookupUserName(3_999_999_999)).toBe("3999999999");
    expect(await accounts.lookupUserName(-1)).toBe("-1");
    const files = new SystemAccounts({ getent: join(dir, "no-getent"), passwdFile: passwd, groupFile: group });
    expect(await files.lookupUserName(4242)).toBe("filesonly");
    expect(await files.lookupGroupName(4243)).toBe("filesgroup");
  });

  it("keep a found name, and share one getent among callers asking at once", async () => {
    const accounts = new SystemAccounts({ getent: countingGetent, ...clock });
    const together = await Promise.all([accounts.lookupUserName(4242), accounts.lookupUserName(4242)]);
    expect(together).toEqual(["passwduser", "passwduser"]);
    now = 1e12;
    expect(await accounts.lookupUserName(4242)).toBe("passwduser");
    expect(accounts.userName(4242)).toBe("passwduser");
    expect(called()).toEqual(["passwd 4242"]);
  });

  it("keep 'no such account' for negativeTtlMs of the injected clock only", async () => {
    const accounts = new SystemAccounts({ getent: countingGetent, negativeTtlMs: 1000, ...clock });
    expect(await accounts.lookupGroupName(77)).toBe("77");
    now = 999;
    expect(await accounts.lookupGroupName(77)).toBe("77");
    expect(accounts.gidOf("nosuch")).toBeUndefined();
    expect(called()).toEqual(["group 77", "group nosuch"]);
    now = 1000;
    expect(await accounts.lookupGroupName(77)).toBe("77");
    expect(called()).toEqual(["group 77", "group nosuch", "group 77"]);
  });

  it("keep at most cacheSize answers, the least recently used going first", async () => {
    const accounts = new SystemAccounts({ getent: countingGetent, cacheSize: 2, ...clock });
    await accounts.lookupUserName(4242);
    await accounts.lookupGroupName(4242);
    await accounts.lookupUserName(4242);
    await accounts.lookupUserName(5);
    expect(called()).toEqual(["passwd 4242", "group 4242", "passwd 5"]);
    await accounts.lookupUserName(4242);
    await accounts.lookupGroupName(4242);
    expect(called()).toEqual(["passwd 4242", "group 4242", "passwd 5", "group 4242"]);
  });
});
