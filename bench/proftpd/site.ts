/**
 * One FTP site on disk, the same for dsod and proftpd: a temp directory with
 * the user's home, a tree outside the home (what a jail must keep out of
 * reach), and an AuthUserFile in ftpasswd's format with one user whose
 * password is a crypt(3) SHA-512 hash (host/auth/crypt.ts, as `ftpasswd
 * --sha512` writes it).
 *
 * Run as root, the user is nobody/nogroup (65534): proftpd's session drops to
 * the user's ids and refuses uid 0 (RootLogin off), so the home belongs to
 * that user and every directory above it is searchable. Run as anyone else,
 * the user has the caller's ids.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { cryptHash } from "../../host/auth/crypt.js";

const NOBODY = 65534;

export interface FtpSite {
  /** The temp directory holding everything below. */
  readonly dir: string;
  readonly user: string;
  readonly password: string;
  readonly uid: number;
  readonly gid: number;
  /** The user's home: `DefaultRoot ~` jails the session here. */
  readonly home: string;
  /** A tree beside the home, never reachable from inside the jail. */
  readonly outside: string;
  /** The AuthUserFile naming the user. */
  readonly passwdFile: string;
}

/** The ids the site's user gets: nobody when running as root, else the caller's. */
export function siteIds(): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? NOBODY;
  if (uid === 0) return { uid: NOBODY, gid: NOBODY };
  return { uid, gid: process.getgid?.() ?? NOBODY };
}

/** Creates a fresh site under `base` (the system temp dir by default; `prefix` names it). */
export function makeSite(options: { prefix?: string; user?: string; password?: string; base?: string } = {}): FtpSite {
  const user = options.user ?? "alice";
  const password = options.password ?? "wonderland";
  const { uid, gid } = siteIds();
  const dir = mkdtempSync(path.join(options.base ?? tmpdir(), options.prefix ?? "ftp-site-"));
  // mkdtemp makes 0700; the user's session (proftpd's runs as the user) must reach its home.
  chmodSync(dir, 0o755);
  const home = path.join(dir, "home", user);
  const outside = path.join(dir, "outside");
  mkdirSync(home, { recursive: true, mode: 0o755 });
  mkdirSync(outside, { mode: 0o755 });
  chownSync(home, uid, gid);
  writeFileSync(path.join(outside, "secret.txt"), "outside the jail\n");
  const passwdFile = path.join(dir, "ftpd.passwd");
  writeFileSync(passwdFile, `${user}:${cryptHash(password, "sha512")}:${uid}:${gid}::${home}:/bin/false\n`, {
    mode: 0o600,
  });
  return { dir, user, password, uid, gid, home, outside, passwdFile };
}
