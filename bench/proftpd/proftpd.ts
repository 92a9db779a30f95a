/**
 * The machine's real proftpd (Debian's proftpd-core 1.3.8), run in the
 * foreground on loopback with a config generated here, as the reference that
 * dsod's replies and transfer figures are compared with. Nothing is fetched:
 * without /usr/sbin/proftpd, `proftpdInstalled()` says so and the callers
 * skip (the bench prints that it is missing).
 *
 * The config is the one an operator of the same site would write: the user
 * from an AuthUserFile only (no PAM, any shell), `DefaultRoot ~`, a passive
 * port range, no wtmp, no xferlog, no controls socket, and the pid file and
 * scoreboard in the site's temp dir, so that nothing is written outside it.
 * mod_tls is loaded from Debian's proftpd-mod-crypto when that is installed.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { FtpSite } from "./site.js";

export const PROFTPD = "/usr/sbin/proftpd";
/** Debian ships mod_tls in proftpd-mod-crypto, loaded with `LoadModule mod_tls.c`. */
export const PROFTPD_TLS_MODULE = "/usr/lib/proftpd/mod_tls.so";

export function proftpdInstalled(): boolean {
  return existsSync(PROFTPD);
}

export function proftpdTlsAvailable(): boolean {
  return proftpdInstalled() && existsSync(PROFTPD_TLS_MODULE);
}

export interface ProftpdOptions {
  readonly site: FtpSite;
  readonly serverName?: string;
  readonly port: number;
  /** PassivePorts min max. */
  readonly passivePorts: readonly [number, number];
  /** mod_delay's login delays; the bench turns them off, as dsod's default has none. */
  readonly delayEngine?: boolean;
  /** FTPS with this certificate and key (mod_tls must be available). */
  readonly tls?: { readonly certificate: string; readonly key: string };
  /** More directives, appended at server-config level. */
  readonly extra?: readonly string[];
}

/** The proftpd.conf for `options`: a pure function of them. */
export function proftpdConfig(options: ProftpdOptions): string {
  const { site } = options;
  const lines = [
    "ServerType standalone",
    `ServerName "${options.serverName ?? "proftpd reference"}"`,
    "DefaultAddress 127.0.0.1",
    `Port ${options.port}`,
    "User nobody",
    "Group nogroup",
    `PidFile ${site.dir}/proftpd.pid`,
    `ScoreboardFile ${site.dir}/proftpd.scoreboard`,
    "ControlsEngine off",
    `DelayEngine ${options.delayEngine === true ? "on" : "off"}`,
    "WtmpLog off",
    "TransferLog NONE",
    "AuthOrder mod_auth_file.c",
    `AuthUserFile ${site.passwdFile}`,
    "RequireValidShell off",
    "DefaultRoot ~",
    `PassivePorts ${options.passivePorts[0]} ${options.passivePorts[1]}`,
    "AllowOverwrite on",
    "Umask 022",
    "MaxInstances 200",
  ];
  if (options.tls !== undefined) {
    lines.push(
      "LoadModule mod_tls.c",
      "TLSEngine on",
      `TLSRSACertificateFile ${options.tls.certificate}`,
      `TLSRSACertificateKeyFile ${options.tls.key}`,
      "TLSProtocol TLSv1.2 TLSv1.3",
    );
  }
  lines.push(...(options.extra ?? []));
  return `${lines.join("\n")}\n`;
}

/** A free loopback TCP port (the kernel's pick, released again for the daemon to bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A passive port range of `width` ports that is free now: its first port
 * is the kernel's pick, so two ranges picked at once rarely overlap.
 */
export async function freePortRange(width: number): Promise<[number, number]> {
  const first = Math.min(await freePort(), 65535 - width);
  return [first, first + width - 1];
}

export class RunningProftpd {
  readonly child: ChildProcessWithoutNullStreams;
  readonly port: number;
  readonly config: string;
  #stderr = "";

  constructor(child: ChildProcessWithoutNullStreams, port: number, config: string, stderr: string) {
    this.child = child;
    this.port = port;
    this.config = config;
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

/**
 * Resolves once `port` accepts a connection: proftpd logs STARTUP a moment
 * before its listening socket is bound, so a refused connection is retried
 * (every 20 ms, up to `timeoutMs`).
 */
async function whenAccepting(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(false);
      });
      socket.once("error", () => resolve(true));
    });
    if (!refused) return;
    if (Date.now() > deadline) throw new Error(`proftpd never accepted connections on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Writes the config into the site's dir and runs `proftpd -n` on it;
 * resolves once proftpd has logged its `standalone mode STARTUP` line and
 * accepts connections, rejects if it exits first.
 */
export async function startProftpd(
  options: Omit<ProftpdOptions, "port" | "passivePorts"> & Partial<Pick<ProftpdOptions, "port" | "passivePorts">>,
): Promise<RunningProftpd> {
  const port = options.port ?? (await freePort());
  const passivePorts = options.passivePorts ?? (await freePortRange(500));
  const config = path.join(options.site.dir, "proftpd.conf");
  writeFileSync(config, proftpdConfig({ ...options, port, passivePorts }));
  const child = spawn(PROFTPD, ["-n", "-c", config]);
  let stderr = "";
  const started = await new Promise<RunningProftpd>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      stderr += chunk.toString();
      if (/standalone mode STARTUP/.test(stderr)) {
        child.stderr.off("data", onData);
        child.off("exit", onExit);
        resolve(new RunningProftpd(child, port, config, stderr));
      }
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`proftpd exited with ${code} before listening:\n${stderr}`));
    child.stderr.on("data", onData);
    child.once("exit", onExit);
    child.once("error", reject);
  });
  await whenAccepting(port);
  return started;
}
