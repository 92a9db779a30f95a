/**
 * What a test run as root needs to run a program as another user (nobody,
 * daemon). The checkout and the node running the suite may sit in folders
 * other users cannot enter (root's mode-700 home, a test-node copy of the
 * tree): a child spawned as nobody could not even load its script there. So
 * what such a child runs is put in a world-readable temp folder: a node
 * others can run, and for dsoctl its compiled JavaScript.
 */
import { chmodSync, copyFileSync, cpSync, linkSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./paths.js";

/** Running a program as another user takes root. */
export const IS_ROOT = process.geteuid?.() === 0;

/** True when every folder above `file` lets other users through, and they may run the file. */
export function othersCanRun(file: string): boolean {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (path.dirname(dir) === dir) return (statSync(file).mode & 0o001) !== 0;
  }
}

export interface OtherUsersDir {
  /** A world-readable folder (0755) for what another user must reach; `remove()` deletes it. */
  readonly dir: string;
  /** This process's node, or a link to it (a copy across file systems) in `dir` when others cannot reach it. */
  readonly node: string;
  remove(): void;
}

/** A world-readable temp folder, with a node other users can run. */
export function otherUsersDir(): OtherUsersDir {
  const dir = mkdtempSync(path.join(tmpdir(), "others-"));
  chmodSync(dir, 0o755);
  let node = process.execPath;
  if (!othersCanRun(node)) {
    node = path.join(dir, "node");
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node);
    }
    chmodSync(node, 0o755);
  }
  return { dir, node, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface OtherUsersDsoctl extends OtherUsersDir {
  /** The built dsoctl (dist/host/cli/dsoctl.js), copied with the rest of dist/host into `dir`. */
  readonly dsoctl: string;
  /** The copy of dist/host, for a script that imports the host's modules (controls/wire.js...). */
  readonly host: string;
}

/**
 * otherUsersDir() with a copy of the built host's JavaScript in it, so that
 * another user can run dsoctl. dsoctl finds its package root by package.json,
 * which is copied too.
 */
export function otherUsersDsoctl(): OtherUsersDsoctl {
  const others = otherUsersDir();
  const host = path.join(others.dir, "dist", "host");
  cpSync(path.join(REPO_ROOT, "dist", "host"), host, {
    recursive: true,
    filter: (source) => !source.endsWith(".map") && !source.endsWith(".ts"),
  });
  copyFileSync(path.join(REPO_ROOT, "package.json"), path.join(others.dir, "package.json"));
  return { ...others, dsoctl: path.join(host, "cli", "dsoctl.js"), host };
}
