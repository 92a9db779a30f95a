// Builds every guest with asc through asconfig.json: the example modules and
// libraries (guest-modules/*.ts) into dist/libexec/, our $prefix/libexec, the
// default ModulePath; the test guests (test/fixtures/guests/*.ts) into
// dist/test-fixtures/; and the SDK's host declarations and constants into
// dist/sdk/ for the ABI tests. A guest is rebuilt only when its source, the
// SDK (its asconfig.json included), asconfig.json or the compiler changed.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const asc = path.join(root, "node_modules", "assemblyscript", "bin", "asc.js");
const cacheFile = path.join(root, "dist", ".guest-build.json");

function sourcesIn(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ts"))
    .sort()
    .map((f) => path.join(dir, f));
}

const sdkDir = path.join(root, "guest-modules", "sdk");
const shared = [
  readFileSync(path.join(root, "asconfig.json")),
  readFileSync(path.join(sdkDir, "asconfig.json")),
  readFileSync(path.join(root, "node_modules", "assemblyscript", "package.json")),
  ...sourcesIn(sdkDir).map((f) => readFileSync(f)),
];

const jobs = [
  ...sourcesIn(path.join(root, "guest-modules")).map((src) => ({ src, outDir: path.join(root, "dist", "libexec") })),
  ...sourcesIn(path.join(root, "test", "fixtures", "guests")).map((src) => ({
    src,
    outDir: path.join(root, "dist", "test-fixtures"),
  })),
  { src: path.join(sdkDir, "host.ts"), outDir: path.join(root, "dist", "sdk") },
  { src: path.join(sdkDir, "constants.ts"), outDir: path.join(root, "dist", "sdk") },
].map((job) => ({ ...job, out: path.join(job.outDir, `${path.basename(job.src, ".ts")}.wasm`) }));

function keyOf(job) {
  const hash = createHash("sha256");
  for (const part of shared) hash.update(part);
  hash.update(readFileSync(job.src));
  return hash.digest("hex");
}

const cache = existsSync(cacheFile) ? JSON.parse(readFileSync(cacheFile, "utf8")) : {};
const pending = jobs.filter((job) => cache[job.out] !== keyOf(job) || !existsSync(job.out));

function compile(job) {
  mkdirSync(job.outDir, { recursive: true });
  const args = [
    asc,
    path.relative(root, job.src),
    "--config",
    "asconfig.json",
    "--target",
    "release",
    "--outFile",
    job.out,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "inherit", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => {
      if (code === 0) {
        cache[job.out] = keyOf(job);
        resolve();
      } else {
        reject(new Error(`asc failed on ${path.relative(root, job.src)} (exit ${code}):\n${stderr}`));
      }
    });
  });
}

async function run() {
  const queue = [...pending];
  const workers = Array.from({ length: Math.max(1, Math.min(availableParallelism(), queue.length)) }, async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) await compile(job);
  });
  try {
    await Promise.all(workers);
  } finally {
    mkdirSync(path.dirname(cacheFile), { recursive: true });
    writeFileSync(cacheFile, JSON.stringify(cache, null, 2));
  }
  console.log(`guests: ${pending.length} built, ${jobs.length - pending.length} up to date`);
}

run().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
