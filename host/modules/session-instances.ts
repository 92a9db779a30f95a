/**
 * A session's own instances of the guest units in its module set. proftpd
 * forks a process per session: a module's globals belong to that session,
 * start as the daemon's were at the fork, and die with it. Here the daemon's
 * instance of each unit (its "template": where module_init, the directives and
 * the controls run) is snapshotted when the session starts, and the session's
 * instance is made from that snapshot on the session's first call into the
 * unit, its providers first: a session pays only for the modules it reaches,
 * and still sees them as they were at its fork.
 *
 * A trap in a session's instance faults that instance only; after its backoff
 * it is made again from the session's fork, and the session's instances bound
 * to it are relinked to the new one with their own state kept.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import type { Provider } from "../linker/scope.js";
import { stateMemory } from "./snapshot.js";
import type { InstanceSnapshot } from "./snapshot.js";
import type { LoadedUnit, SessionUnit } from "./unit.js";

export interface SessionInstancesContext {
  /** Milliseconds, for fault backoffs (the host's clock). */
  now(): number;
  /** The loaded unit behind a provider. */
  unitOf(provider: Provider): LoadedUnit | undefined;
  /**
   * A session instance of `template`, linked through `exportsOf`, in the state
   * of `state` (a snapshot), or initialized again when there is none.
   */
  create(
    template: LoadedUnit,
    state: InstanceSnapshot | undefined,
    exportsOf: (provider: Provider) => WebAssembly.Exports | undefined,
  ): SessionUnit;
  /** The current state of a session instance, when its binary allows a snapshot. */
  snapshot(own: SessionUnit): InstanceSnapshot | undefined;
  /** A faulted session instance is being made again (the `reinstantiating` event). */
  rebuilding(template: LoadedUnit): void;
  /** Gives back what a session instance holds (its memory to the pool, its WASI descriptors). */
  dispose(own: SessionUnit): void;
  /** Guest code is about to run in the session's instances: what they hold must be counted again. */
  ran(instances: SessionInstances): void;
  /** The session ended: what it holds of ModuleMemoryTotal is free again. */
  released(instances: SessionInstances): void;
}

export class SessionInstances {
  readonly #context: SessionInstancesContext;
  /** Every unit the session may reach, with its state at the fork (undefined: initialized again, `replay`). */
  readonly #forks: ReadonlyMap<LoadedUnit, InstanceSnapshot | undefined>;
  readonly #own = new Map<LoadedUnit, SessionUnit>();
  /** How many of them trapped and wait to be made again: while none did, a call looks no further. */
  #faulted = 0;
  /** Bytes of ModuleMemoryTotal held for the session's life. */
  readonly reservedBytes: number;
  #released = false;
  /** Its instances' memory when last counted; stale once guest code ran in them since (only guest code grows one). */
  #countedBytes = 0;
  #countStale = false;

  constructor(
    context: SessionInstancesContext,
    forks: ReadonlyMap<LoadedUnit, InstanceSnapshot | undefined>,
    reservedBytes: number,
  ) {
    this.#context = context;
    this.#forks = forks;
    this.reservedBytes = reservedBytes;
  }

  /** Number of instances the session has made so far. */
  get size(): number {
    return this.#own.size;
  }

  /** The session's own instance of `template`, if it made one. */
  made(template: LoadedUnit): SessionUnit | undefined {
    return this.#own.get(template);
  }

