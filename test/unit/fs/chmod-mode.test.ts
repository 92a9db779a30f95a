/**
 * SITE CHMOD's mode argument as site_chmod reads it: numbers as strtol with
 * base 0 after a `0`, or one symbolic clause with proftpd's own rules.
 */
import { describe, expect, it } from "vitest";
import { siteChmodMode } from "../../../host/fs/chmod-mode.js";

const FILE = 0o100644;
const UMASK = 0o022;

function mode(text: string, current = FILE): number | undefined {
  const result = siteChmodMode(text, current, UMASK);
  return result === undefined ? undefined : result & 0o7777;
}

describe("numeric modes", () => {
  it("reads octal with or without its 0, and 0x hex", () => {
    expect(mode("755")).toBe(0o755);
    expect(mode("0644")).toBe(0o644);
    expect(mode("4755")).toBe(0o4755);
    expect(mode("0x1ff")).toBe(0o777);
    expect(mode("0")).toBe(0);
  });

  it("refuses what is neither a number nor a clause", () => {
    expect(mode("8")).toBeUndefined();
    expect(mode("0x")).toBeUndefined();
    expect(mode("-1")).toBeUndefined();
  });
});

describe("symbolic modes", () => {
  it("adds and removes bits for the named classes, from the current mode", () => {
    expect(mode("u+x")).toBe(0o744);
    expect(mode("go-r")).toBe(0o600);
    expect(mode("ug+w")).toBe(0o664);
    expect(mode("a+x")).toBe(0o755);
    expect(mode("o+t")).toBe(0o1644);
  });

  it("starts `=` from no bits at all", () => {
    expect(mode("a=r")).toBe(0o444);
    expect(mode("u=rw")).toBe(0o600);
  });

  it("applies the umask when no class is named", () => {
    expect(mode("+x")).toBe(0o755);
    expect(mode("=rw")).toBe(0o644);
    expect(mode("-r", 0o100644)).toBe(0o200);
  });

  it("copies another class's bits", () => {
    expect(mode("u=g", 0o100640)).toBe(0o400);
    expect(mode("o+u", 0o100640)).toBe(0o646);
  });

  it("sets setuid for `s`, whatever the class (site_chmod's rule)", () => {
    expect(mode("g+s")).toBe(0o4644);
  });

  it("refuses X, a missing operator or permission, an unknown class, several clauses", () => {
    expect(mode("u+X")).toBeUndefined();
    expect(mode("u+")).toBeUndefined();
    expect(mode("rw")).toBeUndefined();
    expect(mode("z+x")).toBeUndefined();
    expect(mode("u+xz")).toBeUndefined();
    expect(mode("u+x,g+w")).toBeUndefined();
  });
});
