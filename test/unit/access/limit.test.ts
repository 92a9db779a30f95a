import { describe, expect, it } from "vitest";
import {
  connectAllowed,
  emptyLimitRules,
  isAllowed,
  limitNames,
  limitsConcern,
  loginAllowed,
} from "../../../host/access/limit.js";
import type { LimitRules, LimitSubject } from "../../../host/access/limit.js";
import { alice, anonymous, bob, carol, rulesFrom } from "./rules.js";

function allowed(rules: LimitRules, subject: LimitSubject, command: string, path = "/srv/file"): boolean {
  return isAllowed(rules, { ...subject, command, path });
}

describe("limitNames: what each command is checked under, most specific first", () => {
  it("gives the command, its proftpd group, then ALL", () => {
    expect(limitNames("stor")).toEqual(["STOR", "WRITE", "ALL"]);
    expect(limitNames("RETR")).toEqual(["RETR", "READ", "ALL"]);
    expect(limitNames("SIZE")).toEqual(["SIZE", "READ", "ALL"]);
    expect(limitNames("LIST")).toEqual(["LIST", "DIRS", "ALL"]);
    expect(limitNames("MDTM")).toEqual(["MDTM", "DIRS", "ALL"]);
    expect(limitNames("RNFR")).toEqual(["RNFR", "WRITE", "ALL"]);
    expect(limitNames("SITE_CHMOD")).toEqual(["SITE_CHMOD", "WRITE", "ALL"]);
    expect(limitNames("NOOP")).toEqual(["NOOP", "ALL"]);
  });

  it("leaves the data-connection commands, PROT and OPTS out of ALL, and SITE HELP alone", () => {
    for (const name of ["PASV", "PORT", "EPRT", "EPSV", "PROT", "OPTS_UTF8"]) expect(limitNames(name)).toEqual([name]);
    expect(limitNames("SITE_HELP")).toEqual(["SITE_HELP"]);
  });
});

describe("limitsConcern: whether any <Limit> could decide a command", () => {
  it("is false for every command without <Limit> sections", () => {
    for (const name of ["NOOP", "STOR", "LIST", "SITE_CHMOD"])
      expect(limitsConcern(emptyLimitRules(), name)).toBe(false);
  });

  it("follows the names a command is checked under: itself, its group, ALL, at server level and in a <Directory>", () => {
    const write = rulesFrom("<Directory /srv>", "<Limit WRITE>", "DenyAll", "</Limit>", "</Directory>");
    expect(["STOR", "stor", "DELE", "SITE_CHMOD"].map((name) => limitsConcern(write, name))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["NOOP", "RETR", "LIST"].map((name) => limitsConcern(write, name))).toEqual([false, false, false]);
    const all = rulesFrom("<Limit ALL>", "DenyUser bob", "</Limit>");
    expect(["NOOP", "RETR", "PASV", "SITE_HELP"].map((name) => limitsConcern(all, name))).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });
});

