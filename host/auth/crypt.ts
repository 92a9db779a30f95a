/**
 * The crypt(3) hash formats that proftpd's `ftpasswd` writes into an
 * AuthUserFile: MD5-crypt (`$1$`, its default), SHA-256-crypt (`$5$`, with
 * `--sha256`) and SHA-512-crypt (`$6$`, with `--sha512`).
 *
 * mod_auth_file.c checks a password with `strcmp(crypt(cleartext, stored),
 * stored)`; `verifyCrypt` does the same with a constant-time comparison.
 * The algorithms follow their published descriptions:
 * - MD5-crypt: Poul-Henning Kamp's FreeBSD `crypt-md5.c`, 1000 fixed rounds,
 *   salt of at most 8 characters.
 * - SHA-crypt: Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512"
 *   (akkadia.org/drepper/SHA-crypt.txt), 5000 rounds by default, an optional
 *   `rounds=N$` clamped to 1000..999999999, salt of at most 16 characters.
 *
 * Pure: strings in, strings out; the digests come from `node:crypto`.
 */
import { createHash, randomInt, timingSafeEqual } from "node:crypto";

export type CryptScheme = "sha512" | "sha256" | "md5";

/** The crypt(3) base-64 alphabet (not RFC 4648): `b64_from_24bit` in both specs. */
const ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * Salt characters we accept. Both specs only stop the salt at `$`, but
 * libxcrypt (the crypt(3) of current Linux distributions, so of a current
 * proftpd) refuses anything outside ITOA64, and ftpasswd and openssl only
 * generate from it; keeping to it also keeps salts ASCII, so a character is a
 * byte as in the C code.
 */
const SALT_CHAR = /^[./0-9A-Za-z]*$/;

/** The characters ftpasswd's `get_salt` draws a salt from: `(0..9, 'A'..'Z', 'a'..'z')`. */
const FTPASSWD_SALT_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const MD5_MAGIC = "$1$";
const MD5_SALT_MAX = 8;
const MD5_ROUNDS = 1000;

/** Drepper's spec: "rounds=" prefix, its default and its limits. */
const ROUNDS_PREFIX = "rounds=";
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SHA_SALT_MAX = 16;

interface ShaVariant {
  readonly magic: string;
  readonly digest: "sha256" | "sha512";
  readonly size: number;
  /** Byte triples in the order the spec's final step encodes them, 4 characters each. */
  readonly triples: readonly (readonly [number, number, number])[];
  /** The trailing bytes the spec encodes after the triples, with their character count. */
  readonly tail: readonly [number, number, number, number];
}

const SHA256: ShaVariant = {
  magic: "$5$",
  digest: "sha256",
  size: 32,
  triples: [
    [0, 10, 20],
    [21, 1, 11],
    [12, 22, 2],
    [3, 13, 23],
    [24, 4, 14],
    [15, 25, 5],
    [6, 16, 26],
    [27, 7, 17],
    [18, 28, 8],
    [9, 19, 29],
  ],
  // b64_from_24bit (0, alt_result[31], alt_result[30], 3)
  tail: [-1, 31, 30, 3],
};

const SHA512: ShaVariant = {
  magic: "$6$",
  digest: "sha512",
  size: 64,
  triples: [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
  ],
  // b64_from_24bit (0, 0, alt_result[63], 2)
  tail: [-1, -1, 63, 2],
};

/** MD5-crypt's `to64` groups, then `final[11]` on its own in 2 characters. */
const MD5_TRIPLES: readonly (readonly [number, number, number])[] = [
  [0, 6, 12],
  [1, 7, 13],
  [2, 8, 14],
  [3, 9, 15],
  [4, 10, 5],
];
const MD5_TAIL: readonly [number, number, number, number] = [-1, -1, 11, 2];

/** Byte `i` of `bytes`, or 0 for the spec's literal zero (index -1). */
function byteAt(bytes: Buffer, i: number): number {
  return i < 0 ? 0 : (bytes[i] ?? 0);
}

