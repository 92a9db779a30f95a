/**
 * Controls identity without the peercred addon (host/controls/file-identity.ts):
 * the pure judges exactly, then a ControlsServer in this process with the
 * addon disabled, answered by hand-made clients that follow the exchange or
 * try to cheat it.
 */
import { execFile } from "node:child_process";
import {
  chmodSync,
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSocketAcl } from "../../../host/controls/acl.js";
import {
  judgeProofFile,
  MAX_IDENTIFYING,
  PROOF_MAX_AGE_MS,
  proofRefusal,
} from "../../../host/controls/file-identity.js";
import type { ProofStat } from "../../../host/controls/file-identity.js";
import { ControlsServer } from "../../../host/controls/server.js";
import {
  ControlsStatus,
  encodeMessage,
  IDENTIFY_CHALLENGE,
  identifyChallengePath,
  identifyDirectory,
  MessageDecoder,
  RESPONSE_LIMITS,
} from "../../../host/controls/wire.js";
import type { DecodedMessage } from "../../../host/controls/wire.js";
import { SystemAccounts } from "../../../host/system/accounts.js";
import { DISABLE_ADDONS_ENV } from "../../../host/system/package.js";

const NOW = 1_800_000_000_000;
const GOOD: ProofStat = {
  isFile: true,
  uid: 1000,
  gid: 100,
  mode: 0o100600,
  nlink: 1,
  atimeMs: NOW,
  mtimeMs: NOW,
  ctimeMs: NOW,
};

describe("judgeProofFile", () => {
  it("takes the owner of a fresh, private, single-link regular file; its group only on Linux", () => {
    expect(judgeProofFile(GOOD, NOW, true)).toEqual({ uid: 1000, gid: 100 });
    expect(judgeProofFile(GOOD, NOW, false)).toEqual({ uid: 1000, gid: -1 });
    expect(judgeProofFile({ ...GOOD, mtimeMs: NOW - PROOF_MAX_AGE_MS }, NOW, true)).toEqual({ uid: 1000, gid: 100 });
  });

  it("refuses a symlink or a directory, a hard link, and any mode but 0600", () => {
    expect(judgeProofFile({ ...GOOD, isFile: false }, NOW, true)).toEqual({
      refused: "the proof is not a regular file",
    });
    expect(judgeProofFile({ ...GOOD, nlink: 2 }, NOW, true)).toEqual({ refused: "the proof has 2 links, not 1" });
    expect(judgeProofFile({ ...GOOD, mode: 0o100644 }, NOW, true)).toEqual({
      refused: "the proof has mode 0644, not 0600",
    });
    expect(judgeProofFile({ ...GOOD, mode: 0o104600 }, NOW, true)).toEqual({
      refused: "the proof has mode 4600, not 0600",
    });
    expect(judgeProofFile({ ...GOOD, mode: 0o100400 }, NOW, true)).toEqual({
      refused: "the proof has mode 0400, not 0600",
    });
  });

  it("refuses a file any of whose times is older than 10 s, or far in the future", () => {
    expect(judgeProofFile({ ...GOOD, atimeMs: NOW - 10_001 }, NOW, true)).toEqual({
      refused: "the proof's access time is 10 s off, more than 10 s",
    });
    expect(judgeProofFile({ ...GOOD, mtimeMs: NOW - 60_000 }, NOW, true)).toEqual({
      refused: "the proof's modification time is 60 s off, more than 10 s",
    });
    expect(judgeProofFile({ ...GOOD, ctimeMs: NOW + 5_000 }, NOW, true)).toEqual({
      refused: "the proof's change time is -5 s off, more than 10 s",
    });
  });
});

describe("proofRefusal", () => {
  const name = "0123456789abcdef0123456789abcdef";
  it("accepts `identify NAME` for the name asked, and nothing else", () => {
    expect(proofRefusal({ status: 0, args: ["identify", name] }, name)).toBeUndefined();
    expect(proofRefusal({ status: 0, args: ["identify", "/etc/passwd"] }, name)).toBe(
      "the client named '/etc/passwd', not the file it was asked to create",
    );
    expect(proofRefusal({ status: 0, args: ["lsmod"] }, name)).toBe(
      "expected 'identify NAME' after the request, got 'lsmod'",
    );
    expect(proofRefusal({ status: 0, args: ["identify", name, "x"] }, name)).toBe(
      `expected 'identify NAME' after the request, got 'identify ${name} x'`,
    );
  });
});

