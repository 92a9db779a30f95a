/**
 * The session workers as the daemon sees them (host/daemon/cluster-hooks.ts):
 * the pool of worker processes and the one module set they all serve, wired
 * together. host/cli/dsod.ts hands createCluster to Daemon.start, which calls
 * it when the configuration sets SessionWorkers.
 */
import type { Cluster, ClusterContext } from "../daemon/cluster-hooks.js";
import { ScoreboardService } from "./cluster-scoreboard.js";
import { ClusterModules } from "./module-sync.js";
import { storeHandlers } from "./remote-store.js";
import { serveSyncChannel } from "./sync-channel.js";
import { WorkerPool } from "./worker-pool.js";

/** How long a worker may take to answer one module request: a prepare reads, compiles and links a module. */
const MODULE_TIMEOUT_MS = 30_000;

export function createCluster(context: ClusterContext): Cluster {
  const scoreboard = new ScoreboardService();
  // Every worker reaches the primary's one shared store and the other workers' scoreboard entries.
  const syncHandlers = { ...storeHandlers(context.runtime.sharedStore), ...scoreboard.handlers() };
  const pool: WorkerPool = new WorkerPool({
    count: context.workers,
    // On the module chain: a worker starting builds exactly the set every other worker has.
    init: (index, send) =>
      modules.startWorker((state) =>
        send({
          index,
          configFile: context.configFile,
          debugLevel: context.debugLevel,
          serverPort: context.runtime.serverPort(),
          ...state,
        }),
      ),
    serveSync: (stream) => serveSyncChannel(stream, syncHandlers),
    score: (index, body) => scoreboard.onEvent(index, body),
    gone: (index) => scoreboard.dropWorker(index),
    log: context.log,
  });
  const modules = new ClusterModules({
    reference: () => context.current().host,
    workers: () => pool.workers(),
    replace: (link, note) => pool.replace(link, note),
    statuses: () => pool.statuses(),
    log: context.log,
    timeoutMs: MODULE_TIMEOUT_MS,
  });
  return {
    handOff: (socket, id, ended) => pool.handOff(socket, id, ended),
    controlsHost: modules,
    moduleActions: () => modules.moduleActions(),
    start: () => pool.start(),
    async reload(next) {
      const refused = await modules.reload(next);
      // A new generation everywhere: the workers replaced under the old one leave lsmod -v.
      if (refused === undefined) pool.forgetReplaced();
      return refused;
    },
    stop: () => pool.stop(),
  };
}
