/**
 * `dsoctl lsmod | head -1`: when the reader goes away, the CLI's next write
 * fails with EPIPE; the CLIs end quietly instead of printing a stack trace.
 */
import { spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../helpers/paths.js";

const STDIO = pathToFileURL(`${REPO_ROOT}/dist/host/system/stdio.js`).href;

/** A child that writes once its stdout reader is gone, with or without the handler. */
function writeAfterReaderLeaves(withHandler: boolean): Promise<{ status: number | null; stderr: string }> {
  const script = `
    const { exitQuietlyOnClosedOutput } = await import(${JSON.stringify(STDIO)});
    if (${withHandler}) exitQuietlyOnClosedOutput();
    process.stdout.write("first\\n");
    setTimeout(() => process.stdout.write("after the reader left\\n"), 300);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.once("data", () => child.stdout.destroy());
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stderr })));
}

describe("exitQuietlyOnClosedOutput", () => {
  it("ends the process quietly with its exit code when stdout's reader is gone", async () => {
    expect(await writeAfterReaderLeaves(true)).toEqual({ status: 0, stderr: "" });
  });

  it("is what stands between a closed pipe and a stack trace", async () => {
    const bare = await writeAfterReaderLeaves(false);
    expect(bare.status).not.toBe(0);
    expect(bare.stderr).toMatch(/EPIPE/);
  });
});
