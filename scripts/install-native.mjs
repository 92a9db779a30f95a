#!/usr/bin/env node
// The package's `install` script, in place of npm's default `node-gyp rebuild`
// (which fails the whole install without a compiler):
//
//   1. the prebuilt addons for this platform (prebuilds/<platform>-<arch>,
//      Node-API, so one build serves every Node line), when each of them loads;
//   2. else node-gyp, as npm would have run it;
//   3. else a short warning, and success: dsod runs without the addons, and
//      says at start what that costs (docs/security.md).
//
// npm shows an install script's output only when it fails (or with
// --foreground-scripts), so dsod's own start-up line is the one an operator
// is sure to see; this one is for whoever watches the install.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { ADDONS, PREBUILT, ROOT, nodeGyp } from "./native-addons.mjs";

const say = (line) => process.stderr.write(`wasm-dso: ${line}\n`);

/** Why the prebuilt addons cannot serve, or undefined when every one of them loads here. */
function prebuiltProblem() {
  const load = createRequire(path.join(ROOT, "package.json"));
  for (const name of ADDONS) {
    const file = path.join(PREBUILT, `${name}.node`);
    if (!existsSync(file)) return `no prebuilt ${name} addon for ${process.platform}-${process.arch}`;
    try {
      load(file);
    } catch (error) {
      return `the prebuilt ${name} addon does not load: ${error.message.split("\n")[0]}`;
    }
  }
  return undefined;
}

const problem = prebuiltProblem();
if (problem === undefined) {
  say(`using the prebuilt native addons in ${path.relative(ROOT, PREBUILT)}`);
  process.exit(0);
}
const build = spawnSync(process.execPath, [nodeGyp(), "rebuild"], { cwd: ROOT, stdio: "inherit" });
if (build.status === 0) process.exit(0);
const why = build.error !== undefined ? build.error.message : `node-gyp exited with ${build.status ?? build.signal}`;
say(`the native addons were not built (${problem}; ${why}: it needs python3, make and g++).`);
say("dsod still runs without them, and says at start what is degraded: guest CPU budgets use a slower fallback,");
say("controls clients prove their uid with a file instead of SO_PEERCRED, and password checks run in");
say("JavaScript worker threads (docs/security.md).");
say("To build them later: npm rebuild wasm-dso");
