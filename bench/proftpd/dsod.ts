/**
 * The built dsod (dist/host/cli/dsod.js) on the same site as proftpd, with
 * the same directives where dsod has them, so that replies and figures are
 * compared between like configurations.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FtpSite } from "./site.js";

/** dist/host/cli/dsod.js, from dist/bench/proftpd/ or from the source tree's bench/proftpd/. */
export const DSOD_CLI = fileURLToPath(
  new URL(
    import.meta.url.includes("/dist/") ? "../../host/cli/dsod.js" : "../../dist/host/cli/dsod.js",
    import.meta.url,
  ),
);

export interface DsodSiteOptions {
  readonly site: FtpSite;
  readonly serverName?: string;
  readonly passivePorts?: readonly [number, number];
  readonly tls?: { readonly certificate: string; readonly key: string };
  readonly extra?: readonly string[];
}

/** dsod's config for the site: loopback, a port of the kernel's choice, the site's user jailed at home. */
export function dsodSiteConfig(options: DsodSiteOptions): string {
  const { site } = options;
  const lines = [
    `ServerName "${options.serverName ?? "dsod"}"`,
    "DefaultAddress 127.0.0.1",
    "Port 0",
    `AuthUserFile ${site.passwdFile}`,
    `ControlsSocket ${site.dir}/dsod.sock`,
    "DefaultRoot ~",
    "Umask 022",
  ];
  if (options.passivePorts !== undefined)
    lines.push(`PassivePorts ${options.passivePorts[0]} ${options.passivePorts[1]}`);
  if (options.tls !== undefined) {
    lines.push(
      "TLSEngine on",
      `TLSRSACertificateFile ${options.tls.certificate}`,
      `TLSRSACertificateKeyFile ${options.tls.key}`,
      "TLSProtocol TLSv1.2 TLSv1.3",
    );
  }
  // One process unless `extra` says otherwise (the last SessionWorkers wins): the sections that read the
  // CPU or RSS of dsod's pid measure the process that serves; bench/workers.ts measures workers.
  lines.push("SessionWorkers off", ...(options.extra ?? []));
  return `${lines.join("\n")}\n`;
}

export class SiteDsod {
  readonly child: ChildProcessWithoutNullStreams;
  readonly port: number;
  #stderr: string;

  constructor(child: ChildProcessWithoutNullStreams, port: number, stderr: string) {
    this.child = child;
    this.port = port;
    this.#stderr = stderr;
    child.stderr.on("data", (chunk: Buffer) => (this.#stderr += chunk.toString()));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get stderr(): string {
    return this.#stderr;
  }

  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once("exit", () => resolve());
      this.child.kill("SIGTERM");
    });
  }
}

/** Writes the config into the site's dir, starts dsod and waits for its `listening on ... port N` line. */
export function startSiteDsod(options: DsodSiteOptions): Promise<SiteDsod> {
  const config = path.join(options.site.dir, "dsod.conf");
  writeFileSync(config, dsodSiteConfig(options));
  const child = spawn(process.execPath, [DSOD_CLI, "-n", "-c", config]);
  let stderr = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      stderr += chunk.toString();
      const match = /listening on \S+ port (\d+)/.exec(stderr);
      if (match !== null) {
        child.stderr.off("data", onData);
        child.off("exit", onExit);
        resolve(new SiteDsod(child, Number(match[1]), stderr));
      }
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`dsod exited with ${code} before listening:\n${stderr}`));
    child.stderr.on("data", onData);
    child.once("exit", onExit);
    child.once("error", reject);
  });
}
