/**
 * Command dispatch, after proftpd's `pr_cmd_dispatch_phase` and `_dispatch`
 * (src/main.c), and its reply lists, after src/response.c. Pure apart from
 * the handlers it calls: a command and a session in, reply lines out.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type { EngineModule, HandlerResult, Phase, SessionState } from "../modules/module-api.js";
import type { CommandLine } from "./command-line.js";

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

  add(code: string, message: string): void {
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
  readonly module: string;
  readonly phase: Phase;
  readonly command: string;
  readonly error: unknown;
}

export interface DispatchOptions {
  /** Commands allowed before login; PRE_LOGIN_COMMANDS unless given. */
  readonly preLoginCommands?: ReadonlySet<string>;
  readonly onFault?: (fault: HandlerFault) => void;
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

/**
 * Runs one command through a session's modules, phase by phase as proftpd's
 * `pr_cmd_dispatch_phase`: PRE_CMD; then CMD; then POST_CMD and LOG_CMD when
 * CMD handled it, or POST_CMD_ERR and LOG_CMD_ERR when PRE_CMD or CMD failed.
 * In each phase handlers run newest module first; DECLINED passes the command
 * on, the first HANDLED ends the phase, and so does the first ERROR except in
 * the LOG phases, where every handler still runs (Bug#3633). When no CMD
 * handler took the command the reply is `500 'X' not understood`.
 */
export function dispatchCommand(session: SessionState, line: CommandLine, options: DispatchOptions = {}): DispatchResult {
  const preLogin = options.preLoginCommands ?? PRE_LOGIN_COMMANDS;
  const responses = new ResponseList();
  const errors = new ResponseList();
  const command: ActiveCommand = {
    name: line.name,
    arg: line.arg,
    argv: line.argv,
    get user() {
      return session.user;
    },
    addResponse: (code, message) => responses.add(code, message),
    addError: (code, message) => errors.add(code, message),
  };
  const newestFirst: readonly EngineModule[] = [...session.modules].reverse();
  let refusedLogin = false;

  const runPhase = (phase: Phase): PhaseResult => {
    const logPhase = phase === Phases.LOG_CMD || phase === Phases.LOG_CMD_ERR;
    for (const module of newestFirst) {
      for (const handler of module.commands) {
        if (handler.command !== line.name || handler.phase !== phase) continue;
        if (session.user === undefined && !preLogin.has(line.name)) {
          // proftpd's requires_auth check: the handler is not called, and the
          // 530 is sent once, by the first phase that reaches a handler.
          if (refusedLogin) continue;
          refusedLogin = true;
          errors.add("530", LOGIN_REQUIRED_TEXT);
          return -1;
        }
        const result = call(module, phase, () => handler.run(command, session));
        if (result === HandlerResults.HANDLED) return 1;
        if (result === HandlerResults.ERROR && !logPhase) return -1;
      }
    }
    return 0;
  };

  const call = (module: EngineModule, phase: Phase, run: () => HandlerResult): HandlerResult => {
    try {
      return run();
    } catch (error) {
      options.onFault?.({ module: module.name, phase, command: line.name, error });
      if (phase === Phases.PRE_CMD || phase === Phases.CMD) {
        // Whatever the handler added before it failed is dropped: one reply, the 451.
        errors.clear();
        errors.add(HANDLER_FAULT_REPLY.code, HANDLER_FAULT_REPLY.message);
      }
      return HandlerResults.ERROR;
    }
  };

  const failed = (): DispatchResult => {
    runPhase(Phases.POST_CMD_ERR);
    runPhase(Phases.LOG_CMD_ERR);
    // A handler that failed after adding only reply lines still gets its answer out.
    return { lines: errors.lines().length > 0 ? errors.lines() : responses.lines(), ok: false };
  };

  if (runPhase(Phases.PRE_CMD) < 0) return failed();
  const result = runPhase(Phases.CMD);
  if (result === 0) errors.add("500", notUnderstood(line.name));
  if (result !== 1) return failed();
  runPhase(Phases.POST_CMD);
  runPhase(Phases.LOG_CMD);
  // And one that answered with error lines but returned HANDLED: the client must not wait forever.
  return { lines: responses.lines().length > 0 ? responses.lines() : errors.lines(), ok: true };
}
