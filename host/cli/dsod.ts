#!/usr/bin/env node
/**
 * dsod: our proftpd. `dsod -c FILE` runs in the foreground (`-n` is accepted,
 * dsod never forks), `-t` checks the configuration, `-l` lists the compiled-in
 * modules, `-V` the build settings, `-v` the version.
 *
 * Exit codes: 0 success; 1 a configuration error (as proftpd) or a failure to
 * start; 64 bad command-line usage; 70 an internal error (a bug: please report).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "../config/lexer.js";
import { DEFAULT_CONTROLS_SOCKET } from "../controls/default-socket.js";
import { Daemon } from "../daemon/daemon.js";
import { DEFAULT_MODULE_PATH, buildGeneration, compiledInModuleNames, stderrLog } from "../daemon/generation.js";
import type { DaemonLog } from "../daemon/generation.js";
import { isDsoError } from "../errors.js";
import { DSOD_VERSION } from "../daemon/version.js";
import { PACKAGE_ROOT } from "../system/package-root.js";
import { tuneHeapForModuleChurn } from "../system/heap.js";
import { exitQuietlyOnClosedOutput } from "../system/stdio.js";

const USAGE = `usage: dsod [options]
 -h, --help                 print this help and exit
 -v, --version              print the version and exit
 -V, --settings             print the build settings and exit
 -l, --list                 list the compiled-in modules and exit
 -t, --configtest           check the configuration (loading every module) and exit
 -c, --config FILE          use FILE as the configuration (default: the package's examples/dsod.conf)
 -n, --nodaemon             run in the foreground (dsod always does)
 -d, --debuglevel N         log debug messages up to level N (0-10)
`;

const DEFAULT_CONFIG = path.join(PACKAGE_ROOT, "examples", "dsod.conf");

/** Prints a fatal error the way proftpd does, without a stack trace. */
function fatal(log: DaemonLog, error: unknown): number {
  if (error instanceof ConfigError) {
    // An error before any line (the file cannot be read) has no line to name.
    log("error", `Fatal: ${error.line > 0 ? error.proftpdText() : error.message}`);
    for (const hint of error.details) log("error", `Fatal: ${hint}`);
  } else if (isDsoError(error)) {
    for (const line of error.lines) log("error", `Fatal: ${line}`);
  } else {
    log("error", `Fatal: internal error: ${error instanceof Error ? error.message : String(error)}`);
  }
  return 1;
}

async function main(argv: string[]): Promise<number> {
  tuneHeapForModuleChurn();
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        settings: { type: "boolean", short: "V" },
        list: { type: "boolean", short: "l" },
        configtest: { type: "boolean", short: "t" },
        config: { type: "string", short: "c" },
        nodaemon: { type: "boolean", short: "n" },
        debuglevel: { type: "string", short: "d" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`dsod: ${(error as Error).message}\n${USAGE}`);
    return 64;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`dsod Version ${DSOD_VERSION} (wasm-dso)\n`);
    return 0;
  }
  if (values.list) {
    process.stdout.write(`Compiled-in modules:\n${compiledInModuleNames().map((m) => `  ${m}\n`).join("")}`);
    return 0;
  }
  if (values.settings) {
    process.stdout.write(
      `dsod Version ${DSOD_VERSION} (wasm-dso)\n  Node.js: ${process.version}\n  Optional features:\n    + Controls support\n    + DSO support\n    + Trace support\n  Files:\n    Configuration File: ${DEFAULT_CONFIG}\n    Controls Socket: ${DEFAULT_CONTROLS_SOCKET}\n    Shared Module Directory: ${DEFAULT_MODULE_PATH}\n`,
    );
    return 0;
  }
  const debugLevel = values.debuglevel === undefined ? 0 : Number(values.debuglevel);
  if (!Number.isInteger(debugLevel) || debugLevel < 0 || debugLevel > 10) {
    process.stderr.write(`dsod: debug level must be 0 to 10, not '${values.debuglevel}'\n`);
    return 64;
  }
  const log = stderrLog(debugLevel);
  // A bug of ours must not reach the operator as a stack trace: one Fatal line (the
  // stack only at debug level 10), then exit 70, EX_SOFTWARE.
  const internalError = (error: unknown): void => {
    log("error", `Fatal: internal error: ${error instanceof Error ? error.message : String(error)}`);
    if (debugLevel >= 10 && error instanceof Error && error.stack !== undefined) log("debug", error.stack);
    process.exit(70);
  };
  process.on("uncaughtException", internalError);
  process.on("unhandledRejection", internalError);
  const configFile = values.config ?? DEFAULT_CONFIG;
  if (values.configtest) {
    process.stdout.write("Checking syntax of configuration file\n");
    try {
      // A syntax check loads every module as a real start would, but binds no socket.
      buildGeneration(configFile, log, debugLevel).host.close();
    } catch (error) {
      return fatal(log, error);
    }
    process.stdout.write("Syntax check OK\n");
    return 0;
  }
  try {
    const daemon = await Daemon.start(configFile, log, debugLevel);
    return await daemon.finished;
  } catch (error) {
    return fatal(log, error);
  }
}

exitQuietlyOnClosedOutput();
process.exitCode = await main(process.argv.slice(2));
