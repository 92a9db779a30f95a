/**
 * ServerIdent: what the 220 greeting says (mod_core.c set_serverident,
 * src/session.c pr_session_send_banner). proftpd's default is
 * `ProFTPD Server (ServerName) [address]`; dsod says its own name in the same
 * shape, `dsod Server (ServerName) [address]`. `ServerIdent off` sends only
 * `address FTP server ready`; `ServerIdent on "text"` sends the text, with
 * %L (the server's address), %V (its FQDN), %v (ServerName) and %{version}
 * replaced as proftpd replaces them.
 *
 * Pure: settings and a connection's address in, the greeting line out.
 */
import { isIP } from "node:net";
import type { DirectiveHandler } from "../modules/module-api.js";
import { booleanParam, directiveError, param } from "../config/directives.js";

export type ServerIdent =
  /** `ServerIdent on` (the default): dsod's own banner, or `text` when given. */
  | { readonly on: true; readonly text: string | undefined }
  /** `ServerIdent off`: the address only. */
  | { readonly on: false };

export const DEFAULT_SERVER_IDENT: ServerIdent = { on: true, text: undefined };

/** What a greeting is made of, besides the ident. */
export interface GreetingContext {
  /** ServerName. */
  readonly serverName: string;
  /** The server's name for %V (proftpd's ServerFQDN). */
  readonly serverFqdn: string;
  /** dsod's version, for %{version}. */
  readonly version: string;
  /** The address the client connected to. */
  readonly localAddress: string;
  /** MasqueradeAddress, which proftpd shows in place of the local address. */
  readonly masqueradeAddress?: string | undefined;
}

/**
 * The address the banner shows: MasqueradeAddress when it is an address. A
 * host name would need a lookup for every greeting (proftpd resolves it in
 * the session process); dsod shows the local address then, as proftpd does
 * while the name does not resolve.
 */
function bannerAddress(context: GreetingContext): string {
  const masquerade = context.masqueradeAddress;
  return masquerade !== undefined && isIP(masquerade) !== 0 ? masquerade : context.localAddress;
}

/** The 220 line a new connection is greeted with. */
export function greetingLine(ident: ServerIdent, context: GreetingContext): string {
  const address = bannerAddress(context);
  if (!ident.on) return `220 ${address} FTP server ready`;
  if (ident.text === undefined) return `220 dsod Server (${context.serverName}) [${address}]`;
  // pr_session_send_banner replaces each variable in turn, in this order.
  const text = ident.text
    .replaceAll("%L", address)
    .replaceAll("%V", context.serverFqdn)
    .replaceAll("%v", context.serverName)
    .replaceAll("%{version}", context.version);
  return `220 ${text}`;
}

/** The ServerIdent directive: `ServerIdent on|off ["text"]`; it sets `ident` through `set`. */
export function serverIdentDirective(set: (ident: ServerIdent) => void): DirectiveHandler {
  return {
    name: "ServerIdent",
    run: (d) => {
      // set_serverident counts its own arguments: one or two.
      if (d.argv.length < 2 || d.argv.length > 3) throw directiveError("wrong number of parameters");
      const on = booleanParam(d, 1);
      set(on ? { on, text: d.argv.length === 3 ? param(d, 2) : undefined } : { on });
    },
  };
}
