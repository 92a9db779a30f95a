import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { isDsoError } from "../../../host/errors.js";
import { parseCommandLine } from "../../../host/ftp/command-line.js";
import { DataChannel } from "../../../host/data/data-channel.js";
import { dispatchCommand } from "../../../host/ftp/dispatch.js";
import type { SessionState } from "../../../host/modules/module-api.js";
import { dataChannelSettings } from "../../../host/static/core-data.js";
import { createCoreModule } from "../../../host/static/mod-core.js";
import type { CoreModule } from "../../../host/static/mod-core.js";
import type { RecordingControl } from "../../helpers/session.js";
import { testCommand, testSession } from "../../helpers/session.js";
import { connect, readAll, server } from "../ftp/data-helpers.js";

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setup(endpoints = { localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" }): {
  core: CoreModule;
  session: SessionState;
} {
  const core = createCoreModule([]);
  const data = new DataChannel(endpoints, () => dataChannelSettings(core.data, 3600));
  cleanups.push(() => data.end());
  const session = testSession([core.module], "alice", { ...endpoints, data });
  return { core, session };
}

async function send(session: SessionState, text: string): Promise<string[]> {
  const line = parseCommandLine(text);
  if (line === undefined) throw new Error(`not a command: ${text}`);
  return (await dispatchCommand(session, line)).lines.slice();
}

function directive(core: CoreModule, argv: string[]): string | undefined {
  const handler = core.module.directives.find((d) => d.name.toLowerCase() === (argv[0] ?? "").toLowerCase());
  if (handler === undefined) throw new Error(`no directive ${argv[0]}`);
  try {
    handler.run(testCommand(argv), { file: "/etc/dsod.conf", line: 1, first: false });
    return undefined;
  } catch (error) {
    if (isDsoError(error)) return error.message;
    throw error;
  }
}

/** The port a 227 or 229 reply tells. */
function portOf(reply: string): number {
  const pasv = /\((?:\d+,){4}(\d+),(\d+)\)/.exec(reply);
  if (pasv !== null) return Number(pasv[1]) * 256 + Number(pasv[2]);
  const epsv = /\(\|\|\|(\d+)\|\)/.exec(reply);
  if (epsv !== null) return Number(epsv[1]);
  throw new Error(`no port in ${reply}`);
}

describe("PASV and EPSV (core_pasv, core_epsv)", () => {
  it("answers 227 with the address and port of a listener the client can reach", async () => {
    const { session } = setup();
    const [reply = ""] = await send(session, "PASV");
    expect(reply).toMatch(/^227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)\.$/);
    const client = await connect(portOf(reply));
    cleanups.push(() => client.destroy());
    const socket = await session.data.open();
    client.end("over PASV");
    expect((await readAll(socket as net.Socket)).toString()).toBe("over PASV");
  });

  it("tells MasqueradeAddress in 227 but never in 229", async () => {
    const { core, session } = setup();
    directive(core, ["MasqueradeAddress", "198.51.100.4"]);
    expect(await send(session, "PASV")).toEqual([
      expect.stringMatching(/^227 Entering Passive Mode \(198,51,100,4,\d+,\d+\)\.$/),
    ]);
    expect(await send(session, "EPSV")).toEqual([
      expect.stringMatching(/^229 Entering Extended Passive Mode \(\|\|\|\d+\|\)$/),
    ]);
  });

  it("refuses arguments to PASV, and checks EPSV's protocol", async () => {
    const { core, session } = setup();
    expect(await send(session, "PASV 1")).toEqual(["501 Invalid number of parameters"]);
    expect(await send(session, "EPSV 1")).toEqual([expect.stringMatching(/^229 /)]);
    expect(await send(session, "EPSV 2")).toEqual([expect.stringMatching(/^229 /)]);
    expect(await send(session, "EPSV 3")).toEqual(["522 Network protocol not supported, use (1,2)"]);
    expect(await send(session, "EPSV x")).toEqual(["501 EPSV: unknown network protocol"]);
    directive(core, ["UseIPv6", "off"]);
    expect(await send(session, "EPSV 2")).toEqual(["522 Network protocol not supported, use (1)"]);
  });

  it("after EPSV ALL refuses PASV, PORT and EPRT but still answers EPSV", async () => {
    const { session } = setup();
    expect(await send(session, "EPSV ALL")).toEqual(["200 EPSV ALL command successful"]);
    expect(await send(session, "PASV")).toEqual(["500 Illegal PASV command, EPSV ALL in effect"]);
    expect(await send(session, "PORT 127,0,0,1,20,0")).toEqual(["500 Illegal PORT command, EPSV ALL in effect"]);
    expect(await send(session, "EPRT |1|127.0.0.1|5120|")).toEqual(["500 Illegal EPRT command, EPSV ALL in effect"]);
    expect(await send(session, "EPSV")).toEqual([expect.stringMatching(/^229 /)]);
  });

  it("uses a port of PassivePorts", async () => {
    const { core, session } = setup();
    expect(directive(core, ["PassivePorts", "40000", "40100"])).toBeUndefined();
    const [reply = ""] = await send(session, "EPSV");
    expect(portOf(reply)).toBeGreaterThanOrEqual(40000);
    expect(portOf(reply)).toBeLessThanOrEqual(40100);
  });

  it("closes the listener when the session ends", async () => {
    const { session } = setup();
    const [reply = ""] = await send(session, "PASV");
    for (const cleanup of (session.control as RecordingControl).cleanups) cleanup();
    const refused = net.connect({ host: "127.0.0.1", port: portOf(reply) });
    const code = await new Promise((resolve) =>
      refused.once("error", (error: NodeJS.ErrnoException) => resolve(error.code)),
    );
    expect(code).toBe("ECONNREFUSED");
  });
});

