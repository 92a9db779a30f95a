/**
 * The session workers as the daemon sees them (host/daemon/cluster-hooks.ts):
 * the pool of worker processes and the one module set they all serve, wired
 * together. host/cli/dsod.ts hands createCluster to Daemon.start, which calls
 * it when the configuration sets SessionWorkers.
 */
import type { Cluster, ClusterContext } from "../daemon/cluster-hooks.js";
import type { ModuleHost } from "../modules/module-host.js";
import { ScoreboardService } from "./cluster-scoreboard.js";
import { FaultSync } from "./fault-sync.js";
import { ClusterModules } from "./module-sync.js";
import { MemoryService } from "./remote-memory.js";
import { storeHandlers } from "./remote-store.js";
import { serveSyncChannel } from "./sync-channel.js";
import { WorkerPool } from "./worker-pool.js";

/** How long a worker may take to answer one module request: a prepare reads, compiles and links a module. */
const MODULE_TIMEOUT_MS = 30_000;

export function createCluster(context: ClusterContext): Cluster {
  const scoreboard = new ScoreboardService();
  // A module's faults count in every worker, and its fault policy unloads it from every one.
  const faults = new FaultSync({
    reference: () => context.current().host,
    unload: (name, options) => modules.unloadModule(name, options),
    disable: (name) => modules.disableModule(name),
    position: () => modules.position,
    log: context.log,
    debugLevel: context.debugLevel,
  });
  // The reference's instances run the guest controls: their faults count too.
  const countFaults = (host: ModuleHost): void => host.reportFaultsTo((fault) => void faults.record(fault));
  countFaults(context.current().host);
  // Every worker reaches the primary's one shared store, the other workers' scoreboard entries, the fault count.
  const syncHandlers = {
    ...storeHandlers(context.runtime.sharedStore),
    ...scoreboard.handlers(),
    ...faults.handlers(),
  };
  // ModuleMemoryTotal is the daemon's: the primary's copy of the modules' instances and every worker's figure.
  const memory = new MemoryService(() => context.current().host.templateMemoryBytes());
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
    serveSync: (stream, index) => serveSyncChannel(stream, { ...syncHandlers, ...memory.handlers(index) }),
    score: (index, body) => scoreboard.onEvent(index, body),
    started: (index, id, remoteAddress) => scoreboard.started(index, id, remoteAddress),
    closed: (index, id) => scoreboard.closed(index, id),
    gone: (index) => {
      scoreboard.dropWorker(index);
      memory.dropWorker(index);
    },
    log: context.log,
  });
  const modules = new ClusterModules({
    reference: () => context.current().host,
    workers: () => pool.workers(),
    replace: (link, note) => pool.replace(link, note),
    statuses: () => pool.statuses(),
    log: context.log,
    timeoutMs: MODULE_TIMEOUT_MS,
    changed: (op) => faults.changed(op.name),
    store: context.runtime.sharedStore,
  });
  return {
    handOff: (socket, id, ended) => pool.handOff(socket, id, ended),
    controlsHost: modules,
    moduleActions: () => modules.moduleActions(),
    start: () => pool.start(),
    async reload(next) {
      // Called in the SIGHUP line's turn: every connection accepted after that line waits for the outcome,
      // so it is served by the configuration the reload leaves running, as in one process.
      const release = pool.hold();
      try {
        const refused = await modules.reload(next);
        // A new generation everywhere: the workers replaced under the old one leave lsmod -v, the faults of
        // its units no longer count.
        if (refused === undefined) {
          pool.forgetReplaced();
          faults.reloaded();
          countFaults(next.host);
        }
        return refused;
      } finally {
        release();
      }
    },
    stop: () => pool.stop(),
  };
}
