/**
 * Recycles the linear memories of unloaded instances.
 *
 * A new WebAssembly.Memory costs V8 a 10 GiB address-space reservation, and
 * V8 answers a churn of them with full garbage collections to give the
 * reservations back (measured on this project's bench machine: VmSize peaked
 * at 0.8–2.1 TB until a GC ran); in an insmod/rmmod cycle that was a third of the time. A memory
 * whose instance can never run again is as good as new once it is zeroed, so
 * the host keeps a few and hands them to the next load that asks for the same
 * limits.
 *
 * The caller decides when an instance can never run again (ModuleHost: no
 * session holds it, no module is bound to it, no export of it was handed
 * out); the pool only keeps what it is given clean and bounded.
 */

export interface MemoryLimits {
  /** Pages the memory starts with. */
  readonly initial: number;
  /** Pages it may grow to: its cap. */
  readonly maximum: number;
}

const PAGE_BYTES = 65_536;

/** Few enough to keep the pool's resident memory small, enough to serve a reload of a large configuration. */
export const MEMORY_POOL_LIMITS = { memories: 64, bytes: 8 * 1024 * 1024 } as const;

function keyOf(limits: MemoryLimits): string {
  return `${limits.initial}:${limits.maximum}`;
}

export class MemoryPool {
  readonly #free = new Map<string, WebAssembly.Memory[]>();
  #count = 0;
  #bytes = 0;

  /** Number of memories waiting for reuse. */
  get size(): number {
    return this.#count;
  }

  /** A zeroed memory of exactly these limits: a recycled one when there is one, else a new one. */
  acquire(limits: MemoryLimits): WebAssembly.Memory {
    const recycled = this.#free.get(keyOf(limits))?.pop();
    if (recycled === undefined) return new WebAssembly.Memory(limits);
    this.#count--;
    this.#bytes -= recycled.buffer.byteLength;
    return recycled;
  }

  /**
   * Takes back the memory of an instance that will never run again. A memory
   * that grew is left to the garbage collector: reusing it would hand the next
   * module more than it asked for, and zeroing it would cost more than a new one.
   */
  release(memory: WebAssembly.Memory, limits: MemoryLimits): void {
    const bytes = memory.buffer.byteLength;
    if (bytes !== limits.initial * PAGE_BYTES) return;
    if (this.#count >= MEMORY_POOL_LIMITS.memories || this.#bytes + bytes > MEMORY_POOL_LIMITS.bytes) return;
    // Zeroed now, not at reuse: nothing one module wrote waits in the pool for the next. A memset of the whole
    // memory costs less than finding the blocks that were written, and the pool holds few memories.
    new Uint8Array(memory.buffer).fill(0);
    const key = keyOf(limits);
    let free = this.#free.get(key);
    if (free === undefined) {
      free = [];
      this.#free.set(key, free);
    }
    free.push(memory);
    this.#count++;
    this.#bytes += bytes;
  }
}
