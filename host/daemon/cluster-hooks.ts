/**
 * What the daemon asks of its session workers (SessionWorkers N), declared
 * here so the daemon never imports them: host/cluster implements a
 * ClusterFactory and host/cli/dsod.ts passes it to Daemon.start, which calls
 * it only when the configuration sets SessionWorkers.
 *
 * With workers, the daemon is proftpd's master: it runs as User/Group with
 * root kept as its real uid (taken back to fork workers and at shutdown),
 * accepts every connection and hands it to a worker, holds the controls socket and a
 * reference module set (what lsmod and <IfModule> answer from), and serves no
 * session itself.
 */
import type net from "node:net";
import type { RecordingStore } from "../abi/store-replay.js";
import type { ControlsAction } from "../controls/exchange.js";
import type { DsoControlsHost } from "../static/mod-dso/controls.js";
import type { DaemonLog, DaemonRuntime, Generation } from "./generation.js";

/**
 * The daemon's runtime with workers or without: its shared store records what
 * a guest control does in the reference host, so that the workers' runs of it
 * are answered the same (host/abi/store-replay.ts).
 */
export interface PrimaryRuntime extends DaemonRuntime {
  readonly sharedStore: RecordingStore;
}

/** What the daemon tells the factory. */
export interface ClusterContext {
  /** SessionWorkers: how many worker processes serve the sessions. */
  readonly workers: number;
  /** The configuration file each worker builds its own generation from. */
  readonly configFile: string;
  /** `dsod -d`: each worker logs at the same level. */
  readonly debugLevel: number;
  /** The daemon's generation now, its reference module set; a SIGHUP the workers committed swaps it. */
  readonly current: () => Generation;
  /** The daemon's runtime: its shared store and scoreboard serve the workers. */
  readonly runtime: PrimaryRuntime;
  readonly log: DaemonLog;
}

/** The session workers, seen from the daemon. */
export interface Cluster {
  /** The listener's FtpServerOptions.handOff: each connection accepted and checked goes to a worker. */
  readonly handOff: (socket: net.Socket, id: number, ended: () => void) => void;
  /** What mod_dso's controls (insmod, rmmod, lsmod) act on: every worker and the reference set, or none of them. */
  readonly controlsHost: DsoControlsHost;
  /** The loaded modules' own controls (ControlsServer's moduleActions): run in every worker, answered once. */
  readonly moduleActions: () => readonly ControlsAction[];
  /**
   * Forks the workers; resolves once every one is ready to serve (it has
   * become User), before the daemon says `listening`. Rejects with the first
   * worker's reason (DSO_ERR_WORKER_START) when one cannot start: the daemon
   * then fails to start with it.
   */
  start(): Promise<void>;
  /**
   * SIGHUP: has every worker prepare the daemon's `next` generation from the
   * configuration, then commit it everywhere. Resolves with undefined once all
   * committed, or with the refusal text when one could not prepare (none then
   * changed): the daemon keeps the running configuration and logs why.
   * Connections accepted from the call on wait until it has settled: call it
   * in the turn that logs the SIGHUP line.
   */
  reload(next: Generation): Promise<string | undefined>;
  /** SIGTERM: the workers end their sessions (`421 FTP server shutting down`) and exit; resolves once all have. */
  stop(): Promise<void>;
}

export type ClusterFactory = (context: ClusterContext) => Cluster;
