import { describe, expect, it } from "vitest";
import { crypt, cryptHash, verifyCrypt } from "../../../host/auth/crypt.js";

/** [setting, password, expected] from Ulrich Drepper's SHA-crypt.txt, "Test vectors". */
const DREPPER_SHA256: readonly (readonly [string, string, string])[] = [
  ["$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"],
  [
    "$5$rounds=10000$saltstringsaltstring",
    "Hello world!",
    "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
  ],
  [
    "$5$rounds=5000$toolongsaltstring",
    "This is just a test",
    "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
  ],
  [
    "$5$rounds=1400$anotherlongsaltstring",
    "a very much longer text to encrypt.  This one even stretches over morethan one line.",
    "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1",
  ],
  [
    "$5$rounds=77777$short",
    "we have a short salt string but not a short password",
    "$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/",
  ],
  [
    "$5$rounds=123456$asaltof16chars..",
    "a short string",
    "$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD",
  ],
  [
    "$5$rounds=10$roundstoolow",
    "the minimum number is still observed",
    "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
  ],
];

const DREPPER_SHA512: readonly (readonly [string, string, string])[] = [
  [
    "$6$saltstring",
    "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
  ],
  [
    "$6$rounds=10000$saltstringsaltstring",
    "Hello world!",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
  ],
  [
    "$6$rounds=5000$toolongsaltstring",
    "This is just a test",
    "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
  ],
  [
    "$6$rounds=1400$anotherlongsaltstring",
    "a very much longer text to encrypt.  This one even stretches over morethan one line.",
    "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
  ],
  [
    "$6$rounds=77777$short",
    "we have a short salt string but not a short password",
    "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0",
  ],
  [
    "$6$rounds=123456$asaltof16chars..",
    "a short string",
    "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1",
  ],
  [
    "$6$rounds=10$roundstoolow",
    "the minimum number is still observed",
    "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
  ],
];

/** [password, hash], each made on the dev machine (OpenSSL 3.0.19) by the command in its comment. */
const OPENSSL: readonly (readonly [string, string])[] = [
  // openssl passwd -1 -salt 'Xq3vT9pL' 'secret'
  ["secret", "$1$Xq3vT9pL$JBghsZQmY/O7lgUDaRSO40"],
  // openssl passwd -1 -salt 'a' ''
  ["", "$1$a$8CfZSfErbeskipdhZHtvu."],
  // openssl passwd -5 -salt 'W4nRk2ZbQ8cJtY1s' 'correct horse battery staple'
  ["correct horse battery staple", "$5$W4nRk2ZbQ8cJtY1s$A6kqqvPB3ZP7YR/0olAlqnAFnz7ZMF4ErAHjCsFYIq3"],
  // openssl passwd -5 -salt 'rounds=5000$W4nRk2ZbQ8cJtY1s' 'correct horse battery staple'
  ["correct horse battery staple", "$5$rounds=5000$W4nRk2ZbQ8cJtY1s$A6kqqvPB3ZP7YR/0olAlqnAFnz7ZMF4ErAHjCsFYIq3"],
  // openssl passwd -6 -salt 'Hd7sLx0PqR2mN5vB' 'correct horse battery staple'
  [
    "correct horse battery staple",
    "$6$Hd7sLx0PqR2mN5vB$M0JGYJ/vFQZMw1c/X1Hqd4KhLGg48bQ3L6D9EwhcN9PcVe.5ZibA2ASU8HAJRUz7GXwtf8gfcpMQRWihClcU6.",
  ],
  // openssl passwd -6 -salt 'rounds=20000$Hd7sLx0PqR2mN5vB' 'correct horse battery staple'
  [
    "correct horse battery staple",
    "$6$rounds=20000$Hd7sLx0PqR2mN5vB$I0GRFKeglnBBFvAbX5RQnSwvLP43AwaNP1t1txG/Q4gDjoOArBmtP0nVPauKAzpzSTci.3wFtwlICMr0keBvL/",
  ],
  // openssl passwd -6 -salt 'E9' 'pässwörd'   (UTF-8 terminal)
  ["pässwörd", "$6$E9$ALFoPsUdHlmP9QBy0OEijrC5RDUUIY8jq5bDLBUyFs9Sr288Dag/8LhlXyYtGy0C4maWmeSGLH1AZ.wQaTYmh."],
  // openssl passwd -6 -salt 'E9' "$(printf 'x%.0s' $(seq 1 100))"   (longer than one SHA-512 block)
  ["x".repeat(100), "$6$E9$FduaLu1Tin.O1eocXMLWjzZrxOETYOYGza93BDSFf7R9prG7tDW6PvDvHf1dXd60XsraqIVK70Bp/eaJjH8Ng."],
  // openssl passwd -6 -salt 'UGjvmgTWuyaFkVcS' demo   (the entry in examples/dsod.passwd)
  [
    "demo",
    "$6$UGjvmgTWuyaFkVcS$3X2EQ2GAeenOmzkXCHBP21HZw0t7fO3/1MjBH1OBRVBjeN.TJkI4MDJu6x0rYb04r/kQaB6TkKHaqh2vl47KJ0",
  ],
];

describe("crypt: Drepper's SHA-crypt test vectors", () => {
  // crypt only: verifyCrypt would run the up to 123456 rounds a second time,
  // and its path is covered by the openssl hashes below.
  it.each(DREPPER_SHA256)("SHA-256 %s", (setting, password, expected) => {
    expect(crypt(password, setting)).toBe(expected);
  });

  it.each(DREPPER_SHA512)("SHA-512 %s", (setting, password, expected) => {
    expect(crypt(password, setting)).toBe(expected);
  });
});

