/**
 * The "Did you mean" hint proftpd 1.3.8 logs after `unknown configuration directive`:
 * `pr_parser_parse_file()` (src/parser.c) calls `pr_str_get_similars(name, directives,
 * 0, PR_STR_FL_IGNORE_CASE)` (src/str.c) and shows at most four of the results.
 */

/** PR_STR_DEFAULT_MAX_EDIT_DISTANCE (include/str.h), used because parser.c passes 0. */
const MAX_DISTANCE = 7;

/** parser.c cuts the list to its first four entries. */
const MAX_SHOWN = 4;

/** The costs parser.c's call passes to `pr_str_levenshtein()`. */
const SWAP_COST = 0;
const SUBST_COST = 2;
const INSERT_COST = 1;
const DELETE_COST = 3;

const encoder = new TextEncoder();

/** C works on bytes and `tolower()` in the C locale only folds ASCII. */
function foldedBytes(s: string): Uint8Array {
  const bytes = encoder.encode(s);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b >= 0x41 && b <= 0x5a) bytes[i] = b + 0x20;
  }
  return bytes;
}

function hasPrefix(s: Uint8Array, prefix: Uint8Array): boolean {
  if (prefix.length > s.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (s[i] !== prefix[i]) return false;
  }
  return true;
}

/** `strcasecmp()` on already folded bytes. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * `pr_str_levenshtein()` as shipped: an optimal-string-alignment distance with three
 * rotating rows, except that it returns the row two steps before the last one. The
 * result is therefore the distance from `typed` without its last two bytes, and 0
 * (the untouched zeroed row) when `typed` has fewer than two. tests/api/str.c pins
 * this: "foo" to "Foo" with unit costs is expected to be 3. Matching it keeps the
 * suggestions identical to proftpd's.
 */
function proftpdDistance(typed: Uint8Array, candidate: Uint8Array): number {
  if (typed.length < 2) return 0;
  const a = typed.subarray(0, typed.length - 2);
  const blen = candidate.length;
  let prev2 = new Array<number>(blen + 1).fill(0);
  let prev = Array.from({ length: blen + 1 }, (_, j) => j * INSERT_COST);
  let row = new Array<number>(blen + 1).fill(0);
  for (let i = 0; i < a.length; i++) {
    row[0] = (i + 1) * DELETE_COST;
    for (let j = 0; j < blen; j++) {
      let best = (prev[j] ?? 0) + (a[i] === candidate[j] ? 0 : SUBST_COST);
      if (i > 0 && j > 0 && a[i - 1] === candidate[j] && a[i] === candidate[j - 1]) {
        best = Math.min(best, (prev2[j - 1] ?? 0) + SWAP_COST);
      }
      best = Math.min(best, (prev[j + 1] ?? 0) + DELETE_COST, (row[j] ?? 0) + INSERT_COST);
      row[j + 1] = best;
    }
    [prev2, prev, row] = [prev, row, prev2];
  }
  return prev[blen] ?? 0;
}

/**
 * A lower bound of `proftpdDistance`: only insertions and deletions change the length.
 * It lets long or far-off names skip the quadratic computation without changing the
 * result, so a huge unknown name cannot stall the daemon.
 */
function lengthBound(typed: Uint8Array, candidate: Uint8Array): number {
  if (typed.length < 2) return 0;
  const alen = typed.length - 2;
  return alen > candidate.length ? (alen - candidate.length) * DELETE_COST : (candidate.length - alen) * INSERT_COST;
}

/**
 * The directives proftpd would suggest for the unknown `name`, best first, at most four.
 * A known name that starts with `name` (ignoring ASCII case) scores 0; any other scores
 * its edit distance plus one and is kept up to a score of 7. Ties are ordered by
 * case-insensitive byte comparison, then by their order in `known`.
 */
export function suggestDirectives(name: string, known: readonly string[]): string[] {
  const typed = foldedBytes(name);
  const scored: { directive: string; folded: Uint8Array; score: number }[] = [];
  for (const directive of known) {
    const folded = foldedBytes(directive);
    let score = 0;
    if (!hasPrefix(folded, typed)) {
      if (lengthBound(typed, folded) + 1 > MAX_DISTANCE) continue;
      score = proftpdDistance(typed, folded) + 1;
    }
    if (score <= MAX_DISTANCE) scored.push({ directive, folded, score });
  }
  scored.sort((x, y) => x.score - y.score || compareBytes(x.folded, y.folded));
  return scored.slice(0, MAX_SHOWN).map((s) => s.directive);
}

/**
 * The lines proftpd logs for the suggestions, without its `fatal: ` prefix. proftpd emits
 * one log message: `Did you mean: <name>` for a single suggestion, otherwise `Did you mean:`
 * followed by `\n  <name>` per suggestion, so only the first line carries the log prefix.
 * No suggestions log nothing.
 */
export function formatSuggestions(suggestions: string[]): string[] {
  const [only] = suggestions;
  if (only === undefined) return [];
  if (suggestions.length === 1) return [`Did you mean: ${only}`];
  return ["Did you mean:", ...suggestions.map((s) => `  ${s}`)];
}
