import { describe, expect, it } from "vitest";
import { hostPath, limitAllows, limitReply, loginReply } from "../../../host/access/limit-reply.js";
import type { LimitSession } from "../../../host/access/limit-reply.js";
import { rulesFrom } from "./rules.js";

const bob: LimitSession = { user: "bob", account: { home: "/home/bob", groups: ["bob", "staff"] }, cwd: "/pub" };
const before: LimitSession = { user: undefined, account: undefined, cwd: "/" };
/** DefaultRoot ~: bob's jail is his home. */
const JAIL = "/home/bob";

const denyAll = rulesFrom("<Limit ALL SITE_HELP OPTS_UTF8 PASV PORT EPRT EPSV PROT>", "DenyAll", "</Limit>");

function reply(command: string, arg = "", virtualPath?: string, session = bob): string | undefined {
  const refusal = limitReply(denyAll, session, command, arg, virtualPath, JAIL);
  return refusal === undefined ? undefined : `${refusal.code} ${refusal.message}`;
}

describe("limitReply: proftpd 1.3.8's words for each refused command", () => {
  it("file commands name their argument and the errno check_limit left", () => {
    expect(reply("RETR", "a.txt", "/pub/a.txt")).toBe("550 a.txt: Operation not permitted");
    expect(reply("STOR", "a.txt", "/pub/a.txt")).toBe("550 a.txt: Operation not permitted");
    expect(reply("APPE", "a.txt", "/pub/a.txt")).toBe("550 a.txt: Operation not permitted");
    expect(reply("DELE", "a.txt", "/pub/a.txt")).toBe("550 a.txt: Operation not permitted");
    expect(reply("RNFR", "a", "/pub/a")).toBe("550 a: Operation not permitted");
    expect(reply("RNTO", "b", "/pub/b")).toBe("550 b: Operation not permitted");
    expect(reply("SIZE", "a", "/pub/a")).toBe("550 a: Operation not permitted");
    expect(reply("MDTM", "a", "/pub/a")).toBe("550 a: Operation not permitted");
    expect(reply("STOU")).toBe("550 STOU: Operation not permitted");
  });

  it("directory commands: MKD and RMD say EACCES, CWD and CDUP what the CDPath lookup left", () => {
    expect(reply("MKD", "new", "/pub/new")).toBe("550 new: Permission denied");
    expect(reply("XMKD", "new", "/pub/new")).toBe("550 new: Permission denied");
    expect(reply("RMD", "old", "/pub/old")).toBe("550 old: Permission denied");
    expect(reply("CWD", "sub dir", "/pub/sub dir")).toBe("550 sub dir: No such file or directory");
    expect(reply("CDUP")).toBe("550 ..: No such file or directory");
    expect(reply("XCUP")).toBe("550 ..: No such file or directory");
    expect(reply("PWD")).toBe("550 PWD: Permission denied");
    expect(reply("xpwd")).toBe("550 XPWD: Permission denied");
  });

  it("listings and facts", () => {
    expect(reply("NLST", "", undefined)).toBe("450 /pub: Operation not permitted");
    expect(reply("NLST", "sub", "/pub/sub")).toBe("450 sub: Operation not permitted");
    expect(reply("STAT")).toBe("500 STAT: Operation not permitted");
    expect(reply("MLSD")).toBe("550 Unable to handle command");
    expect(reply("MLST", "a", "/pub/a")).toBe("550 Unable to handle command");
    expect(reply("MFMT", "20240101000000 a", "/pub/a")).toBe("550 Unable to handle command");
  });

  it("LIST and STAT with a path are not refused: proftpd lists what <Limit> lets through", () => {
    expect(reply("LIST")).toBeUndefined();
    expect(reply("LIST", "-la sub", "/pub/sub")).toBeUndefined();
    expect(reply("STAT", "sub", "/pub/sub")).toBeUndefined();
  });

  it("session commands", () => {
    expect(reply("NOOP")).toBe("550 Operation not permitted");
    expect(reply("FEAT")).toBe("550 FEAT: Operation not permitted");
    expect(reply("HELP")).toBe("501 HELP: Permission denied");
    expect(reply("HELP", "STOR")).toBe("501 HELP: Permission denied");
    expect(reply("PASV")).toBe("501 PASV: Operation not permitted");
    expect(reply("EPSV")).toBe("501 EPSV: Operation not permitted");
    expect(reply("PORT", "127,0,0,1,4,1")).toBe("501 PORT: Operation not permitted");
    expect(reply("EPRT", "|1|127.0.0.1|1025|")).toBe("501 EPRT: Operation not permitted");
    expect(reply("PROT", "P")).toBe("534 Unwilling to accept security parameters");
    expect(reply("CCC")).toBe("534 Unwilling to accept security parameters");
  });

  it("OPTS checks OPTS_<option> and SITE its subcommands, in mod_site.c's words", () => {
    expect(reply("OPTS", "UTF8 ON")).toBe("550 OPTS UTF8: Permission denied");
    expect(reply("OPTS", "MLST type;")).toBeUndefined();
    expect(reply("SITE", "CHMOD 644 a.txt", "/pub/a.txt")).toBe("550 CHMOD 644 a.txt: Permission denied");
    expect(reply("SITE", "help")).toBe("501 HELP: Permission denied");
    expect(reply("SITE", "UTIME 20240101 a")).toBeUndefined();
  });

  it("leaves a command with the wrong number of arguments to its handler's 501", () => {
    expect(reply("PWD", "x")).toBeUndefined();
    expect(reply("FEAT", "x")).toBeUndefined();
    expect(reply("DELE")).toBeUndefined();
    expect(reply("OPTS")).toBeUndefined();
    expect(reply("SITE", "CHMOD")).toBeUndefined();
  });

  it("never refuses what proftpd never checks", () => {
    for (const name of [
      "USER",
      "PASS",
      "QUIT",
      "SYST",
      "TYPE",
      "MODE",
      "STRU",
      "REST",
      "ABOR",
      "ALLO",
      "AUTH",
      "PBSZ",
    ]) {
      expect(reply(name, "x")).toBeUndefined();
    }
  });

  it("applies before login too, as proftpd's FEAT and HELP check", () => {
    expect(reply("FEAT", "", undefined, before)).toBe("550 FEAT: Operation not permitted");
  });
});

