/**
 * The server's certificate, key and chain as mod_tls.c's directives check them
 * when the configuration is read (set_tlsrsacertfile, set_tlsrsakeyfile,
 * set_tlscertchain): each file must hold what its directive names, so a bad
 * path or file fails the config at that directive's line. The PEM text is kept,
 * so nothing is read again when a session starts TLS.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { directiveError } from "../config/directives.js";
import { messageOf } from "../errors.js";

export interface CertificateFile {
  readonly path: string;
  /** The file's first certificate, in PEM: the one OpenSSL's PEM_read_X509 reads. */
  readonly pem: string;
  readonly x509: X509Certificate;
}

export interface KeyFile {
  readonly path: string;
  /** The key alone, as PKCS#8 PEM, whatever else the file holds. */
  readonly pem: string;
  readonly key: KeyObject;
}

export interface ChainFile {
  readonly path: string;
  /** Every certificate of the file, in PEM, in file order. */
  readonly pem: string;
}

/** The file's text, or the strerror(3) words for why it cannot be read. */
export type FileText = { readonly text: string } | { readonly error: string };

const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ELOOP: "Too many levels of symbolic links",
};

/** Reads a PEM file; the only function here that touches the filesystem. */
export function readPemFile(path: string): FileText {
  try {
    return { text: readFileSync(path, "latin1") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    return { error: STRERROR[code] ?? messageOf(error) };
  }
}

/** PKCS#8's encrypted form, and the traditional (PKCS#1, SEC1) one with its Proc-Type header. */
const ENCRYPTED_KEY = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED\r?$/m;

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g;

function certificateBlocks(text: string): string[] {
  return text.match(CERTIFICATE_BLOCK) ?? [];
}

function parses(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** set_tlsrsacertfile's check: the file exists and holds a certificate. */
export function certificateFile(path: string, file: FileText): CertificateFile {
  const pem = "text" in file ? certificateBlocks(file.text)[0] : undefined;
  const x509 = pem === undefined ? undefined : parses(pem);
  if (pem === undefined || x509 === undefined)
    throw directiveError(`'${path}' does not exist or does not contain a certificate`);
  return { path, pem: `${pem}\n`, x509 };
}

/**
 * set_tlsrsakeyfile's check: the file holds a private key OpenSSL can use.
 * proftpd accepts a passphrase-protected key here and asks for the passphrase
 * at startup; dsod has no way to ask, so it refuses such a key now.
 */
export function keyFile(path: string, file: FileText): KeyFile {
  if ("error" in file) throw directiveError(`unable to use '${path}': ${file.error}`);
  if (ENCRYPTED_KEY.test(file.text)) {
    throw directiveError(`unable to use '${path}': the key is protected by a passphrase, which dsod cannot ask for`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(file.text);
  } catch (error) {
    throw directiveError(`unable to use '${path}': ${messageOf(error)}`);
  }
  return { path, pem: key.export({ format: "pem", type: "pkcs8" }) as string, key };
}

/** set_tlscertchain's check: the file holds at least one certificate, and each parses. */
export function chainFile(path: string, file: FileText): ChainFile {
  if ("error" in file) throw directiveError(`unable to use '${path}': ${file.error}`);
  const blocks = certificateBlocks(file.text);
  if (blocks.length === 0) throw directiveError(`unable to use '${path}': file contained no certificate data`);
  for (const block of blocks) {
    if (parses(block) === undefined)
      throw directiveError(`unable to use '${path}': a certificate in it cannot be parsed`);
  }
  return { path, pem: blocks.map((block) => `${block}\n`).join("") };
}

/**
 * SSL_CTX_check_private_key's check, which proftpd makes when it builds its
 * context: the key is the certificate's. dsod makes it as soon as both are
 * known, so the mismatch fails the directive that completed the pair.
 */
export function checkKeyMatches(certificate: CertificateFile, key: KeyFile): void {
  if (!certificate.x509.checkPrivateKey(key.key)) {
    throw directiveError(`error checking key from TLSRSACertificateKeyFile '${key.path}': key values mismatch`);
  }
}
