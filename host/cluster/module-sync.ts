/**
 * One module set for the primary and every session worker (issue 15): the
 * primary's side of insmod, rmmod and SIGHUP, made in two phases.
 *
 * The primary keeps a reference host, built from the config as today, which
 * never serves a session: lsmod, `<IfModule>` and the controls' answers come
 * from it. A change is first prepared on the reference host and on every
 * worker (everything that can fail: the file, compile, link, instantiate,
 * init hooks; rmmod's checks); when all of them succeeded it is committed
 * everywhere, and appended to the journal a late worker replays; when any
 * failed, every one that prepared aborts and no host changed. A worker that
 * fails to commit what it prepared is replaced (it would serve another set).
 *
 * proftpd's master handles one control at a time, and SIGHUP in its main
 * loop: here changes, worker starts and guest controls run one after another
 * on one promise chain, so none sees another half done.
 */
import type { RecordingStore } from "../abi/store-replay.js";
import type { ControlsAction, ControlsCaller, ControlsResult } from "../controls/exchange.js";
import { moduleControlsActions } from "../controls/module-controls.js";
import type { Generation, DaemonLog } from "../daemon/generation.js";
import { DsoError, ErrorCodes, isDsoError, messageOf } from "../errors.js";
import type { LoadedUnitInfo, ModuleHost } from "../modules/module-host.js";
import type { DsoControlsHost, WorkerStatus } from "../static/mod-dso/controls.js";
import type { ChangePosition } from "./fault-sync.js";
import { asStatusReply, mergeUnitCounts, opText } from "./journal.js";
import { toWireCall } from "./remote-store.js";
import { toWireState } from "./wire-state.js";
import type { DisableOp, Journal, JournalEntry, ModuleOp, ModuleState, StatusReply } from "./journal.js";

/** A serving worker as the coordinator reaches it: its IpcPeer's request, and who it is for messages. */
export interface WorkerLink {
  readonly index: number;
  readonly pid: number;
  request(type: string, body: unknown, options: { timeoutMs?: number }): Promise<unknown>;
}

export interface ClusterModulesOptions {
  /** The current generation's host: read at each change, since a SIGHUP swaps it. */
  readonly reference: () => ModuleHost;
  /** The workers serving now (a starting or replaced one is not asked). */
  readonly workers: () => readonly WorkerLink[];
  /** Kills a worker that could not apply a committed change and starts another; `note` says why (`lsmod -v`). */
  readonly replace: (link: WorkerLink, note: string) => void;
  /** Every worker's state for `lsmod -v`, replaced ones included (the pool keeps them). */
  readonly statuses: () => Promise<readonly WorkerStatus[]>;
  readonly log: DaemonLog;
  /** How long a worker may take to answer one request. */
  readonly timeoutMs: number;
  /** A change every host made (the module's fault count starts again, as a new unit's does in one process). */
  readonly changed?: (op: JournalEntry) => void;
  /** The primary's shared store: a guest control's operations in the reference, for the workers' runs to repeat. */
  readonly store: Pick<RecordingStore, "record">;
}

/** Where a refusal came from, under insmod's and rmmod's lines. */
function refusedIn(link: WorkerLink): string {
  return `in worker ${link.index} (pid ${link.pid}); no worker changed`;
}

/**
 * A worker's refusal as the controls answer it: the same code, errno and lines
 * as the same failure in the primary (mod_dso's controls print proftpd's line
 * from them), then a detail line naming the worker.
 */
function workerRefusal(link: WorkerLink, error: unknown): Error {
  const where = refusedIn(link);
  if (!isDsoError(error)) {
    return new Error(`${messageOf(error)} (${where})`, { cause: error });
  }
  return new DsoError(error.code, error.message, {
    ...(error.errno !== undefined && { errno: error.errno }),
    ...(error.details.length > 0 && { details: error.details }),
    where,
    cause: error,
  });
}

/** The first line of a control's answer, for the log line saying a worker answered otherwise. */
function firstLine(result: ControlsResult): string {
  return result.lines[0] ?? `status ${result.status}`;
}

