// mod_counter: binds directly to libcounter, which is loaded from the module path
// when mod_counter is, and unloaded with it. The FTP command COUNT answers with
// the next number.
import { API_VERSION, HANDLED, OK, addHelp, reply } from "./sdk";

@external("libcounter", "counter_next")
declare function counter_next(): i32;

export const counter_module: i32 = API_VERSION;

export function module_init(): i32 {
  addHelp("COUNT", "(no arguments)");
  return OK;
}

export function cmd_COUNT(): i32 {
  reply("200", "COUNT " + counter_next().toString());
  return HANDLED;
}
