/**
 * The values of mod_tls.c's policy directives, TLSRequired and TLSOptions,
 * parsed as set_tlsrequired and set_tlsoptions parse them.
 */
import { directiveError, parseBoolean } from "../config/directives.js";

/**
 * TLSRequired's three settings (mod_tls.c's tls_required_on_ctrl, _data,
 * _auth): 1 required, 0 allowed, and for data -1 refused (`!data`: PROT P is
 * answered 534).
 */
export interface TlsRequired {
  readonly ctrl: 0 | 1;
  readonly data: -1 | 0 | 1;
  readonly auth: 0 | 1;
}

export const TLS_NOT_REQUIRED: TlsRequired = { ctrl: 0, data: 0, auth: 0 };

/** set_tlsrequired's keywords, matched case-sensitively as its strcmp does. */
const KEYWORDS: ReadonlyMap<string, TlsRequired> = new Map<string, TlsRequired>([
  ["control", { ctrl: 1, data: 0, auth: 1 }],
  ["ctrl", { ctrl: 1, data: 0, auth: 1 }],
  ["data", { ctrl: 0, data: 1, auth: 0 }],
  ["!data", { ctrl: 0, data: -1, auth: 0 }],
  ["both", { ctrl: 1, data: 1, auth: 1 }],
  ["ctrl+data", { ctrl: 1, data: 1, auth: 1 }],
  ["ctrl+!data", { ctrl: 1, data: -1, auth: 1 }],
  ["auth", { ctrl: 0, data: 0, auth: 1 }],
  ["auth+data", { ctrl: 0, data: 1, auth: 1 }],
  ["auth+!data", { ctrl: 0, data: -1, auth: 1 }],
]);

/** set_tlsrequired: `on`/`off` (any Boolean word) or one of its keywords; anything else is a `bad parameter`. */
export function parseTlsRequired(value: string): TlsRequired {
  const flag = parseBoolean(value);
  if (flag !== undefined) return flag ? { ctrl: 1, data: 1, auth: 1 } : TLS_NOT_REQUIRED;
  const required = KEYWORDS.get(value);
  if (required === undefined) throw directiveError("bad parameter");
  return required;
}

/** The TLSOptions dsod implements. */
export interface TlsOptions {
  /** NoSessionReuseRequired: a data connection need not resume the control connection's TLS session. */
  readonly noSessionReuseRequired: boolean;
}

export const DEFAULT_TLS_OPTIONS: TlsOptions = { noSessionReuseRequired: false };

/**
 * The rest of set_tlsoptions' list, with why dsod refuses each rather than
 * accept a setting it would not honour.
 */
const UNSUPPORTED_OPTIONS: ReadonlyMap<string, string> = new Map([
  ["AllowDotLogin", "client certificates are not supported"],
  ["AllowPerUser", "per-user TLSRequired is not supported"],
  ["AllowWeakDH", "Node.js chooses its own DH parameters"],
  ["AllowWeakSecurity", "OpenSSL's security level stays at Node.js's default"],
  ["AllowClientRenegotiation", "Node.js limits client renegotiations itself"],
  ["AllowClientRenegotiations", "Node.js limits client renegotiations itself"],
  ["EnableDiags", "OpenSSL diagnostics are not available"],
  ["ExportCertData", "client certificates are not supported"],
  ["IgnoreSNI", "SNI is always ignored: dsod has no name-based virtual hosts"],
  ["NoEmptyFragments", "only TLSv1.2 and TLSv1.3 are spoken, which need no empty fragments"],
  ["StdEnvVars", "dsod sets no environment variables for sessions"],
  ["dNSNameRequired", "client certificates are not supported"],
  ["iPAddressRequired", "client certificates are not supported"],
  ["CommonNameRequired", "client certificates are not supported"],
  ["UseImplicitSSL", "implicit FTPS is not supported; clients use AUTH TLS"],
  ["NoAutoECDH", "Node.js chooses its own ECDH curves"],
]);

/**
 * set_tlsoptions: option names, matched case-sensitively as its strcmp does.
 * proftpd's text for an unknown name keeps its stray leading `: `.
 */
export function parseTlsOptions(params: readonly string[]): TlsOptions {
  if (params.length === 0) throw directiveError("wrong number of parameters");
  let noSessionReuseRequired = false;
  for (const name of params) {
    if (name === "NoSessionReuseRequired") {
      noSessionReuseRequired = true;
      continue;
    }
    const why = UNSUPPORTED_OPTIONS.get(name);
    if (why !== undefined) throw directiveError(`TLSOption '${name}' is not supported by dsod: ${why}`);
    throw directiveError(`: unknown TLSOption '${name}'`);
  }
  return { noSessionReuseRequired };
}
