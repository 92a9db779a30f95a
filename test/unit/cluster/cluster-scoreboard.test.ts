/**
 * The scoreboard across workers (host/cluster/cluster-scoreboard.ts): two
 * workers' scoreboards and the primary's service joined in one thread, their
 * events and sync calls crossing as JSON, the hand-off and `closed` told to the
 * service as the pool tells it; the events a worker sends (logins only); and
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

type SessionEntry = ScoreEntry & { id: number };

/** A session's entry as the pool and the worker make it: the primary adds it at the hand-off, the worker serves it. */
function handOff(service: ScoreboardService, index: number, board: Scoreboard, entry: SessionEntry): void {
  service.started(index, entry.id, entry.remoteAddress);
  board.add(entry);
}

/** The session ends in its worker, whose `closed` event drops the primary's entry. */
function close(service: ScoreboardService, index: number, board: Scoreboard, entry: SessionEntry): void {
  board.delete(entry);
  service.closed(index, entry.id);
}

function seen(entries: Iterable<ScoreEntry>): [string, string | undefined][] {
  return [...entries].map((entry) => [entry.remoteAddress, entry.user]);
}

describe("WorkerScoreboard", () => {
  it("tells the primary of a login only: the hand-off adds the entry, `closed` ends it", () => {
    const events: unknown[] = [];
    const board = worker(new ScoreboardService(), 1, events);
    const session = { id: 7, remoteAddress: "10.0.0.1", user: undefined as string | undefined };
    board.add(session);
    board.changed(session);
    session.user = "ann";
    board.changed(session);
    board.changed({ id: 9, remoteAddress: "10.0.0.9", user: "never added" } as ScoreEntry);
    board.changed({ remoteAddress: "10.0.0.1", user: "no session id" });
    board.delete(session);
    board.changed(session);
    expect(events).toEqual([["score", { id: 7, user: "ann" }]]);
  });

  it("lists its own entries as they are, then the other workers' as the primary has them", () => {
    const service = new ScoreboardService();
    const one = worker(service, 1);
    const two = worker(service, 2);
    const three = worker(service, 3);
    const mine = { id: 1, remoteAddress: "10.0.0.1", user: undefined as string | undefined };
    handOff(service, 1, one, mine);
    mine.user = "ann";
    one.changed(mine);
    const theirs = { id: 2, remoteAddress: "10.0.0.2", user: undefined as string | undefined };
    handOff(service, 2, two, theirs);
    const cy = { id: 3, remoteAddress: "10.0.0.3", user: undefined as string | undefined };
    handOff(service, 3, three, cy);
    cy.user = "cy";
    three.changed(cy);
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
    close(service, 2, two, theirs);
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
  it("ignores what is not a login event, and a login of a session it was never handed or that closed", () => {
    const service = new ScoreboardService();
    service.started(1, 1, "10.0.0.1");
    service.started(1, 2, "10.0.0.2");
    service.closed(1, 2);
    for (const body of [
      null,
      "changed",
      { id: "1", user: "ann" },
      { id: 1 },
      { id: 1, user: 7 },
      { id: 5, user: "ghost" },
      { id: 2, user: "closed" },
    ]) {
      service.onEvent(1, body);
      service.onEvent(2, body);
    }
    expect(service.others(2)).toEqual([{ remoteAddress: "10.0.0.1", user: undefined }]);
    expect(service.others(1)).toEqual([]);
    service.onEvent(1, { id: 1, user: "ann" });
    expect(service.others(2)).toEqual([{ remoteAddress: "10.0.0.1", user: "ann" }]);
    service.closed(1, 1);
    service.closed(3, 1);
    expect(service.others(2)).toEqual([]);
  });
});

describe("mod_auth.c's limits across workers", () => {
  const base = realpathSync(mkdtempSync(path.join(tmpdir(), "dsod-cluster-score-")));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A session on a worker whose mod_auth counts on `scoreboard`, with MaxClientsPerUser 1. */
  function session(scoreboard: Scoreboard, address: string, handedOff: (id: number) => void = () => {}) {
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
    handedOff(state.id);
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
    const first = session(worker(service, 1), "10.0.0.1", (id) => service.started(1, id, "10.0.0.1"));
    const second = session(worker(service, 2), "10.0.0.2", (id) => service.started(2, id, "10.0.0.2"));
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