function asControlsResult(value: unknown): ControlsResult {
  const record = value as Partial<ControlsResult> | null;
  if (
    typeof record?.status === "number" &&
    Array.isArray(record.lines) &&
    record.lines.every((line) => typeof line === "string")
  ) {
    return { status: record.status, lines: record.lines };
  }
  throw new Error("malformed control answer on the session worker channel");
}

interface Prepared {
  readonly link: WorkerLink;
  readonly outcome: PromiseSettledResult<unknown>;
}

/** The workers that answered a prepare, each to be told to commit. */
function linksOf(answers: readonly Prepared[]): WorkerLink[] {
  return answers.map((answer) => answer.link);
}

export class ClusterModules implements DsoControlsHost {
  readonly #options: ClusterModulesOptions;
  /** The tail of the chain every change, worker start and guest control runs on, one at a time. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Worker starts under way, each settled once its `init` is answered either way. */
  readonly #starting = new Set<Promise<void>>();
  #seq = 0;
  #journal: JournalEntry[] = [];
  #generation = 1;
  #removedCompiledIn: readonly string[] = [];
  /** One wrapper per guest control, kept as the reference's action lives, so rmctrl's choice holds. */
  readonly #wrapped = new WeakMap<ControlsAction, ControlsAction>();

  constructor(options: ClusterModulesOptions) {
    this.#options = options;
  }

  /** The module changes since the current generation, oldest first. */
  get journal(): Journal {
    return [...this.#journal];
  }

  /** The current generation's number: 1 at start, one more per SIGHUP every worker committed. */
  get generation(): number {
    return this.#generation;
  }

  /** Where the module set stands: the generation, and the changes of it journaled (a worker's fault reports say theirs). */
  get position(): ChangePosition {
    return { generation: this.#generation, applied: this.#journal.length };
  }

  /** insmod: the reference's refusal is thrown as it is, so its lines are exactly the single-process ones. */
  loadModule(name: string): Promise<void> {
    return this.#serial(async () => {
      const reference = this.#options.reference();
      const prepared = reference.prepareLoad(name);
      const op: ModuleOp = { kind: "insmod", name };
      const seq = this.#nextSeq();
      const answers = await this.#ask("module-prepare", { seq, op });
      const refusal = answers.find((answer) => answer.outcome.status === "rejected");
      if (refusal !== undefined) {
        reference.abortLoad(prepared);
        await this.#abort("module-abort", seq, answers, opText(op));
        throw workerRefusal(refusal.link, (refusal.outcome as PromiseRejectedResult).reason);
      }
      reference.commitLoad(prepared);
      this.#journal.push(op);
      this.#options.changed?.(op);
      await this.#commit("module-commit", { seq }, linksOf(answers), opText(op));
    });
  }

