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

/** A run of memory a snapshot restores, at its offset. */
export interface MemoryChunk {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

export interface InstanceSnapshot {
  /** The memory's size in pages (0 when the instance has none). */
  readonly pages: number;
  /**
   * The memory's blocks (BLOCK_BYTES each) that are not all zero, and every
   * block below the end of the data segments, merged into runs: the rest is
   * zero in the snapshotted memory and in the zeroed memory it is restored
   * into, while instantiation writes the data segments again and they must be
   * overwritten. A block never written is never touched in the copy: its page
   * costs the session no memory (AssemblyScript's allocator leaves most of a
   * 64 KiB memory untouched between its header and its tail).
   */
  readonly chunks: readonly MemoryChunk[];
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

/** The granularity of a snapshot's copy: the operating system's page. */
export const BLOCK_BYTES = 4096;

/**
 * True when the words [word, end) have a byte that is not zero. 32-bit words:
 * a 64-bit one would be read as a BigInt, an allocation per word.
 */
function blockUsed(words: Uint32Array, word: number, end: number): boolean {
  for (let i = word; i < end; i++) if (words[i] !== 0) return true;
  return false;
}

/** The runs of blocks to copy: those not all zero, and all below `dataEnd`. */
function usedChunks(view: Uint8Array, dataEnd: number): MemoryChunk[] {
  const words = new Uint32Array(view.buffer, view.byteOffset, view.byteLength >>> 2);
  const perBlock = BLOCK_BYTES >>> 2;
  const chunks: MemoryChunk[] = [];
  let start = -1;
  for (let offset = 0; offset <= view.byteLength; offset += BLOCK_BYTES) {
    const used =
      offset < view.byteLength &&
      (offset < dataEnd || blockUsed(words, offset >>> 2, Math.min(words.length, (offset >>> 2) + perBlock)));
    if (used && start < 0) start = offset;
    if (!used && start >= 0) {
      chunks.push({ offset: start, bytes: view.slice(start, Math.min(offset, view.byteLength)) });
      start = -1;
    }
  }
  return chunks;
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
  if (memory === undefined) return { pages: 0, chunks: [], globals };
  const view = new Uint8Array(memory.buffer);
  return { pages: view.byteLength / PAGE_BYTES, chunks: usedChunks(view, dataEnd), globals };
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
    const view = new Uint8Array(memory.buffer);
    for (const chunk of snapshot.chunks) view.set(chunk.bytes, chunk.offset);
  }
  for (let i = 0; i < layout.globals.length; i++) {
    global(instance, layout.globals[i] as string).value = snapshot.globals[i];
  }
}
