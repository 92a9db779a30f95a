/**
 * TLSProtocol, after mod_tls.c's set_tlsprotocol: a list of protocol versions
 * (`TLSv1.2 TLSv1.3`), or `ALL` followed by `+name`/`-name` adjustments
 * (`ALL -TLSv1.2`). Names are matched case-insensitively, as proftpd does.
 *
 * Node.js's OpenSSL 3 negotiates SSLv3 never, and TLSv1 and TLSv1.1 only at
 * security level 0 (proftpd's `TLSOptions AllowWeakSecurity`, which dsod does
 * not offer): a configuration that asks for one of them by name is refused,
 * while `ALL`, `SSLv23` and the default, which name them only implicitly, mean
 * every version Node.js speaks.
 */
import { directiveError } from "../config/directives.js";

export type TlsVersion = "SSLv3" | "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";

/** TLS_PROTO_ALL: what `ALL` and `SSLv23` stand for. */
export const ALL_PROTOCOLS: readonly TlsVersion[] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/** TLS_PROTO_DEFAULT, for an OpenSSL with TLSv1.3: the versions used without a TLSProtocol directive. */
export const DEFAULT_PROTOCOLS: ReadonlySet<TlsVersion> = new Set<TlsVersion>([
  "TLSv1",
  "TLSv1.1",
  "TLSv1.2",
  "TLSv1.3",
]);

/** The versions Node.js negotiates with its default security level, oldest first. */
const NODE_VERSIONS: readonly TlsVersion[] = ["TLSv1.2", "TLSv1.3"];

/** proftpd's names for each version (`TLSv1.0` is an alias of `TLSv1`); `SSLv23` is handled apart. */
const NAMES: ReadonlyMap<string, TlsVersion> = new Map<string, TlsVersion>([
  ["sslv3", "SSLv3"],
  ["tlsv1", "TLSv1"],
  ["tlsv1.0", "TLSv1"],
  ["tlsv1.1", "TLSv1.1"],
  ["tlsv1.2", "TLSv1.2"],
  ["tlsv1.3", "TLSv1.3"],
]);

function unsupported(version: TlsVersion): Error {
  return directiveError(
    `${version} is not supported: Node.js's OpenSSL negotiates only TLSv1.2 and TLSv1.3 at its default security level`,
  );
}

/** A version named to be enabled: refused when Node.js cannot speak it. */
function enable(version: TlsVersion): TlsVersion {
  if (!NODE_VERSIONS.includes(version)) throw unsupported(version);
  return version;
}

/**
 * set_tlsprotocol: the parameters after `TLSProtocol` to the set of versions
 * they enable. Throws the directive's error, in proftpd's words where it has
 * them (`wrong number of parameters`, `missing required +/- prefix: X`,
 * `unknown protocol: 'X'`).
 */
export function parseTlsProtocol(params: readonly string[]): ReadonlySet<TlsVersion> {
  const [first, ...rest] = params;
  if (first === undefined) throw directiveError("wrong number of parameters");
  const protocols = new Set<TlsVersion>();
  if (first.toLowerCase() === "all") {
    for (const version of ALL_PROTOCOLS) protocols.add(version);
    for (const param of rest) {
      const sign = param[0];
      if (sign !== "+" && sign !== "-") throw directiveError(`missing required +/- prefix: ${param}`);
      const version = NAMES.get(param.slice(1).toLowerCase());
      if (version === undefined) throw directiveError(`unknown protocol: '${param}'`);
      if (sign === "+") protocols.add(enable(version));
      else protocols.delete(version);
    }
    return protocols;
  }
  for (const param of params) {
    if (param.toLowerCase() === "sslv23") {
      for (const version of ALL_PROTOCOLS) protocols.add(version);
      continue;
    }
    const version = NAMES.get(param.toLowerCase());
    if (version === undefined) throw directiveError(`unknown protocol: '${param}'`);
    protocols.add(enable(version));
  }
  return protocols;
}

export interface NodeVersionRange {
  readonly minVersion: "TLSv1.2" | "TLSv1.3";
  readonly maxVersion: "TLSv1.2" | "TLSv1.3";
}

/**
 * The `minVersion`/`maxVersion` of a SecureContext for a set of versions (the
 * versions Node.js cannot speak drop out; what is left is contiguous, as only
 * two remain). Throws when nothing is left (`ALL -TLSv1.2 -TLSv1.3`).
 */
export function nodeVersionRange(protocols: ReadonlySet<TlsVersion>): NodeVersionRange {
  const usable = NODE_VERSIONS.filter((version) => protocols.has(version)) as ("TLSv1.2" | "TLSv1.3")[];
  const minVersion = usable[0];
  const maxVersion = usable.at(-1);
  if (minVersion === undefined || maxVersion === undefined) {
    throw directiveError("no protocol left that Node.js supports (TLSv1.2, TLSv1.3)");
  }
  return { minVersion, maxVersion };
}
