/** Runtimes of a daemon that is not running: what the cluster's unit tests build generations with. */
import { SharedStore } from "../../host/abi/shared-store.js";
import { RecordingStore, ReplayingStore } from "../../host/abi/store-replay.js";
import type { WorkerRuntime } from "../../host/cluster/worker-modules.js";
import type { PrimaryRuntime } from "../../host/daemon/cluster-hooks.js";
import { Scoreboard } from "../../host/ftp/scoreboard.js";
import { SessionMemoryAccount } from "../../host/modules/module-host.js";
import { XferlogWriter } from "../../host/xfer/xferlog.js";

/** The primary's runtime, over `store`. */
export function daemonRuntime(store = new SharedStore()): PrimaryRuntime {
  return {
    scoreboard: new Scoreboard(),
    serverPort: () => 0,
    endSession: () => {},
    xferlog: new XferlogWriter(),
    sharedStore: new RecordingStore(store),
    sessionMemory: new SessionMemoryAccount(),
  };
}

/** A session worker's runtime beside `primary`: the same store, its guest controls' operations answered from a record. */
export function workerRuntime(primary: PrimaryRuntime): WorkerRuntime {
  return { ...primary, sharedStore: new ReplayingStore(primary.sharedStore) };
}
