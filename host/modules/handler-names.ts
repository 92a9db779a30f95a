/**
 * Exports that look like handlers but break the naming rule of the module
 * protocol (guest-module.ts): `cmd_test`, `cmdTYPO`, `pre_cmdfoo`,
 * `post_err_cmd_X`, `Sess_init`, `ctrl_Ban`. The host maps only exact names to handlers;
 * anything else is an ordinary export that enters the global scope, so a
 * misspelt handler would load silently and never run. proftpd cannot make
 * this mistake (its cmdtab names commands in strings); the loader warns and
 * the load still succeeds.
 *
 * Pure: export names in, problems out.
 */
import { isProtocolExport } from "./guest-module.js";

const COMMAND_NAME = /^[A-Z][A-Z0-9_]*$/;
const ACTION_NAME = /^[a-z][a-z0-9_]*$/;

/** What follows a prefix: a command name (upper case), a control action (lower case), a directive name (any case). */
type Rest = "command" | "action" | "directive";

/** How the rest is written and checked, per kind. */
interface RestRule {
  readonly spell: (rest: string) => string;
  readonly valid: RegExp;
  readonly rule: string;
}

const RESTS: Readonly<Record<Rest, RestRule>> = {
  command: { spell: (rest) => rest.toUpperCase(), valid: COMMAND_NAME, rule: "X, X in capitals" },
  action: { spell: (rest) => rest.toLowerCase(), valid: ACTION_NAME, rule: "x, x in lower case" },
  directive: { spell: (rest) => rest, valid: /./, rule: "X" },
};

/** How a prefix is written with case and underscores ignored, and how the host spells it. */
interface Prefix {
  readonly squashed: string;
  readonly canonical: string;
  readonly rest: Rest;
  /**
   * A one-word prefix (`cmd`, `site`, `conf`) is a handler's only when a word
   * boundary follows it (an underscore or a capital): `cmdline` and `config`
   * are ordinary names. Two-word prefixes (`precmd`) are distinctive alone.
   */
  readonly needsBoundary: boolean;
}

/** Longest first: `postcmderr` before `postcmd`. The `errcmd` orders are the phase words swapped. */
const PREFIXES: readonly Prefix[] = [
  { squashed: "postcmderr", canonical: "post_cmd_err_", rest: "command", needsBoundary: false },
  { squashed: "posterrcmd", canonical: "post_cmd_err_", rest: "command", needsBoundary: false },
  { squashed: "logcmderr", canonical: "log_cmd_err_", rest: "command", needsBoundary: false },
  { squashed: "logerrcmd", canonical: "log_cmd_err_", rest: "command", needsBoundary: false },
  { squashed: "postcmd", canonical: "post_cmd_", rest: "command", needsBoundary: false },
  { squashed: "logcmd", canonical: "log_cmd_", rest: "command", needsBoundary: false },
  { squashed: "precmd", canonical: "pre_cmd_", rest: "command", needsBoundary: false },
  { squashed: "cmd", canonical: "cmd_", rest: "command", needsBoundary: true },
  { squashed: "site", canonical: "site_", rest: "command", needsBoundary: true },
  { squashed: "conf", canonical: "conf_", rest: "directive", needsBoundary: true },
  { squashed: "ctrl", canonical: "ctrl_", rest: "action", needsBoundary: true },
];

/** The hooks, by their squashed spellings (`sessinit`, `session_init`, `moduleInit`). */
const HOOKS: ReadonlyMap<string, string> = new Map([
  ["moduleinit", "module_init"],
  ["moduleunload", "module_unload"],
  ["sessinit", "sess_init"],
  ["sessioninit", "sess_init"],
]);

export interface HandlerNameProblem {
  /** The export as the module names it. */
  readonly exportName: string;
  /** What it looks like: a handler (`cmd_X`, `site_X`, `conf_X`) or a hook (`sess_init`). */
  readonly role: "handler" | "hook";
  /** How the host names it: `cmd_X, X in capitals`, `conf_X`, `ctrl_x, x in lower case`, `sess_init`. */
  readonly rule: string;
  /** The name the host would take as the handler, when one is clear. */
  readonly suggestion: string | undefined;
}

/**
 * Where `name` continues after `squashed`'s letters, read case-insensitively
 * with underscores skipped; -1 when it does not start with them.
 */
function afterLetters(name: string, squashed: string): number {
  let i = 0;
  for (const letter of squashed) {
    while (name[i] === "_") i++;
    if (name[i]?.toLowerCase() !== letter) return -1;
    i++;
  }
  return i;
}

function prefixProblem(name: string, prefix: Prefix): HandlerNameProblem | undefined {
  const end = afterLetters(name, prefix.squashed);
  if (end < 0) return undefined;
  let start = end;
  while (name[start] === "_") start++;
  const rest = name.slice(start);
  const boundary = start > end || /^[A-Z]/.test(rest);
  if (prefix.needsBoundary && !boundary) return undefined;
  const kind = RESTS[prefix.rest];
  const handler = kind.spell(rest);
  const valid = kind.valid.test(handler);
  const rule = prefix.canonical + kind.rule;
  return { exportName: name, role: "handler", rule, suggestion: valid ? prefix.canonical + handler : undefined };
}

/**
 * The exports among `exportNames` that look like handlers or hooks but are
 * not, in their order, each with the name the host would take when one is
 * clear. `moduleSymbol` (`x_module`) is the module's own and never one.
 */
export function handlerNameProblems(
  exportNames: readonly string[],
  moduleSymbol: string | undefined,
): HandlerNameProblem[] {
  const problems: HandlerNameProblem[] = [];
  for (const name of exportNames) {
    if (isProtocolExport(name, moduleSymbol)) continue;
    const hook = HOOKS.get(name.toLowerCase().replaceAll("_", ""));
    if (hook !== undefined) {
      problems.push({ exportName: name, role: "hook", rule: hook, suggestion: hook });
      continue;
    }
    for (const prefix of PREFIXES) {
      const problem = prefixProblem(name, prefix);
      if (problem !== undefined) {
        problems.push(problem);
        break;
      }
    }
  }
  return problems;
}

const problemsByExports = new WeakMap<readonly { readonly name: string }[], readonly HandlerNameProblem[]>();

/**
 * handlerNameProblems of a unit's public exports (planner.ts's publicExports,
 * one array per compiled module and module symbol), found once per array: a
 * reload of a module with thousands of exports does not run the rules again.
 */
export function exportNameProblems(
  exports: readonly { readonly name: string }[],
  moduleSymbol: string | undefined,
): readonly HandlerNameProblem[] {
  let problems = problemsByExports.get(exports);
  if (problems === undefined) {
    problems = handlerNameProblems(
      exports.map((e) => e.name),
      moduleSymbol,
    );
    problemsByExports.set(exports, problems);
  }
  return problems;
}

/** The warning line of one problem, for the daemon's log and `dsoctl insmod` (after the module's name). */
export function handlerNameWarning(problem: HandlerNameProblem): string {
  const { exportName, role, rule, suggestion } = problem;
  const hint = suggestion === undefined ? "" : `; did you mean '${suggestion}'?`;
  const what = `looks like a ${role} but is not one (the host runs ${rule})`;
  return `warning: export '${exportName}' ${what}: it enters the global scope${hint}`;
}
