/**
 * mod_dso's controls (modules/mod_dso.c dso_handle_insmod, dso_handle_lsmod,
 * dso_handle_rmmod), answering with proftpd's lines byte for byte:
 *
 *   insmod mod_x.c ...  'mod_x.c' loaded | error loading 'mod_x.c': <reason>
 *   lsmod               Loaded Modules: then `  mod_x.c` per module, oldest first
 *   rmmod mod_x.c ...   'mod_x.c' unloaded | error unloading 'mod_x.c': <reason>
 *
 * As in 1.3.8 every name is processed even after a failure (master stops at
 * the first one). Unlike 1.3.8, which answers 0 whenever the handler ran, the
 * status is -1 when any name failed, so that dsoctl can exit non-zero.
 *
 * Each failure's first line is proftpd's, byte for byte; lines indented by two
 * spaces under it say what proftpd leaves to its log or to guessing: the name
 * meant (`did you mean 'mod_hello.c'?`), the file that is missing, the export
 * a module lacks, the API versions found and expected.
 *
 * Beyond proftpd, `lsmod -v` details each module: file, sha256, size, memory,
 * load time, exports, import bindings, dependents and the sessions holding
 * it. Every detail is a `    key: value` line of its own, so a long import
 * list never meets the wire's 1023-byte line limit and scripts can read it
 * line by line. There is no JSON form on the wire: `dsoctl --json` wraps the
 * status and lines of any action, and proftpd's ftpdctl can talk to dsod.
 * With session workers, `lsmod -v` ends with each worker's state.
 *
 * Pure: the functions take the host and return the response. The host may
 * answer later (a change every session worker must make, see
 * host/cluster/module-sync.ts), so they answer with a promise.
 */
import { ErrorCodes, isDsoError, messageOf } from "../../errors.js";
import type { LoadedUnitInfo } from "../../modules/module-host.js";
import { handlerNameProblems, handlerNameWarning } from "../../modules/handler-names.js";
import { parseModuleName } from "../../modules/module-name.js";
import { moduleSymbolHint, nameHint } from "../../modules/name-hint.js";
import { checkAcl } from "../../controls/acl.js";
import type { AclTable } from "../../controls/acl.js";
import type { ControlsAction, ControlsResult } from "../../controls/exchange.js";
import { ControlsStatus } from "../../controls/wire.js";

/** The part of ModuleHost the controls drive; with session workers, a host that changes all of them. */
export interface DsoControlsHost {
  loadModule(name: string): void | Promise<void>;
  unloadModule(name: string): void | Promise<void>;
  listModules(): readonly string[];
  describe(): readonly LoadedUnitInfo[] | Promise<readonly LoadedUnitInfo[]>;
  /** Session workers for `lsmod -v`; absent when SessionWorkers is off. */
  workers?(): Promise<readonly WorkerStatus[]>;
}

/** A session worker as `lsmod -v` shows it. */
export interface WorkerStatus {
  readonly index: number;
  readonly pid: number;
  readonly sessions: number;
  /** The module generation it serves new sessions with. */
  readonly generation: number;
  readonly state: "starting" | "serving" | "replaced";
  /** Why it was replaced. */
  readonly note?: string;
}

/**
 * The controls' view of whichever host is current: the daemon swaps hosts on
 * SIGHUP, so every call asks `current()` again.
 */
export function currentHost(current: () => DsoControlsHost): DsoControlsHost {
  return {
    loadModule: (name) => current().loadModule(name),
    unloadModule: (name) => current().unloadModule(name),
    listModules: () => current().listModules(),
    describe: () => current().describe(),
  };
}

/** The actions ModuleControlsACLs knows (mod_dso.c dso_acttab), in its order. */
export const DSO_ACTIONS = ["insmod", "lsmod", "rmmod"] as const;

/** mod_dso.c dso_acttab's descriptions, shown by `help`. */
const DESCRIPTIONS: Readonly<Record<(typeof DSO_ACTIONS)[number], string>> = {
  insmod: "load modules",
  lsmod: "list modules",
  rmmod: "unload modules",
};

const VERBOSE_FLAG = "-v";

function result(ok: boolean, lines: readonly string[]): ControlsResult {
  return { status: ok ? ControlsStatus.OK : ControlsStatus.FAILED, lines };
}

