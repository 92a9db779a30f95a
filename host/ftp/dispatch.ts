/**
 * Command dispatch, after proftpd's `pr_cmd_dispatch_phase` and `_dispatch`
 * (src/main.c), and its reply lists, after src/response.c. Pure apart from
 * the handlers it calls: a command and a session in, reply lines out.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { HandlerResults, LOGIN_REQUIRED_TEXT, Phases } from "../modules/module-api.js";
import type { HandlerResult, Phase, SessionState, TransferInfo } from "../modules/module-api.js";
import type { CommandLine } from "./command-line.js";
import { ANY_COMMAND, handlerIndex } from "./handler-index.js";
import type { HandlerEntry, PhaseHandlers } from "./handler-index.js";

/** Reply text with CR and LF made spaces: a name a client sent cannot end the reply line and forge another. */
export function replyText(text: string): string {
  return text.includes("\r") || text.includes("\n") ? text.replace(/[\r\n]/g, " ") : text;
}

/** proftpd's R_DUP: a continuation line that takes the code of the lines around it. */
export const CONTINUATION = "";

/**
 * The commands a client may send before logging in: those whose handlers
 * proftpd 1.3.8 registers with requires_auth FALSE, among the ones our
 * compiled-in modules provide (mod_core.c's HELP, SYST, QUIT, NOOP, FEAT;
 * mod_auth.c's USER, PASS; mod_site.c's SITE, which checks its subcommands
 * itself). Every other command's handlers answer
 * `530 Please login with USER and PASS` until then (mod_auth.c's auth_cmd_chk_cb).
 */
export const PRE_LOGIN_COMMANDS: ReadonlySet<string> = new Set([
  "USER",
  "PASS",
  "QUIT",
  "HELP",
  "FEAT",
  "SYST",
  "NOOP",
  "SITE",
]);

/**
 * What a client sees when a handler throws (a guest trap surfaces as a
 * DsoError): proftpd has no such case (a crashing module kills the session
 * process), so we answer with RFC 959's own text for 451, which names
 * nothing of the module, and keep the session; the error goes to `onFault`.
 */
export const HANDLER_FAULT_REPLY = {
  code: "451",
  message: "Requested action aborted: local error in processing.",
} as const;

/**
 * One of proftpd's pending reply lists (`resp_list` or `resp_err_list`):
 * lines are kept sorted by code, a continuation line goes last and takes the
 * code of the next coded line added, as `pr_response_add` does.
 */
export class ResponseList {
  /**
   * Each line's code and text, in pairs (`[code, text, code, text, ...]`),
   * without an object per line; made by the first add, the size of what it
   * holds: most commands add one line, many none.
   */
  #entries: string[] | undefined;