describe("limitReply: paths in the jail against <Directory> host paths", () => {
  const rules = rulesFrom("<Directory /home/bob/private>", "<Limit READ DIRS>", "DenyAll", "</Limit>", "</Directory>");

  it("joins the jail's host root and the user's path", () => {
    expect(hostPath("/home/bob", "/private/x")).toBe("/home/bob/private/x");
    expect(hostPath("/home/bob/", "/")).toBe("/home/bob");
    expect(hostPath("/", "/etc")).toBe("/etc");
    expect(hostPath("/", "/")).toBe("/");
  });

  it("refuses under the directory, and CWD into it, but not beside it", () => {
    expect(limitReply(rules, bob, "RETR", "x", "/private/x", JAIL)).toEqual({
      code: "550",
      message: "x: Operation not permitted",
    });
    expect(limitReply(rules, bob, "CWD", "/private", "/private", JAIL)).toEqual({
      code: "550",
      message: "/private: No such file or directory",
    });
    expect(limitReply(rules, bob, "RETR", "y", "/pub/y", JAIL)).toBeUndefined();
  });

  it("checks PWD and CDUP against the working directory and its parent", () => {
    const inside = { ...bob, cwd: "/private/sub" };
    expect(limitReply(rules, inside, "PWD", "", undefined, JAIL)?.message).toBe("PWD: Permission denied");
    expect(limitReply(rules, inside, "CDUP", "", undefined, JAIL)?.message).toBe("..: No such file or directory");
    expect(limitReply(rules, { ...bob, cwd: "/private" }, "CDUP", "", undefined, JAIL)).toBeUndefined();
  });

  it("without a jail, the user's path is the host path", () => {
    expect(limitReply(rules, bob, "RETR", "x", "/home/bob/private/x", "/")?.code).toBe("550");
    expect(limitReply(rules, bob, "RETR", "x", "/private/x", "/")).toBeUndefined();
  });

  it("limitAllows answers for listings", () => {
    expect(limitAllows(rules, bob, "LIST", "/private", JAIL)).toBe(false);
    expect(limitAllows(rules, bob, "LIST", "/pub", JAIL)).toBe(true);
  });
});

describe("loginReply", () => {
  it("turns a <Limit LOGIN> refusal into mod_auth.c's 530", () => {
    const rules = rulesFrom("<Limit LOGIN>", "DenyUser bob", "</Limit>");
    expect(loginReply(rules, { name: "bob", home: "/home/bob", groups: ["bob"] })).toEqual({
      code: "530",
      message: "Login incorrect.",
    });
    expect(loginReply(rules, { name: "alice", home: "/home/alice", groups: ["alice"] })).toBeUndefined();
  });
});
