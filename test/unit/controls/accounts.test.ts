import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
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
    expect(parseAccountFile("# c:x:1:1\n+nis:x:2:2\n-nis:x:3:3\nbad:x:-1:0\nok:x:4:4\n")).toEqual([{ name: "ok", id: 4, gid: 4 }]);
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
