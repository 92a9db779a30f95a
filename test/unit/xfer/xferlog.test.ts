import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatXferlog, XferlogWriter, xferlogTime } from "../../../host/xfer/xferlog.js";
import type { XferlogEntry } from "../../../host/xfer/xferlog.js";

const entry: XferlogEntry = {
  // Local time, as pr_strtime3(t, FALSE) prints it.
  at: new Date(2025, 0, 5, 9, 3, 7),
  seconds: 2.9,
  remoteHost: "192.0.2.10",
  bytes: 1048576,
  filename: "/home/alice/report.pdf",
  type: "b",
  direction: "o",
  user: "alice",
  service: "ftp",
  status: "c",
};

describe("an xferlog(5) line (xferlog_write)", () => {
  it("has proftpd's fields in proftpd's order", () => {
    expect(formatXferlog(entry)).toBe(
      "Sun Jan 05 09:03:07 2025 2 192.0.2.10 1048576 /home/alice/report.pdf b _ o r alice ftp 0 * c\n",
    );
  });

  it("writes an upload, ASCII, incomplete, over FTPS", () => {
    expect(formatXferlog({ ...entry, type: "a", direction: "i", status: "i", service: "ftps", seconds: 0 })).toBe(
      "Sun Jan 05 09:03:07 2025 0 192.0.2.10 1048576 /home/alice/report.pdf a _ i r alice ftps 0 * i\n",
    );
  });

  it("turns white space and control characters in the name into _", () => {
    expect(formatXferlog({ ...entry, filename: "/a b\tc\r\nd\x7fé" })).toContain(" /a_b_c__d_é b _ o ");
  });

  it("pads the day of the month with a zero, unlike ctime", () => {
    expect(xferlogTime(new Date(2024, 11, 31, 23, 59, 0))).toBe("Tue Dec 31 23:59:00 2024");
  });
});

describe("XferlogWriter", () => {
  let dir: string;
  const problems: string[] = [];
  let writer: XferlogWriter;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "dsod-xferlog-"));
    problems.length = 0;
    writer = new XferlogWriter((message) => problems.push(message));
  });

  afterEach(async () => {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("appends to the log, creating it 0644", async () => {
    const log = path.join(dir, "xferlog");
    await writeFile(log, "earlier line\n");
    await writer.write(log, entry);
    await writer.write(log, { ...entry, status: "i" });
    const lines = (await readFile(log, "latin1")).split("\n");
    expect(lines[0]).toBe("earlier line");
    expect(lines.slice(1)).toEqual([
      formatXferlog(entry).trimEnd(),
      formatXferlog({ ...entry, status: "i" }).trimEnd(),
      "",
    ]);

    const fresh = path.join(dir, "fresh");
    await writer.write(fresh, entry);
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- reading the umask the file was created under
    expect((await stat(fresh)).mode & 0o777).toBe(0o644 & ~process.umask());
  });

  it("refuses a world-writable directory and a symlink, saying so once", async () => {
    const open = path.join(dir, "open");
    await mkdir(open);
    await chmod(open, 0o777);
    await writer.write(path.join(open, "xferlog"), entry);
    await writer.write(path.join(open, "xferlog"), entry);
    expect(problems).toEqual([`unable to open TransferLog '${open}/xferlog': ${open} is a world-writable directory`]);

    const target = path.join(dir, "target");
    await writeFile(target, "");
    await symlink(target, path.join(dir, "link"));
    await writer.write(path.join(dir, "link"), entry);
    expect(problems[1]).toMatch(/^unable to open TransferLog '.*\/link': /);
    expect(await readFile(target, "latin1")).toBe("");
  });
});
