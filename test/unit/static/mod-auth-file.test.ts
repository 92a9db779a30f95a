/**
 * mod_auth_file.c as mod_auth.c asks it: the entry of a name (the first one),
 * the password check with crypt(3), and a hash to time a check against.
 */
import { describe, expect, it } from "vitest";
import { cryptHash } from "../../../host/auth/crypt.js";
import { AuthUserFile } from "../../../host/static/mod-auth-file.js";

describe("mod_auth_file.c as an AuthSource", () => {
  it("looks names up (the first entry wins), checks passwords with crypt(3), and reports skipped lines", async () => {
    const file = new AuthUserFile();
    file.setPath("/etc/dsod.passwd");
    const warnings = file.load(
      `demo:${cryptHash("pw", "md5", "abc")}:1:1::/home/demo:/bin/sh\nbroken\ndemo:${cryptHash("other", "md5", "abc")}:2:2::/:/bin/sh\n`,
    );
    expect(warnings).toEqual([
      "Malformed entry in AuthUserFile file (field count 1 != 7) on line 2 of '/etc/dsod.passwd', skipping",
    ]);
    const demo = file.lookup("demo");
    expect(demo).toMatchObject({ name: "demo", uid: 1, gid: 1, home: "/home/demo" });
    expect(await file.check(demo as NonNullable<typeof demo>, "pw")).toBe(true);
    expect(await file.check(demo as NonNullable<typeof demo>, "other")).toBe(false);
    expect(file.lookup("Demo")).toBeUndefined();
    expect(file.lookup("nobody")).toBeUndefined();
  });

  it("offers the first entry's hash for mod_delay.c to time, none without users", () => {
    const file = new AuthUserFile();
    expect(file.sampleHash()).toBeUndefined();
    const hash = cryptHash("pw", "sha512", "saltsalt");
    file.load(`a:${hash}:1:1::/:/bin/sh\n`);
    expect(file.sampleHash()).toBe(hash);
  });
});