describe("PORT and EPRT (core_port, core_eprt)", () => {
  it("connect the next transfer to the client's address", async () => {
    const { session } = setup();
    const { server: srv, port, accepted } = await server();
    cleanups.push(() => new Promise((resolve) => srv.close(resolve)));
    expect(await send(session, `PORT 127,0,0,1,${port >> 8},${port & 255}`)).toEqual(["200 PORT command successful"]);
    const socket = await session.data.open();
    const [peer] = (await accepted.next()).value as [net.Socket];
    socket.end("active");
    expect((await readAll(peer)).toString()).toBe("active");

    expect(await send(session, `EPRT |1|127.0.0.1|${port}|`)).toEqual(["200 EPRT command successful"]);
    expect(await send(session, `EPRT |2|::ffff:127.0.0.1|${port}|`)).toEqual(["200 EPRT command successful"]);
  });

  it("refuse another host's address (the FTP bounce) and privileged ports", async () => {
    const { session } = setup();
    expect(await send(session, "PORT 127,77,88,99,10,10")).toEqual(["500 Illegal PORT command"]);
    expect(await send(session, "PORT 127,0,0,1,1,2")).toEqual(["500 Illegal PORT command"]);
    expect(await send(session, "EPRT |1|127.77.88.99|4856|")).toEqual(["500 Illegal EPRT command"]);
    expect(await send(session, "EPRT |1|127.0.0.1|123|")).toEqual(["500 Illegal EPRT command"]);
    expect(await send(session, "EPRT |1|127.0.0.1|0|")).toEqual(["500 Illegal EPRT command"]);
  });

  it("answer syntax errors with 501 and unknown protocols with 522", async () => {
    const { session } = setup();
    expect(await send(session, "PORT 1,2,3")).toEqual(["501 Illegal PORT command"]);
    expect(await send(session, "PORT 100,200,300,400,1,2")).toEqual(["501 Illegal PORT command"]);
    expect(await send(session, "PORT")).toEqual(["501 Invalid number of parameters"]);
    expect(await send(session, "EPRT ,1,2,3")).toEqual(["501 Illegal EPRT command"]);
    expect(await send(session, "EPRT |1|100.200.300.400|0|")).toEqual(["501 Illegal EPRT command"]);
    expect(await send(session, "EPRT |3|127.0.0.1|4856|")).toEqual(["522 Network protocol not supported, use (1,2)"]);
  });

  it("take any address with AllowForeignAddress on, privileged ports still not", async () => {
    const { core, session } = setup();
    directive(core, ["AllowForeignAddress", "on"]);
    expect(await send(session, "PORT 127,77,88,99,10,10")).toEqual(["200 PORT command successful"]);
    expect(await send(session, "EPRT |1|127.77.88.99|4856|")).toEqual(["200 EPRT command successful"]);
    expect(await send(session, "PORT 127,77,88,99,0,21")).toEqual(["500 Illegal PORT command"]);
  });

  it("use the client's own address for a private one when neither end is on a private network", async () => {
    const { session } = setup();
    const { server: srv, port, accepted } = await server();
    cleanups.push(() => new Promise((resolve) => srv.close(resolve)));
    expect(await send(session, `PORT 192,168,1,5,${port >> 8},${port & 255}`)).toEqual(["200 PORT command successful"]);
    const socket = await session.data.open();
    const [peer] = (await accepted.next()).value as [net.Socket];
    socket.end("rerouted");
    expect((await readAll(peer)).toString()).toBe("rerouted");
  });

  it("match an IPv4 PORT against an IPv4-mapped control connection, refuse it from a plain IPv6 one", async () => {
    const mapped = setup({ localAddress: "::ffff:127.0.0.1", remoteAddress: "::ffff:127.0.0.1" });
    expect(await send(mapped.session, "PORT 127,0,0,1,20,0")).toEqual(["200 PORT command successful"]);
    const v6 = setup({ localAddress: "::1", remoteAddress: "::1" });
    expect(await send(v6.session, "PORT 127,0,0,1,20,0")).toEqual(["500 Illegal PORT command"]);
    expect(await send(v6.session, "EPRT |2|::1|5120|")).toEqual(["200 EPRT command successful"]);
  });

  it("need a login", async () => {
    const { session } = setup();
    session.user = undefined;
    expect(await send(session, "PASV")).toEqual(["530 Please login with USER and PASS"]);
  });
});

