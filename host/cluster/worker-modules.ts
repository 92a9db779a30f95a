/**
 * A session worker's module set (issue 15): its own configuration
 * generation, built from the same config file as the primary's, brought to
 * the same set by replaying the journal, its instances then taking the state
 * of the primary's reference instances (instance-states.ts); then kept in
 * step with the primary's two-phase changes (module-sync.ts): a prepare does
 * everything that can fail and keeps the result pending; the commit applies
 * it, the abort drops it.
 *
 * Sessions keep the module set they started with (acquireModules), as in one
 * process: a commit changes what new sessions get.
 *
 * The primary's reference host logs and traces every one of these changes
 * once, as proftpd's master does: a worker's lines for them are held and
 * dropped, unless its own attempt fails (host/daemon/held-lines.ts).
 */
import type { ReplayingStore, ReplayOutcome } from "../abi/store-replay.js";
import { ConfigError } from "../config/lexer.js";
import { moduleControlsActions } from "../controls/module-controls.js";
import type { ControlsResult } from "../controls/exchange.js";
import { ControlsStatus } from "../controls/wire.js";
import { loadUsers } from "../daemon/daemon.js";
import { buildGeneration } from "../daemon/generation.js";
import { HeldLines } from "../daemon/held-lines.js";
import type { DaemonLog, DaemonRuntime, Generation } from "../daemon/generation.js";
import { DsoError, ErrorCodes, isDsoError, messageOf } from "../errors.js";
import type { ModuleFault, ModuleHost, PreparedLoad } from "../modules/module-host.js";
import { asControlBody, asDisableOp, asGenerationBody, asPrepareBody, asSeq, opText, unitCounts } from "./journal.js";
import type { ChangePosition } from "./fault-sync.js";
import type { JournalEntry, StatusReply, WorkerInit } from "./journal.js";
import { fromWireState } from "./wire-state.js";

/** A change prepared and waiting for the primary's commit or abort. */
type Pending =
  | { readonly kind: "insmod"; readonly seq: number; readonly prepared: PreparedLoad }
  /** `fault`: the unload a module's faults decided (fault-sync.ts), not an operator's rmmod. */
  | { readonly kind: "rmmod"; readonly seq: number; readonly name: string; readonly fault: boolean }
  | { readonly kind: "generation"; readonly seq: number; readonly next: Generation; readonly number: number };

/** A request handler, for IpcPeer.onRequest: the body is what the primary sent. */
export type RequestHandler = (body: unknown) => unknown;

/** The text daemon.ts logs after `unable to reload the configuration, keeping the running one: `. */
function failureText(error: unknown): string {
  if (error instanceof ConfigError && error.line > 0) return error.proftpdText();
  return messageOf(error);
}

/** The compiled-in modules out of `generation`'s engine: a new generation leaves them out too. */
function removedCompiledIn(generation: Generation): string[] {
  return generation.compiledIn.modules.map((m) => m.name).filter((name) => !generation.host.isLoaded(name));
}

/** A worker's runtime: its store answers a guest control's run from the reference's record (store-replay.ts). */
export interface WorkerRuntime extends DaemonRuntime {
  readonly sharedStore: ReplayingStore;
}

/** buildGeneration, then AuthUserFile's users: all a generation needs before it serves. */
function build(
  init: Pick<WorkerInit, "configFile" | "debugLevel">,
  removed: readonly string[],
  runtime: DaemonRuntime,
  log: DaemonLog,
): Generation {
  const generation = buildGeneration(init.configFile, log, init.debugLevel, removed, runtime);
  try {
    loadUsers(generation, log);
  } catch (error) {
    generation.host.close();
    throw error;
  }
  return generation;
}

function replay(host: ModuleHost, op: JournalEntry): void {
  if (op.kind === "insmod") host.loadModule(op.name);
  else if (op.kind === "disable") host.disableFaulted(op.name);
  else host.unloadModule(op.name);
}

export class WorkerModules {
  readonly #init: WorkerInit;
  readonly #held: HeldLines;
  /** The worker's runtime, with #held for its generations' trace lines. */
  readonly #runtime: WorkerRuntime;
  /** The worker's log through #held. */
  readonly #log: DaemonLog;
  readonly #sessions: () => number;
  #generation: Generation;
  #number: number;
  #pending: Pending | undefined;
  /** The journaled changes of this generation applied here (a fault report says it: fault-sync.ts). */
  #applied: number;
  readonly #swapped: ((next: Generation, previous: Generation) => void)[] = [];
  /** Where a module's faults are counted for the whole daemon (fault-sync.ts); none until reportFaultsTo. */
  #faults: ((fault: ModuleFault) => void) | undefined;
  /** A guest control runs: the primary's reference ran it first, and counts its fault once for every process. */
  #inControl = false;

