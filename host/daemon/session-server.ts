/**
 * The FTP server of a process that serves sessions: the daemon itself with
 * SessionWorkers off, or each session worker (where it never listens and
 * adopts the connections the primary hands it). Both build it here, so a
 * session is served alike wherever it runs: every setting is read through
 * `current()` per connection, so a SIGHUP's settings apply to new sessions (an
 * open one keeps its own, as a forked one does).
 */
import { performance } from "node:perf_hooks";
import { limitReply } from "../access/limit-reply.js";
import { FairScheduler } from "../ftp/scheduler.js";
import { FtpServer } from "../ftp/server.js";
import type { FtpServerOptions } from "../ftp/server.js";
import type { ModuleSet } from "../modules/module-host.js";
import { dataChannelSettings } from "../static/index.js";
import { sessionJailRoot } from "../static/mod-auth.js";
import { serverFqdn } from "../static/mod-core.js";
import { greetingLine } from "../static/server-ident.js";
import { defaultMaxInstances, readOpenFilesLimit } from "../system/limits.js";
import type { DaemonLog, DaemonRuntime, Generation } from "./generation.js";
import { DSOD_VERSION } from "./version.js";

/** One per process: every session's commands take their turns here (SessionCPUShare). */
export function createSessionScheduler(generation: Generation): FairScheduler<number> {
  return new FairScheduler<number>({
    shareMs: generation.dso.sessionCpuShareMs,
    now: () => performance.now(),
    idleTime: () => performance.nodeTiming.idleTime,
    defer: (next) => setImmediate(next),
    later: (ms, wake) => setTimeout(wake, ms).unref(),
  });
}

/** What differs with session workers: the primary hands connections off, a worker reports them closed. */
export type SessionServerExtra = Pick<FtpServerOptions, "handOff" | "sessionClosed">;

export function createSessionServer(
  current: () => Generation,
  runtime: DaemonRuntime,
  scheduler: FairScheduler<number>,
  log: DaemonLog,
  extra: SessionServerExtra = {},
): FtpServer {
  // MaxInstances when the config sets none: what the descriptor limit leaves room for.
  const defaultMax = defaultMaxInstances(readOpenFilesLimit());
  return new FtpServer({
    acquireModules: (): ModuleSet => current().host.acquireModules(),
    get serverName() {
      return current().compiledIn.core.serverName;
    },
    // ServerIdent, read per connection as ServerName is.
    greeting: (localAddress) => {
      const { core, data } = current().compiledIn;
      return greetingLine(core.serverIdent, {
        serverName: core.serverName,
        serverFqdn: serverFqdn(core),
        version: DSOD_VERSION,
        localAddress,
        masqueradeAddress: data.masqueradeAddress,
      });
    },
    get idleTimeoutSeconds() {
      return current().compiledIn.core.timeoutIdle;
    },
    get loginTimeoutSeconds() {
      return current().compiledIn.auth.timeoutLogin;
    },
    get sessionTimeoutSeconds() {
      return current().compiledIn.auth.timeoutSession;
    },
    get maxInstances() {
      return current().compiledIn.core.maxInstances ?? defaultMax;
    },
    get maxConnectionsPerHost() {
      return current().compiledIn.auth.maxConnectionsPerHost;
    },
    scoreboard: runtime.scoreboard,
    scheduler,
    dataSettings: () => dataChannelSettings(current().compiledIn.data, current().compiledIn.xfer.timeoutStalled),
    // <Limit> and <Directory>: the current generation's rules, matched in the session's jail.
    authorize: (session, command) =>
      limitReply(
        current().compiledIn.core.limits,
        session,
        command.name,
        command.arg,
        command.path,
        sessionJailRoot(session),
      ),
    log: (message) => log("info", message),
    ...(extra.handOff !== undefined && { handOff: extra.handOff }),
    ...(extra.sessionClosed !== undefined && { sessionClosed: extra.sessionClosed }),
  });
}
