/**
 * mod_core.c's access-control directives: `<Directory>`, `<Limit>` and what
 * goes inside a <Limit> (AllowUser, DenyUser, AllowGroup, DenyGroup,
 * AllowAll, DenyAll, Order). They only record rules in LimitRules, as
 * add_directory, add_limit, set_order, set_allowdenyusergroupclass,
 * set_allowall and set_denyall build config_recs; host/access/limit.ts
 * evaluates them. Each checks its context with proftpd's CHECK_CONF words.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import type { DirectorySection, LimitRules, LimitSection, NameList } from "../access/limit.js";
import type { DirectiveContext, DirectiveHandler } from "../modules/module-api.js";
import { checkArgs, directiveError, param } from "../config/directives.js";

/** get_context_name: the innermost section, or the server config. */
function contextName(context: DirectiveContext): string {
  return context.sections?.at(-1)?.name ?? "server config";
}

/** CHECK_CONF: refuses the directive unless its innermost section is one of `allowed` (`server` for none). */
function checkConf(context: DirectiveContext, allowed: readonly string[]): void {
  const here = context.sections?.at(-1)?.name ?? "server";
  if (!allowed.includes(here)) throw directiveError(`directive not allowed in ${contextName(context)} context`);
}

/** pr_str_get_token(&s, ","): the comma-separated entries of each word, empty ones dropped. */
function commaEntries(words: readonly string[]): string[] {
  return words.flatMap((word) => word.split(",").filter((entry) => entry !== ""));
}

/** add_limit: a listed command without its X-counterpart gets it added (Bug#3077); CWD/XCWD are not paired. */
const COUNTERPARTS: ReadonlyArray<readonly [string, string]> = [
  ["CDUP", "XCUP"],
  ["MKD", "XMKD"],
  ["PWD", "XPWD"],
  ["RMD", "XRMD"],
];

function withCounterparts(commands: string[]): string[] {
  const has = (name: string): boolean => commands.some((c) => c.toUpperCase() === name);
  const added = [...commands];
  for (const [plain, x] of COUNTERPARTS) {
    if (has(plain) && !has(x)) added.push(x);
    if (!has(plain) && has(x)) added.push(plain);
  }
  return added;
}

const USER_LISTS = new Set(["AllowUser", "DenyUser"]);

/**
 * set_allowdenyusergroupclass: `[AND|OR] name[,name...] ...`, a `!` in front
 * of a name negates it. proftpd 1.3.8 passes the `AND` keyword itself on as
 * a name (and drops the last word); dsod combines the names with AND as the
 * documentation says.
 */
function nameList(directive: ActiveCommand, name: string): NameList {
  let combine: NameList["combine"] = USER_LISTS.has(name) ? "or" : "and";
  let words = directive.argv.slice(1);
  if (words.length > 1) {
    const keyword = (words[0] as string).toLowerCase();
    if (keyword === "and" || keyword === "or") {
      combine = keyword;
      words = words.slice(1);
    } else if (keyword === "regex") {
      throw directiveError("the 'regex' parameter is not supported by dsod; list the names");
    }
  }
  const names = commaEntries(words);
  if (names.length === 0) throw directiveError("wrong number of parameters");
  return { combine, names };
}

/** The recording state: which <Directory> and <Limit> the parser is in. */
interface Open {
  directory: DirectorySection | undefined;
  limit: LimitSection | undefined;
}

function currentLimit(open: Open): LimitSection {
  if (open.limit === undefined) throw directiveError("directive not allowed in server config context");
  return open.limit;
}

function nameListDirective(name: string, open: Open, pick: (limit: LimitSection) => NameList[]): DirectiveHandler {
  return {
    name,
    run: (d, context) => {
      checkConf(context, ["<Limit>"]);
      if (d.argv.length < 2) throw directiveError("wrong number of parameters");
      pick(currentLimit(open)).push(nameList(d, name));
    },
  };
}

function allDirective(name: "AllowAll" | "DenyAll", open: Open): DirectiveHandler {
  return {
    name,
    run: (d, context) => {
      if (d.argv.length > 1) throw directiveError("wrong number of parameters");
      // proftpd also takes these directly in <Directory> (dir_check_op): dsod does not implement that form.
      if (context.sections?.at(-1)?.name === "<Directory>") {
        throw directiveError("not supported directly in <Directory> by dsod; put it inside a <Limit> section");
      }
      checkConf(context, ["<Limit>"]);
      const limit = currentLimit(open);
      if (name === "AllowAll") limit.allowAll = true;
      else limit.denyAll = true;
    },
  };
}

/** The handlers, recording into `rules`. */
export function limitDirectives(rules: LimitRules): DirectiveHandler[] {
  const open: Open = { directory: undefined, limit: undefined };
  return [
    {
      name: "<Directory>",
      run: (d, context) => {
        checkArgs(d, 1);
        checkConf(context, ["server"]);
        const dir = param(d, 1);
        if (!dir.startsWith("/") && !dir.startsWith("~"))
          throw directiveError("relative path not allowed in non-<Anonymous> sections");
        if (dir.startsWith("~") && dir !== "~" && !dir.startsWith("~/")) {
          throw directiveError(`'${dir}': '~user' paths are not supported by dsod; write the home directory's path`);
        }
        if (rules.directories.some((s) => s.path === dir))
          throw directiveError(`<Directory> section already configured for '${dir}'`);
        const section: DirectorySection = { path: dir, limits: [], file: context.file, line: context.line };
        rules.directories.push(section);
        open.directory = section;
      },
    },
    {
      name: "</Directory>",
      run: (d, context) => {
        if (d.argv.length > 1) throw directiveError("wrong number of parameters");
        checkConf(context, ["<Directory>"]);
        open.directory = undefined;
      },
    },
    {
      name: "<Limit>",
      run: (d, context) => {
        if (d.argv.length < 2) throw directiveError("directive requires one or more commands");
        checkConf(context, ["server", "<Directory>"]);
        const limit: LimitSection = {
          commands: withCounterparts(commaEntries(d.argv.slice(1))),
          order: undefined,
          allowAll: false,
          denyAll: false,
          allowUser: [],
          denyUser: [],
          allowGroup: [],
          denyGroup: [],
          file: context.file,
          line: context.line,
        };
        (open.directory?.limits ?? rules.server).push(limit);
        open.limit = limit;
      },
    },
    {
      name: "</Limit>",
      run: (d, context) => {
        if (d.argv.length > 1) throw directiveError("wrong number of parameters");
        checkConf(context, ["<Limit>"]);
        open.limit = undefined;
      },
    },
    {
      name: "Order",
      run: (d, context) => {
        if (d.argv.length !== 2 && d.argv.length !== 3) throw directiveError("wrong number of parameters");
        checkConf(context, ["<Limit>"]);
        // `Order allow, deny` is two words; proftpd joins them.
        const text = d.argv.slice(1).join("");
        const order = text.toLowerCase();
        if (order !== "allow,deny" && order !== "deny,allow") throw directiveError(`'${text}': invalid argument`);
        const limit = currentLimit(open);
        // get_param_ptr finds the first Order of the section.
        limit.order ??= order;
      },
    },
    nameListDirective("AllowUser", open, (l) => l.allowUser),
    nameListDirective("DenyUser", open, (l) => l.denyUser),
    nameListDirective("AllowGroup", open, (l) => l.allowGroup),
    nameListDirective("DenyGroup", open, (l) => l.denyGroup),
    allDirective("AllowAll", open),
    allDirective("DenyAll", open),
  ];
}