  /**
   * What the session counts for ModuleMemoryTotal: the larger of its
   * reservation and what its instances hold, counted again only if guest
   * code ran in them since the last count: a new connection does not walk
   * every instance of every open session.
   */
  accountedBytes(): number {
    if (this.#countStale) {
      this.#countedBytes = this.memoryBytes();
      this.#countStale = false;
    }
    return Math.max(this.reservedBytes, this.#countedBytes);
  }

  /** Bytes of linear memory its instances hold now. */
  memoryBytes(): number {
    let bytes = 0;
    for (const own of this.#own.values()) {
      bytes += stateMemory(own.instance, own.memory, own.template.instanceState)?.buffer.byteLength ?? 0;
    }
    return bytes;
  }

  /**
   * The session's instance of `template`, made on first use. A faulted one,
   * or one bound to a faulted provider (whose imports would enter it), is
   * refused until the faulted instance's backoff passed, then made again.
   */
  instanceOf(template: LoadedUnit, entryPoint: string): SessionUnit {
    if (!this.#countStale) {
      this.#countStale = true;
      this.#context.ran(this);
    }
    const own = this.#own.get(template);
    if (own === undefined) return this.#make(template);
    if (this.#faulted === 0) return own;
    const faulted = own.retryAt === undefined ? this.#faultedProvider(template) : own;
    if (faulted?.retryAt === undefined) return own;
    const now = this.#context.now();
    if (faulted.retryAt === Number.POSITIVE_INFINITY || now < faulted.retryAt) {
      const when = faulted.retryAt === Number.POSITIVE_INFINITY ? "" : `, retried in ${faulted.retryAt - now} ms`;
      throw new DsoError(
        ErrorCodes.DISABLED,
        `${faulted.template.name}: disabled after a fault (${entryPoint} not called${when})`,
      );
    }
    this.#rebuild(faulted);
    // Made again, or relinked to its provider made again.
    return this.#own.get(template) as SessionUnit;
  }

  /** `own` trapped: it is never entered again; it is made again from the fork at `retryAt` (never when infinite). */
  fault(own: SessionUnit, retryAt: number): void {
    if (own.retryAt === undefined) this.#faulted++;
    own.retryAt = retryAt;
  }

  /** The session ended: every instance it made is given back, once. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const own of this.#own.values()) this.#context.dispose(own);
    this.#own.clear();
    this.#context.released(this);
  }

  #make(template: LoadedUnit): SessionUnit {
    if (this.#released) throw new DsoError(ErrorCodes.NOT_LOADED, `${template.name}: the session has ended`);
    if (!this.#forks.has(template)) {
      throw new DsoError(ErrorCodes.NOT_LOADED, `${template.name}: not in this session's module set`);
    }
    for (const dependency of template.dependencies) if (!this.#own.has(dependency)) this.#make(dependency);
    const own = this.#context.create(template, this.#forks.get(template), (provider) => this.#exportsOf(provider));
    this.#own.set(template, own);
    return own;
  }

  /** The session's instance of a provider of `template`, direct or not, that trapped. */
  #faultedProvider(template: LoadedUnit): SessionUnit | undefined {
    for (const dependency of template.dependencies) {
      const own = this.#own.get(dependency);
      const faulted = own === undefined || own.retryAt === undefined ? this.#faultedProvider(dependency) : own;
      if (faulted !== undefined) return faulted;
    }
    return undefined;
  }

  #exportsOf(provider: Provider): WebAssembly.Exports | undefined {
    const template = this.#context.unitOf(provider);
    return template === undefined ? undefined : this.#own.get(template)?.instance.exports;
  }

  /**
   * Makes a faulted instance again from the session's fork, then relinks the
   * session's instances bound to it (their imports name the old one's exports)
   * with the state they have now.
   */
  #rebuild(faulted: SessionUnit): void {
    const { template } = faulted;
    this.#context.rebuilding(template);
    this.#context.dispose(faulted);
    this.#own.delete(template);
    this.#faulted--;
    this.#make(template);
    this.#relinkDependents(template);
  }

  #relinkDependents(provider: LoadedUnit): void {
    for (const dependent of provider.dependents) {
      const own = this.#own.get(dependent);
      if (own === undefined) continue;
      // A faulted dependent is made from its fork when its own backoff ends; the others keep what they hold.
      const state = own.retryAt === undefined ? this.#context.snapshot(own) : this.#forks.get(dependent);
      this.#context.dispose(own);
      // Out of the map before anything can fail: a disposed instance is never entered (its memory is the pool's).
      this.#own.delete(dependent);
      const relinked = this.#context.create(dependent, state, (p) => this.#exportsOf(p));
      relinked.retryAt = own.retryAt;
      this.#own.set(dependent, relinked);
      this.#relinkDependents(dependent);
    }
  }
}

