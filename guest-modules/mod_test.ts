// mod_test: the manual's example module (`LoadModule mod_test.c`). It adds the
// FTP command TEST, a FEAT line, and the directive TestGreeting.
import { API_VERSION, HANDLED, OK, addFeature, addHelp, arg, argc, argv, directiveError, log, reply } from "./sdk";

export const test_module: i32 = API_VERSION;

let greeting = "Hello from mod_test";

export function module_init(): i32 {
  addHelp("TEST", "[<sp> text]");
  addFeature("TEST");
  log("mod_test: initialized", 5);
  return OK;
}

/** TestGreeting "text": what TEST answers with. */
export function conf_TestGreeting(): i32 {
  if (argc() != 2) return directiveError("wrong number of parameters");
  greeting = argv(1);
  return HANDLED;
}

export function cmd_TEST(): i32 {
  const text = arg();
  reply("200", text.length > 0 ? greeting + ": " + text : greeting);
  return HANDLED;
}

export function module_unload(): i32 {
  log("mod_test: unloaded", 5);
  return OK;
}
