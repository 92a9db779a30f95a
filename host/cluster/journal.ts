/**
 * What the primary and its session workers say to each other about the
 * module set (module-sync.ts asks, worker-modules.ts answers), as values:
 * the journal of module changes since the last configuration generation, the
 * bodies of the protocol's requests and replies, and the merge of the
 * workers' session counts into the reference host's `lsmod -v` units.
 *
 * The journal is how a worker that starts late gets the same module set as the
 * others: it builds the generation from the config file, as proftpd's master
 * parses it, then replays every insmod and rmmod made since, in order, and
 * its instances take the state of the reference's (wire-state.ts). A
 * committed SIGHUP starts a new generation with an empty journal.
 *
 * Pure: nothing here touches a process or a host.
 */
import type { StoreCall } from "../abi/store-replay.js";
import type { ControlsCaller } from "../controls/exchange.js";
import type { LoadedUnitInfo } from "../modules/module-host.js";
import { fromWireCall } from "./remote-store.js";
import type { WireInstanceState } from "./wire-state.js";

/** One module change made with the controls, in two phases: insmod (LoadModule at run time) or rmmod. */
export interface ModuleOp {
  readonly kind: "insmod" | "rmmod";
  readonly name: string;
}

/** A module its faults would have unloaded, disabled instead: other modules are bound to it (fault-sync.ts). */
export interface DisableOp {
  readonly kind: "disable";
  readonly name: string;
}

export type JournalEntry = ModuleOp | DisableOp;

/** The module changes since the current generation was built, oldest first. */
export type Journal = readonly JournalEntry[];

/** What a worker is started with (the pool's "init" request): enough to build the module set every worker has. */
export interface WorkerInit {
  readonly configFile: string;
  readonly debugLevel: number;
  readonly journal: Journal;
  /** Compiled-in modules an rmmod took out before the current generation was built (they stay out across SIGHUP). */
  readonly removedCompiledIn: readonly string[];
  /** The current generation's number: 1 at start, one more per committed SIGHUP. */
  readonly generation: number;
  /**
   * The state of the reference host's guest instances once the journal is
   * applied (what the modules' control actions changed in them): the worker's
   * instances take it before it serves.
   */
  readonly states: readonly WireInstanceState[];
}

/** The part of WorkerInit the module coordinator owns; the pool adds the config file and the debug level. */
export type ModuleState = Pick<WorkerInit, "journal" | "removedCompiledIn" | "generation" | "states">;

/** One unit's counts in one worker, for `lsmod -v`. */
export interface UnitCounts {
  readonly name: string;
  readonly sessions: number;
  readonly instances?: { readonly count: number; readonly memoryBytes: number };
}

/** A worker's answer to "status". */
export interface StatusReply {
  readonly sessions: number;
  readonly generation: number;
  readonly units: readonly UnitCounts[];
}

/** The body of "module-prepare". */
export interface PrepareBody {
  readonly seq: number;
  readonly op: ModuleOp;
}

/** The body of "generation-prepare". */
export interface GenerationBody {
  readonly seq: number;
  readonly generation: number;
}

/**
 * The body of "control": a guest control's words (the action first), who
 * asked, and the shared-store operations the reference's run made, which
 * answer the worker's (store-replay.ts; they cross as WireStoreCalls).
 */
export interface ControlBody {
  readonly argv: readonly string[];
  readonly caller: ControlsCaller;
  readonly store: readonly StoreCall[];
}

