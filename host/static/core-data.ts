/**
 * mod_core.c's data-connection commands, PASV, EPSV, PORT and EPRT
 * (core_pasv, core_epsv, core_port, core_eprt), and the directives they and
 * the transfers read: PassivePorts, MasqueradeAddress, AllowForeignAddress,
 * and TransferLog (mod_core.c's in proftpd too; mod_xfer.c writes the lines).
 * Part of mod_core.c: mod-core.ts includes these handlers.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";
import {
  addressFamily,
  extendedPassiveReply,
  isRfc1918,
  isV4Mapped,
  parseEprtArgument,
  parsePortArgument,
  passiveReply,
  sameHost,
} from "../data/data-address.js";
import type { DataChannelSettings } from "../data/data-channel.js";
import { HandlerResults, Phases } from "../modules/module-api.js";
import type {
  CommandHandler,
  DirectiveHandler,
  HandlerResult,
  HelpEntry,
  SessionState,
} from "../modules/module-api.js";
import { checkArgs, directiveError, param } from "../config/directives.js";

/** What this part of mod_core.c's directives set. */
export interface CoreDataSettings {
  /** PassivePorts min max (both 1024 to 65535, min below max). */
  passivePorts: { readonly min: number; readonly max: number } | undefined;
  /** MasqueradeAddress: an address, or a host name looked up when a PASV needs it. */
  masqueradeAddress: string | undefined;
  /** AllowForeignAddress; off by default. */
  allowForeignAddress: boolean;
  /**
   * TransferLog: the xferlog(5) file, an absolute path; undefined (or `NONE`)
   * writes none. proftpd defaults to /var/log/xferlog; dsod writes no log it
   * was not told to.
   */
  transferLog: string | undefined;
}

export function defaultCoreDataSettings(): CoreDataSettings {
  return { passivePorts: undefined, masqueradeAddress: undefined, allowForeignAddress: false, transferLog: undefined };
}

/**
 * What a session's DataChannel reads: these directives, with mod_xfer.c's
 * TimeoutStalled, which proftpd arms while it waits for the data connection
 * (data_passive_open, data_active_open) and while bytes move.
 */
export function dataChannelSettings(data: CoreDataSettings, timeoutStalledSeconds: number): DataChannelSettings {
  return {
    passivePorts: data.passivePorts,
    masqueradeAddress: data.masqueradeAddress,
    allowForeignAddress: data.allowForeignAddress,
    connectTimeoutMs: timeoutStalledSeconds * 1000,
    stalledTimeoutMs: timeoutStalledSeconds * 1000,
  };
}

/** The command as pr_cmd_get_displayable_str shows it: the upper-cased name, then the words. */
export function displayable(cmd: ActiveCommand): string {
  return [cmd.name, ...cmd.argv.slice(1)].join(" ");
}

function refuse(cmd: ActiveCommand, code: string, message: string): HandlerResult {
  cmd.addError(code, message);
  return HandlerResults.ERROR;
}

/** Sessions whose end already closes their data channel. */
const closing = new WeakSet<SessionState>();

/** A listener must not outlive its session: the first PASV/EPSV ties the data channel's end to the control connection's. */
function closeWithSession(session: SessionState): void {
  if (closing.has(session)) return;
  closing.add(session);
  session.control.onClose(() => session.data.end());
}

/** `522 Network protocol not supported, use (1,2)`, or `(1)` without IPv6. */
function unsupportedProtocol(cmd: ActiveCommand, ipv6: boolean): HandlerResult {
  return refuse(cmd, "522", `Network protocol not supported, use (${ipv6 ? "1,2" : "1"})`);
}

/**
 * core_port/core_eprt: a private (RFC 1918) address from a client that is
 * not itself on a private network, to a server that is not, cannot be
 * reached; the client's own address is used instead.
 */
