/**
 * ModuleMemoryTotal across session workers. The bound is the daemon's, as
 * with SessionWorkers off: the primary holds the total, and a worker's session
 * start is admitted or refused there, in one synchronous call over the
 * worker's SyncChannel (type "memory"), so two workers never both take the
 * last room.
 *
 * Each worker keeps its own sessions in a SessionMemoryAccount (a session's
 * instances live in its worker) and reports what they and its own instances of
 * the modules (its templates) count: with each admission, when a session ends,
 * after a module request (load, unload, SIGHUP, a guest control: its templates
 * changed), and once guest code ran in a session, as soon as that command's
 * synchronous work is done. A report is one call, made only when the figure
 * changed: a session whose instances did not grow costs nothing.
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

/**
 * A worker's figure (`bytes`: its templates and its open sessions) and, to
 * admit a session, its reservation and the worker's ModuleMemoryTotal (null: none).
 */
export type MemoryRequest =
  | { readonly op: "admit"; readonly bytes: number; readonly reserved: number; readonly limit: number | null }
  | { readonly op: "report"; readonly bytes: number };

/** The answer to `admit`: `used`, the daemon's guest memory it counted, when the session is refused. */
export interface AdmitReply {
  readonly used?: number;
}

/** A session worker's account: its sessions kept here, the daemon's total in the primary. */
export class RemoteSessionMemory implements SessionMemoryApi {
  readonly #local = new SessionMemoryAccount();
  readonly #channel: Pick<SyncChannel, "call">;
  readonly #templates: () => number;
  readonly #defer: (task: () => void) => void;
  /** What this worker's own instances held when last counted: only a module request or a session start changes it. */
  #templateBytes = 0;
  /** The figure the primary has for this worker; undefined before the first report. */
  #reported: number | undefined;
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
    const request: MemoryRequest = { op: "admit", bytes, reserved: instances.reservedBytes, limit: limit ?? null };
    const reply = this.#channel.call(MEMORY_CALL, request) as AdmitReply;
    if (reply.used !== undefined) {
      this.#reported = bytes;
      return reply.used;
    }
    this.#local.open(instances);
    this.#reported = bytes + instances.reservedBytes;
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

  /** Tells the primary this worker's figure if it changed since the last report. */
  #report(): void {
    const bytes = this.#templateBytes + this.#local.bytes();
    if (bytes === this.#reported) return;
    try {
      this.#channel.call(MEMORY_CALL, { op: "report", bytes } satisfies MemoryRequest);
    } catch (error) {
      // The primary that would count it is gone, and this worker stops on the channel's disconnect.
      if (isDsoError(error) && error.code === ErrorCodes.WORKER_GONE) return;
      throw error;
    }
    this.#reported = bytes;
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

/** The primary's side: the daemon's guest memory over its reference copy and every worker's figure. */
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
        if (request.limit !== null && used + request.reserved > request.limit) return { used };
        figure.bytes += request.reserved;
        return {};
      },
    };
  }

  /** Worker `index`'s process has exited: its sessions and templates are gone with it. */
  dropWorker(index: number): void {
    this.#workers.delete(index);
  }
}
