// mod_sql_mysql: depends on mod_sql's exports, bound directly through the
// `mod_sql` namespace. Loading it loads mod_sql first if it is not loaded;
// rmmod mod_sql.c is refused while mod_sql_mysql.c is loaded.
import { API_VERSION, OK, log } from "./sdk";

@external("mod_sql", "sql_register_backend")
declare function sql_register_backend(): i32;

@external("mod_sql", "sql_unregister_backend")
declare function sql_unregister_backend(): i32;

export const sql_mysql_module: i32 = API_VERSION;

export function module_init(): i32 {
  log("mod_sql_mysql: registered as backend #" + sql_register_backend().toString(), 5);
  return OK;
}

export function module_unload(): i32 {
  sql_unregister_backend();
  return OK;
}
