/**
 * Paths as an FTP user sees them: absolute inside the session's jail, `/`
 * being its root. Pure string work, after proftpd's dir_canonical_vpath
 * (src/dirtree.c): relative names are taken against the working directory,
 * `.` and empty components vanish, and `..` never climbs above `/`, as it
 * cannot above a chroot. A component with a NUL byte is kept with all that
 * follows, so the jail refuses the name (EINVAL) whatever `..` comes after it.
 * This is naming only; the jail itself is
 * SessionFilesystem, which opens each component without following links out.
 */

/**
 * The absolute virtual path for what the user typed, against `cwd`; `~` and
 * `~/x` start at `home` when one is given (the commands whose proftpd handler
 * interpolates `~`), and are plain names otherwise.
 */
export function virtualPath(cwd: string, typed: string, home?: string): string {
  let base = cwd;
  let rest = typed;
  if (home !== undefined && (typed === "~" || typed.startsWith("~/"))) {
    base = home;
    rest = typed.slice(2);
  }
  const parts: string[] = [];
  let poisoned = false;
  for (const part of (rest.startsWith("/") ? rest : `${base}/${rest}`).split("/")) {
    // A NUL byte makes the name invalid (EINVAL from the jail): no `..` after it may erase it.
    if (poisoned || part.includes("\0")) {
      poisoned = true;
      parts.push(part);
      continue;
    }
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}
