/**
 * Controls that guest modules register, as proftpd's modules do with
 * pr_ctrls_register (contrib/mod_ban.c ban_init: `ban` and `permit`;
 * contrib/mod_ctrls_admin.c): a module exports `ctrl_<action>`, and
 * `dsoctl <action> args...` runs it. Its own directive applies ACLs to them
 * (mod_ban.c set_banctrlsacls: `BanControlsACLs actions|all allow|deny
 * user|group list`, through pr_ctrls_set_module_acls), so each module is
 * configured by itself; an action no directive names is denied to everyone,
 * as pr_ctrls_init_acl leaves it.
 *
 * The controls live as long as the module is in the engine: they are listed
 * by `help` and `lsctrl` while it is, and answer `unsupported action
 * requested` once rmmod took it out (mod_dso.c's pr_ctrls_unregister), until
 * an insmod brings fresh ones, enabled again.
 *
 * The state and the parsers are pure; the actions call guest code through the
 * module's invoker (its CPU budget and fault policy, as any handler). This
 * folder sits under the module host and its ABI, which use it: it names
 * neither (a module is any object; a request is an ActiveCommand by shape).
 */
import { DsoError, ErrorCodes } from "../errors.js";
import { SystemAccounts } from "../system/accounts.js";
import type { IdResolver } from "../system/accounts.js";
import { applyActionAcl, checkAcl, EMPTY_ACL_TABLE, parseActionAcl } from "./acl.js";
import type { AclTable } from "./acl.js";
import type { ControlsAction, ControlsCaller } from "./exchange.js";

/** What a module's controls are, kept in its importer state for the host symbols to fill. */
export interface ModuleControls {
  /** The actions of its `ctrl_<action>` exports, in export order. */
  readonly actions: readonly string[];
  /** What `help` shows for each action (pr_ctrls_register's description). */
  readonly descriptions: Map<string, string>;
  /** Its ACL directive's rules (pr_ctrls_set_module_acls); no entry denies the action to everyone. */
  acls: AclTable;
}

/** A module's controls and how to run one: what the guest module gives the controls server. */
export interface GuestControls {
  readonly module: string;
  readonly state: ModuleControls;
  /** Runs the module's `ctrl_<action>` with `request` active; throws a DsoError on a fault. */
  call(action: string, request: ControlRequest): number;
}

export function newModuleControls(actions: readonly string[]): ModuleControls {
  return { actions, descriptions: new Map(), acls: EMPTY_ACL_TABLE };
}

/** pr_ctrls_register's description for `action`; false when the module exports no `ctrl_<action>`. */
export function describeControl(controls: ModuleControls, action: string, description: string): boolean {
  if (!controls.actions.includes(action)) return false;
  controls.descriptions.set(action, description);
  return true;
}

/**
 * pr_ctrls_set_module_acls for the module's ACL directive, whose words after
 * its name are `args`: proftpd's checks and texts (`missing parameters`,
 * `: unknown action: 'x'`), names resolved now, as the config is read.
 * Throws DsoError(CONFIG) with the text CONF_ERROR would give.
 */
export function applyModuleAcls(controls: ModuleControls, args: readonly string[], resolve: IdResolver): void {
  controls.acls = applyActionAcl(controls.acls, parseActionAcl(args, controls.actions, resolve));
}

let systemAccounts: SystemAccounts | undefined;

/** The system's accounts, for a host whose services name no resolver: what the daemon's own directives use. */
export function defaultResolver(): IdResolver {
  systemAccounts ??= new SystemAccounts();
  return systemAccounts;
}

/**
 * The request a guest control sees while it runs: its words through
 * pr_cmd_argc/pr_cmd_argv (0 is the action, as proftpd's reqargv follows
 * the action), the client's user name through pr_session_user, and the lines
 * it answers with, added by pr_ctrls_add_response.
 */
export class ControlRequest {
  readonly name: string;
  readonly arg: string;
  readonly argv: readonly string[];
  readonly user: string;
  readonly cwd = undefined;
  path = undefined;
  transfer = undefined;
  readonly lines: string[] = [];

  constructor(argv: readonly string[], user: string) {
    this.name = argv[0] ?? "";
    this.arg = argv.slice(1).join(" ");
    this.argv = argv;
    this.user = user;
  }

  addControlResponse(line: string): void {
    this.lines.push(line);
  }

  // FTP replies have no place in a control's answer: a guest that adds one has mistaken the ABI.
  addResponse(): void {
    throw misplacedReply("pr_response_add");
  }

  addError(): void {
    throw misplacedReply("pr_response_add_err");
  }
}

function misplacedReply(symbol: string): DsoError {
  const reason = `'${symbol}' called in a control action (its lines go through 'pr_ctrls_add_response')`;
  return new DsoError(ErrorCodes.GUEST_TRAP, reason);
}

/** `help`'s text for an action the module registered no description for. */
function defaultDescription(module: string): string {
  return `control of ${module}`;
}

function controlAction(controls: GuestControls, action: string): ControlsAction {
  const { module, state } = controls;
  return {
    name: action,
    module,
    get description() {
      return state.descriptions.get(action) ?? defaultDescription(module);
    },
    acl: (caller: ControlsCaller) => checkAcl(state.acls, action, caller.uid, caller.gid),
    // The callback's value is the response's status, as proftpd sends a control handler's.
    handler: (args, caller) => {
      const request = new ControlRequest([action, ...args], caller.user);
      const status = controls.call(action, request);
      return { status, lines: request.lines };
    },
  };
}

const controlsByModule = new WeakMap<object, GuestControls>();

/** pr_ctrls_register for all of a module's controls at once: done as the guest module is built from its exports. */
export function registerModuleControls(module: object, controls: GuestControls): void {
  if (controls.state.actions.length > 0) controlsByModule.set(module, controls);
}

const actionsByModule = new WeakMap<object, readonly ControlsAction[]>();

/**
 * The controls of `modules` that register any, oldest module first. Each
 * module's are made once, so rmctrl's choice holds while it stays loaded and a
 * module loaded again starts with its controls enabled, as proftpd's does.
 */
export function moduleControlsActions(modules: readonly object[]): ControlsAction[] {
  return modules.flatMap((module) => {
    let actions = actionsByModule.get(module);
    if (actions === undefined) {
      const controls = controlsByModule.get(module);
      actions = controls === undefined ? [] : controls.state.actions.map((action) => controlAction(controls, action));
      actionsByModule.set(module, actions);
    }
    return actions;
  });
}
