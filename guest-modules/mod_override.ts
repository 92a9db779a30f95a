// mod_override: overrides SYST, which the compiled-in mod_core.c provides. The
// most recently loaded module's handler runs first (proftpd's stash order), so
// this one answers; returning DECLINED would pass SYST on to mod_core.c.
import { API_VERSION, DECLINED, HANDLED, arg, reply } from "./sdk";

export const override_module: i32 = API_VERSION;

export function cmd_SYST(): i32 {
  if (arg() == "CORE") return DECLINED;
  reply("215", "UNIX Type: L8 (answered by mod_override.c)");
  return HANDLED;
}
