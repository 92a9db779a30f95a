/**
 * An instance's state at one moment, as a forked proftpd child inherits its
 * parent's: the bytes of its linear memory and the values of its mutable
 * globals (Wizer's snapshot). The binary was rewritten at compile time so
 * JavaScript can reach both (host/wasm/instance-state-exports.ts); a fresh
 * instance of the same compiled module, its start function stripped, becomes
 * a copy of the original once the snapshot is restored into it, without
 * running any of its code.
 */
import type { InstanceStateLayout } from "./types.js";
import type { ByteRange } from "../wasm/types.js";

const PAGE_BYTES = 65_536;

export interface InstanceSnapshot {
  /** The memory's size in pages (0 when the instance has none). */
  readonly pages: number;
  /**
   * The memory's bytes up to the last one that is not zero, or to the end of
   * the data segments, whichever is further: the rest is zero in the
   * snapshotted memory and in the zeroed memory it is restored into, while
   * instantiation writes the data segments again and they must be overwritten.
   */
  readonly bytes: Uint8Array;
  /** The mutable globals' values, in the layout's order. */
  readonly globals: ReadonlyArray<number | bigint>;
}

/** The memory an instance's state lives in: the one the host gave it, or the one it defines. */
export function stateMemory(
  instance: WebAssembly.Instance,
  imported: WebAssembly.Memory | undefined,
  layout: InstanceStateLayout,
): WebAssembly.Memory | undefined {
  if (imported !== undefined) return imported;
  const defined = layout.memory === undefined ? undefined : instance.exports[layout.memory];
  return defined instanceof WebAssembly.Memory ? defined : undefined;
}

/**
 * Where instantiation may write memory: the end of the data segments when
 * every one of them lands at a constant address, else anywhere (a segment
 * placed by a global, or a passive one, is not located before run time).
 */
export function dataSegmentsEnd(staticData: readonly ByteRange[], dataBytes: number): number {
  let located = 0;
  let end = 0;
  for (const range of staticData) {
    located += range.end - range.start;
    end = Math.max(end, range.end);
  }
  return located === dataBytes ? end : Number.POSITIVE_INFINITY;
}

/** Index one past the last byte that is not zero, scanning backwards a word at a time. */
function usedLength(memory: Uint8Array): number {
  const words = new BigUint64Array(memory.buffer, memory.byteOffset, memory.byteLength >>> 3);
  let word = words.length;
  while (word > 0 && words[word - 1] === 0n) word--;
  let end = word * 8;
  while (end > 0 && memory[end - 1] === 0) end--;
  return end;
}

function global(instance: WebAssembly.Instance, name: string): WebAssembly.Global {
  const value = instance.exports[name];
  if (!(value instanceof WebAssembly.Global)) throw new Error(`instance state export '${name}' is not a global`);
  return value;
}

/** Copies an instance's state; `dataEnd` is where its data segments end. */
export function takeSnapshot(
  instance: WebAssembly.Instance,
  memory: WebAssembly.Memory | undefined,
  layout: InstanceStateLayout,
  dataEnd: number,
): InstanceSnapshot {
  const globals = layout.globals.map((name) => global(instance, name).value as number | bigint);
  if (memory === undefined) return { pages: 0, bytes: new Uint8Array(0), globals };
  const view = new Uint8Array(memory.buffer);
  const end = Math.min(view.byteLength, Math.max(usedLength(view), dataEnd));
  return { pages: view.byteLength / PAGE_BYTES, bytes: view.slice(0, end), globals };
}

/** Makes a fresh instance (whose memory is zeroed past its data segments) a copy of the snapshotted one. */
export function restoreSnapshot(
  instance: WebAssembly.Instance,
  memory: WebAssembly.Memory | undefined,
  layout: InstanceStateLayout,
  snapshot: InstanceSnapshot,
): void {
  if (memory !== undefined) {
    const pages = memory.buffer.byteLength / PAGE_BYTES;
    if (snapshot.pages > pages) memory.grow(snapshot.pages - pages);
    new Uint8Array(memory.buffer).set(snapshot.bytes);
  }
  for (let i = 0; i < layout.globals.length; i++) {
    global(instance, layout.globals[i] as string).value = snapshot.globals[i];
  }
}