describe("crypt: hashes made by openssl passwd", () => {
  it.each(OPENSSL)("%j verifies against %s", (password, hash) => {
    expect(crypt(password, hash)).toBe(hash);
    expect(verifyCrypt(password, hash)).toBe(true);
  });

  it.each(OPENSSL)("a wrong password for %j is refused", (password, hash) => {
    expect(verifyCrypt(`${password}!`, hash)).toBe(false);
    expect(verifyCrypt(`!${password}`, hash)).toBe(false);
  });
});

describe("crypt: salts and rounds as crypt(3) reads them", () => {
  it("keeps 8 salt characters for MD5 (openssl passwd -1 -salt 'Xq3vT9pLextra' 'secret')", () => {
    expect(crypt("secret", "$1$Xq3vT9pLextra")).toBe("$1$Xq3vT9pL$JBghsZQmY/O7lgUDaRSO40");
  });

  it("stops the salt at '$', so a whole stored hash is a valid setting", () => {
    expect(crypt("Hello world!", "$5$saltstring$anything")).toBe(
      "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
    );
  });

  it("shows rounds=5000 when the setting names it, and not otherwise", () => {
    expect(crypt("pw", "$6$rounds=5000$abc")?.startsWith("$6$rounds=5000$abc$")).toBe(true);
    expect(crypt("pw", "$6$rounds=5000$abc")?.slice("$6$rounds=5000$".length)).toBe(
      crypt("pw", "$6$abc")?.slice("$6$".length),
    );
  });

  // "PQl1.p7BcJRuM" is the DES crypt of "test": refused although it matches,
  // because ftpasswd's --des hashes are not supported. The bcrypt and yescrypt
  // strings only need their prefixes.
  it.each([
    ["DES", "PQl1.p7BcJRuM"],
    ["bcrypt", "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"],
    ["yescrypt", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"],
    ["a locked account", "*"],
    ["a disabled password", "!"],
    [
      "a locked SHA-512 entry (usermod -L)",
      "!$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ],
    ["an empty field", ""],
    ["non-numeric rounds", "$5$rounds=abc$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"],
    ["empty rounds", "$5$rounds=$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"],
    ["rounds without a '$'", "$5$rounds=5000"],
    [
      "a salt character outside [./0-9A-Za-z]",
      "$6$salt!string$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ],
  ])("refuses %s without throwing", (_what, hash) => {
    expect(verifyCrypt("Hello world!", hash)).toBe(false);
    expect(verifyCrypt("test", hash)).toBe(false);
  });

  it("refuses a stored hash that crypt(3) would not write back byte for byte", () => {
    // mod_auth_file compares crypt(password, stored) with stored, so a stored
    // hash with unclamped rounds, an over-long salt or a damaged tail fails
    // even though its salt and digest could be read.
    const good = "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC";
    const password = "the minimum number is still observed";
    expect(verifyCrypt(password, good.replace("rounds=1000", "rounds=10"))).toBe(false);
    expect(verifyCrypt(password, good.replace("rounds=1000", "rounds=01000"))).toBe(false);
    expect(verifyCrypt(password, good.slice(0, -1))).toBe(false);
    expect(verifyCrypt(password, `${good}x`)).toBe(false);
    expect(verifyCrypt(password, good.replace("$5$", "$6$"))).toBe(false);
    expect(
      verifyCrypt("Hello world!", "$5$rounds=10000$saltstringsaltstring$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ).toBe(false);
  });
});

describe("cryptHash", () => {
  it("matches openssl for a given salt", () => {
    expect(cryptHash("secret", "md5", "Xq3vT9pL")).toBe("$1$Xq3vT9pL$JBghsZQmY/O7lgUDaRSO40");
    expect(cryptHash("correct horse battery staple", "sha256", "W4nRk2ZbQ8cJtY1s")).toBe(
      "$5$W4nRk2ZbQ8cJtY1s$A6kqqvPB3ZP7YR/0olAlqnAFnz7ZMF4ErAHjCsFYIq3",
    );
    expect(cryptHash("demo", "sha512", "UGjvmgTWuyaFkVcS")).toBe(
      "$6$UGjvmgTWuyaFkVcS$3X2EQ2GAeenOmzkXCHBP21HZw0t7fO3/1MjBH1OBRVBjeN.TJkI4MDJu6x0rYb04r/kQaB6TkKHaqh2vl47KJ0",
    );
  });

  it.each([
    ["sha512", /^\$6\$[0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/],
    ["sha256", /^\$5\$[0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}$/],
    ["md5", /^\$1\$[0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}$/],
  ] as const)("draws a %s salt like ftpasswd and verifies", (scheme, shape) => {
    const first = cryptHash("s3cret", scheme);
    const second = cryptHash("s3cret", scheme);
    expect(first).toMatch(shape);
    expect(second).toMatch(shape);
    expect(first).not.toBe(second);
    expect(verifyCrypt("s3cret", first)).toBe(true);
    expect(verifyCrypt("s3cret!", first)).toBe(false);
  });

  it.each([
    ["sha512", ""],
    ["sha512", "saltstringsaltstr"],
    ["sha256", "salt$tring"],
    ["sha256", "salt:string"],
    ["md5", "saltsalts"],
    ["md5", "rounds=1"],
  ] as const)("refuses the %s salt %j", (scheme, salt) => {
    expect(() => cryptHash("pw", scheme, salt)).toThrow(RangeError);
  });
});
