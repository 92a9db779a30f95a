/**
 * The shared store (host/abi/shared-store.ts, docs/host-abi.md "The shared
 * store") through the real dsod and a guest built on the SDK
 * (test/fixtures/guests/mod_shared.ts): two FTP sessions see each other's
 * writes, compare-and-swap refuses a stale version and takes the current one,
 * a counter adds up across sessions, the bound refuses an oversized write with
 * its result code while the daemon goes on, and the entries outlive the
 * module's instance across an rmmod then insmod. (A fault's reset, which
 * waits out a backoff, is checked under an injected clock in
 * test/unit/abi/shared-store-host.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FIXTURES, baseConfig, dsoctl, writeConfig } from "./helpers/dsod.js";
import { FtpControl } from "./helpers/ftp-client.js";

const fixture = daemonFixture();
const MODULES = [`ModulePath ${FIXTURES}`, "LoadModule mod_shared.c"];

describe("the shared store", () => {
  it("is one for every session: a write in one is read in the other, CAS refuses a stale version", async () => {
    const { daemon } = await fixture.start(MODULES);
    const a = await fixture.connect(daemon);
    const b = await fixture.connect(daemon);
    expect(await b.send("SITE SHGET motd")).toEqual(["200 SITE SHGET: motd absent"]);
    expect(await a.send("SITE SHSET motd 0 hello")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(await b.send("SITE SHGET motd")).toEqual(["200 SITE SHGET: motd=hello version 1"]);
    // Version 0 creates only: the entry is there now.
    expect(await b.send("SITE SHSET motd 0 again")).toEqual(["200 SITE SHSET: SHARED_CAS_MISMATCH"]);
    // Both sessions read version 1; b writes first, so a's version is stale.
    expect(await b.send("SITE SHSET motd 1 from-b")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(await a.send("SITE SHSET motd 1 from-a")).toEqual(["200 SITE SHSET: SHARED_CAS_MISMATCH"]);
    expect(await a.send("SITE SHGET motd")).toEqual(["200 SITE SHGET: motd=from-b version 2"]);
    expect(await a.send("SITE SHSET motd 2 from-a")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(await b.send("SITE SHGET motd")).toEqual(["200 SITE SHGET: motd=from-a version 3"]);
    expect(await b.send("SITE SHDEL motd 2")).toEqual(["200 SITE SHDEL: SHARED_CAS_MISMATCH"]);
    expect(await b.send("SITE SHDEL motd 3")).toEqual(["200 SITE SHDEL: SHARED_OK"]);
    expect(await a.send("SITE SHGET motd")).toEqual(["200 SITE SHGET: motd absent"]);
    expect(await a.send("SITE SHDEL motd any")).toEqual(["200 SITE SHDEL: SHARED_NOT_FOUND"]);
  });

  it("adds to a counter across sessions in one step", async () => {
    const { daemon } = await fixture.start(MODULES);
    const a = await fixture.connect(daemon);
    const b = await fixture.connect(daemon);
    expect(await a.send("SITE SHADD fails:127.0.0.1 1")).toEqual(["200 SITE SHADD: 1"]);
    expect(await b.send("SITE SHADD fails:127.0.0.1 1")).toEqual(["200 SITE SHADD: 2"]);
    expect(await a.send("SITE SHADD fails:127.0.0.1 5")).toEqual(["200 SITE SHADD: 7"]);
    expect(await b.send("SITE SHGET fails:127.0.0.1")).toEqual(["200 SITE SHGET: fails:127.0.0.1=7 version 3"]);
    expect(await b.send("SITE SHSET word any abc")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(await a.send("SITE SHADD word 1")).toEqual(["200 SITE SHADD: refused"]);
  });

  it("refuses a write past the module's bound with SHARED_TOO_LARGE, and the daemon goes on", async () => {
    const { daemon } = await fixture.start(MODULES);
    const a = await fixture.connect(daemon);
    // The default cap of 16 MiB leaves a bound of 1 MiB; 600,000 characters count 1.2 MB.
    expect(await a.send("SITE SHBIG big 600000")).toEqual(["200 SITE SHBIG: SHARED_TOO_LARGE"]);
    expect(await a.send("SITE SHGET big")).toEqual(["200 SITE SHGET: big absent"]);
    expect(await a.send("SITE SHBIG big 500000")).toEqual(["200 SITE SHBIG: SHARED_OK"]);
    expect(await a.send("SITE SHBIG other 30000")).toEqual(["200 SITE SHBIG: SHARED_TOO_LARGE"]);
    expect(await a.send("SITE SHDEL big any")).toEqual(["200 SITE SHDEL: SHARED_OK"]);
    expect(await a.send("SITE SHBIG other 30000")).toEqual(["200 SITE SHBIG: SHARED_OK"]);
    const b = await fixture.connect(daemon);
    expect(await b.send("NOOP")).toEqual(["200 NOOP command successful"]);
    expect(await b.send("SITE SHSET small any v")).toEqual(["200 SITE SHSET: SHARED_OK"]);
  });

  it("outlives the module's instance across an rmmod then insmod, as mod_ban's table outlives its sessions", async () => {
    const { daemon } = await fixture.start(MODULES);
    const a = await fixture.connect(daemon);
    expect(await a.send("SITE SHSET kept any 1")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect((await dsoctl(["-s", daemon.socket, "rmmod", "mod_shared.c"])).stdout).toBe(
      "dsoctl: 'mod_shared.c' unloaded\n",
    );
    expect((await dsoctl(["-s", daemon.socket, "insmod", "mod_shared.c"])).stdout).toBe(
      "dsoctl: 'mod_shared.c' loaded\n",
    );
    const b = await fixture.connect(daemon);
    expect(await b.send("SITE SHGET kept")).toEqual(["200 SITE SHGET: kept=1 version 1"]);
  });

  it("outlives a SIGHUP: the re-read configuration's sessions and the old ones share one store", async () => {
    const { daemon, dir } = await fixture.start(MODULES);
    const old = await fixture.connect(daemon);
    expect(await old.send("SITE SHSET kept any 1")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    writeConfig(dir, [baseConfig(dir), 'ServerName "reloaded"', ...MODULES].join("\n"));
    daemon.signal("SIGHUP");
    await daemon.waitForLog(/received SIGHUP -- master server reparsing configuration file/);
    // A connection after that line is served by the reloaded configuration: with session workers it waits
    // until every worker has it (docs/directives.md, Reloading).
    const { client: greeted, greeting } = await FtpControl.connect(daemon.port);
    greeted.close();
    expect(greeting).toEqual(["220 dsod Server (reloaded) [127.0.0.1]"]);
    const fresh = await fixture.connect(daemon);
    expect(await fresh.send("SITE SHGET kept")).toEqual(["200 SITE SHGET: kept=1 version 1"]);
    expect(await fresh.send("SITE SHSET kept 1 2")).toEqual(["200 SITE SHSET: SHARED_OK"]);
    expect(await old.send("SITE SHGET kept")).toEqual(["200 SITE SHGET: kept=2 version 2"]);
  });
});
