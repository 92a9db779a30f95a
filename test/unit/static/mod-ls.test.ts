/**
 * mod_ls.c's LIST, NLST and STAT over a real directory, through dispatch:
 * the exact listing sent over the (recorded) data connection, the replies,
 * and the jail's refusals.
 */
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dirColumns, fileSession, longLine } from "./file-session.js";
import type { FileSession } from "./file-session.js";

let t: FileSession;

beforeEach(async () => {
  t = await fileSession();
});

afterEach(async () => {
  await t.close();
});

const R = "Mar  5 09:07";

/** The lines of the last listing sent. */
function listed(): string[] {
  const last = t.sent.at(-1);
  if (last === undefined) throw new Error("nothing was sent");
  expect(last.text === "" || last.text.endsWith("\r\n")).toBe(true);
  return last.text === "" ? [] : last.text.slice(0, -2).split("\r\n");
}

function lines() {
  const sub = dirColumns(path.join(t.root, "sub"));
  const root = dirColumns(t.root);
  return {
    dot: longLine("drwxr-xr-x", root.nlink, root.size, R, "."),
    dotdot: longLine("drwxr-xr-x", root.nlink, root.size, R, ".."),
    hidden: longLine("-rw-------", 1, 1, R, ".hidden"),
    dangling: longLine("lrwxrwxrwx", 1, 7, R, "dangling -> nowhere"),
    file: longLine("-rw-r--r--", 1, 5, R, "file.txt"),
    ln: longLine("lrwxrwxrwx", 1, 8, R, "ln -> file.txt"),
    out: longLine("lrwxrwxrwx", 1, t.outside.length, R, `out -> ${t.outside}`),
    run: longLine("-rwxr-xr-x", 1, 2, R, "run.sh"),
    sub: longLine("drwxr-xr-x", sub.nlink, sub.size, "Jan  5  2023", "sub"),
    subl: longLine("lrwxrwxrwx", 1, 3, R, "subl -> sub"),
    inner: longLine("-rw-r--r--", 1, 5, R, "inner.txt"),
    subDot: longLine("drwxr-xr-x", sub.nlink, sub.size, "Jan  5  2023", "."),
  };
}

describe("LIST", () => {
  it("lists the working directory in the long format, sorted, dotfiles and unsafe symlinks left out", async () => {
    expect(await t.send("LIST")).toEqual(["226 Transfer complete"]);
    const l = lines();
    expect(listed()).toEqual([l.dangling, l.file, l.ln, l.out, l.run, l.sub, l.subl]);
    expect(t.sent[0]).toMatchObject({ what: "file list", ascii: false });
    expect(t.paths).toEqual(["/"]);
  });

  it("says the session's TYPE in the 150 line, with CRLFs either way", async () => {
    t.session.transferType = "A";
    await t.send("LIST sub");
    expect(t.sent[0]).toMatchObject({ what: "file list", ascii: true, text: `${lines().inner}\r\n` });
  });

  it("shows . and .. and dotfiles with -a (.. of the root is the root)", async () => {
    await t.send("LIST -a");
    const l = lines();
    expect(listed()).toEqual([l.dot, l.dotdot, l.hidden, l.dangling, l.file, l.ln, l.out, l.run, l.sub, l.subl]);
  });

  it("lists a directory's contents, a symlink to one too, and anything else as one line named as typed", async () => {
    const l = lines();
    await t.send("LIST sub");
    expect(listed()).toEqual([l.inner]);
    await t.send("LIST subl");
    expect(listed()).toEqual([l.inner]);
    await t.send("LIST -d sub");
    expect(listed()).toEqual([l.sub]);
    await t.send("LIST file.txt");
    expect(listed()).toEqual([l.file]);
    await t.send("LIST sub/inner.txt");
    expect(listed()).toEqual([longLine("-rw-r--r--", 1, 5, R, "sub/inner.txt")]);
    await t.send("LIST -l ln");
    expect(listed()).toEqual([l.ln]);
    expect(t.paths).toEqual(["/sub", "/subl", "/sub", "/file.txt", "/sub/inner.txt", "/ln"]);
  });

  it("leaves a dotfile out even when named, unless -a; -d alone shows nothing for the working directory", async () => {
    await t.send("LIST .hidden");
    expect(listed()).toEqual([]);
    await t.send("LIST -a .hidden");
    expect(listed()).toEqual([lines().hidden]);
    await t.send("LIST -d");
    expect(listed()).toEqual([]);
    await t.send("LIST -ad");
    expect(listed()).toEqual([lines().dot]);
  });

  it("takes a lone word that names a file as the path, not options", async () => {
    await t.send("MKD -x");
    await t.send("LIST -x");
    expect(listed()).toEqual([]);
    expect(t.paths.at(-1)).toBe("/-x");
  });

  it("expands globs in the last component", async () => {
    await t.send("LIST *.txt");
    expect(listed()).toEqual([lines().file]);
    await t.send("LIST sub/*");
    expect(listed()).toEqual([longLine("-rw-r--r--", 1, 5, R, "sub/inner.txt")]);
    expect(await t.send("LIST *.none")).toEqual(["226 Transfer complete"]);
    expect(listed()).toEqual([]);
  });

  it("knows -1, -t, -r, -S, -F, -n", async () => {
    await t.send("LIST -1");
    expect(listed()).toEqual(["dangling", "file.txt", "ln", "out", "run.sh", "sub", "subl"]);
    await t.send("LIST -1t");
    expect(listed()).toEqual(["dangling", "file.txt", "ln", "out", "run.sh", "subl", "sub"]);
    await t.send("LIST -1tr");
    expect(listed()).toEqual(["sub", "dangling", "file.txt", "ln", "out", "run.sh", "subl"]);
    await t.send("LIST -1S sub");
    expect(listed()).toEqual(["inner.txt"]);
    await t.send("LIST -1F");
    expect(listed()).toEqual(["dangling@", "file.txt", "ln@", "out@", "run.sh*", "sub/", "subl@"]);
    await t.send("LIST -F");
    const l = lines();
    expect(listed()).toEqual([l.dangling, l.file, l.ln, l.out, `${l.run}*`, `${l.sub}/`, `${l.subl}/`]);
    await t.send("LIST -n file.txt");
    expect(listed()).toEqual([
      `-rw-r--r--   1 ${String(process.getuid?.() ?? 0).padEnd(8)} ${String(process.getgid?.() ?? 0).padEnd(8)}        5 ${R} file.txt`,
    ]);
  });

  it("answers 450 for what cannot be listed, after an empty transfer (dolist opens the data connection first)", async () => {
    expect(await t.send("LIST nothere")).toEqual(["450 nothere: No such file or directory"]);
    expect(await t.send("LIST -la nothere")).toEqual(["450 nothere: No such file or directory"]);
    expect(await t.send("LIST out")).toEqual(["450 out: No such file or directory"]);
    expect(await t.send("LIST out/")).toEqual(["450 out/: No such file or directory"]);
    expect(await t.send("LIST dangling")).toEqual(["450 dangling: No such file or directory"]);
    expect(t.sent).toEqual(Array(5).fill({ what: "file list", ascii: false, text: "" }));
  });

  it("keeps `..` and absolute paths inside the jail", async () => {
    await t.send("LIST ../../..");
    const l = lines();
    expect(listed()).toEqual([l.dangling, l.file, l.ln, l.out, l.run, l.sub, l.subl]);
    expect(await t.send(`LIST ${t.outside}`)).toEqual([`450 ${t.outside}: No such file or directory`]);
  });
});

