/**
 * One controls exchange, as values: who asked (ControlsCaller), the actions
 * registered (pr_ctrls_register's), what a request gets back, the ControlsLog
 * lines it leaves and the response framed within proftpd's limits. Pure: the
 * server (server.ts) only moves these over the socket.
 */
import { messageOf } from "../errors.js";
import { ControlsStatus, encodeMessage, RESPONSE_LIMITS } from "./wire.js";

/** Who sent a request: SO_PEERCRED ids plus their names for logs and handlers. */
export interface ControlsCaller {
  readonly uid: number;
  /** The primary gid only, as proftpd: supplementary groups are never seen. */
  readonly gid: number;
  readonly pid: number;
  readonly user: string;
  readonly group: string;
}

export interface ControlsResult {
  readonly status: number;
  readonly lines: readonly string[];
}

/** A registered control (pr_ctrls_register's action, description and callback). */
export interface ControlsAction {
  readonly name: string;
  /** The module that registered it, as lsctrl shows it (`mod_dso.c`); `core` when absent. */
  readonly module?: string;
  /** Shown by `help` as `name: description`. */
  readonly description: string;
  /** The action's ACL (ModuleControlsACLs for mod_dso's), asked before the handler sees any argument. */
  acl(caller: ControlsCaller): boolean;
  /**
   * May answer later (a change every session worker must agree on): the server
   * runs one request at a time, in arrival order, so two module changes never interleave.
   */
  handler(args: readonly string[], caller: ControlsCaller): ControlsResult | Promise<ControlsResult>;
}

/** proftpd's answer to a caller an ACL refuses. */
export const ACCESS_DENIED: ControlsResult = { status: ControlsStatus.ACCESS_DENIED, lines: ["access denied"] };

type Trace = (level: number, message: string) => void;

/**
 * What the server answers to a request from a caller who passed the socket
 * ACL, among the enabled `actions`. The action's ACL is checked before its
 * handler runs, so a denied `insmod` with no argument answers `access denied`,
 * not `missing required parameters` (observed on 1.3.8). Trace lines are
 * those of src/ctrls.c.
 */
export async function dispatchRequest(
  actions: readonly ControlsAction[],
  argv: readonly string[],
  caller: ControlsCaller,
  trace: Trace = () => {},
): Promise<ControlsResult> {
  const [name = "", ...args] = argv;
  const action = actions.find((candidate) => candidate.name === name);
  if (action === undefined) {
    return { status: ControlsStatus.UNSUPPORTED, lines: ["unsupported action requested"] };
  }
  trace(19, `known action '${name}' requested`);
  trace(7, `calling '${name}' control handler`);
  const result = await runHandler(action, args, caller);
  trace(19, `ran '${name}' ctrl, callback value = ${result.status}`);
  return result;
}

/** The action's ACL, then its handler; one that throws or rejects answers what broke, as a failure. */
async function runHandler(
  action: ControlsAction,
  args: readonly string[],
  caller: ControlsCaller,
): Promise<ControlsResult> {
  try {
    if (!action.acl(caller)) return ACCESS_DENIED;
    return await action.handler(args, caller);
  } catch (error) {
    // A handler bug must not take the daemon down with it; the client sees what broke.
    return {
      status: ControlsStatus.FAILED,
      lines: [`${action.name}: ${messageOf(error)}`],
    };
  }
}

/**
 * Runs requests one at a time, in the order they were added, as proftpd's
 * master handles one request at a time (src/ctrls.c pr_ctrls_run_ctrls): a
 * handler that answers later still finishes before the next one starts.
 */
export class RequestQueue {
  #last: Promise<unknown> = Promise.resolve();

  /** Runs `request` once every request added before it has settled; resolves or rejects as it does. */
  run<T>(request: () => Promise<T>): Promise<T> {
    const turn = this.#last.then(request);
    // The next request waits for this one whatever its outcome; the outcome itself is the caller's.
    this.#last = turn.catch(() => undefined);
    return turn;
  }
}

/** `root/root client`, as mod_ctrls names a peer in every ControlsLog line. */
export function clientLabel(caller: ControlsCaller): string {
  return `${caller.user}/${caller.group} client`;
}

export function acceptedMessage(caller: ControlsCaller): string {
  return `accepted connection from ${clientLabel(caller)}`;
}

export function closedMessage(caller: ControlsCaller): string {
  return `closed connection to ${clientLabel(caller)}`;
}

/**
 * The ControlsLog lines of one exchange, as mod_ctrls.c writes them: the
 * request only when it has arguments (`recvd from root/root client: 'insmod
 * mod_copy.c'`), then the status and each response line wrapped in quotes.
 */
export function exchangeMessages(
  caller: ControlsCaller,
  argv: readonly string[] | undefined,
  result: ControlsResult,
): string[] {
  const client = clientLabel(caller);
  return [
    ...(argv !== undefined && argv.length > 1 ? [`recvd from ${client}: '${argv.join(" ")}'`] : []),
    `sent to ${client}: return value: ${result.status}`,
    ...result.lines.map((line) => `sent to ${client}: '${line}'`),
  ];
}

/**
 * Fits a response into proftpd's limits (1024 lines, each under 1024 bytes)
 * instead of failing it: a link error of a 100,000-import module keeps its
 * status and first lines, and says how many more there were.
 */
export function fitResponseLines(lines: readonly string[]): string[] {
  const maxLines = RESPONSE_LIMITS.maxArgs;
  const maxBytes = RESPONSE_LIMITS.maxArgBytes;
  const fit = (line: string): string => {
    if (Buffer.byteLength(line) <= maxBytes) return line;
    let cut = line.slice(0, maxBytes - 3);
    while (Buffer.byteLength(`${cut}...`) > maxBytes) cut = cut.slice(0, -1);
    return `${cut}...`;
  };
  if (lines.length <= maxLines) return lines.map(fit);
  const kept = lines.slice(0, maxLines - 1).map(fit);
  return [...kept, `(${lines.length - kept.length} more lines not shown: a response holds at most ${maxLines} lines)`];
}

/**
 * What the server sends for `result`: its lines fitted into RESPONSE_LIMITS,
 * framed. A result that still cannot be framed (a status that is no 32-bit
 * integer) is sent as a failure saying why, so every client gets an answer.
 */
export function responseFor(result: ControlsResult): { readonly sent: ControlsResult; readonly bytes: Buffer } {
  const sent: ControlsResult = { status: result.status, lines: fitResponseLines(result.lines) };
  try {
    return { sent, bytes: encodeMessage(sent.status, sent.lines, RESPONSE_LIMITS) };
  } catch (error) {
    const failed: ControlsResult = { status: ControlsStatus.FAILED, lines: [(error as Error).message] };
    return { sent: failed, bytes: encodeMessage(failed.status, failed.lines) };
  }
}
