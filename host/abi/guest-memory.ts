/**
 * The one place that uses @assemblyscript/loader: instantiating a guest and
 * reading and writing AssemblyScript strings in its linear memory. Keeping it
 * here means swapping the loader for generated bindings touches one file.
 */
import { instantiateSync } from "@assemblyscript/loader";
import type { Imports } from "@assemblyscript/loader";
import { DsoError, ErrorCodes } from "../errors.js";

/** String access into one guest instance's memory. */
export interface GuestStrings {
  /** Reads the AssemblyScript string at `ptr`; a bad pointer raises DSO_ERR_GUEST_STRING. */
  read(ptr: number): string;
  /** Allocates `value` as a string in guest memory (the guest must export its runtime). */
  create(value: string): number;
  pin(ptr: number): void;
  unpin(ptr: number): void;
}

interface LoaderExports {
  __getString(ptr: number): string | null;
  __newString(value: string): number;
  __pin(ptr: number): number;
  __unpin(ptr: number): void;
}

export interface InstantiatedGuest {
  readonly instance: WebAssembly.Instance;
  readonly strings: GuestStrings;
}

/**
 * Instantiates a compiled guest with an already resolved import object. The
 * loader adds its default `env.abort`/`env.trace`/`env.seed` only where the
 * import object lacks them; ours always provides them from the host symbol table.
 */
export function instantiateGuest(module: WebAssembly.Module, imports: WebAssembly.Imports): InstantiatedGuest {
  const { instance, exports } = instantiateSync(module, imports as Imports);
  const helpers = exports as unknown as LoaderExports;
  const strings: GuestStrings = {
    read(ptr) {
      try {
        const value = helpers.__getString(ptr);
        if (value === null) throw new Error("null pointer");
        return value;
      } catch (cause) {
        throw new DsoError(ErrorCodes.GUEST_STRING, `pointer ${ptr} is not a string in guest memory`, { cause });
      }
    },
    create(value) {
      return helpers.__newString(value);
    },
    pin(ptr) {
      helpers.__pin(ptr);
    },
    unpin(ptr) {
      helpers.__unpin(ptr);
    },
  };
  return { instance, strings };
}