  /**
   * rmmod: checked on the reference, then on every worker (each host refuses what it would refuse).
   * `fault`: the unload a module's faults decided (fault-sync.ts): sessions that keep it find it disabled.
   */
  unloadModule(name: string, options: { fault?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      const reference = this.#options.reference();
      reference.checkUnload(name);
      const op: ModuleOp = { kind: "rmmod", name };
      const seq = this.#nextSeq();
      const fault = options.fault === true;
      const answers = await this.#ask("module-prepare", { seq, op, ...(fault && { fault }) });
      const refusal = answers.find((answer) => answer.outcome.status === "rejected");
      if (refusal !== undefined) {
        await this.#abort("module-abort", seq, answers, opText(op));
        throw workerRefusal(refusal.link, (refusal.outcome as PromiseRejectedResult).reason);
      }
      if (fault) reference.unloadFaulted(name);
      else reference.unloadModule(name);
      this.#journal.push(op);
      this.#options.changed?.(op);
      await this.#commit("module-commit", { seq }, linksOf(answers), opText(op));
    });
  }

  /**
   * A module its faults would unload while other modules are bound to it
   * (fault-sync.ts): disabled in the reference and in every worker, as one
   * process disables it, and journaled, so that a worker started later
   * disables it too. Nothing can refuse it; a worker that does not apply it
   * is replaced, since it would go on calling the module.
   */
  disableModule(name: string): Promise<void> {
    return this.#serial(async () => {
      this.#options.reference().disableFaulted(name);
      const op: DisableOp = { kind: "disable", name };
      this.#journal.push(op);
      this.#options.changed?.(op);
      await this.#commit("module-disable", op, this.#options.workers(), opText(op));
    });
  }

  /**
   * SIGHUP, once the primary built `next` (its reference generation): every
   * worker builds its own from the config file. Undefined when all of them
   * committed (the caller then swaps its generation); else the refusal's text,
   * naming the worker, and every worker keeps its generation.
   */
  reload(next: Pick<Generation, "compiledIn">): Promise<string | undefined> {
    return this.#serial(async () => {
      // What the caller gave buildGeneration: compiled-in modules out of the engine now stay out (daemon.ts reload).
      const reference = this.#options.reference();
      const removed = next.compiledIn.modules.map((m) => m.name).filter((name) => !reference.isLoaded(name));
      const generation = this.#generation + 1;
      const seq = this.#nextSeq();
      const answers = await this.#ask("generation-prepare", { seq, generation });
      const refusal = answers.find((answer) => answer.outcome.status === "rejected");
      if (refusal !== undefined) {
        await this.#abort("generation-abort", seq, answers, "the reloaded configuration");
        const { link, outcome } = refusal;
        return `worker ${link.index} (pid ${link.pid}): ${messageOf((outcome as PromiseRejectedResult).reason)}`;
      }
      this.#journal = [];
      this.#generation = generation;
      this.#removedCompiledIn = removed;
      await this.#commit("generation-commit", { seq }, linksOf(answers), "the reloaded configuration");
      return undefined;
    });
  }

  /**
   * Runs `start` (a worker's "init" request) with the module state it must
   * build, once the changes asked before it are done: no change is half made
   * while a worker starts, and a change asked while it starts waits for it, so
   * the worker is asked too. Starts run beside each other (a reader beside
   * readers), so `auto` on many cores starts its workers at once.
   */
  startWorker<T>(start: (state: ModuleState) => Promise<T>): Promise<T> {
    const started = this.#chain.then(() =>
      start({
        journal: this.journal,
        removedCompiledIn: this.#removedCompiledIn,
        generation: this.#generation,
        states: this.#options.reference().instanceStates().map(toWireState),
      }),
    );
    const settled = started.then(
      () => undefined,
      () => undefined,
    );
    this.#starting.add(settled);
    void settled.then(() => this.#starting.delete(settled));
    return started;
  }

  listModules(): readonly string[] {
    return this.#options.reference().listModules();
  }

  /** lsmod -v's `Session Workers:`. */
  workers(): Promise<readonly WorkerStatus[]> {
    return this.#options.statuses();
  }

  /** lsmod -v: the reference's units, with every serving worker's sessions and instances. */
  async describe(): Promise<readonly LoadedUnitInfo[]> {
    const units = this.#options.reference().describe();
    const answers = await this.#ask("status", {});
    const replies: StatusReply[] = [];
    for (const { link, outcome } of answers) {
      if (outcome.status === "fulfilled") replies.push(asStatusReply(outcome.value));
      else this.#note(link, `no status: ${messageOf(outcome.reason)}`);
    }
    return mergeUnitCounts(units, replies);
  }

  /**
   * The guest modules' controls (mod_ban's `ban`, `permit`), as the controls
   * server lists them: the reference host's, whose answer is given, each also
   * run in every worker, whose template instances keep their own state.
   */
  moduleActions(): ControlsAction[] {
    return moduleControlsActions(this.#options.reference().engineModules()).map((action) => {
      let wrapped = this.#wrapped.get(action);
      if (wrapped === undefined) {
        const run = (args: readonly string[], caller: ControlsCaller): Promise<ControlsResult> =>
          this.#serial(() => this.#control(action, args, caller));
        wrapped = {
          name: action.name,
          ...(action.module !== undefined && { module: action.module }),
          get description() {
            return action.description;
          },
          acl: (caller) => action.acl(caller),
          handler: run,
        };
        this.#wrapped.set(action, wrapped);
      }
      return wrapped;
    });
  }

  async #control(action: ControlsAction, args: readonly string[], caller: ControlsCaller): Promise<ControlsResult> {
    const { result, calls } = this.#options.store.record(() => action.handler(args, caller));
    const answer = await result;
    const store = calls.map(toWireCall);
    const answers = await this.#ask("control", { argv: [action.name, ...args], caller, store });
    for (const { link, outcome } of answers) {
      if (outcome.status === "rejected") {
        this.#note(link, `control '${action.name}' failed: ${messageOf(outcome.reason)}`);
        continue;
      }
      const theirs = asControlsResult(outcome.value);
      // Only the status tells a worker apart: its run's store operations got the reference's answers
      // (store-replay.ts), yet its words may come from state of its own (a counter in its instance).
      if (theirs.status !== answer.status) {
        this.#options.log(
          "notice",
          `worker ${link.index}: control '${action.name}' answered differently: ${firstLine(theirs)}`,
        );
      }
    }
    return answer;
  }

  #note(link: WorkerLink, message: string): void {
    this.#options.log("notice", `worker ${link.index} (pid ${link.pid}): ${message}`);
  }

  /** Runs `run` after every change and worker start asked before it (a writer after the readers before it). */
  #serial<T>(run: () => Promise<T>): Promise<T> {
    const starting = [...this.#starting];
    const result = this.#chain.then(() => Promise.all(starting)).then(run);
    this.#chain = result.catch(() => undefined);
    return result;
  }

  #nextSeq(): number {
    this.#seq += 1;
    return this.#seq;
  }

  /** Sends one request to every serving worker at once and waits for every answer. */
  async #ask(type: string, body: unknown): Promise<Prepared[]> {
    const links = this.#options.workers();
    const timeoutMs = this.#options.timeoutMs;
    const outcomes = await Promise.allSettled(links.map((link) => link.request(type, body, { timeoutMs })));
    return links.map((link, i) => ({ link, outcome: outcomes[i] as PromiseSettledResult<unknown> }));
  }

  /**
   * Tells the workers that prepared to drop it (one that cannot drops it at its
   * next prepare, worker-modules.ts); a worker that did not answer in time is
   * stuck, serving nobody well, and is replaced.
   */
  async #abort(type: string, seq: number, answers: readonly Prepared[], what: string): Promise<void> {
    for (const { link, outcome } of answers) {
      const failure: unknown = outcome.status === "rejected" ? outcome.reason : undefined;
      if (isDsoError(failure) && failure.code === ErrorCodes.WORKER_TIMEOUT) {
        this.#options.replace(link, `did not prepare ${what} in time`);
      }
    }
    const prepared = answers.filter((answer) => answer.outcome.status === "fulfilled").map((answer) => answer.link);
    const timeoutMs = this.#options.timeoutMs;
    const outcomes = await Promise.allSettled(prepared.map((link) => link.request(type, { seq }, { timeoutMs })));
    outcomes.forEach((outcome, i) => {
      const link = prepared[i] as WorkerLink;
      if (outcome.status === "rejected") {
        this.#note(link, `${type} failed: ${messageOf(outcome.reason)}`);
      }
    });
  }

  /** Commits everywhere; a worker that fails is replaced, since it would now serve another module set. */
  async #commit(type: string, body: unknown, links: readonly WorkerLink[], what: string): Promise<void> {
    const timeoutMs = this.#options.timeoutMs;
    const outcomes = await Promise.allSettled(links.map((link) => link.request(type, body, { timeoutMs })));
    outcomes.forEach((outcome, i) => {
      const link = links[i] as WorkerLink;
      if (outcome.status === "fulfilled") return;
      this.#options.log(
        "error",
        `worker ${link.index} (pid ${link.pid}) could not apply ${what}: ${messageOf(outcome.reason)}`,
      );
      this.#options.replace(link, `could not apply ${what}`);
    });
  }
}
