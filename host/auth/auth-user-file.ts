/**
 * proftpd's AuthUserFile: passwd(5)-style lines `name:hash:uid:gid:gecos:home:shell`,
 * as `ftpasswd --passwd` writes them. The checks mirror mod_auth_file.c
 * (`af_getpwent` and `af_parse_passwd`): a line starting with `#` is a comment,
 * and any other line that fails a check is logged and skipped, never fatal;
 * the remaining entries still authenticate. (proftpd only refuses the file at
 * startup under `AuthFileOptions SyntaxCheck`, when any line was skipped.)
 *
 * Pure: the daemon reads the file and passes its text here.
 */

export interface AuthUser {
  name: string;
  /** The crypt(3) hash, checked with `verifyCrypt`. */
  hash: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
  /** 1-based line of the entry in its file. */
  line: number;
}

export interface AuthUserFileEntries {
  /** Valid entries, in file order. */
  users: AuthUser[];
  /** One line per skipped entry, naming the file and line. */
  warnings: string[];
}

/** NPWDFIELDS in mod_auth_file.c. */
const FIELD_COUNT = 7;

/** uid_t and gid_t are 32-bit unsigned. */
const ID_MAX = 0xffff_ffff;

/**
 * What `strtol(field, &ptr, 10)` consumes entirely, which is the test
 * mod_auth_file applies (`*ptr != '\0'` means non-numeric): optional leading
 * isspace(3) characters, an optional sign, then decimal digits.
 */
const STRTOL_DECIMAL = /^[\t\n\v\f\r ]*[+-]?[0-9]+$/;

/** proftpd prints names and fields with `'%.100s'`, so a long one cannot flood the log. */
function clip(text: string): string {
  return text.slice(0, 100);
}

/**
 * Parses an AuthUserFile's text. `file` is only used in the warnings.
 * Every skipped line gives exactly one warning, so `warnings.length` is the
 * "bad entries (N) detected" count proftpd's SyntaxCheck reports.
 */
export function parseAuthUserFile(text: string, file: string): AuthUserFileEntries {
  const users: AuthUser[] = [];
  const warnings: string[] = [];
  // Lines end at '\n' only, as with fgets(3): a CRLF file keeps its '\r' in
  // the shell field, as in proftpd. (proftpd also cuts the last character of
  // a final line that lacks its newline; we do not copy that slip.)
  const lines = text.split("\n");
  // A final newline ends the last line; it does not start an empty one.
  if (lines.at(-1) === "") lines.pop();

  for (const [index, content] of lines.entries()) {
    const line = index + 1;
    const where = `on line ${line} of '${file}', skipping`;
    // af_getpwent skips only lines whose first character is '#'. An empty line
    // is not skipped: it is one field, so it fails the field count below.
    if (content.startsWith("#")) continue;

    // af_parse_passwd splits at ':' into at most 7 fields; anything after a
    // 7th ':' is ignored, so extra fields are dropped without a warning.
    const fields = content.split(":");
    if (fields.length < FIELD_COUNT) {
      warnings.push(`Malformed entry in AuthUserFile file (field count ${fields.length} != ${FIELD_COUNT}) ${where}`);
      continue;
    }
    const [name = "", hash = "", uidText = "", gidText = "", gecos = "", home = "", shell = ""] = fields;

    if (uidText === "" || gidText === "") {
      warnings.push(`AuthUserFile: missing UID/GID fields for user '${clip(name)}' ${where}`);
      continue;
    }
    const uid = parseId("UID", uidText, name, where, warnings);
    if (uid === null) continue;
    const gid = parseId("GID", gidText, name, where, warnings);
    if (gid === null) continue;

    users.push({ name, hash, uid, gid, gecos, home, shell, line });
  }

  return { users, warnings };
}

function parseId(kind: "UID" | "GID", text: string, name: string, where: string, warnings: string[]): number | null {
  if (!STRTOL_DECIMAL.test(text)) {
    warnings.push(`AuthUserFile: non-numeric ${kind} field '${clip(text)}' for user '${clip(name)}' ${where}`);
    return null;
  }
  // proftpd stores strtol's long in a 32-bit uid_t/gid_t, so "-1" becomes
  // 4294967295 and "4294967296" becomes 0 (root). We refuse such values
  // instead of wrapping them.
  const signed = text.trim();
  const negative = signed.startsWith("-");
  const value = Number(signed.replace(/^[+-]/, ""));
  if ((negative && value !== 0) || value > ID_MAX) {
    warnings.push(
      `AuthUserFile: ${kind} field '${clip(text)}' for user '${clip(name)}' out of range (0-${ID_MAX}) ${where}`,
    );
    return null;
  }
  return value;
}

/**
 * The first entry named exactly `name` (case-sensitive), as mod_auth_file's
 * `af_getpwnam` returns the first `strcmp` match; later duplicates never win.
 */
export function findUser(users: readonly AuthUser[], name: string): AuthUser | undefined {
  return users.find((user) => user.name === name);
}
