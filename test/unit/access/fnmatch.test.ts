import { describe, expect, it } from "vitest";
import { fnmatch, hasGlob } from "../../../host/access/fnmatch.js";

describe("fnmatch with no flags, as proftpd's <Directory> matching uses it", () => {
  it("matches literal text exactly", () => {
    expect(fnmatch("/srv/ftp", "/srv/ftp")).toBe(true);
    expect(fnmatch("/srv/ftp", "/srv/ftpx")).toBe(false);
    expect(fnmatch("/srv/ftp", "/srv/ft")).toBe(false);
  });

  it("lets * and ? match / and a leading dot", () => {
    expect(fnmatch("/srv/*", "/srv/a/b/c")).toBe(true);
    expect(fnmatch("/srv/*", "/srv/.hidden")).toBe(true);
    expect(fnmatch("/a?b", "/a/b")).toBe(true);
    expect(fnmatch("/srv/*", "/srv")).toBe(false);
    expect(fnmatch("*", "")).toBe(true);
    expect(fnmatch("a*b*c", "a-b-x-c")).toBe(true);
    expect(fnmatch("a*b*c", "a-c-b")).toBe(false);
  });

  it("reads bracket expressions: sets, ranges, negation, classes, a leading ]", () => {
    expect(fnmatch("/d/[abc]", "/d/b")).toBe(true);
    expect(fnmatch("/d/[a-c]x", "/d/dx")).toBe(false);
    expect(fnmatch("/d/[!a-c]", "/d/d")).toBe(true);
    expect(fnmatch("/d/[^a-c]", "/d/a")).toBe(false);
    expect(fnmatch("/d/[[:digit:]]", "/d/7")).toBe(true);
    expect(fnmatch("/d/[[:upper:]]", "/d/a")).toBe(false);
    expect(fnmatch("/d/[]x]", "/d/]")).toBe(true);
  });

  it("takes a [ without its ] and an escaped character literally", () => {
    expect(fnmatch("/d/[ab", "/d/[ab")).toBe(true);
    expect(fnmatch("/d/\\*", "/d/*")).toBe(true);
    expect(fnmatch("/d/\\*", "/d/x")).toBe(false);
    expect(fnmatch("/d/[\\]]", "/d/]")).toBe(true);
  });

  // A backtracking matcher would try about 4096^8 / 8! splits here: it would not finish before the test's timeout.
  it("answers many stars against a long path", () => {
    expect(fnmatch("*a*a*a*a*a*a*a*a*b", "a".repeat(4096))).toBe(false);
  });
});

describe("hasGlob: pr_str_is_fnmatch", () => {
  it("sees *, ?, and a [ closed by ], unless escaped", () => {
    expect(hasGlob("/srv/*")).toBe(true);
    expect(hasGlob("/srv/?")).toBe(true);
    expect(hasGlob("/srv/[ab]")).toBe(true);
    expect(hasGlob("/srv/[ab")).toBe(false);
    expect(hasGlob("/srv/\\*")).toBe(false);
    expect(hasGlob("/srv/plain")).toBe(false);
  });
});
