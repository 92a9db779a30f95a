/** A DaemonRuntime of a daemon that is not running: what the cluster's unit tests build generations with. */
import { SharedStore } from "../../host/abi/shared-store.js";
import type { DaemonRuntime } from "../../host/daemon/generation.js";
import { Scoreboard } from "../../host/ftp/scoreboard.js";
import { SessionMemoryAccount } from "../../host/modules/module-host.js";
import { XferlogWriter } from "../../host/xfer/xferlog.js";

export function daemonRuntime(): DaemonRuntime {
  return {
    scoreboard: new Scoreboard(),
    serverPort: () => 0,
    endSession: () => {},
    xferlog: new XferlogWriter(),
    sharedStore: new SharedStore(),
    sessionMemory: new SessionMemoryAccount(),
  };
}