/** `b64_from_24bit(B2, B1, B0, N)`: least significant 6 bits first. */
function b64From24(bytes: Buffer, [i2, i1, i0, n]: readonly [number, number, number, number]): string {
  let w = (byteAt(bytes, i2) << 16) | (byteAt(bytes, i1) << 8) | byteAt(bytes, i0);
  let out = "";
  for (let k = 0; k < n; k++) {
    out += ITOA64[w & 0x3f];
    w >>>= 6;
  }
  return out;
}

function encode(
  bytes: Buffer,
  triples: readonly (readonly [number, number, number])[],
  tail: readonly [number, number, number, number],
): string {
  let out = "";
  for (const [a, b, c] of triples) out += b64From24(bytes, [a, b, c, 4]);
  return out + b64From24(bytes, tail);
}

/** The salt as crypt(3) reads it: up to the first `$` (or the end), cut to `max` characters. */
function takeSalt(rest: string, max: number): string | null {
  const end = rest.indexOf("$");
  const salt = (end < 0 ? rest : rest.slice(0, end)).slice(0, max);
  return SALT_CHAR.test(salt) ? salt : null;
}

function md5Crypt(key: Buffer, saltText: string): string {
  const salt = Buffer.from(saltText, "ascii");

  const alt = createHash("md5").update(key).update(salt).update(key).digest();
  const ctx = createHash("md5").update(key).update(MD5_MAGIC).update(salt);
  for (let left = key.length; left > 0; left -= 16) ctx.update(alt.subarray(0, Math.min(16, left)));
  // crypt-md5.c zeroes `final` (which held `alt`) before this loop, so a set
  // bit adds a zero byte, not alt[0].
  for (let bits = key.length; bits > 0; bits >>>= 1) {
    ctx.update((bits & 1) !== 0 ? Buffer.alloc(1) : key.subarray(0, 1));
  }
  let final = ctx.digest();

  // PHK's 1000 rounds, there only to slow down dictionary attacks.
  for (let i = 0; i < MD5_ROUNDS; i++) {
    const round = createHash("md5");
    round.update((i & 1) !== 0 ? key : final);
    if (i % 3 !== 0) round.update(salt);
    if (i % 7 !== 0) round.update(key);
    round.update((i & 1) !== 0 ? final : key);
    final = round.digest();
  }

  return `${MD5_MAGIC}${saltText}$${encode(final, MD5_TRIPLES, MD5_TAIL)}`;
}

/** `count` bytes of `source` repeated end to end (the spec's P and S sequences). */
function repeatTo(source: Buffer, count: number): Buffer {
  const out = Buffer.alloc(count);
  for (let at = 0; at < count; at += source.length) source.copy(out, at, 0, Math.min(source.length, count - at));
  return out;
}

/** `rounds` is null for a setting without `rounds=N$`: 5000, and not shown in the result. */
function shaCrypt(variant: ShaVariant, key: Buffer, saltText: string, rounds: number | null): string {
  const salt = Buffer.from(saltText, "ascii");
  const size = variant.size;
  const hash = () => createHash(variant.digest);

  // Steps 1-12: digest A, with the alternate digest B = H(key salt key).
  const b = hash().update(key).update(salt).update(key).digest();
  const a = hash().update(key).update(salt);
  let left = key.length;
  for (; left > size; left -= size) a.update(b);
  a.update(b.subarray(0, left));
  for (let bits = key.length; bits > 0; bits >>>= 1) a.update((bits & 1) !== 0 ? b : key);
  const digestA = a.digest();

  // Steps 13-16: the P sequence, from DP = H(key repeated key-length times).
  const dp = hash();
  for (let i = 0; i < key.length; i++) dp.update(key);
  const p = repeatTo(dp.digest(), key.length);

  // Steps 17-20: the S sequence, from DS = H(salt repeated 16 + A[0] times).
  const ds = hash();
  for (let i = 0; i < 16 + (digestA[0] ?? 0); i++) ds.update(salt);
  const s = ds.digest().subarray(0, salt.length);

  // Step 21: the rounds.
  let c = digestA;
  for (let r = 0; r < (rounds ?? ROUNDS_DEFAULT); r++) {
    const round = hash();
    round.update((r & 1) !== 0 ? p : c);
    if (r % 3 !== 0) round.update(s);
    if (r % 7 !== 0) round.update(p);
    round.update((r & 1) !== 0 ? c : p);
    c = round.digest();
  }

  // Step 22: the rounds are shown only when the setting asked for them.
  const roundsPart = rounds === null ? "" : `${ROUNDS_PREFIX}${rounds}$`;
  return `${variant.magic}${roundsPart}${saltText}$${encode(c, variant.triples, variant.tail)}`;
}