describe("the data-connection directives", () => {
  it("check PassivePorts as set_passiveports does", () => {
    const { core } = setup();
    expect(directive(core, ["PassivePorts", "49152"])).toBe("missing parameters");
    expect(directive(core, ["PassivePorts", "0", "60000"])).toBe("min port must be allowable port number");
    expect(directive(core, ["PassivePorts", "50000", "70000"])).toBe("max port must be allowable port number");
    expect(directive(core, ["PassivePorts", "1000", "60000"])).toBe("port numbers must be above 1023");
    expect(directive(core, ["PassivePorts", "60000", "50000"])).toBe("min port must be less than max port");
    expect(directive(core, ["PassivePorts", "49152", "65534"])).toBeUndefined();
    expect(core.data.passivePorts).toEqual({ min: 49152, max: 65534 });
  });

  it("take MasqueradeAddress, AllowForeignAddress and TransferLog", () => {
    const { core } = setup();
    expect(directive(core, ["MasqueradeAddress", ""])).toBe("missing required name parameter");
    expect(directive(core, ["MasqueradeAddress", "ftp.example.com"])).toBeUndefined();
    expect(core.data.masqueradeAddress).toBe("ftp.example.com");
    expect(directive(core, ["AllowForeignAddress", "yes"])).toBeUndefined();
    expect(core.data.allowForeignAddress).toBe(true);
    expect(directive(core, ["AllowForeignAddress", "trusted"])).toBe(
      "<Class> 'trusted' is not supported; use on or off",
    );
    expect(directive(core, ["TransferLog", "xferlog"])).toBe("'xferlog' must be an absolute path");
    expect(directive(core, ["TransferLog", "/var/log/dsod/xferlog"])).toBeUndefined();
    expect(core.data.transferLog).toBe("/var/log/dsod/xferlog");
    expect(directive(core, ["TransferLog", "none"])).toBeUndefined();
    expect(core.data.transferLog).toBeUndefined();
  });

  it("list PORT, PASV, EPRT, EPSV in HELP in core_init's order and EPRT, EPSV in FEAT", () => {
    const { core } = setup();
    const names = core.module.help.map((h) => h.command);
    expect(names.slice(names.indexOf("QUIT"), names.indexOf("QUIT") + 6)).toEqual([
      "QUIT",
      "PORT",
      "PASV",
      "EPRT",
      "EPSV",
      "ALLO",
    ]);
    expect(core.module.features).toEqual(expect.arrayContaining(["EPRT", "EPSV"]));
  });
});
