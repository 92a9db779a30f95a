import { describe, expect, it } from "vitest";
import { FsError } from "../../../host/fs/session-fs.js";
import { errnoOf, strerror } from "../../../host/ftp/strerror.js";

describe("strerror for data connections", () => {
  it("words network and file errnos as glibc does", () => {
    expect(strerror("ECONNREFUSED")).toBe("Connection refused");
    expect(strerror("ETIMEDOUT")).toBe("Connection timed out");
    expect(strerror("ECONNRESET")).toBe("Connection reset by peer");
    expect(strerror("EHOSTUNREACH")).toBe("No route to host");
    expect(strerror("EADDRNOTAVAIL")).toBe("Cannot assign requested address");
    expect(strerror("ENOSPC")).toBe("No space left on device");
    expect(strerror("EDQUOT")).toBe("Disk quota exceeded");
    expect(strerror("EIO")).toBe("Input/output error");
  });

  it("keeps a name it does not know", () => {
    expect(strerror("ENOTANERRNO")).toBe("ENOTANERRNO");
  });

  it("finds the errno of a Node system error and of an FsError, not of a stream error", () => {
    expect(errnoOf(Object.assign(new Error("x"), { code: "EPIPE" }))).toBe("EPIPE");
    expect(errnoOf(new FsError("ENOENT", "No such file or directory"))).toBe("ENOENT");
    expect(errnoOf(Object.assign(new Error("x"), { code: "ERR_STREAM_PREMATURE_CLOSE" }))).toBeUndefined();
    expect(errnoOf("EPIPE")).toBeUndefined();
  });
});
