/**
 * The data connection's addresses as the FTP commands carry them: PORT's
 * `h1,h2,h3,h4,p1,p2`, EPRT's `|proto|addr|port|` (RFC 2428), and the 227 and
 * 229 replies to PASV and EPSV, parsed and written as proftpd 1.3.8's
 * mod_core.c does; and address comparison as src/netaddr.c's pr_netaddr_cmp,
 * where an IPv4-mapped IPv6 address equals its IPv4 address. Pure: strings in,
 * values out.
 */
import { isIPv4, isIPv6 } from "node:net";

/** PORT's six numbers, as sscanf("%u,%u,%u,%u,%u,%u") reads them; undefined when fewer than six match. */
export function scanPortNumbers(text: string): number[] | undefined {
  const numbers: number[] = [];
  let at = 0;
  for (let i = 0; i < 6; i++) {
    if (i > 0) {
      if (text[at] !== ",") return undefined;
      at++;
    }
    // %u skips white space and takes an optional sign, then at least one digit.
    while (at < text.length && /\s/.test(text[at] as string)) at++;
    let negative = false;
    if (text[at] === "+" || text[at] === "-") {
      negative = text[at] === "-";
      at++;
    }
    const start = at;
    while (at < text.length && /[0-9]/.test(text[at] as string)) at++;
    if (at === start) return undefined;
    const value = Number(text.slice(start, at));
    // A negative %u wraps around to a huge unsigned value: only -0 stays 0.
    numbers.push(negative && value !== 0 ? 2 ** 32 - value : value);
  }
  return numbers;
}

export interface PortTarget {
  /** The dotted IPv4 address the numbers name. */
  readonly address: string;
  readonly port: number;
}

/**
 * core_port's syntax checks: six numbers, each at most 255, neither the
 * address nor the port all zero. Undefined is its `501 Illegal PORT command`.
 */
export function parsePortArgument(text: string): PortTarget | undefined {
  const numbers = scanPortNumbers(text);
  if (numbers === undefined) return undefined;
  const [h1, h2, h3, h4, p1, p2] = numbers as [number, number, number, number, number, number];
  if (numbers.some((n) => n > 255)) return undefined;
  if ((h1 | h2 | h3 | h4) === 0 || (p1 | p2) === 0) return undefined;
  return { address: `${h1}.${h2}.${h3}.${h4}`, port: (p1 << 8) | p2 };
}

export type EprtParse =
  | { readonly kind: "ok"; readonly family: 1 | 2; readonly address: string; readonly port: number }
  /** `522 Network protocol not supported, use (1,2)` (or `(1)` without IPv6). */
  | { readonly kind: "protocol" }
  /** `501 Illegal EPRT command`. */
  | { readonly kind: "syntax" };

/** atoi(3): leading white space, an optional sign, digits; 0 when there are none. */
function atoi(text: string): number {
  const match = /^\s*([+-]?)([0-9]*)/.exec(text);
  const digits = match?.[2] ?? "";
  if (digits === "") return 0;
  const value = Number(digits);
  return match?.[1] === "-" ? -value : value;
}

function leadingDigits(text: string, from: number): number {
  let at = from;
  while (at < text.length && /[0-9]/.test(text[at] as string)) at++;
  return at;
}

/**
 * core_eprt's parse of `<d>proto<d>address<d>port<d>`, where `<d>` is any
 * character: the protocol (1 IPv4, 2 IPv6 when `ipv6` is on) read with atoi
 * and followed directly by the delimiter, an address inet_pton accepts for
 * that family, and a port of digits followed by the delimiter. Like the C code
 * it keeps only the low 16 bits of the port and checks nothing after it.
 */
