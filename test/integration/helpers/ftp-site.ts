/**
 * dsod serving a real site to real FTP clients: a fresh site per test (a
 * user jailed in a temp home by `DefaultRoot ~`, a tree outside it), the
 * built daemon on it, and the clients run as the separate processes they
 * are (curl, python3's ftplib, lftp). Everything started is stopped and
 * every temp dir removed after each test.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import path from "node:path";
import { afterEach } from "vitest";
import { dsodSiteConfig } from "../../../bench/proftpd/dsod.js";
import { RawFtp } from "../../../bench/proftpd/raw-ftp.js";
import { makeSite } from "../../../bench/proftpd/site.js";
import type { FtpSite } from "../../../bench/proftpd/site.js";
import { FIXTURES, ROOT, RunningDsod, writeConfig } from "./dsod.js";

export const TLS_FILES = {
  certificate: path.join(ROOT, "test/fixtures/tls/cert.pem"),
  key: path.join(ROOT, "test/fixtures/tls/key.pem"),
};

/** The example guests as examples/dsod.conf loads them, and the test guest mod_guard from the fixtures. */
export const GUEST_LINES: readonly string[] = [
  "LoadModule mod_upload_filter.c",
  "UploadFilterDeny *.exe *.bat *.com [NC]",
  "ModuleCapabilities mod_xfer_stats.c session,transfer",
  "LoadModule mod_xfer_stats.c",
  `ModulePath ${FIXTURES}`,
  "LoadModule mod_guard.c",
];

export interface ServedSite {
  readonly site: FtpSite;
  readonly daemon: RunningDsod;
  readonly port: number;
  /** `ftp://user:password@127.0.0.1:port` for curl. */
  readonly url: string;
}

export interface SiteFixture {
  /** A new site served by dsod with the site's config plus `lines` (and FTPS when `tls`). */
  serve(lines?: readonly string[], options?: { tls?: boolean }): Promise<ServedSite>;
  /** A logged-in raw client on `served`, closed after the test. */
  login(served: ServedSite): Promise<RawFtp>;
  /** A raw client that has read the greeting only. */
  connect(served: ServedSite): Promise<RawFtp>;
}

export function siteFixture(): SiteFixture {
  const daemons: RunningDsod[] = [];
  const clients: RawFtp[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const daemon of daemons.splice(0)) await daemon.stop();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const connect = async (served: ServedSite): Promise<RawFtp> => {
    const { client } = await RawFtp.connect(served.port);
    clients.push(client);
    return client;
  };
  return {
    async serve(lines = [], options = {}) {
      const site = makeSite({ prefix: "dsod-site-" });
      dirs.push(site.dir);
      const text = dsodSiteConfig({ site, extra: lines, ...(options.tls === true ? { tls: TLS_FILES } : {}) });
      const config = writeConfig(site.dir, text);
      const daemon = await RunningDsod.start(config, `${site.dir}/dsod.sock`);
      daemons.push(daemon);
      return { site, daemon, port: daemon.port, url: `ftp://${site.user}:${site.password}@127.0.0.1:${daemon.port}` };
    },
    async login(served) {
      const client = await connect(served);
      await client.login(served.site.user, served.site.password);
      return client;
    },
    connect,
  };
}

export interface ToolResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a client program to its end, without blocking the event loop; never rejects on a non-zero exit. */
export function run(
  file: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        encoding: "utf8",
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

/** The server's replies in curl's `-v` output (`< 226 Transfer complete`), in order. */
export function curlReplies(stderr: string): string[] {
  return stderr
    .split(/\r?\n/)
    .filter((line) => line.startsWith("< "))
    .map((line) => line.slice(2));
}

/** Whether a command-line client is installed (PATH lookup, no shell). */
export async function haveTool(name: string): Promise<boolean> {
  const result = await run("which", [name]);
  return result.status === 0;
}

/**
 * A tree as a sorted list of `path kind mode size mtime sha256|link-target`
 * lines: two snapshots are equal when nothing in it was created, removed,
 * written, renamed, re-moded or touched.
 */
export function snapshot(root: string): string[] {
  const lines: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const st = lstatSync(full);
      const rel = path.relative(root, full);
      const head = `${rel} ${st.mode.toString(8)} ${st.mtimeMs}`;
      if (st.isSymbolicLink()) lines.push(`${head} -> ${readlinkSync(full)}`);
      else if (st.isDirectory()) {
        lines.push(`${head} dir`);
        walk(full);
      } else lines.push(`${head} ${st.size} ${createHash("sha256").update(readFileSync(full)).digest("hex")}`);
    }
  };
  walk(root);
  return lines;
}

/** Deterministic bytes of every value 0–255 (CR and LF included), `size` long, different per `seed`. */
export function patternBytes(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
