/**
 * Where module and library binaries come from (wasmtime's `Module::from_file`
 * with its code cache): a file is opened and checked safely (module-file.ts),
 * its integrity pin and load limits checked, and its content compiled once.
 * Owns the caches: compiled modules by content hash, and content hashes by
 * file identity, so an unchanged file is neither read nor hashed again.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { DsoError, ErrorCodes, isDsoError } from "../errors.js";
import type { ErrorCode } from "../errors.js";
import { readModuleShape } from "../wasm/reader.js";
import { loadLimitProblem, overLimitText } from "../wasm/limits.js";
import type { LoadLimits } from "../wasm/limits.js";
import type { ModuleShape } from "../wasm/types.js";
import { dsoDebug } from "./dso-debug.js";
import type { DebugLine } from "./dso-debug.js";
import { readModuleFile, realModulePath } from "./module-file.js";
import type { UnitPolicy } from "./policy.js";
import type { InstanceStateLayout, UnitKind } from "./types.js";
import { exposeInstanceState } from "../wasm/instance-state-exports.js";

/**
 * Compiled modules kept for reloading: enough for every module of a large
 * configuration to be rmmod'ed and insmod'ed again without recompiling, while
 * a daemon that loads many rebuilt versions does not keep them all.
 */
const COMPILED_CACHE_SIZE = 256;

/** A binary ready to be linked: compiled, with the shape its checks read. */
export interface CompiledBinary {
  readonly compiled: WebAssembly.Module;
  readonly shape: ModuleShape;
  /** The binary's size in bytes. */
  readonly size: number;
  /** Its SHA-256, hex. */
  readonly hash: string;
  /** Where an instance's state is reachable (the compiled binary is the rewritten one). */
  readonly instanceState: InstanceStateLayout;
}

/** What to open: a unit's name (for messages and policy), its file, and where the file may be. */
export interface BinaryRequest {
  readonly kind: UnitKind;
  readonly name: string;
  readonly file: string;
  readonly explicit: boolean;
}

interface ReadBinary {
  readonly bytes: Uint8Array<ArrayBuffer> | undefined;
  readonly hash: string;
  readonly shape: ModuleShape | undefined;
}

/** A binary refused for what its file holds: the message names the file, `problem` says what is wrong. */
export class BinaryError extends DsoError {
  readonly file: string;
  readonly problem: string;

