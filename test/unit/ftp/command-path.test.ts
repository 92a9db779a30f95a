import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { commandPath } from "../../../host/ftp/command-path.js";
import { virtualPath } from "../../../host/fs/virtual-path.js";

function pathOf(text: string, cwd = "/pub", home = "/home/demo"): string | undefined {
  const line = parseCommandLine(text);
  if (line === undefined) throw new Error(text);
  return commandPath({ cwd, home }, line);
}

describe("virtualPath", () => {
  it.each([
    ["/", "a", "/a"],
    ["/a/b", "../c", "/a/c"],
    ["/a", "../../../..", "/"],
    ["/a", "/x/./y//z/", "/x/y/z"],
    ["/a", "..", "/"],
    ["/a", "~x", "/a/~x"],
    ["/", "", "/"],
  ])("in %s, %s is %s", (cwd, typed, expected) => {
    expect(virtualPath(cwd, typed)).toBe(expected);
  });

  it("keeps a component with a NUL byte and all after it, so no `..` erases it", () => {
    expect(virtualPath("/", "a\0b/../../c")).toBe("/a\0b/../../c");
  });

  it("takes ~ as a name unless a home is given", () => {
    expect(virtualPath("/a", "~")).toBe("/a/~");
    expect(virtualPath("/a", "~", "/")).toBe("/");
    expect(virtualPath("/a", "~/x", "/")).toBe("/x");
  });

  it("starts ~ at the home it is given", () => {
    expect(virtualPath("/", "~/up", "/home/demo")).toBe("/home/demo/up");
  });
});

describe("commandPath", () => {
  it.each([
    ["RETR file.txt", "/pub/file.txt"],
    ["STOR ../up/new bin", "/up/new bin"],
    ["CWD /", "/"],
    ["CDUP", "/"],
    ["PWD", "/pub"],
    ["LIST", "/pub"],
    ["LIST -la", "/pub"],
    ["LIST -l -a sub", "/pub/sub"],
    ["NLST sub", "/pub/sub"],
    ["MLSD", "/pub"],
    ["MLST x", "/pub/x"],
    ["MFMT 20260101000000 f", "/pub/f"],
    ["SITE CHMOD 644 f g", "/pub/f g"],
    ["SITE HELP", undefined],
    ["RETR", undefined],
    ["STOU", undefined],
    ["NOOP", undefined],
    ["DELE ~/f", "/home/demo/f"],
    ["LIST ~", "/home/demo"],
    ["CWD ~", "/pub/~"],
    ["RETR ~/f", "/home/demo/f"],
    ["SIZE ~/f", "/pub/~/f"],
  ])("%s names %s", (text, expected) => {
    expect(pathOf(text)).toBe(expected);
  });
});
