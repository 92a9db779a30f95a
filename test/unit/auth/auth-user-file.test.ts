import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { findUser, parseAuthUserFile } from "../../../host/auth/auth-user-file.js";
import { verifyCrypt } from "../../../host/auth/crypt.js";

const FILE = "/etc/dsod/ftpd.passwd";
const HASH = "$1$Xq3vT9pL$JBghsZQmY/O7lgUDaRSO40";

describe("parseAuthUserFile", () => {
  it("reads ftpasswd's output: name:hash:uid:gid:gecos:home:shell per line", () => {
    const text =
      `alice:${HASH}:1001:100:Alice Liddell:/srv/ftp/alice:/bin/false\n` +
      `bob:${HASH}:1002:1002::/srv/ftp/bob:/sbin/nologin\n`;
    expect(parseAuthUserFile(text, FILE)).toEqual({
      users: [
        {
          name: "alice",
          hash: HASH,
          uid: 1001,
          gid: 100,
          gecos: "Alice Liddell",
          home: "/srv/ftp/alice",
          shell: "/bin/false",
          line: 1,
        },
        {
          name: "bob",
          hash: HASH,
          uid: 1002,
          gid: 1002,
          gecos: "",
          home: "/srv/ftp/bob",
          shell: "/sbin/nologin",
          line: 2,
        },
      ],
      warnings: [],
    });
  });

  it("gives nothing for an empty file", () => {
    expect(parseAuthUserFile("", FILE)).toEqual({ users: [], warnings: [] });
  });

  it("skips '#' lines silently but counts them in line numbers", () => {
    const { users, warnings } = parseAuthUserFile(`# ftpd users\n#\ncarol:x:7:7::/home/carol:/bin/sh\n`, FILE);
    expect(warnings).toEqual([]);
    expect(users.map((u) => [u.name, u.line])).toEqual([["carol", 3]]);
  });

  it("treats an empty or indented-comment line as a malformed entry, as af_getpwent does", () => {
    const { users, warnings } = parseAuthUserFile(`\n  # note\ndave:x:8:8::/home/dave:/bin/sh\n`, FILE);
    expect(users.map((u) => [u.name, u.line])).toEqual([["dave", 3]]);
    expect(warnings).toEqual([
      `Malformed entry in AuthUserFile file (field count 1 != 7) on line 1 of '${FILE}', skipping`,
      `Malformed entry in AuthUserFile file (field count 1 != 7) on line 2 of '${FILE}', skipping`,
    ]);
  });

  it("skips entries with fewer than 7 fields and ignores fields after the 7th", () => {
    const { users, warnings } = parseAuthUserFile(
      `erin:x:9:9:/home/erin:/bin/sh\nfrank:x:10:10:Frank:/home/frank:/bin/sh:extra:more\n`,
      FILE,
    );
    expect(warnings).toEqual([
      `Malformed entry in AuthUserFile file (field count 6 != 7) on line 1 of '${FILE}', skipping`,
    ]);
    expect(users).toEqual([
      { name: "frank", hash: "x", uid: 10, gid: 10, gecos: "Frank", home: "/home/frank", shell: "/bin/sh", line: 2 },
    ]);
  });

  it("skips entries with an empty UID or GID", () => {
    const { users, warnings } = parseAuthUserFile(`gina:x::5::/h:/bin/sh\nhal:x:5:::/h:/bin/sh\n`, FILE);
    expect(users).toEqual([]);
    expect(warnings).toEqual([
      `AuthUserFile: missing UID/GID fields for user 'gina' on line 1 of '${FILE}', skipping`,
      `AuthUserFile: missing UID/GID fields for user 'hal' on line 2 of '${FILE}', skipping`,
    ]);
  });

  it("skips entries whose UID or GID strtol would not consume entirely", () => {
    const text = [
      "ivy:x:abc:1::/h:/bin/sh",
      "jack:x:12abc:1::/h:/bin/sh",
      "kate:x:0x10:1::/h:/bin/sh",
      "leo:x: :1::/h:/bin/sh",
      "mia:x:1:1.5::/h:/bin/sh",
      "ned:x:1:+::/h:/bin/sh",
      "",
    ].join("\n");
    const { users, warnings } = parseAuthUserFile(text, FILE);
    expect(users).toEqual([]);
    expect(warnings).toEqual([
      `AuthUserFile: non-numeric UID field 'abc' for user 'ivy' on line 1 of '${FILE}', skipping`,
      `AuthUserFile: non-numeric UID field '12abc' for user 'jack' on line 2 of '${FILE}', skipping`,
      `AuthUserFile: non-numeric UID field '0x10' for user 'kate' on line 3 of '${FILE}', skipping`,
      `AuthUserFile: non-numeric UID field ' ' for user 'leo' on line 4 of '${FILE}', skipping`,
      `AuthUserFile: non-numeric GID field '1.5' for user 'mia' on line 5 of '${FILE}', skipping`,
      `AuthUserFile: non-numeric GID field '+' for user 'ned' on line 6 of '${FILE}', skipping`,
    ]);
  });

  it("accepts what strtol accepts: leading spaces, a sign, leading zeros", () => {
    const text = "olga:x: 12:+7::/h:/bin/sh\npete:x:-0:007::/h:/bin/sh\nquin:x:4294967295:0::/h:/bin/sh\n";
    expect(parseAuthUserFile(text, FILE).users.map((u) => [u.name, u.uid, u.gid])).toEqual([
      ["olga", 12, 7],
      ["pete", 0, 7],
      ["quin", 4294967295, 0],
    ]);
  });

  it("refuses IDs that a 32-bit uid_t/gid_t would wrap instead of wrapping them", () => {
    const text = "root2:x:4294967296:1::/h:/bin/sh\nneg:x:1:-1::/h:/bin/sh\n";
    const { users, warnings } = parseAuthUserFile(text, FILE);
    expect(users).toEqual([]);
    expect(warnings).toEqual([
      `AuthUserFile: UID field '4294967296' for user 'root2' out of range (0-4294967295) on line 1 of '${FILE}', skipping`,
      `AuthUserFile: GID field '-1' for user 'neg' out of range (0-4294967295) on line 2 of '${FILE}', skipping`,
    ]);
  });

  it("keeps empty name, hash and gecos fields, which mod_auth_file does not check", () => {
    expect(parseAuthUserFile("::3:4:::\n", FILE)).toEqual({
      users: [{ name: "", hash: "", uid: 3, gid: 4, gecos: "", home: "", shell: "", line: 1 }],
      warnings: [],
    });
  });

  it("reads a last line without its newline whole, and keeps a CR as part of the shell", () => {
    const { users } = parseAuthUserFile("rita:x:1:1::/h:/bin/sh\r\nsam:x:2:2::/h:/bin/false", FILE);
    expect(users.map((u) => [u.name, u.shell])).toEqual([
      ["rita", "/bin/sh\r"],
      ["sam", "/bin/false"],
    ]);
  });

  it("clips names and fields to 100 characters in warnings, as proftpd's '%.100s'", () => {
    const name = "n".repeat(150);
    const uid = "9".repeat(120) + "z";
    const { warnings } = parseAuthUserFile(`${name}:x:${uid}:1::/h:/bin/sh\n`, FILE);
    expect(warnings).toEqual([
      `AuthUserFile: non-numeric UID field '${"9".repeat(100)}' for user '${"n".repeat(100)}' on line 1 of '${FILE}', skipping`,
    ]);
  });
});

