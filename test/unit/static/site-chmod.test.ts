/**
 * mod_site.c's SITE CHMOD over a real directory, through dispatch.
 */
import { chmodSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SessionFilesystem } from "../../../host/fs/session-fs.js";
import { fileSession } from "./file-session.js";
import type { FileSession } from "./file-session.js";

let t: FileSession;

beforeEach(async () => {
  t = await fileSession();
});

afterEach(async () => {
  await t.close();
});

function modeOf(rel: string): number {
  return statSync(path.join(t.root, rel)).mode & 0o7777;
}

describe("SITE CHMOD", () => {
  it("sets octal and symbolic modes", async () => {
    expect(await t.send("SITE CHMOD 600 file.txt")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("file.txt")).toBe(0o600);
    expect(await t.send("site chmod u+x file.txt")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("file.txt")).toBe(0o700);
    expect(await t.send("SITE CHMOD go+r ln")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("file.txt")).toBe(0o744);
    expect(t.paths).toEqual(["/file.txt", "/file.txt", "/ln"]);
  });

  it("takes every word after the mode as the path, spaces kept", async () => {
    writeFileSync(path.join(t.root, "a  b.txt"), "x");
    chmodSync(path.join(t.root, "a  b.txt"), 0o644);
    expect(await t.send("SITE CHMOD 640 a  b.txt")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("a  b.txt")).toBe(0o640);
  });

  it("uses the Umask for a clause that names no class", async () => {
    t.core.umask = 0o077;
    expect(await t.send("SITE CHMOD +x run.sh")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("run.sh")).toBe(0o755);
    expect(await t.send("SITE CHMOD =rw file.txt")).toEqual(["200 SITE CHMOD command successful"]);
    expect(modeOf("file.txt")).toBe(0o600);
  });

  it("refuses missing paths, bad modes and ways out, changing nothing", async () => {
    expect(await t.send("SITE CHMOD 644 nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("SITE CHMOD u+X file.txt")).toEqual(["550 'u+X': invalid mode"]);
    expect(await t.send("SITE CHMOD 777 out/secret.txt")).toEqual(["550 out/secret.txt: No such file or directory"]);
    expect(await t.send("SITE CHMOD 644")).toEqual([
      "500-'SITE CHMOD 644' not understood",
      "500 'SITE' not understood",
    ]);
    expect(await t.send("SITE CHMOD")).toEqual(["500-'SITE CHMOD' not understood", "500 'SITE' not understood"]);
    expect(modeOf("file.txt")).toBe(0o644);
    expect(statSync(path.join(t.outside, "secret.txt")).mode & 0o777).toBe(0o644);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "names the whole argument when chmod itself fails (here: root acting for another owner)",
    async () => {
      const fs = await SessionFilesystem.open(t.root, { umask: 0o022, owner: { uid: 4321, gid: 4321 } });
      try {
        t.session.fs = fs;
        expect(await t.send("SITE CHMOD 600 file.txt")).toEqual(["550 CHMOD 600 file.txt: Operation not permitted"]);
      } finally {
        await fs.close();
      }
    },
  );

  it("has its syntax in SITE HELP", async () => {
    expect(await t.send("SITE HELP CHMOD")).toEqual([
      "214-The following SITE commands are recognized (* =>'s unimplemented)",
      " Syntax: SITE CHMOD <sp> mode <sp> pathname",
      "214 Direct comments to root@localhost",
    ]);
    expect(await t.send("SITE HELP")).toEqual([
      "214-The following SITE commands are recognized (* =>'s unimplemented)",
      " HELP",
      " CHMOD",
      "214 Direct comments to root@localhost",
    ]);
  });
});
