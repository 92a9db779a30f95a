// mod_sql: the framework module that backends register with, like proftpd's
// mod_sql with mod_sql_mysql. Its exports are for other modules; SITE SQL shows
// how many backends registered.
import { API_VERSION, HANDLED, reply } from "./sdk";

export const sql_module: i32 = API_VERSION;

let backends = 0;

/** Called by a backend module's init; returns the number of backends now registered. */
export function sql_register_backend(): i32 {
  backends += 1;
  return backends;
}

export function sql_unregister_backend(): i32 {
  backends -= 1;
  return backends;
}

export function site_SQL(): i32 {
  reply("200", "SITE SQL: " + backends.toString() + " backend(s) registered");
  return HANDLED;
}