function routable(address: string, session: SessionState): string {
  const settings = session.data.settings;
  const listen = settings.masqueradeAddress ?? session.localAddress;
  if (!isRfc1918(listen) && !isRfc1918(session.remoteAddress) && isRfc1918(address)) return session.remoteAddress;
  return address;
}

/** The listener for PASV/EPSV; a failure is core_pasv's `425 Unable to build data connection: Internal error`. */
async function listen(
  cmd: ActiveCommand,
  session: SessionState,
  reply: (address: string, port: number) => string,
  code: string,
): Promise<HandlerResult> {
  closeWithSession(session);
  try {
    const { address, port } = await session.data.listen();
    cmd.addResponse(code, reply(address, port));
    return HandlerResults.HANDLED;
  } catch {
    return refuse(cmd, "425", "Unable to build data connection: Internal error");
  }
}

function commands(ipv6: () => boolean): CommandHandler[] {
  return [
    {
      command: "PASV",
      phase: Phases.CMD,
      run: (cmd, session) => {
        if (session.data.epsvAll) return refuse(cmd, "500", "Illegal PASV command, EPSV ALL in effect");
        if (cmd.argv.length !== 1) return refuse(cmd, "501", "Invalid number of parameters");
        return listen(cmd, session, passiveReply, "227");
      },
    },
    {
      command: "EPSV",
      phase: Phases.CMD,
      run: (cmd, session) => {
        const arg = cmd.argv.length === 2 ? cmd.argv[1] : undefined;
        if (arg !== undefined && arg.toLowerCase() === "all") {
          session.data.epsvAll = true;
          cmd.addResponse("200", "EPSV ALL command successful");
          return HandlerResults.HANDLED;
        }
        let family: number;
        if (arg !== undefined) {
          // strtol with the whole argument consumed.
          const match = /^\s*[+-]?[0-9]+$/.exec(arg);
          if (match === null) return refuse(cmd, "501", `${cmd.name}: unknown network protocol`);
          family = Number(arg.trim());
        } else {
          // The control connection's family: AF_INET 1, AF_INET6 (IPv4-mapped too) 2 when UseIPv6 is on.
          const local = addressFamily(session.localAddress);
          family = local === 4 ? 1 : local === 6 && ipv6() ? 2 : 0;
        }
        if (family !== 1 && !(family === 2 && ipv6())) return unsupportedProtocol(cmd, ipv6());
        return listen(cmd, session, (_address, port) => extendedPassiveReply(port), "229");
      },
    },
    {
      command: "PORT",
      phase: Phases.CMD,
      run: (cmd, session) => {
        if (session.data.epsvAll) return refuse(cmd, "500", "Illegal PORT command, EPSV ALL in effect");
        if (cmd.argv.length !== 2) return refuse(cmd, "501", "Invalid number of parameters");
        const target = parsePortArgument(cmd.argv[1] as string);
        if (target === undefined) return refuse(cmd, "501", "Illegal PORT command");
        const remote = session.remoteAddress;
        const remoteIs6 = addressFamily(remote) === 6;
        const named = ipv6() && remoteIs6 ? `::ffff:${target.address}` : target.address;
        const address = routable(named, session);
        if (!session.data.settings.allowForeignAddress) {
          // An IPv4 PORT cannot name a client that came over (non-mapped) IPv6.
          if (ipv6() && remoteIs6 && !isV4Mapped(remote)) return refuse(cmd, "500", "Illegal PORT command");
          if (!sameHost(address, remote)) return refuse(cmd, "500", "Illegal PORT command");
        }
        // The bounce attack: no connections to privileged ports elsewhere.
        if (target.port < 1024) return refuse(cmd, "500", "Illegal PORT command");
        session.data.target(address, target.port);
        cmd.addResponse("200", "PORT command successful");
        return HandlerResults.HANDLED;
      },
    },
    {
      command: "EPRT",
      phase: Phases.CMD,
      run: (cmd, session) => {
        if (session.data.epsvAll) return refuse(cmd, "500", "Illegal EPRT command, EPSV ALL in effect");
        if (cmd.argv.length !== 2) return refuse(cmd, "501", "Invalid number of parameters");
        const parsed = parseEprtArgument(cmd.argv[1] as string, ipv6());
        if (parsed.kind === "protocol") return unsupportedProtocol(cmd, ipv6());
        if (parsed.kind === "syntax") return refuse(cmd, "501", "Illegal EPRT command");
        const address = routable(parsed.address, session);
        if (
          !session.data.settings.allowForeignAddress &&
          (!sameHost(address, session.remoteAddress) || parsed.port === 0)
        ) {
          return refuse(cmd, "500", "Illegal EPRT command");
        }
        if (parsed.port < 1024) return refuse(cmd, "500", "Illegal EPRT command");
        session.data.target(address, parsed.port);
        cmd.addResponse("200", "EPRT command successful");
        return HandlerResults.HANDLED;
      },
    },
  ];
}

