/**
 * Splits a proftpd.conf-style text into directive lines, following proftpd 1.3.8:
 * `pr_fsio_getline()` (src/fsio.c) joins backslash continuations,
 * `pr_parser_read_line()` (src/parser.c) drops blank and comment lines,
 * `pr_str_get_word()` (src/str.c) splits words and handles quotes,
 * `get_config_word()` (src/parser.c) expands `%{env:NAME}`, and
 * `pr_parser_parse_line()` (src/parser.c) fixes up `<Section ...>` tags.
 *
 * The lexer is pure: text and environment in, lines out.
 */
import { DsoError, ErrorCodes } from "../errors.js";
import type { DsoErrorOptions } from "../errors.js";

export interface ConfigLine {
  file: string;
  /** 1-based number of the physical line holding the directive's first character. */
  line: number;
  /**
   * The directive as written (case kept; proftpd matches names case-insensitively).
   * An opening tag `<IfModule x>` is `<IfModule`; a closing tag `</IfModule>` keeps its `>`.
   */
  name: string;
  args: string[];
}

export interface ConfigErrorOptions extends DsoErrorOptions {
  /** The directive the error is about, as written in the file. */
  directive?: string;
}

/**
 * Every configuration error, from the lexer or from a directive handler. proftpd
 * logs these as `fatal: <message> on line N of '<file>'` (src/parser.c), where a
 * handler's message is `<Directive>: <reason>` (CONF_ERROR in include/dirtree.h).
 */
export class ConfigError extends DsoError {
  readonly file: string;
  readonly line: number;
  readonly directive: string | undefined;

  constructor(message: string, file: string, line: number, options: ConfigErrorOptions = {}) {
    super(ErrorCodes.CONFIG, message, options);
    this.name = "ConfigError";
    this.file = file;
    this.line = line;
    this.directive = options.directive;
  }

  /** The text after proftpd's `fatal: ` prefix: `<message> on line N of '<file>'`. */
  proftpdText(): string {
    return `${this.message} on line ${this.line} of '${this.file}'`;
  }
}

/**
 * Upper bound on the characters that `%{env:...}` substitution may add to one file.
 * proftpd has no limit; this one keeps a hostile environment from making strings
 * longer than V8 allows (a RangeError) and is far above any real configuration.
 */
export const MAX_ENV_EXPANSION = 16 * 1024 * 1024;

const ENV_MARKER = "%{env:";

/** One physical line's contribution to a logical line. */
interface Segment {
  text: string;
  line: number;
}

/** proftpd's PR_ISSPACE: `isascii(c) && isspace(c)` in the C locale. */
function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

/** A continued physical line whose first non-space character is `#` is dropped whole (pr_fsio_getline). */
function isCommentSegment(text: string): boolean {
  let i = 0;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return text.charCodeAt(i) === 0x23;
}

/**
 * Splits a logical line into words like `pr_str_get_word(&ptr, 0)`:
 * - a word that starts with `#` ends the line (an inline comment), but `a#b` is a word;
 * - a word that starts with `"` runs to the next unescaped `"`, and inside it `\x` stands
 *   for `x`; proftpd runs an unterminated quote silently to the end of the line, which
 *   hides a missing quote's damage, so its index is returned and the line refused;
 * - outside quotes a backslash is an ordinary character, and a `"` after the first
 *   character is too;
 * - the character that ends a word (the closing quote or one space) is consumed, so
 *   `"a b"c` gives the two words `a b` and `c`.
 * Returns the words, the offset where the first one starts, and the index of a word whose
 * quote is never closed.
 */
function splitWords(text: string): { words: string[]; start: number; unterminated: number | undefined } {
  const words: string[] = [];
  let start = -1;
  let unterminated: number | undefined;
  let pos = 0;
  const end = text.length;
  for (;;) {
    while (pos < end && isSpace(text.charCodeAt(pos))) pos++;
    if (pos >= end || text.charCodeAt(pos) === 0x23) break;
    if (start < 0) start = pos;
    if (text.charCodeAt(pos) === 0x22) {
      pos++;
      const parts: string[] = [];
      let from = pos;
      while (pos < end && text.charCodeAt(pos) !== 0x22) {
        if (text.charCodeAt(pos) === 0x5c && pos + 1 < end) {
          parts.push(text.slice(from, pos));
          pos++;
          from = pos;
        }
        pos++;
      }
      parts.push(text.slice(from, pos));
      if (pos >= end) unterminated ??= words.length;
      words.push(parts.join(""));
    } else {
      const from = pos;
      while (pos < end && !isSpace(text.charCodeAt(pos))) pos++;
      words.push(text.slice(from, pos));
    }
    pos++;
  }
  return { words, start, unterminated };
}

/** Counts the characters env substitution has added so far in one `lexConfig` call. */
interface ExpansionBudget {
  used: number;
}

function lookupEnv(env: Readonly<Record<string, string | undefined>>, key: string): string {
  if (!Object.hasOwn(env, key)) return "";
  const value = env[key];
  return typeof value === "string" ? value : "";
}