describe("isAllowed: one <Limit>", () => {
  it("allows everything without rules", () => {
    expect(allowed(emptyLimitRules(), bob, "STOR")).toBe(true);
  });

  it("denies a group's commands and only those", () => {
    const rules = rulesFrom("<Limit WRITE>", "DenyAll", "</Limit>");
    for (const name of ["STOR", "APPE", "STOU", "DELE", "MKD", "XMKD", "RMD", "RNFR", "RNTO", "MFMT", "SITE_CHMOD"]) {
      expect(allowed(rules, bob, name)).toBe(false);
    }
    for (const name of ["RETR", "SIZE", "LIST", "CWD", "PWD", "NOOP"]) expect(allowed(rules, bob, name)).toBe(true);
  });

  it("matches command names case-insensitively, comma lists included", () => {
    const rules = rulesFrom("<Limit stor,dele>", "DenyAll", "</Limit>");
    expect(allowed(rules, bob, "STOR")).toBe(false);
    expect(allowed(rules, bob, "DELE")).toBe(false);
    expect(allowed(rules, bob, "APPE")).toBe(true);
  });

  it("Order allow,deny (the default): AllowUser first, so the listed user passes DenyAll", () => {
    const rules = rulesFrom("<Limit READ>", "AllowUser bob", "DenyAll", "</Limit>");
    expect(allowed(rules, bob, "RETR")).toBe(true);
    expect(allowed(rules, alice, "RETR")).toBe(false);
  });

  it("Order deny,allow: DenyAll first, so nobody passes (proftpd's Order tests)", () => {
    const rules = rulesFrom("<Limit READ>", "Order deny,allow", "AllowUser bob", "DenyAll", "</Limit>");
    expect(allowed(rules, bob, "RETR")).toBe(false);
    expect(allowed(rules, alice, "RETR")).toBe(false);
  });

  it("Order decides what happens to a user neither list names", () => {
    expect(allowed(rulesFrom("<Limit READ>", "DenyUser bob", "</Limit>"), alice, "RETR")).toBe(true);
    expect(allowed(rulesFrom("<Limit READ>", "Order deny,allow", "AllowUser bob", "</Limit>"), alice, "RETR")).toBe(
      false,
    );
    expect(allowed(rulesFrom("<Limit READ>", "Order deny,allow", "AllowUser bob", "</Limit>"), bob, "RETR")).toBe(true);
    expect(allowed(rulesFrom("<Limit READ>", "Order deny,allow", "DenyUser bob", "</Limit>"), alice, "RETR")).toBe(
      false,
    );
  });

  it("ORs several AllowUser directives and the names of one", () => {
    const rules = rulesFrom("<Limit READ>", "AllowUser bob", "AllowUser nobody,carol", "DenyAll", "</Limit>");
    expect(allowed(rules, bob, "RETR")).toBe(true);
    expect(allowed(rules, carol, "RETR")).toBe(true);
    expect(allowed(rules, alice, "RETR")).toBe(false);
  });

  it("negates a name with `!`", () => {
    const rules = rulesFrom("<Limit READ>", "AllowUser !bob", "DenyAll", "</Limit>");
    expect(allowed(rules, bob, "RETR")).toBe(false);
    expect(allowed(rules, alice, "RETR")).toBe(true);
    const deny = rulesFrom("<Limit READ>", "DenyGroup !staff", "</Limit>");
    expect(allowed(deny, alice, "RETR")).toBe(false);
    expect(allowed(deny, bob, "RETR")).toBe(true);
  });

  it("ANDs the groups of one AllowGroup unless told OR", () => {
    const both = rulesFrom("<Limit READ>", "AllowGroup staff,ops", "DenyAll", "</Limit>");
    expect(allowed(both, carol, "RETR")).toBe(true);
    expect(allowed(both, bob, "RETR")).toBe(false);
    const either = rulesFrom("<Limit READ>", "AllowGroup OR staff,ops", "DenyAll", "</Limit>");
    expect(allowed(either, bob, "RETR")).toBe(true);
    expect(allowed(either, alice, "RETR")).toBe(true);
    const and = rulesFrom("<Limit READ>", "AllowUser AND bob,!alice", "DenyAll", "</Limit>");
    expect(allowed(and, bob, "RETR")).toBe(true);
    expect(allowed(and, alice, "RETR")).toBe(false);
  });

  it("matches a user's primary group and supplementary ones alike", () => {
    const rules = rulesFrom(
      "<Limit WRITE>",
      "DenyGroup bob",
      "</Limit>",
      "<Limit READ>",
      "DenyGroup staff",
      "</Limit>",
    );
    expect(allowed(rules, bob, "STOR")).toBe(false);
    expect(allowed(rules, carol, "RETR")).toBe(false);
    expect(allowed(rules, alice, "RETR")).toBe(true);
  });

  it("before login counts an AllowUser or AllowGroup as allowing and skips DenyUser and DenyGroup", () => {
    expect(allowed(rulesFrom("<Limit FEAT>", "AllowUser bob", "DenyAll", "</Limit>"), anonymous, "FEAT")).toBe(true);
    expect(allowed(rulesFrom("<Limit FEAT>", "AllowGroup staff", "DenyAll", "</Limit>"), anonymous, "FEAT")).toBe(true);
    expect(
      allowed(rulesFrom("<Limit FEAT>", "Order deny,allow", "DenyUser bob", "AllowAll", "</Limit>"), anonymous, "FEAT"),
    ).toBe(true);
    expect(allowed(rulesFrom("<Limit FEAT>", "DenyAll", "</Limit>"), anonymous, "FEAT")).toBe(false);
  });
});

