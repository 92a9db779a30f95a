/**
 * Command dispatch, after proftpd's `pr_cmd_dispatch_phase` and `_dispatch`
 * (src/main.c), and its reply lists, after src/response.c. Pure apart from
 * the handlers it calls: a command and a session in, reply lines out.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { EngineModule, HandlerResult, Phase, SessionState, TransferInfo } from "../modules/module-api.js";
import type { CommandLine } from "./command-line.js";

/** Reply text with CR and LF made spaces: a name a client sent cannot end the reply line and forge another. */
export function replyText(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, " ") : text;
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
export const PRE_LOGIN_COMMANDS: ReadonlySet<string> = new Set(["USER", "PASS", "QUIT", "HELP", "FEAT", "SYST", "NOOP", "SITE"]);

export const LOGIN_REQUIRED_TEXT = "Please login with USER and PASS";

/**
 * What a client sees when a handler throws (a guest trap surfaces as a
 * DsoError): proftpd has no such case (a crashing module kills the session
 * process), so we answer with RFC 959's own text for 451, which names
 * nothing of the module, and keep the session; the error goes to `onFault`.
 */
export const HANDLER_FAULT_REPLY = { code: "451", message: "Requested action aborted: local error in processing." } as const;

interface Response {
  code: string;
  readonly message: string;
}

/**
 * One of proftpd's pending reply lists (`resp_list` or `resp_err_list`):
 * lines are kept sorted by code, a continuation line goes last and takes the
 * code of the next coded line added, as `pr_response_add` does.
 */
export class ResponseList {
  readonly #responses: Response[] = [];

  /** pr_response_clear. */
  clear(): void {
    this.#responses.length = 0;
  }