describe("identifyChallengePath", () => {
  const socket = "/run/dsod.sock";
  const file = `${identifyDirectory(socket)}/0123456789abcdef0123456789abcdef`;
  const challenge = (args: string[], status: number = ControlsStatus.IDENTIFY): DecodedMessage => ({ status, args });

  it("takes a fresh name in the identify directory of the socket the client chose", () => {
    expect(identifyDirectory(socket)).toBe("/run/dsod.sock.identify");
    expect(identifyChallengePath(challenge([IDENTIFY_CHALLENGE, file]), socket)).toBe(file);
  });

  it("ignores any other message, and any file elsewhere (a server cannot make a client create /etc/nologin)", () => {
    expect(
      identifyChallengePath(challenge([IDENTIFY_CHALLENGE, file], ControlsStatus.ACCESS_DENIED), socket),
    ).toBeUndefined();
    expect(identifyChallengePath(challenge(["access denied", file]), socket)).toBeUndefined();
    expect(identifyChallengePath(challenge([IDENTIFY_CHALLENGE, file, "x"]), socket)).toBeUndefined();
    expect(identifyChallengePath(challenge([IDENTIFY_CHALLENGE, "/etc/nologin"]), socket)).toBeUndefined();
    expect(
      identifyChallengePath(challenge([IDENTIFY_CHALLENGE, `${identifyDirectory(socket)}/../x`]), socket),
    ).toBeUndefined();
    expect(identifyChallengePath(challenge([IDENTIFY_CHALLENGE, `${file}/x`]), socket)).toBeUndefined();
    expect(identifyChallengePath(challenge([IDENTIFY_CHALLENGE, file]), "/tmp/other.sock")).toBeUndefined();
  });
});

