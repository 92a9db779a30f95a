/**
 * ModuleMemoryTotal across session workers (host/cluster/remote-memory.ts):
 * two ModuleHosts stand for two workers, each with a RemoteSessionMemory whose
 * calls cross as frames to one MemoryService, and a third host is the
 * primary's reference copy. Sessions come from acquireModules and run their
 * commands as the FTP server runs them; the deferred refresh runs when the
 * test says, as it would once the command's synchronous work is done. The
 * same path through a real worker process is in
 * test/integration/session-instances.test.ts (ModuleMemoryTotal).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LEASE_CHUNK,
  LEASE_FLOOR,
  MEMORY_CALL,
  MemoryService,
  RemoteSessionMemory,
} from "../../../host/cluster/remote-memory.js";
import { FrameDecoder, encodeFrame } from "../../../host/cluster/sync-channel.js";
import { DsoError, ErrorCodes } from "../../../host/errors.js";
import { HandlerResults } from "../../../host/modules/module-api.js";
import { ModuleHost } from "../../../host/modules/module-host.js";
import type { ModuleHostOptions, ModuleSet } from "../../../host/modules/module-host.js";
import { dsoFailure } from "../../helpers/failure.js";
import { settled, testCommand, testSession } from "../../helpers/session.js";
import { removeModuleDirs, wat, writeModuleDir } from "../../helpers/wat.js";

const PAGE = 65_536;

let dir: string;

beforeAll(async () => {
  dir = writeModuleDir({
    // A page of memory; GROW adds one, NOOP leaves it.
    "mod_mem.wasm": await wat(`(module
      (import "env" "memory" (memory 1 4))
      (global (export "mem_module") i32 (i32.const 0x20))
      (func (export "cmd_GROW") (result i32) (drop (memory.grow (i32.const 1))) (i32.const 1))
      (func (export "cmd_NOOP") (result i32) (i32.const 1)))`),
  });
});

afterAll(() => removeModuleDirs());

/** What crosses the socketpair: a frame, decoded as the other side does. */
function crossed(value: unknown): unknown {
  const [payload] = new FrameDecoder().push(encodeFrame(value));
  return payload === undefined ? undefined : (JSON.parse(payload.toString("utf8")) as unknown);
}

function memHost(options: Partial<ModuleHostOptions> = {}): ModuleHost {
  const host = new ModuleHost({ modulePath: dir, ...options });
  host.loadModule("mod_mem.c");
  return host;
}

interface Worker {
  readonly host: ModuleHost;
  readonly memory: RemoteSessionMemory;
  /** The calls this worker made to the primary. */
  readonly calls: unknown[];
  /** Runs the refreshes deferred until the current work is done. */
  settle(): void;
  /** A new session's module set. */
  open(): ModuleSet;
  /** Runs `command`'s CMD handler in the session of `set`. */
  run(set: ModuleSet, command: string): void;
}

function worker(service: MemoryService, index: number, limit: number): Worker {
  const handler = service.handlers(index)[MEMORY_CALL];
  const calls: unknown[] = [];
  const deferred: Array<() => void> = [];
  const channel = {
    call(type: string, body: unknown): unknown {
      expect(type).toBe(MEMORY_CALL);
      calls.push(body);
      return (crossed({ value: handler?.(crossed(body) as never) }) as { value?: unknown }).value;
    },
  };
  let host: ModuleHost | undefined;
  const templates = (): number => host?.templateMemoryBytes() ?? 0;
  const memory = new RemoteSessionMemory(channel, templates, (task) => deferred.push(task));
  host = memHost({ sessionMemory: memory, memoryTotal: limit });
  memory.refresh();
  const states = new Map<ModuleSet, ReturnType<typeof testSession>>();
  return {
    host,
    memory,
    calls,
    settle: () => {
      for (const task of deferred.splice(0)) task();
    },
    open: () => {
      const set = host.acquireModules();
      states.set(set, testSession(set.modules, "alice", { instances: set.instances }));
      return set;
    },
    run: (set, command) => {
      const handler = set.modules.flatMap((m) => m.commands).find((h) => h.command === command && h.phase === "CMD");
      const state = states.get(set);
      if (handler === undefined || state === undefined) throw new Error(`no CMD handler for ${command}`);
      expect(settled(handler.run(testCommand([command]), state))).toBe(HandlerResults.HANDLED);
    },
  };
}

const reached = (limit: number, used: number): string =>
  `ModuleMemoryTotal (${limit} bytes) reached: guest memory is ${used} bytes, a session needs ${PAGE} more`;

/** The primary's reference host and two workers, all with mod_mem.c loaded, under `limit`. */
function daemon(limit: number): { reference: ModuleHost; service: MemoryService; one: Worker; two: Worker } {
  const reference = memHost();
  const service = new MemoryService(() => reference.templateMemoryBytes());
  return { reference, service, one: worker(service, 1, limit), two: worker(service, 2, limit) };
}