describe("NLST", () => {
  it("lists names in directory order, leaving out dotfiles and symlinks it cannot follow", async () => {
    expect(await t.send("NLST")).toEqual(["226 Transfer complete"]);
    expect(listed()).toEqual(["file.txt", "ln", "run.sh", "sub", "subl"]);
    expect(t.sent[0]).toMatchObject({ what: "file list", ascii: false });
    await t.send("NLST -a");
    expect(listed()).toEqual([".", "..", ".hidden", "file.txt", "ln", "run.sh", "sub", "subl"]);
  });

  it("names a directory's entries with the directory, or alone under -1", async () => {
    await t.send("NLST sub");
    expect(listed()).toEqual(["sub/inner.txt"]);
    await t.send("NLST ./sub/");
    expect(listed()).toEqual(["sub/inner.txt"]);
    await t.send("NLST -1 sub");
    expect(listed()).toEqual(["inner.txt"]);
    await t.send("NLST /sub");
    expect(listed()).toEqual(["/sub/inner.txt"]);
    expect(t.paths).toEqual(["/sub", "/sub", "/sub", "/sub"]);
  });

  it("lists a file as named, and glob matches that are files or directories", async () => {
    await t.send("NLST sub/../file.txt");
    expect(listed()).toEqual(["file.txt"]);
    await t.send("NLST *");
    expect(listed()).toEqual(["file.txt", "ln", "run.sh", "sub", "subl"]);
    await t.send("NLST -1 sub/*");
    expect(listed()).toEqual(["inner.txt"]);
  });

  it("answers 450 for what is not there, without a transfer", async () => {
    expect(await t.send("NLST *.none")).toEqual(["450 No files found"]);
    expect(await t.send("NLST nothere")).toEqual(["450 nothere: No such file or directory"]);
    expect(await t.send("NLST -a nothere")).toEqual(["450 -a nothere: No such file or directory"]);
    expect(await t.send("NLST out")).toEqual(["450 out: No such file or directory"]);
    expect(t.sent).toEqual([]);
  });
});

describe("STAT", () => {
  it("gives the session's status without a path", async () => {
    expect(await t.send("STAT")).toEqual([
      "211-Status of 'dsod'",
      " Connected from localhost (127.0.0.1)",
      " Logged in as alice",
      " TYPE: BINARY, STRUcture: File, Mode: Stream",
      " No data connection",
      "211 End of status",
    ]);
  });

  it("lists a path like `ls -la` on the control connection: 213 for a file, 212 for a directory", async () => {
    const l = lines();
    expect(await t.send("STAT file.txt")).toEqual(["213-Status of file.txt:", ` ${l.file}`, "213 End of status"]);
    expect(await t.send("STAT ln")).toEqual(["213-Status of ln:", ` ${l.ln}`, "213 End of status"]);
    expect(await t.send("STAT sub")).toEqual([
      "212-Status of sub:",
      ` ${l.subDot}`,
      ` ${l.dotdot}`,
      ` ${l.inner}`,
      "212 End of status",
    ]);
    expect(await t.send("STAT -t sub")).toEqual([
      "212-Status of sub:",
      ` ${l.subDot}`,
      ` ${l.dotdot}`,
      ` ${l.inner}`,
      "212 End of status",
    ]);
    expect(t.sent).toEqual([]);
  });

  it("answers 450 for what is not there", async () => {
    expect(await t.send("STAT nothere")).toEqual(["450 nothere: No such file or directory"]);
    expect(await t.send("STAT dangling")).toEqual(["450 dangling: No such file or directory"]);
    expect(await t.send("STAT out/secret.txt")).toEqual(["450 out/secret.txt: No such file or directory"]);
  });
});