/**
 * The open sessions' guest memory, for ModuleMemoryTotal. SessionMemoryAccount
 * keeps it in the process; a session worker's account (host/cluster/remote-memory.ts)
 * keeps its own sessions in one and reports to the primary, which holds the
 * daemon's total over every worker.
 */
export interface SessionMemoryApi {
  /**
   * Opens the account of a new session when the daemon's guest memory (`hostBytes`,
   * what the admitting host's own instances hold, plus the open sessions' and
   * whatever else the account counts) with the session's reservation stays within
   * `limit` (no bound when undefined). Undefined when opened; else nothing is
   * held, and the answer is the guest memory counted.
   */
  admit(instances: SessionInstances, hostBytes: number, limit: number | undefined): number | undefined;
  /** The session ended. */
  close(instances: SessionInstances): void;
  /** Guest code is about to run in the session's instances: its count is stale. */
  ran(instances: SessionInstances): void;
  /** Number of open sessions of this process with instances of their own. */
  readonly sessions: number;
  /** How many open sessions of this process made their own instance of `template`, and the memory they hold. */
  instancesOf(template: LoadedUnit): { count: number; memoryBytes: number };
  /** What the open sessions of this process count. */
  bytes(): number;
}

/**
 * The open sessions' guest memory, for ModuleMemoryTotal: each counts at the
 * larger of what it reserved when it started and what its instances hold now
 * (a memory grows within ModuleMemoryLimit). dsod gives every SIGHUP
 * generation's host the daemon's one account, so older sessions still count.
 * The total is kept as sessions open and close, and only the sessions that ran
 * guest code since it was last taken are counted again: a new connection does
 * not walk every instance of every open session.
 */
export class SessionMemoryAccount implements SessionMemoryApi {
  /** Each open session, with what it counted when last taken. */
  readonly #open = new Map<SessionInstances, number>();
  /** The open sessions that ran guest code since. */
  readonly #stale = new Set<SessionInstances>();
  #bytes = 0;

  admit(instances: SessionInstances, hostBytes: number, limit: number | undefined): number | undefined {
    const used = hostBytes + this.bytes();
    if (limit !== undefined && used + instances.reservedBytes > limit) return used;
    this.open(instances);
    return undefined;
  }

  /** Opens the session's account whatever the bound. */
  open(instances: SessionInstances): void {
    if (this.#open.has(instances)) return;
    const bytes = instances.accountedBytes();
    this.#open.set(instances, bytes);
    this.#bytes += bytes;
  }

  close(instances: SessionInstances): void {
    const bytes = this.#open.get(instances);
    if (bytes === undefined) return;
    this.#open.delete(instances);
    this.#stale.delete(instances);
    this.#bytes -= bytes;
  }

  ran(instances: SessionInstances): void {
    if (this.#open.has(instances)) this.#stale.add(instances);
  }

  /** Number of open sessions with instances of their own. */
  get sessions(): number {
    return this.#open.size;
  }

  /** How many open sessions made their own instance of `template`, and the memory those instances hold. */
  instancesOf(template: LoadedUnit): { count: number; memoryBytes: number } {
    let count = 0;
    let memoryBytes = 0;
    for (const instances of this.#open.keys()) {
      const own = instances.made(template);
      if (own === undefined) continue;
      count++;
      memoryBytes += stateMemory(own.instance, own.memory, template.instanceState)?.buffer.byteLength ?? 0;
    }
    return { count, memoryBytes };
  }

  bytes(): number {
    for (const instances of this.#stale) {
      const bytes = instances.accountedBytes();
      // Only open sessions are ever stale (ran, close).
      this.#bytes += bytes - (this.#open.get(instances) as number);
      this.#open.set(instances, bytes);
    }
    this.#stale.clear();
    return this.#bytes;
  }
}
