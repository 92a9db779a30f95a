/**
 * mod_dso.c's pr_log_debug lines (modules/mod_dso.c dso_load_module and
 * dso_restart_ev), each with the debug level proftpd prints it at: `dsod -d N`
 * shows the lines of level N and below, as `proftpd -d N` does. Pure
 * formatters; the host adds the `mod_dso/0.5: ` prefix and decides when.
 */

export interface DebugLine {
  readonly level: number;
  readonly text: string;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function pad(value: number): string {
  return String(value).padStart(2, "0");
}

/** src/str.c pr_strtime3(p, t, FALSE): `Fri May 01 20:02:15 2026`, local time, the day zero-padded. */
export function strtime3(date: Date): string {
  return (
    `${DAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${date.getFullYear()}`
  );
}

/** The level of `loaded module ...`: the host stats the file only when it is shown. */
export const LOADED_LEVEL = 7;

export const dsoDebug = {
  /** DEBUG7, once the name passed the checks: the name as asked for (`mod_x.cpp` stays so). */
  loading: (requested: string): DebugLine => ({ level: 7, text: `loading '${requested}'` }),
  /** DEBUG7, once the file is open: its stem, path and modification time. */
  loaded: (stem: string, file: string, modified: Date): DebugLine => ({
    level: LOADED_LEVEL,
    text: `loaded module '${stem}' (from '${file}', last modified on ${strtime3(modified)})`,
  }),
  /** DEBUG3, when there is no file: libltdl's words and errno's. */
  noFile: (requested: string): DebugLine => ({
    level: 3,
    text: `unable to dlopen '${requested}': file not found (No such file or directory)`,
  }),
  /** DEBUG3, next: the symbol is then looked for in the executable, where compiled-in modules are. */
  self: { level: 3, text: "defaulting to 'self' for symbol resolution" } as DebugLine,
  /** DEBUG1, when neither a file nor the executable has the module. */
  noSymbol: (symbol: string): DebugLine => ({ level: 1, text: `unable to find module symbol '${symbol}' in 'self'` }),
  /** DEBUG7, for each module the old configuration loaded, when a SIGHUP or shutdown unloads it. */
  unloading: (name: string): DebugLine => ({ level: 7, text: `unloading '${name}'` }),
};
