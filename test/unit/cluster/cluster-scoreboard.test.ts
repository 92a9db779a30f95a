/**
 * The scoreboard across workers (host/cluster/cluster-scoreboard.ts): two
 * workers' scoreboards and the primary's service joined in one thread, their
 * events and sync calls crossing as JSON; the events a worker sends; and
 * mod_auth's MaxClientsPerUser counting a login made on the other worker,
 * which it sees only because mod_auth reports the login (Scoreboard.changed).
 */
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ScoreboardService, WorkerScoreboard } from "../../../host/cluster/cluster-scoreboard.js";
import { cryptHash } from "../../../host/auth/crypt.js";
import { SessionFilesystem } from "../../../host/fs/session-fs.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import { Scoreboard, countClients } from "../../../host/ftp/scoreboard.js";
import type { ScoreEntry } from "../../../host/ftp/scoreboard.js";
import { AuthUserFile } from "../../../host/static/mod-auth-file.js";
import { createAuthModule } from "../../../host/static/mod-auth.js";
import { RecordingControl, testCommand, testSession } from "../../helpers/session.js";

const json = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** Worker `index`'s scoreboard, its events applied to `service` and its sync calls answered by it. */
function worker(service: ScoreboardService, index: number, events: unknown[] = []): WorkerScoreboard {
  const handlers = service.handlers();
  return new WorkerScoreboard(
    {
      event: (type, body) => {
        events.push([type, json(body)]);
        service.onEvent(index, json(body));
      },
    },
    { call: (type, body) => json(handlers[type]?.(json(body) as never)) },
    index,
  );
}

function seen(entries: Iterable<ScoreEntry>): [string, string | undefined][] {
  return [...entries].map((entry) => [entry.remoteAddress, entry.user]);
}

describe("WorkerScoreboard", () => {
  it("tells the primary of each entry added, logged in and ended, once each", () => {
    const events: unknown[] = [];
    const board = worker(new ScoreboardService(), 1, events);
    const session = { remoteAddress: "10.0.0.1", user: undefined as string | undefined };
    board.add(session);
    board.add(session);
    session.user = "ann";
    board.changed(session);
    board.changed({ remoteAddress: "10.0.0.9", user: "never added" });
    board.delete(session);
    board.delete(session);
    expect(events).toEqual([
      ["score", { op: "add", id: 1, remoteAddress: "10.0.0.1" }],
      ["score", { op: "changed", id: 1, remoteAddress: "10.0.0.1", user: "ann" }],
      ["score", { op: "delete", id: 1, remoteAddress: "10.0.0.1", user: "ann" }],
    ]);
  });

  it("lists its own entries as they are, then the other workers' as the primary has them", () => {
    const service = new ScoreboardService();
    const one = worker(service, 1);
    const two = worker(service, 2);
    const three = worker(service, 3);
    const mine = { remoteAddress: "10.0.0.1", user: "ann" };
    one.add(mine);
    const theirs = { remoteAddress: "10.0.0.2", user: undefined as string | undefined };
    two.add(theirs);
    three.add({ remoteAddress: "10.0.0.3", user: "cy" });
    expect([...one.entries()][0]).toBe(mine);
    expect(seen(one.entries())).toEqual([
      ["10.0.0.1", "ann"],
      ["10.0.0.2", undefined],
      ["10.0.0.3", "cy"],
    ]);
    theirs.user = "bob";
    expect(seen(one.entries())[1]).toEqual(["10.0.0.2", undefined]);
    two.changed(theirs);
    expect(seen(one.entries())[1]).toEqual(["10.0.0.2", "bob"]);
    expect(countClients(one.entries(), mine, "bob")).toEqual({ clients: 3, fromHost: 1, forUser: 2 });
    two.delete(theirs);
    expect(seen(one.entries())).toEqual([
      ["10.0.0.1", "ann"],
      ["10.0.0.3", "cy"],
    ]);
    service.dropWorker(3);
    expect(seen(one.entries())).toEqual([["10.0.0.1", "ann"]]);
    expect(seen(two.entries())).toEqual([["10.0.0.1", "ann"]]);
  });
});

describe("ScoreboardService", () => {
  it("ignores what is not a score event, and a change to an entry it never had", () => {
    const service = new ScoreboardService();
    for (const body of [
      null,
      "add",
      { op: "add", id: "1", remoteAddress: "10.0.0.1" },
      { op: "rename", id: 1, remoteAddress: "10.0.0.1" },
      { op: "add", id: 1, remoteAddress: "10.0.0.1", user: 7 },
      { op: "changed", id: 5, remoteAddress: "10.0.0.5", user: "ghost" },
      { op: "delete", id: 6, remoteAddress: "10.0.0.6" },
    ]) {
      service.onEvent(1, body);
    }
    expect(service.others(2)).toEqual([]);
    service.onEvent(1, { op: "add", id: 1, remoteAddress: "10.0.0.1" });
    expect(service.others(2)).toEqual([{ remoteAddress: "10.0.0.1", user: undefined }]);
    expect(service.others(1)).toEqual([]);
  });
});

describe("mod_auth.c's limits across workers", () => {
  const base = realpathSync(mkdtempSync(path.join(tmpdir(), "dsod-cluster-score-")));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A session on a worker whose mod_auth counts on `scoreboard`, with MaxClientsPerUser 1. */
  function session(scoreboard: Scoreboard, address: string) {
    const source = new AuthUserFile();
    source.setPath("/etc/dsod.passwd");
    source.load(`demo:${cryptHash("demo", "md5", "saltsalt")}:1000:1000::${base}:/bin/false\n`);
    const auth = createAuthModule({
      source,
      scoreboard,
      openFilesystem: (root, options) => SessionFilesystem.open(root, options),
      umask: () => ({ umask: 0o027 }),
      groupName: () => undefined,
      serverPort: () => 2121,
      log: () => {},
    });
    const limit = auth.module.directives.find((d) => d.name === "MaxClientsPerUser");
    limit?.run(testCommand(["MaxClientsPerUser", "1"]), { file: "/etc/dsod.conf", line: 1, first: false });
    const control = new RecordingControl();
    const state = testSession([auth.module], undefined, { remoteAddress: address, control });
    scoreboard.add(state);
    const send = async (text: string): Promise<readonly string[]> => {
      const line = parseCommandLine(text);
      if (line === undefined) throw new Error(text);
      return (await dispatchCommand(state, line)).lines;
    };
    return { login: async () => [...(await send("USER demo")), ...(await send("PASS demo"))], state, control };
  }

  it("refuses a second login of a user logged in on the other worker", async () => {
    const service = new ScoreboardService();
    const first = session(worker(service, 1), "10.0.0.1");
    const second = session(worker(service, 2), "10.0.0.2");
    expect(await first.login()).toEqual(["331 Password required for demo", "230 User demo logged in"]);
    expect(await second.login()).toEqual([
      "331 Password required for demo",
      "530 Sorry, the maximum number of clients (1) for this user are already connected.",
    ]);
    expect(second.state.user).toBeUndefined();
    first.control.close();
  });

  it("lets it in on one process with the plain scoreboard too (the base changed() does nothing)", async () => {
    const scoreboard = new Scoreboard();
    const only = session(scoreboard, "10.0.0.1");
    expect(await only.login()).toEqual(["331 Password required for demo", "230 User demo logged in"]);
    expect(seen(scoreboard.entries())).toEqual([["10.0.0.1", "demo"]]);
    only.control.close();
  });
});
