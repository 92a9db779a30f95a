#!/usr/bin/env node
// Builds the prebuilt native addons shipped in the package:
// prebuilds/<platform>-<arch>/{peercred,watchdog}.node, with node-gyp, from
// this tree's sources, in a scratch folder (this tree's build/ is left alone).
// Both addons are Node-API, so the binaries serve every Node line; the
// install script (install-native.mjs) takes them when they load, so that a
// machine without a compiler still gets the addons.
//
// Built at pack time (`prepack`), removed after it (`postpack`, --clean),
// never committed: binaries in git cannot be reviewed, grow the history with
// every change, and can drift from the sources beside them; built by prepack,
// the tarball's binaries are made from the very sources it ships. `npm pack`
// and `npm publish` run it on the machine that packs (linux-x64 here, the
// platform this project ships prebuilt).
//
//   node scripts/prebuild.mjs            build prebuilds/<platform>-<arch>
//   node scripts/prebuild.mjs --strict   the same, failing (exit 1) when the build fails
//   node scripts/prebuild.mjs --clean    remove prebuilds/
//   node scripts/prebuild.mjs --strict --out DIR   build into DIR instead (the package test)
//
// Without --strict a failed build (no compiler, say) leaves no prebuilds and
// exits 0 after a warning, so that packing on such a machine (npm installing
// this package from git packs it) still works; the package then builds its
// addons at install, or runs without them.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ADDONS, ADDON_SOURCES, PREBUILT, ROOT, nodeGyp } from "./native-addons.mjs";

const SOURCES = ["binding.gyp", ...Object.values(ADDON_SOURCES)];
const argv = process.argv.slice(2);
const args = new Set(argv);
const out = args.has("--out") ? path.resolve(argv[argv.indexOf("--out") + 1] ?? "") : PREBUILT;

if (args.has("--clean")) {
  rmSync(path.join(ROOT, "prebuilds"), { recursive: true, force: true });
  process.exit(0);
}

const scratch = mkdtempSync(path.join(tmpdir(), "wasm-dso-prebuild-"));
try {
  for (const source of SOURCES) cpSync(path.join(ROOT, source), path.join(scratch, source), { recursive: true });
  // binding.gyp finds its build-time headers (node-addon-api) through node_modules.
  symlinkSync(path.join(ROOT, "node_modules"), path.join(scratch, "node_modules"));
  const build = spawnSync(process.execPath, [nodeGyp(), "rebuild"], { cwd: scratch, stdio: "inherit" });
  if (build.status !== 0) {
    const why =
      build.error !== undefined ? build.error.message : `node-gyp exited with ${build.status ?? build.signal}`;
    process.stderr.write(
      `prebuild: no prebuilt addons (${why}); the package will build them at install, or run without them\n`,
    );
    process.exit(args.has("--strict") ? 1 : 0);
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of ADDONS)
    copyFileSync(path.join(scratch, "build", "Release", `${name}.node`), path.join(out, `${name}.node`));
  process.stdout.write(`prebuild: ${ADDONS.map((name) => path.join(out, `${name}.node`)).join(", ")}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
