/**
 * ModuleMemoryTotal across session workers. The bound is the daemon's, as
 * with SessionWorkers off: the primary holds the total, and counts for each
 * worker its lease: what the worker may fill without asking. A session start
 * that fits in its worker's lease is admitted there, with no call; one that
 * does not asks the primary, in one synchronous call over the worker's
 * SyncChannel (type "memory"), which grants a larger lease or refuses. The
 * leases never add up past the bound, so two workers never both take the last
 * room and the bound is never passed.
 *
 * A lease is what the worker holds (its templates and its open sessions) plus
 * headroom: while the room left is large (LEASE_FLOOR) a few sessions' worth
 * (up to LEASE_CHUNK), else none, so that near a small bound every start asks,
 * as without leases. A worker gives back headroom past what it was last granted
 * as its sessions end; until it does, the other workers' starts are refused
 * early by at most that headroom, and only when the room left is under the floor.
 *
 * Each worker keeps its own sessions in a SessionMemoryAccount (a session's
 * instances live in its worker) and reports what they and its own instances of
 * the modules (its templates) count when that leaves its lease (grows past it,
 * or falls short of it by more than its headroom): when a session ends, after
 * a module request (load, unload, SIGHUP, a guest control: its templates
 * changed), and once guest code ran in a session, as soon as that command's
 * synchronous work is done. A session whose instances did not grow costs nothing.
 *
 * The primary adds its own reference copy of the modules' instances: memory
 * the daemon holds as much as any worker's (docs/security.md).
 */
import { ErrorCodes, isDsoError } from "../errors.js";
import { SessionMemoryAccount } from "../modules/session-instances.js";
import type { SessionInstances, SessionMemoryApi } from "../modules/session-instances.js";
import type { LoadedUnit } from "../modules/unit.js";
import type { BodyHandler } from "./ipc.js";
import type { SyncChannel } from "./sync-channel.js";

/** The sync channel's request type for ModuleMemoryTotal. */
export const MEMORY_CALL = "memory";

/** The room left under the bound past which a lease carries headroom. */
export const LEASE_FLOOR = 64 * 1024 ** 2;
/** The most headroom a lease carries. */
export const LEASE_CHUNK = 16 * 1024 ** 2;

/**
 * A worker's figure and, to admit a session, its reservation and the worker's
 * ModuleMemoryTotal (null: none). `admit`'s `bytes` is what the worker holds
 * (its templates and its open sessions); `report`'s is its lease, at least that.
 */
export type MemoryRequest =
  | { readonly op: "admit"; readonly bytes: number; readonly reserved: number; readonly limit: number | null }
  | { readonly op: "report"; readonly bytes: number };

/**
 * The answer to `admit`: `used`, the daemon's guest memory it counted, when the
 * session is refused; else `lease`, what the worker may now hold without asking.
 */
export interface AdmitReply {
  readonly used?: number;
  readonly lease?: number;
}

/** A session worker's account: its sessions kept here, the daemon's total in the primary. */
export class RemoteSessionMemory implements SessionMemoryApi {
  readonly #local = new SessionMemoryAccount();
  readonly #channel: Pick<SyncChannel, "call">;
  readonly #templates: () => number;
  readonly #defer: (task: () => void) => void;
  /** What this worker's own instances held when last counted: only a module request or a session start changes it. */
  #templateBytes = 0;
  /** The lease the primary counts for this worker: what it may hold without asking. */
  #lease = 0;
  /** The headroom last granted: the most of its lease a worker keeps unused. */
  #headroom = 0;
  /**
   * The ModuleMemoryTotal the lease was granted under (null: none); another
   * bound (a SIGHUP) asks again. undefined while no grant stands (none yet, a
   * refusal, or growth past the lease): every start asks.
   */
  #grantedUnder: number | null | undefined;
  /** Whether the primary has a figure for this worker yet. */
  #reported = false;
  #refreshQueued = false;

  /**
   * `templates`: what this worker's instances of its current module set hold.
   * `defer`: runs a task once the current synchronous work is done (queueMicrotask).
   */
  constructor(
    channel: Pick<SyncChannel, "call">,
    templates: () => number,
    defer: (task: () => void) => void = queueMicrotask,
  ) {
    this.#channel = channel;
    this.#templates = templates;
    this.#defer = defer;
  }