describe("isAllowed: precedence", () => {
  it("a command's own name beats its group, which beats ALL", () => {
    const rules = rulesFrom(
      "<Limit ALL>",
      "DenyAll",
      "</Limit>",
      "<Limit WRITE>",
      "AllowAll",
      "</Limit>",
      "<Limit DELE>",
      "DenyAll",
      "</Limit>",
    );
    expect(allowed(rules, bob, "STOR")).toBe(true);
    expect(allowed(rules, bob, "DELE")).toBe(false);
    expect(allowed(rules, bob, "RETR")).toBe(false);
  });

  it("keeps ALL away from PASV, PORT, EPRT, EPSV, PROT and OPTS, which still obey their own name", () => {
    const rules = rulesFrom("<Limit ALL>", "DenyAll", "</Limit>", "<Limit EPSV>", "DenyAll", "</Limit>");
    for (const name of ["PASV", "PORT", "EPRT", "PROT", "OPTS_UTF8"]) expect(allowed(rules, bob, name)).toBe(true);
    expect(allowed(rules, bob, "EPSV")).toBe(false);
    expect(allowed(rules, bob, "NOOP")).toBe(false);
  });

  it("consults the <Limit> written last first, and the first decision wins", () => {
    expect(
      allowed(rulesFrom("<Limit READ>", "DenyAll", "</Limit>", "<Limit READ>", "AllowAll", "</Limit>"), bob, "RETR"),
    ).toBe(true);
    expect(
      allowed(rulesFrom("<Limit READ>", "AllowAll", "</Limit>", "<Limit READ>", "DenyAll", "</Limit>"), bob, "RETR"),
    ).toBe(false);
  });

  it("goes on past a <Limit> that only implicitly allows", () => {
    const rules = rulesFrom("<Limit READ>", "DenyAll", "</Limit>", "<Limit READ>", "DenyUser carol", "</Limit>");
    expect(allowed(rules, alice, "RETR")).toBe(false);
  });

  it("a deeper <Directory> beats a shallower one, which beats the server", () => {
    const rules = rulesFrom(
      "<Limit WRITE>",
      "AllowAll",
      "</Limit>",
      "<Directory /srv>",
      "<Limit WRITE>",
      "DenyAll",
      "</Limit>",
      "</Directory>",
      "<Directory /srv/incoming>",
      "<Limit WRITE>",
      "AllowUser bob",
      "</Limit>",
      "</Directory>",
    );
    expect(allowed(rules, bob, "STOR", "/srv/incoming/x")).toBe(true);
    // bob's AllowUser in /srv/incoming is only an implicit allow for alice: /srv's DenyAll decides.
    expect(allowed(rules, alice, "STOR", "/srv/incoming/x")).toBe(false);
    expect(allowed(rules, bob, "STOR", "/srv/x")).toBe(false);
    expect(allowed(rules, bob, "STOR", "/home/bob/x")).toBe(true);
  });

  it("looks a command's name up through every level before its group (Bug#3166's lesson)", () => {
    const rules = rulesFrom(
      "<Limit STOR>",
      "AllowAll",
      "</Limit>",
      "<Directory /srv>",
      "<Limit WRITE>",
      "DenyAll",
      "</Limit>",
      "</Directory>",
    );
    expect(allowed(rules, bob, "STOR", "/srv/x")).toBe(true);
    expect(allowed(rules, bob, "DELE", "/srv/x")).toBe(false);
  });
});