/**
 * `get_config_word()`: every `%{env:NAME}` in a word becomes the variable's value, and an
 * unset variable becomes the empty string (the word stays, possibly as `""`). proftpd only
 * looks at words longer than 7 characters, so the bare word `%{env:}` stays as written; a
 * `%{env:` with no `}` after it is left alone. proftpd rescans the whole word after each
 * substitution, so a value that itself contains `%{env:...}` is expanded again and a
 * self-referencing one loops forever; here each reference is replaced once, left to right,
 * and substituted text is never rescanned.
 */
function expandEnv(
  word: string,
  env: Readonly<Record<string, string | undefined>>,
  budget: ExpansionBudget,
  file: string,
  line: number,
): string {
  if (word.length <= 7) return word;
  let marker = word.indexOf(ENV_MARKER);
  if (marker < 0) return word;
  const parts: string[] = [];
  let from = 0;
  while (marker >= 0) {
    const close = word.indexOf("}", marker + ENV_MARKER.length);
    if (close < 0) break;
    const value = lookupEnv(env, word.slice(marker + ENV_MARKER.length, close));
    budget.used += value.length;
    if (budget.used > MAX_ENV_EXPANSION) {
      throw new ConfigError(`environment variable expansion exceeds ${MAX_ENV_EXPANSION} characters`, file, line);
    }
    parts.push(word.slice(from, marker), value);
    from = close + 1;
    marker = word.indexOf(ENV_MARKER, from);
  }
  parts.push(word.slice(from));
  return parts.join("");
}

/**
 * The `<Section ...>` fixup of `pr_parser_parse_line()`: when a line starting with `<` has
 * arguments and its last word ends in `>`, that `>` is removed (a lone `>` word is dropped)
 * and the name is completed to `<Name>`. A tag that still lacks its `>` (`<IfModule mod_x.c`,
 * `<Global`) is then an unknown directive to proftpd, reported with its name as written.
 */
function toConfigLine(words: string[], file: string, line: number): ConfigLine {
  const [first, ...args] = words;
  let name = first ?? "";
  if (!name.startsWith("<")) return { file, line, name, args };
  const last = args.at(-1);
  if (last !== undefined && last.endsWith(">")) {
    if (last === ">") {
      args.pop();
    } else {
      args[args.length - 1] = last.slice(0, -1);
    }
    if (!name.endsWith(">")) name = `${name}>`;
  }
  if (!name.endsWith(">")) {
    throw new ConfigError(`unknown configuration directive '${name}'`, file, line, {
      directive: name,
    });
  }
  return { file, line, name: name.startsWith("</") ? name : name.slice(0, -1), args };
}

/** Turns one logical line (its physical segments) into a directive, or nothing if it has no words. */
function lexLogicalLine(
  segments: readonly Segment[],
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  budget: ExpansionBudget,
): ConfigLine | undefined {
  const { words, start, unterminated } = splitWords(segments.map((s) => s.text).join(""));
  if (words.length === 0) return undefined;
  let line = segments[0]?.line ?? 0;
  let offset = 0;
  for (const segment of segments) {
    line = segment.line;
    offset += segment.text.length;
    if (offset > start) break;
  }
  if (unterminated !== undefined) {
    // The words as written: %{env:...} is not expanded in a line that is refused anyway.
    const directive = unterminated > 0 ? words[0] : undefined;
    if (directive === undefined) throw new ConfigError("unterminated quoted string", file, line);
    throw new ConfigError(`${directive}: unterminated quoted string`, file, line, { directive });
  }
  return toConfigLine(
    words.map((w) => expandEnv(w, env, budget, file, line)),
    file,
    line,
  );
}

/**
 * Lexes a whole configuration file into directive lines.
 *
 * Physical lines end at `\n`; one trailing `\r` is removed (as `pr_parser_read_line()` does).
 * A `\n`-terminated line whose last character is `\` is joined to the next one with the
 * backslash removed and no separator added (`pr_fsio_getline()`); a final line without `\n`
 * keeps its backslash. proftpd only recognises `\` directly before `\n`, so in a CRLF file a
 * continuation would silently become a `\` argument; here `\` before `\r\n` continues too, so
 * a file behaves the same whatever its line endings.
 *
 * Throws only `ConfigError`.
 */
export function lexConfig(text: string, file: string, env: Readonly<Record<string, string | undefined>>): ConfigLine[] {
  const lines: ConfigLine[] = [];
  const budget: ExpansionBudget = { used: 0 };
  let segments: Segment[] = [];
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    const newline = text.indexOf("\n", pos);
    const terminated = newline >= 0;
    let physical = text.slice(pos, terminated ? newline : text.length);
    pos = terminated ? newline + 1 : text.length;
    lineNo++;
    if (physical.endsWith("\r")) physical = physical.slice(0, -1);
    if (terminated && physical.endsWith("\\")) {
      if (!isCommentSegment(physical)) segments.push({ text: physical.slice(0, -1), line: lineNo });
      continue;
    }
    segments.push({ text: physical, line: lineNo });
    const directive = lexLogicalLine(segments, file, env, budget);
    if (directive !== undefined) lines.push(directive);
    segments = [];
  }
  if (segments.length > 0) {
    const directive = lexLogicalLine(segments, file, env, budget);
    if (directive !== undefined) lines.push(directive);
  }
  return lines;
}
