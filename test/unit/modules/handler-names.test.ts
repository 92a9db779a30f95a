import { describe, expect, it } from "vitest";
import { handlerNameProblems, handlerNameWarning } from "../../../host/modules/handler-names.js";

/** [export, rule, suggestion] of each problem found in `names` of mod_x.c. */
function found(...names: string[]): Array<[string, string, string | undefined]> {
  return handlerNameProblems(names, "x_module").map((p) => [p.exportName, p.rule, p.suggestion]);
}

describe("handlerNameProblems", () => {
  it.each([
    ["cmd_test", "cmd_X, X in capitals", "cmd_TEST"],
    ["cmd_Test", "cmd_X, X in capitals", "cmd_TEST"],
    ["cmdTYPO", "cmd_X, X in capitals", "cmd_TYPO"],
    ["CMD_USER", "cmd_X, X in capitals", "cmd_USER"],
    ["Cmd_user", "cmd_X, X in capitals", "cmd_USER"],
    ["cmd__RETR", "cmd_X, X in capitals", "cmd_RETR"],
    ["cmd_site_chmod", "cmd_X, X in capitals", "cmd_SITE_CHMOD"],
    ["pre_cmdfoo", "pre_cmd_X, X in capitals", "pre_cmd_FOO"],
    ["precmd_FOO", "pre_cmd_X, X in capitals", "pre_cmd_FOO"],
    ["pre_cmd_stor", "pre_cmd_X, X in capitals", "pre_cmd_STOR"],
    ["postcmd_STOR", "post_cmd_X, X in capitals", "post_cmd_STOR"],
    ["post_cmd_err_stor", "post_cmd_err_X, X in capitals", "post_cmd_err_STOR"],
    ["post_err_cmd_STOR", "post_cmd_err_X, X in capitals", "post_cmd_err_STOR"],
    ["log_err_cmd_RETR", "log_cmd_err_X, X in capitals", "log_cmd_err_RETR"],
    ["logcmd_RETR", "log_cmd_X, X in capitals", "log_cmd_RETR"],
    ["LOG_CMD_ERR_retr", "log_cmd_err_X, X in capitals", "log_cmd_err_RETR"],
    ["site_hello", "site_X, X in capitals", "site_HELLO"],
    ["siteHELLO", "site_X, X in capitals", "site_HELLO"],
    ["Conf_TestDirective", "conf_X", "conf_TestDirective"],
    ["confTestDirective", "conf_X", "conf_TestDirective"],
    ["ctrl_Ban", "ctrl_x, x in lower case", "ctrl_ban"],
    ["CTRL_BAN", "ctrl_x, x in lower case", "ctrl_ban"],
    ["ctrlBan", "ctrl_x, x in lower case", "ctrl_ban"],
    ["Sess_init", "sess_init", "sess_init"],
    ["sessinit", "sess_init", "sess_init"],
    ["session_init", "sess_init", "sess_init"],
    ["moduleInit", "module_init", "module_init"],
    ["module_Unload", "module_unload", "module_unload"],
  ])("%s is not a handler: the host runs %s, and %s is meant", (name, rule, suggestion) => {
    expect(found(name)).toEqual([[name, rule, suggestion]]);
  });

  it.each([
    ["cmd_", "cmd_X, X in capitals"],
    ["cmd_1X", "cmd_X, X in capitals"],
    ["cmd_foo-bar", "cmd_X, X in capitals"],
    ["pre_cmd", "pre_cmd_X, X in capitals"],
    ["log_cmd_", "log_cmd_X, X in capitals"],
    ["site_", "site_X, X in capitals"],
    ["conf_", "conf_X"],
    ["ctrl_", "ctrl_x, x in lower case"],
    ["ctrl_1ban", "ctrl_x, x in lower case"],
  ])("%s is not a handler and has no clear meaning", (name, rule) => {
    expect(found(name)).toEqual([[name, rule, undefined]]);
  });

  it("passes the protocol's own exports, the module symbol and the runtime", () => {
    const valid = [
      "x_module",
      "module_init",
      "module_unload",
      "sess_init",
      "cmd_TEST",
      "cmd_SITE_CHMOD",
      "pre_cmd_STOR",
      "post_cmd_STOR",
      "post_cmd_err_STOR",
      "log_cmd_RETR",
      "log_cmd_err_RETR",
      "site_HELLO",
      "conf_TestDirective",
      "conf_x",
      "ctrl_ban",
      "ctrl_ban_info",
      "__new",
      "__pin",
      "memory",
      "table",
      "_initialize",
      "_start",
    ];
    expect(found(...valid)).toEqual([]);
  });

  it("passes ordinary names, even those that begin with a handler's word", () => {
    const ordinary = [
      "cmdline",
      "config",
      "configure_TLS",
      "sitemap",
      "commands",
      "math_add",
      "counter_next",
      "init",
      "ctrlline",
    ];
    expect(found(...ordinary)).toEqual([]);
  });

  it("never takes a module's own symbol for a handler (mod_cmd.c exports cmd_module)", () => {
    expect(handlerNameProblems(["cmd_module"], "cmd_module")).toEqual([]);
    expect(handlerNameProblems(["cmd_module"], undefined).map((p) => p.suggestion)).toEqual(["cmd_MODULE"]);
  });

  it("keeps the exports' order", () => {
    const names = found("site_b", "math_add", "cmd_a", "cmd_OK", "Sess_init").map(([name]) => name);
    expect(names).toEqual(["site_b", "cmd_a", "Sess_init"]);
  });
});

describe("handlerNameWarning", () => {
  it("names the export, the rule and what was meant", () => {
    const [typo, hook, unclear] = handlerNameProblems(["cmd_test", "sessInit", "cmd_"], "x_module");
    if (typo === undefined || hook === undefined || unclear === undefined) throw new Error("three problems expected");
    expect(handlerNameWarning(typo)).toBe(
      "warning: export 'cmd_test' looks like a handler but is not one (the host runs cmd_X, X in capitals): " +
        "it enters the global scope; did you mean 'cmd_TEST'?",
    );
    expect(handlerNameWarning(hook)).toBe(
      "warning: export 'sessInit' looks like a hook but is not one (the host runs sess_init): " +
        "it enters the global scope; did you mean 'sess_init'?",
    );
    expect(handlerNameWarning(unclear)).toBe(
      "warning: export 'cmd_' looks like a handler but is not one (the host runs cmd_X, X in capitals): " +
        "it enters the global scope",
    );
  });
});
