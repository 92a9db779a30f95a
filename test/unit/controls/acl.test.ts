import { describe, expect, it } from "vitest";
import { ErrorCodes } from "../../../host/errors.js";
import {
  aclAllows,
  applyActionAcl,
  checkAcl,
  DEFAULT_SOCKET_ACL,
  EMPTY_ACL_TABLE,
  parseActionAcl,
  parseSocketAcl,
  ruleAllows,
  splitAclList,
  type Acl,
  type AclTable,
} from "../../../host/controls/acl.js";
import type { IdResolver } from "../../../host/system/accounts.js";

const DSO_ACTIONS = ["insmod", "lsmod", "rmmod"] as const;

/**
 * The accounts of the machine proftpd 1.3.8's ACLs were observed on:
 * root=0/root=0, daemon=1/daemon=1, nobody=65534/nogroup=65534.
 */
const resolver: IdResolver = {
  uidOf: (name) => ({ root: 0, daemon: 1, nobody: 65534 })[name],
  gidOf: (name) => ({ root: 0, daemon: 1, nogroup: 65534 })[name],
};

/** 1.3.8's zeroed socket ACL (allow=FALSE, empty lists): lets everyone in. */
const ALLOW_ALL_138: Acl = {
  user: { allow: false, everyone: false, ids: [] },
  group: { allow: false, everyone: false, ids: [] },
};

type Directive = readonly [name: "ModuleControlsACLs" | "ControlsSocketACL", ...args: string[]];

interface Configured {
  readonly table: AclTable;
  readonly socket: Acl | undefined;
}

function configure(directives: readonly Directive[]): Configured {
  let table = EMPTY_ACL_TABLE;
  let socket: Acl | undefined;
  for (const [name, ...args] of directives) {
    if (name === "ModuleControlsACLs") {
      table = applyActionAcl(table, parseActionAcl(args, DSO_ACTIONS, resolver));
    } else {
      socket = parseSocketAcl(args, resolver);
    }
  }
  return { table, socket };
}

interface Identity {
  readonly uid: number;
  readonly gid: number;
}

const root: Identity = { uid: 0, gid: 0 };
const nobody: Identity = { uid: 65534, gid: 65534 };
const daemon: Identity = { uid: 1, gid: 1 };
const nobodyWithGidDaemon: Identity = { uid: 65534, gid: 1 };
const daemonWithGidNogroup: Identity = { uid: 1, gid: 65534 };

type Outcome = "allowed" | "AD";

/**
 * What the client sees: the socket ACL at accept time, then the action's ACL
 * (`help` has none). proftpd 1.3.8 was observed with its allow-all socket default,
 * so rows without ControlsSocketACL are evaluated with that default here; our
 * own deny-by-default is asserted separately below.
 */
function outcome(config: Configured, who: Identity, action: string, socketDefault: Acl = ALLOW_ALL_138): Outcome {
  if (!aclAllows(config.socket ?? socketDefault, who.uid, who.gid)) {
    return "AD";
  }
  if (action === "help") {
    return "allowed";
  }
  return checkAcl(config.table, action, who.uid, who.gid) ? "allowed" : "AD";
}

interface MatrixRow {
  readonly config: string;
  readonly directives: readonly Directive[];
  readonly expect: readonly (readonly [who: string, identity: Identity, action: string, result: Outcome])[];
}

