// mod_site_hello: adds the SITE subcommand HELLO.
import { API_VERSION, HANDLED, OK, addHelp, arg, reply } from "./sdk";

export const site_hello_module: i32 = API_VERSION;

export function module_init(): i32 {
  addHelp("HELLO", "[<sp> name]");
  return OK;
}

export function site_HELLO(): i32 {
  // arg() is everything after SITE: "HELLO name".
  const rest = arg().length > 6 ? arg().substring(6) : "world";
  reply("200", "SITE HELLO: hello, " + rest);
  return HANDLED;
}