  admit(instances: SessionInstances, hostBytes: number, limit: number | undefined): number | undefined {
    this.#templateBytes = hostBytes;
    const bytes = hostBytes + this.#local.bytes();
    const reserved = instances.reservedBytes;
    if (this.#grantedUnder === (limit ?? null) && bytes + reserved <= this.#lease) {
      this.#local.open(instances);
      return undefined;
    }
    const request: MemoryRequest = { op: "admit", bytes, reserved, limit: limit ?? null };
    const reply = this.#channel.call(MEMORY_CALL, request) as AdmitReply;
    this.#reported = true;
    if (reply.used !== undefined) {
      // Refused: the primary counts what this worker holds, no headroom.
      this.#lease = bytes;
      this.#headroom = 0;
      this.#grantedUnder = undefined;
      return reply.used;
    }
    this.#grantedUnder = limit ?? null;
    this.#local.open(instances);
    this.#lease = reply.lease ?? bytes + reserved;
    this.#headroom = this.#lease - bytes - reserved;
    return undefined;
  }

  close(instances: SessionInstances): void {
    this.#local.close(instances);
    this.#report();
  }

  ran(instances: SessionInstances): void {
    this.#local.ran(instances);
    if (this.#refreshQueued) return;
    this.#refreshQueued = true;
    // Guest code is about to run: what it grew is counted once it has returned.
    this.#defer(() => {
      this.#refreshQueued = false;
      this.#report();
    });
  }

  get sessions(): number {
    return this.#local.sessions;
  }

  instancesOf(template: LoadedUnit): { count: number; memoryBytes: number } {
    return this.#local.instancesOf(template);
  }

  bytes(): number {
    return this.#local.bytes();
  }

  /** Counts this worker's own instances again (its module set changed), and reports. */
  refresh(): void {
    this.#templateBytes = this.#templates();
    this.#report();
  }

  /**
   * Tells the primary this worker's lease when what it holds left it: grew past
   * it (counted as it is), or fell short of it by more than its headroom (given back).
   */
  #report(): void {
    const bytes = this.#templateBytes + this.#local.bytes();
    const lease = bytes > this.#lease ? bytes : Math.min(this.#lease, bytes + this.#headroom);
    if (lease === this.#lease && this.#reported) return;
    try {
      this.#channel.call(MEMORY_CALL, { op: "report", bytes: lease } satisfies MemoryRequest);
    } catch (error) {
      // The primary that would count it is gone, and this worker stops on the channel's disconnect.
      if (isDsoError(error) && error.code === ErrorCodes.WORKER_GONE) return;
      throw error;
    }
    // Grown past its lease (guest code, a module request): counted as it is, and the next start asks.
    if (bytes > this.#lease) this.#grantedUnder = undefined;
    this.#lease = lease;
    this.#reported = true;
  }
}

function isBytes(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function asMemoryRequest(body: unknown): MemoryRequest {
  const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const { op, bytes, reserved, limit } = record;
  if (op === "report" && isBytes(bytes)) return { op, bytes };
  if (op === "admit" && isBytes(bytes) && isBytes(reserved) && (limit === null || isBytes(limit))) {
    return { op, bytes, reserved, limit };
  }
  throw new Error(`malformed ${MEMORY_CALL} call ${JSON.stringify(body)}`);
}

/** What the primary knows of one worker process. */
interface WorkerFigure {
  bytes: number;
}

/**
 * The headroom a lease carries past `need` when `free` is the room left under
 * the bound after it (null: no bound).
 */
function headroom(free: number | null): number {
  if (free === null) return LEASE_CHUNK;
  return free >= LEASE_FLOOR ? Math.min(LEASE_CHUNK, Math.floor(free / 8)) : 0;
}

/** The primary's side: the daemon's guest memory over its reference copy and every worker's lease. */
export class MemoryService {
  readonly #reference: () => number;
  /** Each worker process's figure, under its index; one that exited is dropped. */
  readonly #workers = new Map<number, WorkerFigure>();

  /** `reference`: what the primary's own instances of the current module set hold. */
  constructor(reference: () => number) {
    this.#reference = reference;
  }

  /** The daemon's guest memory as last reported. */
  bytes(): number {
    let bytes = this.#reference();
    for (const figure of this.#workers.values()) bytes += figure.bytes;
    return bytes;
  }

  /** For serveSyncChannel of worker `index`'s process: the "memory" call. */
  handlers(index: number): Readonly<Record<string, BodyHandler<unknown>>> {
    // Each process its own figure: a frame a dead worker's channel still held lands on a figure no longer counted.
    const figure: WorkerFigure = { bytes: 0 };
    this.#workers.set(index, figure);
    return {
      [MEMORY_CALL]: (body: unknown): AdmitReply => {
        const request = asMemoryRequest(body);
        figure.bytes = request.bytes;
        if (request.op === "report") return {};
        const used = this.bytes();
        const need = request.bytes + request.reserved;
        if (request.limit !== null && used + request.reserved > request.limit) return { used };
        const free = request.limit === null ? null : request.limit - (used + request.reserved);
        figure.bytes = need + headroom(free);
        return { lease: figure.bytes };
      },
    };
  }

  /** Worker `index`'s process has exited: its sessions and templates are gone with it. */
  dropWorker(index: number): void {
    this.#workers.delete(index);
  }
}