function directives(settings: CoreDataSettings): DirectiveHandler[] {
  // atoi: leading digits, 0 for none.
  const atoi = (text: string): number => Number(/^\s*([+-]?[0-9]+)/.exec(text)?.[1] ?? 0);
  return [
    {
      name: "PassivePorts",
      run: (d) => {
        checkArgs(d, 2);
        const min = atoi(param(d, 1));
        const max = atoi(param(d, 2));
        if (min <= 0 || min > 65535) throw directiveError("min port must be allowable port number");
        if (max <= 0 || max > 65535) throw directiveError("max port must be allowable port number");
        if (min < 1024 || max < 1024) throw directiveError("port numbers must be above 1023");
        if (max <= min) throw directiveError("min port must be less than max port");
        settings.passivePorts = { min, max };
      },
    },
    {
      name: "MasqueradeAddress",
      run: (d) => {
        checkArgs(d, 1);
        const name = param(d, 1);
        if (name === "") throw directiveError("missing required name parameter");
        settings.masqueradeAddress = name;
      },
    },
    {
      name: "AllowForeignAddress",
      run: (d) => {
        checkArgs(d, 1);
        const value = param(d, 1).toLowerCase();
        if (["on", "yes", "true", "1"].includes(value)) settings.allowForeignAddress = true;
        else if (["off", "no", "false", "0"].includes(value)) settings.allowForeignAddress = false;
        // proftpd takes any other word as a <Class> name; dsod has no <Class> sections.
        else throw directiveError(`<Class> '${param(d, 1)}' is not supported; use on or off`);
      },
    },
    {
      name: "TransferLog",
      run: (d) => {
        checkArgs(d, 1);
        const file = param(d, 1);
        if (file.toUpperCase() === "NONE") settings.transferLog = undefined;
        else if (!file.startsWith("/")) throw directiveError(`'${file}' must be an absolute path`);
        else settings.transferLog = file;
      },
    },
  ];
}

/** core_init's help entries for these commands, in its order (ALLO's is mod_core.c's, though mod_xfer.c answers it). */
export const CORE_DATA_HELP: readonly HelpEntry[] = [
  { command: "PORT", text: "<sp> h1,h2,h3,h4,p1,p2" },
  { command: "PASV", text: "(returns address/port)" },
  { command: "EPRT", text: "<sp> |proto|addr|port|" },
  { command: "EPSV", text: "(returns port |||port|)" },
  { command: "ALLO", text: "<sp> size" },
];

/** core_postparse's FEAT lines. */
export const CORE_DATA_FEATURES: readonly string[] = ["EPRT", "EPSV"];

export interface CoreData {
  readonly settings: CoreDataSettings;
  readonly commands: readonly CommandHandler[];
  readonly directives: readonly DirectiveHandler[];
}

/** `ipv6` is UseIPv6 (EPRT/EPSV protocol 2, and PORT from an IPv6 client). */
export function createCoreData(ipv6: () => boolean): CoreData {
  const settings = defaultCoreDataSettings();
  return { settings, commands: commands(ipv6), directives: directives(settings) };
}