  private constructor(
    init: WorkerInit,
    generation: Generation,
    held: HeldLines,
    runtime: WorkerRuntime,
    log: DaemonLog,
    sessions: () => number,
  ) {
    this.#init = init;
    this.#held = held;
    this.#generation = generation;
    this.#number = init.generation;
    this.#applied = init.journal.length;
    this.#runtime = runtime;
    this.#log = log;
    this.#sessions = sessions;
  }

  /**
   * Builds the generation the primary's reference was built from and replays
   * the journal on it. Throws DSO_ERR_WORKER_START with the reason when the
   * config or a replayed change fails: this worker could not serve the set
   * the others serve. `sessions` counts the sessions this worker serves now.
   */
  static start(init: WorkerInit, runtime: WorkerRuntime, log: DaemonLog, sessions: () => number): WorkerModules {
    const held = new HeldLines();
    const heldRuntime: WorkerRuntime = { ...runtime, heldLines: held };
    const heldLog = held.log(log);
    const generation = held.repeat(() => {
      let built: Generation;
      try {
        built = build(init, init.removedCompiledIn, heldRuntime, heldLog);
      } catch (error) {
        throw new DsoError(ErrorCodes.WORKER_START, failureText(error), { cause: error });
      }
      for (const op of init.journal) {
        try {
          replay(built.host, op);
        } catch (error) {
          built.host.close();
          throw new DsoError(ErrorCodes.WORKER_START, `unable to replay ${opText(op)}: ${failureText(error)}`, {
            cause: error,
          });
        }
      }
      try {
        built.host.adoptInstanceStates(init.states.map(fromWireState));
      } catch (error) {
        built.host.close();
        throw new DsoError(ErrorCodes.WORKER_START, `unable to take the primary's module state: ${messageOf(error)}`, {
          cause: error,
        });
      }
      return built;
    });
    return new WorkerModules(init, generation, held, heldRuntime, heldLog, sessions);
  }

  /** The generation new sessions get. */
  current(): Generation {
    return this.#generation;
  }