describe("isAllowed: which <Directory> applies", () => {
  const denyIn = (...paths: string[]): LimitRules =>
    rulesFrom(...paths.flatMap((p) => [`<Directory ${p}>`, "<Limit ALL>", "DenyAll", "</Limit>", "</Directory>"]));

  it("matches the path itself and everything under it, not a longer name", () => {
    const rules = denyIn("/srv");
    expect(allowed(rules, bob, "RETR", "/srv")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/srv/a/b/c")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/srvx")).toBe(true);
    expect(allowed(rules, bob, "RETR", "/")).toBe(true);
  });

  it("takes a trailing / or /* on the section's path as the same directory", () => {
    expect(allowed(denyIn("/srv/"), bob, "RETR", "/srv")).toBe(false);
    expect(allowed(denyIn("/srv/*"), bob, "RETR", "/srv/a/b")).toBe(false);
    expect(allowed(denyIn("/"), bob, "RETR", "/anything")).toBe(false);
  });

  it("matches globs, where * also crosses /", () => {
    const rules = denyIn("/home/*/private");
    expect(allowed(rules, bob, "RETR", "/home/bob/private/f")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/home/a/b/private")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/home/bob/public/f")).toBe(true);
    expect(allowed(denyIn("/data/[0-9]*"), bob, "RETR", "/data/7/x")).toBe(false);
    expect(allowed(denyIn("/data/[0-9]*"), bob, "RETR", "/data/x7")).toBe(true);
  });

  it("between sibling sections that both match, the one written last (proftpd's Directory/Limits tests)", () => {
    const deny = "<Directory /home/*/proftpd>\n<Limit ALL>\nDenyAll\n</Limit>\n</Directory>";
    const allow = "<Directory /home/users/proftpd>\n<Limit ALL>\nAllowAll\n</Limit>\n</Directory>";
    expect(allowed(rulesFrom(deny, allow), bob, "RETR", "/home/users/proftpd/test.txt")).toBe(true);
    expect(allowed(rulesFrom(allow, deny), bob, "RETR", "/home/users/proftpd/test.txt")).toBe(false);
  });

  it("resolves ~ to the user's home and %u to the user's name, once logged in", () => {
    const rules = denyIn("~/private", "/srv/%u");
    expect(allowed(rules, bob, "RETR", "/home/bob/private/f")).toBe(false);
    expect(allowed(rules, alice, "RETR", "/home/bob/private/f")).toBe(true);
    expect(allowed(rules, alice, "RETR", "/home/alice/private")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/srv/bob/x")).toBe(false);
    expect(allowed(rules, bob, "RETR", "/srv/alice/x")).toBe(true);
    expect(allowed(rules, anonymous, "RETR", "/home/bob/private/f")).toBe(true);
    const root: LimitSubject = { user: "root", groups: ["root"], home: "/" };
    expect(allowed(denyIn("~"), root, "RETR", "/etc/passwd")).toBe(false);
    expect(allowed(denyIn("~/"), bob, "RETR", "/home/bob")).toBe(false);
  });

  it("does not nest a ~ or %u section under another, as proftpd 1.3.8 resolves them after nesting", () => {
    const rules = rulesFrom(
      "<Directory /home>",
      "<Limit WRITE>",
      "DenyAll",
      "</Limit>",
      "</Directory>",
      "<Directory ~/pub>",
      "<Limit READ>",
      "DenyAll",
      "</Limit>",
      "</Directory>",
    );
    expect(allowed(rules, bob, "STOR", "/home/bob/pub/f")).toBe(true);
    expect(allowed(rules, bob, "RETR", "/home/bob/pub/f")).toBe(false);
    expect(allowed(rules, bob, "STOR", "/home/bob/f")).toBe(false);
  });
});

describe("loginAllowed and connectAllowed: <Limit LOGIN>", () => {
  it("refuses at PASS a user that a server-level <Limit LOGIN> denies", () => {
    const rules = rulesFrom("<Limit LOGIN>", "AllowGroup staff", "DenyAll", "</Limit>");
    expect(loginAllowed(rules, bob)).toBe(true);
    expect(loginAllowed(rules, alice)).toBe(false);
    expect(connectAllowed(rules)).toBe(true);
  });

  it("needs every <Limit LOGIN> to let the user in", () => {
    const rules = rulesFrom(
      "<Limit LOGIN>",
      "DenyUser bob",
      "</Limit>",
      "<Limit LOGIN>",
      "AllowUser bob,alice",
      "</Limit>",
    );
    expect(loginAllowed(rules, bob)).toBe(false);
    expect(loginAllowed(rules, alice)).toBe(true);
  });

  it("ignores <Limit LOGIN> inside <Directory>, and ALL does not cover LOGIN", () => {
    const rules = rulesFrom(
      "<Limit ALL>",
      "DenyAll",
      "</Limit>",
      "<Directory /srv>",
      "<Limit LOGIN>",
      "DenyAll",
      "</Limit>",
      "</Directory>",
    );
    expect(loginAllowed(rules, bob)).toBe(true);
    expect(connectAllowed(rules)).toBe(true);
  });

  it("refuses every connection when <Limit LOGIN> denies with no user known", () => {
    expect(connectAllowed(rulesFrom("<Limit LOGIN>", "DenyAll", "</Limit>"))).toBe(false);
    expect(connectAllowed(rulesFrom("<Limit LOGIN>", "Order deny,allow", "DenyUser bob", "</Limit>"))).toBe(false);
    expect(connectAllowed(rulesFrom("<Limit LOGIN>", "DenyUser bob", "</Limit>"))).toBe(true);
    expect(
      connectAllowed(rulesFrom("<Limit LOGIN>", "DenyAll", "</Limit>", "<Limit LOGIN>", "AllowAll", "</Limit>")),
    ).toBe(true);
  });
});
