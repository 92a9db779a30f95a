import { describe, expect, it } from "vitest";
import { checkGuestAbi, guestAbiProblems } from "../../../host/modules/guest-abi.js";
import { isDsoError } from "../../../host/errors.js";
import { readModuleShape } from "../../../host/wasm/reader.js";
import { wat } from "../../helpers/wat.js";

const MEMORY = `(import "env" "memory" (memory 1))`;
const REPLY = `(import "env" "pr_response_add" (func (param i32 i32)))`;
const ARG = `(import "env" "pr_cmd_arg" (func (result i32)))`;
const NEW = `(func (export "__new") (param i32 i32) (result i32) (i32.const 0))`;

async function problems(...fields: string[]): Promise<string[]> {
  return guestAbiProblems("mod_x.c", readModuleShape(await wat(`(module ${fields.join(" ")})`)));
}

const NO_MEMORY =
  'mod_x.c: built without "importMemory": true (asc --importMemory): it passes strings through host symbols (\'pr_response_add\'), which the host reads in the memory it gives the module as env.memory; extend the SDK\'s config: "extends": "wasm-dso/asconfig.json"';
const NO_RUNTIME =
  'mod_x.c: built without "exportRuntime": true (asc --exportRuntime): it receives strings from host symbols (\'pr_cmd_arg\'), which the host allocates with the module\'s own __new; extend the SDK\'s config: "extends": "wasm-dso/asconfig.json"';

describe("guestAbiProblems: the build options a guest's host symbols need", () => {
  it("asks for importMemory from a guest that passes strings without importing env.memory, own memory or none", async () => {
    expect(await problems(REPLY)).toEqual([NO_MEMORY]);
    expect(await problems(REPLY, `(memory (export "memory") 1 4)`)).toEqual([NO_MEMORY]);
    expect(await problems(MEMORY, REPLY)).toEqual([]);
  });

  it("asks for exportRuntime from a guest that receives strings without a __new of the runtime's type", async () => {
    expect(await problems(MEMORY, ARG)).toEqual([NO_RUNTIME]);
    expect(await problems(MEMORY, ARG, `(func (export "__new") (param i32) (result i32) (i32.const 0))`)).toEqual([
      NO_RUNTIME,
    ]);
    expect(await problems(MEMORY, ARG, `(global (export "__new") i32 (i32.const 0))`)).toEqual([NO_RUNTIME]);
    expect(await problems(MEMORY, ARG, NEW)).toEqual([]);
  });

  it("lists both, and names at most three symbols", async () => {
    const many = ["pr_cmd_arg", "pr_session_user", "pr_cmd_path", "pr_session_cwd"].map(
      (n) => `(import "env" "${n}" (func (result i32)))`,
    );
    const found = await problems(...many);
    expect(found).toHaveLength(2);
    expect(found[0]).toContain("host symbols ('pr_cmd_arg', 'pr_session_user', 'pr_cmd_path' and 1 more)");
    expect(found[1]).toContain("host symbols ('pr_cmd_arg', 'pr_session_user', 'pr_cmd_path' and 1 more)");
  });

  it("holds nothing against a guest that passes no strings, whatever its memory, nor against imports of other names", async () => {
    expect(await problems(`(import "env" "pr_time_now" (func (result f64)))`, `(memory 1 1)`)).toEqual([]);
    expect(await problems(`(import "libmath" "pr_response_add" (func (param i32 i32)))`)).toEqual([]);
    expect(await problems(`(import "env" "no_such_symbol" (func (param i32 i32)))`)).toEqual([]);
  });

  it("refuses with DSO_ERR_ABI, one line per missing option", async () => {
    const shape = readModuleShape(await wat(`(module ${REPLY} ${ARG})`));
    let error: unknown;
    try {
      checkGuestAbi("mod_x.c", shape);
    } catch (caught) {
      error = caught;
    }
    expect(isDsoError(error) && { code: error.code, lines: error.lines }).toEqual({
      code: "DSO_ERR_ABI",
      lines: [NO_MEMORY.replace("('pr_response_add')", "('pr_response_add', 'pr_cmd_arg')"), NO_RUNTIME],
    });
  });
});