  /** Where this worker stands in the module changes, as its fault reports say (fault-sync.ts). */
  position(): ChangePosition {
    return { generation: this.#number, applied: this.#applied };
  }

  /** Each fault of a module in this worker, now and after each SIGHUP, goes to `report` (fault-sync.ts). */
  reportFaultsTo(report: (fault: ModuleFault) => void): void {
    this.#faults = report;
    this.#countFaults(this.#generation.host);
  }

  #countFaults(host: ModuleHost): void {
    host.reportFaultsTo((fault) => {
      if (!this.#inControl) this.#faults?.(fault);
    });
  }

  /** Called after a committed SIGHUP swapped the generation (the session server's settings follow it). */
  onSwap(listener: (next: Generation, previous: Generation) => void): void {
    this.#swapped.push(listener);
  }

  /** The shutdown's unloads, newest first: the primary's reference host logs and traces them. */
  unloadAll(): void {
    this.#held.repeat(() => this.#generation.host.unloadAll());
  }

  /** The primary's requests this side answers, for IpcPeer.onRequest. */
  handlers(): Readonly<Record<string, RequestHandler>> {
    // The changes the primary's reference host has made, logged and traced already.
    const repeat =
      (change: (body: unknown) => null): RequestHandler =>
      (body) =>
        this.#held.repeat(() => change(body));
    return {
      "module-prepare": repeat((body) => this.#prepareModule(body)),
      "module-commit": repeat((body) => this.#commitModule(asSeq(body))),
      "module-abort": repeat((body) => this.#abort(asSeq(body))),
      "module-disable": (body) => this.#disable(body),
      "generation-prepare": repeat((body) => this.#prepareGeneration(body)),
      "generation-commit": repeat((body) => this.#commitGeneration(asSeq(body))),
      "generation-abort": repeat((body) => this.#abort(asSeq(body))),
      status: () => this.#status(),
      control: (body) => this.#control(body),
    };
  }

  #prepareModule(body: unknown): null {
    const { seq, op } = asPrepareBody(body);
    // A prepare the primary could not abort (its request was lost) is dropped before the next one.
    this.#drop();
    const host = this.#generation.host;
    if (op.kind === "insmod") {
      this.#pending = { kind: "insmod", seq, prepared: host.prepareLoad(op.name) };
    } else {
      host.checkUnload(op.name);
      const fault = typeof body === "object" && body !== null && "fault" in body && body.fault === true;
      this.#pending = { kind: "rmmod", seq, name: op.name, fault };
    }
    return null;
  }

  #take(seq: number): Pending {
    const pending = this.#pending;
    if (pending?.seq !== seq) throw new Error(`no change ${seq} is prepared in this worker`);
    this.#pending = undefined;
    return pending;
  }

  #commitModule(seq: number): null {
    const pending = this.#take(seq);
    const host = this.#generation.host;
    if (pending.kind === "insmod") host.commitLoad(pending.prepared);
    else if (pending.kind === "rmmod" && pending.fault) host.unloadFaulted(pending.name);
    else if (pending.kind === "rmmod") host.unloadModule(pending.name);
    else throw new Error(`change ${seq} is a generation, not a module change`);
    this.#applied += 1;
    return null;
  }

  /** A module the primary disabled after its faults (fault-sync.ts): one step, since it cannot fail. */
  #disable(body: unknown): null {
    this.#generation.host.disableFaulted(asDisableOp(body).name);
    this.#applied += 1;
    return null;
  }

  #prepareGeneration(body: unknown): null {
    const { seq, generation } = asGenerationBody(body);
    this.#drop();
    let next: Generation;
    try {
      next = build(this.#init, removedCompiledIn(this.#generation), this.#runtime, this.#log);
    } catch (error) {
      throw new DsoError(isDsoError(error) ? error.code : ErrorCodes.CONFIG, failureText(error), { cause: error });
    }
    this.#pending = { kind: "generation", seq, next, number: generation };
    return null;
  }

  #commitGeneration(seq: number): null {
    const pending = this.#take(seq);
    if (pending.kind !== "generation") throw new Error(`change ${seq} is a module change, not a generation`);
    const previous = this.#generation;
    this.#generation = pending.next;
    this.#number = pending.number;
    this.#applied = 0;
    if (this.#faults !== undefined) this.#countFaults(pending.next.host);
    for (const listener of this.#swapped) listener(pending.next, previous);
    // Open sessions hold the old modules (acquireModules); each is released when its last session ends (daemon.ts).
    previous.host.unloadAll();
    return null;
  }

  #abort(seq: number): null {
    if (this.#pending?.seq === seq) this.#drop();
    return null;
  }

  /** Drops whatever is pending, leaving the current generation as it was. */
  #drop(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending?.kind === "insmod") this.#generation.host.abortLoad(pending.prepared);
    else if (pending?.kind === "generation") pending.next.host.close();
  }

  #status(): StatusReply {
    const units = unitCounts(this.#generation.host.describe());
    return { sessions: this.#sessions(), generation: this.#number, units };
  }

  /**
   * A guest control, run in this worker's template instances; the primary
   * checked the ACL and that it is enabled. Its store operations are answered
   * from the reference's run (store-replay.ts): the store already holds what
   * that run wrote, and this run writes nothing of its own.
   */
  async #control(body: unknown): Promise<ControlsResult> {
    const { argv, caller, store } = asControlBody(body);
    const [name = "", ...args] = argv;
    const action = moduleControlsActions(this.#generation.host.engineModules()).find((a) => a.name === name);
    if (action === undefined) return { status: ControlsStatus.UNSUPPORTED, lines: ["unsupported action requested"] };
    // The guest's control callback runs within this call, before it returns (module-controls.ts).
    this.#inControl = true;
    let replayed: ReplayOutcome<ControlsResult | Promise<ControlsResult>>;
    try {
      replayed = this.#runtime.sharedStore.replay(store, () => action.handler(args, caller));
    } finally {
      this.#inControl = false;
    }
    if (!replayed.followed) {
      const refused = replayed.refusedWrites === 0 ? "" : `; ${replayed.refusedWrites} write(s) of its own refused`;
      this.#log(
        "notice",
        `control '${name}': this worker's run did not make the primary's shared-store operations${refused}`,
      );
    }
    return replayed.result;
  }
}
