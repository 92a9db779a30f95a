/**
 * mod_ctrls.c, compiled in: the Controls* directives (modules/mod_ctrls.c's
 * conftab). The socket server itself is host/controls/server.ts, and
 * mod_ctrls's own controls (help, lsctrl, insctrl, rmctrl) are
 * host/controls/ctrls-actions.ts.
 */
import {
  DEFAULT_SOCKET_ACL,
  EMPTY_ACL_TABLE,
  applyActionAcl,
  parseActionAcl,
  parseSocketAcl,
} from "../controls/acl.js";
import { CTRLS_ACTIONS } from "../controls/ctrls-actions.js";
import { DEFAULT_SOCKET_MODE } from "../controls/server.js";
import type { Acl, AclTable } from "../controls/acl.js";
import type { AccountResolver } from "../system/accounts.js";
import type { ActiveCommand } from "../abi/host-symbols.js";
import type { EngineModule } from "../modules/module-api.js";
import { booleanParam, checkArgs, directiveError, param } from "../config/directives.js";

export interface CtrlsSettings {
  engine: boolean;
  socketPath: string;
  /** ControlsSocketOwner: uid and gid the socket is chowned to; the daemon's own when unset. */
  socketOwner: { uid: number; gid: number } | undefined;
  /** ControlsSocketMode (dsod's): the socket file's permission bits; mod_ctrls's 0777 when unset. */
  socketMode: number;
  /** Deny-by-default, as the manual says (proftpd 1.3.8 wrongly allows all; upstream #2210 fixed it). */
  socketAcl: Acl;
  /** ControlsACLs, per mod_ctrls action; no entry means everyone is denied, root included. */
  acls: AclTable;
  maxClients: number;
  logFile: string | undefined;
}

/** The directive's parameter `index`, after proftpd's CHECK_ARGS for it. */
function arg(directive: ActiveCommand, index: number): string {
  checkArgs(directive, index);
  return param(directive, index);
}

/**
 * An octal mode of the socket file's permission bits, as chmod(1) writes it
 * (`770`, `0770`): set-id and sticky bits mean nothing on a socket and are refused.
 */
export function parseSocketMode(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value))
    throw directiveError(`'${value}' is not a socket mode (octal permission bits, 000 to 777)`);
  return Number.parseInt(value, 8);
}

function positiveInteger(value: string, what: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw directiveError(`${what} must be greater than zero: '${value}'`);
  return Number(value);
}

export function createCtrlsModule(
  defaultSocket: string,
  accounts: AccountResolver,
  log: (priority: "notice", message: string) => void = () => {},
): { module: EngineModule; settings: CtrlsSettings } {
  const settings: CtrlsSettings = {
    engine: true,
    socketPath: defaultSocket,
    socketOwner: undefined,
    socketMode: DEFAULT_SOCKET_MODE,
    socketAcl: DEFAULT_SOCKET_ACL,
    acls: EMPTY_ACL_TABLE,
    maxClients: 5,
    logFile: undefined,
  };
  const module: EngineModule = {
    name: "mod_ctrls.c",
    kind: "static",
    commands: [],
    siteCommands: [],
    features: [],
    help: [],
    directives: [
      {
        name: "ControlsEngine",
        run: (directive) => {
          checkArgs(directive, 1);
          settings.engine = booleanParam(directive, 1);
        },
      },
      {
        name: "ControlsSocket",
        run: (directive) => {
          const path = arg(directive, 1);
          if (!path.startsWith("/")) throw directiveError("must be an absolute path");
          // sockaddr_un.sun_path holds 108 bytes on Linux, the terminating NUL included.
          if (Buffer.byteLength(path) > 107)
            throw directiveError(`socket path '${path}' is too long (at most 107 bytes)`);
          settings.socketPath = path;
        },
      },
      {
        name: "ControlsSocketOwner",
        run: (directive) => {
          const user = arg(directive, 1);
          const group = arg(directive, 2);
          const uid = accounts.uidOf(user);
          if (uid === undefined) throw directiveError(`unknown user '${user}'`);
          const gid = accounts.gidOf(group);
          if (gid === undefined) throw directiveError(`unknown group '${group}'`);
          settings.socketOwner = { uid, gid };
        },
      },
      {
        // Beyond proftpd, whose socket is always 0777: with ControlsSocketOwner, the kernel keeps
        // users outside the owner and group from connecting at all (docs/security.md).
        name: "ControlsSocketMode",
        run: (directive) => {
          settings.socketMode = parseSocketMode(arg(directive, 1));
        },
      },
      {
        name: "ControlsSocketACL",
        run: (directive) => {
          settings.socketAcl = parseSocketAcl(directive.argv.slice(1), accounts);
        },
      },
      {
        // set_ctrlsacls: ModuleControlsACLs' syntax and checks, for mod_ctrls's own actions
        // (`: unknown action: 'lsmod'` for one of mod_dso's).
        name: "ControlsACLs",
        run: (directive) => {
          settings.acls = applyActionAcl(
            settings.acls,
            parseActionAcl(directive.argv.slice(1), CTRLS_ACTIONS, accounts),
          );
        },
      },
      {
        name: "ControlsMaxClients",
        run: (directive) => {
          settings.maxClients = positiveInteger(arg(directive, 1), "max clients");
        },
      },
      {
        name: "ControlsLog",
        run: (directive) => {
          const path = arg(directive, 1);
          if (!path.startsWith("/")) throw directiveError("must be an absolute path");
          settings.logFile = path;
        },
      },
      {
        // proftpd handles requests on a timer tick; dsod handles each as it arrives, so the
        // interval is accepted for compatibility and has no effect.
        name: "ControlsInterval",
        run: (directive, context) => {
          positiveInteger(arg(directive, 1), "interval");
          log(
            "notice",
            `ControlsInterval on line ${context.line} of '${context.file}' is accepted for compatibility only: dsod answers each controls request as it arrives`,
          );
        },
      },
    ],
  };
  return { module, settings };
}