describe("ModuleMemoryTotal across session workers", () => {
  it("is one bound for every worker: the primary's copy, each worker's, and every worker's sessions", () => {
    // The three copies of mod_mem.c and two sessions' reservations; not a third.
    const { service, one, two } = daemon(5 * PAGE);
    expect(service.bytes()).toBe(3 * PAGE);
    const a = one.open();
    const b = two.open();
    expect(service.bytes()).toBe(5 * PAGE);
    expect(dsoFailure(() => one.open())).toEqual({
      code: ErrorCodes.MEMORY_TOTAL,
      message: reached(5 * PAGE, 5 * PAGE),
    });
    expect(dsoFailure(() => two.open()).message).toBe(reached(5 * PAGE, 5 * PAGE));
    // A worker's own figures are its sessions and its copy only.
    expect([one.memory.sessions, one.host.guestMemoryBytes()]).toEqual([1, 2 * PAGE]);
    b.release();
    expect(service.bytes()).toBe(4 * PAGE);
    const c = one.open();
    expect([one.memory.sessions, service.bytes()]).toEqual([2, 5 * PAGE]);
    a.release();
    c.release();
    expect(service.bytes()).toBe(3 * PAGE);
  });

  it("counts a session's growth in every worker once its command has returned, with one call", () => {
    const { service, one, two } = daemon(6 * PAGE);
    const a = one.open();
    one.run(a, "GROW");
    one.run(a, "GROW");
    // Counted when the work that ran guest code is done: one refresh queued however many commands ran.
    expect(service.bytes()).toBe(4 * PAGE);
    const before = one.calls.length;
    one.settle();
    expect(one.calls.slice(before)).toEqual([{ op: "report", bytes: 4 * PAGE }]);
    expect(service.bytes()).toBe(6 * PAGE);
    expect(dsoFailure(() => two.open()).message).toBe(reached(6 * PAGE, 6 * PAGE));
    // Guest code that grew nothing costs no call.
    one.run(a, "NOOP");
    one.settle();
    expect(one.calls.length).toBe(before + 1);
    a.release();
    expect(service.bytes()).toBe(3 * PAGE);
    expect(two.open().instances).toBeDefined();
  });

  it("admits within a worker's lease with no call, and gives back its headroom as sessions end", () => {
    // Far from the bound: the first start takes a lease with LEASE_CHUNK of headroom, the next ones fit in it.
    const limit = 4 * PAGE + 2 * LEASE_FLOOR;
    const { service, one, two } = daemon(limit);
    const before = one.calls.length;
    const [a, b, c] = [one.open(), one.open(), one.open()];
    expect(one.calls.slice(before)).toEqual([{ op: "admit", bytes: PAGE, reserved: PAGE, limit }]);
    expect(service.bytes()).toBe(4 * PAGE + LEASE_CHUNK);
    // Each session ended frees room in the lease; past the headroom granted, the rest goes back in one call.
    a.release();
    b.release();
    expect(one.calls.length).toBe(before + 1);
    c.release();
    expect(one.calls.slice(before + 1)).toEqual([{ op: "report", bytes: PAGE + LEASE_CHUNK }]);
    expect(service.bytes()).toBe(3 * PAGE + LEASE_CHUNK);
    one.open().release();
    expect(one.calls.length).toBe(before + 2);
    // Near the bound a lease has no headroom: every start asks, as the other worker's does.
    const near = daemon(4 * PAGE + LEASE_FLOOR - 1);
    near.one.open();
    expect(near.service.bytes()).toBe(4 * PAGE);
    expect(two.open().instances).toBeDefined();
  });

  it("forgets a worker that exited, and refuses a malformed call", () => {
    const { service, one, two } = daemon(5 * PAGE);
    two.open();
    one.open();
    expect(service.bytes()).toBe(5 * PAGE);
    service.dropWorker(2);
    expect(service.bytes()).toBe(3 * PAGE);
    expect(one.open().instances).toBeDefined();
    expect(() => service.handlers(3)[MEMORY_CALL]?.({ op: "admit", bytes: -1 } as never)).toThrow(
      'malformed memory call {"op":"admit","bytes":-1}',
    );
  });

  it("lets a session end when the primary is gone, and raises any other failure", () => {
    let failure: Error = new DsoError(ErrorCodes.WORKER_GONE, "the primary is gone: the primary closed the channel");
    let bytes = 0;
    const memory = new RemoteSessionMemory(
      {
        call: () => {
          throw failure;
        },
      },
      () => bytes,
    );
    expect(() => memory.refresh()).not.toThrow();
    failure = new Error('no handler for the sync call "memory"');
    bytes = PAGE;
    expect(() => memory.refresh()).toThrow('no handler for the sync call "memory"');
  });
});