/**
 * crypt(3) for the three formats ftpasswd writes: hashes `password` (as UTF-8)
 * with the scheme, rounds and salt that `setting` names. `setting` may be a
 * bare salt (`$6$abc`) or a whole stored hash, whose hash part is ignored.
 * Returns null where libxcrypt's crypt(3) fails (its `*0`): another scheme
 * (DES, bcrypt...), a locked (`!`, `*`) or empty entry, a bad salt or rounds.
 */
export function crypt(password: string, setting: string): string | null {
  const key = Buffer.from(password, "utf8");
  if (setting.startsWith(MD5_MAGIC)) {
    const salt = takeSalt(setting.slice(MD5_MAGIC.length), MD5_SALT_MAX);
    return salt === null ? null : md5Crypt(key, salt);
  }
  const variant = setting.startsWith(SHA256.magic) ? SHA256 : setting.startsWith(SHA512.magic) ? SHA512 : null;
  if (variant === null) return null;
  let rest = setting.slice(variant.magic.length);
  let rounds: number | null = null;
  if (rest.startsWith(ROUNDS_PREFIX)) {
    const end = rest.indexOf("$");
    const digits = end < 0 ? "" : rest.slice(ROUNDS_PREFIX.length, end);
    // The spec reads N with strtoul and requires a `$` right after it; we
    // also require plain digits (libxcrypt refuses signs and spaces too).
    if (!/^[0-9]+$/.test(digits)) return null;
    rounds = Math.max(ROUNDS_MIN, Math.min(Number(digits), ROUNDS_MAX));
    rest = rest.slice(end + 1);
  }
  const salt = takeSalt(rest, SHA_SALT_MAX);
  return salt === null ? null : shaCrypt(variant, key, salt, rounds);
}

/**
 * True when `password` hashes to `hash` (mod_auth_file.c `authfile_chkpass`:
 * `strcmp(crypt(cleartxt_pass, ciphertxt_pass), ciphertxt_pass) == 0`).
 * The final comparison is constant-time. Unknown or malformed hashes give
 * false; this never throws.
 */
export function verifyCrypt(password: string, hash: string): boolean {
  const computed = crypt(password, hash);
  if (computed === null) return false;
  const expected = Buffer.from(hash, "utf8");
  const actual = Buffer.from(computed, "utf8");
  // The length is not secret: it follows from the scheme and salt in `hash`.
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * A new crypt(3) hash of `password`, as `ftpasswd --sha512/--sha256/--md5`
 * writes it: the default rounds, and a random salt drawn like ftpasswd's
 * `get_salt` from [0-9A-Za-z] (16 characters; 8 for MD5, which uses no more).
 * @throws RangeError if `salt` is given but is empty, longer than the scheme
 *   uses, or has a character outside `[./0-9A-Za-z]`.
 */
export function cryptHash(password: string, scheme: CryptScheme, salt?: string): string {
  const max = scheme === "md5" ? MD5_SALT_MAX : SHA_SALT_MAX;
  let saltText = salt;
  if (saltText === undefined) {
    saltText = "";
    for (let i = 0; i < max; i++) saltText += FTPASSWD_SALT_CHARS[randomInt(FTPASSWD_SALT_CHARS.length)];
  } else if (saltText.length === 0 || saltText.length > max || !SALT_CHAR.test(saltText)) {
    throw new RangeError(`invalid ${scheme} salt '${saltText}': expected 1 to ${max} characters from [./0-9A-Za-z]`);
  }
  const key = Buffer.from(password, "utf8");
  if (scheme === "md5") return md5Crypt(key, saltText);
  return shaCrypt(scheme === "sha256" ? SHA256 : SHA512, key, saltText, null);
}
