/**
 * mod_ctrls's own controls (modules/mod_ctrls.c ctrls_acttab), answering with
 * proftpd 1.3.8's lines:
 *
 *   help                   `action: description` for every registered control, sorted
 *   lsctrl                 `action (mod_x.c)` for every enabled control, sorted
 *   rmctrl action [mod]    `'action' control disabled`: the action answers
 *                          `unsupported action requested` until insctrl
 *   insctrl action [mod]   `'action' control enabled`
 *
 * `help` has no ACL; the other three are guarded by ControlsACLs, which
 * denies everyone until configured. `rmctrl all` disables every control,
 * these included, and stops listening: `restart the daemon to re-enable
 * controls`. (`rmctrl all mod_x.c` disables that module's controls only; in
 * proftpd it also stops listening, leaving the other modules' controls
 * enabled but unreachable.)
 *
 * Unlike 1.3.8, whose handlers answer 0 once they ran, a failure (`no such
 * control`, `cannot be removed`, wrong parameters) has status -1, so dsoctl
 * exits non-zero; and a module argument that names no module with controls
 * matches nothing, where proftpd's pr_module_get returns NULL and so matches
 * every module.
 */
import { checkAcl } from "./acl.js";
import type { AclTable } from "./acl.js";
import type { ControlsAction, ControlsResult } from "./exchange.js";
import { ControlsStatus } from "./wire.js";

/** The actions ControlsACLs knows (mod_ctrls.c ctrls_acttab), in its order. */
export const CTRLS_ACTIONS = ["help", "insctrl", "lsctrl", "rmctrl"] as const;

const MODULE = "mod_ctrls.c";

/** The three controls rmctrl refuses to disable one by one (`rmctrl all` still does). */
const PERMANENT: ReadonlySet<string> = new Set(["insctrl", "lsctrl", "rmctrl"]);

/**
 * The registered controls and which are enabled (src/ctrls.c's action list
 * and its PR_CTRLS_ACT_DISABLED flag). One registry lives as long as the
 * controls server: a SIGHUP does not re-enable what rmctrl disabled.
 * Controls that come and go with their modules are read from `sources` at
 * each request, after the fixed ones; an action is disabled as the object it
 * is, so a module loaded again brings its controls back enabled.
 */
export class ControlsRegistry {
  readonly #actions: ControlsAction[] = [];
  readonly #sources: Array<() => readonly ControlsAction[]> = [];
  readonly #disabled = new WeakSet<ControlsAction>();

  add(actions: readonly ControlsAction[]): void {
    this.#actions.push(...actions);
  }

  /** Controls registered as long as `source` lists them (the loaded modules' own). */
  addSource(source: () => readonly ControlsAction[]): void {
    this.#sources.push(source);
  }

  /** Every registered control, disabled ones included. */
  all(): readonly ControlsAction[] {
    if (this.#sources.length === 0) return this.#actions;
    return [...this.#actions, ...this.#sources.flatMap((source) => source())];
  }

  /** The controls a request may name. */
  enabled(): ControlsAction[] {
    return this.all().filter((action) => !this.#disabled.has(action));
  }

  /**
   * pr_set_registered_actions: enables or disables `name` (`all` for every
   * control) of `module`, or of any module; false when nothing matched.
   */
  set(name: string, module: string | undefined, enabled: boolean): boolean {
    const matched = this.all().filter(
      (action) => (name === "all" || action.name === name) && (module === undefined || action.module === module),
    );
    for (const action of matched) {
      if (enabled) this.#disabled.delete(action);
      else this.#disabled.add(action);
    }
    return matched.length > 0;
  }
}

/** proftpd's respcmp: the response lines in strcmp order. */
function sorted(lines: readonly string[]): string[] {
  return [...lines].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function ok(lines: readonly string[]): ControlsResult {
  return { status: ControlsStatus.OK, lines };
}

function failed(line: string): ControlsResult {
  return { status: ControlsStatus.FAILED, lines: [line] };
}

const WRONG_PARAMETERS = failed("wrong number of parameters");

/** `help`'s lines: every registered control as `name: description`, sorted. */
export function helpLines(actions: readonly ControlsAction[]): string[] {
  return sorted(actions.map((action) => `${action.name}: ${action.description}`));
}

/** `lsctrl`'s lines: every enabled control as `name (mod_x.c)`, or `(core)` for one no module registered. */
export function lsctrlLines(actions: readonly ControlsAction[]): string[] {
  return sorted(actions.map((action) => `${action.name} (${action.module ?? "core"})`));
}

/**
 * mod_ctrls's four controls over `registry`. `acls` is read per request (a
 * reload's ControlsACLs apply at once); `onAllDisabled` runs after `rmctrl
 * all` has answered, to stop listening.
 */
export function ctrlsControlsActions(
  registry: ControlsRegistry,
  acls: () => AclTable,
  onAllDisabled: () => void,
): ControlsAction[] {
  const guarded = (name: (typeof CTRLS_ACTIONS)[number]) => (caller: { uid: number; gid: number }) =>
    checkAcl(acls(), name, caller.uid, caller.gid);
  const toggle = (args: readonly string[], enable: boolean): ControlsResult => {
    if (args.length < 1 || args.length > 2) return WRONG_PARAMETERS;
    const [name, module] = args as [string, string | undefined];
    if (!enable && PERMANENT.has(name)) return failed(`'${name}' control cannot be removed`);
    if (!registry.set(name, module, enable)) return failed(`no such control: '${name}'`);
    if (enable) return ok([`'${name}' control enabled`]);
    // One module's controls (`rmctrl all mod_dso.c`) leave the others answering: only a plain `all` stops the socket.
    if (name !== "all" || module !== undefined) return ok([`'${name}' control disabled`]);
    onAllDisabled();
    return ok(["all controls disabled", "restart the daemon to re-enable controls"]);
  };
  return [
    {
      name: "help",
      module: MODULE,
      description: "describe all registered controls",
      acl: () => true,
      handler: (args) => (args.length !== 0 ? WRONG_PARAMETERS : ok(helpLines(registry.all()))),
    },
    {
      name: "insctrl",
      module: MODULE,
      description: "enable a disabled control",
      acl: guarded("insctrl"),
      handler: (args) => toggle(args, true),
    },
    {
      name: "lsctrl",
      module: MODULE,
      description: "list all registered controls",
      acl: guarded("lsctrl"),
      handler: (args) => (args.length !== 0 ? WRONG_PARAMETERS : ok(lsctrlLines(registry.enabled()))),
    },
    {
      name: "rmctrl",
      module: MODULE,
      description: "disable a registered control",
      acl: guarded("rmctrl"),
      handler: (args) => toggle(args, false),
    },
  ];
}
