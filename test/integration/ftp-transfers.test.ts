/**
 * Transfers at the protocol level, on the built dsod, with replies compared
 * line for line with proftpd 1.3.8's (bench/proftpd/compare.ts runs the same
 * exchanges on both): ABOR during a RETR as real clients send it, REST in
 * both directions, APPE, STOU, TYPE A on the wire, and uploads cut short.
 */
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, watch, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { patternBytes, run, siteFixture } from "./helpers/ftp-site.js";
import type { ServedSite } from "./helpers/ftp-site.js";

const fixture = siteFixture();
const ABORT_PY = fileURLToPath(new URL("../../bench/proftpd/abort.py", import.meta.url));
/** Far more than loopback buffers hold, so the RETR is still sending when ABOR arrives. */
const BIG = 256 * 1024 * 1024;

/** Resolves once `test(names in dir)` holds, checked at every change inotify reports (and once at the start). */
function whenDir(dir: string, test: (names: string[]) => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dir);
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${dir} never matched; it holds ${JSON.stringify(readdirSync(dir))}`));
    }, timeoutMs);
    const check = (): void => {
      if (!test(readdirSync(dir))) return;
      clearTimeout(timer);
      watcher.close();
      resolve();
    };
    watcher.on("change", check);
    check();
  });
}

/** The data connection of a transfer the server has accepted (a `150` came back). */
async function dataSocket(connect: (() => Promise<Socket>) | undefined): Promise<Socket> {
  if (connect === undefined) throw new Error("no data connection was set up");
  return connect();
}

function bigFile(served: ServedSite, name: string): void {
  const file = path.join(served.site.home, name);
  writeFileSync(file, "");
  truncateSync(file, BIG);
}

describe("ABOR during a RETR", () => {
  const expected = {
    retr: [`150 Opening BINARY mode data connection for big.bin (${BIG} bytes)`],
    abor: [["426 Transfer aborted. Data connection closed."], ["226 Abort successful"]],
    noop: ["200 NOOP command successful"],
  };

  it("answers 426 then 226 to ABOR sent in band", async () => {
    const served = await fixture.serve();
    bigFile(served, "big.bin");
    const result = await run("python3", [
      ABORT_PY,
      String(served.port),
      served.site.user,
      served.site.password,
      "big.bin",
      "plain",
    ]);
    expect(JSON.parse(result.stdout)).toEqual(expected);
  });

  // proftpd answers this one with 426 only: the urgent byte is ftplib's LF, so the ABOR line never ends for it.
  it("answers 426 then 226 to Python ftplib's abort() (ABOR with its last byte sent urgent)", async () => {
    const served = await fixture.serve();
    bigFile(served, "big.bin");
    const result = await run("python3", [
      ABORT_PY,
      String(served.port),
      served.site.user,
      served.site.password,
      "big.bin",
      "ftplib",
    ]);
    expect(JSON.parse(result.stdout)).toEqual(expected);
  });

  it("answers 426 then 226 to RFC 959's Telnet IP + Synch + ABOR, as BSD ftp and lftp send it (proftpd does)", async () => {
    const served = await fixture.serve();
    bigFile(served, "big.bin");
    const result = await run("python3", [
      ABORT_PY,
      String(served.port),
      served.site.user,
      served.site.password,
      "big.bin",
      "telnet",
    ]);
    expect(JSON.parse(result.stdout)).toEqual(expected);
  });
});

describe("restarts, appends, unique names", () => {
  // A restarted STOR writes into an existing file: proftpd's xfer_pre_stor asks for AllowOverwrite first (without it: 550 Overwrite permission denied).
  it("REST then RETR sends the rest; REST then STOR overwrites from the offset (AllowStoreRestart on)", async () => {
    const served = await fixture.serve(["AllowOverwrite on", "AllowStoreRestart on"]);
    const data = patternBytes(200_000, 11);
    writeFileSync(path.join(served.site.home, "r.bin"), data);
    const ftp = await fixture.login(served);
    expect(await ftp.send("TYPE I")).toEqual(["200 Type set to I"]);
    expect(await ftp.send("REST 150000")).toEqual([
      "350 Restarting at 150000. Send STORE or RETRIEVE to initiate transfer",
    ]);
    const tail = await ftp.retrieve("RETR r.bin");
    // proftpd counts what is left to send.
    expect(tail.first).toEqual(["150 Opening BINARY mode data connection for r.bin (50000 bytes)"]);
    expect(tail.final).toEqual(["226 Transfer complete"]);
    expect(tail.data.equals(data.subarray(150_000))).toBe(true);

    expect(await ftp.send("REST 1000")).toEqual([
      "350 Restarting at 1000. Send STORE or RETRIEVE to initiate transfer",
    ]);
    const patch = patternBytes(500, 12);
    const stored = await ftp.store("STOR r.bin", patch);
    expect([...stored.first, ...stored.final]).toEqual([
      "150 Opening BINARY mode data connection for r.bin",
      "226 Transfer complete",
    ]);
    expect(
      readFileSync(path.join(served.site.home, "r.bin")).equals(
        Buffer.concat([data.subarray(0, 1000), patch, data.subarray(1500)]),
      ),
    ).toBe(true);
    // The offset is used once: the next RETR starts at 0.
    expect((await ftp.retrieve("RETR r.bin")).data.length).toBe(200_000);
  });

  // With AllowOverwrite off, proftpd refuses the STOR for that first (550 r.txt: Overwrite permission denied); APPE still gets the 451.
  it("refuses REST in ASCII mode and restarts without AllowStoreRestart, as proftpd", async () => {
    const served = await fixture.serve(["AllowOverwrite on"]);
    writeFileSync(path.join(served.site.home, "r.txt"), "0123456789");
    const ftp = await fixture.login(served);
    expect(await ftp.send("TYPE A")).toEqual(["200 Type set to A"]);
    expect(await ftp.send("REST 3")).toEqual(["501 REST: Resuming transfers not allowed in ASCII mode"]);
    expect(await ftp.send("TYPE I")).toEqual(["200 Type set to I"]);
    expect(await ftp.send("REST abc")).toEqual(["501 REST requires a value greater than or equal to 0"]);
    expect(await ftp.send("REST 3")).toEqual(["350 Restarting at 3. Send STORE or RETRIEVE to initiate transfer"]);
    const refused = await ftp.store("STOR r.txt", Buffer.from("x"));
    expect(refused.first).toEqual(["451 r.txt: Append/Restart not permitted, try again"]);
    const appe = await ftp.store("APPE r.txt", Buffer.from("x"));
    expect(appe.first).toEqual(["451 r.txt: Append/Restart not permitted, try again"]);
    expect(readFileSync(path.join(served.site.home, "r.txt"), "utf8")).toBe("0123456789");
  });

  it("APPE appends to a file (AllowStoreRestart on) and creates a missing one", async () => {
    const served = await fixture.serve(["AllowStoreRestart on"]);
    writeFileSync(path.join(served.site.home, "log.txt"), "one\n");
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const appended = await ftp.store("APPE log.txt", Buffer.from("two\n"));
    expect([...appended.first, ...appended.final]).toEqual([
      "150 Opening BINARY mode data connection for log.txt",
      "226 Transfer complete",
    ]);
    const created = await ftp.store("APPE new.txt", Buffer.from("new\n"), "port");
    expect([...created.first, ...created.final]).toEqual([
      "150 Opening BINARY mode data connection for new.txt",
      "226 Transfer complete",
    ]);
    expect(readFileSync(path.join(served.site.home, "log.txt"), "utf8")).toBe("one\ntwo\n");
    expect(readFileSync(path.join(served.site.home, "new.txt"), "utf8")).toBe("new\n");
  });

  // proftpd checks AllowOverwrite against the file mkstemp has just made: without it, STOU is `550 ftpXXXXXX: Overwrite permission denied`.
  it("STOU stores under a fresh name it tells in `150 FILE: name`, never over an existing file", async () => {
    const served = await fixture.serve(["AllowOverwrite on"]);
    writeFileSync(path.join(served.site.home, "taken.txt"), "mine\n");
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const names: string[] = [];
    for (const command of ["STOU", "STOU taken.txt"]) {
      const result = await ftp.store(command, Buffer.from(`${command}\n`));
      const match = /^150 FILE: (\S+)$/.exec(result.first[0] ?? "");
      expect(match, result.first.join(" / ")).not.toBeNull();
      expect(result.final).toEqual(["226 Transfer complete"]);
      const name = match?.[1] ?? "";
      expect(name).toMatch(/^ftp[A-Za-z0-9]{6}$/);
      expect(readFileSync(path.join(served.site.home, name), "utf8")).toBe(`${command}\n`);
      names.push(name);
    }
    expect(names[0]).not.toBe(names[1]);
    expect(readFileSync(path.join(served.site.home, "taken.txt"), "utf8")).toBe("mine\n");
  });
});

describe("TYPE A", () => {
  it("sends CRLF line ends on the wire and stores LF, counting the file's own bytes in 150", async () => {
    const served = await fixture.serve();
    writeFileSync(path.join(served.site.home, "mixed.txt"), "one\r\ntwo\nthree\r\n");
    const ftp = await fixture.login(served);
    expect(await ftp.send("TYPE A")).toEqual(["200 Type set to A"]);
    const down = await ftp.retrieve("RETR mixed.txt");
    expect(down.first).toEqual(["150 Opening ASCII mode data connection for mixed.txt (16 bytes)"]);
    expect(down.data.toString("latin1")).toBe("one\r\ntwo\r\nthree\r\n");
    const up = await ftp.store("STOR dos.txt", Buffer.from("a\r\nb\nc\r\n\r\n", "latin1"));
    expect([...up.first, ...up.final]).toEqual([
      "150 Opening ASCII mode data connection for dos.txt",
      "226 Transfer complete",
    ]);
    expect(readFileSync(path.join(served.site.home, "dos.txt"), "latin1")).toBe("a\nb\nc\n\n");
    const list = await ftp.retrieve("NLST");
    expect(list.data.toString("latin1")).toBe("dos.txt\r\nmixed.txt\r\n");
    expect(await ftp.send("TYPE I")).toEqual(["200 Type set to I"]);
    const binary = await ftp.retrieve("RETR mixed.txt");
    expect(binary.data.toString("latin1")).toBe("one\r\ntwo\nthree\r\n");
  });
});

describe("uploads cut short", () => {
  it("a client that dies mid-STOR (data connection reset) leaves neither the file nor its hidden copy (HiddenStores on), as proftpd", async () => {
    const served = await fixture.serve(["HiddenStores on"]);
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const data = await ftp.dataConnection("pasv");
    expect(await ftp.send("STOR cut.bin")).toEqual(["150 Opening BINARY mode data connection for cut.bin"]);
    const socket = await dataSocket(data.socket);
    socket.write(patternBytes(1024 * 1024, 13));
    // The server has read it all when the hidden file holds it: a reset arriving while sent data still
    // waits unread is reported by libuv as a clean end (its POLLHUP short cut), a complete upload here.
    const hidden = path.join(served.site.home, ".in.cut.bin.");
    await whenDir(served.site.home, (names) => names.includes(".in.cut.bin.") && statSync(hidden).size === 1024 * 1024);
    // A reset, not a FIN: in stream mode a closed data connection is the end of the file, a complete upload.
    socket.resetAndDestroy();
    ftp.close();
    await whenDir(served.site.home, (names) => !names.includes(".in.cut.bin."));
    expect(readdirSync(served.site.home)).toEqual([]);
  });

  it("ABOR during a STOR: 426 then 226, and nothing left behind (HiddenStores on)", async () => {
    const served = await fixture.serve(["HiddenStores on"]);
    const ftp = await fixture.login(served);
    await ftp.send("TYPE I");
    const data = await ftp.dataConnection("pasv");
    expect(await ftp.send("STOR aborted.bin")).toEqual(["150 Opening BINARY mode data connection for aborted.bin"]);
    const socket = await dataSocket(data.socket);
    socket.write(patternBytes(256 * 1024, 14));
    await whenDir(served.site.home, (names) => names.includes(".in.aborted.bin."));
    ftp.write("ABOR");
    expect([await ftp.reply(), await ftp.reply()]).toEqual([
      ["426 Transfer aborted. Data connection closed."],
      ["226 Abort successful"],
    ]);
    socket.destroy();
    expect(existsSync(path.join(served.site.home, "aborted.bin"))).toBe(false);
    await whenDir(served.site.home, (names) => names.length === 0);
    expect(await ftp.send("NOOP")).toEqual(["200 NOOP command successful"]);
  });
});
