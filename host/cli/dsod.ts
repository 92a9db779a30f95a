#!/usr/bin/env node
/**
 * dsod: our proftpd. `dsod -c FILE` runs in the foreground (`-n` is accepted,
 * dsod never forks), `-t` checks the configuration, `-l` lists the compiled-in
 * modules, `-V` the build settings, `-v` the version, `-vv` the version and
 * the modules the configuration loads.
 *
 * Exit codes: 0 success; 1 a configuration error (as proftpd) or a failure to
 * start; 64 bad command-line usage; 70 an internal error (a bug: please report).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { createCluster } from "../cluster/cluster.js";
import { ConfigError } from "../config/lexer.js";
import { DEFAULT_CONTROLS_SOCKET } from "../controls/default-socket.js";
import { Daemon } from "../daemon/daemon.js";
import { DEFAULT_MODULE_PATH, buildGeneration, compiledInModuleNames, stderrLog } from "../daemon/generation.js";
import type { DaemonLog } from "../daemon/generation.js";
import { isDsoError, messageOf } from "../errors.js";
import { DSOD_VERSION } from "../daemon/version.js";
import { PACKAGE_ROOT } from "../system/package-root.js";
import { tuneHeapForModuleChurn } from "../system/heap.js";
import { exitQuietlyOnClosedOutput } from "../system/stdio.js";

const USAGE = `usage: dsod [options]
 -h, --help                 print this help and exit
 -v, --version              print the version and exit
 -vv, --version-status      print the version and the modules the configuration loads, and exit
 -V, --settings             print the build settings and exit
 -l, --list                 list the compiled-in modules and exit
 -t, --configtest           check the configuration (loading every module) and exit
 -c, --config FILE          use FILE as the configuration (default: /etc/dsod.conf)
 -n, --nodaemon             run in the foreground (dsod always does)
 -d, --debuglevel N         log debug messages up to level N (0-10)
`;

/**
 * The configuration without -c, as proftpd compiles in its sysconfdir's
 * proftpd.conf. Never the package's example config: that one has a demo
 * account, and an installed package is no place for its socket and logs.
 */
const DEFAULT_CONFIG = "/etc/dsod.conf";
const EXAMPLE_CONFIG = path.join(PACKAGE_ROOT, "examples", "dsod.conf");

/** After a default config that could not be read: where dsod looked, and what to do. */
function defaultConfigHint(log: DaemonLog, error: unknown): void {
  if (!(error instanceof ConfigError) || error.line > 0) return;
  log(
    "error",
    `Fatal: without -c, dsod reads ${DEFAULT_CONFIG}; write it (docs/install.md), or name a file with -c (the example config, with its demo account, is ${EXAMPLE_CONFIG})`,
  );
}

/**
 * `proftpd -vv` (src/main.c show_version, modules_list2): the version, then
 * `Loaded modules:` with what the configuration loaded, newest first, two
 * spaces in. Our modules carry no version string, so each shows as
 * `mod_x.c`, as proftpd shows such a module.
 */
function versionStatusText(engineOrder: readonly string[]): string {
  const modules = [...engineOrder].reverse().map((name) => `  ${name}\n`);
  return `dsod Version: ${DSOD_VERSION} (wasm-dso)\n  Node.js: ${process.version}\n\nLoaded modules:\n${modules.join("")}`;
}

/** Prints a fatal error the way proftpd does, without a stack trace. */
function fatal(log: DaemonLog, error: unknown): number {
  if (error instanceof ConfigError) {
    // An error before any line (the file cannot be read) has no line to name.
    log("error", `Fatal: ${error.line > 0 ? error.proftpdText() : error.message}`);
    for (const hint of error.details) log("error", `Fatal: ${hint}`);
  } else if (isDsoError(error)) {
    for (const line of error.lines) log("error", `Fatal: ${line}`);
  } else {
    log("error", `Fatal: internal error: ${messageOf(error)}`);
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
        version: { type: "boolean", short: "v", multiple: true },
        "version-status": { type: "boolean" },
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
  const versionStatus = values["version-status"] === true || (values.version?.length ?? 0) > 1;
  if (values.version !== undefined && !versionStatus) {
    process.stdout.write(`dsod Version ${DSOD_VERSION} (wasm-dso)\n`);
    return 0;
  }
  if (values.list) {
    process.stdout.write(
      `Compiled-in modules:\n${compiledInModuleNames()
        .map((m) => `  ${m}\n`)
        .join("")}`,
    );
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
    log("error", `Fatal: internal error: ${messageOf(error)}`);
    if (debugLevel >= 10 && error instanceof Error && error.stack !== undefined) log("debug", error.stack);
    process.exit(70);
  };
  process.on("uncaughtException", internalError);
  process.on("unhandledRejection", internalError);
  const configFile = values.config ?? DEFAULT_CONFIG;
  const failed = (error: unknown): number => {
    const status = fatal(log, error);
    if (values.config === undefined) defaultConfigHint(log, error);
    return status;
  };
  if (versionStatus) {
    let modules: string[];
    try {
      const generation = buildGeneration(configFile, log, debugLevel);
      modules = generation.host.listModules();
      generation.host.close();
    } catch (error) {
      return failed(error);
    }
    process.stdout.write(versionStatusText(modules));
    return 0;
  }
  if (values.configtest) {
    process.stdout.write("Checking syntax of configuration file\n");
    try {
      // A syntax check loads every module as a real start would, but binds no socket.
      buildGeneration(configFile, log, debugLevel).host.close();
    } catch (error) {
      return failed(error);
    }
    process.stdout.write("Syntax check complete.\n");
    return 0;
  }
  try {
    // The session workers are made only when the configuration sets SessionWorkers.
    const daemon = await Daemon.start(configFile, log, debugLevel, createCluster);
    return await daemon.finished;
  } catch (error) {
    return failed(error);
  }
}

exitQuietlyOnClosedOutput();
process.exitCode = await main(process.argv.slice(2));
