/**
 * A logged-in session over a temporary directory tree, with the file
 * commands' modules (mod_core.c, mod_ls.c, mod_site.c, mod_facts.c) and a
 * data connection replaced by a recorder: what each command replied, what
 * it sent over the data connection, and the path it named.
 */
import {
  chmodSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { SessionFilesystem } from "../../../host/fs/session-fs.js";
import type { OwnerNames } from "../../../host/fs/ls-format.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { ANY_COMMAND, dispatchCommand } from "../../../host/ftp/dispatch.js";
import { HandlerResults, Phases } from "../../../host/modules/module-api.js";
import type { EngineModule, HandlerResult, SessionState } from "../../../host/modules/module-api.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import type { CoreSettings } from "../../../host/static/mod-core.js";
import { createFactsModule } from "../../../host/static/mod-facts.js";
import { createLsModule } from "../../../host/static/mod-ls.js";
import type { SendOverData } from "../../../host/static/mod-ls.js";
import { createSiteModule } from "../../../host/static/mod-site.js";
import { testSession } from "../../helpers/session.js";

export const NOW = Date.UTC(2024, 5, 15, 12, 0, 0);
export const RECENT = Date.UTC(2024, 2, 5, 9, 7, 30);
export const OLD = Date.UTC(2023, 0, 5, 18, 30, 0);

export const UID = process.getuid?.() ?? 0;
export const GID = process.getgid?.() ?? 0;

/** The test's own ids by name, anything else as its number. */
export const OWNERS: OwnerNames = {
  userName: (uid) => (uid === UID ? "alice" : String(uid)),
  groupName: (gid) => (gid === GID ? "staff" : String(gid)),
};

/** What one data transfer carried. */
export interface Sent {
  readonly what: string;
  readonly ascii: boolean;
  readonly text: string;
}

export interface FileSession {
  readonly base: string;
  readonly root: string;
  readonly outside: string;
  readonly session: SessionState;
  readonly core: CoreSettings;
  /** What went over the data connection, one entry a transfer. */
  readonly sent: Sent[];
  /** The path each command named (ActiveCommand.path as LOG_CMD saw it). */
  readonly paths: Array<string | undefined>;
  /** AllowOverwrite, as RNTO reads it. */
  overwrite: boolean;
  send(line: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * root/      file.txt "hello" 0644, .hidden 0600, run.sh 0755, sub/inner.txt,
 *            ln -> file.txt, subl -> sub, out -> <outside>, dangling -> nowhere, self -> ..
 * outside/   secret.txt "secret"
 * Files are RECENT, sub is OLD.
 */
export async function fileSession(): Promise<FileSession> {
  const base = mkdtempSync(path.join(tmpdir(), "dsod-files-"));
  const root = path.join(base, "root");
  const outside = path.join(base, "outside");
  mkdirSync(path.join(root, "sub"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(root, "file.txt"), "hello");
  writeFileSync(path.join(root, ".hidden"), "x");
  writeFileSync(path.join(root, "run.sh"), "#!");
  writeFileSync(path.join(root, "sub", "inner.txt"), "inner");
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  chmodSync(path.join(root, "file.txt"), 0o644);
  chmodSync(path.join(root, ".hidden"), 0o600);
  chmodSync(path.join(root, "run.sh"), 0o755);
  chmodSync(path.join(root, "sub", "inner.txt"), 0o644);
  chmodSync(path.join(root, "sub"), 0o755);
  symlinkSync("file.txt", path.join(root, "ln"));
  symlinkSync("sub", path.join(root, "subl"));
  symlinkSync(outside, path.join(root, "out"));
  symlinkSync("nowhere", path.join(root, "dangling"));
  symlinkSync("..", path.join(root, "self"));
  const recent = RECENT / 1000;
  for (const name of ["file.txt", ".hidden", "run.sh", "sub/inner.txt"])
    utimesSync(path.join(root, name), recent, recent);
  for (const name of ["ln", "subl", "out", "dangling", "self"]) lutimesSync(path.join(root, name), recent, recent);
  utimesSync(path.join(root, "sub"), OLD / 1000, OLD / 1000);
  chmodSync(root, 0o755);
  utimesSync(root, recent, recent);

  const sent: Sent[] = [];
  const paths: Array<string | undefined> = [];
  const send: SendOverData = async (_session, cmd, source: Readable, options): Promise<HandlerResult> => {
    const chunks: Buffer[] = [];
    for await (const chunk of source) chunks.push(Buffer.from(chunk as Buffer));
    sent.push({ what: options.what, ascii: options.ascii, text: Buffer.concat(chunks).toString("utf8") });
    cmd.addResponse("226", "Transfer complete");
    return HandlerResults.HANDLED;
  };
  const state = { overwrite: false };
  const core = createCoreModule([], { allowOverwrite: () => state.overwrite });
  const spy: EngineModule = {
    name: "mod_spy.c",
    kind: "static",
    commands: [Phases.LOG_CMD, Phases.LOG_CMD_ERR].map((phase) => ({
      command: ANY_COMMAND,
      phase,
      requiresAuth: false,
      run: (cmd) => {
        paths.push(cmd.path);
        return HandlerResults.DECLINED;
      },
    })),
    siteCommands: [],
    directives: [],
    features: [],
    help: [],
  };
  const modules = [
    core.module,
    createLsModule({ serverName: () => core.settings.serverName, owners: () => OWNERS, send, now: () => NOW }),
    createSiteModule(core.settings),
    createFactsModule({ send }),
    spy,
  ];
  const fs = await SessionFilesystem.open(root, { umask: core.settings.umask });
  const session = testSession(modules, "alice", {
    fs,
    account: { name: "alice", uid: UID, gid: GID, home: root, groups: ["staff"] },
    transferType: "I",
  });
  return {
    base,
    root,
    outside,
    session,
    core: core.settings,
    sent,
    paths,
    get overwrite() {
      return state.overwrite;
    },
    set overwrite(value: boolean) {
      state.overwrite = value;
    },
    async send(line: string): Promise<string[]> {
      const parsed = parseCommandLine(line);
      if (parsed === undefined) throw new Error(`not a command: ${line}`);
      return (await dispatchCommand(session, parsed)).lines.slice();
    },
    async close(): Promise<void> {
      await fs.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** A directory's nlink and size as this filesystem reports them (they differ between ext4, tmpfs, overlayfs). */
export function dirColumns(hostPath: string): { nlink: number; size: number } {
  const stats = statSync(hostPath);
  return { nlink: stats.nlink, size: stats.size };
}

/** listfile's long line, assembled from its columns. */
export function longLine(mode: string, nlink: number, size: number, date: string, name: string): string {
  return `${mode} ${String(nlink).padStart(3)} ${"alice".padEnd(8)} ${"staff".padEnd(8)} ${String(size).padStart(8)} ${date} ${name}`;
}
