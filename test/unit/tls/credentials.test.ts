import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { certificateFile, chainFile, checkKeyMatches, keyFile, readPemFile } from "../../../host/tls/credentials.js";
import type { FileText } from "../../../host/tls/credentials.js";
import { REPO_ROOT } from "../../helpers/paths.js";

// test/fixtures/tls: a self-signed RSA 2048 pair for CN=localhost, valid until 2126
// (openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost).
const CERT = path.join(REPO_ROOT, "test", "fixtures", "tls", "cert.pem");
const KEY = path.join(REPO_ROOT, "test", "fixtures", "tls", "key.pem");
const certText = readFileSync(CERT, "latin1");
const keyText = readFileSync(KEY, "latin1");

const dir = mkdtempSync(path.join(tmpdir(), "dsod-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isDsoError(error) && error.code === "DSO_ERR_CONFIG") return error.message;
    throw error;
  }
  throw new Error("accepted");
}

const text = (value: string): FileText => ({ text: value });

describe("reading PEM files", () => {
  it("gives the text, or strerror's words", () => {
    expect(readPemFile(CERT)).toEqual({ text: certText });
    expect(readPemFile(path.join(dir, "missing.pem"))).toEqual({ error: "No such file or directory" });
    expect(readPemFile(dir)).toEqual({ error: "Is a directory" });
  });
});

describe("TLSRSACertificateFile's check", () => {
  it("keeps the file's first certificate", () => {
    const certificate = certificateFile(CERT, text(`${keyText}${certText}${certText}`));
    expect(certificate.path).toBe(CERT);
    expect(certificate.pem).toBe(certText);
    expect(certificate.x509.subject).toBe("CN=localhost");
  });

  it("refuses a missing file, or one without a certificate, in proftpd's words", () => {
    expect(configError(() => certificateFile("/x/cert.pem", { error: "No such file or directory" }))).toBe(
      "'/x/cert.pem' does not exist or does not contain a certificate",
    );
    expect(configError(() => certificateFile("/x/cert.pem", text(keyText)))).toBe(
      "'/x/cert.pem' does not exist or does not contain a certificate",
    );
    expect(
      configError(() =>
        certificateFile("/x/cert.pem", text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
      ),
    ).toBe("'/x/cert.pem' does not exist or does not contain a certificate");
  });
});

describe("TLSRSACertificateKeyFile's check", () => {
  it("keeps the key alone, whatever else the file holds", () => {
    const key = keyFile(KEY, text(`${certText}${keyText}`));
    expect(key.path).toBe(KEY);
    expect(key.pem).toBe(keyText);
    expect(key.key.asymmetricKeyType).toBe("rsa");
  });

  it("refuses a missing file, one without a key, and a passphrase-protected key", () => {
    expect(configError(() => keyFile("/x/key.pem", { error: "Permission denied" }))).toBe(
      "unable to use '/x/key.pem': Permission denied",
    );
    expect(configError(() => keyFile("/x/key.pem", text(certText)))).toMatch(/^unable to use '\/x\/key\.pem': ./);
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    for (const type of ["pkcs8", "sec1"] as const) {
      const encrypted = privateKey.export({
        format: "pem",
        type,
        cipher: "aes-256-cbc",
        passphrase: "secret",
      }) as string;
      expect(configError(() => keyFile("/x/key.pem", text(encrypted)))).toBe(
        "unable to use '/x/key.pem': the key is protected by a passphrase, which dsod cannot ask for",
      );
    }
  });
});

describe("TLSCertificateChainFile's check", () => {
  it("keeps every certificate, in order", () => {
    const chain = chainFile("/x/chain.pem", text(`${certText}\n${keyText}${certText}`));
    expect(chain.pem).toBe(`${certText}${certText}`);
  });

  it("refuses a missing file, one without certificates, and a broken certificate", () => {
    expect(configError(() => chainFile("/x/chain.pem", { error: "No such file or directory" }))).toBe(
      "unable to use '/x/chain.pem': No such file or directory",
    );
    expect(configError(() => chainFile("/x/chain.pem", text(keyText)))).toBe(
      "unable to use '/x/chain.pem': file contained no certificate data",
    );
    expect(
      configError(() =>
        chainFile("/x/chain.pem", text(`${certText}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`)),
      ),
    ).toBe("unable to use '/x/chain.pem': a certificate in it cannot be parsed");
  });
});

describe("the certificate and key pair", () => {
  it("accepts the certificate's own key and refuses another", () => {
    const certificate = certificateFile(CERT, text(certText));
    expect(() => checkKeyMatches(certificate, keyFile(KEY, text(keyText)))).not.toThrow();
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      format: "pem",
      type: "pkcs8",
    }) as string;
    const otherPath = path.join(dir, "other.pem");
    writeFileSync(otherPath, other);
    expect(configError(() => checkKeyMatches(certificate, keyFile(otherPath, readPemFile(otherPath))))).toBe(
      `error checking key from TLSRSACertificateKeyFile '${otherPath}': key values mismatch`,
    );
  });
});