const MISSING_PARAMETERS = result(false, ["missing required parameters"]);
const WRONG_PARAMETERS = result(false, ["wrong number of parameters"]);

/** A line that explains the proftpd line above it. */
function detail(line: string): string {
  return `  ${line}`;
}

/** The detail line saying which session worker refused a change (module-sync.ts), when another process did. */
function whereLines(error: unknown): string[] {
  return isDsoError(error) && error.where !== undefined ? [detail(error.where)] : [];
}

/** insmod's lines for one name that failed: proftpd's, what it means, and where it failed. */
function loadFailure(name: string, error: unknown): readonly string[] {
  return [...proftpdLoadFailure(name, error), ...whereLines(error)];
}

/** proftpd's line for a failed load, then the lines that explain it. */
function proftpdLoadFailure(name: string, error: unknown): readonly string[] {
  const failed = (reason: string): string => `error loading '${name}': ${reason}`;
  if (!isDsoError(error)) {
    return [failed(messageOf(error))];
  }
  switch (error.code) {
    case ErrorCodes.ALREADY_LOADED:
      return [failed("Already loaded")];
    case ErrorCodes.BAD_MODULE_NAME:
      return [failed("Bad module name"), ...nameHint(name).map(detail)];
    case ErrorCodes.NO_MODULE_SYMBOL:
      // proftpd's ENOENT reads as a missing file; here the file is there without its module symbol.
      return [failed(error.reason), detail(moduleSymbolHint(name))];
    default:
      // proftpd prints strerror(errno); failures it has no errno for
      // (undefined symbols, type mismatches) get one line per problem.
      if (error.errno === undefined) return error.lines.map(failed);
      return [failed(error.errno), ...error.lines.filter((line) => line !== error.errno).map(detail)];
  }
}

/** The text after `error unloading 'x': `. */
async function unloadReason(host: DsoControlsHost, name: string, error: unknown): Promise<string> {
  if (!isDsoError(error)) {
    return messageOf(error);
  }
  switch (error.code) {
    case ErrorCodes.NOT_LOADED:
      return "Module not loaded";
    case ErrorCodes.BAD_MODULE_NAME:
      return "Bad module name";
    case ErrorCodes.PROTECTED:
      // mod_dso.c answers EPERM when asked to unload itself.
      return "Operation not permitted";
    case ErrorCodes.HAS_DEPENDENTS: {
      // proftpd cannot get here (dlclose just drops a reference); EBUSY's
      // text keeps its frame and the names say what to rmmod first.
      const dependents = (await host.describe()).find((unit) => unit.name === name)?.dependents ?? [];
      return `${error.reason} (needed by ${dependents.join(", ")})`;
    }
    default:
      return error.reason;
  }
}

/**
 * Runs `operation` on every name in turn, as mod_dso.c 1.3.8 does (it does not
 * stop at the first failure), collecting each name's line(s). A name's
 * operation ends (the host answered) before the next one starts.
 */
async function eachName(
  args: readonly string[],
  operation: (name: string) => Promise<readonly string[]>,
  failure: (name: string, error: unknown) => readonly string[] | Promise<readonly string[]>,
): Promise<ControlsResult> {
  if (args.length === 0) {
    return MISSING_PARAMETERS;
  }
  let ok = true;
  const lines: string[] = [];
  for (const name of args) {
    try {
      lines.push(...(await operation(name)));
    } catch (error) {
      ok = false;
      lines.push(...(await failure(name, error)));
    }
  }
  return result(ok, lines);
}

/** The warnings of a module just loaded whose exports look like handlers but break the naming rule. */
async function handlerNameWarnings(host: DsoControlsHost, name: string): Promise<string[]> {
  const { name: module, symbol } = parseModuleName(name);
  const exports = (await host.describe()).find((unit) => unit.name === module)?.exports ?? [];
  return handlerNameProblems(exports, symbol).map(handlerNameWarning);
}

/** `insmod mod_x.c ...`: loads each name in turn. */
export function insmod(host: DsoControlsHost, args: readonly string[]): Promise<ControlsResult> {
  return eachName(
    args,
    async (name) => {
      await host.loadModule(name);
      return [`'${name}' loaded`, ...(await handlerNameWarnings(host, name)).map(detail)];
    },
    loadFailure,
  );
}

