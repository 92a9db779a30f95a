/**
 * A session as its modules' sess_init sees it, before the greeting: the
 * client's address, and the lines a refusing module sends before the
 * connection closes, as mod_ban's ban_sess_init sends its BanMessage with
 * pr_response_send_async and then returns -1, or ends the session with
 * pr_session_disconnect (its ClientConnectRate autoban).
 */
import type { ActiveCommand } from "../abi/host-symbols.js";

export class SessionInitCall implements ActiveCommand {
  readonly name = "";
  readonly arg = "";
  readonly argv: readonly string[] = [];
  readonly user = undefined;
  readonly cwd = undefined;
  path = undefined;
  transfer = undefined;
  readonly remoteAddress: string;
  /** `code message` lines, in the order the modules added them. */
  readonly lines: string[] = [];
  /** A module called pr_session_disconnect: the session ends after `lines`, without its greeting. */
  disconnected = false;

  constructor(remoteAddress: string) {
    this.remoteAddress = remoteAddress;
  }

  addResponse(code: string, message: string): void {
    this.lines.push(`${code} ${message}`);
  }

  addError(code: string, message: string): void {
    this.lines.push(`${code} ${message}`);
  }

  disconnect(): void {
    this.disconnected = true;
  }
}