/** The ACL matrix observed on proftpd 1.3.8 through ftpdctl, row by row. LM/"works" = allowed. */
const MATRIX: readonly MatrixRow[] = [
  {
    config: "none",
    directives: [],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["root", root, "insmod", "AD"],
      ["root", root, "rmmod", "AD"],
      ["nobody", nobody, "lsmod", "AD"],
    ],
  },
  {
    config: "insmod,rmmod allow user root + lsmod allow user * (Debian's modules.conf)",
    directives: [
      ["ModuleControlsACLs", "insmod,rmmod", "allow", "user", "root"],
      ["ModuleControlsACLs", "lsmod", "allow", "user", "*"],
    ],
    expect: [
      ["root", root, "lsmod", "allowed"],
      ["root", root, "insmod", "allowed"],
      ["nobody", nobody, "lsmod", "allowed"],
      ["nobody", nobody, "insmod", "AD"],
      ["nobody", nobody, "rmmod", "AD"],
    ],
  },
  {
    config: "lsmod deny user nobody",
    directives: [["ModuleControlsACLs", "lsmod", "deny", "user", "nobody"]],
    expect: [
      ["root", root, "lsmod", "allowed"],
      ["root", root, "insmod", "AD"],
      ["nobody", nobody, "lsmod", "AD"],
      ["daemon", daemon, "lsmod", "allowed"],
    ],
  },
  {
    config: "lsmod deny user *",
    directives: [["ModuleControlsACLs", "lsmod", "deny", "user", "*"]],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["nobody", nobody, "lsmod", "AD"],
    ],
  },
  {
    config: "lsmod allow group daemon",
    directives: [["ModuleControlsACLs", "lsmod", "allow", "group", "daemon"]],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["nobody", nobody, "lsmod", "AD"],
      ["daemon", daemon, "lsmod", "allowed"],
      ["uid nobody + gid daemon", nobodyWithGidDaemon, "lsmod", "allowed"],
    ],
  },
  {
    config: "lsmod allow user root + lsmod deny group nogroup",
    directives: [
      ["ModuleControlsACLs", "lsmod", "allow", "user", "root"],
      ["ModuleControlsACLs", "lsmod", "deny", "group", "nogroup"],
    ],
    expect: [
      ["root", root, "lsmod", "allowed"],
      ["nobody", nobody, "lsmod", "AD"],
      ["daemon", daemon, "lsmod", "allowed"],
      ["uid daemon + gid nogroup", daemonWithGidNogroup, "lsmod", "AD"],
    ],
  },
  {
    config: "lsmod allow user root, then lsmod allow user nobody",
    directives: [
      ["ModuleControlsACLs", "lsmod", "allow", "user", "root"],
      ["ModuleControlsACLs", "lsmod", "allow", "user", "nobody"],
    ],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["nobody", nobody, "lsmod", "allowed"],
    ],
  },
  {
    config: "ALL allow user no_such_user_x,root",
    directives: [["ModuleControlsACLs", "ALL", "allow", "user", "no_such_user_x,root"]],
    expect: [
      ["root", root, "lsmod", "allowed"],
      ["nobody", nobody, "lsmod", "AD"],
    ],
  },
  {
    config: "insmod allow user root,* + lsmod allow user 0",
    directives: [
      ["ModuleControlsACLs", "insmod", "allow", "user", "root,*"],
      ["ModuleControlsACLs", "lsmod", "allow", "user", "0"],
    ],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["nobody", nobody, "insmod", "allowed"],
    ],
  },
  {
    config: "ControlsSocketACL allow user root + all allow user *",
    directives: [
      ["ControlsSocketACL", "allow", "user", "root"],
      ["ModuleControlsACLs", "all", "allow", "user", "*"],
    ],
    expect: [
      ["root", root, "lsmod", "allowed"],
      ["nobody", nobody, "lsmod", "AD"],
      ["nobody", nobody, "help", "AD"],
    ],
  },
  {
    config: "ControlsSocketACL allow user root, then ControlsSocketACL allow group daemon",
    directives: [
      ["ControlsSocketACL", "allow", "user", "root"],
      ["ControlsSocketACL", "allow", "group", "daemon"],
      ["ModuleControlsACLs", "all", "allow", "user", "*"],
    ],
    expect: [
      ["root", root, "lsmod", "AD"],
      ["nobody", nobody, "lsmod", "AD"],
      ["daemon", daemon, "lsmod", "allowed"],
    ],
  },
  {
    config: "no ControlsSocketACL, all allow user * (1.3.8 default socket ACL)",
    directives: [["ModuleControlsACLs", "all", "allow", "user", "*"]],
    expect: [
      ["nobody", nobody, "lsmod", "allowed"],
      ["daemon", daemon, "lsmod", "allowed"],
    ],
  },
];

