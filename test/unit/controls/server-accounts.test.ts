import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSocketAcl } from "../../../host/controls/acl.js";
import { ControlsServer } from "../../../host/controls/server.js";
import type { ControlsAction } from "../../../host/controls/exchange.js";
import { encodeMessage, MessageDecoder, RESPONSE_LIMITS } from "../../../host/controls/wire.js";
import { SystemAccounts } from "../../../host/system/accounts.js";

const dir = mkdtempSync(join(tmpdir(), "dso-cs-accounts-"));
/** What the fake getent answers for passwd: the line this test writes into the FIFO, once it chooses to. */
const answer = join(dir, "answer");
const getent = join(dir, "getent");
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

const whoami: ControlsAction = {
  name: "whoami",
  description: "names the caller",
  acl: () => true,
  handler: (_args, caller) => ({ status: 0, lines: [`${caller.user}:${caller.group}`] }),
};
const everyone = parseSocketAcl(["allow", "user", "*"], new SystemAccounts({ getent: null }));
const waiting = new ControlsServer({
  socketPath: join(dir, "waiting.sock"),
  actions: [whoami],
  socketAcl: () => everyone,
  accounts: new SystemAccounts({ getent }),
});
const other = new ControlsServer({
  socketPath: join(dir, "other.sock"),
  actions: [whoami],
  socketAcl: () => everyone,
  accounts: new SystemAccounts({ getent: null, passwdFile: join(dir, "none"), groupFile: join(dir, "none") }),
});

function request(socketPath: string, argv: readonly string[]): Promise<readonly string[]> {
  return new Promise((resolve, reject) => {
    const decoder = new MessageDecoder(RESPONSE_LIMITS);
    const socket = createConnection(socketPath, () => socket.write(encodeMessage(0, argv)));
    socket.on("data", (chunk: Buffer) => {
      const message = decoder.push(chunk);
      if (message !== undefined) {
        resolve(message.args);
        socket.end();
      }
    });
    socket.on("error", reject);
  });
}

beforeAll(async () => {
  execFileSync("mkfifo", [answer]);
  // Group names come at once; a passwd look-up reads its answer from the FIFO, so it lasts until the test writes there.
  const script = [
    "#!/bin/sh",
    `if [ "$2" = passwd ]; then read line < '${answer}'; echo "$line"; exit 0; fi`,
    'echo "fifogroup:x:$3:"',
    "",
  ];
  writeFileSync(getent, script.join("\n"), { mode: 0o755 });
  await waiting.start();
  await other.start();
});

afterAll(async () => {
  await waiting.close();
  await other.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ControlsServer naming its callers", () => {
  it("looks up a new uid without stopping the daemon: other clients are served while getent runs", async () => {
    const reply = request(join(dir, "waiting.sock"), ["whoami"]);
    // Opening a FIFO to write completes when getent opens it to read: the look-up is under way,
    // and this process runs on.
    const writer = await open(answer, "w");
    const order: string[] = [];
    const first = reply.then((lines) => {
      order.push("first");
      return lines;
    });
    expect(await request(join(dir, "other.sock"), ["whoami"])).toEqual([`${uid}:${gid}`]);
    order.push("other");
    await writer.write(`fifouser:x:${uid}:${gid}::/:/bin/sh\n`);
    await writer.close();
    expect(await first).toEqual(["fifouser:fifogroup"]);
    expect(order).toEqual(["other", "first"]);
  });
});
