/**
 * mod_core.c's directory and name commands over a real directory, through
 * dispatch: proftpd 1.3.8's reply texts, the path each command names, and
 * nothing outside the jail touched.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { CORE_FILE_FEATURES, defaultUmaskSettings, umaskDirective } from "../../../host/static/core-files.js";
import type { UmaskSettings } from "../../../host/static/core-files.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import { testCommand } from "../../helpers/session.js";
import { fileSession } from "./file-session.js";
import type { FileSession } from "./file-session.js";

let t: FileSession;

beforeEach(async () => {
  t = await fileSession();
});

afterEach(async () => {
  await t.close();
});

function outsideUnchanged(): void {
  expect(readdirSync(t.outside)).toEqual(["secret.txt"]);
  expect(readFileSync(path.join(t.outside, "secret.txt"), "utf8")).toBe("secret");
}

describe("CWD, CDUP and PWD", () => {
  it("changes into directories, symlinks resolved, and says where it is", async () => {
    expect(await t.send("PWD")).toEqual(['257 "/" is the current directory']);
    expect(await t.send("CWD sub")).toEqual(["250 CWD command successful"]);
    expect(await t.send("XPWD")).toEqual(['257 "/sub" is the current directory']);
    expect(await t.send("CDUP")).toEqual(["250 CDUP command successful"]);
    expect(await t.send("xcwd subl")).toEqual(["250 XCWD command successful"]);
    expect(t.session.cwd).toBe("/sub");
    expect(await t.send("XCUP")).toEqual(["250 XCUP command successful"]);
    expect(await t.send("CDUP")).toEqual(["250 CDUP command successful"]);
    expect(t.session.cwd).toBe("/");
    expect(await t.send("CWD ../../..")).toEqual(["250 CWD command successful"]);
    expect(t.session.cwd).toBe("/");
    expect(t.paths).toEqual([undefined, "/sub", undefined, "/", "/subl", "/", "/", "/"]);
  });

  it("refuses what is not a directory it may enter, with the path as typed", async () => {
    expect(await t.send("CWD nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("CWD file.txt")).toEqual(["550 file.txt: Not a directory"]);
    expect(await t.send("CWD out")).toEqual(["550 out: No such file or directory"]);
    expect(await t.send("CWD dangling")).toEqual(["550 dangling: No such file or directory"]);
    expect(await t.send(`CWD ${"x".repeat(300)}`)).toEqual([`550 ${"x".repeat(300)}: File name too long`]);
    // dir_realpath does not interpolate `~` (MKD's dir_canonical_path does).
    expect(await t.send("CWD ~")).toEqual(["550 ~: No such file or directory"]);
    expect(await t.send("MKD ~/tilde")).toEqual(['257 "/tilde" - Directory successfully created']);
    expect(await t.send("CWD ~/tilde")).toEqual(["550 ~/tilde: No such file or directory"]);
    expect(t.session.cwd).toBe("/");
  });

  it("checks the number of parameters", async () => {
    expect(await t.send("CWD")).toEqual(["501 Invalid number of parameters"]);
    expect(await t.send("PWD x")).toEqual(["501 Invalid number of parameters"]);
    expect(await t.send("CDUP x")).toEqual(["501 Invalid number of parameters"]);
  });
});

describe("MKD, RMD and DELE", () => {
  it("makes a directory with the Umask's mode and names its full path, quotes doubled", async () => {
    expect(await t.send("MKD new")).toEqual(['257 "/new" - Directory successfully created']);
    expect(statSync(path.join(t.root, "new")).mode & 0o777).toBe(0o755);
    await t.send("CWD new");
    expect(await t.send('XMKD say "hi"')).toEqual(['257 "/new/say ""hi""" - Directory successfully created']);
    expect(existsSync(path.join(t.root, "new", 'say "hi"'))).toBe(true);
    expect(t.paths.at(-1)).toBe('/new/say "hi"');
  });

  it("refuses existing names, asterisks and ways out", async () => {
    expect(await t.send("MKD sub")).toEqual(["550 sub: File exists"]);
    expect(await t.send("MKD a*b")).toEqual(["550 a*b: Invalid directory name"]);
    expect(await t.send("MKD out/evil")).toEqual(["550 out/evil: No such file or directory"]);
    expect(await t.send("MKD ../../made")).toEqual(['257 "/made" - Directory successfully created']);
    expect(existsSync(path.join(t.base, "made"))).toBe(false);
    expect(await t.send("MKD")).toEqual(["501 Invalid number of parameters"]);
    outsideUnchanged();
  });

  it("removes directories and files", async () => {
    expect(await t.send("RMD sub")).toEqual(["550 sub: Directory not empty"]);
    expect(await t.send("DELE sub")).toEqual(["550 sub: Is a directory"]);
    expect(await t.send("DELE sub/inner.txt")).toEqual(["250 DELE command successful"]);
    expect(await t.send("XRMD sub")).toEqual(["250 XRMD command successful"]);
    expect(existsSync(path.join(t.root, "sub"))).toBe(false);
    expect(await t.send("RMD sub")).toEqual(["550 sub: No such file or directory"]);
    expect(await t.send("RMD file.txt")).toEqual(["550 file.txt: Not a directory"]);
    expect(await t.send("RMD /")).toEqual(["550 /: Device or resource busy"]);
  });

  it("deletes a symlink, never what it points to, and nothing through one leading out", async () => {
    expect(await t.send("DELE out/secret.txt")).toEqual(["550 out/secret.txt: No such file or directory"]);
    expect(await t.send("DELE ln")).toEqual(["250 DELE command successful"]);
    expect(await t.send("DELE out")).toEqual(["250 DELE command successful"]);
    expect(readFileSync(path.join(t.root, "file.txt"), "utf8")).toBe("hello");
    outsideUnchanged();
  });
});

describe("RNFR and RNTO", () => {
  it("renames, then needs a new RNFR", async () => {
    expect(await t.send("RNTO x")).toEqual(["503 Bad sequence of commands"]);
    expect(await t.send("RNFR file.txt")).toEqual(["350 File or directory exists, ready for destination name"]);
    expect(await t.send("RNTO sub/moved.txt")).toEqual(["250 Rename successful"]);
    expect(readFileSync(path.join(t.root, "sub", "moved.txt"), "utf8")).toBe("hello");
    expect(await t.send("RNTO again.txt")).toEqual(["503 Bad sequence of commands"]);
    expect(t.paths).toEqual([undefined, "/file.txt", "/sub/moved.txt", undefined]);
  });

  it("renames a dangling symlink itself", async () => {
    expect(await t.send("RNFR dangling")).toEqual(["350 File or directory exists, ready for destination name"]);
    expect(await t.send("RNTO still-dangling")).toEqual(["250 Rename successful"]);
    expect(lstatSync(path.join(t.root, "still-dangling")).isSymbolicLink()).toBe(true);
  });

  it("replaces an existing name only with AllowOverwrite, and forgets RNFR after a failed RNTO", async () => {
    await t.send("RNFR file.txt");
    expect(await t.send("RNTO run.sh")).toEqual(["550 run.sh: Rename permission denied"]);
    expect(await t.send("RNTO other.txt")).toEqual(["503 Bad sequence of commands"]);
    t.overwrite = true;
    await t.send("RNFR file.txt");
    expect(await t.send("RNTO run.sh")).toEqual(["250 Rename successful"]);
    expect(readFileSync(path.join(t.root, "run.sh"), "utf8")).toBe("hello");
  });

  it("refuses names that do not exist and ways out", async () => {
    expect(await t.send("RNFR nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("RNFR out/secret.txt")).toEqual(["550 out/secret.txt: No such file or directory"]);
    await t.send("RNFR file.txt");
    expect(await t.send("RNTO out/stolen.txt")).toEqual(["550 out/stolen.txt: No such file or directory"]);
    expect(readFileSync(path.join(t.root, "file.txt"), "utf8")).toBe("hello");
    outsideUnchanged();
  });
});

describe("SIZE and MDTM", () => {
  it("refuses SIZE in ASCII mode, as proftpd built without PR_ALLOW_ASCII_MODE_SIZE", async () => {
    t.session.transferType = "A";
    expect(await t.send("SIZE file.txt")).toEqual(["550 SIZE not allowed in ASCII mode"]);
  });

  it("gives the size of regular files only", async () => {
    expect(await t.send("SIZE file.txt")).toEqual(["213 5"]);
    expect(await t.send("SIZE ln")).toEqual(["213 5"]);
    expect(await t.send("SIZE sub")).toEqual(["550 sub: not a regular file"]);
    expect(await t.send("SIZE nothere")).toEqual(["550 nothere: No such file or directory"]);
    expect(await t.send("SIZE out/secret.txt")).toEqual(["550 out/secret.txt: No such file or directory"]);
    expect(await t.send("SIZE")).toEqual(["501 Invalid number of parameters"]);
  });

  it("gives the modification time in UTC", async () => {
    expect(await t.send("MDTM file.txt")).toEqual(["213 20240305090730"]);
    expect(await t.send("MDTM sub")).toEqual(["550 sub: not a plain file"]);
    expect(await t.send("MDTM /../../outside/secret.txt")).toEqual([
      "550 /../../outside/secret.txt: No such file or directory",
    ]);
  });
});

describe("OPTS", () => {
  it("answers OPTS UTF8 as mod_lang.c, before login too", async () => {
    t.session.user = undefined;
    expect(await t.send("OPTS UTF8 ON")).toEqual(["200 UTF8 set to on"]);
    expect(await t.send("opts utf8 off")).toEqual(["200 UTF8 set to off"]);
    expect(await t.send("OPTS UTF8")).toEqual(["501 'OPTS UTF8' not understood"]);
    expect(await t.send("OPTS UTF8 maybe")).toEqual(["501 'OPTS UTF8' not understood"]);
  });

  it("runs OPTS MLST in mod_facts.c, and refuses what no module takes", async () => {
    expect(await t.send("OPTS MLST size;type;")).toEqual(["200 MLST OPTS size;type;"]);
    expect(await t.send("OPTS FOO bar")).toEqual(["500 'OPTS FOO' not understood"]);
    expect(await t.send("OPTS")).toEqual(["501 Invalid number of parameters"]);
    expect(await t.send("OPTS A 1 2 3 4 5 6 7 8")).toEqual(["550 OPTS: Invalid argument"]);
  });
});

describe("Umask", () => {
  function umask(argv: string[]): UmaskSettings {
    const settings = defaultUmaskSettings();
    umaskDirective(settings).run(testCommand(argv), { file: "/etc/dsod.conf", line: 3, first: false });
    return settings;
  }

  function refusal(argv: string[]): string {
    try {
      umask(argv);
    } catch (error) {
      if (isDsoError(error)) return error.message;
      throw error;
    }
    throw new Error("accepted");
  }

  it("reads one or two octal masks", () => {
    expect(defaultUmaskSettings()).toEqual({ umask: 0o022, dirUmask: undefined });
    expect(umask(["Umask", "027"])).toEqual({ umask: 0o027, dirUmask: undefined });
    expect(umask(["Umask", "0022", "077"])).toEqual({ umask: 0o022, dirUmask: 0o077 });
  });

  it("refuses what strtol would not read whole, and a wrong count", () => {
    expect(refusal(["Umask", "8"])).toBe("'8' is not a valid umask");
    expect(refusal(["Umask", "022", "0x1"])).toBe("'0x1' is not a valid umask");
    expect(refusal(["Umask"])).toBe("missing parameters");
    expect(refusal(["Umask", "1", "2", "3"])).toBe("missing parameters");
  });

  it("is mod_core.c's, and the session's files get it", () => {
    const core = createCoreModule([]);
    expect(core.module.directives.some((d) => d.name === "Umask")).toBe(true);
    expect(core.module.features).toEqual(expect.arrayContaining([...CORE_FILE_FEATURES]));
    expect(core.module.help.map((h) => h.command).slice(0, 5)).toEqual(["CWD", "XCWD", "CDUP", "XCUP", "QUIT"]);
    expect(core.module.help.at(-1)).toEqual({ command: "OPTS", text: "<sp> command [<sp> options]" });
  });
});