  /** pr_response_clear. */
  clear(): void {
    if (this.#entries !== undefined) this.#entries.length = 0;
  }

  add(code: string, text: string): void {
    // A client's own CR or LF echoed back would end the reply line early and forge the next one.
    const message = replyText(text);
    const entries = this.#entries;
    if (entries === undefined) {
      this.#entries = [code, message];
      return;
    }
    if (code === CONTINUATION) {
      entries.push(code, message);
      return;
    }
    for (let at = 0; at < entries.length; at += 2) if (entries[at] === CONTINUATION) entries[at] = code;
    let at = 0;
    while (at < entries.length && (entries[at] as string) <= code) at += 2;
    if (at === entries.length) entries.push(code, message);
    else entries.splice(at, 0, code, message);
  }

  /**
   * The wire lines (without CRLF), as `pr_response_flush` writes them: a
   * multi-line reply opens with `code-text`, continues with ` text` (proftpd's
   * default, without MultilineRFC2228) and ends with `code text` using the
   * opening code. Lines that never got a code (only continuations were added)
   * are not sent; proftpd would print them with a "(null)" code.
   */
  lines(): string[] {
    const entries = this.#entries;
    if (entries === undefined || entries.length === 0) return [];
    if (entries.length === 2) return entries[0] === CONTINUATION ? [] : [`${entries[0]} ${entries[1]}`];
    const out: string[] = [];
    let open: string | undefined;
    for (let at = 0; at < entries.length; at += 2) {
      const code = entries[at] as string;
      const message = entries[at + 1] as string;
      const next = entries[at + 2];
      if (open !== undefined) {
        if (next === undefined || (code !== CONTINUATION && code !== open)) {
          out.push(`${open} ${message}`);
          open = undefined;
        } else {
          out.push(` ${message}`);
        }
      } else if (code !== CONTINUATION) {
        if (next !== undefined && (next === CONTINUATION || next === code)) {
          out.push(`${code}-${message}`);
          open = code;
        } else {
          out.push(`${code} ${message}`);
        }
      }
    }
    return out;
  }
}

/** A handler that threw, for the log; never shown to the client. */
export interface HandlerFault {
  readonly session: number;
  readonly module: string;
  readonly phase: Phase;
  readonly command: string;
  readonly error: unknown;
}

/** A reply that refuses a command before any handler runs (a <Limit> denial). */
export interface Refusal {
  readonly code: string;
  readonly message: string;
}

export interface DispatchOptions {
  /** Commands allowed before login; PRE_LOGIN_COMMANDS unless given. */
  readonly preLoginCommands?: ReadonlySet<string>;
  readonly onFault?: (fault: HandlerFault) => void;
  /**
   * Checked once the session may run the command at all (it is logged in, or
   * the command is allowed before login) and before PRE_CMD: a refusal ends the
   * command with that reply, through POST_CMD_ERR and LOG_CMD_ERR, as
   * proftpd's <Limit> checks refuse a command before its handlers act.
   */
  readonly authorize?: (session: SessionState, command: ActiveCommand) => Refusal | undefined;
  /** The command's path as the user sees it, for ActiveCommand.path (see commandPath). */
  readonly pathOf?: (session: SessionState, line: CommandLine) => string | undefined;
}

export interface DispatchResult {
  /** The reply lines to send, without CRLF. */
  readonly lines: readonly string[];
  /** Whether the command succeeded (proftpd flushed `resp_list`) or failed (`resp_err_list`). */
  readonly ok: boolean;
}

/** `_dispatch`'s result: 1 handled, -1 error, 0 nobody took it. */
type PhaseResult = 1 | -1 | 0;

/**
 * The `500 'X' not understood` reply when no CMD handler took the command: the
 * command name, with `_` shown as a space, as `_dispatch` prints it. proftpd
 * 1.3.8 leaves the name unquoted; dsod quotes it as mod_site.c's `'SITE X' not
 * understood` does, the form our issue tracker settled on.
 */
export function notUnderstood(name: string): string {
  return `'${name.replaceAll("_", " ")}' not understood`;
}

export { ANY_COMMAND };

/** What dispatch waits on: the Promise a compiled-in handler returned. */
type Pending = Promise<HandlerResult>;

/**
 * The steps of `pr_cmd_dispatch_phase`, in the order a command goes through
 * them: PRE_CMD, CMD, POST_CMD, LOG_CMD on success; POST_CMD_ERR, LOG_CMD_ERR
 * on failure; then the reply.
 */
const Step = { PRE: 0, CMD: 1, POST: 2, LOG: 3, POST_ERR: 4, LOG_ERR: 5, DONE: 6, FAILED: 7 } as const;
type Step = (typeof Step)[keyof typeof Step];

const STEP_PHASES: readonly Phase[] = [
  Phases.PRE_CMD,
  Phases.CMD,
  Phases.POST_CMD,
  Phases.LOG_CMD,
  Phases.POST_CMD_ERR,
  Phases.LOG_CMD_ERR,
];

const EMPTY_OPTIONS: DispatchOptions = {};

/**
 * One command on its way through the phases: what handlers see as the active
 * command, and where dispatch stands, so that a handler's Promise resumes it
 * at the handler after without a closure or generator per command.
 */
class CommandDispatch implements ActiveCommand {
  readonly name: string;
  readonly arg: string;
  readonly argv: readonly string[];
  path: string | undefined;
  transfer: TransferInfo | undefined = undefined;
  /** The command's reply lists, made when a line is first added to them. */
  #responses: ResponseList | undefined;
  #errors: ResponseList | undefined;
  readonly #session: SessionState;
  readonly #options: DispatchOptions;
  readonly #phases: PhaseHandlers;
  #step: Step = Step.PRE;
  /** The handlers of the phase being run, and the one being run. */
  #handlers: readonly HandlerEntry[] = [];
  #at = 0;
  #refusedLogin = false;

  constructor(session: SessionState, line: CommandLine, options: DispatchOptions) {
    this.#session = session;
    this.#options = options;
    this.#phases = handlerIndex(session.modules).forCommand(line.name);
    this.name = line.name;
    this.arg = line.arg;
    this.argv = line.argv;
    this.path = options.pathOf?.(session, line);
  }

  get user(): string | undefined {
    return this.#session.user;
  }

  get cwd(): string {
    return this.#session.cwd;
  }

  get remoteAddress(): string {
    return this.#session.remoteAddress;
  }

  addResponse(code: string, message: string): void {
    (this.#responses ??= new ResponseList()).add(code, message);
  }

  addError(code: string, message: string): void {
    (this.#errors ??= new ResponseList()).add(code, message);
  }

  /** pr_session_disconnect: as QUIT, the session ends once this command's reply is sent. */
  disconnect(): void {
    this.#session.closing = true;
  }

  start(): DispatchResult | Promise<DispatchResult> {
    const authorize = this.#options.authorize;
    if (authorize !== undefined && this.#session.user !== undefined) {
      const refusal = authorize(this.#session, this);
      if (refusal !== undefined) {
        this.addError(refusal.code, refusal.message);
        this.#enter(Step.POST_ERR);
        return this.#run();
      }
    }
    this.#enter(Step.PRE);
    return this.#run();
  }

  /** Runs phases until the reply is ready, or a handler's Promise has to settle first. */
  #run(): DispatchResult | Promise<DispatchResult> {
    while (this.#step < Step.DONE) {
      const result = this.#runPhase();
      if (typeof result !== "number") return this.#wait(result);
      this.#next(result);
    }
    return this.#reply();
  }

  #wait(pending: Pending): Promise<DispatchResult> {
    return pending.then(
      (result) => this.#resume(result),
      (error: unknown) => this.#resume(this.#fault(error)),
    );
  }

  #resume(result: HandlerResult): DispatchResult | Promise<DispatchResult> {
    const ended = this.#ended(result);
    if (ended !== undefined) this.#next(ended);
    else this.#at++;
    return this.#run();
  }

