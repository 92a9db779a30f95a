/**
 * SITE CHMOD's mode argument as proftpd 1.3.8's site_chmod (mod_site.c)
 * reads it: a number (octal, with or without its leading 0, or `0x` hex, as
 * strtol with base 0 reads it after a `0` is put in front), or one symbolic
 * clause `[ugoa]*[+-=][rwxstugo]+`. Pure: the file's current mode and the
 * session's umask in, the new mode out.
 */

/** The new mode, or undefined for site_chmod's `'<mode>': invalid mode`. */
export function siteChmodMode(text: string, currentMode: number, umask: number): number | undefined {
  const padded = text.startsWith("0") ? text : `0${text}`;
  const hex = /^0[xX]([0-9a-fA-F]+)/.exec(padded);
  if (hex !== null && hex[0].length === padded.length) return Number.parseInt(hex[1] as string, 16);
  const octal = /^0[0-7]*/.exec(padded);
  if (octal !== null && octal[0].length === padded.length) return Number.parseInt(padded, 8);
  return symbolicMode(text, currentMode, umask);
}

/** The permission bits a `what` letter adds (site_chmod's mode_op). */
function letterBits(letter: string, current: number): number | undefined {
  switch (letter) {
    case "r":
      return 0o444;
    case "w":
      return 0o222;
    case "x":
      return 0o111;
    case "s":
      // S_ISUID only, whoever the clause names: site_chmod's own rule.
      return 0o4000;
    case "t":
      return 0o1000;
    case "o":
      return (current & 0o7) | ((current & 0o7) << 3) | ((current & 0o7) << 6);
    case "g":
      return ((current & 0o70) >> 3) | (current & 0o70) | ((current & 0o70) << 3);
    case "u":
      return ((current & 0o700) >> 6) | ((current & 0o700) >> 3) | (current & 0o700);
    default:
      // `X` included: proftpd does not implement it.
      return undefined;
  }
}

/** The bits a `who` letter leaves alone; no letter at all means the umask's. */
function whoMask(letter: string | undefined, umask: number): number | undefined {
  switch (letter) {
    case "u":
      return 0o077;
    case "g":
      return 0o707;
    case "o":
      return 0o770;
    case "a":
      return 0o000;
    case undefined:
      return umask;
    default:
      return undefined;
  }
}

/**
 * site_chmod's symbolic branch: one clause only (no commas). For each `who`
 * letter in turn the `what` letters are collected and applied: `+` and `=`
 * add them, `-` removes them; `=` starts from no bits, the others from the
 * current mode.
 */
function symbolicMode(text: string, current: number, umask: number): number | undefined {
  const opAt = text.search(/[+\-=]/);
  if (opAt < 0) return undefined;
  const who = text.slice(0, opAt);
  const afterWho = text.slice(opAt);
  const whatAt = afterWho.search(/[rwxXstugo]/);
  if (whatAt < 0) return undefined;
  const how = afterWho[0] as string;
  const what = afterWho.slice(whatAt);
  let mode = how === "=" ? 0 : current;
  let whoAt = 0;
  for (;;) {
    const mask = whoMask(who[whoAt], umask);
    if (mask === undefined) return undefined;
    let bits = 0;
    for (const letter of what) {
      const add = letterBits(letter, current);
      if (add === undefined) return undefined;
      bits |= add;
    }
    if (how === "-") mode &= ~(bits & ~mask);
    else mode |= bits & ~mask;
    if (whoAt + 1 >= who.length) break;
    whoAt++;
  }
  return mode;
}