describe("findUser", () => {
  const { users } = parseAuthUserFile(
    "tom:first:1:1::/a:/bin/sh\nTom:upper:2:2::/b:/bin/sh\ntom:second:3:3::/c:/bin/sh\n",
    FILE,
  );

  it("returns the first entry of that exact name, as af_getpwnam does", () => {
    expect(findUser(users, "tom")).toEqual({
      name: "tom",
      hash: "first",
      uid: 1,
      gid: 1,
      gecos: "",
      home: "/a",
      shell: "/bin/sh",
      line: 1,
    });
    expect(findUser(users, "Tom")?.hash).toBe("upper");
  });

  it("returns undefined for an unknown name", () => {
    expect(findUser(users, "TOM")).toBeUndefined();
    expect(findUser(users, "")).toBeUndefined();
  });
});

describe("examples/dsod.passwd", () => {
  const path = new URL("../../../examples/dsod.passwd", import.meta.url);
  const text = readFileSync(path, "utf8");

  it("is one ftpasswd --sha512 line for demo, uid/gid 1000, home /tmp, shell /bin/false", () => {
    expect(text).toMatch(/^demo:\$6\$[0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}:1000:1000::\/tmp:\/bin\/false\n$/);
    const { users, warnings } = parseAuthUserFile(text, "examples/dsod.passwd");
    expect(warnings).toEqual([]);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatchObject({
      name: "demo",
      uid: 1000,
      gid: 1000,
      gecos: "",
      home: "/tmp",
      shell: "/bin/false",
    });
  });

  it("lets demo log in with the password demo, and nothing else", () => {
    const demo = findUser(parseAuthUserFile(text, "examples/dsod.passwd").users, "demo");
    expect(demo).toBeDefined();
    expect(verifyCrypt("demo", demo?.hash ?? "")).toBe(true);
    expect(verifyCrypt("Demo", demo?.hash ?? "")).toBe(false);
  });
});