describe("ACL matrix observed on proftpd 1.3.8", () => {
  for (const row of MATRIX) {
    describe(row.config, () => {
      const config = configure(row.directives);
      for (const [who, identity, action, result] of row.expect) {
        it(`${who} ${action} -> ${result}`, () => {
          expect(outcome(config, identity, action)).toBe(result);
        });
      }
    });
  }
});

describe("ControlsSocketACL default", () => {
  it("denies everyone, root included, when no ControlsSocketACL is configured (manual's intent, upstream #2210)", () => {
    const config = configure([["ModuleControlsACLs", "all", "allow", "user", "*"]]);
    for (const who of [root, nobody, daemon]) {
      expect(outcome(config, who, "lsmod", DEFAULT_SOCKET_ACL)).toBe("AD");
      expect(outcome(config, who, "help", DEFAULT_SOCKET_ACL)).toBe("AD");
    }
  });

  it("matches 1.3.8's own unit test: a zeroed ACL lets anyone in", () => {
    expect(aclAllows(ALLOW_ALL_138, 12345, 54321)).toBe(true);
  });

  it("re-initialises the whole socket ACL on each directive", () => {
    expect(parseSocketAcl(["deny", "group", "nogroup"], resolver)).toEqual({
      user: { allow: true, everyone: false, ids: [] },
      group: { allow: false, everyone: false, ids: [65534] },
    });
  });
});

describe("rule_ok truth table (pr_ctrls_check_user_acl)", () => {
  const cases = [
    [{ allow: true, everyone: true, ids: [] }, 7, true],
    [{ allow: false, everyone: true, ids: [] }, 7, false],
    [{ allow: true, everyone: false, ids: [] }, 7, false],
    [{ allow: false, everyone: false, ids: [] }, 7, true],
    [{ allow: true, everyone: false, ids: [7] }, 7, true],
    [{ allow: true, everyone: false, ids: [7] }, 8, false],
    [{ allow: false, everyone: false, ids: [7] }, 7, false],
    [{ allow: false, everyone: false, ids: [7] }, 8, true],
  ] as const;
  for (const [rule, id, allowed] of cases) {
    it(`${rule.allow ? "allow" : "deny"} ${rule.everyone ? "*" : `[${rule.ids.join(",")}]`} id ${id} -> ${allowed}`, () => {
      expect(ruleAllows(rule, id)).toBe(allowed);
    });
  }
});

