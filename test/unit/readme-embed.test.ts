/**
 * The README's embedding example type-checks against the package's own
 * declarations (`wasm-dso` resolved to host/index.ts), as a TypeScript user
 * would paste it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The ```ts block of the README's "Embedding the host" section. */
function readmeExample(): string {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Embedding the host"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match === null) throw new Error("no ```ts block in the README's Embedding the host section");
  return match[1] as string;
}

let previous: ts.Program | undefined;

/** Type-checks `source` as an ES module inside the repository, with the build's compiler options. */
function diagnostics(source: string): string[] {
  const config = ts.readConfigFile(path.join(ROOT, "tsconfig.build.json"), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const compilerOptions: ts.CompilerOptions = {
    ...options,
    noEmit: true,
    paths: { "wasm-dso": [path.join(ROOT, "host/index.ts")] },
  };
  const file = path.join(ROOT, "readme-embed-example.mts");
  const host = ts.createCompilerHost(compilerOptions);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? source : readFile.call(host, name));
  // The second check reuses the first's parsed declarations.
  const program = ts.createProgram([file], compilerOptions, host, previous);
  previous = program;
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
}

describe("the README's embedding example", () => {
  // Checking the host's declarations takes seconds, more on a loaded machine.
  it("type-checks, and the checker does catch a call of dlsym's untyped result", { timeout: 60_000 }, () => {
    const example = readmeExample();
    expect(example).toContain('host.dlsym("math_add")');
    const uncast = example.replace(/host\.dlsym\("math_add"\) as [^;]+;/, 'host.dlsym("math_add");');
    expect(diagnostics(example)).toEqual([]);
    expect(
      diagnostics(uncast).some(
        (text) => text.startsWith("TS2349") || text.startsWith("TS2722") || text.startsWith("TS18048"),
      ),
    ).toBe(true);
  });
});
