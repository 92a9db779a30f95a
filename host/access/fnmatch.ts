/**
 * fnmatch(3) with no flags, as proftpd's <Directory> matching calls
 * pr_fnmatch(pattern, path, 0) (src/dirtree.c recur_match_path): `*` and `?`
 * also match `/`, a leading `.` is not special, `\` escapes the next
 * character, and `[...]` is a bracket expression (`!` or `^` negates, `a-z`
 * ranges, `[:alpha:]` classes); a `[` without its `]` is an ordinary character.
 */

const CLASSES: Readonly<Record<string, (c: string) => boolean>> = {
  alnum: (c) => /^[A-Za-z0-9]$/.test(c),
  alpha: (c) => /^[A-Za-z]$/.test(c),
  blank: (c) => c === " " || c === "\t",
  cntrl: (c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f,
  digit: (c) => /^[0-9]$/.test(c),
  graph: (c) => c.charCodeAt(0) > 0x20 && c.charCodeAt(0) < 0x7f,
  lower: (c) => /^[a-z]$/.test(c),
  print: (c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) < 0x7f,
  punct: (c) => /^[!-/:-@[-`{-~]$/.test(c),
  space: (c) => /^[ \t\n\v\f\r]$/.test(c),
  upper: (c) => /^[A-Z]$/.test(c),
  xdigit: (c) => /^[0-9A-Fa-f]$/.test(c),
};

/** A parsed bracket expression: whether `c` is in it, and where the pattern goes on after its `]`. */
interface Bracket {
  readonly test: (c: string) => boolean;
  readonly end: number;
}

/** Parses the bracket expression whose `[` is at `start`; undefined when no `]` closes it. */
function parseBracket(pattern: string, start: number): Bracket | undefined {
  let i = start + 1;
  const negated = pattern[i] === "!" || pattern[i] === "^";
  if (negated) i++;
  const tests: Array<(c: string) => boolean> = [];
  let first = true;
  while (i < pattern.length) {
    let ch = pattern[i] as string;
    if (ch === "]" && !first) {
      const members = tests;
      return { test: (c) => members.some((t) => t(c)) !== negated, end: i + 1 };
    }
    first = false;
    if (ch === "[" && pattern[i + 1] === ":") {
      const close = pattern.indexOf(":]", i + 2);
      const test = close < 0 ? undefined : CLASSES[pattern.slice(i + 2, close)];
      if (test !== undefined) {
        tests.push(test);
        i = close + 2;
        continue;
      }
    }
    if (ch === "\\" && i + 1 < pattern.length) {
      i++;
      ch = pattern[i] as string;
    }
    let hi = ch;
    if (pattern[i + 1] === "-" && i + 2 < pattern.length && pattern[i + 2] !== "]") {
      i += 2;
      hi = pattern[i] as string;
      if (hi === "\\" && i + 1 < pattern.length) {
        i++;
        hi = pattern[i] as string;
      }
    }
    const lo = ch;
    const top = hi;
    tests.push((c) => c >= lo && c <= top);
    i++;
  }
  return undefined;
}

/**
 * Matches one pattern element (not `*`) at `p` against the character `c`;
 * returns where the pattern goes on, or -1 when it does not match.
 */
function matchOne(pattern: string, p: number, c: string): number {
  const ch = pattern[p] as string;
  if (ch === "?") return p + 1;
  if (ch === "[") {
    const bracket = parseBracket(pattern, p);
    if (bracket === undefined) return c === "[" ? p + 1 : -1;
    return bracket.test(c) ? bracket.end : -1;
  }
  if (ch === "\\" && p + 1 < pattern.length) return pattern[p + 1] === c ? p + 2 : -1;
  return ch === c ? p + 1 : -1;
}

/**
 * The classic glob walk: on a mismatch, go back to the last `*` and let it
 * take one more character. Time is bounded by pattern length times text
 * length, whatever the number of `*` (a user's long path cannot make it blow up).
 */
function matchFrom(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === "*") {
      starP = ++p;
      starT = t;
      continue;
    }
    const next = p < pattern.length ? matchOne(pattern, p, text[t] as string) : -1;
    if (next >= 0) {
      p = next;
      t++;
    } else if (starP >= 0) {
      p = starP;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** True when `text` matches `pattern`. */
export function fnmatch(pattern: string, text: string): boolean {
  return matchFrom(pattern, text);
}

/** pr_str_is_fnmatch: a `*` or `?`, or a `]` after a `[`, not escaped with `\`. */
export function hasGlob(text: string): boolean {
  let bracket = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "?" || ch === "*") return true;
    if (ch === "\\") {
      if (i + 1 === text.length) return false;
      i++;
    } else if (ch === "[") {
      bracket = true;
    } else if (ch === "]" && bracket) {
      return true;
    }
  }
  return false;
}
