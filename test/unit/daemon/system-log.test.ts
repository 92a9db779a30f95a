import { chmodSync, lstatSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DaemonLogSink, openSystemLog, systemLogDirective } from "../../../host/daemon/system-log.js";
import type { SystemLogTarget } from "../../../host/daemon/system-log.js";
import { isDsoError } from "../../../host/errors.js";
import type { LogPriority } from "../../../host/modules/module-host.js";
import { testCommand } from "../../helpers/session.js";

const LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ dsod\[(\d+)\]: (.*)$/;

function directive(argv: string[]): { target: SystemLogTarget | undefined; error: string | undefined } {
  let target: SystemLogTarget | undefined;
  try {
    systemLogDirective((t) => (target = t)).run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
    return { target, error: undefined };
  } catch (error) {
    if (isDsoError(error)) return { target, error: error.message };
    throw error;
  }
}

function dir(): string {
  return mkdtempSync(path.join(tmpdir(), "dsod-syslog-"));
}

function recorder(): { lines: Array<[LogPriority, string]>; log: (priority: LogPriority, message: string) => void } {
  const lines: Array<[LogPriority, string]> = [];
  return { lines, log: (priority, message) => lines.push([priority, message]) };
}

describe("SystemLog (mod_log.c set_systemlog)", () => {
  it("takes an absolute file or none, in any case", () => {
    expect(directive(["SystemLog", "/var/log/dsod/../dsod.log"])).toEqual({
      target: { kind: "file", path: "/var/log/dsod.log" },
      error: undefined,
    });
    expect(directive(["SystemLog", "NONE"])).toEqual({ target: { kind: "none" }, error: undefined });
  });

  it("refuses a relative path, a missing parameter, and syslog, which Node.js cannot reach", () => {
    expect(directive(["SystemLog", "dsod.log"]).error).toBe("must be an absolute path");
    expect(directive(["SystemLog"]).error).toBe("missing parameters");
    expect(directive(["SystemLog", "syslog"]).error).toBe(
      "syslog is not supported: Node.js cannot write to the system logger's /dev/log datagram socket; leave SystemLog out to log to stderr (the journal under systemd), or name a file",
    );
  });
});

describe("openSystemLog (pr_log_openfile's checks)", () => {
  it("creates the file 0640 for appending, and appends to an existing one", () => {
    const file = path.join(dir(), "dsod.log");
    const sink = new DaemonLogSink(() => {}, 0);
    sink.apply({ kind: "file", path: file });
    sink.log("notice", "first");
    sink.close();
    expect(lstatSync(file).mode & 0o777).toBe(0o640);
    const again = new DaemonLogSink(() => {}, 0);
    again.apply({ kind: "file", path: file });
    again.log("notice", "second");
    again.close();
    expect(
      readFileSync(file, "utf8")
        .split("\n")
        .map((line) => LINE.exec(line)?.[2]),
    ).toEqual(["first", "second", undefined]);
  });

  it("refuses a symlink, a world-writable directory and a missing directory, with proftpd's texts", () => {
    const base = dir();
    writeFileSync(path.join(base, "real.log"), "");
    symlinkSync(path.join(base, "real.log"), path.join(base, "link.log"));
    const open = (file: string): string => {
      try {
        openSystemLog(file);
        return "opened";
      } catch (error) {
        return isDsoError(error) ? `${error.code}: ${error.message}` : String(error);
      }
    };
    expect(open(path.join(base, "link.log"))).toBe(
      `DSO_ERR_FILE: unable to open SystemLog '${base}/link.log': ${base}/link.log is a symbolic link`,
    );
    const open777 = path.join(base, "open");
    chmodSync(base, 0o777);
    expect(open(path.join(base, "dsod.log"))).toBe(
      `DSO_ERR_FILE: unable to open SystemLog '${base}/dsod.log': ${base} is a world-writable directory`,
    );
    expect(open(path.join(open777, "dsod.log"))).toMatch(
      /^DSO_ERR_FILE: unable to open SystemLog '.*\/open\/dsod\.log': ENOENT: no such file or directory/,
    );
  });
});

describe("DaemonLogSink", () => {
  it("passes lines to stderr until SystemLog is applied, then writes them to the file in proftpd's shape", () => {
    const stderr = recorder();
    const file = path.join(dir(), "dsod.log");
    const sink = new DaemonLogSink(stderr.log, 0);
    sink.log("notice", "before");
    sink.apply({ kind: "file", path: file });
    sink.log("info", "after");
    sink.log("debug", "not at debug level 0");
    sink.close();
    sink.log("notice", "closed");
    expect(stderr.lines).toEqual([
      ["notice", "before"],
      ["notice", "closed"],
    ]);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines.map((line) => LINE.exec(line)?.slice(1))).toEqual([[String(process.pid), "after"]]);
  });

  it("writes debug lines at a debug level above 0", () => {
    const file = path.join(dir(), "dsod.log");
    const sink = new DaemonLogSink(() => {}, 5);
    sink.apply({ kind: "file", path: file });
    sink.log("debug", "shown");
    sink.close();
    expect(LINE.exec(readFileSync(file, "utf8").trimEnd())?.[2]).toBe("shown");
  });

  it("discards every line with SystemLog none; undefined leaves stderr", () => {
    const stderr = recorder();
    const sink = new DaemonLogSink(stderr.log, 0);
    sink.apply(undefined);
    sink.log("notice", "kept");
    sink.apply({ kind: "none" });
    sink.log("error", "discarded");
    expect(stderr.lines).toEqual([["notice", "kept"]]);
  });

  it("goes back to stderr, saying why, when the file cannot be written (a full disk)", () => {
    const stderr = recorder();
    const sink = new DaemonLogSink(stderr.log, 0);
    sink.apply({ kind: "file", path: "/dev/full" });
    sink.log("notice", "lost?");
    sink.log("notice", "next");
    expect(stderr.lines).toEqual([
      ["error", "error writing SystemLog '/dev/full': ENOSPC: no space left on device, write; logging to stderr"],
      ["notice", "lost?"],
      ["notice", "next"],
    ]);
  });
});
