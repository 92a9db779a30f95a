/**
 * What a unit's memory cap (ModuleMemoryLimit) covers: its linear memory and
 * every table it defines or imports. V8 keeps a table's elements on the
 * host's heap, outside any linear memory, so a table without a bound grows
 * the daemon until the kernel kills it (issue #12: `table.grow` of 10 M
 * entries, 16 times, in one command).
 *
 * Every table must declare a maximum, and the tables' maxima, at the bytes V8
 * keeps per element (wasm/limits.ts), come off the cap first; the memory gets
 * what is left, in whole pages. `table.grow` past a declared maximum fails
 * inside the guest (it returns -1, as the spec says), so a table can never
 * cost more than was counted here. As with memories, the host never rewrites
 * a binary's limits: a table that does not fit is refused at load. The bound
 * of a unit's shared store scope comes off the cap the same way
 * (importsSharedData below).
 *
 * Pure: a shape and a cap in, the share out, or a DsoError naming the unit.
 */
import { HOST_MEMORY_SYMBOL, SHARED_DATA_SYMBOLS } from "../abi/host-symbols.js";
import { sharedDataBytes } from "../abi/shared-store.js";
import { DsoError, ErrorCodes } from "../errors.js";
import { GLOBAL_NAMESPACE } from "../linker/resolve.js";
import { TABLE_ELEMENT_BYTES, tableBytes } from "../wasm/limits.js";
import type { ModuleShape, TableType } from "../wasm/types.js";

const PAGE_BYTES = 65_536;

export interface CapShare {
  /** Bytes the unit's tables may reach at their declared maxima. */
  readonly tableBytes: number;
  /** The bound of its shared store scope (shared-store.ts); present only when it imports a pr_shared_* symbol. */
  readonly sharedDataBytes?: number;
  /** Pages left for its linear memory: the cap less its tables and shared data, rounded down to whole pages. */
  readonly memoryPages: number;
}

const PER_ELEMENT = `${TABLE_ELEMENT_BYTES.funcref} bytes per funcref element, ${TABLE_ELEMENT_BYTES.externref} per externref`;

/** `the 255 pages its cap of 256 pages leaves beside its tables (28000 bytes)`, or `its cap of 256 pages`. */
function room(share: CapShare, capPages: number): string {
  const beside = [
    ...(share.tableBytes === 0 ? [] : [`its tables (${share.tableBytes} bytes)`]),
    ...(share.sharedDataBytes === undefined ? [] : [`its shared data (${share.sharedDataBytes} bytes)`]),
  ];
  return beside.length === 0
    ? `its cap of ${capPages} pages`
    : `the ${share.memoryPages} pages its cap of ${capPages} pages leaves beside ${beside.join(" and ")}`;
}

/**
 * The shared store counts against the cap the way tables do: its bound is
 * reserved at load, so memory, tables and shared data together never pass the
 * cap, whatever the guest grows later. Only a direct import counts: a library
 * that wraps the store pays for its own scope.
 */
function importsSharedData(shape: ModuleShape): boolean {
  return shape.imports.some((entry) => entry.module === GLOBAL_NAMESPACE && SHARED_DATA_SYMBOLS.has(entry.name));
}

/**
 * Splits the cap of `name` between its tables, its shared data and its memory;
 * refuses a table without a maximum, tables (and shared data) that do not fit
 * the cap, a memory of its own
 * without a maximum within what is left, and an env.memory import asking for
 * more than is left.
 */
export function shareMemoryCap(name: string, shape: ModuleShape, capPages: number): CapShare {
  const capBytes = capPages * PAGE_BYTES;
  const tables: Array<{ readonly table: TableType; readonly label: string }> = [];
  for (const entry of shape.imports) {
    if (entry.type.kind === "table")
      tables.push({ table: entry.type, label: `imports table '${entry.module}.${entry.name}'` });
  }
  for (const table of shape.definedTables) tables.push({ table, label: "defines a table" });
  let total = 0;
  for (const { table, label } of tables) {
    if (table.limits.max === undefined) {
      throw new DsoError(
        ErrorCodes.MEMORY_LIMIT,
        `${name} ${label} with no maximum; declare one within its memory cap of ${capBytes} bytes (${PER_ELEMENT})`,
      );
    }
    total += tableBytes(table.element, table.limits.max);
  }
  if (total > capBytes) {
    throw new DsoError(
      ErrorCodes.MEMORY_LIMIT,
      `${name}'s tables may grow to ${total} bytes (${PER_ELEMENT}), over its memory cap of ${capBytes} bytes`,
    );
  }
  const shared = importsSharedData(shape) ? sharedDataBytes(capPages) : 0;
  if (total + shared > capBytes) {
    throw new DsoError(
      ErrorCodes.MEMORY_LIMIT,
      `${name}'s shared data (${shared} bytes) does not fit beside its tables (${total} bytes) in its memory cap of ${capBytes} bytes`,
    );
  }
  const memoryPages = Math.floor((capBytes - total - shared) / PAGE_BYTES);
  const share: CapShare =
    shared === 0 ? { tableBytes: total, memoryPages } : { tableBytes: total, sharedDataBytes: shared, memoryPages };
  for (const limits of shape.definedMemories) {
    if (limits.max === undefined || limits.max > share.memoryPages) {
      const declared = limits.max === undefined ? "no maximum" : `a maximum of ${limits.max} pages`;
      throw new DsoError(
        ErrorCodes.MEMORY_LIMIT,
        `${name} defines its own memory with ${declared}; import env.memory or declare a maximum within ${room(share, capPages)}`,
      );
    }
  }
  // Without tables or shared data the linker's own check says it (`memory needs N pages, over its cap of M pages`).
  if (share.tableBytes > 0 || shared > 0) {
    for (const entry of shape.imports) {
      if (entry.module === GLOBAL_NAMESPACE && entry.name === HOST_MEMORY_SYMBOL && entry.type.kind === "memory") {
        if (entry.type.limits.min > share.memoryPages) {
          throw new DsoError(
            ErrorCodes.MEMORY_LIMIT,
            `${name}: memory needs ${entry.type.limits.min} pages, over ${room(share, capPages)}`,
          );
        }
      }
    }
  }
  return share;
}