describe("parseActionAcl", () => {
  function errorOf(args: readonly string[]): { code: unknown; message: unknown } {
    try {
      parseActionAcl(args, DSO_ACTIONS, resolver);
    } catch (error) {
      return { code: Reflect.get(error as object, "code"), message: Reflect.get(error as object, "message") };
    }
    throw new Error("expected a config error");
  }

  it("needs four parameters", () => {
    expect(errorOf(["lsmod", "allow", "user"])).toEqual({ code: ErrorCodes.CONFIG, message: "missing parameters" });
  });

  it("takes only 'allow' or 'deny', compared exactly", () => {
    expect(errorOf(["lsmod", "Allow", "user", "root"])).toEqual({
      code: ErrorCodes.CONFIG,
      message: "second parameter must be 'allow' or 'deny'",
    });
  });

  it("takes only 'user' or 'group'", () => {
    expect(errorOf(["lsmod", "allow", "users", "root"]).message).toBe("third parameter must be 'user' or 'group'");
  });

  it("names the first unknown action, with the doubled colon once prefixed", () => {
    const error = errorOf(["lsmod,foo,bar", "allow", "user", "root"]);
    expect(error).toEqual({ code: ErrorCodes.CONFIG, message: ": unknown action: 'foo'" });
    expect(`ModuleControlsACLs: ${String(error.message)}`).toBe("ModuleControlsACLs: : unknown action: 'foo'");
  });

  it("matches action names case-sensitively and `all` case-insensitively", () => {
    expect(errorOf(["LSMOD", "allow", "user", "root"]).message).toBe(": unknown action: 'LSMOD'");
    expect(parseActionAcl(["All", "deny", "group", "daemon"], DSO_ACTIONS, resolver)).toEqual({
      actions: ["insmod", "lsmod", "rmmod"],
      kind: "group",
      rule: { allow: false, everyone: false, ids: [1] },
    });
  });

  it("checks allow|deny before the action names, as mod_dso does", () => {
    expect(errorOf(["foo", "permit", "user", "root"]).message).toBe("second parameter must be 'allow' or 'deny'");
  });

  it("ignores arguments past the fourth", () => {
    expect(parseActionAcl(["rmmod insmod", "allow", "user", "daemon", "extra"], DSO_ACTIONS, resolver)).toEqual({
      actions: ["insmod", "rmmod"],
      kind: "user",
      rule: { allow: true, everyone: false, ids: [1] },
    });
  });

  it("turns the whole list into everybody at `*` and drops unknown names", () => {
    expect(parseActionAcl(["lsmod", "allow", "user", "root,*,nobody"], DSO_ACTIONS, resolver).rule).toEqual({
      allow: true,
      everyone: true,
      ids: [],
    });
    expect(parseActionAcl(["lsmod", "deny", "user", "ghost,nobody,0"], DSO_ACTIONS, resolver).rule).toEqual({
      allow: false,
      everyone: false,
      ids: [65534],
    });
  });

  it("replaces only the rule of the same action and kind", () => {
    let table = EMPTY_ACL_TABLE;
    table = applyActionAcl(table, parseActionAcl(["all", "allow", "user", "root"], DSO_ACTIONS, resolver));
    table = applyActionAcl(table, parseActionAcl(["lsmod", "allow", "group", "daemon"], DSO_ACTIONS, resolver));
    table = applyActionAcl(table, parseActionAcl(["rmmod", "allow", "user", "nobody"], DSO_ACTIONS, resolver));
    expect(Object.fromEntries(table)).toEqual({
      insmod: { user: { allow: true, everyone: false, ids: [0] }, group: { allow: true, everyone: false, ids: [] } },
      lsmod: { user: { allow: true, everyone: false, ids: [0] }, group: { allow: true, everyone: false, ids: [1] } },
      rmmod: { user: { allow: true, everyone: false, ids: [65534] }, group: { allow: true, everyone: false, ids: [] } },
    });
  });

  it("denies an action that has no entry in the table", () => {
    expect(checkAcl(EMPTY_ACL_TABLE, "lsmod", 0, 0)).toBe(false);
  });
});

describe("parseSocketAcl", () => {
  function messageOf(args: readonly string[]): unknown {
    try {
      parseSocketAcl(args, resolver);
    } catch (error) {
      return Reflect.get(error as object, "message");
    }
    throw new Error("expected a config error");
  }

  it("uses mod_ctrls's texts", () => {
    expect(messageOf(["allow", "user"])).toBe("missing parameters");
    expect(messageOf(["permit", "user", "root"])).toBe("first parameter must be either 'allow' or 'deny'");
    expect(messageOf(["allow", "uid", "root"])).toBe("second parameter must be either 'user' or 'group'");
  });
});

describe("splitAclList (ctrls_argsep)", () => {
  const cases: readonly (readonly [string, readonly string[]])[] = [
    ["root", ["root"]],
    ["root,daemon", ["root", "daemon"]],
    ["root, daemon", ["root", "daemon"]],
    ["insmod rmmod", ["insmod", "rmmod"]],
    ["root ,daemon", ["root", "", "daemon"]],
    ['"ro ot",daemon', ["ro ot", "", "daemon"]],
    ['"a\\"b"', ['a"b']],
    ["", []],
    ["  ", []],
    [",", [""]],
    ["root,", ["root"]],
  ];
  for (const [text, items] of cases) {
    it(`${JSON.stringify(text)} -> ${JSON.stringify(items)}`, () => {
      expect(splitAclList(text)).toEqual(items);
    });
  }
});