export function parseEprtArgument(text: string, ipv6: boolean): EprtParse {
  const delimiter = text[0];
  if (delimiter === undefined) return { kind: "syntax" };
  const rest = text.slice(1);
  const family = atoi(rest);
  if (family !== 1 && !(family === 2 && ipv6)) return { kind: "protocol" };
  let at = leadingDigits(rest, 0);
  if (rest[at] !== delimiter) return { kind: "syntax" };
  at++;
  const end = rest.indexOf(delimiter, at);
  if (end < 0) return { kind: "syntax" };
  const address = rest.slice(at, end);
  // inet_pton takes no zone index (`%eth0`), which net.isIPv6 would.
  const valid = family === 1 ? isIPv4(address) : isIPv6(address) && !address.includes("%");
  if (!valid) return { kind: "syntax" };
  const portText = rest.slice(end + 1);
  const portEnd = leadingDigits(portText, 0);
  if (portText[portEnd] !== delimiter) return { kind: "syntax" };
  return { kind: "ok", family, address, port: atoi(portText) & 0xffff };
}

/**
 * The 227 reply's text (core_pasv): the address after its last `:` (so an
 * IPv4-mapped `::ffff:a.b.c.d` gives `a.b.c.d`), dots turned to commas, then
 * the port's two bytes. proftpd sends this even for a plain IPv6 address,
 * which no client can use; EPSV is the command for IPv6.
 */
export function passiveReply(address: string, port: number): string {
  const colon = address.lastIndexOf(":");
  const host = (colon >= 0 ? address.slice(colon + 1) : address).replaceAll(".", ",");
  return `Entering Passive Mode (${host},${(port >> 8) & 255},${port & 255}).`;
}

/** The 229 reply's text (core_epsv): RFC 2428's `(|||port|)`, never an address. */
export function extendedPassiveReply(port: number): string {
  return `Entering Extended Passive Mode (|||${port}|)`;
}

/** The 16 bytes of an IPv6 address, or undefined. Handles `::` and a dotted IPv4 tail. */
function ipv6Bytes(address: string): number[] | undefined {
  if (!isIPv6(address) || address.includes("%")) return undefined;
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (isIPv4(last)) {
    tail.push(...last.split(".").map(Number));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const groups = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const missing = 8 - left.length - right.length;
  const all = [...left, ...Array<string>(rest === undefined ? 0 : missing).fill("0"), ...right];
  if (all.length !== 8) return undefined;
  const bytes = all.flatMap((group) => {
    const value = parseInt(group, 16);
    return [value >> 8, value & 255];
  });
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** True for `::ffff:a.b.c.d` (in any spelling), pr_netaddr_is_v4mappedv6. */
export function isV4Mapped(address: string): boolean {
  const bytes = ipv6Bytes(address);
  return bytes !== undefined && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for (pr_netaddr_v6tov4); other addresses unchanged. */
export function unmapped(address: string): string {
  const bytes = ipv6Bytes(address);
  if (bytes === undefined || !isV4Mapped(address)) return address;
  return bytes.slice(12).join(".");
}

/** The address family pr_netaddr_get_family reports: an IPv4-mapped IPv6 address is still IPv6. */
export function addressFamily(address: string): 4 | 6 | undefined {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

/**
 * pr_netaddr_cmp == 0: the same host, where an IPv4 address equals its
 * IPv4-mapped IPv6 form (and only that crosses families).
 */
export function sameHost(a: string, b: string): boolean {
  const x = unmapped(a);
  const y = unmapped(b);
  if (isIPv4(x) && isIPv4(y)) return x.split(".").map(Number).join(".") === y.split(".").map(Number).join(".");
  const bx = ipv6Bytes(x);
  const by = ipv6Bytes(y);
  return bx !== undefined && by !== undefined && bx.every((byte, i) => byte === by[i]);
}

/** pr_netaddr_is_rfc1918: 10/8, 172.16/12, 192.168/16, also IPv4-mapped; never another IPv6 address. */
export function isRfc1918(address: string): boolean {
  const v4 = unmapped(address);
  if (!isIPv4(v4)) return false;
  const [a = 0, b = 0] = v4.split(".").map(Number);
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}