  add(code: string, text: string): void {
    // A client's own CR or LF echoed back would end the reply line early and forge the next one.
    const message = replyText(text);
    if (code === CONTINUATION) {
      this.#responses.push({ code, message });
      return;
    }
    for (const response of this.#responses) if (response.code === CONTINUATION) response.code = code;
    let at = 0;
    while (at < this.#responses.length && (this.#responses[at]?.code ?? code) <= code) at++;
    this.#responses.splice(at, 0, { code, message });
  }

  /**
   * The wire lines (without CRLF), as `pr_response_flush` writes them: a
   * multi-line reply opens with `code-text`, continues with ` text` (proftpd's
   * default, without MultilineRFC2228) and ends with `code text` using the
   * opening code. Lines that never got a code (only continuations were added)
   * are not sent; proftpd would print them with a "(null)" code.
   */
  lines(): string[] {
    const out: string[] = [];
    let open: string | undefined;
    this.#responses.forEach((response, index) => {
      const next = this.#responses[index + 1];
      if (open !== undefined) {
        if (next === undefined || (response.code !== CONTINUATION && response.code !== open)) {
          out.push(`${open} ${response.message}`);
          open = undefined;
        } else {
          out.push(` ${response.message}`);
        }
      } else if (response.code !== CONTINUATION) {
        if (next !== undefined && (next.code === CONTINUATION || next.code === response.code)) {
          out.push(`${response.code}-${response.message}`);
          open = response.code;
        } else {
          out.push(`${response.code} ${response.message}`);
        }
      }
    });
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

/** proftpd's C_ANY: a handler registered for `*` sees every command (mod_log's LOG_CMD, mod_tls's checks). */
export const ANY_COMMAND = "*";

/** What a step of dispatch waits on: the Promise a compiled-in handler returned. */
type Pending = Promise<HandlerResult>;

class CommandState implements ActiveCommand {
  readonly name: string;
  readonly arg: string;
  readonly argv: readonly string[];
  readonly #session: SessionState;
  path: string | undefined;
  transfer: TransferInfo | undefined = undefined;
  readonly responses = new ResponseList();
  readonly errors = new ResponseList();

  constructor(session: SessionState, line: CommandLine, path: string | undefined) {
    this.#session = session;
    this.name = line.name;
    this.arg = line.arg;
    this.argv = line.argv;
    this.path = path;
  }

  get user(): string | undefined {
    return this.#session.user;
  }

  get cwd(): string {
    return this.#session.cwd;
  }

  addResponse(code: string, message: string): void {
    this.responses.add(code, message);
  }

  addError(code: string, message: string): void {
    this.errors.add(code, message);
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
  options: DispatchOptions = {},
): DispatchResult | Promise<DispatchResult> {
  const steps = dispatchSteps(session, line, options);
  return drive(steps, steps.next());
}

type Steps = Generator<Pending, DispatchResult, HandlerResult>;

function drive(steps: Steps, step: IteratorResult<Pending, DispatchResult>): DispatchResult | Promise<DispatchResult> {
  if (step.done === true) return step.value;
  // A rejection is thrown into the generator, whose try/catch around the call makes it a fault.
  return step.value.then(
    (result) => drive(steps, steps.next(result)),
    (error: unknown) => drive(steps, steps.throw(error)),
  );
}

function* dispatchSteps(session: SessionState, line: CommandLine, options: DispatchOptions): Steps {
  const preLogin = options.preLoginCommands ?? PRE_LOGIN_COMMANDS;
  const command = new CommandState(session, line, options.pathOf?.(session, line));
  const { responses, errors } = command;
  const modules = session.modules;
  let refusedLogin = false;

  function* runPhase(phase: Phase): Generator<Pending, PhaseResult, HandlerResult> {
    const logPhase = phase === Phases.LOG_CMD || phase === Phases.LOG_CMD_ERR;
    for (let m = modules.length - 1; m >= 0; m--) {
      const module = modules[m] as EngineModule;
      for (const handler of module.commands) {
        if (handler.phase !== phase || (handler.command !== line.name && handler.command !== ANY_COMMAND)) continue;
        if (session.user === undefined && handler.requiresAuth !== false && !preLogin.has(line.name)) {
          // proftpd's requires_auth check: the handler is not called, and the
          // 530 is sent once, by the first phase that reaches a handler.
          if (refusedLogin) continue;
          refusedLogin = true;
          errors.add("530", LOGIN_REQUIRED_TEXT);
          return -1;
        }
        let result: HandlerResult;
        try {
          const returned = handler.run(command, session);
          result = typeof returned === "number" ? returned : yield returned;
        } catch (error) {
          options.onFault?.({ session: session.id, module: module.name, phase, command: line.name, error });
          if (phase === Phases.PRE_CMD || phase === Phases.CMD) {
            // Whatever the handler added before it failed is dropped: one reply, the 451.
            errors.clear();
            errors.add(HANDLER_FAULT_REPLY.code, HANDLER_FAULT_REPLY.message);
          }
          result = HandlerResults.ERROR;
        }
        if (result === HandlerResults.HANDLED) return 1;
        if (result === HandlerResults.ERROR && !logPhase) return -1;
      }
    }
    return 0;
  }

  function* failed(): Generator<Pending, DispatchResult, HandlerResult> {
    yield* runPhase(Phases.POST_CMD_ERR);
    yield* runPhase(Phases.LOG_CMD_ERR);
    // A handler that failed after adding only reply lines still gets its answer out.
    const lines = errors.lines();
    return { lines: lines.length > 0 ? lines : responses.lines(), ok: false };
  }

  if (options.authorize !== undefined && session.user !== undefined) {
    const refusal = options.authorize(session, command);
    if (refusal !== undefined) {
      errors.add(refusal.code, refusal.message);
      return yield* failed();
    }
  }
  if ((yield* runPhase(Phases.PRE_CMD)) < 0) return yield* failed();
  const result = yield* runPhase(Phases.CMD);
  if (result === 0) errors.add("500", notUnderstood(line.name));
  if (result !== 1) return yield* failed();
  yield* runPhase(Phases.POST_CMD);
  yield* runPhase(Phases.LOG_CMD);
  // And one that answered with error lines but returned HANDLED: the client must not wait forever.
  const lines = responses.lines();
  return { lines: lines.length > 0 ? lines : errors.lines(), ok: true };
}