  #enter(step: Step): void {
    this.#step = step;
    this.#at = 0;
    if (step < Step.DONE) this.#handlers = this.#phases[STEP_PHASES[step] as Phase];
  }

  /** What follows a phase, as pr_cmd_dispatch_phase decides it. */
  #next(result: PhaseResult): void {
    switch (this.#step) {
      case Step.PRE:
        return this.#enter(result < 0 ? Step.POST_ERR : Step.CMD);
      case Step.CMD:
        if (result === 0) this.addError("500", notUnderstood(this.name));
        return this.#enter(result === 1 ? Step.POST : Step.POST_ERR);
      case Step.POST:
        return this.#enter(Step.LOG);
      case Step.LOG:
        return this.#enter(Step.DONE);
      case Step.POST_ERR:
        return this.#enter(Step.LOG_ERR);
      default:
        return this.#enter(Step.FAILED);
    }
  }

  /** Whether a handler's result ends its phase: HANDLED does, and so does ERROR outside the LOG phases. */
  #ended(result: HandlerResult): PhaseResult | undefined {
    if (result === HandlerResults.HANDLED) return 1;
    if (result === HandlerResults.ERROR && this.#step !== Step.LOG && this.#step !== Step.LOG_ERR) return -1;
    return undefined;
  }

  /** `_dispatch` over the phase's handlers, from the one at #at; a handler's Promise when dispatch must wait for it. */
  #runPhase(): PhaseResult | Pending {
    const session = this.#session;
    const handlers = this.#handlers;
    for (; this.#at < handlers.length; this.#at++) {
      const { handler } = handlers[this.#at] as HandlerEntry;
      const preLogin = this.#options.preLoginCommands ?? PRE_LOGIN_COMMANDS;
      if (session.user === undefined && handler.requiresAuth !== false && !preLogin.has(this.name)) {
        // proftpd's requires_auth check: the handler is not called, and the
        // 530 is sent once, by the first phase that reaches a handler.
        if (this.#refusedLogin) continue;
        this.#refusedLogin = true;
        this.addError("530", LOGIN_REQUIRED_TEXT);
        return -1;
      }
      let result: HandlerResult;
      try {
        const returned = handler.run(this, session);
        if (typeof returned !== "number") return returned;
        result = returned;
      } catch (error) {
        result = this.#fault(error);
      }
      const ended = this.#ended(result);
      if (ended !== undefined) return ended;
    }
    return 0;
  }

  /** A handler that threw or rejected: reported, and in PRE_CMD and CMD the reply becomes the 451 alone. */
  #fault(error: unknown): HandlerResult {
    const { module } = this.#handlers[this.#at] as HandlerEntry;
    const phase = STEP_PHASES[this.#step] as Phase;
    this.#options.onFault?.({ session: this.#session.id, module: module.name, phase, command: this.name, error });
    if (this.#step === Step.PRE || this.#step === Step.CMD) {
      // Whatever the handler added before it failed is dropped: one reply, the 451.
      this.#errors?.clear();
      this.addError(HANDLER_FAULT_REPLY.code, HANDLER_FAULT_REPLY.message);
    }
    return HandlerResults.ERROR;
  }

  #reply(): DispatchResult {
    const ok = this.#step === Step.DONE;
    // A handler that answered with error lines but returned HANDLED gets them out, so the client does not wait
    // forever; one that failed after adding only reply lines still gets its answer out.
    const lines = (ok ? this.#responses : this.#errors)?.lines() ?? [];
    return { lines: lines.length > 0 ? lines : ((ok ? this.#errors : this.#responses)?.lines() ?? []), ok };
  }
}

/**
 * Runs one command through a session's modules, phase by phase as proftpd's
 * `pr_cmd_dispatch_phase`: PRE_CMD; then CMD; then POST_CMD and LOG_CMD when
 * CMD handled it, or POST_CMD_ERR and LOG_CMD_ERR when PRE_CMD or CMD failed.
 * In each phase handlers run newest module first; DECLINED passes the command
 * on, the first HANDLED ends the phase, and so does the first ERROR except in
 * the LOG phases, where every handler still runs (Bug#3633). When no CMD
 * handler took the command the reply is `500 'X' not understood`.
 *
 * The result is a plain value when every handler answered at once, and a
 * Promise when a compiled-in handler returned one (a transfer): dispatch then
 * resumes where it stood once that handler settles.
 */
export function dispatchCommand(
  session: SessionState,
  line: CommandLine,
  options: DispatchOptions = EMPTY_OPTIONS,
): DispatchResult | Promise<DispatchResult> {
  return new CommandDispatch(session, line, options).start();
}
