import { describe, expect, it } from "vitest";
import { DEFAULT_SOCKET_MODE } from "../../../host/controls/server.js";
import { createCtrlsModule, parseSocketMode } from "../../../host/static/mod-ctrls.js";
import type { AccountResolver } from "../../../host/system/accounts.js";
import { testCommand } from "../../helpers/session.js";

const ids: Readonly<Record<string, number>> = { root: 0, ftpadm: 990 };
const accounts: AccountResolver = {
  uidOf: (name) => ids[name],
  gidOf: (name) => ids[name],
  userName: (uid) => String(uid),
  groupName: (gid) => String(gid),
};

/** Runs the module's directive `argv[0]` on a fresh module; returns its settings. */
function run(...argv: string[]) {
  const { module, settings } = createCtrlsModule("/run/dsod.sock", accounts);
  const handler = module.directives.find((directive) => directive.name === argv[0]);
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  handler.run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
  return settings;
}

describe("ControlsSocketMode and ControlsSocketOwner", () => {
  it("default to mod_ctrls's 0777 and the daemon's own user", () => {
    const { settings } = createCtrlsModule("/run/dsod.sock", accounts);
    expect(settings.socketMode).toBe(0o777);
    expect(DEFAULT_SOCKET_MODE).toBe(0o777);
    expect(settings.socketOwner).toBeUndefined();
  });

  it("take an owner and group by name and a mode in octal, as chmod(1) writes it", () => {
    expect(run("ControlsSocketOwner", "root", "ftpadm").socketOwner).toEqual({ uid: 0, gid: 990 });
    expect(run("ControlsSocketMode", "0770").socketMode).toBe(0o770);
    expect(run("ControlsSocketMode", "660").socketMode).toBe(0o660);
    expect(run("ControlsSocketMode", "000").socketMode).toBe(0);
  });

  it("refuse what is no permission mode: set-id and sticky bits, decimal digits, other bases", () => {
    for (const text of ["4770", "1777", "0o770", "778", "77", "rwxrwx---", "0x1ff", "+770", ""]) {
      expect(() => parseSocketMode(text)).toThrow(`'${text}' is not a socket mode (octal permission bits, 000 to 777)`);
    }
    expect(() => run("ControlsSocketMode")).toThrow("missing parameters");
    expect(() => run("ControlsSocketOwner", "nosuchuser", "root")).toThrow("unknown user 'nosuchuser'");
  });
});