  constructor(code: ErrorCode, file: string, problem: string, cause: unknown) {
    super(code, `'${file}': ${problem}`, { cause });
    this.file = file;
    this.problem = problem;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The binary's shape, read within `limits`: a refusal names the unit, a malformed binary its file. */
function readShape(name: string, file: string, bytes: Uint8Array, limits: LoadLimits): ModuleShape {
  try {
    return readModuleShape(bytes, limits);
  } catch (cause) {
    if (isDsoError(cause) && cause.code === ErrorCodes.LOAD_LIMIT)
      throw new DsoError(cause.code, `${name}: ${cause.message}`, { cause });
    throw isDsoError(cause)
      ? new BinaryError(cause.code, file, cause.message, cause)
      : new BinaryError(ErrorCodes.BAD_WASM, file, "not a WebAssembly binary", cause);
  }
}

export class ModuleCompiler {
  /** Compiled binaries by content hash, least recently used first; bounded so rebuilt modules do not pile up. */
  readonly #compiled = new Map<string, CompiledBinary>();
  /** Content hashes by file identity: a file unchanged since it was read is not read and hashed again. */
  readonly #hashByIdentity = new Map<string, string>();
  /** The module path's real path, resolved once per ModulePath. */
  #modulePathReal: string | undefined;

  /** ModulePath changed: the next load resolves its real path again. */
  forgetModulePath(): void {
    this.#modulePathReal = undefined;
  }

  /**
   * Opens, checks and compiles a unit's binary. LoadFile names its file
   * itself; everything else comes from `modulePath` and must stay in it.
   * `onRead` runs once the file is read and checked, before it is compiled.
   */
  open(request: BinaryRequest, policy: UnitPolicy, modulePath: string, onRead?: () => void): CompiledBinary {
    const fromModulePath = !(request.kind === "library" && request.explicit);
    const within = fromModulePath ? (this.#modulePathReal ??= realModulePath(modulePath)) : undefined;
    const read = this.#read(request, policy, within);
    onRead?.();
    return this.#compile(request, read, policy.loadLimits);
  }

  /**
   * Reads a unit's file safely and checks its integrity pin. Returns no bytes
   * when the file is unchanged since its content was compiled. A file over
   * its BinarySize limit is refused unread, and a fresh binary's sections are
   * checked against the other load limits before it is hashed: a bomb costs a
   * stat and a read, not a hash and a compile.
   */
  #read(request: BinaryRequest, policy: UnitPolicy, within: string | undefined): ReadBinary {
    const known = (identity: string): boolean => {
      const hash = this.#hashByIdentity.get(identity);
      return hash !== undefined && this.#compiled.has(hash);
    };
    const limit = policy.loadLimits.binarySize;
    const refuseSize = (size: number): DsoError | undefined =>
      size > limit
        ? new DsoError(ErrorCodes.LOAD_LIMIT, `${request.name}: ${overLimitText("binarySize", size, limit)}`)
        : undefined;
    const file = readModuleFile(request.file, {
      uid: process.geteuid?.() ?? 0,
      known,
      refuseSize,
      ...(within !== undefined && { within }),
    });
    const bytes = file.bytes;
    const shape = bytes === undefined ? undefined : readShape(request.name, request.file, bytes, policy.loadLimits);
    const hash = bytes === undefined ? (this.#hashByIdentity.get(file.identity) as string) : sha256(bytes);
    if (bytes !== undefined) this.#hashByIdentity.set(file.identity, hash);
    const pinned = policy.sha256;
    if (pinned !== undefined && pinned !== hash) {
      throw new DsoError(
        ErrorCodes.INTEGRITY,
        `'${request.file}' has SHA-256 ${hash}, but ${request.name} is pinned to ${pinned}`,
      );
    }
    return { bytes, hash, shape };
  }

  /**
   * Compiles a binary whose shape was read, unless its content is compiled
   * already. A cached compile is checked against `limits` again, since they
   * may differ between the units that load it.
   */
  #compile(request: BinaryRequest, read: ReadBinary, limits: LoadLimits): CompiledBinary {
    const cached = this.#compiled.get(read.hash);
    if (cached !== undefined) {
      // Most recently used goes last.
      this.#compiled.delete(read.hash);
      this.#compiled.set(read.hash, cached);
      const over = loadLimitProblem(cached.shape.footprint, limits);
      if (over !== undefined) throw new DsoError(ErrorCodes.LOAD_LIMIT, `${request.name}: ${over}`);
      return cached;
    }
    const { bytes, shape } = read;
    if (bytes === undefined || shape === undefined)
      throw new Error(`'${request.file}': compiled module ${read.hash} left the cache`);
    let compiled: WebAssembly.Module;
    let instanceState: InstanceStateLayout;
    try {
      // Sessions fork instances of it (session-instances.ts): its globals and memory must be reachable.
      const exposed = exposeInstanceState(bytes);
      instanceState = {
        globals: exposed.globals,
        memory: exposed.memory,
        start: exposed.start,
        unsnapshotable: exposed.unsnapshotable,
      };
      compiled = new WebAssembly.Module(exposed.bytes);
    } catch (cause) {
      if (isDsoError(cause)) throw new BinaryError(cause.code, request.file, cause.message, cause);
      throw new BinaryError(ErrorCodes.BAD_WASM, request.file, (cause as Error).message, cause);
    }
    const entry: CompiledBinary = { compiled, shape, size: bytes.byteLength, hash: read.hash, instanceState };
    this.#compiled.set(read.hash, entry);
    if (this.#compiled.size > COMPILED_CACHE_SIZE) {
      const oldest = this.#compiled.keys().next().value as string;
      this.#compiled.delete(oldest);
    }
    return entry;
  }
}

/**
 * dso_load_module's DEBUG7 line for a module file just opened, with its
 * modification time; none when stat() fails, as proftpd prints it only then.
 */
export function loadedLine(stem: string, file: string): DebugLine | undefined {
  try {
    return dsoDebug.loaded(stem, file, statSync(file).mtime);
  } catch {
    return undefined;
  }
}