describe("a ControlsServer without the peercred addon", () => {
  const dir = mkdtempSync(join(tmpdir(), "dso-fid-"));
  const socketPath = join(dir, "ctl.sock");
  const notices: string[] = [];
  let server: ControlsServer;
  const whoami = {
    name: "whoami",
    description: "says who asked",
    acl: () => true,
    handler: (_args: readonly string[], caller: { uid: number; gid: number; pid: number }) => ({
      status: 0,
      lines: [`uid ${caller.uid} gid ${caller.gid} pid ${caller.pid}`],
    }),
  };

  beforeAll(async () => {
    process.env[DISABLE_ADDONS_ENV] = "peercred";
    const everyone = parseSocketAcl(["allow", "user", "*"], new SystemAccounts());
    server = new ControlsServer({
      socketPath,
      actions: [whoami],
      socketAcl: () => everyone,
      log: (_priority, message) => notices.push(message),
    });
    await server.start();
  });

  afterAll(async () => {
    await server.close();
    Reflect.deleteProperty(process.env, DISABLE_ADDONS_ENV);
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Sends `whoami`, then answers the challenge with `prove(file)`'s name
   * (after it made whatever it likes at `file`); resolves with the response.
   */
  function ask(prove: (file: string) => string): Promise<DecodedMessage> {
    return new Promise((resolve, reject) => {
      const decoder = new MessageDecoder(RESPONSE_LIMITS);
      let challenged = false;
      const socket = createConnection(socketPath, () => socket.write(encodeMessage(0, ["whoami"])));
      socket.on("data", (chunk: Buffer) => {
        let message = decoder.push(chunk);
        if (message !== undefined && !challenged) {
          challenged = true;
          const file = identifyChallengePath(message, socketPath);
          if (file === undefined) throw new Error(`not a challenge: ${message.args.join(" | ")}`);
          socket.write(encodeMessage(0, ["identify", prove(file)]));
          message = decoder.push(Buffer.alloc(0));
        }
        if (message !== undefined) {
          socket.destroy();
          resolve(message);
        }
      });
      socket.on("error", reject);
    });
  }

  const create = (file: string, mode = 0o600): string => {
    closeSync(openSync(file, "wx", mode));
    chmodSync(file, mode);
    return basename(file);
  };
  const refused = (reason: string): { status: number; lines: readonly string[] } => ({
    status: ControlsStatus.ACCESS_DENIED,
    lines: ["access denied", `  cannot check client credentials: ${reason}`],
  });
  const reply = (message: DecodedMessage): { status: number; lines: readonly string[] } => ({
    status: message.status,
    lines: message.args,
  });

  it("says at start how callers are identified, and makes the directory mode 1733", () => {
    expect(notices).toEqual([
      `mod_ctrls/0.9.5: cannot check client credentials: the peercred addon is disabled by ${DISABLE_ADDONS_ENV}; controls clients prove their uid with a file they create in '${socketPath}.identify' instead (docs/security.md, "Controls identity without the peercred addon")`,
    ]);
    const stat = lstatSync(`${socketPath}.identify`);
    expect([stat.isDirectory(), stat.mode & 0o7777]).toEqual([true, 0o1733]);
  });

  it("serves a client that creates the file, as the file's owner with no pid, and removes the file", async () => {
    let made = "";
    const response = await ask((file) => {
      made = file;
      return create(file);
    });
    expect(reply(response)).toEqual({
      status: 0,
      lines: [`uid ${process.getuid?.()} gid ${process.getgid?.()} pid -1`],
    });
    expect(() => statSync(made)).toThrow(/ENOENT/);
  });

  it("refuses a client that names another file, creates none, or makes it a symlink, a hard link or group-readable", async () => {
    const victim = join(dir, "victim");
    writeFileSync(victim, "", { mode: 0o600 });
    const cases: Array<[(file: string) => string, string]> = [
      [() => victim, `the client named '${victim}', not the file it was asked to create`],
      [
        (file) => basename(file),
        "unable to check the proof '%FILE%': ENOENT: no such file or directory, lstat '%FILE%'",
      ],
      [(file) => (symlinkSync(victim, file), basename(file)), "the proof is not a regular file"],
      [(file) => (linkSync(victim, file), basename(file)), "the proof has 2 links, not 1"],
      [(file) => create(file, 0o640), "the proof has mode 0640, not 0600"],
    ];
    for (const [prove, reason] of cases) {
      let asked = "";
      const response = await ask((file) => {
        asked = file;
        return prove(file);
      });
      expect(reply(response)).toEqual(refused(reason.replaceAll("%FILE%", asked)));
    }
  });

  it("identifies at most MAX_IDENTIFYING connections at once, dropping the oldest", async () => {
    const challenged = (socket: ReturnType<typeof createConnection>): Promise<void> =>
      new Promise((resolve) => socket.once("data", () => resolve()));
    const silent = Array.from({ length: MAX_IDENTIFYING }, () => createConnection(socketPath));
    await Promise.all(silent.map(challenged));
    const [oldest] = silent;
    const dropped = new Promise<void>((resolve) => oldest?.once("close", () => resolve()));
    const newest = createConnection(socketPath);
    await challenged(newest);
    await dropped;
    expect(silent.map((socket) => socket.destroyed)).toEqual([true, ...silent.slice(1).map(() => false)]);
    for (const socket of [...silent, newest]) socket.destroy();
  });

  it("refuses a stale file (its times set back past ControlsAuthFreshness)", async () => {
    const response = await ask((file) => {
      const name = create(file);
      const old = new Date(Date.now() - 60_000);
      utimesSync(file, old, old);
      return name;
    });
    expect(reply(response)).toEqual(refused("the proof's access time is 60 s off, more than 10 s"));
  });
});

describe("dsoctl, challenged by a server it does not trust", () => {
  const DSOCTL = fileURLToPath(new URL("../../../dist/host/cli/dsoctl.js", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "dso-fid-ctl-"));
  const socketPath = join(dir, "fake.sock");
  const name = "0123456789abcdef0123456789abcdef";
  let challenge: string[] = [];
  const server = createServer((socket) => {
    socket.resume();
    socket.end(encodeMessage(ControlsStatus.IDENTIFY, challenge));
  });

  beforeAll(() => new Promise<void>((resolve) => server.listen(socketPath, resolve)));
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  function run(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [DSOCTL, "-s", socketPath, "lsmod"], (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr });
      });
    });
  }

  it("creates no file through an identify directory that is a symlink, and says why (exit 69)", async () => {
    const elsewhere = join(dir, "elsewhere");
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, identifyDirectory(socketPath));
    challenge = [IDENTIFY_CHALLENGE, `${identifyDirectory(socketPath)}/${name}`];
    expect(await run()).toEqual({
      code: 69,
      stdout: "",
      stderr: `dsoctl: unable to prove this client's uid to '${socketPath}': '${identifyDirectory(socketPath)}' is not a directory\n`,
    });
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it("takes a challenge for a file outside the identify directory as a plain answer, creating nothing", async () => {
    const outside = join(dir, name);
    challenge = [IDENTIFY_CHALLENGE, outside];
    expect(await run()).toEqual({ code: 3, stdout: `dsoctl: ${IDENTIFY_CHALLENGE}\ndsoctl: ${outside}\n`, stderr: "" });
    expect(() => statSync(outside)).toThrow(/ENOENT/);
  });
});
