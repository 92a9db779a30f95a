/**
 * WAT fixtures for tests: inline text compiled with wabt (the `wabt` dev
 * dependency), so a test states the exact imports and exports it exercises
 * instead of depending on what AssemblyScript happens to emit. And a temporary
 * module directory to load such binaries from, as ModulePath would.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import wabtInit from "wabt";

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
type Features = NonNullable<Parameters<Wabt["parseWat"]>[2]> & { readonly multi_memory?: boolean };

/** Instantiating wabt's own wasm build takes tens of milliseconds; do it once per test file. */
let wabtInstance: Promise<Wabt> | undefined;

function getWabt(): Promise<Wabt> {
  wabtInstance ??= wabtInit();
  return wabtInstance;
}

/**
 * Compiles WebAssembly text to a binary. Multi-value, mutable globals, bulk
 * memory and reference types are on (wabt's defaults); pass `features` for
 * proposals such as threads (shared memories) or exceptions (tags).
 * wabt's feature flags are typed for its documented set only; others it knows
 * (multi_memory) are passed through as is.
 */
export async function wat(
  text: string,
  features: Features = {},
  options: { readonly validate?: boolean } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await getWabt();
  const module = wabt.parseWat("fixture.wat", text, features);
  try {
    module.resolveNames();
    // wabt.js's validate() ignores the features given to parseWat (a shared
    // memory fails with "memories may not be shared" even with threads on), so
    // text that needs a proposal is only parsed; the engine validates it on load.
    // `validate: false` makes binaries the engine must refuse (a bad function body).
    if (Object.keys(features).length === 0 && options.validate !== false) module.validate();
    const { buffer } = module.toBinary({});
    // Copy out of wabt's heap into a buffer of our own.
    return new Uint8Array(buffer);
  } finally {
    module.destroy();
  }
}

/** Directories made by `writeModuleDir`, removed by `removeModuleDirs`. */
const created: string[] = [];

/** Writes `{ "mod_x.wasm": bytes, ... }` into a fresh temporary directory and returns its absolute path. */
export function writeModuleDir(files: Readonly<Record<string, Uint8Array>>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wasm-dso-test-"));
  for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes);
  created.push(dir);
  return dir;
}

/** Removes every directory `writeModuleDir` made (call from afterAll). */
export function removeModuleDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}
