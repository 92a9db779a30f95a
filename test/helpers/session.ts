/**
 * Hand-built sessions and commands for unit tests of handlers and dispatch,
 * where no daemon runs: a ControlChannel that records what it is asked to do.
 */
import type { TLSSocketOptions } from "node:tls";
import type { ActiveCommand } from "../../host/abi/host-symbols.js";
import { DataChannel } from "../../host/data/data-channel.js";
import { DEFAULT_DATA_SETTINGS } from "../../host/ftp/server.js";
import type { ControlChannel, EngineModule, SessionState } from "../../host/modules/module-api.js";

/** A ControlChannel that keeps the lines sent at once and the TLS and abort requests. */
export class RecordingControl implements ControlChannel {
  readonly sent: string[] = [];
  secure = false;
  tlsOptions: TLSSocketOptions | undefined;
  tlsCleared = false;
  abortTarget: (() => void) | undefined;
  readonly cleanups = new Set<() => void>();

  send(code: string, message: string): void {
    this.sent.push(`${code} ${message}`);
  }

  startTlsAfterReply(options: TLSSocketOptions): void {
    this.tlsOptions = options;
  }

  clearTlsAfterReply(): void {
    this.tlsCleared = true;
  }

  onAbort(abort: () => void): () => void {
    this.abortTarget = abort;
    return () => {
      if (this.abortTarget === abort) this.abortTarget = undefined;
    };
  }

  onClose(cleanup: () => void): () => void {
    this.cleanups.add(cleanup);
    return () => this.cleanups.delete(cleanup);
  }

  /** Ends the session as a closed control connection does: its cleanups run (a login's filesystem is closed). */
  close(): void {
    const cleanups = [...this.cleanups];
    this.cleanups.clear();
    for (const cleanup of cleanups) cleanup();
  }
}

/** A session of `modules`, logged in as `user` (undefined: not logged in), with a recording control channel. */
export function testSession(
  modules: readonly EngineModule[],
  user: string | undefined,
  overrides: Partial<SessionState> = {},
): SessionState {
  const endpoints = { localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" };
  return {
    id: 1,
    ...endpoints,
    modules,
    pendingUser: undefined,
    user,
    account: undefined,
    fs: undefined,
    cwd: "/",
    home: "/",
    transferType: "A",
    data: new DataChannel(endpoints, () => DEFAULT_DATA_SETTINGS),
    control: new RecordingControl(),
    closing: false,
    ...overrides,
  };
}

/** A command as a handler sees it, outside dispatch: replies go to the given callbacks. */
export function testCommand(
  argv: readonly string[],
  replies: {
    addResponse?: (code: string, message: string) => void;
    addError?: (code: string, message: string) => void;
  } = {},
  user?: string,
): ActiveCommand {
  return {
    name: argv[0] ?? "",
    arg: argv.slice(1).join(" "),
    argv,
    user,
    cwd: undefined,
    path: undefined,
    transfer: undefined,
    addResponse: replies.addResponse ?? (() => {}),
    addError: replies.addError ?? (() => {}),
  };
}

/** The value of a dispatch or handler result that must not be a Promise (every handler involved is synchronous). */
export function settled<T>(value: T | Promise<T>): T {
  if (value instanceof Promise) throw new Error("expected a synchronous result, got a Promise");
  return value;
}

/** A command (or directive) of `argv` whose replies go nowhere, at `cwd` (undefined for a directive). */
export function silentCommand(argv: readonly string[], cwd?: string): ActiveCommand {
  return {
    name: argv[0] ?? "",
    arg: argv.slice(1).join(" "),
    argv,
    user: undefined,
    cwd,
    path: undefined,
    transfer: undefined,
    addResponse: () => {},
    addError: () => {},
  };
}