/** `rmmod mod_x.c ...`: unloads each name in turn. */
export function rmmod(host: DsoControlsHost, args: readonly string[]): Promise<ControlsResult> {
  return eachName(
    args,
    async (name) => {
      await host.unloadModule(name);
      return [`'${name}' unloaded`];
    },
    async (name, error) => [
      `error unloading '${name}': ${await unloadReason(host, name, error)}`,
      ...(isDsoError(error) && error.code === ErrorCodes.BAD_MODULE_NAME ? nameHint(name).map(detail) : []),
      ...whereLines(error),
    ],
  );
}

function unitDetails(unit: LoadedUnitInfo): string[] {
  const lines = [`  ${unit.name}`, `    kind: ${unit.kind}`];
  if (!unit.explicit) {
    lines.push("    loaded as a dependency");
  }
  if (unit.file !== undefined) lines.push(`    file: ${unit.file}`);
  if (unit.sha256 !== undefined) lines.push(`    sha256: ${unit.sha256}`);
  if (unit.size !== undefined) lines.push(`    size: ${unit.size} bytes`);
  if (unit.memoryBytes !== undefined) lines.push(`    memory: ${unit.memoryBytes} bytes`);
  if (unit.loadedAt !== undefined) lines.push(`    loaded: ${unit.loadedAt.toISOString()}`);
  lines.push(...unit.exports.map((symbol) => `    export: ${symbol}`));
  lines.push(...unit.bindings.map((b) => `    import: ${b.namespace}.${b.symbol} -> ${b.provider}`));
  lines.push(...unit.dependents.map((name) => `    needed by: ${name}`));
  lines.push(`    sessions: ${unit.sessions}`);
  if (unit.instances !== undefined) {
    lines.push(`    instances: ${unit.instances.count} (${unit.instances.memoryBytes} bytes of memory)`);
  }
  return lines;
}

/** A session worker's lines under `Session Workers:`; a replaced one says why. */
function workerDetails(worker: WorkerStatus): string[] {
  return [
    `  worker ${worker.index}`,
    `    pid: ${worker.pid}`,
    `    sessions: ${worker.sessions}`,
    `    generation: ${worker.generation}`,
    `    state: ${worker.state}`,
    ...(worker.state === "replaced" && worker.note !== undefined ? [`    replaced: ${worker.note}`] : []),
  ];
}

/**
 * `lsmod`: `Loaded Modules:` then each module indented by two spaces, in load
 * order (oldest first, a new module last). `lsmod -v` adds each module's
 * details and then the libraries, which proftpd's lsmod never lists, and,
 * with session workers, each worker.
 */
export async function lsmod(host: DsoControlsHost, args: readonly string[]): Promise<ControlsResult> {
  if (args.length === 0) {
    return result(true, ["Loaded Modules:", ...host.listModules().map((name) => `  ${name}`)]);
  }
  if (args.length > 1 || args[0] !== VERBOSE_FLAG) {
    return WRONG_PARAMETERS;
  }
  const units = await host.describe();
  const workers = host.workers === undefined ? undefined : await host.workers();
  const modules = units.filter((unit) => unit.kind !== "library");
  const libraries = units.filter((unit) => unit.kind === "library");
  return result(true, [
    "Loaded Modules:",
    ...modules.flatMap(unitDetails),
    ...(libraries.length > 0 ? ["Loaded Libraries:", ...libraries.flatMap(unitDetails)] : []),
    ...(workers === undefined ? [] : ["Session Workers:", ...workers.flatMap(workerDetails)]),
  ]);
}

/**
 * mod_dso's three controls, each guarded by its ModuleControlsACLs entry.
 * `acls` is read per request so that a reloaded config applies at once.
 */
export function dsoControlsActions(host: DsoControlsHost, acls: () => AclTable): ControlsAction[] {
  const handlers = { insmod, lsmod, rmmod };
  return DSO_ACTIONS.map((name) => ({
    name,
    module: "mod_dso.c",
    description: DESCRIPTIONS[name],
    acl: (caller) => checkAcl(acls(), name, caller.uid, caller.gid),
    handler: (args) => handlers[name](host, args),
  }));
}