/** The words of a change, as notes and log lines name it: `insmod mod_x.c`. */
export function opText(op: JournalEntry): string {
  return `${op.kind} ${op.name}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A message the other side of our own protocol could not have sent: a bug, never an operator's doing. */
function malformed(what: string): Error {
  return new Error(`malformed ${what} on the session worker channel`);
}

function asModuleOp(value: unknown): ModuleOp {
  if (isRecord(value) && (value.kind === "insmod" || value.kind === "rmmod") && typeof value.name === "string") {
    return { kind: value.kind, name: value.name };
  }
  throw malformed("module change");
}

/** The body of "module-disable": the module to disable. */
export function asDisableOp(value: unknown): DisableOp {
  if (isRecord(value) && value.kind === "disable" && typeof value.name === "string") {
    return { kind: value.kind, name: value.name };
  }
  throw malformed("module disable");
}

export function asJournal(value: unknown): Journal {
  if (!Array.isArray(value)) throw malformed("journal");
  return value.map((entry: unknown) =>
    isRecord(entry) && entry.kind === "disable" ? asDisableOp(entry) : asModuleOp(entry),
  );
}

/** The `seq` of a commit or abort body. */
export function asSeq(body: unknown): number {
  if (isRecord(body) && isCount(body.seq)) return body.seq;
  throw malformed("sequence number");
}

export function asPrepareBody(body: unknown): PrepareBody {
  return { seq: asSeq(body), op: asModuleOp(isRecord(body) ? body.op : undefined) };
}

export function asGenerationBody(body: unknown): GenerationBody {
  if (isRecord(body) && isCount(body.generation)) return { seq: asSeq(body), generation: body.generation };
  throw malformed("generation");
}

function isCaller(value: unknown): value is ControlsCaller {
  return (
    isRecord(value) &&
    typeof value.uid === "number" &&
    typeof value.gid === "number" &&
    typeof value.pid === "number" &&
    typeof value.user === "string" &&
    typeof value.group === "string"
  );
}

export function asControlBody(body: unknown): ControlBody {
  if (!isRecord(body) || !Array.isArray(body.argv) || !body.argv.every((word) => typeof word === "string")) {
    throw malformed("control");
  }
  if (!isCaller(body.caller)) throw malformed("control caller");
  const { uid, gid, pid, user, group } = body.caller;
  const store = Array.isArray(body.store) ? body.store.map(fromWireCall) : [undefined];
  if (!store.every((call) => call !== undefined)) throw malformed("control store operations");
  return { argv: body.argv, caller: { uid, gid, pid, user, group }, store };
}

function asUnitCounts(value: unknown): UnitCounts {
  if (!isRecord(value) || typeof value.name !== "string" || !isCount(value.sessions)) throw malformed("unit");
  const { instances } = value;
  if (instances === undefined) return { name: value.name, sessions: value.sessions };
  if (!isRecord(instances) || !isCount(instances.count) || !isCount(instances.memoryBytes)) {
    throw malformed("unit instances");
  }
  return {
    name: value.name,
    sessions: value.sessions,
    instances: { count: instances.count, memoryBytes: instances.memoryBytes },
  };
}

export function asStatusReply(value: unknown): StatusReply {
  if (!isRecord(value) || !isCount(value.sessions) || !isCount(value.generation) || !Array.isArray(value.units)) {
    throw malformed("status");
  }
  return { sessions: value.sessions, generation: value.generation, units: value.units.map(asUnitCounts) };
}

/** A worker's counts for "status": its host's units, without what only the reference host shows. */
export function unitCounts(units: readonly LoadedUnitInfo[]): UnitCounts[] {
  return units.map(({ name, sessions, instances }) => ({
    name,
    sessions,
    ...(instances !== undefined && { instances: { count: instances.count, memoryBytes: instances.memoryBytes } }),
  }));
}

/**
 * `lsmod -v`'s units: the reference host's (files, exports, bindings, which
 * every worker shares), with the sessions and per-session instances of every
 * worker added to the reference's own. A unit a worker does not have adds
 * nothing; a unit only a worker has is not listed (the reference is the set).
 */
export function mergeUnitCounts(units: readonly LoadedUnitInfo[], replies: readonly StatusReply[]): LoadedUnitInfo[] {
  return units.map((unit) => {
    let { sessions } = unit;
    let instances = unit.instances;
    for (const reply of replies) {
      const counts = reply.units.find((candidate) => candidate.name === unit.name);
      if (counts === undefined) continue;
      sessions += counts.sessions;
      if (counts.instances !== undefined) {
        instances = {
          count: (instances?.count ?? 0) + counts.instances.count,
          memoryBytes: (instances?.memoryBytes ?? 0) + counts.instances.memoryBytes,
        };
      }
    }
    return { ...unit, sessions, ...(instances !== undefined && { instances }) };
  });
}
